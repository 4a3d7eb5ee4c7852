import ATVTestSupport
import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVPTP
import ATVRAOP
import Foundation
import Testing
@testable import ATVSimulator

/// A Swift controller drives whole AirPlay 2 sessions: both stream formats a HomePod accepts
/// (ct 1 PCM as pyatv sends it, ct 2 ALAC as Apple senders do), the event channel and the faults.
@Suite(.serialized) struct HomePodStreamTests {
    struct Session {
        var control: HomePodTestClient
        var events: HomePodTestClient
        var key: [UInt8]
        var dataPort: Int
        var audio: TestSocket
        var senderControl: TestSocket
        /// Our NTP timing port (the session SETUP's `timingPort`) and the stream's control port.
        var timing: TestSocket?
        var controlPort = 0
    }

    static func plist(_ dict: [String: PlistValue]) -> [UInt8] { BinaryPlist.encode(.dict(dict)) }
    static let bplist = [("Content-Type", "application/x-apple-binary-plist")]

    /// Transient pairing, session SETUP (NTP), event channel (answered if `answerEvents`), stream
    /// SETUP with `ct`, RECORD and FLUSH naming sequence number 100.
    static func open(_ pod: VirtualHomePod, ct: Int, answerEvents: Bool = true) async throws -> Session {
        let control = try await HomePodTestClient.connect(port: pod.port)
        let K = try await control.pairTransient()
        let timing = try TestSocket.udp()
        let s1 = try await control.request("SETUP", "rtsp://127.0.0.1/1", headers: bplist,
                                           body: plist(["timingProtocol": .string("NTP"), "timingPort": .int(Int64(timing.port)),
                                                        "deviceID": .string("AA:BB:CC:DD:EE:FF"), "sessionUUID": .string(UUID().uuidString)]))
        #expect(s1.status == 200)
        let eventPort = Int(try BinaryPlistParser.parse(s1.body)["eventPort"]?.double ?? 0)
        let events = try await HomePodTestClient.connect(port: eventPort, keys: HAPChannel.airPlayEvents.keys(sharedSecret: K))
        if answerEvents {
            let command = try await events.nextRequest(timeout: .seconds(5))
            #expect(command.method == "POST" && command.uri == "/command")
            try await events.answer(command)
        }
        let senderControl = try TestSocket.udp()
        var keyRNG = SplitMix64(seed: 0x4B45)
        let key = randomBytes(32, using: &keyRNG)
        let format: [String: PlistValue] = ct == 2
            ? ["ct": .int(2), "audioFormat": .int(0x40000)] : ["ct": .int(1), "audioFormat": .int(0x800)]
        let s2 = try await control.request("SETUP", "rtsp://127.0.0.1/1", headers: bplist, body: plist(["streams": .array([.dict(format.merging([
            "type": .int(96), "spf": .int(352), "sr": .int(44100), "shk": .data(key), "controlPort": .int(Int64(senderControl.port)),
            "latencyMin": .int(11025), "latencyMax": .int(88200), "audioMode": .string("default"), "isMedia": .bool(true),
        ]) { a, _ in a })])]))
        #expect(s2.status == 200)
        let stream = try BinaryPlistParser.parse(s2.body)["streams"]
        guard case .array(let list)? = stream, let first = list.first, let dataPort = first["dataPort"]?.double else {
            throw HarnessError("no dataPort in stream SETUP reply")
        }
        let controlPort = Int(first["controlPort"]?.double ?? 0)
        #expect(controlPort > 0)
        #expect(try await control.request("RECORD", "rtsp://127.0.0.1/1").status == 200)
        #expect(try await control.request("FLUSH", "rtsp://127.0.0.1/1", headers: [("RTP-Info", "seq=100;rtptime=0")]).status == 200)
        return Session(control: control, events: events, key: key, dataPort: Int(dataPort), audio: try TestSocket.udp(),
                       senderControl: senderControl, timing: timing, controlPort: controlPort)
    }

