import ATVTestSupport
import Foundation
import Testing

/// The `atv` control commands (issue 8) against `atv simulate companion` / `atv simulate appletv`,
/// as users run them: pair with `atv pair --protocol companion`, then every command goes through
/// connect() and the facade, and the virtual device reports what it received.
@Suite(.serialized) struct ControlCLITests {
    /// A running virtual Companion device, paired, with a settings file holding the credentials.
    struct Device {
        let sim: Child
        let port: Int
        let storage: String

        /// `atv <args> --host 127.0.0.1 --port P --storage F`.
        func atv(_ args: [String], timeout: Double = 60) async throws -> ProcessResult {
            try await run(try TestEnv.atv(), args + ["--host", "127.0.0.1", "--port", String(port), "--storage", storage], timeout: timeout)
        }

        /// Lines the simulator printed, without the per-connection noise.
        var simLines: [String] {
            sim.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("Message ") && !$0.hasPrefix("Verified ") }
        }

        /// Wait until the simulator printed every line in `expected` (in order, as a subsequence).
        func waitForSim(_ expected: [String], timeout: Double = 10) async throws {
            _ = try await sim.waitForOutput(timeout: timeout) { out in
                var rest = out.split(separator: "\n").map(String.init)[...]
                for e in expected {
                    guard let i = rest.firstIndex(of: e) else { return false }
                    rest = rest[(i + 1)...]
                }
                return true
            }
        }
    }

    static func startSimulator(pin: String = "1111") async throws -> (Child, Int) {
        let sim = try Child(try TestEnv.atv(), ["simulate", "companion", "--port", "0", "--pin", pin, "--no-advertise"])
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let port = out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        return (sim, try #require(port))
    }

    static func pairedDevice() async throws -> Device {
        let (sim, port) = try await startSimulator()
        let storage = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "companion",
                                                  "--pin", "1111", "--storage", storage])
        guard r.status == 0 else { sim.kill(); throw TestFailure("pairing failed: \(r.stderr)") }
        return Device(sim: sim, port: port, storage: storage)
    }

    static func expectOneLineError(_ r: ProcessResult, contains text: String, status: Int32? = nil,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status != 0, "exit 0; stdout: \(r.stdout)", sourceLocation: sourceLocation)
        if let status { #expect(r.status == status, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation) }
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("atv: error: "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    // MARK: (a) apps, launch, power, text, accounts

    @Test func appsAndLaunchGoThroughTheFacade() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        let apps = try await d.atv(["apps"])
        #expect(apps.status == 0, "\(apps.stderr)")
        #expect(apps.stdout.split(separator: "\n") == ["App: Music (com.apple.TVMusic)", "App: Netflix (com.netflix.Netflix)",
                                                      "App: Settings (com.apple.TVSettings)", "App: YouTube (com.google.ios.youtube)"],
                "\(apps.stdout)")
        let json = try await d.atv(["apps", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["result"] as? String == "success")
        #expect((object["apps"] as? [[String: Any]])?.compactMap { $0["identifier"] as? String }.contains("com.google.ios.youtube") == true)

        let launch = try await d.atv(["launch", "com.netflix.Netflix"])
        #expect(launch.status == 0 && launch.stdout.contains("Launched com.netflix.Netflix"), "\(launch.stderr)")
        let url = try await d.atv(["launch", "https://www.youtube.com/watch?v=abc"])
        #expect(url.status == 0, "\(url.stderr)")
        let viaApps = try await d.atv(["apps", "--launch", "com.apple.TVSettings"])
        #expect(viaApps.status == 0, "\(viaApps.stderr)")
        try await d.waitForSim(["Launched com.netflix.Netflix", "Launched https://www.youtube.com/watch?v=abc", "Launched com.apple.TVSettings"])

        // The device refuses an app it does not have: one line, non-zero.
        let missing = try await d.atv(["launch", "com.example.Nope"])
        Self.expectOneLineError(missing, contains: "Application not found")
        #expect(!d.sim.stdout.contains("Launched com.example.Nope"))
    }

    @Test func powerStatusOffOnChangesTheDevice() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        let first = try await d.atv(["power", "status"])
        #expect(first.status == 0 && first.stdout == "Power: on\n", "\(first.stdout) \(first.stderr)")
        // off waits until the device reports the new state, then prints it.
        let off = try await d.atv(["power", "off"])
        #expect(off.status == 0 && off.stdout == "Power: off\n", "\(off.stdout) \(off.stderr)")
        try await d.waitForSim(["Button sleep up", "Power off"])
        let state = try await d.atv(["power", "state"])
        #expect(state.stdout == "Power: off\n", "\(state.stdout) \(state.stderr)")
        let on = try await d.atv(["power", "on", "--json"])
        #expect(on.status == 0, "\(on.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(on.stdout.utf8)) as? [String: Any])
        #expect(object["result"] as? String == "success" && object["power_state"] as? String == "on", "\(on.stdout)")
        try await d.waitForSim(["Power off", "Button wake up", "Power on"])
    }

    @Test func textSetAppendGetClear() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        for args in [["text", "set", "hello"], ["text", "append", " world"]] {
            let r = try await d.atv(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
        }
        let get = try await d.atv(["text", "get"])
        #expect(get.status == 0 && get.stdout == "hello world\n", "\(get.stdout) \(get.stderr)")
        let focus = try await d.atv(["text", "focus"])
        #expect(focus.stdout == "Keyboard focus: focused\n", "\(focus.stdout) \(focus.stderr)")
        let clear = try await d.atv(["text", "clear"])
        #expect(clear.status == 0, "\(clear.stderr)")
        let empty = try await d.atv(["text", "get", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(empty.stdout.utf8)) as? [String: Any])
        #expect(object["text"] as? String == "", "\(empty.stdout)")
        // text set = clear + insert; append = insert; clear = assert "".
        try await d.waitForSim(["Text assert:", "Text insert:hello", "Text insert: world", "Text assert:"])
    }

    @Test func accountsListAndSwitch() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        let list = try await d.atv(["accounts"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.split(separator: "\n") == ["Account: Alice (A1B2C3)", "Account: Bob (D4E5F6)"], "\(list.stdout)")
        let sw = try await d.atv(["accounts", "switch", "D4E5F6"])
        #expect(sw.status == 0 && sw.stdout.contains("Switched to account D4E5F6"), "\(sw.stderr)")
        try await d.waitForSim(["Account D4E5F6"])
        let bad = try await d.atv(["accounts", "switch", "NOPE"])
        Self.expectOneLineError(bad, contains: "SwitchUserAccountEvent")
    }

    // MARK: (b) buttons and volume

    @Test func remoteButtonsReachTheDevice() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        for args in [["remote", "select"], ["remote", "up", "--double"], ["remote", "menu"], ["remote", "home"],
                     ["remote", "play-pause"], ["remote", "play"], ["remote", "pause"], ["remote", "next"], ["remote", "previous"],
                     ["remote", "skip-forward", "--interval", "15"], ["remote", "skip-backward"], ["remote", "channel-up"]] {
            let r = try await d.atv(args)
            #expect(r.status == 0 && r.stdout.hasPrefix("OK "), "\(args): \(r.stderr)")
        }
        try await d.waitForSim([
            "Button select down", "Button select up",
            "Button up down", "Button up up", "Button up down", "Button up up",
            "Button menu down", "Button menu up", "Button home down", "Button home up",
            "Button playPause down", "Button playPause up",
            "Media play", "Media pause", "Media nextTrack", "Media previousTrack", "Media skipBy:15", "Media skipBy:-10",
            "Button channelIncrement down", "Button channelIncrement up",
        ])
        let json = try await d.atv(["remote", "down", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["result"] as? String == "success" && object["command"] as? String == "down")
        // Companion has no Stop or TopMenu: the error names the feature.
        Self.expectOneLineError(try await d.atv(["remote", "stop"]), contains: "Stop is not supported", status: 4)
        Self.expectOneLineError(try await d.atv(["remote", "top-menu"]), contains: "TopMenu is not supported", status: 4)
    }

    @Test func volumeShowSetAndStep() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        func level(_ args: [String]) async throws -> String {
            let r = try await d.atv(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try await level(["volume"]) == "Volume: 50")
        #expect(try await level(["volume", "30"]) == "Volume: 30")
        #expect(try await level(["volume", "up"]) == "Volume: 35")
        #expect(try await level(["remote", "volume-down"]) == "OK volume-down")
        #expect(try await level(["remote", "volume-down"]) == "OK volume-down")
        #expect(try await level(["volume"]) == "Volume: 25")
        try await d.waitForSim(["Media setVolume:0.3", "Button volumeUp down", "Button volumeUp up",
                                "Button volumeDown down", "Button volumeDown up", "Button volumeDown down", "Button volumeDown up"])
        // Out of range never reaches the device.
        let bad = try await d.atv(["volume", "150"])
        #expect(bad.status != 0 && bad.stderr.contains("volume"), "\(bad.stderr)")
    }

    // MARK: (c) errors: unsupported feature, no credentials, device gone

    @Test func playingArtworkWithOnlyCompanionNameTheMissingFeature() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        Self.expectOneLineError(try await d.atv(["playing"]), contains: "Title is not supported by this device", status: 4)
        Self.expectOneLineError(try await d.atv(["playing", "--json"]), contains: "Title is not supported", status: 4)
        let out = try TestEnv.tempDir().appendingPathComponent("art.png").path
        Self.expectOneLineError(try await d.atv(["artwork", "--out", out]), contains: "Artwork is not supported", status: 4)
        #expect(!FileManager.default.fileExists(atPath: out))
        // features lists what Companion offers and leaves out what it does not.
        let features = try await d.atv(["features"])
        #expect(features.status == 0, "\(features.stderr)")
        for line in ["AppList: Available", "TurnOff: Available", "PowerState: Available", "TextSet: Available", "Volume: Available"] {
            #expect(features.stdout.contains(line + "\n"), "\(line): \(features.stdout)")
        }
        #expect(!features.stdout.contains("Title:") && !features.stdout.contains("PlayUrl:"))
    }

    @Test func withoutCredentialsTheErrorSaysToPair() async throws {
        let (sim, port) = try await Self.startSimulator()
        defer { sim.kill() }
        let storage = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let base = ["--host", "127.0.0.1", "--port", String(port), "--storage", storage]
        let r = try await run(try TestEnv.atv(), ["apps"] + base)
        Self.expectOneLineError(r, contains: "no credentials for Companion: pair first with `atv pair --protocol companion`")
        #expect(!sim.stdout.contains("Message "))
        // Garbage credentials are refused before connecting.
        let garbage = try await run(try TestEnv.atv(), ["apps", "--companion-credentials", "nothex"] + base)
        Self.expectOneLineError(garbage, contains: "invalid credentials")
        // Credentials from another device: pair-verify fails, with advice.
        let other = try await Self.pairedDevice()
        defer { other.sim.kill() }
        let foreign = try await run(try TestEnv.atv(), ["apps", "--storage", other.storage, "--host", "127.0.0.1", "--port", String(port)])
        Self.expectOneLineError(foreign, contains: "pair again with `atv pair --protocol companion`")
    }

    @Test func deviceDyingMidCommandIsAOneLineError() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        // Hold = down, 1 s, up: the device dies between the two.
        let hold = try Child(try TestEnv.atv(), ["remote", "menu", "--hold", "--host", "127.0.0.1", "--port", String(d.port), "--storage", d.storage])
        try await d.waitForSim(["Button menu down"], timeout: 30)
        d.sim.kill()
        let r = try await hold.wait(timeout: 30)
        Self.expectOneLineError(r, contains: "the device at 127.0.0.1:\(d.port) closed the Companion connection")
        // And with the device gone altogether.
        let gone = try await d.atv(["apps"])
        Self.expectOneLineError(gone, contains: "Companion at 127.0.0.1:\(d.port) refused the connection")
    }

    @Test func pushUpdatesPrintChangesAndEndWhenTheDeviceGoesAway() async throws {
        let d = try await Self.pairedDevice()
        defer { d.sim.kill() }
        let text = try Child(try TestEnv.atv(), ["push-updates", "--host", "127.0.0.1", "--port", String(d.port), "--storage", d.storage])
        let json = try Child(try TestEnv.atv(), ["push-updates", "--json", "--host", "127.0.0.1", "--port", String(d.port), "--storage", d.storage])
        _ = try await text.waitForOutput(timeout: 30) { $0.contains("Power: on") }
        _ = try await json.waitForOutput(timeout: 30) { $0.contains("\"power_state\":\"on\"") }
        #expect(try await d.atv(["power", "off"]).status == 0)
        #expect(try await d.atv(["volume", "40"]).status == 0)
        _ = try await text.waitForOutput(timeout: 10) { $0.contains("Power: off") && $0.contains("Volume: 40") }
        _ = try await json.waitForOutput(timeout: 10) { $0.contains("\"power_state\":\"off\"") && $0.contains("\"volume\":40") }
        // Ctrl-C ends it cleanly.
        let stopped = try Child(try TestEnv.atv(), ["push-updates", "--json", "--host", "127.0.0.1", "--port", String(d.port), "--storage", d.storage])
        _ = try await stopped.waitForOutput(timeout: 30) { $0.contains("\"power_state\":\"off\"") }
        stopped.interrupt()
        let s = try await stopped.wait(timeout: 30)
        #expect(s.status == 0, "\(s.stderr)")
        #expect(s.stdout.split(separator: "\n").last?.contains("\"push_updates\":\"finished\"") == true, "\(s.stdout)")
        d.sim.kill()
        let t = try await text.wait(timeout: 30)
        Self.expectOneLineError(t, contains: "connection lost")
        let j = try await json.wait(timeout: 30)
        Self.expectOneLineError(j, contains: "connection lost")
        // Every stdout line is a JSON object; the last one says the connection was lost.
        let objects = try j.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.first?["push_updates"] as? String == "started")
        #expect(objects.last?["result"] as? String == "failure" && objects.last?["connection"] as? String == "lost")
        let powers = objects.compactMap { $0["power_state"] as? String }
        #expect(powers == ["on", "off"], "\(j.stdout)")
    }

    // MARK: (d) simulate appletv: AirPlay and Companion side by side

    static func ports(_ out: String) -> (airplay: Int?, companion: Int?) {
        func port(after marker: String) -> Int? {
            guard let r = out.range(of: marker) else { return nil }
            return Int(out[r.upperBound...].prefix { $0.isNumber })
        }
        let airplayLine = out.split(separator: "\n").first { $0.contains("(AirPlay)") }.map(String.init) ?? ""
        let a = airplayLine.range(of: "127.0.0.1:").map { Int(airplayLine[$0.upperBound...].prefix { $0.isNumber }) } ?? nil
        return (a, port(after: "Companion on 127.0.0.1:"))
    }

    @Test func simulateAppleTVOffersCompanionNextToAirPlay() async throws {
        let sim = try Child(try TestEnv.atv(), ["simulate", "appletv", "--port", "0", "--companion-port", "0", "--pin", "2468", "--no-advertise"])
        defer { sim.kill() }
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("Companion on 127.0.0.1:") }
        let (airplay, companion) = Self.ports(out)
        let ap = try #require(airplay), cp = try #require(companion)
        #expect(ap != cp)
        let storage = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let pair = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(cp), "--protocol", "companion",
                                                     "--pin", "2468", "--storage", storage])
        #expect(pair.status == 0, "\(pair.stderr)")
        let services = ["--host", "127.0.0.1", "--service", "companion:\(cp)", "--service", "airplay:\(ap)", "--storage", storage]
        let features = try await run(try TestEnv.atv(), ["features"] + services)
        #expect(features.status == 0, "\(features.stderr)")
        #expect(features.stdout.contains("PlayUrl: Available\n") && features.stdout.contains("AppList: Available\n")
                && features.stdout.contains("TurnOn: Available\n"), "\(features.stdout)")
        let launch = try await run(try TestEnv.atv(), ["launch", "com.apple.TVMusic"] + services)
        #expect(launch.status == 0, "\(launch.stderr)")
        let power = try await run(try TestEnv.atv(), ["power", "off"] + services)
        #expect(power.stdout == "Power: off\n", "\(power.stdout) \(power.stderr)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Launched com.apple.TVMusic") && $0.contains("Power off") }
    }

    /// In a private network namespace `atv simulate appletv` advertises `_airplay._tcp` and
    /// `_companion-link._tcp`: pyatv sees both services, `atv pair --to NAME` pairs Companion and
    /// `atv apps --to NAME` lists the apps with the stored credentials.
    @Test func advertisedAppleTVIsFoundPairedAndControlledByName() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate appletv --name "Swift Den" --port 47021 --companion-port 47022 > "$TMP/atv.out" 2>&1 &
            wait_for "$TMP/atv.out" "Advertising" 20 || exit 98
            mkdir -p "$TMP/home"
            echo "== scan =="; HOME="$TMP/home" "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 scan
            echo "== pair =="; "$ATV" pair --to "Swift Den" --protocol companion --pin 1111 --storage "$TMP/devices.json"; echo "status=$?"
            echo "== apps =="; "$ATV" apps --to "Swift Den" --storage "$TMP/devices.json"; echo "status=$?"
            echo "== features =="; "$ATV" features --to "Swift Den" --storage "$TMP/devices.json"; echo "status=$?"
            sleep 0.3; echo "== sim =="; cat "$TMP/atv.out"
            """, timeout: 120)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr.suffix(800))")
        let scan = result.section("scan")
        #expect(scan.contains("Name: Swift Den"), "\(scan)")
        #expect(scan.contains("Protocol: AirPlay, Port: 47021") && scan.contains("Protocol: Companion, Port: 47022"), "\(scan)")
        let pair = result.section("pair")
        #expect(pair.contains("over Companion") && pair.contains("status=0"), "\(pair) \(result.stderr.suffix(800))")
        let apps = result.section("apps")
        #expect(apps.contains("App: Netflix (com.netflix.Netflix)") && apps.contains("status=0"), "\(apps) \(result.stderr.suffix(800))")
        let features = result.section("features")
        #expect(features.contains("PlayUrl: Available") && features.contains("LaunchApp: Available") && features.contains("status=0"),
                "\(features)")
        #expect(result.section("sim").contains("_companion-link._tcp"), "\(result.section("sim"))")
    }
}
