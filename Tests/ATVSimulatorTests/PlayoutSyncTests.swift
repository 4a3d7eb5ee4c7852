import ATVAirPlayCore
import ATVRAOP
@testable import ATVSimulator
import Foundation
import Testing

/// The NTP placement both virtual receivers use (sync packet + timing offset → the instant each
/// packet plays), and the analysis that compares receivers playing one stream.
@Suite struct PlayoutSyncTests {
    // MARK: NTPPlacement

    /// A sync packet as bytes: 0x90 0xD4 0x0007, frame 77175 (rtpTimeLessLatency), NTP time
    /// 3_900_000_000 s + ½ s, rtpTime 88200.
    static let syncBytes: [UInt8] = [0x90, 0xD4, 0x00, 0x07, 0x00, 0x01, 0x2D, 0x77,
                                     0xE8, 0x75, 0x47, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x58, 0x88]

    @Test func theFrameASyncPacketNamesPlaysAtItsNTPTime() throws {
        let sync = try RAOPSyncPacket(decoding: Self.syncBytes)
        #expect(sync.rtpTimeLessLatency == 77_175 && sync.rtpTime == 88_200 && sync.isFirst)
        let t0: Int64 = 3_900_000_000 * 1_000_000_000 + 500_000_000
        #expect(NTPPlacement.senderTime(of: 77_175, sync: sync, sampleRate: 44_100) == t0)
        // One second of frames later, and 352 frames earlier.
        #expect(NTPPlacement.senderTime(of: 77_175 + 44_100, sync: sync, sampleRate: 44_100) == t0 + 1_000_000_000)
        #expect(NTPPlacement.senderTime(of: 77_175 - 352, sync: sync, sampleRate: 44_100) == t0 - 7_981_859)
        // RTP time wraps: a frame just past 2^32 is after the anchor, not 27 hours before it.
        let wrapped = RAOPSyncPacket(isFirst: false, rtpTimeLessLatency: UInt32.max - 99, ntpTime: NTPTime(raw: 0x0000_0001_0000_0000), rtpTime: 0)
        #expect(NTPPlacement.senderTime(of: 341, sync: wrapped, sampleRate: 44_100) == 1_000_000_000 + 441 * 1_000_000_000 / 44_100)
    }

