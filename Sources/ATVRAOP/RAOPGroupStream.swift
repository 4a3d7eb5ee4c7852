// Multi-room (issue 17): one stream to several receivers, in step. One decode and one encode
// (`RAOPClient.produce`) fill the shared `GroupPacketFeed`; every member is an ordinary session of
// its own route (own RTSP connection and UDP sockets, `RAOPClient.runSession`) that reads the feed
// through its own cursor and starts on the group's timeline (`GroupStateMachine`: P0, late joins,
// retries). The coordinator here wakes on events, at the machine's deadlines and every 250 ms
// (the feed's floor, progress). The AirPlay 2 PTP members form one clock group: each one's
// SETPEERS lists every member's addresses (newest first, ours last) and is sent again to each
// when one joins or leaves (`GroupClockPeers`, docs/PTP-AND-BUFFERED-AUDIO.md §3.3).
import ATVAirPlayCore
import ATVAudio
import ATVCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One receiver of a group stream.
public struct RAOPGroupMember: Sendable {
    /// The member's name (unique in the group; `remove(name:)` and `setVolume(_:member:)` use it).
    public var name: String
    public var host: String
    public var port: Int
    /// The session's options (route, credentials, latency, volume). The group encodes ALAC once
    /// for every member, so `codec` is ignored; metadata comes from `setMetadata` when given.
    public var options: RAOPOptions
    /// This receiver's own delay in milliseconds (an amplifier's): positive = it is fed earlier.
    public var offsetMilliseconds: Double

    public init(name: String, host: String, port: Int, options: RAOPOptions = RAOPOptions(), offsetMilliseconds: Double = 0) {
        self.name = name
        self.host = host
        self.port = port
        self.options = options
        self.offsetMilliseconds = offsetMilliseconds
    }
}

/// How a group stream starts and copes with failing members.
public struct RAOPGroupOptions: Sendable {
    /// The start instant is chosen once every member is ready or this long after `stream` began.
    public var readinessDeadline: Duration
    /// A member that fails is retried this many times (then it has failed).
    public var retries: Int
    /// Wait between a member's failure and its retry.
    public var retryDelay: Duration
    /// A member's first packet is sent at least this long after it is given its place.
    package var joinMargin: Duration = .milliseconds(300)
    /// A member more than this far behind what is being heard is lost (stalled).
    package var stallTolerance: Duration = .seconds(1)

    public init(readinessDeadline: Duration = .seconds(5), retries: Int = 3, retryDelay: Duration = .seconds(2)) {
        self.readinessDeadline = readinessDeadline
        self.retries = max(0, retries)
        self.retryDelay = retryDelay
    }
}

/// A member's state as the progress and the report show it.
public struct RAOPGroupMemberStatus: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Connecting and setting up, or waiting for the group's start.
        case joining
        case playing
        /// Dropped out; it is retried.
        case lost
        /// Playing again after it was lost.
        case rejoined
        /// Its session ended at the end of the stream (or on `stop`).
        case finished
        /// It failed and is not retried any more.
        case failed
        /// `remove(name:)` took it out.
        case removed
    }

    public var name: String
    public var route: AirPlayAudioRoute?
    public var state: State
    /// Sessions started for it (1 = first attempt).
    public var attempts: Int
    /// Its last failure.
    public var error: String?

    /// A member's state as `progressUpdates` reports it.
    public init(name: String, route: AirPlayAudioRoute?, state: State, attempts: Int = 1, error: String? = nil) {
        self.name = name
        self.route = route
        self.state = state
        self.attempts = attempts
        self.error = error
    }
}

/// Progress of a group stream.
public struct RAOPGroupProgress: Sendable {
    /// Seconds of the programme heard.
    public var position: Double
    public var duration: Double?
    public var members: [RAOPGroupMemberStatus]

    /// A progress update: the programme's position and every member's state.
    public init(position: Double, duration: Double?, members: [RAOPGroupMemberStatus]) {
        self.position = position
        self.duration = duration
        self.members = members
    }
}

