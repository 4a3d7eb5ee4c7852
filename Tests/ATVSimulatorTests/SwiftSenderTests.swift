import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVHTTP
import ATVPTP
import ATVRAOP
@testable import ATVSimulator
import ATVTestSupport
import Foundation
import Testing

/// A minimal RTSP client over `TestSocket`.
private final class RTSPClient {
    let socket: TestSocket
    private var parser = RTSPParser()
    private var cseq = 0

    init(port: Int) throws { socket = try TestSocket.tcp(port: port) }

    func exchange(_ method: String, _ uri: String = "rtsp://127.0.0.1/1", headers: [(String, String)] = [],
                  body: [UInt8] = []) async throws -> RTSPResponse {
        cseq += 1
        let request = RTSPRequest(method: method, uri: uri, headers: RTSPHeaders([("CSeq", String(cseq))] + headers), body: body)
        socket.send(request.serialized)
        return try await readResponse()
    }

    func sendRaw(_ bytes: [UInt8]) { socket.send(bytes) }

    func readResponse() async throws -> RTSPResponse {
        while true {
            if let r = try parser.nextResponse() { return r }
            guard let chunk = await socket.receive() else { throw HarnessError("no RTSP response (timeout or closed)") }
            parser.append(chunk)
        }
    }
}

@Suite struct SwiftSenderTests {
    @Test func rtspRequestsAndGarbageNeverCrash() async throws {
        let speaker = try await VirtualSpeaker.start(.init(name: "Test Speaker"))
        defer { Task { await speaker.stop() } }
        let c = try RTSPClient(port: speaker.port)

        let options = try await c.exchange("OPTIONS", "*")
        #expect(options.status == 200)
        #expect(options.headers["Public"]?.contains("ANNOUNCE") == true)
        #expect(options.headers["CSeq"] == "1")

        let info = try await c.exchange("GET", "/info")
        #expect(info.status == 200)
        let plist = try PropertyListSerialization.propertyList(from: Data(info.body), format: nil) as? [String: Any]
        #expect(plist?["name"] as? String == "Test Speaker")
        #expect(info.body.starts(with: Array("bplist00".utf8)))

        #expect(try await c.exchange("FROBNICATE").status == 501)
        #expect(try await c.exchange("POST", "/feedback").status == 200)
        #expect(try await c.exchange("POST", "/auth-setup", body: [1] + [UInt8](repeating: 7, count: 32)).status == 200)
        #expect(try await c.exchange("ANNOUNCE", headers: [("Content-Type", "application/sdp")], body: Array("v=0\r\nnonsense\r\n".utf8)).status == 400)

        let vol = try await c.exchange("SET_PARAMETER", headers: [("Content-Type", "text/parameters")], body: Array("volume: -15.5\r\n".utf8))
        #expect(vol.status == 200)
        #expect(speaker.report().volume == -15.5)
        let get = try await c.exchange("GET_PARAMETER", headers: [("Content-Type", "text/parameters")], body: Array("volume\r\n".utf8))
        #expect(get.status == 200)
        #expect(get.bodyText.contains("volume: -15.5"))

        let art = try await c.exchange("SET_PARAMETER", headers: [("Content-Type", "image/jpeg")], body: [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])
        #expect(art.status == 200)
        #expect(speaker.report().artworkBytes == 7)

        // Random garbage on fresh connections: the speaker answers 400 or waits, but keeps serving.
        let seed = TestSeed.value(default: 0x5917)
        var rng = SplitMix64(seed: seed)
        for i in 0..<30 {
            let g = try TestSocket.tcp(port: speaker.port)
            var junk = randomBytes(Int.random(in: 1...3000, using: &rng), using: &rng)
            if i % 3 == 0 { junk = Array("SETUP x RTSP/1.0\r\nTransport: ;;=;control_port=99999999999;\r\nContent-Length: -5\r\n\r\n".utf8) + junk }
            if i % 3 == 1 { junk = Array("SET_PARAMETER x RTSP/1.0\r\nContent-Type: application/x-dmap-tagged\r\nContent-Length: \(junk.count)\r\n\r\n".utf8) + junk }
            g.send(junk)
            // Whatever it answers is an RTSP response.
            if let answer = await g.receive(timeoutMs: 50) {
                #expect(answer.starts(with: Array("RTSP/1.0 ".utf8)), "seed \(seed) case \(i): \(String(decoding: answer.prefix(40), as: UTF8.self))")
            }
        }
        let again = try RTSPClient(port: speaker.port)
        #expect(try await again.exchange("OPTIONS", "*").status == 200)
    }

