import ATVCore
import ATVTestSupport
import Foundation
import Synchronization
import Testing
@testable import ATVSimulator

/// Proof by the reference sender: pyatv 0.18.0's `atvremote stream_file` streams to the virtual
/// speaker, and what the speaker writes must equal the source PCM bit for bit.
@Suite(.serialized) struct PyatvStreamTests {
    private func stream(file: URL, speaker: VirtualSpeaker, properties: String? = nil,
                        in dir: URL) async throws -> ProcessResult {
        let atvremote = try Harness.requireAtvremote()
        var args = ["--debug", "--manual", "--address", "127.0.0.1", "--port", String(speaker.port),
                    "--protocol", "raop", "--id", "AA:BB:CC:DD:EE:FF"]
        if let properties { args += ["--service-properties", properties] }
        args.append("stream_file=\(file.path)")
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        return try await Harness.run(atvremote, args, environment: env, in: dir, timeout: .seconds(60))
    }

    private func describe(_ r: ProcessResult) -> String {
        "atvremote exit \(r.status)\(r.timedOut ? " (timed out)" : "")\n--- stdout\n\(r.stdout)\n--- stderr (tail)\n\(r.stderr.suffix(4000))"
    }

    @Test func pyatvStreamsWAVBitExact() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = try await Harness.makeFixture(seconds: 4, ext: "wav", in: dir)
        let source = try await Harness.decodePCM(fixture, in: dir)
        let out = dir.appendingPathComponent("captured.wav")
        let speaker = try await VirtualSpeaker.start(.init(outputPath: out.path))

        let result = try await stream(file: fixture, speaker: speaker, in: dir)
        #expect(result.status == 0 && !result.timedOut, "\(describe(result))")
        let report = try await speaker.waitForSessionEnd(timeout: .seconds(10))
        await speaker.stop()

        // pyatv's exact request sequence for a manual service with no TXT properties: no
        // auth-setup (no `et`/`am`), no metadata (no `md`), volume sent right after SETUP.
        let methods = report.requests.map { r in
            r.hasPrefix("GET ") || r.hasPrefix("POST ") ? r : String(r.split(separator: " ").first ?? "")
        }
        #expect(methods == ["GET /info", "ANNOUNCE", "SETUP", "SET_PARAMETER", "POST /feedback", "RECORD", "FLUSH", "TEARDOWN"],
                "requests: \(report.requests)")
        #expect(report.codec == "L16/44100/2")
        #expect(report.volume != nil)
        #expect(report.metadata == nil)
        #expect(report.unrecoveredPackets == 0)
        #expect(report.decodeErrors == 0)
        #expect(report.syncPacketsReceived >= 1)
        #expect(report.timingRequestsSent >= 1)
        #expect(report.timingRepliesReceived >= 1)
        let sourceFrames = source.count / 4
        // Source packets (last one zero-padded) + ≥ 66150 frames of trailing padding.
        let minPackets = (sourceFrames + 351) / 352 + 66150 / 352
        #expect(report.packetsReceived >= minPackets, "packets \(report.packetsReceived) < \(minPackets)")
        #expect(report.framesWritten == report.packetsReceived * 352)

        let captured = try Harness.wavPCM(out)
        #expect(captured.count / 4 == report.framesWritten)
        let cmp = try Harness.compare(source: source, captured: captured)
        print("pyatv WAV: volume \(report.volume ?? .nan) dB, source \(cmp.sourceFrames) frames, captured \(cmp.capturedFrames) frames, offset \(cmp.offsetFrames), packets \(report.packetsReceived), sync \(report.syncPacketsReceived), timing \(report.timingRepliesReceived)")
        #expect(cmp.firstMismatchFrame == nil, "PCM differs from frame \(cmp.firstMismatchFrame ?? -1) (offset \(cmp.offsetFrames))")
        #expect(cmp.offsetFrames == 0)
        #expect(cmp.trailingNonZeroFrames == 0)
    }
}

extension PyatvStreamTests {
    /// FLAC with tags, a service advertising text/artwork/progress metadata (`md=0,1,2`), and the
    /// speaker dropping every 37th audio packet (the first one included: FLUSH's `RTP-Info` names it): the gaps must be detected, re-requested from pyatv
    /// and filled by its retransmissions, so the capture is still bit-exact.
    @Test func pyatvStreamsFLACWithMetadataThroughLoss() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = try await Harness.makeFixture(
            seconds: 3, ext: "flac", metadata: ["title": "Sim Title", "artist": "Sim Artist", "album": "Sim Album"], in: dir)
        let source = try await Harness.decodePCM(fixture, in: dir)
        let out = dir.appendingPathComponent("captured.wav")
        let dropped = Mutex(0)
        let config = VirtualSpeaker.Configuration(outputPath: out.path, dropAudioPacket: { index, _ in
            guard index % 37 == 0 else { return false }  // the very first packet too
            dropped.withLock { $0 += 1 }
            return true
        })
        let speaker = try await VirtualSpeaker.start(config)
        let events = speaker.events()

        let result = try await stream(file: fixture, speaker: speaker, properties: ":md=0,1,2:et=0", in: dir)
        #expect(result.status == 0 && !result.timedOut, "\(describe(result))")
        let report = try await speaker.waitForSessionEnd(timeout: .seconds(10))
        await speaker.stop()

        #expect(report.metadata == MediaMetadata(title: "Sim Title", artist: "Sim Artist", album: "Sim Album"))
        #expect(report.progress != nil)
        let drops = dropped.withLock { $0 }
        #expect(drops >= 10)
        #expect(report.retransmitRequestsSent >= drops)
        #expect(report.retransmitResponsesReceived >= drops)
        #expect(report.packetsRecovered == drops)
        #expect(report.unrecoveredPackets == 0)

        let captured = try Harness.wavPCM(out)
        let cmp = try Harness.compare(source: source, captured: captured)
        print("pyatv FLAC+loss: dropped \(drops), requests \(report.retransmitRequestsSent), recovered \(report.packetsRecovered), unrecovered \(report.unrecoveredPackets), packets \(report.packetsReceived), offset \(cmp.offsetFrames), source \(cmp.sourceFrames) frames, captured \(cmp.capturedFrames); progress \(report.progress ?? "-")")
        #expect(cmp.firstMismatchFrame == nil, "PCM differs from frame \(cmp.firstMismatchFrame ?? -1) (offset \(cmp.offsetFrames))")
        #expect(cmp.offsetFrames == 0)

        // The event stream saw the same things, ending with the session end.
        var seen: [SpeakerEvent] = []
        for await e in events {
            seen.append(e)
            if case .sessionEnded = e { break }
        }
        #expect(seen.contains(.metadata(MediaMetadata(title: "Sim Title", artist: "Sim Artist", album: "Sim Album"))))
        #expect(seen.contains(.announced(codec: "L16/44100/2")))
        #expect(seen.contains { if case .volume = $0 { true } else { false } })
    }
}
