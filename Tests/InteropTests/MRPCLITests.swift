import ATVTestSupport
import Foundation
import Testing

/// MRP between pyatv's `atvremote` (the reference client), our `atv simulate mrp` and our
/// `atv pair --protocol mrp`, all on loopback (issue 8, issue 5 "MRP pairing from the CLI").
@Suite(.serialized) struct MRPCLITests {
    func startSimulator(pin: String = "1111", advance: Double = 0, extra: [String] = []) async throws -> (Child, Int) {
        let sim = try Child(try TestEnv.atv(), ["simulate", "mrp", "--port", "0", "--pin", pin, "--advance", String(advance)] + extra)
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let port = out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        return (sim, try #require(port))
    }

    static let pyatvID = "SWIFTATVMRPTEST"

    func atvremoteChild(_ args: [String], port: Int, home: URL, stdin: FileHandle? = nil) throws -> Child {
        let base = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "mrp", "--id", Self.pyatvID]
        return try Child(try TestEnv.venvTool("atvremote"), base + args, stdin: stdin,
                         environment: ["HOME": home.path, "PYTHONUNBUFFERED": "1"])
    }

    func atvremote(_ args: [String], port: Int, home: URL, stdin: String? = nil) async throws -> ProcessResult {
        var input: FileHandle?
        if let stdin {
            let pipe = Pipe()
            pipe.fileHandleForWriting.write(Data(stdin.utf8))
            try pipe.fileHandleForWriting.close()
            input = pipe.fileHandleForReading
        }
        return try await atvremoteChild(args, port: port, home: home, stdin: input).wait(timeout: 60)
    }

    static func storedMRPCredentials(_ file: URL, key: String = "mrp") throws -> String? {
        guard FileManager.default.fileExists(atPath: file.path),
              let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any],
              let devices = json["devices"] as? [[String: Any]] else { return nil }
        for d in devices {
            if let c = (d["protocols"] as? [String: [String: Any]])?[key]?["credentials"] as? String { return c }
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

    /// Lines "Key: value" of atvremote's `playing` output, per printed block.
    static func field(_ name: String, in out: String) -> [String] {
        out.split(separator: "\n").compactMap { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix(name + ": ") else { return nil }
            return String(t.dropFirst(name.count + 2))
        }
    }

    func pairWithPyatv(port: Int, home: URL) async throws -> String {
        let pair = try await atvremote(["pair"], port: port, home: home, stdin: "1111\n")
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr)")
        #expect(pair.stdout.contains("Enter PIN on screen"))
        #expect(pair.stdout.contains("Pairing seems to have succeeded"), "\(pair.stdout) \(pair.stderr)")
        let creds = try #require(try Self.storedMRPCredentials(home.appendingPathComponent(".pyatv.conf")))
        #expect(pair.stdout.contains(creds))
        return creds
    }

    /// pyatv pairs with a PIN over CRYPTO_PAIRING, stores the credentials, then pair-verifies with
    /// them (encrypted session) and reads what plays, sends commands, changes the volume and
    /// fetches the artwork; the virtual device records what it obeyed.
    @Test func pyatvPairsPlaysAndControlsOurVirtualMRPDevice() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let creds = try await pairWithPyatv(port: port, home: home)
        let clientID = Self.asciiField(creds, 3)
        let simOut = try await sim.waitForOutput(timeout: 10) { $0.contains("Paired with \(clientID)") }
        #expect(simOut.contains("pairing id \(Self.asciiField(creds, 2))"))

        let playing = try await atvremote(["--mrp-credentials", creds, "playing"], port: port, home: home)
        #expect(playing.status == 0, "\(playing.stdout) \(playing.stderr)")
        #expect(Self.field("Title", in: playing.stdout) == ["First Light"], "\(playing.stdout)")
        #expect(Self.field("Artist", in: playing.stdout) == ["The Virtuals"])
        #expect(Self.field("Album", in: playing.stdout) == ["Loopback Sessions"])
        #expect(Self.field("Genre", in: playing.stdout) == ["Ambient"])
        #expect(Self.field("Device state", in: playing.stdout) == ["Playing"])
        #expect(Self.field("Media type", in: playing.stdout) == ["Music"])
        #expect(Self.field("Position", in: playing.stdout).first?.contains("/201s") == true, "\(playing.stdout)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Verified \(clientID)") }

        let cmds = try await atvremote(["--mrp-credentials", creds, "pause", "playing", "play", "next", "playing"],
                                       port: port, home: home)
        #expect(cmds.status == 0, "\(cmds.stdout) \(cmds.stderr)")
        #expect(Self.field("Device state", in: cmds.stdout) == ["Paused", "Playing"], "\(cmds.stdout)")
        #expect(Self.field("Title", in: cmds.stdout) == ["First Light", "Second Wind"], "\(cmds.stdout)")
        let seen = try await sim.waitForOutput(timeout: 10) { $0.contains("Command nextTrack") }
        let commands = seen.split(separator: "\n").filter { $0.hasPrefix("Command ") }
        #expect(commands == ["Command pause", "Command play", "Command nextTrack"], "\(seen)")

