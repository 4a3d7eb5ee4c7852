import ATVTestSupport
import Foundation
import Testing

/// MRP over the AirPlay 2 remote-control channel (issue 8) against `atv simulate homepod`: pyatv's
/// atvremote as the reference client, and our own `atv` with `--protocol airplay`.
@Suite(.serialized) struct HomePodTunnelCLITests {
    func startPod(_ extra: [String] = []) async throws -> (Child, Int) {
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--no-advertise", "--advance", "0",
                                                "--output", try TestEnv.tempDir().appendingPathComponent("pod.wav").path] + extra)
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let port = out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        return (pod, try #require(port))
    }

    static let properties = ";model=AudioAccessory5,1;features=0x4A7FCA00,0xBC354BD0;deviceid=AA:BB:CC:DD:EE:F0;osvers=18.4"

    func atvremoteChild(_ args: [String], port: Int, home: URL, stdin: FileHandle? = nil) throws -> Child {
        let base = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                    "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", Self.properties]
        return try Child(try TestEnv.venvTool("atvremote"), base + args, stdin: stdin,
                         environment: ["HOME": home.path, "PYTHONUNBUFFERED": "1"])
    }

    func atvremote(_ args: [String], port: Int, home: URL) async throws -> ProcessResult {
        try await atvremoteChild(args, port: port, home: home).wait(timeout: 60)
    }

    func atv(_ args: [String], port: Int) async throws -> ProcessResult {
        try await run(try TestEnv.atv(), args + ["--host", "127.0.0.1", "--port", String(port), "--protocol", "airplay", "--mrp-tunnel", "force"])
    }

    /// pyatv, given a HomePod's TXT (model AudioAccessory), opens the tunnel by itself with
    /// transient pairing: playing, pause, and push updates as another client changes the track.
    @Test func pyatvControlsTheVirtualHomePodThroughTheTunnel() async throws {
        let (pod, port) = try await startPod()
        defer { pod.kill() }
        let home = try TestEnv.tempDir()
        let playing = try await atvremote(["playing"], port: port, home: home)
        #expect(playing.status == 0, "\(playing.stdout) \(playing.stderr.suffix(1500))")
        #expect(playing.stdout.contains("Title: First Light"), "\(playing.stdout)")
        #expect(playing.stdout.contains("Device state: Playing"))
        _ = try await pod.waitForOutput(timeout: 10) { $0.contains("Remote-control data channel: opened") }

        let pause = try await atvremote(["pause"], port: port, home: home)
        #expect(pause.status == 0, "\(pause.stderr.suffix(1500))")
        let after = try await atvremote(["playing"], port: port, home: home)
        #expect(after.stdout.contains("Device state: Paused"), "\(after.stdout)")

        let stdin = Pipe()  // never written: push_updates runs until we kill it
        let push = try atvremoteChild(["push_updates"], port: port, home: home, stdin: stdin.fileHandleForReading)
        defer { push.kill(); _ = stdin }
        _ = try await push.waitForOutput(timeout: 60) { $0.contains("First Light") }
        // Our own client changes the track through its own tunnel; pyatv is told.
        let next = try await atv(["remote", "next"], port: port)
        #expect(next.status == 0, "\(next.stderr)")
        let pushed = try await push.waitForOutput(timeout: 30) { $0.contains("Second Wind") }
        #expect(pushed.contains("Title: Second Wind"))
    }

    /// Our CLI over the tunnel: what plays, a command that changes the device's state, push updates,
    /// and the device going away ends push-updates with a connection-lost error.
    @Test func atvControlsTheVirtualHomePodThroughTheTunnel() async throws {
        let (pod, port) = try await startPod()
        defer { pod.kill() }
        let playing = try await atv(["playing"], port: port)
        #expect(playing.status == 0, "\(playing.stderr)")
        #expect(playing.stdout.contains("Title: First Light") && playing.stdout.contains("Device state: Playing"), "\(playing.stdout)")
        let pause = try await atv(["remote", "pause"], port: port)
        #expect(pause.status == 0 && pause.stdout.contains("OK pause"), "\(pause.stdout) \(pause.stderr)")
        #expect(try await atv(["playing"], port: port).stdout.contains("Device state: Paused"))

        let push = try Child(try TestEnv.atv(), ["push-updates", "--host", "127.0.0.1", "--port", String(port),
                                                 "--protocol", "airplay", "--mrp-tunnel", "force"])
        defer { push.kill() }
        _ = try await push.waitForOutput(timeout: 60) { $0.contains("Waiting for updates") }
        #expect(try await atv(["remote", "play"], port: port).status == 0)
        let pushed = try await push.waitForOutput(timeout: 30) { $0.contains("Device state: Playing") }
        #expect(pushed.contains("Title: First Light"))
        pod.kill()
        let ended = try await push.wait(timeout: 30)
        #expect(ended.status != 0)
        #expect(ended.stderr.lowercased().contains("lost") || ended.stderr.lowercased().contains("closed"), "\(ended.stderr)")
    }

    /// Without --mrp-tunnel force, a bare --host/--port AirPlay service (no TXT: no model) gets no MRP.
    @Test func noTunnelWithoutAModel() async throws {
        let (pod, port) = try await startPod()
        defer { pod.kill() }
        let r = try await run(try TestEnv.atv(), ["playing", "--host", "127.0.0.1", "--port", String(port), "--protocol", "airplay"])
        // Without MRP nothing implements the now-playing fields: status 4 (not supported), one line.
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stderr == "atv: error: Title is not supported by this device (no connected protocol implements it)\n", "\(r.stderr)")
        #expect(!r.stdout.contains("First Light"), "\(r.stdout)")
        #expect(pod.stdout.contains("listening"), "\(pod.stdout)")
        #expect(!pod.stdout.contains("Remote-control data channel"), "\(pod.stdout)")
    }

    /// In a private network namespace: the simulator advertises itself by mDNS; atvremote finds it
    /// by scanning and, with no settings at all, tunnels MRP over AirPlay 2 by itself (a HomePod
    /// with transient pairing); `atv` does the same from its own scan.
    @Test func pyatvAndAtvTunnelByThemselvesAfterAScan() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate homepod --port 7000 --advance 0 --output "$TMP/pod.wav" > "$TMP/pod.out" 2>&1 &
            wait_for "$TMP/pod.out" Advertising 60 || exit 98
            echo "== playing =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 --id AA:BB:CC:DD:EE:F0 playing 2>&1; echo "status=$?"
            echo "== pause =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 --id AA:BB:CC:DD:EE:F0 pause 2>&1; echo "status=$?"
            echo "== atv =="; "$ATV" playing --host 127.0.0.1 2>&1; echo "status=$?"
            echo "== pod =="; cat "$TMP/pod.out"
            """, timeout: 150)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        let playing = result.section("playing")
        #expect(playing.contains("Title: First Light") && playing.contains("status=0"), "\(playing) \(result.stderr.suffix(1500))")
        #expect(result.section("pause").contains("status=0"), "\(result.section("pause"))")
        let atv = result.section("atv")
        #expect(atv.contains("Title: First Light") && atv.contains("Device state: Paused") && atv.contains("status=0"), "\(atv)")
        let pod = result.section("pod")
        #expect(pod.contains("Paired (transient)") && pod.contains("Remote-control data channel: opened"), "\(pod)")
    }
}
