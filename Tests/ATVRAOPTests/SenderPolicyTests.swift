// PacingPolicy, SyncPolicy and RetransmitPolicy with plain numbers: no event loop, no clock.
import ATVAirPlayCore
import ATVCore
import NIOCore
@testable import ATVRAOP
import Testing

private let pacer = RAOPPacer(framesPerPacket: 352, sampleRate: 44_100)
private func at(_ ns: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(ns)) }

@Suite struct SenderPolicyTests {
    /// Packet n is due at n·352/44100 s after the anchor, floored to the nanosecond.
    @Test func dueTimesFollowTheAbsoluteSchedule() {
        let p = PacingPolicy(pacer: pacer, sendAhead: .zero)
        let anchor = at(1_000)
        #expect(p.due(packet: 0, anchor: anchor) == at(1_000))
        #expect(p.due(packet: 1, anchor: anchor) == at(1_000 + 7_981_859))
        #expect(p.due(packet: 11, anchor: anchor) == at(1_000 + 87_800_453))
        // No drift: packet 125 (44 000 frames) is 997 732 426 ns in, not 125 × 7 981 859.
        #expect(p.due(packet: 125, anchor: anchor) == at(1_000 + 997_732_426))
    }

    /// Per-packet mode: one packet per wake-up, at its due time, never a nanosecond early.
    @Test func perPacketModeSendsOnePacketPerWakeUp() {
        let p = PacingPolicy(pacer: pacer, sendAhead: .zero)
        #expect(p.decide(now: at(0), anchor: at(0), next: 0) == .init(packets: 0 ..< 1, wakeAt: at(7_981_859)))
        // A nanosecond early: nothing.
        #expect(p.decide(now: at(7_981_858), anchor: at(0), next: 1) == .init(packets: 1 ..< 1, wakeAt: at(7_981_859)))
        #expect(p.decide(now: at(7_981_859), anchor: at(0), next: 1) == .init(packets: 1 ..< 2, wakeAt: at(15_963_718)))
        // Woken late (the loop was busy): everything overdue goes at once.
        #expect(p.decide(now: at(40_000_000), anchor: at(0), next: 2) == .init(packets: 2 ..< 6, wakeAt: at(47_891_156)))
    }

