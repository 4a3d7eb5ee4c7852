import ATVTestSupport
import Foundation
import Testing

/// pyatv's `atvremote` (DMAP, as for an Apple TV 3) against our `atv simulate appletv3`, on loopback.
@Suite(.serialized) struct DMAPCLITests {
    static let guid = "0x1234ABCDE56789FF"

    func startSimulator(advance: Double = 0) async throws -> (Child, Int) {
        let sim = try Child(try TestEnv.atv(), ["simulate", "appletv3", "--port", "0", "--guid", Self.guid,
                                                "--advance", String(advance)])
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let port = out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        return (sim, try #require(port))
    }

    /// A fresh HOME each run: pyatv stores credentials in ~/.pyatv.conf and prefers them.
    func atvremote(_ args: [String], port: Int, credentials: String = guid) throws -> Child {
        let home = try TestEnv.tempDir()
        let base = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "dmap", "--id", "SWIFTATVDMAP",
                    "--dmap-credentials", credentials]
        return try Child(try TestEnv.venvTool("atvremote"), base + args, environment: ["HOME": home.path])
    }

    func blocks(_ stdout: String) -> [String] {
        stdout.components(separatedBy: "  Media type:").dropFirst().map { "  Media type:" + $0 }
    }

    /// Our own `atv` control commands over DMAP, through connect() and the facade (after pyatv
    /// proved the virtual device above): playing, a command, push updates, artwork.
    @Test func atvPlayingRemoteAndPushUpdatesOverDMAP() async throws {
        let (sim, port) = try await startSimulator(advance: 1)
        defer { sim.kill() }
        let base = ["--host", "127.0.0.1", "--protocol", "dmap", "--port", String(port), "--dmap-credentials", Self.guid]
        let playing = try await run(try TestEnv.atv(), ["playing"] + base, timeout: 60)
        #expect(playing.status == 0, "\(playing.stderr)")
        #expect(playing.stdout.contains("Device state: Playing"), "\(playing.stdout)")
        #expect(playing.stdout.contains("Artist: The Virtual Band"), "\(playing.stdout)")
        let json = try await run(try TestEnv.atv(), ["playing", "--json"] + base, timeout: 60)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)")
        #expect(object["result"] as? String == "success")
        #expect(object["artist"] as? String == "The Virtual Band")
        #expect(object["device_state"] as? String == "playing", "\(object)")

        let updates = try Child(try TestEnv.atv(), ["push-updates", "--json"] + base)
        defer { updates.kill() }
        let pause = try await run(try TestEnv.atv(), ["remote", "pause"] + base, timeout: 60)
        #expect(pause.status == 0, "\(pause.stderr)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Command pause") }
        // The script advances every second: at least two different titles arrive as JSON lines.
        let out = try await updates.waitForOutput(timeout: 30) { text in
            Set(text.split(separator: "\n").compactMap { line -> String? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["title"] as? String
            }).count >= 2
        }
        #expect(out.contains("\"device_state\":\"paused\""), "\(out)")

        let file = try TestEnv.tempDir().appendingPathComponent("art.png").path
        let art = try await run(try TestEnv.atv(), ["artwork", "--out", file] + base, timeout: 60)
        #expect(art.status == 0, "\(art.stderr)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(Array(bytes.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])