    /// An in-process ALAC sender: packets go out reordered and two never go out at all; the
    /// speaker must ask for them on the control port, accept the 0x56 responses, ask for timing,
    /// and write exactly the original PCM.
    @Test func alacStreamWithReorderingAndRetransmission() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("alac.wav")
        let speaker = try await VirtualSpeaker.start(.init(outputPath: out.path, jitter: .init(lossTimeout: 4_000_000_000)))
        defer { Task { await speaker.stop() } }

        // 120 packets of a deterministic two-channel signal.
        let packetCount = 120
        var pcm: [[UInt8]] = []
        var state: UInt32 = 12345
        for p in 0..<packetCount {
            var bytes: [UInt8] = []
            for f in 0..<352 {
                state = state &* 1_103_515_245 &+ 12345
                let left = Int16(truncatingIfNeeded: Int(8000 * sin(Double(p * 352 + f) * 0.05)))
                let right = Int16(truncatingIfNeeded: Int(state >> 17) - 16384)
                for s in [left, right] { let u = UInt16(bitPattern: s); bytes += [UInt8(u & 0xFF), UInt8(u >> 8)] }
            }
            pcm.append(bytes)
        }
        let encoder = try ALACEncoder(framesPerPacket: 352)
        let startSeq: UInt16 = 65500  // wraps during the stream
        let ssrc: UInt32 = 0x1234_5678
        let packets: [RAOPAudioPacket] = try pcm.enumerated().map { i, bytes in
            RAOPAudioPacket(sequenceNumber: startSeq &+ UInt16(i), timestamp: UInt32(i * 352), ssrc: ssrc,
                            marker: i == 0, payload: try encoder.encode(PCMPacket(bytes: bytes, frames: 352)))
        }

        let control = try TestSocket.udp()
        let timing = try TestSocket.udp()
        let audio = try TestSocket.udp()
        let c = try RTSPClient(port: speaker.port)
        let sdp = SDP.announce(format: RAOPAudioFormat(codec: .alac), sessionID: ssrc, localIP: "127.0.0.1", remoteIP: "127.0.0.1")
        #expect(try await c.exchange("ANNOUNCE", headers: [("Content-Type", "application/sdp")], body: Array(sdp.utf8)).status == 200)
        let setup = try await c.exchange("SETUP", headers: [("Transport", "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;control_port=\(control.port);timing_port=\(timing.port)")])
        #expect(setup.status == 200)
        let transport = SpeakerSession.parseTransport(setup.headers["Transport"] ?? "")
        let serverPort = try #require(transport["server_port"].flatMap(Int.init))
        let controlPort = try #require(transport["control_port"].flatMap(Int.init))
        #expect(setup.headers["Session"].flatMap(UInt32.init) != nil)
        #expect(try await c.exchange("RECORD").status == 200)

        // The speaker asks for timing right after SETUP; answer it.
        let timingRequest = try #require(await timing.receive(timeoutMs: 2000), "no timing request from the speaker")
        let treq = try RAOPTimingPacket(decoding: timingRequest)
        #expect(!treq.isReply)
        let now = NTPTime.now()
        timing.sendTo(port: transport["timing_port"].flatMap(Int.init) ?? 0,
                      RAOPTimingPacket.reply(to: treq, receivedAt: now, sentAt: now).bytes)

