import ATVAirPlayCore
import ATVCore
import NIOCore
import NIOEmbedded
@testable import ATVRAOP
import Testing

/// The paced sender on a manual clock: an `EmbeddedEventLoop` whose time only moves when the test
/// moves it, the `SenderClock` reading that time, and `EmbeddedChannel`s collecting what would go to
/// the sockets. Every packet's send time, RTP fields and every sync packet are exact; nothing
/// waits for the wall clock. (Synchronous tests: an EmbeddedEventLoop stays on its own thread.)
@Suite struct PacerClockTests {
    static let fpp = 352
    static let ssrc: UInt32 = 0xA1B2_C3D4
    static let firstSequence: UInt16 = 65_530  // wraps during the tests
    static let firstRTP: UInt32 = 4_294_960_000  // wraps too
    static let latency = 11_025
    static let unixBase = 1_700_000_000

    /// The network clock of the tests: Unix time `unixBase` at monotonic zero, advancing with it.
    static func ntp(_ d: NIODeadline) -> NTPTime {
        let ns = Int(d.uptimeNanoseconds)
        return NTPTime(unixSeconds: unixBase + ns / 1_000_000_000, nanoseconds: ns % 1_000_000_000)
    }

    struct Rig {
        let loop: EmbeddedEventLoop
        let audio: EmbeddedChannel
        let control: EmbeddedChannel
        let live: RAOPLiveState
        let pipe: RAOPPayloadPipe
        let pacer: RAOPPacedSender
        let outcomes: Counter

        /// Audio packets written since the last call, with the loop time at which they were read.
        func sentAudio() throws -> [RAOPAudioPacket] {
            var out: [RAOPAudioPacket] = []
            while let e = try audio.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) {
                #expect(e.remoteAddress.port == 6000)
                out.append(try RAOPAudioPacket(decoding: e.data.readableBytesView))
            }
            return out
        }

