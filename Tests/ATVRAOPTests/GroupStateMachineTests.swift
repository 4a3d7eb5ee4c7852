@testable import ATVRAOP
import ATVAirPlayCore
import ATVCore
import NIOCore
import Testing

private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
private func at(ms: Int64) -> NIODeadline { t0 + .milliseconds(ms) }
private let pacer = RAOPPacer()
/// When packet k is sent by a member with `lead` and `offset` (ms).
private func sendTime(_ s: GroupMemberSchedule, leadMs: Int64) -> NIODeadline { s.firstPlayInstant - .milliseconds(leadMs) }

@Suite struct GroupStateMachineTests {
    private func machine(deadline: Duration = .seconds(5), retries: Int = 3) -> GroupStateMachine {
        GroupStateMachine(config: .init(readinessDeadline: deadline, retries: retries, retryDelay: .seconds(2),
                                        joinMargin: .milliseconds(300)), now: t0)
    }

    @Test func p0IsChosenOnceEveryMemberIsReadyAndAlignsEveryMembersFirstFrame() throws {
        var m = machine()
        try m.add(name: "A", offsetMilliseconds: 0, now: t0)
        try m.add(name: "B", offsetMilliseconds: 50, now: t0)
        try m.add(name: "C", offsetMilliseconds: 0, now: t0)
        #expect(m.ready(name: "A", route: .airPlay1, lead: .seconds(2), now: at(ms: 100)).isEmpty)
        #expect(m.ready(name: "B", route: .realtimePTP, lead: .milliseconds(500), now: at(ms: 200)).isEmpty)
        let start = m.ready(name: "C", route: .airPlay1, lead: .seconds(2), now: at(ms: 400))
        #expect(Set(start.map(\.name)) == ["A", "B", "C"])
        let p0 = try #require(m.p0)
        // Every first send is ≥ now + margin; the one with the largest lead + offset exactly then.
        #expect(p0 == at(ms: 400 + 300 + 2000))
        for s in start {
            #expect(s.schedule.firstPacket == 0)
            let offset: Int64 = s.name == "B" ? 50 : 0
            #expect(s.schedule.firstPlayInstant == p0 - .milliseconds(offset))
        }
        m.started(name: "A")
        #expect(m.members.first(where: { $0.name == "A" })?.state == .playing)
        #expect(m.members.first(where: { $0.name == "B" })?.route == .realtimePTP)
    }

    @Test func theReadinessDeadlineStartsTheReadyOnesAndALateMemberJoinsAtTheCurrentPosition() throws {
        var m = machine(deadline: .seconds(5))
        try m.add(name: "A", offsetMilliseconds: 0, now: t0)
        try m.add(name: "Slow", offsetMilliseconds: 0, now: t0)
        #expect(m.ready(name: "A", route: .airPlay1, lead: .seconds(2), now: at(ms: 100)).isEmpty)
        #expect(m.nextWake == at(ms: 5000))
        #expect(m.tick(now: at(ms: 4999)).start.isEmpty)
        let start = m.tick(now: at(ms: 5000)).start
        #expect(start.map(\.name) == ["A"])
        let p0 = try #require(m.p0)
        #expect(p0 == at(ms: 5000 + 300 + 2000))
        // Slow is ready 10 s later: its first packet is the first one it can still send 300 ms ahead.
        let now = at(ms: 15_000)
        let late = m.ready(name: "Slow", route: .airPlay1, lead: .seconds(2), now: now)
        let s = try #require(late.first?.schedule)
        #expect(late.map(\.name) == ["Slow"])
        let send = sendTime(s, leadMs: 2000)
        #expect(send >= now + .milliseconds(300))
        #expect(send - .nanoseconds(pacer.nanoseconds(ofPacket: 1)) < now + .milliseconds(300))  // the first such packet
        // On the same timeline: packet k plays at P0 + t(k).
        #expect(s.firstPlayInstant == p0 + .nanoseconds(pacer.nanoseconds(ofPacket: s.firstPacket)))
        #expect(m.packetHeard(at: now) == (now - p0).nanoseconds * 44_100 / 1_000_000_000 / 352)
    }