        // Send order: swap pairs (10,11) and (70,71); never send 40 and 41 (they wrap: 65540 → 4, 5).
        var order = Array(0..<packetCount)
        order.swapAt(10, 11)
        order.swapAt(70, 71)
        order.removeAll { $0 == 40 || $0 == 41 }
        control.sendTo(port: controlPort, RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: 0, ntpTime: now, rtpTime: 11025).bytes)
        for i in order {
            audio.sendTo(port: serverPort, packets[i].bytes)
            // Small bursts: 20 packets at once could overflow the receiver's socket buffer on a loaded machine.
            if i % 5 == 0 { try await Task.sleep(for: .milliseconds(4)) }
        }

        // Serve retransmit requests.
        var requested: Set<UInt16> = []
        // Until 40 and 41 were asked for and the speaker has recovered all four (a deadline, not a
        // quiet period; the speaker retries every 150 ms).
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if requested.contains(startSeq &+ 40), requested.contains(startSeq &+ 41), speaker.report().packetsRecovered >= 4 { break }
            guard let bytes = await control.receive(timeoutMs: 200),
                  case .retransmitRequest(let req) = try RAOPControlPacket(decoding: bytes) else { continue }
            for seq in req.sequenceNumbers {
                requested.insert(seq)
                let index = Int(seq &- startSeq)
                guard index < packetCount else { continue }
                control.sendTo(port: controlPort, RAOPRetransmitResponse(packet: packets[index]).bytes)
            }
        }
        #expect(requested.contains(startSeq &+ 40) && requested.contains(startSeq &+ 41))

        #expect(try await c.exchange("TEARDOWN").status == 200)
        let report = try await speaker.waitForSessionEnd(timeout: .seconds(5))
        #expect(report.codec == "AppleLossless/44100/2")
        #expect(report.unrecoveredPackets == 0)
        #expect(report.decodeErrors == 0)
        #expect(report.syncPacketsReceived == 1)
        #expect(report.timingRepliesReceived >= 1)
        #expect(report.packetsReceived == packetCount - 2)
        #expect(report.retransmitResponsesReceived >= 2)
        #expect(report.packetsRecovered >= 4)  // 40, 41 and the two reordered ones
        #expect(report.framesWritten == packetCount * 352)
        // Every packet, the two retransmitted ones too, is placed on the sender's clock: the sync
        // packet says frame 0 plays at `now`, our timing reply put the sender's clock on ours.
        let placed = report.ntp.playInstants
        #expect(placed.count == packetCount && report.ntp.packetsUnplaced == 0, "\(report.reception.ntpSummary)")
        for (i, p) in placed.enumerated() {
            #expect(p.rtpTime == UInt32(i * 352) && p.framesBefore == i * 352 && p.frames == 352)
            #expect(p.masterTime == now.nanoseconds + Int64(i * 352) * 1_000_000_000 / 44_100)
        }
        let captured = try Harness.wavPCM(out)
        let expected = pcm.flatMap { $0 }
        #expect(captured.count == expected.count)
        let identical = captured == expected
        #expect(identical, "captured PCM differs from what was sent")
    }
}

extension SwiftSenderTests {
    /// A sender that disappears without TEARDOWN still ends the session (and closes the WAV).
    @Test func closedConnectionEndsSession() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("closed.wav")
        let speaker = try await VirtualSpeaker.start(.init(outputPath: out.path))
        do {
            let c = try RTSPClient(port: speaker.port)
            let sdp = SDP.announce(format: RAOPAudioFormat(codec: .l16), sessionID: 1, localIP: "127.0.0.1", remoteIP: "127.0.0.1")
            #expect(try await c.exchange("ANNOUNCE", headers: [("Content-Type", "application/sdp")], body: Array(sdp.utf8)).status == 200)
            let setup = try await c.exchange("SETUP", headers: [("Transport", "RTP/AVP/UDP;unicast;mode=record;control_port=9;timing_port=9")])
            let serverPort = try #require(SpeakerSession.parseTransport(setup.headers["Transport"] ?? "")["server_port"].flatMap(Int.init))
            let audio = try TestSocket.udp()
            // Two L16 packets: big-endian samples 0x0102, 0x0304 per frame.
            for seq: UInt16 in [7, 8] {
                let payload: [UInt8] = Array([[UInt8]](repeating: [1, 2, 3, 4], count: 352).joined())
                audio.sendTo(port: serverPort, RAOPAudioPacket(sequenceNumber: seq, timestamp: 0, ssrc: 1, payload: payload).bytes)
            }
            #expect(await poll(timeout: .seconds(5)) { speaker.report().packetsReceived >= 2 }, "\(speaker.report())")
        }  // the client socket closes here
        let report = try await speaker.waitForSessionEnd(timeout: .seconds(5))
        await speaker.stop()
        #expect(report.sessionsEnded == 1)
        #expect(report.codec == "L16/44100/2")
        #expect(report.framesWritten == 704)
        let captured = try Harness.wavPCM(out)
        #expect(captured.count == 704 * 4)
        #expect(Array(captured.prefix(4)) == [2, 1, 4, 3])  // byte-swapped to little-endian
    }
}

