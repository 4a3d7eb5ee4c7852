import ATVTestSupport
import Foundation
import Testing

/// MRP over the AirPlay 2 remote-control channel of an Apple TV: `atv simulate appletv --tvos15`
/// (model AppleTV6,2, osvers 15.0, MRP not advertised) serves MRP only through stream SETUP type
/// 130. Our CLI, after `atv pair --protocol airplay` (HAP PIN), must pick the tunnel by itself from
/// the scanned TXT; pyatv's atvremote, given the same TXT and HAP credentials, does the same.
@Suite(.serialized) struct AppleTVTunnelCLITests {
    static let deviceID = "AA:BB:CC:DD:EE:01"

    /// The simulator without mDNS: its AirPlay port and the `--service-properties` text it prints.
    func startTV(_ extra: [String] = []) async throws -> (Child, Int, String) {
        let tv = try Child(try TestEnv.atv(), ["simulate", "appletv", "--tvos15", "--port", "0", "--no-advertise",
                                               "--advance", "0", "--pin", "1111"] + extra)
        let out = try await tv.waitForOutput(timeout: 60) { $0.contains("--service-properties") && $0.contains("MRP on") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+) \(AirPlay\)"#, options: .regularExpression),
              let port = Int(out[r].dropFirst("127.0.0.1:".count).prefix { $0.isNumber }),
              let p = out.range(of: #"--service-properties "([^"]+)""#, options: .regularExpression) else {
            tv.kill()
            throw TestFailure("no port/TXT in: \(out)")
        }
        return (tv, port, String(out[p].dropFirst("--service-properties \"".count).dropLast()))
    }

    /// Lines of the simulator's output that `text` occurs in.
    static func count(_ text: String, in out: String) -> Int { out.components(separatedBy: text).count - 1 }

