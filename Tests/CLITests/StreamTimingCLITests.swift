import ATVTestSupport
import Foundation
import Testing

/// `atv stream --timing auto|ntp|ptp --buffered auto|on|off`: parsing, the errors a choice that
/// cannot hold gives, and the route named by `-v` and by the summary line
/// (docs/PTP-AND-BUFFERED-AUDIO.md §6).
@Suite(.serialized) struct StreamTimingCLITests {
    static let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path

    @Test(arguments: [
        (["--timing", "sntp"], "--timing must be auto, ntp or ptp"),
        (["--buffered", "yes"], "--buffered must be auto, on or off"),
        (["--start", "1:75"], "--start must be a position such as 90, 1:30 or 1:02:03"),
        (["--start", "x:10"], "--start must be a position such as 90, 1:30 or 1:02:03"),
        (["--codec", "mp3"], "--codec must be alac, pcm or aac"),
        (["--codec", "aac"], "--codec aac needs --buffered on (AAC-LC is sent on buffered AirPlay 2 streams only)"),
        (["--codec", "aac", "--buffered", "auto"], "--codec aac needs --buffered on"),
    ])
    func badValuesAreRejected(args: [String], message: String) async throws {
        let r = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "9"] + args, timeout: 10)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
    }

    /// `atv simulate homepod --buffered-formats` takes alac, aac or both.
    @Test func simulatedHomePodBufferedFormatsAreChecked() async throws {
        let r = try await run(try TestEnv.atv(), ["simulate", "homepod", "--buffered-formats", "alac,flac", "--no-advertise"], timeout: 10)
        #expect(r.status != 0)
        #expect(r.stderr.contains("--buffered-formats must be alac, aac or alac,aac"), "stderr: \(r.stderr)")
    }

    /// The help names the options and how to allow UDP 319/320 without root.
    @Test func helpExplainsTimingAndThePorts() async throws {
        let r = try await run(try TestEnv.atv(), ["stream", "--help"], timeout: 10)
        #expect(r.status == 0)
        for text in ["--timing <timing>", "--buffered <buffered>", "cap_net_bind_service", "ip_unprivileged_port_start"] {
            #expect(r.stdout.contains(text), "missing \(text) in: \(r.stdout)")
        }
    }

    /// --timing ptp to an AirPlay 1 speaker (its /info says so): one line, non-zero, within 5 s.
    @Test func ptpToAnAirPlay1SpeakerIsOneClearError() async throws {
        let wav = try TestEnv.tempDir().appendingPathComponent("cap.wav").path
        let speaker = try Child(try TestEnv.atv(), ["simulate", "speaker", "--port", "0", "--output", wav, "--no-advertise"])
        defer { speaker.kill() }
        let line = try await speaker.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        guard let range = line.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(line[range].split(separator: ":")[1]) else { throw TestFailure("no port in: \(line)") }
        let r = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)", "--timing", "ptp"],
                              timeout: 10)
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr should be one line: \(r.stderr)")
        #expect(r.stderr.hasPrefix("atv: error: "), "stderr: \(r.stderr)")
        #expect(r.stderr.contains("--timing ptp needs an AirPlay 2 receiver"), "stderr: \(r.stderr)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
    }

    /// To the virtual HomePod, auto: realtime NTP (its model is a HomePod's); -v says which and
    /// why, the summary line ends with the route.
    @Test func autoKeepsRealtimeNTPForAHomePod() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "1",
                                                "--no-advertise"])
        defer { pod.kill() }
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("listening on") }
        guard let range = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[range].split(separator: ":")[1]) else { throw TestFailure("no port in: \(out)") }
        let r = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)", "--latency", "500",
                                                  "-v", "--storage", dir.appendingPathComponent("s.json").path],
                              timeout: 90, environment: ["HOME": dir.path])
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        #expect(r.stderr.contains("AirPlay 2 realtime, NTP timing (model AudioAccessory5,1"), "\(r.stderr.suffix(3000))")
        #expect(r.stdout.contains("Streamed 0:10 to 127.0.0.1:\(port) (AirPlay 2, alac,"), "\(r.stdout)")
        #expect(r.stdout.contains("realtime NTP)"), "\(r.stdout)")
        _ = try await pod.wait(timeout: 30)
    }

    /// `--start 0:04`: the decoder's first 4 s are skipped: the receiver plays the source from
    /// frame 4 × 44100 on, bit-exact, and the summary counts the 6 s sent.
    @Test func startPositionSkipsTheBeginning() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "1",
                                                "--no-advertise"])
        defer { pod.kill() }
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("listening on") }
        guard let range = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[range].split(separator: ":")[1]) else { throw TestFailure("no port in: \(out)") }
        let r = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)", "--latency", "500",
                                                  "--start", "0:04", "--storage", dir.appendingPathComponent("s.json").path],
                              timeout: 90, environment: ["HOME": dir.path])
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("Streamed 0:06 to 127.0.0.1:\(port)"), "\(r.stdout)")
        _ = try await pod.wait(timeout: 30)
        let source = try await referencePCM(Self.sample)
        try StreamTimingCLITests.expectWholeSource(wav, source: Array(source[(4 * 44_100 * 4)...]))
    }

    /// `atv stream --timing ptp` to `atv simulate homepod --address 127.0.0.2` (its PTP follower
    /// there too, following the RTSP peer, 127.0.0.1, where our master runs), both in a network
    /// namespace of their own (UDP 319/320 are per namespace; other programs on the host may hold
    /// them): the stream takes realtime PTP, -v and the summary say so, the receiver followed our
    /// clock (an offset from its samples), anchored the stream on our 0xD7 time announces, placed
    /// every packet on our timeline, and wrote the audio bit-exact. Also with the strict
    /// shairport-sync-like profile (clock valid only 400 ms after lock, anchors before refused,
    /// frames without a valid anchor dropped): audio waits `ptpClockSettle`, so none is lost.
    @Test(arguments: [("homepod", "file"), ("shairport-ap2", "file"), ("homepod", "stdin")])
    func forcedPTPStreamsInItsOwnNamespace(profile: String, input: String) async throws {
        let dir = try TestEnv.tempDir()
        let atv = try TestEnv.atv()
        // From a file, or from stdin: WAV that ffmpeg writes to a pipe (`atv stream -`).
        let (feed, source) = input == "stdin"
            ? ("ffmpeg -hide_banner -loglevel error -i '\(Self.sample)' -f wav - | ", "-")
            : ("", "'\(Self.sample)'")
        let script = """
        set -u
        cd '\(dir.path)'
        ip link set lo up
        '\(atv)' simulate homepod --address 127.0.0.2 --port 7000 --profile \(profile) --output pod.wav --sessions 1 \\
          --no-advertise > pod.out 2>&1 &
        pod=$!
        for i in $(seq 600); do grep -q 'listening on' pod.out && break; sleep 0.1; done
        \(feed)HOME='\(dir.path)' '\(atv)' stream \(source) --host 127.0.0.2 --port 7000 --timing ptp -v \\
          --storage s.json > stream.out 2> stream.err
        echo $? > stream.rc
        for i in $(seq 300); do kill -0 $pod 2>/dev/null || break; sleep 0.1; done
        kill $pod 2>/dev/null
        true
        """
        let r = try await run("/usr/bin/unshare", ["--net", "/bin/bash", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        func file(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        let err = file("stream.err"), out = file("stream.out"), pod = file("pod.out")
        #expect(file("stream.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(err.suffix(2000))")
        #expect(err.contains("AirPlay 2 realtime, PTP timing (forced by --timing ptp)"), "\(err.suffix(3000))")
        #expect(out.contains("Streamed 0:10 to 127.0.0.2:7000 (AirPlay 2, alac,") && out.contains("realtime PTP)"), "\(out)")
        #expect(pod.contains("timing: PTP"), "\(pod)")
        // "ptp: master 127.0.0.1, state …, grandmaster …, offset N ns, samples S, time announces T,
        // anchors rejected R, packets placed P, …"
        let ptp = try #require(pod.split(separator: "\n").first { $0.contains("ptp: master") }.map(String.init), "\(pod)")
        #expect(ptp.contains("ptp: master 127.0.0.1,"), "\(ptp)")
        func number(after label: String) -> Int? {
            guard let r = ptp.range(of: label + " ") else { return nil }
            return Int(ptp[r.upperBound...].prefix { $0 == "-" || $0.isNumber })
        }
        #expect(number(after: "offset") != nil, "the receiver reports no offset: \(ptp)")
        #expect((number(after: "samples") ?? 0) > 10, "\(ptp)")
        #expect((number(after: "time announces") ?? 0) >= 10, "\(ptp)")
        #expect((number(after: "packets placed") ?? 0) >= 1250, "\(ptp)")
        // Audio waits until the receiver trusts our clock: no anchor refused, no frame dropped.
        #expect(number(after: "anchors rejected") == 0, "\(ptp)")
        #expect(!ptp.contains("frames dropped without a valid clock"), "\(ptp)")
        print("\(profile) \(input): \(ptp)")
        try StreamTimingCLITests.expectWholeSource(dir.appendingPathComponent("pod.wav").path, source: try await referencePCM(Self.sample))
    }

    /// `atv stream --timing ptp --buffered on` to `atv simulate homepod --address 127.0.0.2` in a
    /// namespace of its own (both profiles): buffered PTP (type 103 over TCP), -v and the summary
    /// say so, the receiver anchored the stream by SETRATEANCHORTIME, dropped no packet for its
    /// SSRC and wrote the audio bit-exact. The strict profile answers 400 to SETRATEANCHORTIME
    /// until it has measured our clock: the sender's retry brings a 200.
    @Test(arguments: [("homepod", "file"), ("shairport-ap2", "file"), ("homepod", "stdin")])
    func bufferedPTPStreamsInItsOwnNamespace(profile: String, input: String) async throws {
        let dir = try TestEnv.tempDir()
        let atv = try TestEnv.atv()
        // From a file, or from stdin: WAV that ffmpeg writes to a pipe (`atv stream -`).
        let (feed, source) = input == "stdin"
            ? ("ffmpeg -hide_banner -loglevel error -i '\(Self.sample)' -f wav - | ", "-")
            : ("", "'\(Self.sample)'")
        let script = """
        set -u
        cd '\(dir.path)'
        ip link set lo up
        '\(atv)' simulate homepod --address 127.0.0.2 --port 7000 --profile \(profile) --output pod.wav --sessions 1 \\
          --no-advertise > pod.out 2>&1 &
        pod=$!
        for i in $(seq 600); do grep -q 'listening on' pod.out && break; sleep 0.1; done
        \(feed)HOME='\(dir.path)' '\(atv)' stream \(source) --host 127.0.0.2 --port 7000 --timing ptp --buffered on -v \\
          --storage s.json > stream.out 2> stream.err
        echo $? > stream.rc
        for i in $(seq 300); do kill -0 $pod 2>/dev/null || break; sleep 0.1; done
        kill $pod 2>/dev/null
        true
        """
        let r = try await run("/usr/bin/unshare", ["--net", "/bin/bash", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        func file(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        let err = file("stream.err"), out = file("stream.out"), pod = file("pod.out")
        #expect(file("stream.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(err.suffix(2000))")
        #expect(err.contains("AirPlay 2 buffered, PTP timing (forced by --buffered on)"), "\(err.suffix(3000))")
        #expect(out.contains("Streamed 0:10 to 127.0.0.2:7000 (AirPlay 2, alac,") && out.contains("buffered PTP, ALAC 44.1 kHz 16-bit stereo)"), "\(out)")
        let ptp = try #require(pod.split(separator: "\n").first { $0.contains("ptp: master") }.map(String.init), "\(pod)")
        func number(after label: String) -> Int? {
            guard let r = ptp.range(of: label + " ") else { return nil }
            return Int(ptp[r.upperBound...].prefix { $0 == "-" || $0.isNumber })
        }
        #expect((number(after: "packets placed") ?? 0) >= 1250, "\(ptp)")
        #expect(!ptp.contains("dropped for their SSRC"), "\(ptp)")
        #expect(!ptp.contains("frames dropped without a valid clock"), "\(ptp)")
        if profile == "shairport-ap2" {
            // 400 until the receiver measured our clock, then 200 (the sender retried).
            #expect(err.contains("SETRATEANCHORTIME answered 400"), "\(err.suffix(3000))")
        }
        print("\(profile) \(input): \(ptp)")
        try StreamTimingCLITests.expectWholeSource(dir.appendingPathComponent("pod.wav").path, source: try await referencePCM(Self.sample))
    }

    /// A buffered receiver that stops reading the data connection for good (after 200 packets)
    /// while it still answers RTSP: `atv stream` exits non-zero with one line naming the
    /// receiver's buffered audio port, within the write deadline (at most a window plus 3 s), and
    /// the session ends (the pod's only session ended and it exited by itself; that TEARDOWN is
    /// sent is checked in-process, AirPlay2BufferedStallTests).
    @Test func bufferedReceiverThatStopsReadingIsOneLineAndNonZeroExit() async throws {
        let dir = try TestEnv.tempDir()
        let atv = try TestEnv.atv()
        let script = """
        set -u
        cd '\(dir.path)'
        ip link set lo up
        '\(atv)' simulate homepod --address 127.0.0.2 --port 7000 --output pod.wav --sessions 1 --stop-reading-after 200 \\
          --no-advertise > pod.out 2>&1 &
        pod=$!
        for i in $(seq 600); do grep -q 'listening on' pod.out && break; sleep 0.1; done
        start=$(date +%s%N)
        HOME='\(dir.path)' '\(atv)' stream '\(Self.sample)' --host 127.0.0.2 --port 7000 --timing ptp --buffered on \\
          --storage s.json > stream.out 2> stream.err
        echo $? > stream.rc
        echo $(( ($(date +%s%N) - start) / 1000000 )) > stream.ms
        for i in $(seq 100); do kill -0 $pod 2>/dev/null || break; sleep 0.1; done
        kill -0 $pod 2>/dev/null && echo running > pod.state
        kill $pod 2>/dev/null
        true
        """
        let r = try await run("/usr/bin/unshare", ["--net", "/bin/bash", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        func file(_ name: String) -> String {
            ((try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let err = file("stream.err")
        #expect(file("stream.rc") != "0" && !file("stream.rc").isEmpty, "rc \(file("stream.rc")): \(err)")
        #expect(err.split(separator: "\n").count == 1, "stderr should be one line: \(err)")
        #expect(err.hasPrefix("atv: error: timed out: the receiver's buffered audio port 127.0.0.2:")
                && err.contains("stopped taking audio: nothing accepted for"), "\(err)")
        let ms = Int(file("stream.ms")) ?? .max
        #expect(ms < 30_000, "took \(ms) ms")
        // The session ended: the pod exited by itself after its only session.
        #expect(file("pod.state").isEmpty, "the pod still waited for its session to end: \(file("pod.out"))")
        print("stop reading: \(ms) ms: \(err)")
    }

    /// `atv stream --timing ptp --buffered on` to `atv simulate homepod --buffered-formats aac` (its
    /// /info lists only AAC-LC 44.1 kHz for buffer streams and its stream SETUP refuses others), in
    /// a namespace of its own: the sender picks AAC-LC (-v and the summary say so), every packet the
    /// receiver got has SSRC 0x16000000, all of them play by the anchor (none dropped, flushed or
    /// late), the first (the encoder's priming) muted; the decoded audio is the whole source,
    /// starting exactly one 1024-frame block after the first, within the lossy bound: SNR ≥ 25 dB
    /// over the whole source (40.1 dB measured with FFmpeg 5.1's encoder at 256 kbit/s on this
    /// arpeggio; a block out of place, a wrong scale or swapped channels ends near or below 0 dB).
    @Test func bufferedPTPPicksAACForAnAACOnlyReceiver() async throws {
        let dir = try TestEnv.tempDir()
        let atv = try TestEnv.atv()
        let script = """
        set -u
        cd '\(dir.path)'
        ip link set lo up
        '\(atv)' simulate homepod --address 127.0.0.2 --port 7000 --buffered-formats aac --output pod.wav --sessions 1 \\
          --no-advertise > pod.out 2>&1 &
        pod=$!
        for i in $(seq 600); do grep -q 'listening on' pod.out && break; sleep 0.1; done
        HOME='\(dir.path)' '\(atv)' stream '\(Self.sample)' --host 127.0.0.2 --port 7000 --timing ptp --buffered on -v \\
          --storage s.json > stream.out 2> stream.err
        echo $? > stream.rc
        for i in $(seq 300); do kill -0 $pod 2>/dev/null || break; sleep 0.1; done
        kill $pod 2>/dev/null
        true
        """
        let r = try await run("/usr/bin/unshare", ["--net", "/bin/bash", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        func file(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        let err = file("stream.err"), out = file("stream.out"), pod = file("pod.out")
        #expect(file("stream.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(err.suffix(2000))")
        #expect(err.contains("buffered audio format: AAC-LC 44.1 kHz stereo, SSRC 0x16000000 (the receiver lists it, not ALAC 44.1 kHz 16-bit, for buffered streams; /info bufferStream 0x400000: AAC-LC 44.1 kHz stereo)"),
                "\(err.suffix(3000))")
        #expect(out.contains("Streamed 0:10 to 127.0.0.2:7000 (AirPlay 2, aac,") && out.contains("buffered PTP, AAC-LC 44.1 kHz stereo)"), "\(out)")
        #expect(pod.contains("ct 4, codec AAC-LC 44.1 kHz stereo"), "\(pod)")
        let sentText = try #require(out.range(of: #"aac, (\d+) packets"#, options: .regularExpression).map { String(out[$0]) }, "\(out)")
        let sent = try #require(Int(sentText.dropFirst(5).prefix { $0.isNumber }))
        let ptp = try #require(pod.split(separator: "\n").first { $0.contains("ptp: master") }.map(String.init), "\(pod)")
        func number(after label: String) -> Int? {
            guard let r = ptp.range(of: label + " ") else { return nil }
            return Int(ptp[r.upperBound...].prefix { $0 == "-" || $0.isNumber })
        }
        let source = try await referencePCM(Self.sample)
        let sourceFrames = source.count / 4
        // One unit per 1024 source frames (the last padded) plus the encoder's priming unit.
        #expect(sent == (sourceFrames + 1023) / 1024 + 1, "\(out)")
        // Every packet the receiver got carries the AAC-LC 44.1 kHz code, and every one played.
        #expect(number(after: "SSRC 0x16000000 packets") == sent, "\(ptp)")
        #expect(ptp.components(separatedBy: "SSRC 0x").count == 2, "another SSRC: \(ptp)")
        #expect(number(after: "packets placed") == sent, "\(ptp)")
        #expect(number(after: "first blocks muted") == 1, "\(ptp)")
        #expect(!ptp.contains("dropped for their SSRC") && !ptp.contains("flushes") && !ptp.contains("frames dropped"), "\(ptp)")
        print("aac: \(ptp)")
        try StreamTimingCLITests.expectLossyWholeSource(dir.appendingPathComponent("pod.wav").path, source: source,
                                                        expectedOffsetFrames: 1024, minimumSNR: 25)
    }

    /// `--codec alac` forced to a receiver that lists only AAC for buffer streams: the stream
    /// SETUP names ALAC (`-v` says the receiver does not list it), the receiver refuses it, and
    /// the stream ends with one error line within the test's bound.
    @Test func forcedALACToAnAACOnlyReceiverFailsInOneLine() async throws {
        let dir = try TestEnv.tempDir()
        let atv = try TestEnv.atv()
        let script = """
        set -u
        cd '\(dir.path)'
        ip link set lo up
        '\(atv)' simulate homepod --address 127.0.0.2 --port 7000 --buffered-formats aac --output pod.wav --sessions 1 \\
          --no-advertise > pod.out 2>&1 &
        pod=$!
        for i in $(seq 600); do grep -q 'listening on' pod.out && break; sleep 0.1; done
        HOME='\(dir.path)' '\(atv)' stream '\(Self.sample)' --host 127.0.0.2 --port 7000 --timing ptp --buffered on --codec alac -v \\
          --storage s.json > stream.out 2> stream.err
        echo $? > stream.rc
        for i in $(seq 300); do kill -0 $pod 2>/dev/null || break; sleep 0.1; done
        kill $pod 2>/dev/null
        true
        """
        let r = try await run("/usr/bin/unshare", ["--net", "/bin/bash", "-c", script], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        func file(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        let err = file("stream.err")
        #expect(file("stream.rc").trimmingCharacters(in: .whitespacesAndNewlines) != "0", "\(err.suffix(2000))")
        #expect(err.contains("buffered audio format: ALAC 44.1 kHz 16-bit stereo, SSRC 0xFACE (forced by --codec alac (the receiver does not list it for buffered streams)"),
                "\(err.suffix(3000))")
        let errors = err.split(separator: "\n").filter { $0.hasPrefix("atv: error:") }
        #expect(errors.count == 1 && errors[0].contains("audio stream SETUP rejected"), "\(err.suffix(3000))")
        print("forced ALAC: \(errors.first ?? "-")")
    }

    /// The capture holds the whole lossy-coded source starting `expectedOffsetFrames` in (the lag
    /// of best correlation within ±4096 frames of it), silence before it, with an SNR of at least
    /// `minimumSNR` dB over the whole source.
    static func expectLossyWholeSource(_ wav: String, source: [UInt8], expectedOffsetFrames: Int, minimumSNR: Double) throws {
        let captured = try wavPCM(wav)
        func sample(_ b: [UInt8], _ i: Int) -> Double { Double(Int16(bitPattern: UInt16(b[2 * i]) | UInt16(b[2 * i + 1]) << 8)) }
        let frames = source.count / 4
        try #require(captured.count >= (expectedOffsetFrames + frames) * 4, "capture too short: \(captured.count / 4) frames")
        // The loudest 4096-frame stretch of the source's left channel, for the correlation.
        var at = 0, loudest = 0.0
        for start in stride(from: 0, to: frames - 4096, by: 4096) {
            let e = stride(from: start, to: start + 4096, by: 4).reduce(0.0) { $0 + abs(sample(source, 2 * $1)) }
            if e > loudest { loudest = e; at = start }
        }
        func correlation(_ offset: Int) -> Double {
            var sum = 0.0
            for i in at..<(at + 4096) where (i + offset) * 4 + 3 < captured.count {
                sum += sample(source, 2 * i) * sample(captured, 2 * (i + offset))
            }
            return sum
        }
        let candidates = max(0, expectedOffsetFrames - 4096)...(expectedOffsetFrames + 4096)
        let offset = candidates.max { correlation($0) < correlation($1) } ?? -1
        #expect(offset == expectedOffsetFrames, "the source starts at frame \(offset) of the capture")
        #expect(captured[..<(expectedOffsetFrames * 4)].allSatisfy { $0 == 0 }, "only silence may precede the source")
        var signal = 0.0, noise = 0.0
        for i in 0..<(frames * 2) {
            let s = sample(source, i), d = sample(captured, 2 * expectedOffsetFrames + i)
            signal += s * s
            noise += (d - s) * (d - s)
        }
        let snr = 10 * log10(signal / max(noise, 1))
        print("lossy capture: source at frame \(offset), SNR \(String(format: "%.1f", snr)) dB over \(frames) frames")
        #expect(snr >= minimumSNR, "SNR \(snr) dB")
    }

    /// The capture holds the whole source at one place, only silence around it.
    static func expectWholeSource(_ wav: String, source: [UInt8]) throws {
        let captured = try wavPCM(wav)
        var s0 = 0
        while s0 + 4 <= source.count, source[s0..<(s0 + 4)].allSatisfy({ $0 == 0 }) { s0 += 4 }
        let found = try #require(findPCM(source[s0..<min(source.count, s0 + 8192)], in: captured), "source not found in the capture")
        let offset = found - s0
        try #require(offset >= 0 && captured.count >= offset + source.count, "capture too short")
        #expect(captured[..<offset].allSatisfy { $0 == 0 }, "only silence may precede the source")
        #expect(captured[offset..<(offset + source.count)].elementsEqual(source), "capture differs from the source")
        #expect(captured[(offset + source.count)...].allSatisfy { $0 == 0 }, "only silence may follow the source")
    }
}