    @Test func aFailedMemberIsRetriedBoundedTimesAndRejoins() throws {
        var m = machine(retries: 2)
        try m.add(name: "A", offsetMilliseconds: 0, now: t0)
        try m.add(name: "B", offsetMilliseconds: 0, now: t0)
        _ = m.ready(name: "A", route: .airPlay1, lead: .seconds(2), now: at(ms: 0))
        _ = m.ready(name: "B", route: .airPlay1, lead: .seconds(2), now: at(ms: 0))
        m.started(name: "A")
        m.started(name: "B")
        m.ended(name: "B", error: "connection lost", completed: false, now: at(ms: 10_000))
        #expect(m.members[1].state == .lost)
        #expect(m.nextWake == at(ms: 12_000))
        #expect(m.tick(now: at(ms: 11_000)).retry.isEmpty)
        #expect(m.tick(now: at(ms: 12_000)).retry == ["B"])
        #expect(m.members[1].attempts == 2)
        let again = m.ready(name: "B", route: .airPlay1, lead: .seconds(2), now: at(ms: 12_500))
        #expect(try #require(again.first).schedule.firstPacket > 0)
        m.started(name: "B")
        #expect(m.members[1].state == .rejoined)
        // Second failure: one retry left; third: failed for good.
        m.ended(name: "B", error: "x", completed: false, now: at(ms: 20_000))
        #expect(m.tick(now: at(ms: 22_000)).retry == ["B"])
        m.ended(name: "B", error: "refused", completed: false, now: at(ms: 23_000))
        #expect(m.members[1].state == .failed)
        #expect(m.members[1].error == "refused")
        #expect(!m.isDone)
        m.ended(name: "A", error: nil, completed: true, now: at(ms: 60_000))
        #expect(m.isDone)
        #expect(m.members[0].playedWhole)
        #expect(!m.members[1].playedWhole)
    }

    @Test func noRetryOnceTheProgrammeIsOverAndRemovedOrStoppedMembersStayOut() throws {
        var m = machine()
        try m.add(name: "A", offsetMilliseconds: 0, now: t0)
        try m.add(name: "B", offsetMilliseconds: 0, now: t0)
        try m.add(name: "C", offsetMilliseconds: 0, now: t0)
        for n in ["A", "B", "C"] { _ = m.ready(name: n, route: .airPlay1, lead: .seconds(2), now: t0) }
        let p0 = try #require(m.p0)
        m.programmeEnded(packets: 1253)  // ≈ 10 s
        // B drops 1 s before the programme ends: a retry 2 s later would find nothing left.
        m.ended(name: "B", error: "lost", completed: false, now: p0 + .seconds(9))
        #expect(m.members[1].state == .failed)
        let removed = m.remove(name: "C")
        #expect(removed)
        m.ended(name: "C", error: nil, completed: false, now: p0 + .seconds(9))
        #expect(m.members[2].state == .removed)
        #expect(m.ready(name: "C", route: .airPlay1, lead: .seconds(2), now: p0 + .seconds(9)).isEmpty)
        m.stop()
        m.ended(name: "A", error: nil, completed: false, now: p0 + .seconds(9))
        #expect(m.members[0].state == .finished)
        #expect(!m.members[0].playedWhole)  // stopped before the end
        #expect(m.isDone)
        #expect(m.position(at: p0 + .seconds(60)) < 10.1)
    }

    @Test func aFailureANewSessionWouldRepeatIsNotRetried() throws {
        var m = machine()
        try m.add(name: "Buffered", offsetMilliseconds: 0, now: t0)
        m.ended(name: "Buffered", error: "buffered members are not supported in a group yet", completed: false,
                retryable: false, now: at(ms: 100))
        #expect(m.members[0].state == .failed)
        #expect(m.members[0].attempts == 1)
        #expect(m.isDone)
    }

    @Test func namesAreUniqueAndOffsetsBounded() throws {
        var m = machine()
        try m.add(name: "A", offsetMilliseconds: 0, now: t0)
        #expect(throws: ATVError.self) { try m.add(name: "A", offsetMilliseconds: 0, now: t0) }
        #expect(throws: ATVError.self) { try m.add(name: "B", offsetMilliseconds: .infinity, now: t0) }
        m.remove(name: "A")
        try m.add(name: "A", offsetMilliseconds: 20, now: t0)  // a removed name can come back
        #expect(m.members.count == 1 && m.members[0].state == .joining)
    }
}