    /// Our CLI in a private network namespace, the simulator advertising itself by mDNS. After
    /// pairing AirPlay (HAP) — and no `--mrp-tunnel` anywhere — `atv` finds no MRP service, sees
    /// model AppleTV6,2 with osvers 15.0 and stored HAP credentials, and tunnels MRP: now playing,
    /// pause, volume, push updates. Companion, paired too, still serves apps and power.
    @Test func atvTunnelsByItselfToATVOS15AppleTV() async throws {
        try Netns.requirePrerequisites(python: false)
        let result = try await Netns.run("""
            "$ATV" simulate appletv --tvos15 --port 7000 --advance 0 --pin 1111 > "$TMP/tv.out" 2>&1 &
            wait_for "$TMP/tv.out" Advertising 60 || exit 98
            S="--storage $TMP/devices.json"
            echo "== scan =="; "$ATV" scan --hosts 127.0.0.1 2>&1; echo "status=$?"
            echo "== pair =="; "$ATV" pair --to \(Self.deviceID) --protocol airplay --pin 1111 $S 2>&1; echo "status=$?"
            echo "== playing =="; "$ATV" playing --host 127.0.0.1 $S -v 2>&1; echo "status=$?"
            echo "== pause =="; "$ATV" remote pause --host 127.0.0.1 $S 2>&1; echo "status=$?"
            wait_for "$TMP/tv.out" "MRP Command pause" 10
            echo "== paused =="; "$ATV" playing --host 127.0.0.1 $S 2>&1; echo "status=$?"
            echo "== setvolume =="; "$ATV" volume 30 --host 127.0.0.1 $S 2>&1; echo "status=$?"
            wait_for "$TMP/tv.out" "MRP Volume 30" 10
            echo "== volume =="; "$ATV" volume --host 127.0.0.1 $S 2>&1; echo "status=$?"
            "$ATV" push-updates --host 127.0.0.1 $S > "$TMP/push.out" 2>&1 &
            PUSH=$!
            wait_for "$TMP/push.out" "Waiting for updates" 30
            echo "== play =="; "$ATV" play --host 127.0.0.1 $S 2>&1; echo "status=$?"
            wait_for "$TMP/push.out" "Device state: Playing" 20
            echo "== next =="; "$ATV" next --host 127.0.0.1 $S 2>&1; echo "status=$?"
            wait_for "$TMP/push.out" "Second Wind" 20
            kill $PUSH
            echo "== push =="; cat "$TMP/push.out"
            echo "== pair companion =="; "$ATV" pair --to \(Self.deviceID) --protocol companion --pin 1111 $S 2>&1; echo "status=$?"
            echo "== apps =="; "$ATV" apps --host 127.0.0.1 $S 2>&1; echo "status=$?"
            echo "== power =="; "$ATV" power off --host 127.0.0.1 $S 2>&1; echo "status=$?"
            echo "== after companion =="; "$ATV" playing --host 127.0.0.1 $S 2>&1; echo "status=$?"
            sleep 0.5
            echo "== tv =="; cat "$TMP/tv.out"
            """, timeout: 120)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500)) stdout: \(result.stdout.suffix(3000))")
        let tv = result.section("tv")

        // The scan shows no MRP service: the only way to MRP is the tunnel.
        let scan = result.section("scan")
        #expect(scan.contains("AirPlay") && !scan.contains("MRP"), "\(scan)")
        let pair = result.section("pair")
        #expect(pair.contains("AirPlay 2 HAP") && pair.contains("status=0"), "\(pair)")

        let playing = result.section("playing")
        #expect(playing.contains("Title: First Light") && playing.contains("Artist: The Virtuals"), "\(playing)")
        #expect(playing.contains("Device state: Playing") && playing.contains("status=0"), "\(playing)")
        #expect(playing.contains("MRP through the AirPlay 2 remote-control channel") && playing.contains("pair-verify with stored credentials"),
                "\(playing)")

        #expect(result.section("pause").contains("status=0"), "\(result.section("pause"))")
        #expect(tv.contains("MRP Command pause"), "\(tv)")
        let paused = result.section("paused")
        #expect(paused.contains("Device state: Paused") && paused.contains("Title: First Light"), "\(paused)")

        #expect(result.section("setvolume").contains("status=0"), "\(result.section("setvolume"))")
        #expect(tv.contains("MRP Volume 30"), "\(tv)")
        let volume = result.section("volume")
        #expect(volume.contains("Volume: 30") && volume.contains("status=0"), "\(volume)")

        // push-updates: the state change and the track change another client caused.
        #expect(result.section("play").contains("status=0") && result.section("next").contains("status=0"))
        #expect(tv.contains("MRP Command play") && tv.contains("MRP Now playing \"Second Wind\""), "\(tv)")
        let push = result.section("push")
        #expect(push.contains("Waiting for updates") && push.contains("Device state: Playing") && push.contains("Title: Second Wind"), "\(push)")

        // Companion (paired too) serves what only it has, and power (its preference).
        #expect(result.section("pair companion").contains("status=0"), "\(result.section("pair companion"))")
        let apps = result.section("apps")
        #expect(apps.contains("App: ") && apps.contains("status=0"), "\(apps)")
        #expect(result.section("power").contains("status=0"), "\(result.section("power"))")
        let lines = tv.split(separator: "\n")
        #expect(lines.contains("Power off") && !tv.contains("MRP Power"), "\(tv)")
        // Now playing still comes through the tunnel with Companion connected.
        #expect(result.section("after companion").contains("Title: Second Wind"), "\(result.section("after companion"))")

        // Every MRP connection was a tunnel: one remote-control stream per connected command.
        #expect(Self.count("remote-control stream (MRP tunnel)", in: tv) >= 9, "\(tv)")
    }

    /// pyatv's atvremote, given the simulator's TXT (AppleTV6,2, osvers 15.0) and the HAP
    /// credentials of its own PIN pairing, opens the tunnel by itself: playing, pause, push updates.
    @Test func pyatvTunnelsToATVOS15AppleTV() async throws {
        let (tv, port, properties) = try await startTV()
        defer { tv.kill() }
        #expect(properties.contains("osvers=15.0") && properties.contains("model=AppleTV6,2"), "\(properties)")
        let home = try TestEnv.tempDir()
        let tool = try TestEnv.venvTool("atvremote")
        let base = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                    "--id", Self.deviceID, "--service-properties", properties]
        let env = ["HOME": home.path, "PYTHONUNBUFFERED": "1"]

        let pin = Pipe()
        let pairing = try Child(tool, base + ["pair"], stdin: pin.fileHandleForReading, environment: env)
        pin.fileHandleForWriting.write(Data("1111\n".utf8))
        try pin.fileHandleForWriting.close()
        let pair = try await pairing.wait(timeout: 60)
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr.suffix(1500))")
        guard let line = pair.stdout.split(separator: "\n").first(where: { $0.contains("You may now use these credentials:") }) else {
            throw TestFailure("no credentials: \(pair.stdout) \(pair.stderr.suffix(1500))")
        }
        let credentials = String(line.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        let withCreds = base + ["--airplay-credentials", credentials]

        let playing = try await run(tool, withCreds + ["playing"], environment: env)
        #expect(playing.status == 0, "\(playing.stdout) \(playing.stderr.suffix(1500))")
        #expect(playing.stdout.contains("Title: First Light") && playing.stdout.contains("Device state: Playing"), "\(playing.stdout)")
        _ = try await tv.waitForOutput(timeout: 10) { $0.contains("remote-control stream (MRP tunnel)") }

        let pause = try await run(tool, withCreds + ["pause"], environment: env)
        #expect(pause.status == 0, "\(pause.stderr.suffix(1500))")
        _ = try await tv.waitForOutput(timeout: 10) { $0.contains("MRP Command pause") }
        let after = try await run(tool, withCreds + ["playing"], environment: env)
        #expect(after.stdout.contains("Device state: Paused"), "\(after.stdout) \(after.stderr.suffix(1500))")

        let stdin = Pipe()  // never written: push_updates runs until we kill it
        let push = try Child(tool, withCreds + ["push_updates"], stdin: stdin.fileHandleForReading, environment: env)
        defer { push.kill(); _ = stdin }
        _ = try await push.waitForOutput(timeout: 60) { $0.contains("First Light") }
        // pyatv changes the track through another tunnel of its own; the push connection is told.
        let next = try await run(tool, withCreds + ["next"], environment: env)
        #expect(next.status == 0, "\(next.stderr.suffix(1500))")
        let pushed = try await push.waitForOutput(timeout: 30) { $0.contains("Second Wind") }
        #expect(pushed.contains("Title: Second Wind"))
        let out = tv.stdout
        #expect(out.contains("Paired (") && out.contains("MRP Now playing \"Second Wind\""), "\(out)")
        #expect(Self.count("remote-control stream (MRP tunnel)", in: out) >= 4, "\(out)")
    }

    /// Without a scan (bare --host/--port: no TXT, so no model or osvers), `atv` has no reason to
    /// tunnel; `--mrp-tunnel force` reaches the same MRP device with the stored HAP credentials.
    @Test func bareHostNeedsForce() async throws {
        let (tv, port, _) = try await startTV()
        defer { tv.kill() }
        let storage = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let common = ["--host", "127.0.0.1", "--port", String(port), "--protocol", "airplay", "--storage", storage]
        let pair = try await run(try TestEnv.atv(), ["pair", "--airplay-version", "2", "--pin", "1111"] + common)
        #expect(pair.status == 0, "\(pair.stderr)")
        let bare = try await run(try TestEnv.atv(), ["playing"] + common)
        // Without MRP nothing implements the now-playing fields: status 4 (not supported), one line.
        #expect(bare.status == 4, "\(bare.stderr)")
        #expect(bare.stderr == "atv: error: Title is not supported by this device (no connected protocol implements it)\n", "\(bare.stderr)")
        #expect(!bare.stdout.contains("First Light"), "\(bare.stdout)")
        let forced = try await run(try TestEnv.atv(), ["playing", "--mrp-tunnel", "force"] + common)
        #expect(forced.status == 0 && forced.stdout.contains("Title: First Light"), "\(forced.stdout) \(forced.stderr)")
        _ = try await tv.waitForOutput(timeout: 10) { $0.contains("remote-control stream (MRP tunnel)") }
        #expect(Self.count("remote-control stream (MRP tunnel)", in: tv.stdout) == 1, "\(tv.stdout)")
    }
}