        // Volume: from VOLUME_DID_CHANGE; set_volume and volume_up (HID key) each wait for the next one.
        let vol = try await atvremote(["--mrp-credentials", creds, "volume", "set_volume=30", "volume", "volume_up", "volume",
                                       "select", "menu"], port: port, home: home)
        #expect(vol.status == 0, "\(vol.stderr)")
        let levels = vol.stdout.split(separator: "\n").compactMap { Double($0) }
        #expect(levels == [50, 30, 35], "\(vol.stdout)")
        let after = try await sim.waitForOutput(timeout: 10) { $0.contains("Button menu up") }
        #expect(after.contains("Volume 30.0") && after.contains("Volume 35.0"))
        let buttons = after.split(separator: "\n").filter { $0.hasPrefix("Button ") }
        #expect(buttons == ["Button volumeUp down", "Button volumeUp up", "Button select down", "Button select up",
                            "Button menu down", "Button menu up"], "\(after)")

        // Power: Home held then Select sleeps it, WAKE_DEVICE wakes it; pyatv learns both from
        // DEVICE_INFO_UPDATE. Stop leaves it Stopped.
        let power = try await atvremote(["--mrp-credentials", creds, "power_state", "turn_off", "delay=300", "power_state",
                                         "turn_on", "delay=300", "power_state", "stop", "playing"], port: port, home: home)
        #expect(power.status == 0, "\(power.stderr)")
        let states = power.stdout.split(separator: "\n").filter { $0.hasPrefix("PowerState.") }
        #expect(states == ["PowerState.On", "PowerState.Off", "PowerState.On"], "\(power.stdout)")
        #expect(power.stdout.contains("New power state: Off") && power.stdout.contains("New power state: On"), "\(power.stdout)")
        #expect(Self.field("Device state", in: power.stdout) == ["Stopped"], "\(power.stdout)")
        let powered = try await sim.waitForOutput(timeout: 10) { $0.contains("Command stop") }
        #expect(powered.contains("Power off") && powered.contains("Power on"), "\(powered)")

        // Output devices (DEVICE_INFO groupedDevices), changed with MODIFY_OUTPUT_CONTEXT_REQUEST.
        let outputs = try await atvremote(["--mrp-credentials", creds, "output_devices", "add_output_devices=SPK-1,SPK-2",
                                           "output_devices", "remove_output_devices=SPK-1", "output_devices"], port: port, home: home)
        #expect(outputs.status == 0, "\(outputs.stderr)")
        let lists = outputs.stdout.split(separator: "\n").filter { $0.hasPrefix("Device: ") }
        #expect(lists.count == 3 && lists[0].hasSuffix("(F2204E63-BCAB-4941-80A0-06C46CB71391)"), "\(outputs.stdout)")
        #expect(lists.count == 3 && lists[1].contains("Speaker SPK-1 (SPK-1)") && lists[1].contains("Speaker SPK-2 (SPK-2)"), "\(outputs.stdout)")
        #expect(lists.count == 3 && !lists[2].contains("SPK-1") && lists[2].contains("SPK-2"), "\(outputs.stdout)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Output devices [SPK-2]") }

        // Artwork in-band (PLAYBACK_QUEUE_REQUEST): the bytes are the device's PNG.
        let artBase = home.appendingPathComponent("art").path
        let art = try await atvremote(["--mrp-credentials", creds, "artwork_save=512,512,\(artBase)"], port: port, home: home)
        #expect(art.status == 0, "\(art.stdout) \(art.stderr)")
        let png = try Data(contentsOf: URL(fileURLWithPath: artBase + ".png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count == 69)
    }

    /// With an `artworkURL` announced, pyatv fetches artwork over HTTP instead of asking in-band.
    @Test func pyatvFetchesArtworkFromTheAnnouncedURL() async throws {
        let (sim, port) = try await startSimulator(extra: ["--artwork-http"])
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let creds = try await pairWithPyatv(port: port, home: home)
        let artBase = home.appendingPathComponent("art").path
        let art = try await atvremote(["--mrp-credentials", creds, "artwork_save=200,200,\(artBase)"], port: port, home: home)
        #expect(art.status == 0, "\(art.stdout) \(art.stderr)")
        let png = try Data(contentsOf: URL(fileURLWithPath: artBase + ".png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count == 69)
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Artwork GET /artwork/0.png") }
    }

    /// `push_updates` prints what changes as the device's script advances.
    @Test func pyatvPushUpdatesFollowTheScript() async throws {
        let (sim, port) = try await startSimulator(advance: 1)
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let creds = try await pairWithPyatv(port: port, home: home)
        let stdin = Pipe()  // never written: push_updates runs until we kill it
        let push = try atvremoteChild(["--mrp-credentials", creds, "push_updates"], port: port, home: home,
                                      stdin: stdin.fileHandleForReading)
        defer { push.kill() }
        let out = try await push.waitForOutput(timeout: 60) { Set(Self.field("Title", in: $0)).count >= 2 }
        push.kill()
        let titles = Self.field("Title", in: out)
        let known = ["First Light", "Second Wind", "Third Time Lucky"]
        #expect(titles.allSatisfy(known.contains), "\(out)")
        #expect(Set(titles).count >= 2, "\(out)")
        // The device's own log shows the script moving on (it prints with a short delay).
        _ = try await sim.waitForOutput(timeout: 10) { $0.split(separator: "\n").filter { $0.hasPrefix("Now playing ") }.count >= 2 }
    }

    @Test func pyatvWithTheWrongPINFailsAndStoresNothing() async throws {
        let (sim, port) = try await startSimulator(pin: "4321")
        defer { sim.kill() }
        let home = try TestEnv.tempDir()
        let pair = try await atvremote(["pair"], port: port, home: home, stdin: "1111\n")
        #expect(pair.status != 0, "\(pair.stdout) \(pair.stderr)")
        #expect((pair.stdout + pair.stderr).contains("Pairing failed"), "\(pair.stdout) \(pair.stderr.suffix(1500))")
        #expect(!pair.stdout.contains("succeeded"))
        #expect(try Self.storedMRPCredentials(home.appendingPathComponent(".pyatv.conf")) == nil)
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Authentication failed") }
        #expect(!sim.stdout.contains("Paired with"))
    }

    /// Our `atv pair --protocol mrp` against the virtual device; pyatv accepts the stored credentials.
    @Test func atvPairStoresCredentialsPyatvCanUse() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let dir = try TestEnv.tempDir()
        let file = dir.appendingPathComponent("devices.json")
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "mrp",
                                                  "--pin", "1111", "--storage", file.path], timeout: 60)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("over MRP") && r.stdout.contains("credentials stored in \(file.path)"), "\(r.stdout)")
        let creds = try #require(try Self.storedMRPCredentials(file))
        let clientID = Self.asciiField(creds, 3)
        let seen = try await sim.waitForOutput(timeout: 10) { $0.contains("Verified \(clientID)") }
        #expect(seen.contains("Paired with \(clientID)"))

        let python = try TestEnv.venvTool("python")
        let parsed = try await run(python, ["-c", "import sys; from pyatv.auth.hap_pairing import parse_credentials as p; print(p(sys.argv[1]).type.name)", creds])
        #expect(parsed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "HAP")
        let use = try await atvremote(["--mrp-credentials", creds, "playing", "pause"], port: port, home: dir)
        #expect(use.status == 0, "\(use.stdout) \(use.stderr)")
        #expect(Self.field("Title", in: use.stdout) == ["First Light"], "\(use.stdout)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Command pause") }
    }

    @Test func atvPairWithTheWrongPINIsOneLineErrorAndStoresNothing() async throws {
        let (sim, port) = try await startSimulator(pin: "4321")
        defer { sim.kill() }
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json")
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "mrp",
                                                  "--pin", "1111", "--storage", file.path], timeout: 60)
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("atv: error: ") && lines[0].contains("authentication failed"), "\(r.stderr)")
        #expect(try Self.storedMRPCredentials(file) == nil)
        #expect(!sim.stdout.contains("Paired with"))
    }

    /// Discovery too, in a private network namespace: pyatv finds the advertised `_mediaremotetv._tcp`
    /// service (Pairing: Optional from AllowPairing), pairs by name and reads what plays with the
    /// credentials from its storage; `atv pair --to NAME --protocol mrp` finds and pairs it as well.
    @Test func pyatvAndAtvDiscoverAndPairTheAdvertisedDevice() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate mrp --port 0 --advance 0 --name "Virtual Lounge" --advertise > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            mkdir -p "$TMP/home"
            echo "== scan =="; HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 scan
            echo "== pair =="; echo 1111 | HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Virtual Lounge" --protocol mrp pair; echo "status=$?"
            echo "== playing =="; HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Virtual Lounge" playing; echo "status=$?"
            echo "== atv =="; "$ATV" pair --to "Virtual Lounge" --protocol mrp --pin 1111 --storage "$TMP/devices.json"; echo "status=$?"
            sleep 0.5; echo "== sim =="; cat "$TMP/sim.out"
            """, timeout: 120)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr.suffix(800))")
        let scan = result.section("scan")
        #expect(scan.contains("Name: Virtual Lounge"), "\(scan)")
        #expect(scan.contains("Protocol: MRP") && scan.contains("Pairing: Optional"), "\(scan)")
        let pair = result.section("pair")
        #expect(pair.contains("Pairing seems to have succeeded") && pair.contains("status=0"), "\(pair) \(result.stderr.suffix(800))")
        let playing = result.section("playing")
        #expect(playing.contains("Title: First Light") && playing.contains("status=0"), "\(playing) \(result.stderr.suffix(800))")
        let atv = result.section("atv")
        #expect(atv.contains("over MRP") && atv.contains("status=0"), "\(atv) \(result.stderr.suffix(800))")
        let sim = result.section("sim")
        #expect(sim.components(separatedBy: "Paired with ").count - 1 == 2, "\(sim)")
        // pyatv verifies after pairing and again for `playing`; we verify once after pairing.
        #expect(sim.components(separatedBy: "Verified ").count - 1 == 3, "\(sim)")
    }
}