/// How one member's part of a group stream ended.
public struct RAOPGroupMemberOutcome: Sendable {
    public var name: String
    public var route: AirPlayAudioRoute?
    /// It played the stream from its start to its end, never lost.
    public var playedWhole: Bool
    public var state: RAOPGroupMemberStatus.State
    public var error: String?
    /// Its last session's report (nil when no session got as far as sending).
    public var report: RAOPStreamReport?
    /// Sessions started (1: never retried).
    public var attempts: Int = 1

    /// One member's outcome as `stream` reports it.
    public init(name: String, route: AirPlayAudioRoute?, playedWhole: Bool, state: RAOPGroupMemberStatus.State,
                error: String? = nil, report: RAOPStreamReport? = nil, attempts: Int = 1) {
        self.name = name
        self.route = route
        self.playedWhole = playedWhole
        self.state = state
        self.error = error
        self.report = report
        self.attempts = attempts
    }
}

/// What a group stream did.
public struct RAOPGroupReport: Sendable {
    public var members: [RAOPGroupMemberOutcome]
    /// `stop()` ended it early.
    public var stopped: Bool
    /// The source failed (a file that cannot be decoded further, a URL that broke off): the
    /// decoder's error as a single stream would have thrown it. Every member then ended early.
    public var sourceError: (any Error)?

    /// Seconds of the source streamed: by default as the member that got furthest into it
    /// counted them (its report's `sourceFrames`; 0 when no member sent any).
    public var seconds: Double

    /// The report of a group stream; `seconds` nil: from the members' reports.
    public init(members: [RAOPGroupMemberOutcome], stopped: Bool, seconds: Double? = nil, sourceError: (any Error)? = nil) {
        self.members = members
        self.stopped = stopped
        self.sourceError = sourceError
        self.seconds = seconds ?? Double(members.compactMap { $0.report?.sourceFrames }.max() ?? 0) / 44_100
    }

    /// At least one member played the whole stream (the CLI's exit status is non-zero only when none did).
    public var anyPlayedWhole: Bool { members.contains { $0.playedWhole } }
}

/// One stream to several AirPlay receivers (AirPlay 1 and AirPlay 2 realtime), in step: one decode
/// and one encode feed every member; each member has its own session on the one timeline, its
/// own volume, and is retried (rejoining at the current position) when it fails, without stopping
/// the others. Members can be added and removed while it plays.
public final class RAOPGroupStream: Sendable {
    private struct Shared {
        var definitions: [String: RAOPGroupMember] = [:]
        var order: [String] = []
        var machine: GroupStateMachine?
        var feed: GroupPacketFeed?
        /// Sessions to start (first attempts and retries) by the coordinator.
        var toLaunch: [String] = []
        var clients: [String: RAOPClient] = [:]
        var waiting: [String: CheckedContinuation<(source: any EncodedPayloadSource, schedule: GroupMemberSchedule), Error>] = [:]
        var reports: [String: RAOPStreamReport] = [:]
        var starts: [String: GroupMemberStart] = [:]
        var volumes: [String: Double] = [:]
        var metadata: MediaMetadata?
        /// The PTP members (SETPEERS names them all) and how to tell each one's session of a change.
        var clockPeers = GroupClockPeers()
        var peerSinks: [String: @Sendable ([[String]]) -> Void] = [:]
        /// The running stream's source failure, once it failed.
        var sourceFailure: SourceFailure?
        /// The audio sockets of the running stream, one per local address, on `sendLoop`.
        var audioSenders: [String: UDPBatchSender] = [:]
        var running = false
        var stopRequested = false
    }

    private let shared = Mutex(Shared())
    private let wakeup = RAOPWakeup()
    /// Every member's UDP sockets and pacer live on this one loop: the members share the group's
    /// schedule, so their bursts fall due together and go out in one wake-up of one thread.
    private let sendLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    private let options: RAOPGroupOptions
    private let logger: Logger
    private let progress = Broadcaster<RAOPGroupProgress>(bufferingPolicy: .bufferingNewest(16))
    private static let pacer = RAOPPacer()

    public init(members: [RAOPGroupMember], options: RAOPGroupOptions = .init(), logger: Logger) {
        self.options = options
        self.logger = logger
        shared.withLock { s in
            for m in members where s.definitions[m.name] == nil {
                s.definitions[m.name] = m
                s.order.append(m.name)
            }
        }
    }

    /// Progress (about twice a second while it plays).
    public func progressUpdates() -> AsyncStream<RAOPGroupProgress> { progress.subscribe() }

