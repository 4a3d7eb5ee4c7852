import ATVTestSupport
import Foundation
import Testing

/// `atv stream` against `atv simulate speaker`, both as users run them.
@Suite(.serialized) struct StreamCLITests {
    /// Start a virtual speaker that exits after one stream; returns it and its port.
    func startSpeaker(_ wav: String) async throws -> (Child, Int) {
        let speaker = try Child(try TestEnv.atv(), ["simulate", "speaker", "--port", "0", "--output", wav, "--sessions", "1", "--no-advertise"])
        let line = try await speaker.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        guard let r = line.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(line[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(line)") }
        return (speaker, port)
    }

    /// Until the speaker has written half a second of audio to `wav` (it writes as it plays): the
    /// stream is under way. A deadline instead of a fixed sleep.
    func waitForAudio(at wav: String, _ sender: Child) async throws {
        let halfSecond = 44 + 44_100 * 4 / 2
        guard await poll(timeout: .seconds(20), {
            ((try? FileManager.default.attributesOfItem(atPath: wav)[.size] as? Int) ?? 0) >= halfSecond
        }) else { throw TestFailure("no audio reached the speaker within 20 s; sender: \(sender.describe())") }
    }

    func expectBitExact(_ wav: String, source: [UInt8]) throws {
        let captured = try wavPCM(wav)
        let offset = try #require(findPCM(source.prefix(4096), in: captured), "start of the source not found in the capture")
        // The sender leads in with 9 packets of silence (shairport-sync drops a session's first 9).
        #expect(offset == 9 * 352 * 4, "audio should start right after the 9-packet lead-in")
        #expect(captured[..<offset].allSatisfy { $0 == 0 }, "the lead-in must be silence")
        #expect(captured.count >= offset + source.count)
        #expect(captured[offset..<min(captured.count, offset + source.count)].elementsEqual(source), "capture differs from the source")
        #expect(captured[(offset + source.count)...].allSatisfy { $0 == 0 }, "only silence may follow the source")
    }

    @Test func fileArrivesBitExact() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let r = try await run(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)"], timeout: 40)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("Streamed 0:10"))
        let s = try await speaker.wait(timeout: 30)
        #expect(s.stdout.contains("title=Arpeggio in A artist=swift-atv album=Samples"))
        #expect(s.stdout.contains("unrecovered packets: 0"))
        try expectBitExact(wav, source: try await referencePCM(sample))
    }

    @Test func stdinFromFFmpegArrivesBitExact() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let r = try await sh("ffmpeg -hide_banner -loglevel error -i '\(sample)' -f wav - | '\(try TestEnv.atv())' stream - --host 127.0.0.1 --port \(port) --title Piped", timeout: 40)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let s = try await speaker.wait(timeout: 30)
        #expect(s.stdout.contains("title=Piped"))
        try expectBitExact(wav, source: try await referencePCM(sample))
    }