    /// 40 ms bursts: wake-ups at 0, 47.89 ms, 95.78 ms, 143.67 ms with 6, 6, 6 (and more) packets,
    /// as `PacerClockTests.burstPacingSendsEverythingDueWithinSendAhead` sees on the event loop.
    @Test func burstModeSendsEverythingDueWithinSendAhead() {
        let p = PacingPolicy(pacer: pacer, sendAhead: .milliseconds(40))
        var next: Int64 = 0
        var now = at(0)
        var bursts: [(Int64, Int)] = []
        for _ in 0..<4 {
            let d = p.decide(now: now, anchor: at(0), next: next)
            bursts.append((Int64(now.uptimeNanoseconds), d.packets.count))
            // Nothing is more than sendAhead early, nothing is left that is due by the horizon.
            for n in d.packets { #expect(p.due(packet: n, anchor: at(0)) <= now + .milliseconds(40)) }
            #expect(d.wakeAt > now + .milliseconds(40))
            next = d.packets.upperBound
            now = d.wakeAt
        }
        #expect(bursts.map(\.0) == [0, 47_891_156, 95_782_312, 143_673_469])
        #expect(bursts.map(\.1) == [6, 6, 6, 6])
        // A negative sendAhead is per-packet mode.
        #expect(PacingPolicy(pacer: pacer, sendAhead: .milliseconds(-5)).sendAhead == .zero)
    }

    /// AirPlay 1's default: bursts of 4 packets (due at 0, 7.98, 15.96 and 23.95 ms), one wake-up
    /// per 31.93 ms instead of one per packet; never more than 4 back to back while on time.
    @Test func raopDefaultBurstsAreFourPackets() {
        let p = PacingPolicy(pacer: pacer, sendAhead: RAOPOptions.raopDefaultSendAhead)
        var next: Int64 = 0
        var now = at(0)
        var wakes: [UInt64] = []
        var sizes: [Int] = []
        for _ in 0..<250 {  // ~8 s of audio
            let d = p.decide(now: now, anchor: at(0), next: next)
            wakes.append(now.uptimeNanoseconds)
            sizes.append(d.packets.count)
            next = d.packets.upperBound
            now = d.wakeAt
        }
        #expect(sizes.allSatisfy { $0 == 4 })
        #expect(Array(wakes.prefix(3)) == [0, 31_927_437, 63_854_875])
        // Woken 1 ms late each time: still 4 (the fifth is 7.98 ms beyond the horizon).
        #expect(p.decide(now: at(1_000_000), anchor: at(0), next: 0).packets == 0 ..< 4)
        // The per-packet option stays: sendAhead 0.
        #expect(PacingPolicy(pacer: pacer, sendAhead: .zero).decide(now: at(0), anchor: at(0), next: 0).packets == 0 ..< 1)
    }

    /// Which AirPlay 1 receivers get bursts by default: all but HomePods.
    @Test func raopBurstRulePerReceiver() {
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits()) == .milliseconds(24))
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits(model: "AirPort10,115")) == .milliseconds(24))
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits(model: "AppleTV5,3")) == .milliseconds(24))
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits(model: "ShairportSync")) == .milliseconds(24))
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits(model: "AudioAccessory1,1")) == .zero)
        #expect(RAOPBurstRule.defaultSendAhead(AirPlayReceiverTraits(model: "AudioAccessory5,1")) == .zero)
    }

    @Test func latenessIsMoreThanFiveMilliseconds() {
        #expect(!PacingPolicy.isLate(sentAt: at(5_000_000), due: at(0)))
        #expect(PacingPolicy.isLate(sentAt: at(5_000_001), due: at(0)))
        #expect(!PacingPolicy.isLate(sentAt: at(0), due: at(40_000_000)))  // early is not late
    }

    /// The sync's RTP time is the frame due now on the schedule (wrapping), its first flag set once
    /// per start, and it is repeated once after the first timing reply when one preceded it.
    @Test func syncPolicyContentsAndTiming() throws {
        #expect(SyncPolicy.interval(.seconds(1)) == .seconds(1))
        #expect(SyncPolicy.interval(.zero) == .milliseconds(1))
        #expect(SyncPolicy.rtpTime(now: at(2_000_000_000), anchor: at(1_000_000_000), anchorRTP: 100, pacer: pacer) == 44_200)
        #expect(SyncPolicy.rtpTime(now: at(500_000_000), anchor: at(0), anchorRTP: 4_294_967_000, pacer: pacer) == 21_754)
        // Before the anchor (a clock read early): the anchor's RTP time.
        #expect(SyncPolicy.rtpTime(now: at(0), anchor: at(1_000), anchorRTP: 7, pacer: pacer) == 7)

        var s = SyncPolicy(latencyFrames: 11_025)
        let first = s.packet(rtpTime: 100_000, ntpTime: NTPTime(raw: 5))
        #expect(first.isFirst && first.rtpTime == 100_000 && first.rtpTimeLessLatency == 88_975 && first.ntpTime == NTPTime(raw: 5))
        #expect(first.bytes == [0x90, 0xD4, 0x00, 0x07, 0x00, 0x01, 0x5B, 0x8F, 0, 0, 0, 0, 0, 0, 0, 5,
                                0x00, 0x01, 0x86, 0xA0])
        let second = s.packet(rtpTime: 144_100, ntpTime: NTPTime(raw: 6))
        #expect(!second.isFirst && second.bytes[0] == 0x80)
        // The first timing reply after a sync: repeat at once, as a first one.
        let repeatNow = s.timingReplySent()
        #expect(repeatNow)
        #expect(s.packet(rtpTime: 150_000, ntpTime: NTPTime(raw: 7)).isFirst)
        let repeatAgain = s.timingReplySent()
        #expect(!repeatAgain)
        // Resume: first again. Latency larger than the RTP time wraps.
        s.restarted()
        let low = s.packet(rtpTime: 10, ntpTime: NTPTime(raw: 8))
        #expect(low.isFirst && low.rtpTimeLessLatency == 10 &- 11_025)

        // A timing reply before any sync: nothing to repeat.
        var t = SyncPolicy(latencyFrames: 0)
        let repeatWithoutSync = t.timingReplySent()
        #expect(!repeatWithoutSync)
        #expect(t.packet(rtpTime: 0, ntpTime: NTPTime(raw: 1)).isFirst)
    }

    /// Resend what is held, count what is not, never more than the backlog's capacity.
    @Test func retransmitPolicyResendsHeldPacketsOnly() {
        let held: Set<UInt16> = [65_534, 65_535, 1]
        let plan = RetransmitPolicy.plan(RAOPRetransmitRequest(firstSequence: 65_534, count: 4), capacity: 1024) {
            held.contains($0)
        }
        #expect(plan.resend == [65_534, 65_535, 1] && plan.missing == [0])
        let capped = RetransmitPolicy.plan(RAOPRetransmitRequest(firstSequence: 10, count: 5), capacity: 3) { _ in false }
        #expect(capped.resend == [] && capped.missing == [10, 11, 12])
        let none = RetransmitPolicy.plan(RAOPRetransmitRequest(firstSequence: 10, count: 0), capacity: 3) { _ in true }
        #expect(none.resend.isEmpty && none.missing.isEmpty)
    }
}
