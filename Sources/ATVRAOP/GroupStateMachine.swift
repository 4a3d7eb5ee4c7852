// The group stream's rules (issue 17), pure: members join, get ready, are given their place on
// the one timeline, play, drop out, are retried and rejoin, finish. Time is injected (the
// sender's monotonic `NIODeadline`); the shell (`RAOPGroupStream`) runs the sessions and feeds
// this machine what happened.
//
// The timeline: P0 is the instant programme packet 0's first frame is heard; packet k is heard
// at P0 + k·fpp/44100. A member with offset d (ms, its amplifier's own delay: positive = feed it
// earlier) hears packet k at P0 + t(k) − d, and sends it its lead (latency) before that. P0 is
// chosen once every member is ready, or the readiness deadline passed, so that every ready
// member's first send is at least `joinMargin` ahead of now. A member ready after that joins at
// the current position: its first packet is the first one whose send time is still `joinMargin`
// ahead of now.
import ATVCore
import NIOCore

struct GroupStateMachine: Sendable {
    struct Config: Sendable, Equatable {
        var readinessDeadline: Duration = .seconds(5)
        /// Retries of a member that failed (beyond its first attempt).
        var retries: Int = 3
        var retryDelay: Duration = .seconds(2)
        /// A member's first packet is sent at least this long after it is given its place.
        var joinMargin: Duration = .milliseconds(300)
        var pacer = RAOPPacer()
    }

    typealias State = RAOPGroupMemberStatus.State

    struct Member: Sendable, Equatable {
        var name: String
        /// The member's offset in nanoseconds (positive: it is fed earlier).
        var offset: Int64
        var state: State = .joining
        /// Sessions started (1 = the first attempt).
        var attempts = 1
        var route: AirPlayAudioRoute?
        /// Ready and waiting for its place (P0 not chosen yet); its lead in nanoseconds.
        var waitingLead: Int64?
        /// Its place on the timeline in the current (or last) attempt.
        var schedule: GroupMemberSchedule?
        var error: String?
        /// Failed at least once (so it cannot have played the whole stream).
        var failedOnce = false
        var retryAt: NIODeadline?
        var playedWhole = false

        var isTerminal: Bool { state == .finished || state == .failed || state == .removed }
    }

    let config: Config
    let startedAt: NIODeadline
    private(set) var p0: NIODeadline?
    private(set) var members: [Member] = []
    /// Programme packets in all, once the producer ended.
    private(set) var programmeEnd: Int64?
    private(set) var stopped = false

    init(config: Config = Config(), now: NIODeadline) {
        self.config = config
        startedAt = now
    }

    // MARK: members

    /// Adds a member (joining). A name in use by a member still in the group is refused.
    mutating func add(name: String, offsetMilliseconds: Double, now: NIODeadline) throws(ATVError) {
        if let i = index(name) {
            guard members[i].isTerminal else { throw ATVError.invalidValue("\(name) is already in the group") }
            members.remove(at: i)
        }
        guard offsetMilliseconds.isFinite, abs(offsetMilliseconds) <= 10_000 else {
            throw ATVError.invalidValue("offset \(offsetMilliseconds) ms of \(name) is outside ±10000 ms")
        }
        members.append(Member(name: name, offset: Int64((offsetMilliseconds * 1_000_000).rounded())))
    }

    /// The member's session is set up; `lead` = how long before a frame plays it sends it. Returns
    /// the members (this one, or every waiting one when this completes the set) to start now.
    mutating func ready(name: String, route: AirPlayAudioRoute?, lead: Duration,
                        now: NIODeadline) -> [(name: String, schedule: GroupMemberSchedule)] {
        guard let i = index(name), !members[i].isTerminal, !stopped else { return [] }
        members[i].route = route
        let leadNs = RAOPPacer.nanoseconds(lead)
        if p0 != nil {
            let schedule = lateSchedule(offset: members[i].offset, lead: leadNs, now: now)
            members[i].schedule = schedule
            return [(name, schedule)]
        }
        members[i].waitingLead = leadNs
        let allReady = members.allSatisfy { $0.isTerminal || $0.waitingLead != nil }
        return allReady || now >= startedAt + Self.amount(config.readinessDeadline) ? choose(now: now) : []
    }

    /// The member's first packet is scheduled (it plays).
    mutating func started(name: String) {
        guard let i = index(name), !members[i].isTerminal else { return }
        members[i].state = members[i].failedOnce ? .rejoined : .playing
        members[i].error = nil
    }

    /// The member's session ended: `error` nil = it ended cleanly, `completed` = it sent the whole
    /// programme (its reader reached the end). A failed one is retried while retries remain and
    /// the programme still has something left for it, unless `retryable` is false (a failure a
    /// new session would only repeat, such as a route the group cannot drive).
    mutating func ended(name: String, error: String?, completed: Bool, retryable: Bool = true, now: NIODeadline) {
        guard let i = index(name), members[i].state != .removed else { return }
        var m = members[i]
        m.waitingLead = nil
        if let error {
            m.error = error
            m.failedOnce = true
            if !stopped, retryable, m.attempts <= config.retries, !programmeOver(by: now + Self.amount(config.retryDelay)) {
                m.state = .lost
                m.retryAt = now + Self.amount(config.retryDelay)
            } else {
                m.state = .failed
                m.retryAt = nil
            }
        } else {
            m.state = .finished
            m.playedWhole = completed && !m.failedOnce && m.schedule?.firstPacket == 0
        }
        members[i] = m
    }

