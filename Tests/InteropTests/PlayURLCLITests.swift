import ATVTestSupport
import Foundation
import Testing

/// `atv play-url` against `atv simulate appletv`, both as users run them.
@Suite(.serialized) struct PlayURLCLITests {
    func startAppleTV(_ extra: [String] = []) async throws -> (Child, Int) {
        let atv = try Child(try TestEnv.atv(), ["simulate", "appletv", "--port", "0", "--no-advertise"] + extra)
        let line = try await atv.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        guard let r = line.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(line[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(line)") }
        return (atv, port)
    }

    var sample: String { TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path }

    @Test func localFilePlaysToTheEndFromAStartPosition() async throws {
        let (sim, port) = try await startAppleTV(["--sessions", "1"])
        let r = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)", "--start", "7"],
                              timeout: 40)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("Finished playing arpeggio.flac at 0:10 of 0:10 on 127.0.0.1:\(port)"), "stdout: \(r.stdout)")
        // 10 s of media from 7 s: about 3 s, not 10.
        #expect(r.seconds >= 2.5 && r.seconds < 8, "took \(r.seconds) s")
        let s = try await sim.wait(timeout: 30)
        #expect(s.stdout.contains("arpeggio.flac from 7.0 s"), "sim: \(s.stdout)")
        #expect(s.stdout.range(of: #"Fetched http://127\.0\.0\.1:\d+/arpeggio\.flac: 206, 65536 bytes \(bytes 0-65535/\d+\)"#,
                               options: .regularExpression) != nil, "sim: \(s.stdout)")
        #expect(s.stdout.contains("Playing: 0:07 / 0:10"))
        #expect(s.stdout.contains("Playback ended (finished)"))
        #expect(s.stdout.components(separatedBy: "< GET /playback-info").count - 1 >= 3)
    }

    @Test func ctrlCStopsPlaybackOnTheDevice() async throws {
        let (sim, port) = try await startAppleTV(["--sessions", "1"])
        let play = try Child(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)"])
        _ = try await sim.waitForOutput(timeout: 20) { $0.contains("< GET /playback-info") }
        try await Task.sleep(for: .milliseconds(300))
        play.interrupt()
        let r = try await play.wait(timeout: 15)
        #expect(r.status == 130, "stdout: \(r.stdout) stderr: \(r.stderr)")
        #expect(r.stdout.contains("Stopped playing arpeggio.flac"), "stdout: \(r.stdout)")
        #expect(r.seconds < 8, "Ctrl-C should stop it well before the 10 s end (took \(r.seconds) s)")
        let s = try await sim.wait(timeout: 30)
        #expect(s.stdout.contains("< POST /stop"))
        #expect(s.stdout.contains("Playback ended (stopped)"), "sim: \(s.stdout)")
    }

    /// Each refusal is one clear line on stderr and exit status 1.
    @Test(arguments: [
        (["--fail-play", "500"], "device answered 500: the Apple TV at 127.0.0.1:PORT refused POST /play with 500 Internal Server Error 3 times"),
        (["--fail-play", "403"], "requires pairing for AirPlay (it answered POST /play with 403 Forbidden): run `atv pair --protocol airplay`"),
        (["--fail-play", "470"], "requires pairing for AirPlay (it answered POST /play with 470 Connection Authorization Required)"),
        (["--fail-playback-info", "500"], "device answered 500: the Apple TV accepted the URL but answered GET /playback-info with 500 Internal Server Error"),
    ])
    func refusalsAreClearErrors(knob: [String], message: String) async throws {
        let (sim, port) = try await startAppleTV(knob)
        defer { sim.kill() }
        let r = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)"], timeout: 30)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("atv: error: "))
        #expect(r.stderr.contains(message.replacingOccurrences(of: "PORT", with: "\(port)")), "stderr: \(r.stderr)")
        #expect(!r.stdout.contains("Finished"))
    }

    @Test func unreachableURLIsAClearError() async throws {
        let (sim, port) = try await startAppleTV()
        defer { sim.kill() }
        let r = try await run(try TestEnv.atv(), ["play-url", "http://127.0.0.1:1/movie.mp4", "--host", "127.0.0.1", "--port", "\(port)"],
                              timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr == "atv: error: playback failed: the Apple TV could not play it: error -1004 (NSURLErrorDomain): cannot fetch http://127.0.0.1:1/movie.mp4: connection failed: 127.0.0.1:1 refused the connection (nothing listens on that port)\n",
                "stderr: \(r.stderr)")
    }

    @Test func badInputAndNoDevice() async throws {
        let missing = try await run(try TestEnv.atv(), ["play-url", "/no/such/file.mp4", "--host", "127.0.0.1", "--port", "9"])
        #expect(missing.status == 1 && missing.stderr == "atv: error: /no/such/file.mp4: no such file, and not an http(s) URL\n",
                "stderr: \(missing.stderr)")
        let negative = try await run(try TestEnv.atv(), ["play-url", "http://x/y", "--host", "127.0.0.1", "--start", "-3"])
        #expect(negative.status != 0 && negative.stderr.contains("--start"))
        let nobody = try await run(try TestEnv.atv(), ["play-url", "http://127.0.0.1:1/x.mp4", "--host", "127.0.0.1", "--port", "1"])
        #expect(nobody.status == 1 && nobody.stderr.contains("connection failed: 127.0.0.1:1 refused the connection"), "stderr: \(nobody.stderr)")
    }

    /// In a private network namespace the virtual Apple TV advertises `_airplay._tcp` (with its
    /// features): `atv play-url --to NAME` finds and plays on it, and so does pyatv by name, with
    /// PlayUrl offered from the advertised features (no --service-properties).
    @Test func playByNameOnTheAdvertisedAppleTV() async throws {
        try Netns.requirePrerequisites()
        let sample = self.sample
        let result = try await Netns.run("""
            "$ATV" simulate appletv --name "Swift Kino" --port 47020 > "$TMP/atv.out" 2>&1 &
            wait_for "$TMP/atv.out" "Advertising" 10 || exit 98
            echo "== ours =="; "$ATV" play-url '\(sample)' --to "Swift Kino" --start 8 2>&1; echo "exit $?"
            echo "== pyatv =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 -n "Swift Kino" play_url='\(sample)' 2>&1; echo "exit $?"
            echo "== atv =="; cat "$TMP/atv.out"
            """, timeout: 90)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr.suffix(800))")
        let ours = result.section("ours")
        #expect(ours.contains("Finished playing arpeggio.flac at 0:10 of 0:10 on 127.0.0.1:47020") && ours.contains("exit 0"), "\(ours)")
        let pyatv = result.section("pyatv")
        #expect(pyatv.contains("exit 0"), "\(pyatv)")
        let atv = result.section("atv")
        #expect(atv.contains("arpeggio.flac from 8.0 s"), "\(atv)")
        // pyatv serves the local file itself: a second play of a URL on its own server.
        #expect(atv.components(separatedBy: "Playback ended (finished)").count - 1 == 2, "\(atv)")
    }
}