    /// Adds a member; while the stream plays it joins at the current position.
    public func add(_ member: RAOPGroupMember) {
        let refused: String? = shared.withLock { s in
            if var machine = s.machine {
                do throws(ATVError) {
                    try machine.add(name: member.name, offsetMilliseconds: member.offsetMilliseconds, now: .now())
                } catch {
                    return error.description
                }
                s.machine = machine
                s.toLaunch.append(member.name)
            } else if s.definitions[member.name] != nil {
                return "\(member.name) is already in the group"
            }
            if !s.order.contains(member.name) { s.order.append(member.name) }
            s.definitions[member.name] = member
            return nil
        }
        if let refused { logger.error("group: cannot add \(member.name): \(refused)") }
        wakeup.signal()
    }

    /// Takes a member out (TEARDOWN); the others go on.
    public func remove(name: String) {
        let (client, waiter) = shared.withLock { s -> (RAOPClient?, CheckedContinuation<(source: any EncodedPayloadSource, schedule: GroupMemberSchedule), Error>?) in
            if s.machine == nil {
                s.definitions[name] = nil
                s.order.removeAll { $0 == name }
                return (nil, nil)
            }
            s.machine?.remove(name: name)
            s.toLaunch.removeAll { $0 == name }
            return (s.clients[name], s.waiting.removeValue(forKey: name))
        }
        waiter?.resume(throwing: ATVError.invalidState("\(name) was removed from the group"))
        client?.stop()
        wakeup.signal()
    }

    /// Volume of one member in percent; applied now when it plays, else when it starts.
    public func setVolume(_ percent: Double, member name: String) async throws {
        guard (0...100).contains(percent) else { throw ATVError.invalidValue("volume \(percent) is outside 0…100") }
        let client = try shared.withLock { s -> RAOPClient? in
            guard s.definitions[name] != nil else { throw ATVError.invalidValue("\(name) is not a member of the group") }
            s.volumes[name] = percent
            return s.clients[name]
        }
        try await client?.setVolume(percent)
    }

    /// Title/artist/album/artwork to every member (and to members that join later).
    public func setMetadata(_ metadata: MediaMetadata) async {
        let clients = shared.withLock { s -> [RAOPClient] in
            s.metadata = metadata
            return Array(s.clients.values)
        }
        for c in clients { try? await c.setMetadata(metadata) }
    }

    /// Ends the stream: every member is torn down; `stream` returns with `stopped = true`.
    public func stop() {
        let (clients, waiters) = shared.withLock { s in
            guard s.running else { return ([RAOPClient](), [CheckedContinuation<(source: any EncodedPayloadSource, schedule: GroupMemberSchedule), Error>]()) }
            s.stopRequested = true
            s.machine?.stop()
            s.toLaunch = []
            let waiters = Array(s.waiting.values)
            s.waiting = [:]
            return (Array(s.clients.values), waiters)
        }
        for w in waiters { w.resume(throwing: ATVError.invalidState("the group stream was stopped")) }
        for c in clients { c.stop() }
        wakeup.signal()
    }