    /// Deterministic stereo s16le test signal, `packets` × 352 frames.
    static func signal(packets: Int) -> [[UInt8]] {
        var seed: UInt32 = 12345
        return (0 ..< packets).map { p in
            var out: [UInt8] = []
            out.reserveCapacity(352 * 4)
            for f in 0 ..< 352 {
                let t = Double(p * 352 + f)
                let left = Int16(8000 * sin(t * 2 * .pi * 440 / 44100))
                seed = seed &* 1_103_515_245 &+ 12345
                let right = Int16(truncatingIfNeeded: Int(seed >> 16) % 6000 - 3000)
                for v in [left, right] { out += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
            }
            return out
        }
    }

    static func send(_ payloads: [[UInt8]], session: Session, firstSeq: UInt16 = 100, skip: Set<Int> = []) async throws {
        var cipher = try AirPlay2AudioCipher(key: session.key)
        for (i, payload) in payloads.enumerated() {
            let header = RTPHeader(payloadType: 0x60, marker: i == 0, sequenceNumber: firstSeq &+ UInt16(i),
                                   timestamp: UInt32(i * 352), ssrc: 0x1234).bytes
            let packet = try cipher.seal(rtpHeader: header, payload: payload)
            if !skip.contains(i) { session.audio.sendTo(port: session.dataPort, packet) }
            // Small bursts, so the receiver's socket buffer never overflows on a loaded machine.
            if i % 8 == 7 { try await Task.sleep(for: .milliseconds(2)) }
        }
    }

    @Test(arguments: [1, 2]) func swiftControllerStreamsBitExact(ct: Int) async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let pod = try await VirtualHomePod.start(.init(outputPath: out.path))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: ct)
        let pcm = Self.signal(packets: 120)
        let payloads: [[UInt8]]
        if ct == 2 {
            let encoder = try ALACEncoder(framesPerPacket: 352)
            payloads = try pcm.map { try encoder.encode(PCMPacket(bytes: $0)) }
        } else {  // big-endian L16, as pyatv sends it
            payloads = pcm.map { p in stride(from: 0, to: p.count, by: 2).flatMap { [p[$0 + 1], p[$0]] } }
        }
        try await Self.send(payloads, session: session)
        // A packet sealed with another key, and one that is not RTP at all.
        var wrong = try AirPlay2AudioCipher(key: [UInt8](repeating: 7, count: 32))
        session.audio.sendTo(port: session.dataPort, try wrong.seal(rtpHeader: RTPHeader(payloadType: 0x60, sequenceNumber: 220, timestamp: 0, ssrc: 1).bytes,
                                                                     payload: payloads[0]))
        session.audio.sendTo(port: session.dataPort, [1, 2, 3])
        // Wait (deadline, no fixed sleep) until the receiver has seen every datagram sent.
        #expect(await poll(timeout: .seconds(10)) {
            let r = pod.report()
            return r.packetsDecrypted >= 120 && r.decryptFailures >= 1 && r.malformedPackets >= 1
        }, "\(pod.report())")
        #expect(try await session.control.request("TEARDOWN", "rtsp://127.0.0.1/1").status == 200)
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await session.control.close()
        await session.events.close()

        #expect(report.codec == (ct == 2 ? "AppleLossless/44100/2" : "L16/44100/2"))
        #expect(report.compressionType == ct)
        #expect(report.eventChannel == .answered)
        #expect(report.packetsDecrypted == 120)
        #expect(report.decryptFailures == 1)
        #expect(report.malformedPackets == 1)
        #expect(report.decodeErrors == 0)
        #expect(report.timingRequestsSent >= 1)
        let captured = try Harness.wavPCM(out)
        #expect(captured == pcm.flatMap { $0 }, "capture differs (\(captured.count) vs \(pcm.count * 1408) bytes)")
    }

    /// NTP timing: each packet is placed on the sender's clock (the sync packet says frame 0 plays
    /// at sender time S; our timing reply puts the sender's clock 5 s ahead of the receiver's), and
    /// on the receiver's monotonic clock by that offset: frame 0 at about 1 s after the sync
    /// packet, each packet 352 frames later, with the WAV frame it starts at.
    @Test func ntpStreamsPlacePacketsOnTheSendersClock() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pod = try await VirtualHomePod.start(.init(outputPath: dir.appendingPathComponent("pod.wav").path))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: 2)
        let ahead: Int64 = 5_000_000_000
        let timing = try #require(session.timing)
        let request = try #require(await timing.receiveFrom(timeoutMs: 5000), "no timing request")
        let asked = try RAOPTimingPacket(decoding: request.bytes)
        let senderNow = NTPTime.now().adding(seconds: 5)
        timing.sendTo(port: request.port, RAOPTimingPacket.reply(to: asked, receivedAt: senderNow, sentAt: senderNow).bytes)
        #expect(await poll(timeout: .seconds(5)) { pod.report().senderClockOffset != nil })
        let syncedAt = Int64(PTPMaster.monotonicNow())
        let playAt = NTPTime.now().adding(seconds: 6)
        session.audio.sendTo(port: session.controlPort,
                             RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: 0, ntpTime: playAt, rtpTime: 44_100).bytes)
        #expect(await poll(timeout: .seconds(5)) { pod.report().ntp.syncAnchors == 1 })
        let encoder = try ALACEncoder(framesPerPacket: 352)
        try await Self.send(try Self.signal(packets: 20).map { try encoder.encode(PCMPacket(bytes: $0)) }, session: session)
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsDecrypted >= 20 })
        #expect(try await session.control.request("TEARDOWN", "rtsp://127.0.0.1/1").status == 200)
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await session.control.close()
        await session.events.close()

        let offset = try #require(report.senderClockOffset)
        #expect(abs(offset - ahead) < 50_000_000, "offset \(offset) ns")
        let placed = report.ntp.playInstants
        #expect(placed.count == 20 && report.ntp.packetsUnplaced == 0, "\(report.ntp)")
        for (i, p) in placed.enumerated() {
            #expect(p.rtpTime == UInt32(i * 352) && p.framesBefore == i * 352 && p.frames == 352)
            #expect(p.masterTime - placed[0].masterTime == Int64(i * 352) * 1_000_000_000 / 44_100)
        }
        let first = try #require(placed.first?.localTime)
        #expect(abs(first - syncedAt - 1_000_000_000) < 100_000_000, "frame 0 at \(first - syncedAt) ns after the sync packet")
    }

    /// Lost packets are asked for on the sender's control port; a 0x56 answer carrying the
    /// encrypted packet fills the gap.
    @Test func retransmitRequestsGoToTheSendersControlPort() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let pod = try await VirtualHomePod.start(.init(outputPath: out.path))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: 1)
        let pcm = Self.signal(packets: 40)
        var cipher = try AirPlay2AudioCipher(key: session.key)
        let packets = try pcm.enumerated().map { i, p in
            try cipher.seal(rtpHeader: RTPHeader(payloadType: 0x60, sequenceNumber: 100 &+ UInt16(i), timestamp: UInt32(i * 352), ssrc: 1).bytes,
                            payload: stride(from: 0, to: p.count, by: 2).flatMap { [p[$0 + 1], p[$0]] })
        }
        for (i, p) in packets.enumerated() where i != 10 { session.audio.sendTo(port: session.dataPort, p) }
        let request = try #require(await session.senderControl.receive(timeoutMs: 3000))
        let asked = try RAOPRetransmitRequest(decoding: request)
        #expect(asked.firstSequence == 110 && asked.count == 1)
        let reply = RAOPRetransmitResponse.wrap(packetBytes: packets[10], sequenceNumber: 110)
        session.senderControl.sendTo(port: try #require(pod.report().controlPort), reply)
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsRecovered >= 1 }, "\(pod.report())")
        #expect(try await session.control.request("TEARDOWN", "rtsp://127.0.0.1/1").status == 200)
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await session.control.close()
        #expect(report.retransmitRequestsSent >= 1)
        #expect(report.retransmitResponsesReceived == 1)
        #expect(report.packetsRecovered == 1)
        #expect(report.unrecoveredPackets == 0)
        #expect(try Harness.wavPCM(out) == pcm.flatMap { $0 })
    }

    /// A stuck receiver: the session is set up, then audio is discarded and no request is answered.
    @Test func noProgressDiscardsAudioAndStopsAnswering() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pod = try await VirtualHomePod.start(.init(outputPath: dir.appendingPathComponent("pod.wav").path, noProgress: true))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: 1)
        // Before audio, requests are answered.
        #expect(try await session.control.request("POST", "/feedback").status == 200)
        try await Self.send(Self.signal(packets: 30), session: session)
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsReceived >= 30 }, "\(pod.report())")
        await #expect(throws: ATVError.self) {
            _ = try await session.control.request("POST", "/feedback", timeout: .seconds(1))
        }
        await #expect(throws: ATVError.self) {
            _ = try await session.control.request("TEARDOWN", "rtsp://127.0.0.1/1", timeout: .milliseconds(500))
        }
        await session.control.close()
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        #expect(report.packetsReceived == 30)
        #expect(report.packetsDiscarded == 30)
        #expect(report.packetsDecrypted == 0)
        #expect(report.framesWritten == 0)
        #expect(report.wavFiles.isEmpty)
        #expect(report.requestsUnanswered == 2)
        #expect(report.feedbacks == 1)
    }

    /// `timingRequests: false`: a receiver that never asks the sender for timing.
    @Test func noTimingRequestsWhenTurnedOff() async throws {
        let pod = try await VirtualHomePod.start(.init(timingInterval: .milliseconds(100)))
        defer { Task { await pod.stop() } }
        var quiet = VirtualHomePod.Configuration(timingInterval: .milliseconds(100))
        quiet.timingRequests = false
        let silentPod = try await VirtualHomePod.start(quiet)
        defer { Task { await silentPod.stop() } }
        do {
            let session = try await Self.open(pod, ct: 1)
            #expect(await poll(timeout: .seconds(10)) { pod.report().timingRequestsSent >= 2 }, "\(pod.report())")
            await session.control.close()
        }
        do {
            // An absence: the quiet receiver sends no timing request during the session (a window).
            let session = try await Self.open(silentPod, ct: 1)
            try await Task.sleep(for: .milliseconds(600))
            await session.control.close()
        }
        #expect(pod.report().timingRequestsSent >= 2)
        #expect(silentPod.report().timingRequestsSent == 0)
        #expect(silentPod.report().timingProtocol == "NTP")
    }

    @Test func airPlayOnlyAdvertisement() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        #expect(pod.mdnsServices().map(\.type) == [ServiceType.airplay, ServiceType.raop])
        let only = pod.mdnsServices(raop: false)
        #expect(only.map(\.type) == [ServiceType.airplay])
        #expect(only[0].txt["features"] == "0x4A7FCA00,0xBC354BD0")
    }

    @Test func eventChannelIsDroppedWhenAsked() async throws {
        let pod = try await VirtualHomePod.start(.init(dropEventChannelAfter: .milliseconds(300)))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: 1)
        #expect(try await session.events.waitForClose(timeout: .seconds(5)))
        #expect(pod.report().eventChannel == .dropped)
        // The control connection lives on.
        #expect(try await session.control.request("OPTIONS", "*").status == 200)
        await session.control.close()
    }

    @Test func unansweredEventCommandEndsTheSession() async throws {
        let pod = try await VirtualHomePod.start(.init(eventReplyTimeout: .milliseconds(500)))
        defer { Task { await pod.stop() } }
        let session = try await Self.open(pod, ct: 1, answerEvents: false)
        #expect(try await session.control.waitForClose(timeout: .seconds(5)))
        let report = try await pod.waitForSessionEnd(timeout: .seconds(5))
        #expect(report.eventChannel == .dropped)
        #expect(report.eventRepliesReceived == 0)
        #expect(report.eventCommandsSent == 1)
    }

    /// Random bytes on every port (control before and after pairing, event, data, control) never
    /// bring the receiver down: it still answers a fresh connection afterwards.
    @Test func garbageOnEveryPortIsSurvived() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        let seed = TestSeed.value(default: 0x4D0D)
        var rng = SplitMix64(seed: seed)
        func junk(_ n: Int) -> [UInt8] { randomBytes(n, using: &rng) }
        func size(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }
        for round in 0 ..< 30 {
            let plain = try TestSocket.tcp(port: pod.port)
            var bytes = junk(size(1 ... 3000))
            if round % 3 == 0 { bytes = Array("POST /pair-setup HTTP/1.1\r\nContent-Length: \(bytes.count)\r\n\r\n".utf8) + bytes }
            if round % 3 == 1 { bytes = Array("SETUP rtsp://x/1 RTSP/1.0\r\nContent-Length: \(bytes.count)\r\n\r\n".utf8) + bytes }
            plain.send(bytes)
            _ = await plain.receive(timeoutMs: 200)
        }
        let session = try await Self.open(pod, ct: 2)
        for _ in 0 ..< 200 {
            session.audio.sendTo(port: session.dataPort, junk(size(0 ... 1500)))
            if let cp = pod.report().controlPort { session.audio.sendTo(port: cp, [0x80, 0xD6] + junk(size(0 ... 100))) }
        }
        // Garbage inside the encrypted event channel and control channel, then raw garbage frames.
        let eventGarbage = try await HomePodTestClient.connect(port: try #require(pod.report().eventPort))
        try await eventGarbage.writeRaw(junk(500))
        // A whole frame (length 32, then 32 bytes and a 16-byte tag) whose tag can't verify: random
        // bytes would sometimes announce a longer frame and leave the receiver waiting for the rest.
        try await session.control.writeRaw([0x20, 0x00] + junk(32 + 16))
        #expect(try await session.control.waitForClose(timeout: .seconds(5)))
        let fresh = try await HomePodTestClient.connect(port: pod.port)
        #expect(try await fresh.request("GET", "/info").status == 200)
        try await fresh.pairTransient()
        #expect(try await fresh.request("OPTIONS", "*").status == 200)
        await fresh.close()
        await eventGarbage.close()
        #expect(pod.report().malformedPackets > 0)
    }
}