    /// Takes the member out (its session is torn down; it is not retried).
    @discardableResult
    mutating func remove(name: String) -> Bool {
        guard let i = index(name), members[i].state != .removed else { return false }
        members[i].state = .removed
        members[i].waitingLead = nil
        members[i].retryAt = nil
        return true
    }

    /// The group stops: nothing is retried or started any more.
    mutating func stop() {
        stopped = true
        for i in members.indices where members[i].state == .lost {
            members[i].state = .failed
            members[i].retryAt = nil
        }
    }

    /// The producer ended after `packets` programme packets.
    mutating func programmeEnded(packets: Int64) { programmeEnd = packets }

    // MARK: time

    /// Chooses P0 once the readiness deadline passed (with the members ready by then) and returns
    /// the members to start now and the members whose retry is due (their next attempt counted).
    mutating func tick(now: NIODeadline) -> (start: [(name: String, schedule: GroupMemberSchedule)], retry: [String]) {
        var start: [(name: String, schedule: GroupMemberSchedule)] = []
        if p0 == nil, !stopped, now >= startedAt + Self.amount(config.readinessDeadline), members.contains(where: { $0.waitingLead != nil }) {
            start = choose(now: now)
        }
        var retry: [String] = []
        for i in members.indices where members[i].state == .lost {
            guard let at = members[i].retryAt, at <= now else { continue }
            if programmeOver(by: now) {
                members[i].state = .failed
                members[i].retryAt = nil
                continue
            }
            members[i].retryAt = nil
            members[i].attempts += 1
            retry.append(members[i].name)
        }
        return (start, retry)
    }

    /// When `tick` has something to do next (the readiness deadline, a retry).
    var nextWake: NIODeadline? {
        var times = members.compactMap(\.retryAt)
        if p0 == nil, !stopped { times.append(startedAt + Self.amount(config.readinessDeadline)) }
        return times.min()
    }

    /// Every member finished, failed or was removed.
    var isDone: Bool { members.allSatisfy(\.isTerminal) }

    /// The programme packet being heard at `now` (0 before P0).
    func packetHeard(at now: NIODeadline) -> Int64 {
        guard let p0, now > p0 else { return 0 }
        let frames = (now - p0).nanoseconds * Int64(config.pacer.sampleRate) / 1_000_000_000
        return frames / Int64(config.pacer.framesPerPacket)
    }

    /// Seconds of the programme heard at `now`.
    func position(at now: NIODeadline) -> Double {
        guard let p0, now > p0 else { return 0 }
        var ns = (now - p0).nanoseconds
        if let end = programmeEnd { ns = min(ns, config.pacer.nanoseconds(ofPacket: end)) }
        return Double(ns) / 1e9
    }

    // MARK: private

    private static func amount(_ d: Duration) -> TimeAmount { .nanoseconds(RAOPPacer.nanoseconds(d)) }

    private func index(_ name: String) -> Int? { members.firstIndex { $0.name == name } }

    /// P0 with every waiting member's first send `joinMargin` ahead; those members start at packet 0.
    private mutating func choose(now: NIODeadline) -> [(name: String, schedule: GroupMemberSchedule)] {
        let margin = RAOPPacer.nanoseconds(config.joinMargin)
        let need = members.compactMap { m in m.waitingLead.map { $0 + m.offset } }.max() ?? 0
        let p0 = now + .nanoseconds(margin + max(0, need))
        self.p0 = p0
        var start: [(name: String, schedule: GroupMemberSchedule)] = []
        for i in members.indices where members[i].waitingLead != nil {
            let schedule = GroupMemberSchedule(firstPacket: 0, firstPlayInstant: p0 - .nanoseconds(members[i].offset))
            members[i].schedule = schedule
            members[i].waitingLead = nil
            start.append((members[i].name, schedule))
        }
        return start
    }

    /// The place of a member ready after P0: the first packet it can still send `joinMargin` ahead.
    private func lateSchedule(offset: Int64, lead: Int64, now: NIODeadline) -> GroupMemberSchedule {
        guard let p0 else { preconditionFailure("lateSchedule before P0") }
        // Packet k is sent at P0 + t(k) − offset − lead; it must be ≥ now + margin.
        let needed = (now - p0).nanoseconds + RAOPPacer.nanoseconds(config.joinMargin) + offset + lead
        var k: Int64 = 0
        if needed > 0 {
            let perPacket = Int64(config.pacer.framesPerPacket) * 1_000_000_000
            k = (needed * Int64(config.pacer.sampleRate) + perPacket - 1) / perPacket
            while config.pacer.nanoseconds(ofPacket: k) < needed { k += 1 }
            while k > 0, config.pacer.nanoseconds(ofPacket: k - 1) >= needed { k -= 1 }
        }
        return GroupMemberSchedule(firstPacket: k,
                                   firstPlayInstant: p0 + .nanoseconds(config.pacer.nanoseconds(ofPacket: k) - offset))
    }

    /// The whole programme will have been heard by `instant`.
    private func programmeOver(by instant: NIODeadline) -> Bool {
        guard let p0, let end = programmeEnd else { return false }
        return instant >= p0 + .nanoseconds(config.pacer.nanoseconds(ofPacket: end))
    }
}