    /// Streams `packets` (s16le stereo 44.1 kHz) to every member until the source ends (plus
    /// latency padding), every member ended, or `stop()`.
    public func stream<S: AsyncSequence & Sendable>(_ packets: S) async throws -> RAOPGroupReport where S.Element == PCMPacket {
        let perSecond = Self.pacer.sampleRate / Self.pacer.framesPerPacket
        let feed = GroupPacketFeed(highWater: 2 * perSecond, lowWater: perSecond / 2)
        let (latency, leadIn) = try shared.withLock { s -> (Int, Int) in
            guard !s.running else { throw ATVError.invalidState("this group stream is already running") }
            guard !s.order.isEmpty else { throw ATVError.invalidValue("a group stream needs at least one member") }
            var machine = GroupStateMachine(
                config: .init(readinessDeadline: options.readinessDeadline, retries: options.retries,
                              retryDelay: options.retryDelay, joinMargin: options.joinMargin),
                now: .now())
            for name in s.order {
                guard let m = s.definitions[name] else { continue }
                try machine.add(name: m.name, offsetMilliseconds: m.offsetMilliseconds, now: .now())
            }
            s.machine = machine
            s.feed = feed
            s.toLaunch = s.order
            s.running = true
            s.stopRequested = false
            let defs = s.definitions.values
            return (defs.map(\.options.latencyFrames).max() ?? 88_200, defs.map(\.options.leadInPackets).max() ?? 9)
        }
        defer {
            let senders = shared.withLock { s in
                s.running = false
                s.feed = nil
                defer { s.audioSenders = [:] }
                return Array(s.audioSenders.values)
            }
            for sender in senders { sendLoop.execute { sender.close() } }
        }
        let fpp = Self.pacer.framesPerPacket
        // Silence after the source: the member with the longest latency plays everything.
        let padding = (latency + fpp - 1) / fpp + 1
        let sourceFailure = SourceFailure()
        shared.withLock { $0.sourceFailure = sourceFailure }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                await RAOPClient.produce(SourceFailure.Recording(base: packets, failure: sourceFailure), into: feed, codec: .alac, framesPerPacket: fpp, leadIn: leadIn, padding: padding)
                let (head, ended, failed) = feed.produced
                let waiters = shared.withLock { s -> [Waiter] in
                    if ended { s.machine?.programmeEnded(packets: head) }
                    // The source failed: members end with its error when they reach it; a retry
                    // would only read it again, and a member not started yet never starts.
                    guard failed else { return [] }
                    s.machine?.stop()
                    defer { s.waiting = [:] }
                    return Array(s.waiting.values)
                }
                for w in waiters { w.resume(throwing: ATVError.playbackError("the source failed before this member started")) }
                wakeup.signal()
            }
            await coordinate(feed: feed, group: &group)
            feed.close()
            group.cancelAll()
        }
        return shared.withLock { s in
            let members = (s.machine?.members ?? []).map { m in
                RAOPGroupMemberOutcome(name: m.name, route: m.route, playedWhole: m.playedWhole, state: m.state,
                                       error: m.error, report: s.reports[m.name], attempts: m.attempts)
            }
            return RAOPGroupReport(members: members, stopped: s.stopRequested, sourceError: sourceFailure.error)
        }
    }

    /// Launches sessions, moves the timeline (P0, retries, the feed's floor), publishes progress,
    /// until every member ended.
    private func coordinate(feed: GroupPacketFeed, group: inout TaskGroup<Void>) async {
        var lastProgress = ContinuousClock.now - .seconds(1)
        let slack = Int64(Self.pacer.sampleRate / Self.pacer.framesPerPacket) * Int64(RAOPPacer.nanoseconds(options.stallTolerance)) / 1_000_000_000
        while true {
            let generation = wakeup.generation
            let now = NIODeadline.now()
            let (launch, resumes, floor, done, next, status) = shared.withLock { s in
                var machine = s.machine!
                var launch = s.toLaunch
                s.toLaunch = []
                let (start, retry) = machine.tick(now: now)
                launch += retry
                s.machine = machine
                let resumes = Self.takeWaiters(start, feed: feed, &s)
                let floor = machine.packetHeard(at: now) - slack
                return (launch, resumes, floor, machine.isDone, machine.nextWake, Self.status(machine, s))
            }
            for r in resumes { r() }
            feed.advanceFloor(to: floor)
            for name in launch { group.addTask { [self] in await runAttempt(name) } }
            if ContinuousClock.now - lastProgress >= .milliseconds(500) || done {
                lastProgress = .now
                progress.yield(status)
            }
            if done { return }
            var until = ContinuousClock.now + .milliseconds(250)
            if let next {
                let inNs = (next - NIODeadline.now()).nanoseconds
                until = min(until, ContinuousClock.now + .nanoseconds(max(0, inNs)) + .milliseconds(1))
            }
            await wakeup.wait(since: generation, until: until)
        }
    }

    private typealias Waiter = CheckedContinuation<(source: any EncodedPayloadSource, schedule: GroupMemberSchedule), Error>

    /// The waiting members that now have their place: readers at their first packets, to resume
    /// outside the lock.
    private static func takeWaiters(_ start: [(name: String, schedule: GroupMemberSchedule)], feed: GroupPacketFeed,
                                    _ s: inout Shared) -> [() -> Void] {
        start.compactMap { entry in
            guard let waiter = s.waiting.removeValue(forKey: entry.name) else { return nil }
            let cursor = feed.cursor(at: entry.schedule.firstPacket)
            return { waiter.resume(returning: (cursor, entry.schedule)) }
        }
    }

    private static func status(_ machine: GroupStateMachine, _ s: Shared) -> RAOPGroupProgress {
        let duration = s.metadata?.duration ?? s.order.lazy.compactMap { s.definitions[$0]?.options.metadata?.duration }.first
        return RAOPGroupProgress(
            position: max(0, machine.position(at: .now()) - Double(leadInSeconds(s))), duration: duration,
            members: machine.members.map {
                RAOPGroupMemberStatus(name: $0.name, route: $0.route, state: $0.state, attempts: $0.attempts, error: $0.error)
            })
    }

    private static func leadInSeconds(_ s: Shared) -> Double {
        let packets = s.definitions.values.map(\.options.leadInPackets).max() ?? 0
        return Double(pacer.nanoseconds(ofPacket: Int64(packets))) / 1e9
    }

    /// One session of one member, from connect to teardown.
    private func runAttempt(_ name: String) async {
        let client: RAOPClient? = shared.withLock { s in
            guard let m = s.definitions[name], s.running, !s.stopRequested,
                  let member = s.machine?.members.first(where: { $0.name == name }), !member.isTerminal else { return nil }
            var options = m.options
            options.codec = .alac
            // --timing / --buffered name what AirPlay 2 members take; an AirPlay 1 member plays on
            // (NTP sync from the same clock) instead of failing.
            options.airPlay2ChoicesOnly = true
            if let v = s.volumes[name] { options.volume = v }
            if let md = s.metadata { options.metadata = md }
            let client = RAOPClient(host: m.host, port: m.port, options: options, logger: logger)
            s.clients[name] = client
            return client
        }
        guard let client else { return }
        let hooks = GroupMemberHooks(
            ready: { [self] route, lead in try await memberReady(name, route: route.route, lead: lead) },
            started: { [self] start in memberStarted(name, start) },
            clockGroup: GroupClockMembership { [self] addresses, changed in joinClockGroup(name, addresses: addresses, changed: changed) },
            eventLoop: sendLoop,
            audioSender: { [self] localIP in try audioSender(localIP) })
        var failure: String?
        var retryable = true
        var completed = false
        do {
            let report = try await client.streamGroupMember(hooks)
            completed = !report.stopped
            shared.withLock { $0.reports[name] = report }
        } catch {
            failure = Self.describe(error)
            // Our own refusals (a route the group cannot drive, a bad value) would only repeat.
            if case .invalidState? = error as? ATVError { retryable = false }
            if case .invalidValue? = error as? ATVError { retryable = false }
        }
        let (sinks, peers, sourceFailed) = shared.withLock { s in
            let sourceFailed = s.sourceFailure?.error != nil
            s.clients[name] = nil
            s.waiting[name] = nil
            s.machine?.ended(name: name, error: failure, completed: completed, retryable: retryable, now: .now())
            // The others hear that it left, unless the stream ends for everyone (the end of the
            // programme, stop): they tear down anyway.
            s.peerSinks[name] = nil
            guard s.clockPeers.leave(name), !(completed && failure == nil), !s.stopRequested else {
                return ([@Sendable ([[String]]) -> Void](), [[String]](), sourceFailed)
            }
            return (Array(s.peerSinks.values), s.clockPeers.newestFirst, sourceFailed)
        }
        for sink in sinks { sink(peers) }
        // A failed source ends every member: the report says it once (`sourceError`).
        if let failure { sourceFailed ? logger.debug("group member \(name): \(failure)") : logger.warning("group member \(name): \(failure)") }
        wakeup.signal()
    }

    /// The running stream's audio socket on `localIP` (opened by the first member that asks).
    ///
    /// Every real-time member on one local address sends its audio from this one socket, so its
    /// receiver sees the same source port as the others'. Nothing in either protocol depends on
    /// that port: neither tells the receiver where audio comes from (RAOP's SETUP announces only our control
    /// and timing ports, AirPlay 2's real-time SETUP our control port), and what a receiver sends
    /// back goes to the member's own control socket, which stays one per member: RAOP retransmit
    /// requests to the control port the SETUP announced, AirPlay 2 ones to the address the
    /// member's sync packets came from (shairport-sync keeps the source of the first control
    /// packet; our virtual receivers use the announced port), and the answers leave from that
    /// control socket. Receivers read their audio port without looking at the sender's address
    /// (shairport-sync and our virtual receivers take every datagram on it); even one that kept
    /// the first packet's source would see one port for the whole session, as this socket lives
    /// as long as the group stream. Only audio shares it: control, NTP timing and PTP keep their
    /// own sockets (PTP's source port must equal its destination port, 319/320).
    private func audioSender(_ localIP: String) throws -> UDPBatchSender {
        try shared.withLock { s in
            guard s.running else { throw ATVError.invalidState("the group stream has ended") }
            if let sender = s.audioSenders[localIP] { return sender }
            let sender = try UDPBatchSender.bind(host: localIP, on: sendLoop)
            s.audioSenders[localIP] = sender
            return sender
        }
    }

    /// A PTP member's session joins the clock group at its SETPEERS: the others hear of it.
    private func joinClockGroup(_ name: String, addresses: [String], changed: @escaping @Sendable ([[String]]) -> Void) -> [[String]] {
        let (peers, others) = shared.withLock { s in
            let peers = s.clockPeers.join(name, addresses: addresses)
            s.peerSinks[name] = changed
            return (peers, s.peerSinks.filter { $0.key != name }.map(\.value))
        }
        logger.debug("group member \(name) joins the clock group: \(peers)")
        for sink in others { sink(peers) }
        return peers
    }

    private func memberReady(_ name: String, route: AirPlayAudioRoute, lead: Duration) async throws
        -> (source: any EncodedPayloadSource, schedule: GroupMemberSchedule) {
        try await withCheckedThrowingContinuation { (cont: Waiter) in
            let resumes: [() -> Void]? = shared.withLock { s in
                guard s.running, !s.stopRequested, var machine = s.machine, !machine.stopped, let feed = s.feed else { return nil }
                s.waiting[name] = cont
                let start = machine.ready(name: name, route: route, lead: lead, now: .now())
                s.machine = machine
                return Self.takeWaiters(start, feed: feed, &s)
            }
            guard let resumes else {
                return cont.resume(throwing: ATVError.invalidState("the group stream was stopped"))
            }
            for r in resumes { r() }
            wakeup.signal()
        }
    }

    private func memberStarted(_ name: String, _ start: GroupMemberStart) {
        shared.withLock { s in
            s.starts[name] = start
            s.machine?.started(name: name)
        }
        logger.info("""
            group member \(name): first programme frame at RTP \(start.programmeRTPTime) (seq \(start.programmeSequence)), \
            anchor \(start.programmeAnchor.uptimeNanoseconds) ns monotonic (\(start.networkAnchor)); \
            joins at programme packet \(start.schedule.firstPacket)
            """)
        wakeup.signal()
    }

    /// Where each member put the programme (tests; the `-v` log says the same).
    var memberStarts: [String: GroupMemberStart] { shared.withLock { $0.starts } }

    private static func describe(_ error: any Error) -> String {
        if let atv = error as? ATVError { return atv.description }
        if error is CancellationError { return "cancelled" }
        return "\(error)"
    }
}

/// The source's failure, kept for the group's report (`RAOPGroupReport.sourceError`).
private final class SourceFailure: Sendable {
    private let stored = Mutex<(any Error)?>(nil)

    var error: (any Error)? { stored.withLock { $0 } }

    /// The source's packets as they are; a failure is kept before it is passed on.
    struct Recording<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == PCMPacket {
        typealias Element = PCMPacket
        let base: Base
        let failure: SourceFailure

        struct AsyncIterator: AsyncIteratorProtocol {
            var base: Base.AsyncIterator
            let failure: SourceFailure

            mutating func next() async throws -> PCMPacket? {
                do {
                    return try await base.next()
                } catch {
                    // Cancelled: the group ended (stopped, or no member left), the source did not fail.
                    if !(error is CancellationError) { failure.stored.withLock { $0 = $0 ?? error } }
                    throw error
                }
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), failure: failure) }
    }
}