        func sentSyncs() throws -> [RAOPSyncPacket] {
            var out: [RAOPSyncPacket] = []
            while let e = try control.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) {
                #expect(e.remoteAddress.port == 6001)
                guard case .sync(let s) = try RAOPControlPacket(decoding: e.data.readableBytesView) else {
                    Issue.record("not a sync packet")
                    continue
                }
                out.append(s)
            }
            return out
        }

        /// Packet `n`'s due time after an anchor.
        func due(_ n: Int64, from anchor: NIODeadline = .uptimeNanoseconds(0)) -> NIODeadline {
            anchor + .nanoseconds(live.pacer.nanoseconds(ofPacket: n))
        }
    }

    final class Counter: @unchecked Sendable {
        var value = 0
    }

    static func rig(packets: Int, sendAhead: Duration, syncInterval: Duration = .seconds(1), end: Bool = true) throws -> Rig {
        let loop = EmbeddedEventLoop()
        let audio = EmbeddedChannel(loop: loop)
        let control = EmbeddedChannel(loop: loop)
        let clock = SenderClock(now: { loop.now }, networkTime: { ntp($0) })
        let streamer = RAOPStreamer(ssrc: ssrc, initialSequence: firstSequence, initialRTPTime: firstRTP, latencyFrames: latency)
        let live = RAOPLiveState(streamer: streamer, pacer: RAOPPacer(framesPerPacket: fpp, sampleRate: 44_100), clock: clock)
        live.inner.withLock { $0.controlDestination = try? SocketAddress(ipAddress: "127.0.0.1", port: 6001) }
        let pipe = RAOPPayloadPipe(highWater: 10_000, lowWater: 10)
        let outcomes = Counter()
        let pacer = RAOPPacedSender(
            audio: ChannelAudioOutput(channel: audio, address: try SocketAddress(ipAddress: "127.0.0.1", port: 6000)), control: control,
            live: live, pipe: pipe, framesPerPacket: fpp, syncInterval: syncInterval, sendAhead: sendAhead,
            clock: clock, onOutcome: { outcomes.value += 1 }, onProgress: {})
        for i in 0..<packets {
            pipe.offer(.packet(payload: [UInt8(truncatingIfNeeded: i), 0xAA], sourceFrames: fpp, silence: false))
        }
        if end { pipe.offer(.end) }
        return Rig(loop: loop, audio: audio, control: control, live: live, pipe: pipe, pacer: pacer, outcomes: outcomes)
    }

    static func expectPacket(_ p: RAOPAudioPacket, index n: Int, marker: Bool, rtpOffset: Int = 0) {
        #expect(p.sequenceNumber == firstSequence &+ UInt16(n))
        #expect(p.timestamp == firstRTP &+ UInt32(n * fpp + rtpOffset))
        #expect(p.header.ssrc == ssrc)
        #expect(p.marker == marker)
        #expect(p.payload == [UInt8(truncatingIfNeeded: n), 0xAA])
    }

    /// sendAhead 0: each packet leaves exactly when it is due (anchor + n·352/44100 s, floored to
    /// the nanosecond), one per wake-up, never a nanosecond early; the first has the marker.
    @Test func perPacketPacingSendsEachPacketAtItsDueTime() throws {
        let r = try Self.rig(packets: 12, sendAhead: .zero)
        r.pacer.startOnLoop()
        var sent = try r.sentAudio()
        #expect(sent.count == 1)
        Self.expectPacket(sent[0], index: 0, marker: true)
        for n in 1..<12 {
            r.loop.advanceTime(to: r.due(Int64(n)) - .nanoseconds(1))
            #expect(try r.sentAudio().isEmpty, "packet \(n) left early")
            r.loop.advanceTime(to: r.due(Int64(n)))
            sent = try r.sentAudio()
            #expect(sent.count == 1)
            if let p = sent.first { Self.expectPacket(p, index: n, marker: false) }
        }
        // Packet 11 was due at 87 800 453 ns (11·352/44100 s).
        #expect(r.loop.now == .uptimeNanoseconds(87_800_453))
        // `.end` is taken when the slot after the last packet comes due: the outcome is set once.
        #expect(r.pacer.outcome == nil)
        r.loop.advanceTime(to: r.due(12))
        #expect(try r.sentAudio().isEmpty)
        #expect(r.pacer.outcome.map { if case .finished = $0 { true } else { false } } == true)
        #expect(r.outcomes.value == 1)
        let stats = r.pacer.haltOnLoop()
        #expect(stats.late == 0)
        #expect(stats.lateness.max == 0)
        #expect(stats.sourceFrames == Int64(12 * Self.fpp))
        #expect(stats.first == .zero)
        #expect(stats.intervals.count == 11)
        #expect(abs(stats.intervals.mean - 352.0 / 44_100) < 1e-9)
    }

    /// sendAhead 40 ms: the pacer wakes when the first unsent packet is due and sends every packet
    /// due within 40 ms of then, in one flush: wakes at 0, 47.89 ms, 95.78 ms, 143.67 ms with
    /// 6, 6, 6 and 2 packets.
    @Test func burstPacingSendsEverythingDueWithinSendAhead() throws {
        let r = try Self.rig(packets: 20, sendAhead: .milliseconds(40))
        r.pacer.startOnLoop()
        let schedule: [(at: Int64, first: Int, count: Int)] = [
            (0, 0, 6), (47_891_156, 6, 6), (95_782_312, 12, 6), (143_673_469, 18, 2),
        ]
        for (i, wake) in schedule.enumerated() {
            if i > 0 {
                r.loop.advanceTime(to: .uptimeNanoseconds(UInt64(wake.at - 1)))
                #expect(try r.sentAudio().isEmpty, "a burst left before \(wake.at) ns")
                r.loop.advanceTime(to: .uptimeNanoseconds(UInt64(wake.at)))
            }
            let sent = try r.sentAudio()
            #expect(sent.count == wake.count)
            for (k, p) in sent.enumerated() { Self.expectPacket(p, index: wake.first + k, marker: wake.first + k == 0) }
        }
        #expect(r.outcomes.value == 1)
        let stats = r.pacer.haltOnLoop()
        // Never late; early by at most sendAhead.
        #expect(stats.late == 0)
        #expect(stats.lateness.max == 0)
        #expect(stats.lateness.min >= -0.040)
    }

    /// Sync packets: the first (0x90) at the start, then one per syncInterval, each saying "at
    /// network time T the stream is at RTP time R" for the frame due at that instant, with
    /// R − latency as the frame playing.
    @Test func syncPacketsCarryTheScheduleAndTheNetworkClock() throws {
        let r = try Self.rig(packets: 400, sendAhead: .milliseconds(40))
        r.loop.advanceTime(to: .uptimeNanoseconds(5_000_000_000))  // the anchor is not zero
        r.pacer.startOnLoop()
        let anchor = r.loop.now
        var syncs = try r.sentSyncs()
        #expect(syncs.count == 1)
        #expect(syncs.first == RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: Self.firstRTP &- UInt32(Self.latency),
                                              ntpTime: Self.ntp(anchor), rtpTime: Self.firstRTP))
        for second in 1...3 {
            r.loop.advanceTime(to: anchor + .seconds(Int64(second)) - .nanoseconds(1))
            #expect(try r.sentSyncs().isEmpty)
            r.loop.advanceTime(to: anchor + .seconds(Int64(second)))
            syncs = try r.sentSyncs()
            let rtp = Self.firstRTP &+ UInt32(44_100 * second)
            #expect(syncs == [RAOPSyncPacket(isFirst: false, rtpTimeLessLatency: rtp &- UInt32(Self.latency),
                                             ntpTime: Self.ntp(anchor + .seconds(Int64(second))), rtpTime: rtp)])
        }
        #expect(r.live.inner.withLock { $0.syncPackets } == 4)
        _ = r.pacer.haltOnLoop()
        // Halted: no more syncs.
        r.loop.advanceTime(by: .seconds(5))
        #expect(try r.sentSyncs().isEmpty)
    }

    /// Pause stops packets and syncs and names the next packet for the FLUSH; resume starts a fresh
    /// schedule at the resume instant: the next packet at once with the marker, the sequence and
    /// RTP time continuing where they stopped, a "first" sync for it.
    @Test func pauseAndResumeRestartTheScheduleWithMarkerAndFirstSync() throws {
        let r = try Self.rig(packets: 300, sendAhead: .zero)
        r.pacer.startOnLoop()
        r.loop.advanceTime(to: r.due(9))
        #expect(try r.sentAudio().count == 10)
        _ = try r.sentSyncs()
        let next = r.pacer.pauseOnLoop()
        #expect(next.sequence == Self.firstSequence &+ 10)
        #expect(next.rtpTime == Self.firstRTP &+ UInt32(10 * Self.fpp))
        r.loop.advanceTime(by: .seconds(3))
        #expect(try r.sentAudio().isEmpty)
        #expect(try r.sentSyncs().isEmpty)
        let resumedAt = r.loop.now
        r.pacer.resumeOnLoop()
        var sent = try r.sentAudio()
        #expect(sent.count == 1)
        if let p = sent.first { Self.expectPacket(p, index: 10, marker: true) }
        #expect(try r.sentSyncs() == [RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: next.rtpTime &- UInt32(Self.latency),
                                                    ntpTime: Self.ntp(resumedAt), rtpTime: next.rtpTime)])
        r.loop.advanceTime(to: r.due(1, from: resumedAt) - .nanoseconds(1))
        #expect(try r.sentAudio().isEmpty)
        r.loop.advanceTime(to: r.due(1, from: resumedAt))
        sent = try r.sentAudio()
        #expect(sent.count == 1)
        if let p = sent.first { Self.expectPacket(p, index: 11, marker: false) }
        let stats = r.pacer.haltOnLoop()
        #expect(stats.late == 0)
        // The pause is not counted as an interval between packets.
        #expect(stats.intervals.max < 0.008)
    }

    /// A starved queue: the pacer waits for the producer (no timer), sends the packet that was due
    /// as soon as it arrives, and counts it late by exactly how long it waited.
    @Test func starvedQueueSendsOnArrivalAndCountsLateness() throws {
        let r = try Self.rig(packets: 1, sendAhead: .zero, end: false)
        r.pacer.startOnLoop()
        #expect(try r.sentAudio().count == 1)
        r.loop.advanceTime(to: r.due(1) + .milliseconds(20))
        #expect(try r.sentAudio().isEmpty)
        r.pipe.offer(.packet(payload: [1, 0xAA], sourceFrames: Self.fpp, silence: false))
        r.loop.run()
        let sent = try r.sentAudio()
        #expect(sent.count == 1)
        if let p = sent.first { Self.expectPacket(p, index: 1, marker: false) }
        let stats = r.pacer.haltOnLoop()
        #expect(stats.late == 1)
        #expect(abs(stats.lateness.max - 0.020) < 1e-9)
    }

    /// AirPlay 2: what the pacer writes is the sealed packet, and the backlog holds that very buffer
    /// for retransmits (no second copy).
    @Test func sealedPacketsAreWrittenOnceAndRetransmittedFromTheBacklog() throws {
        let key = [UInt8](0..<32)
        let r = try Self.rig(packets: 3, sendAhead: .milliseconds(40))
        r.live.inner.withLock { $0.streamer.audioCipher = try? AirPlay2AudioCipher(key: key) }
        r.pacer.startOnLoop()
        var wire: [[UInt8]] = []
        while let e = try r.audio.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) {
            wire.append(Array(e.data.readableBytesView))
        }
        #expect(wire.count == 3)
        for (n, bytes) in wire.enumerated() {
            #expect(bytes.count == 12 + 2 + AirPlay2AudioCipher.overhead)
            let opened = try AirPlay2AudioCipher.open(bytes, key: key)
            Self.expectPacket(try RAOPAudioPacket(decoding: opened), index: n, marker: n == 0)
            #expect(bytes.suffix(8) == (0..<8).map { UInt8(truncatingIfNeeded: UInt64(n) >> (8 * UInt64($0))) })
        }
        let answers = r.live.inner.withLock {
            $0.streamer.retransmissions(for: RAOPRetransmitRequest(firstSequence: Self.firstSequence &+ 1, count: 2))
        }
        #expect(answers == [RAOPRetransmitResponse.wrap(packetBytes: wire[1], sequenceNumber: Self.firstSequence &+ 1),
                            RAOPRetransmitResponse.wrap(packetBytes: wire[2], sequenceNumber: Self.firstSequence &+ 2)])
        _ = r.pacer.haltOnLoop()
    }
}