extension SwiftSenderTests {
    /// The speaker measures the sender's clock (here 5 s ahead of ours, as our timing reply says)
    /// instead of assuming it is its own: a sync packet naming frame 0 at sender time now + 6 s
    /// puts frame 0 about 1 s after the sync packet on the speaker's monotonic clock, each packet
    /// 352 frames later, and records where each packet starts in the WAV file.
    @Test func speakerPlacesFramesOnTheSendersClock() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let speaker = try await VirtualSpeaker.start(.init(outputPath: dir.appendingPathComponent("s.wav").path))
        defer { Task { await speaker.stop() } }
        let control = try TestSocket.udp(), timing = try TestSocket.udp(), audio = try TestSocket.udp()
        let c = try RTSPClient(port: speaker.port)
        let sdp = SDP.announce(format: RAOPAudioFormat(codec: .l16), sessionID: 1, localIP: "127.0.0.1", remoteIP: "127.0.0.1")
        #expect(try await c.exchange("ANNOUNCE", headers: [("Content-Type", "application/sdp")], body: Array(sdp.utf8)).status == 200)
        let setup = try await c.exchange("SETUP", headers: [("Transport", "RTP/AVP/UDP;unicast;mode=record;control_port=\(control.port);timing_port=\(timing.port)")])
        let transport = SpeakerSession.parseTransport(setup.headers["Transport"] ?? "")
        let serverPort = try #require(transport["server_port"].flatMap(Int.init))
        let controlPort = try #require(transport["control_port"].flatMap(Int.init))
        #expect(try await c.exchange("RECORD", headers: [("RTP-Info", "seq=0;rtptime=0")]).status == 200)

        let request = try RAOPTimingPacket(decoding: try #require(await timing.receive(timeoutMs: 3000), "no timing request"))
        let ahead: Int64 = 5_000_000_000
        let senderNow = NTPTime.now().adding(seconds: 5)
        timing.sendTo(port: transport["timing_port"].flatMap(Int.init) ?? 0,
                      RAOPTimingPacket.reply(to: request, receivedAt: senderNow, sentAt: senderNow).bytes)
        #expect(await poll(timeout: .seconds(5)) { speaker.report().senderClockOffset != nil })
        let syncedAt = Int64(PTPMaster.monotonicNow())
        let playAt = NTPTime.now().adding(seconds: 6)
        control.sendTo(port: controlPort, RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: 0, ntpTime: playAt, rtpTime: 44_100).bytes)
        #expect(await poll(timeout: .seconds(5)) { speaker.report().ntp.syncAnchors == 1 })
        for i in 0 ..< 20 {
            let payload = [UInt8](repeating: UInt8(i + 1), count: 352 * 4)
            audio.sendTo(port: serverPort, RAOPAudioPacket(sequenceNumber: UInt16(i), timestamp: UInt32(i * 352), ssrc: 1, payload: payload).bytes)
        }
        #expect(await poll(timeout: .seconds(10)) { speaker.report().packetsReceived >= 20 })
        #expect(try await c.exchange("TEARDOWN").status == 200)
        let report = try await speaker.waitForSessionEnd(timeout: .seconds(10))

        let offset = try #require(report.senderClockOffset)
        #expect(abs(offset - ahead) < 50_000_000, "offset \(offset) ns")
        let placed = report.ntp.playInstants
        #expect(placed.count == 20 && report.ntp.packetsUnplaced == 0, "\(report.reception.ntpSummary)")
        for (i, p) in placed.enumerated() {
            #expect(p.rtpTime == UInt32(i * 352) && p.framesBefore == i * 352 && p.frames == 352)
            #expect(p.masterTime == playAt.nanoseconds + Int64(i * 352) * 1_000_000_000 / 44_100)
        }
        let first = try #require(placed.first?.localTime)
        #expect(abs(first - syncedAt - 1_000_000_000) < 100_000_000, "frame 0 at \(first - syncedAt) ns after the sync packet")
        // The same as a playout log, as `atv simulate speaker --play-instants` writes it.
        let log = try PlayoutLog.decode(try PlayoutLog(speaker: report, wav: "s.wav").encoded())
        #expect(log.timing == "ntp" && log.instants == placed && log.senderClockOffset == offset && log.unplaced == 0)
    }
}
