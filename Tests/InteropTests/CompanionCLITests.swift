import ATVTestSupport
import Foundation
import Testing

/// Companion pairing and commands between pyatv's `atvremote`, our `atv pair` and our
/// `atv simulate companion` (issue 5 test 3, issue 8), all on loopback.
@Suite(.serialized) struct CompanionCLITests {
    func startSimulator(pin: String = "1111") async throws -> (Child, Int) {
        let sim = try Child(try TestEnv.atv(), ["simulate", "companion", "--port", "0", "--pin", pin, "--no-advertise"])
        let out = try await sim.waitForOutput(timeout: 20) { $0.contains("listening on 127.0.0.1:") }
        let port = out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        return (sim, try #require(port))
    }

    func atvremote(_ args: [String], port: Int, home: URL, stdin: String? = nil) async throws -> ProcessResult {
        let base = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "companion", "--id", "SWIFTATVTEST"]
        var input: FileHandle?
        let pipe = Pipe()
        if let stdin {
            pipe.fileHandleForWriting.write(Data(stdin.utf8))
            try pipe.fileHandleForWriting.close()
            input = pipe.fileHandleForReading
        }
        return try await Child(try TestEnv.venvTool("atvremote"), base + args, stdin: input,
                               environment: ["HOME": home.path]).wait(timeout: 60)
    }

