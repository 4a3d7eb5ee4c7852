import ATVTestSupport
import ATVCore
import Foundation
import Synchronization
import Testing
@testable import ATVSimulator

/// Proof by the reference sender: pyatv 0.18.0 takes its AirPlay 2 path (transient pairing,
/// encrypted RTSP, event channel, ChaCha20-Poly1305 audio) to the virtual HomePod, and the WAV the
/// HomePod writes equals the source PCM bit for bit.
///
/// `--manual` carries the HomePod's `_raop._tcp` TXT through `--service-properties`: the features
/// word has bits 38/48, so pyatv picks AirPlay 2 and transient credentials by itself (no setting).
@Suite(.serialized) struct PyatvHomePodTests {
    static func stream(file: URL, pod: VirtualHomePod, in dir: URL) async throws -> ProcessResult {
        let atvremote = try Harness.requireAtvremote()
        let args = ["--debug", "--manual", "--address", "127.0.0.1", "--port", String(pod.port),
                    "--protocol", "raop", "--id", pod.configuration.deviceID,
                    "--service-properties", pod.raopServicePropertiesArgument(),
                    "stream_file=\(file.path)"]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        return try await Harness.run(atvremote, args, environment: env, in: dir, timeout: .seconds(90))
    }

    static func describe(_ r: ProcessResult) -> String {
        "atvremote exit \(r.status)\(r.timedOut ? " (timed out)" : "")\n--- stdout\n\(r.stdout)\n--- stderr (tail)\n\(r.stderr.suffix(4000))"
    }

    @Test func pyatvStreamsOverAirPlay2BitExact() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = try await Harness.makeFixture(seconds: 4, ext: "flac",
                                                    metadata: ["title": "Pod Title", "artist": "Pod Artist", "album": "Pod Album"], in: dir)
        let source = try await Harness.decodePCM(fixture, in: dir)
        let out = dir.appendingPathComponent("homepod.wav")
        let pod = try await VirtualHomePod.start(.init(outputPath: out.path, requireUserAgent: true))

        let result = try await Self.stream(file: fixture, pod: pod, in: dir)
        #expect(result.status == 0 && !result.timedOut, "\(Self.describe(result))")
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await pod.stop()
        print("pyatv → HomePod report:\n\(report)")

        // AirPlay 2, not RAOP: transient pairing, everything after it encrypted, no ANNOUNCE.
        #expect(report.pairings == [.transient])
        #expect(report.infoRejected == 0)
        #expect(!report.requests.contains { $0.contains("ANNOUNCE") })
        let afterPairing = report.requests.drop { !$0.hasPrefix("enc ") }
        #expect(afterPairing.allSatisfy { $0.hasPrefix("enc ") }, "requests: \(report.requests)")
        #expect(afterPairing.first == "enc SETUP")
        #expect(report.requests.filter { $0 == "enc SETUP" }.count == 2)
        #expect(report.requests.contains("enc RECORD") && report.requests.contains("enc FLUSH") && report.requests.contains("enc TEARDOWN"))
        #expect(report.timingProtocol == "NTP")
        #expect(report.eventChannel == .answered || report.eventChannel == .closed)
        #expect(report.eventRepliesReceived >= 1)
        #expect(report.streamType == 96 && report.compressionType == 1 && report.audioFormat == 0x800)
        #expect(report.codec == "L16/44100/2")
        #expect(report.metadata == MediaMetadata(title: "Pod Title", artist: "Pod Artist", album: "Pod Album"))
        #expect(report.progress != nil)  // md=0,1,2: progress and text metadata (pyatv's AP2 path sends no volume unless asked)
        #expect(report.feedbacks >= 1)
        #expect(report.decryptFailures == 0)
        #expect(report.packetsDecrypted == report.packetsReceived)
        #expect(report.unrecoveredPackets == 0)
        #expect(report.syncPacketsReceived >= 1)
        #expect(report.timingRequestsSent >= 1 && report.timingRepliesReceived >= 1)