    /// A better clock measurement during playback moves the play instants one frame per packet
    /// (a receiver correcting by single inserted or dropped frames), not at once; 50 ms or more
    /// away, they jump (a resync).
    @Test func aChangedClockMeasurementMovesPlayInstantsOneFramePerPacket() throws {
        let frame: Int64 = 1_000_000_000 / 44_100
        #expect(NTPPlacement.follow(nil, toward: 5_000, maxStep: frame) == 5_000)
        #expect(NTPPlacement.follow(0, toward: 2_000_000, maxStep: frame) == frame)
        #expect(NTPPlacement.follow(0, toward: -2_000_000, maxStep: frame) == -frame)
        #expect(NTPPlacement.follow(0, toward: 10_000, maxStep: frame) == 10_000)
        #expect(NTPPlacement.follow(0, toward: 60_000_000, maxStep: frame) == 60_000_000)

        let sync = try RAOPSyncPacket(decoding: Self.syncBytes)
        var p = NTPPlacement()
        p.sync(sync)
        var locals: [Int64] = []
        for i in 0 ..< 120 {
            let rtp = 77_175 + UInt32(i) * 352
            p.arrived(seq: UInt16(i), rtp: rtp, at: 0)
            // The measured offset improves by 2 ms after the tenth packet.
            let offset: Int64 = i < 10 ? 0 : -2_000_000
            let instant = p.place(seq: UInt16(i), frames: 352, framesBefore: i * 352, offset: offset, monotonicOffset: 0)
            let placed = try #require(instant)
            locals.append(try #require(placed.localTime))
        }
        let steps = zip(locals, locals.dropFirst()).map { $1 - $0 - 352 * 1_000_000_000 / 44_100 }
        #expect(steps.allSatisfy { abs($0) <= frame + 1 }, "\(steps)")
        // 2 ms is 89 frames: caught up by packet 10 + 89.
        #expect(abs(locals[119] - (locals[0] + 119 * 352 * 1_000_000_000 / 44_100 + 2_000_000)) <= 2, "\(locals[119] - locals[0])")
    }

    /// Sender time → our monotonic clock: minus the sender's lead over our CLOCK_REALTIME, then
    /// minus our CLOCK_REALTIME's lead over CLOCK_MONOTONIC.
    @Test func senderTimeMapsToTheLocalMonotonicClockByTheMeasuredOffset() throws {
        let sync = try RAOPSyncPacket(decoding: Self.syncBytes)
        let t0: Int64 = 3_900_000_000 * 1_000_000_000 + 500_000_000
        var p = NTPPlacement()
        p.arrived(seq: 7, rtp: 77_175 + 441, at: 1_000)
        // Before a sync packet: unplaced.
        let beforeSync = p.place(seq: 7, frames: 352, framesBefore: 0, offset: 0, monotonicOffset: 0)
        #expect(beforeSync == nil)
        p.sync(sync)
        p.arrived(seq: 7, rtp: 77_175 + 441, at: 1_000)
        // No timing reply yet: unplaced.
        let beforeReply = p.place(seq: 7, frames: 352, framesBefore: 0, offset: nil, monotonicOffset: 0)
        #expect(beforeReply == nil)
        p.arrived(seq: 7, rtp: 77_175 + 441, at: 1_000)
        // The sender is 2 s ahead; our realtime reads t0 − 2 s − 0.5 s when monotonic reads 50 s.
        let monotonicOffset = t0 - 2_500_000_000 - 50_000_000_000
        let instant = p.place(seq: 7, frames: 352, framesBefore: 3_520, offset: 2_000_000_000, monotonicOffset: monotonicOffset)
        let placed = try #require(instant)
        #expect(placed.masterTime == t0 + 10_000_000)
        let expectedLocal: Int64 = 50_000_000_000 + 500_000_000 + 10_000_000
        #expect(placed.localTime == expectedLocal)
        #expect(placed.rtpTime == 77_616 && placed.frames == 352 && placed.framesBefore == 3_520 && !placed.late && placed.arrivedAt == 1_000)
        // A packet not seen arriving (never received) has no instant.
        let never = p.place(seq: 8, frames: 352, framesBefore: 3_872, offset: 0, monotonicOffset: 0)
        #expect(never == nil)
        // One that arrived after its instant is late.
        p.arrived(seq: 9, rtp: 77_175, at: 60_000_000_000)
        let late = p.place(seq: 9, frames: 352, framesBefore: 0, offset: 0, monotonicOffset: t0 - 50_000_000_000)
        #expect(late?.late == true)
    }

    // MARK: PlayoutSync

    /// Deterministic noise, stereo frames as UInt32.
    static func noise(_ frames: Int, seed: UInt32 = 99) -> [UInt32] {
        var s = seed
        return (0 ..< frames).map { _ in
            s = s &* 1_664_525 &+ 1_013_904_223
            return s
        }
    }

    /// Packets of 352 frames of `audio` from WAV frame `start` on, played from local instant `t0`.
    static func instants(audioFrames: Int, start: Int, t0: Int64, skipping: Set<Int> = []) -> [PTPReception.PlayInstant] {
        stride(from: start, to: audioFrames, by: 352).enumerated().compactMap { k, before in
            skipping.contains(k) ? nil : PTPReception.PlayInstant(
                rtpTime: UInt32(k * 352), frames: min(352, audioFrames - before), masterTime: 1_000 + Int64(k),
                localTime: t0 + Int64(k * 352) * 1_000_000_000 / 44_100, late: false, framesBefore: before)
        }
    }

    @Test func locatesTheSourceSampleExactAndIgnoresAmbiguousProbes() {
        let source = Self.noise(20_000)
        let audio = [UInt32](repeating: 0, count: 1_234) + source + [UInt32](repeating: 0, count: 500)
        #expect(PlayoutSync.locate(source, in: audio) == 1_234)
        // The member missed the first 3000 frames (joined late): still found, at a negative offset.
        #expect(PlayoutSync.locate(source, in: Array(source[3_000...])) == -3_000)
        // Not there at all.
        #expect(PlayoutSync.locate(source, in: Self.noise(30_000, seed: 5)) == nil)
        #expect(PlayoutSync.frames(s16le: [1, 2, 3, 4, 5]) == [0x0403_0201])
    }

    /// Three members: one 0.4 ms later than the first, one 0.9 ms earlier, one with a lost packet
    /// (silence). The spread is 1.3 ms; the lossy one is bit-exact but for 352 frames, whose
    /// instants are not compared.
    @Test func theSpreadOfOneFramesInstantsAcrossMembers() {
        let source = Self.noise(44_100)
        let a = [UInt32](repeating: 0, count: 700) + source
        let b = [UInt32](repeating: 0, count: 100) + source
        var c = [UInt32](repeating: 0, count: 352 * 3) + source
        for f in (352 * 3 + 352 * 10) ..< (352 * 3 + 352 * 11) { c[f] = 0 }
        let t: Int64 = 5_000_000_000
        // a's frame 700 (source frame 0) plays at t; b's frame 100 at t + 0.4 ms; c's frame 1056 at t − 0.9 ms.
        let ia = Self.instants(audioFrames: a.count, start: 0, t0: t - 700 * 1_000_000_000 / 44_100)
        let ib = Self.instants(audioFrames: b.count, start: 100, t0: t + 400_000)
        let ic = Self.instants(audioFrames: c.count, start: 352 * 3, t0: t - 900_000, skipping: [10])
        let r = PlayoutSync.analyze(source: source, members: [.init(name: "a", audio: a, instants: ia),
                                                              .init(name: "b", audio: b, instants: ib),
                                                              .init(name: "c", audio: c, instants: ic)])
        #expect(r.members.map(\.sourceOffset) == [700, 100, 1_056])
        #expect(r.members[0].matchingFrames == 44_100 && r.members[1].matchingFrames == 44_100)
        #expect(r.members[2].matchingFrames == 44_100 - 352 && r.members[2].firstMismatch == 3_520)
        #expect(r.framesCompared > 90 && r.framesCompared < 101, "\(r.summary)")
        // Rounding of the per-frame instants (whole ns per frame) stays well below a microsecond.
        #expect(abs(r.maxSpread - 1_300_000) < 1_000, "\(r.summary)")
        #expect(abs(r.medianSpread - 1_300_000) < 1_000, "\(r.summary)")
        #expect(abs(r.members[1].meanLeadOverFirst - 400_000) < 1_000 && abs(r.members[2].meanLeadOverFirst + 900_000) < 1_000, "\(r.summary)")
    }

    /// A member whose audio lacks the source compares nothing (the caller sees no frames
    /// compared and the member not found, never a spread of 0 that looks perfect).
    @Test func aMemberWithoutTheSourceComparesNothing() {
        let source = Self.noise(10_000)
        let a = source, b = Self.noise(10_000, seed: 3)
        let r = PlayoutSync.analyze(source: source, members: [.init(name: "a", audio: a, instants: Self.instants(audioFrames: a.count, start: 0, t0: 0)),
                                                              .init(name: "b", audio: b, instants: Self.instants(audioFrames: b.count, start: 0, t0: 0))])
        #expect(r.framesCompared == 0 && r.members[1].sourceOffset == nil && r.members[1].bitExactFraction == 0)
        #expect(r.members[0].bitExactFraction == 1)
    }

    /// The master-clock base compares `masterTime` instead.
    @Test func comparesOnTheMasterClockWhenAsked() {
        let source = Self.noise(4_000)
        let instants = [PTPReception.PlayInstant(rtpTime: 0, frames: 4_000, masterTime: 10_000_000, localTime: nil, late: false, framesBefore: 0)]
        let shifted = [PTPReception.PlayInstant(rtpTime: 0, frames: 4_000, masterTime: 10_250_000, localTime: nil, late: false, framesBefore: 0)]
        let members = [PlayoutSync.Member(name: "a", audio: source, instants: instants), .init(name: "b", audio: source, instants: shifted)]
        let master = PlayoutSync.analyze(source: source, members: members, base: .master)
        #expect(master.maxSpread == 250_000 && master.framesCompared > 0)
        // No local instants: nothing to compare on that base.
        #expect(PlayoutSync.analyze(source: source, members: members, base: .local).framesCompared == 0)
    }
}