    static func storedCompanionCredentials(_ file: URL) throws -> String? {
        guard let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any],
              let devices = json["devices"] as? [[String: Any]] else { return nil }
        for d in devices {
            if let c = (d["protocols"] as? [String: [String: Any]])?["companion"]?["credentials"] as? String { return c }
        }
        return nil
    }

    static func asciiField(_ creds: String, _ i: Int) -> String {
        let hex = creds.split(separator: ":", omittingEmptySubsequences: false)[i]
        var bytes: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { bytes.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// pyatv pairs with a PIN against our accessory side, stores the credentials, then
    /// pair-verifies with them and runs app_list, launch_app and power over encrypted OPACK.
    @Test func pyatvPairsWithOurVirtualDeviceAndUsesTheCredentials() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let pair = try await atvremote(["pair"], port: port, home: home, stdin: "1111\n")
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr)")
        #expect(pair.stdout.contains("Enter PIN on screen"))
        #expect(pair.stdout.contains("Pairing seems to have succeeded"), "\(pair.stdout) \(pair.stderr)")
        let creds = try #require(try Self.storedCompanionCredentials(home.appendingPathComponent(".pyatv.conf")))
        #expect(pair.stdout.contains(creds))
        let clientID = Self.asciiField(creds, 3)
        let simOut = try await sim.waitForOutput(timeout: 5) { $0.contains("Paired with \(clientID)") }
        // The accessory identifier pyatv stored is the one the simulator announced.
        let deviceID = Self.asciiField(creds, 2)
        #expect(simOut.contains("pairing id \(deviceID)"))

        let use = try await atvremote(["--companion-credentials", creds, "app_list", "launch_app=com.netflix.Netflix",
                                       "power_state", "turn_off", "delay=1000", "power_state"], port: port, home: home)
        #expect(use.status == 0, "\(use.stdout) \(use.stderr)")
        for app in ["App: Music (com.apple.TVMusic)", "App: Netflix (com.netflix.Netflix)", "App: YouTube (com.google.ios.youtube)"] {
            #expect(use.stdout.contains(app), "\(use.stdout)")
        }
        let states = use.stdout.split(separator: "\n").filter { $0.hasPrefix("PowerState.") }
        #expect(states == ["PowerState.On", "PowerState.Off"], "\(use.stdout)")
        // pyatv learned of the change from our pushed SystemStatus event.
        #expect(use.stdout.contains("New power state: Off"), "\(use.stdout)")
        // Volume: pyatv learns it from our `_iMC` push (Volume flag) and GetVolume; set_volume and
        // volume_up/down each wait for the next `_iMC`.
        let vol = try await atvremote(["--companion-credentials", creds, "delay=500", "volume", "set_volume=30", "volume",
                                       "volume_up", "volume", "volume_down", "volume_down", "volume"], port: port, home: home)
        #expect(vol.status == 0, "\(vol.stderr)")
        let levels = vol.stdout.split(separator: "\n").compactMap { Double($0) }
        #expect(levels.count == 4 && zip(levels, [50.0, 30, 35, 25]).allSatisfy { abs($0 - $1) < 0.001 }, "\(vol.stdout)")

        // Text input (RTI keyed archives both ways): pyatv reads what our device holds.
        let text = try await atvremote(["--companion-credentials", creds, "text_set=hello", "text_append= world", "text_get",
                                        "text_clear", "text_get"], port: port, home: home)
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.contains("hello world"), "\(text.stdout)")
        let seen = try await sim.waitForOutput(timeout: 5) { $0.contains("Launched com.netflix.Netflix") && $0.split(separator: "\n").filter { $0.hasPrefix("Text ") }.count >= 4 }
        // text_set = clear + insert; text_clear = assert "".
        let ops = seen.split(separator: "\n").filter { $0.hasPrefix("Text ") }
        #expect(ops == ["Text assert:", "Text insert:hello", "Text insert: world", "Text assert:"], "\(seen)")
        #expect(seen.contains("Verified \(clientID)"))
        for m in ["_systemInfo", "_sessionStart", "FetchLaunchableApplicationsEvent", "_launchApp", "_hidC", "_sessionStop"] {
            #expect(seen.contains("Message \(m)"), "\(m)")
        }
    }

    @Test func pyatvWithTheWrongPINFailsAndStoresNothing() async throws {
        let (sim, port) = try await startSimulator(pin: "4321")
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let pair = try await atvremote(["pair"], port: port, home: home, stdin: "1111\n")
        #expect(pair.status == 3, "\(pair.stdout) \(pair.stderr)")
        #expect((pair.stdout + pair.stderr).contains("Pairing failed"), "\(pair.stdout.suffix(1500)) \(pair.stderr.suffix(1500))")
        #expect(!pair.stdout.contains("succeeded"))
        let file = home.appendingPathComponent(".pyatv.conf")
        if FileManager.default.fileExists(atPath: file.path) { #expect(try Self.storedCompanionCredentials(file) == nil) }
        _ = try await sim.waitForOutput(timeout: 5) { $0.contains("Authentication failed") }
        #expect(!sim.stdout.contains("Paired with"))
    }

    /// Our `atv pair` against our virtual device; the credentials it stores work in pyatv.
    @Test func atvPairStoresCredentialsPyatvCanUse() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let dir = try TestEnv.tempDir()
        let file = dir.appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "companion",
                                                  "--pin", "1111", "--storage", file], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("over Companion") && r.stdout.contains("credentials stored in \(file)"), "\(r.stdout)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let device = try #require((json["devices"] as? [[String: Any]])?.first)
        let creds = try #require((device["protocols"] as? [String: [String: Any]])?["companion"]?["credentials"] as? String)
        let clientID = Self.asciiField(creds, 3)
        let seen = try await sim.waitForOutput(timeout: 5) { $0.contains("Verified \(clientID)") }
        #expect(seen.contains("Paired with \(clientID)"))

        let python = try TestEnv.venvTool("python")
        let parsed = try await run(python, ["-c", "import sys; from pyatv.auth.hap_pairing import parse_credentials as p; print(p(sys.argv[1]).type.name)", creds])
        #expect(parsed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "HAP")
        let use = try await atvremote(["--companion-credentials", creds, "app_list"], port: port, home: dir)
        #expect(use.status == 0, "\(use.stderr)")
        #expect(use.stdout.contains("App: Settings (com.apple.TVSettings)"), "\(use.stdout)")
    }

    @Test func atvPairWithTheWrongPINIsOneLineErrorAndStoresNothing() async throws {
        let (sim, port) = try await startSimulator(pin: "4321")
        defer { sim.kill() }
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "companion",
                                                  "--pin", "1111", "--storage", file], timeout: 60)
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("atv: error: "), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    /// Discovery too, in a private network namespace: pyatv finds the advertised
    /// `_companion-link._tcp` service (Pairing: Mandatory from rpFl), pairs by name and lists apps
    /// with the credentials from its storage; `atv pair --to NAME` finds and pairs it as well.
    @Test func pyatvAndAtvDiscoverAndPairTheAdvertisedDevice() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate companion --port 0 --name "Virtual Den" > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 20 || exit 98
            mkdir -p "$TMP/home"
            echo "== scan =="; HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 scan
            echo "== pair =="; echo 1111 | HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Virtual Den" --protocol companion pair; echo "status=$?"
            echo "== apps =="; HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Virtual Den" app_list; echo "status=$?"
            echo "== atv =="; "$ATV" pair --to "Virtual Den" --protocol companion --pin 1111 --storage "$TMP/devices.json"; echo "status=$?"
            sleep 0.5; echo "== sim =="; cat "$TMP/sim.out"
            """, timeout: 90)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr.suffix(800))")
        let scan = result.section("scan")
        #expect(scan.contains("Name: Virtual Den"), "\(scan)")
        #expect(scan.contains("Protocol: Companion") && scan.contains("Pairing: Mandatory"), "\(scan)")
        let pair = result.section("pair")
        #expect(pair.contains("Pairing seems to have succeeded") && pair.contains("status=0"), "\(pair) \(result.stderr.suffix(800))")
        let apps = result.section("apps")
        #expect(apps.contains("App: Netflix (com.netflix.Netflix)") && apps.contains("status=0"), "\(apps) \(result.stderr.suffix(800))")
        let atv = result.section("atv")
        #expect(atv.contains("over Companion") && atv.contains("status=0"), "\(atv) \(result.stderr.suffix(800))")
        // Two controllers paired (pyatv, then us), each verified afterwards.
        let sim = result.section("sim")
        #expect(sim.components(separatedBy: "Paired with ").count - 1 == 2, "\(sim)")
        #expect(sim.components(separatedBy: "Verified ").count - 1 == 2, "\(sim)")
    }
}