        let captured = try Harness.wavPCM(out)
        let cmp = try Harness.compare(source: source, captured: captured)
        print("pyatv → HomePod WAV: source \(cmp.sourceFrames) frames, captured \(cmp.capturedFrames), offset \(cmp.offsetFrames), packets \(report.packetsReceived)")
        #expect(cmp.firstMismatchFrame == nil, "PCM differs from frame \(cmp.firstMismatchFrame ?? -1) (offset \(cmp.offsetFrames))")
        #expect(cmp.offsetFrames == 0)
        #expect(cmp.trailingNonZeroFrames == 0)
    }

    /// Every 29th audio datagram is dropped on arrival (the first included): the HomePod asks pyatv's
    /// AirPlay 2 path for them on its control port and pyatv resends the encrypted packets.
    @Test func pyatvRetransmitsLostEncryptedPackets() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = try await Harness.makeFixture(seconds: 3, ext: "wav", in: dir)
        let source = try await Harness.decodePCM(fixture, in: dir)
        let out = dir.appendingPathComponent("homepod.wav")
        let dropped = Mutex(0)
        let pod = try await VirtualHomePod.start(.init(outputPath: out.path, dropAudioPacket: { index, _ in
            guard index % 29 == 0 else { return false }
            dropped.withLock { $0 += 1 }
            return true
        }))
        let result = try await Self.stream(file: fixture, pod: pod, in: dir)
        #expect(result.status == 0 && !result.timedOut, "\(Self.describe(result))")
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await pod.stop()

        let drops = dropped.withLock { $0 }
        print("pyatv AP2 loss: dropped \(drops), requests \(report.retransmitRequestsSent), responses \(report.retransmitResponsesReceived), recovered \(report.packetsRecovered), unrecovered \(report.unrecoveredPackets)")
        #expect(drops >= 10)
        #expect(report.retransmitResponsesReceived >= drops)
        #expect(report.packetsRecovered == drops)
        #expect(report.unrecoveredPackets == 0)
        #expect(report.decryptFailures == 0)
        let cmp = try Harness.compare(source: source, captured: try Harness.wavPCM(out))
        #expect(cmp.firstMismatchFrame == nil, "PCM differs from frame \(cmp.firstMismatchFrame ?? -1)")
        #expect(cmp.offsetFrames == 0)
    }
    /// pyatv → UDP loss relay (scripts/peers/udp-loss-relay.py, 5 % of audio datagrams dropped,
    /// seeded) → the HomePod's data port. The stream SETUP reply names the relay's port; retransmit
    /// requests and answers bypass it on the control ports. pyatv's AirPlay 2 path answers them, so
    /// the capture must be bit-exact.
    @Test func pyatvThroughALossRelay() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = try await Harness.makeFixture(seconds: 4, ext: "wav", in: dir)
        let source = try await Harness.decodePCM(fixture, in: dir)
        let out = dir.appendingPathComponent("homepod.wav")
        let audioPort = try TestSocket.udp().port  // free now; the socket closes right away

        let relay = try Child("/usr/bin/python3", [TestEnv.root.appendingPathComponent("scripts/peers/udp-loss-relay.py").path,
                                                  "--listen", "0", "--target", "127.0.0.1:\(audioPort)", "--loss", "0.05", "--seed", "11",
                                                  "--only-audio", "--max-seconds", "90"])
        defer { relay.kill() }
        let firstLine = try await relay.waitForOutput(timeout: 20) { $0.contains("\n") }
        guard let obj = try JSONSerialization.jsonObject(with: Data(firstLine.split(separator: "\n").first.map { Data($0.utf8) } ?? Data())) as? [String: Any],
              let relayPort = obj["listening"] as? Int else { throw HarnessError("relay did not start: \(firstLine)") }

        let pod = try await VirtualHomePod.start(.init(outputPath: out.path, audioPort: audioPort, advertisedAudioPort: relayPort))
        let result = try await Self.stream(file: fixture, pod: pod, in: dir)
        #expect(result.status == 0 && !result.timedOut, "\(Self.describe(result))")
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await pod.stop()
        relay.kill()

        let captured = try Harness.wavPCM(out)
        let frames = source.count / 4
        var equal = 0
        for f in 0 ..< frames where (f + 1) * 4 <= captured.count && source[(f * 4) ..< (f * 4 + 4)] == captured[(f * 4) ..< (f * 4 + 4)] {
            equal += 1
        }
        let fraction = Double(equal) / Double(frames)
        print("pyatv AP2 via loss relay: requests \(report.retransmitRequestsSent) (\(report.packetsRequested) packets), responses \(report.retransmitResponsesReceived), recovered \(report.packetsRecovered), unrecovered \(report.unrecoveredPackets), bit-exact \(String(format: "%.4f", fraction * 100)) %")
        #expect(report.packetsRequested >= 10, "the relay should have dropped some audio")
        #expect(report.packetsRecovered >= 10)
        #expect(report.decryptFailures == 0)
        // Bit-exact (README): every frame, no packet left unrecovered.
        #expect(report.unrecoveredPackets == 0, "\(report)")
        #expect(fraction == 1.0, "\(equal) of \(frames) frames equal")
    }
}