        let wrong = try await run(try TestEnv.atv(), ["playing", "--host", "127.0.0.1", "--protocol", "dmap", "--port", String(port),
                                                      "--dmap-credentials", "0x0000000000000001"], timeout: 60)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.hasPrefix("atv: error: ") && wrong.stderr.split(separator: "\n").count == 1, "\(wrong.stderr)")
    }

    @Test func pyatvReadsPlayingAndControlsOurAppleTV3() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let playing = try await atvremote(["playing"], port: port).wait(timeout: 60)
        #expect(playing.status == 0, "\(playing.stdout) \(playing.stderr)")
        #expect(playing.stdout.contains("Device state: Playing"))
        #expect(playing.stdout.contains("       Title: Loopback Sunrise"))
        #expect(playing.stdout.contains("      Artist: The Virtual Band"))
        #expect(playing.stdout.contains("       Album: Localhost Sessions"))
        #expect(playing.stdout.contains("  Media type: Music"))
        #expect(playing.stdout.contains("/215s"))
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Login accepted: \(Self.guid)") }

        let control = try await atvremote(["pause", "playing", "next", "set_position=10", "set_shuffle=2", "set_repeat=2",
                                           "playing", "play", "playing", "select", "up"], port: port).wait(timeout: 60)
        #expect(control.status == 0, "\(control.stdout) \(control.stderr)")
        let b = blocks(control.stdout)
        #expect(b.count == 3, "\(control.stdout)")
        if b.count == 3 {
            #expect(b[0].contains("Device state: Paused") && b[0].contains("Title: Loopback Sunrise"))
            #expect(b[1].contains("Device state: Paused") && b[1].contains("Title: Packet Storm"))
            #expect(b[1].contains("Position: 10/188s") && b[1].contains("Repeat: All") && b[1].contains("Shuffle: Songs"))
            #expect(b[2].contains("Device state: Playing") && b[2].contains("Title: Packet Storm"))
        }
        // The device recorded each change.
        let out = try await sim.waitForOutput(timeout: 10) { $0.contains("Prompt touchUp&time=6&point=20,250") }
        for line in ["Command pause", "Command nextitem", "Property dacp.playingtime=10000", "Property dacp.shufflestate=1",
                     "Property dacp.repeatstate=2", "Command play", "Prompt select", "Prompt touchDown&time=0&point=20,275"] {
            #expect(out.contains(line), "\(line) missing in \(out)")
        }
        #expect(out.contains("Packet Storm, playing, position 10 s, shuffle 1, repeat 2"), "\(out)")
    }

    @Test func pyatvReadsArtworkAndFeaturesAndSendsButtons() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let r = try await atvremote(["artwork", "features", "volume_up", "menu", "top_menu", "left"], port: port).wait(timeout: 60)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("ArtworkInfo(bytes=b'\\x89PNG"), "\(r.stdout)")
        #expect(r.stdout.contains("mimetype='image/png', width=-1, height=-1)"))
        for line in ["Up: Available", "Select: Available", "VolumeUp: Available", "Title: Available", "Position: Available",
                     "Play: Unknown", "SetShuffle: Unknown", "PushUpdates: Available"] {
            #expect(r.stdout.contains("\n\(line)\n"), "\(line) missing in \(r.stdout)")
        }
        let out = try await sim.waitForOutput(timeout: 10) { $0.contains("Prompt touchUp&time=7&point=50,100") }
        for line in ["Command volumeup", "Prompt menu", "Prompt topmenu", "Prompt touchDown&time=0&point=75,100"] {
            #expect(out.contains(line), "\(line) missing in \(out)")
        }
        #expect(out.contains("volume 55"), "\(out)")
    }

    @Test func pyatvGetsPushUpdatesFromOurLongPoll() async throws {
        let (sim, port) = try await startSimulator(advance: 1)
        defer { sim.kill() }
        // stdin stays open (push_updates stops on ENTER or end of input).
        let stdin = Pipe()
        let home = try TestEnv.tempDir()
        let push = try Child(try TestEnv.venvTool("atvremote"),
                             ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "dmap",
                              "--id", "SWIFTATVDMAP", "--dmap-credentials", Self.guid, "push_updates"],
                             stdin: stdin.fileHandleForReading, environment: ["HOME": home.path])
        defer { push.kill() }
        let titles = ["Loopback Sunrise", "Packet Storm", "Revision Number Nine"]
        let out = try await push.waitForOutput(timeout: 60) { s in
            Set(blocks(s).compactMap { b in titles.first { b.contains("Title: \($0)") } }).count >= 2
        }
        #expect(out.contains("Press ENTER to stop"))
        push.kill()
        try stdin.fileHandleForWriting.close()
        // The simulator's log line may land after pyatv's output: wait for it (a deadline), then count.
        let simOut = (try? await sim.waitForOutput(timeout: 10) { $0.contains("Login accepted") }) ?? sim.stdout
        #expect(simOut.components(separatedBy: "Login accepted").count - 1 == 1, "\(simOut)")
    }

    @Test func pyatvFailsWithWrongCredentials() async throws {
        let (sim, port) = try await startSimulator()
        defer { sim.kill() }
        let r = try await atvremote(["playing"], port: port, credentials: "0x0000000000000BAD").wait(timeout: 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("AuthenticationError") && r.stderr.contains("503"), "\(r.stderr)")
        #expect(!r.stdout.contains("Title:"))
        let out = try await sim.waitForOutput(timeout: 10) { $0.contains("Login refused: 0x0000000000000BAD") }
        #expect(!out.contains("Login accepted"))
    }
}