    @Test func rawPCMOnStdinArrivesBitExact() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let r = try await sh("ffmpeg -hide_banner -loglevel error -i '\(sample)' -t 3 -f s16le - | '\(try TestEnv.atv())' stream - --format s16le:44100:2 --codec pcm --host 127.0.0.1 --port \(port)", timeout: 40)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        _ = try await speaker.wait(timeout: 10)
        let source = try await referencePCM(sample).prefix(3 * 44_100 * 4)
        try expectBitExact(wav, source: Array(source))
    }

    @Test func interruptStopsCleanlyWithTeardown() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sender = try Child(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)"])
        try await waitForAudio(at: wav, sender)
        sender.interrupt()   // SIGINT, as Ctrl-C
        let r = try await sender.wait(timeout: 5)
        #expect(r.status == 130)
        #expect(r.stdout.contains("Stopped after 0:0"), "\(r.stdout)")
        let s = try await speaker.wait(timeout: 5)
        #expect(s.stdout.contains("TEARDOWN"), "the receiver must get a TEARDOWN: \(s.stdout)")
    }

    // MARK: Bad input: one line on stderr, non-zero exit, within 5 s.

    func expectOneLineError(_ r: ProcessResult, containing text: String) {
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr should be one line: \(r.stderr)")
        #expect(r.stderr.hasPrefix("atv: error: "), "stderr: \(r.stderr)")
        #expect(r.stderr.contains(text), "stderr: \(r.stderr)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
    }

    @Test func missingFile() async throws {
        let r = try await run(try TestEnv.atv(), ["stream", "/nonexistent/song.flac", "--host", "127.0.0.1", "--port", "9"], timeout: 10)
        expectOneLineError(r, containing: "/nonexistent/song.flac")
    }

    @Test func nonAudioFile() async throws {
        let r = try await run(try TestEnv.atv(), ["stream", TestEnv.root.appendingPathComponent("Package.swift").path, "--host", "127.0.0.1", "--port", "9"], timeout: 10)
        expectOneLineError(r, containing: "Package.swift")
    }

    /// Several receivers, a file that cannot be opened: the single stream's one line, before any
    /// connection.
    @Test func missingFileToSeveralReceivers() async throws {
        let group = try await run(try TestEnv.atv(), ["stream", "/nonexistent/song.flac", "--host", "127.0.0.1:9", "--host", "127.0.0.1:10"],
                                  timeout: 10)
        expectOneLineError(group, containing: "/nonexistent/song.flac")
        let single = try await run(try TestEnv.atv(), ["stream", "/nonexistent/song.flac", "--host", "127.0.0.1", "--port", "9"], timeout: 10)
        #expect(group.stderr == single.stderr)
        #expect(group.status == single.status)
    }

    /// A file whose audio breaks off after 0.9 s (AAC frames whose payload is all 0xFF: FFmpeg
    /// cannot decode them) streamed to two speakers: one line, the single stream's, not a member
    /// list of the same failure.
    @Test func sourceFailingMidStreamInAGroup() async throws {
        let dir = try TestEnv.tempDir()
        let aac = dir.appendingPathComponent("tone.aac")
        try await Harness.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-ac", "2", "-ar", "44100", "-c:a", "aac",
                                  "-b:a", "128k", "-f", "adts", aac.path], in: dir)
        var bytes = [UInt8](try Data(contentsOf: aac))
        var at = 0, frame = 0
        while at + 7 <= bytes.count, bytes[at] == 0xFF {
            let length = Int(bytes[at + 3] & 3) << 11 | Int(bytes[at + 4]) << 3 | Int(bytes[at + 5]) >> 5
            guard length > 7 else { break }
            if frame >= 40 { for i in (at + 7)..<min(bytes.count, at + length) { bytes[i] = 0xFF } }
            at += length
            frame += 1
        }
        #expect(frame > 300, "ADTS frames found: \(frame)")
        let broken = dir.appendingPathComponent("broken.aac").path
        try Data(bytes).write(to: URL(fileURLWithPath: broken))

        let (a, portA) = try await startSpeaker(dir.appendingPathComponent("a.wav").path)
        let (b, portB) = try await startSpeaker(dir.appendingPathComponent("b.wav").path)
        defer { a.kill(); b.kill() }
        let group = try await run(try TestEnv.atv(), ["stream", broken, "--host", "127.0.0.1:\(portA)", "--host", "127.0.0.1:\(portB)"],
                                  timeout: 30)
        #expect(group.status != 0)
        #expect(group.stderr.hasPrefix("atv: error: ") && group.stderr.split(separator: "\n").count == 1, "stderr: \(group.stderr)")
        #expect(group.stderr.contains("broken.aac") && group.stderr.contains("decod"), "stderr: \(group.stderr)")
        #expect(group.stderr.contains("corrupt") && !group.stderr.contains("Error number"), "no FFmpeg code text: \(group.stderr)")
        #expect(!group.stdout.contains("did not play"), "no member list for the source's failure: \(group.stdout)")
        #expect(group.seconds < 15, "took \(group.seconds) s")

        let (c, portC) = try await startSpeaker(dir.appendingPathComponent("c.wav").path)
        defer { c.kill() }
        let single = try await run(try TestEnv.atv(), ["stream", broken, "--host", "127.0.0.1", "--port", "\(portC)"], timeout: 30)
        #expect(group.stderr == single.stderr, "group: \(group.stderr) single: \(single.stderr)")
        #expect(group.status == single.status)
    }

    @Test func nothingListening() async throws {
        // Port 9 (discard) on loopback: nothing listens there.
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let r = try await run(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "9"], timeout: 10)
        expectOneLineError(r, containing: "127.0.0.1")
    }

    @Test func receiverClosesMidStream() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sender = try Child(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)"])
        try await waitForAudio(at: wav, sender)
        speaker.kill()   // the receiver vanishes: RTSP connection closed, UDP ports gone
        let killedAt = Date()
        let r = try await sender.wait(timeout: 15)
        #expect(Date().timeIntervalSince(killedAt) < 5, "sender noticed after \(Date().timeIntervalSince(killedAt)) s")
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("atv: error: "), "stderr: \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "stderr: \(r.stderr)")
    }

    @Test func garbageReceiver() async throws {
        // A TCP server that answers every request with noise.
        let server = try Child("/usr/bin/python3", ["-c", """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0)); s.listen(1); print(s.getsockname()[1], flush=True)
        c, _ = s.accept(); c.recv(65536); c.sendall(b"\\x00\\xffNOT RTSP AT ALL\\r\\n\\r\\n" * 10)
        import time; time.sleep(10)
        """])
        let out = try await server.waitForOutput(timeout: 5) { !$0.isEmpty && $0.hasSuffix("\n") }
        let port = try #require(Int(out.trimmingCharacters(in: .whitespacesAndNewlines)))
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let r = try await run(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)"], timeout: 10)
        expectOneLineError(r, containing: "receiver")
        #expect(!r.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "control characters reached the terminal")
        server.kill()
    }
}
