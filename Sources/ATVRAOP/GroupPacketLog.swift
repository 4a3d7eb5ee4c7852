// The shared encoded stream of a group stream (issue 17): one decode and one encode
// (`RAOPClient.produce`) append programme packets to one log; every member reads it through its
// own cursor (`GroupPacketCursor`, an `EncodedPayloadSource`). The payload arrays are shared (a
// popped `[UInt8]` is the log's own storage, copy-on-write), each member packetizes and seals its
// own copy on send.
//
// Back-pressure: the producer stays `highWater` packets ahead of the reference — the slowest
// healthy cursor, never behind the timeline's `floor` — and resumes once only `lowWater` ahead.
// The shell moves `floor` with time (what is being heard now, less some slack); a cursor that
// falls behind it (a stalled member) or behind the retained history is lost: it stops counting for
// the back-pressure, so it never blocks the producer or the other members, and its next read says
// so. `GroupPacketLog` is pure (no locks, no clock); `GroupPacketFeed` is its thread-safe shell.
import ATVCore
import Synchronization

/// The producer side of an encoded-packet queue (`RAOPClient.produce` pushes into it).
protocol EncodedPayloadSink: Sendable {
    /// Queues `item`, waiting while the consumer(s) are far enough behind. False: stop producing.
    func push(_ item: RAOPSendItem) async -> Bool
}

extension RAOPPayloadPipe: EncodedPayloadSink {}

/// The pure log of programme packets and the cursors that read it.
struct GroupPacketLog {
    /// What a cursor's read gives.
    enum Read {
        /// The next item (the cursor moved past it; `.end`/`.failure` repeat).
        case item(RAOPSendItem)
        /// Not produced yet: wait for `append`'s notification.
        case wait
        /// The cursor fell behind the timeline or the retained history.
        case lost
    }

    struct Cursor: Equatable {
        var position: Int64
        var waiting = false
        var lost = false
    }

    /// The producer waits once it is this many packets ahead of the reference…
    let highWater: Int64
    /// …and resumes once it is only this many ahead.
    let lowWater: Int64

    /// The oldest packet retained: older ones are dropped.
    private(set) var base: Int64 = 0
    /// Index of `storage[0]` (≤ `base`: dropped packets leave `storage` in chunks).
    private var storageBase: Int64 = 0
    private var storage: [RAOPSendItem] = []
    /// `.end` or `.failure`, at index `head`, once the producer finished.
    private(set) var terminal: RAOPSendItem?
    /// The timeline's floor: no healthy cursor is behind it.
    private(set) var floor: Int64 = 0
    private(set) var cursors: [Int: Cursor] = [:]
    private var nextID = 0

    init(highWater: Int, lowWater: Int) {
        self.highWater = Int64(max(1, highWater))
        self.lowWater = Int64(min(max(0, lowWater), max(1, highWater) - 1))
    }

    /// Index of the next packet to be appended (the number of programme packets produced).
    var head: Int64 { storageBase + Int64(storage.count) }

    /// What the producer measures its lead against: the slowest healthy cursor, not behind `floor`.
    var reference: Int64 { max(floor, slowestHealthy ?? floor) }

    /// The position of the slowest cursor not lost (a loop: this runs on every read of every
    /// member, so it allocates nothing).
    private var slowestHealthy: Int64? {
        var slowest: Int64?
        for c in cursors.values where !c.lost {
            if slowest.map({ c.position < $0 }) ?? true { slowest = c.position }
        }
        return slowest
    }

    /// The producer must wait before appending more.
    var producerMustWait: Bool { terminal == nil && head - reference >= highWater }
    /// A waiting producer may go on.
    var producerMayResume: Bool { head - reference <= lowWater }

    // MARK: producer

    /// Appends a packet (or the terminal item); returns the cursors waiting for it (to notify).
    mutating func append(_ item: RAOPSendItem) -> [Int] {
        guard terminal == nil else { return [] }
        if case .packet = item { storage.append(item) } else { terminal = item }
        var woken: [Int] = []
        for (id, c) in cursors where c.waiting && (c.position < head || terminal != nil) {
            cursors[id]?.waiting = false
            woken.append(id)
        }
        return woken
    }

    // MARK: cursors

    /// A cursor whose next read is programme packet `packet` (it may lie ahead of `head`).
    mutating func attach(at packet: Int64) -> Int {
        let id = nextID
        nextID += 1
        cursors[id] = Cursor(position: max(0, packet), lost: packet < base)
        return id
    }

    mutating func detach(_ id: Int) {
        cursors[id] = nil
        trim()
    }

    /// The cursor's next item.
    mutating func read(_ id: Int) -> Read {
        guard var c = cursors[id] else { return .lost }
        if c.lost || c.position < base { return markLost(id) }
        if c.position < head {
            let item = storage[Int(c.position - storageBase)]
            c.position += 1
            c.waiting = false
            cursors[id] = c
            // Only the slowest cursor (the one at `base`) moving can free history.
            if c.position - 1 == base { trim() }
            return .item(item)
        }
        if let terminal { return .item(terminal) }
        cursors[id]?.waiting = true
        return .wait
    }

    private mutating func markLost(_ id: Int) -> Read {
        cursors[id]?.lost = true
        cursors[id]?.waiting = false
        trim()
        return .lost
    }

    // MARK: timeline

    /// Moves the floor (never back); returns the cursors now lost that were waiting (to notify, so
    /// they read `.lost`). Lost cursors stop holding the producer and the history.
    mutating func advanceFloor(to packet: Int64) -> [Int] {
        guard packet > floor else { return [] }
        floor = packet
        var woken: [Int] = []
        for (id, c) in cursors where !c.lost && c.position < floor {
            cursors[id]?.lost = true
            if c.waiting {
                cursors[id]?.waiting = false
                woken.append(id)
            }
        }
        trim()
        return woken
    }

    /// Drops the packets no healthy cursor still needs and that are behind the floor.
    private mutating func trim() {
        let needed = slowestHealthy ?? head
        let keepFrom = min(floor, needed, head)
        guard keepFrom > base else { return }
        base = keepFrom
        // Remove in chunks (an O(n) shift every 256 packets, not one per packet).
        let drop = Int(base - storageBase)
        if drop >= 256 || drop == storage.count {
            storage.removeFirst(drop)
            storageBase = base
        }
    }
}

/// The thread-safe shell around `GroupPacketLog`: the producer (`RAOPClient.produce`) suspends on a
/// continuation while it is far enough ahead (no polling) and is resumed once the reference catches
/// up; a cursor waiting for a packet is told through its `onAvailable` once it is appended.
final class GroupPacketFeed: EncodedPayloadSink, Sendable {
    private struct State {
        var log: GroupPacketLog
        var producer: CheckedContinuation<Bool, Never>?
        var closed = false
        var onAvailable: [Int: @Sendable () -> Void] = [:]
    }

    private let state: Mutex<State>

    init(highWater: Int, lowWater: Int) {
        state = Mutex(State(log: GroupPacketLog(highWater: highWater, lowWater: lowWater)))
    }

    /// Packets produced so far, whether the producer finished (`.end`/`.failure` appended) and
    /// whether it failed (`.failure`).
    var produced: (head: Int64, ended: Bool, failed: Bool) {
        state.withLock { s in
            if case .failure? = s.log.terminal { return (s.log.head, true, true) }
            return (s.log.head, s.log.terminal != nil, false)
        }
    }

    // MARK: producer

    func push(_ item: RAOPSendItem) async -> Bool {
        let (accepted, notify, mustWait) = state.withLock { s -> (Bool, [@Sendable () -> Void], Bool) in
            guard !s.closed else { return (false, [], false) }
            let woken = s.log.append(item)
            return (true, woken.compactMap { s.onAvailable[$0] }, s.log.producerMustWait)
        }
        for n in notify { n() }
        guard accepted else { return false }
        guard mustWait else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { s in
                    if s.closed || Task.isCancelled { return false }
                    if !s.log.producerMustWait { return true }
                    s.producer = cont
                    return nil
                }
                if let now { cont.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                defer { s.producer = nil }
                return s.producer
            }
            waiter?.resume(returning: false)
        }
    }

    /// Ends the producer (its `push` returns false); cursors read what is already there.
    func close() {
        let producer = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.closed = true
            defer { s.producer = nil }
            return s.producer
        }
        producer?.resume(returning: false)
    }

    // MARK: timeline

    /// Moves the timeline's floor: cursors behind it are lost (their next read fails).
    func advanceFloor(to packet: Int64) {
        let (notify, producer) = state.withLock { s -> ([@Sendable () -> Void], CheckedContinuation<Bool, Never>?) in
            let woken = s.log.advanceFloor(to: packet)
            return (woken.compactMap { s.onAvailable[$0] }, Self.releaseProducer(&s))
        }
        for n in notify { n() }
        producer?.resume(returning: true)
    }

    /// A cursor whose first read is programme packet `packet`.
    func cursor(at packet: Int64) -> GroupPacketCursor {
        let id = state.withLock { $0.log.attach(at: packet) }
        return GroupPacketCursor(feed: self, id: id)
    }

    private static func releaseProducer(_ s: inout State) -> CheckedContinuation<Bool, Never>? {
        guard s.producer != nil, s.log.producerMayResume else { return nil }
        defer { s.producer = nil }
        return s.producer
    }

    // MARK: for the cursors

    fileprivate func read(_ id: Int) -> RAOPSendItem? {
        let (read, producer) = state.withLock { s -> (GroupPacketLog.Read, CheckedContinuation<Bool, Never>?) in
            let r = s.log.read(id)
            return (r, Self.releaseProducer(&s))
        }
        producer?.resume(returning: true)
        switch read {
        case .item(let item): return item
        case .wait: return nil
        case .lost:
            return .failure(ATVError.playbackError("fell behind the group stream (the receiver or the network stalled)"))
        }
    }

    fileprivate func setOnAvailable(_ id: Int, _ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.onAvailable[id] = body }
    }

    fileprivate func detach(_ id: Int) {
        let producer = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.log.detach(id)
            s.onAvailable[id] = nil
            return Self.releaseProducer(&s)
        }
        producer?.resume(returning: true)
    }
}

/// One member's read position in the group's `GroupPacketFeed`.
final class GroupPacketCursor: EncodedPayloadSource {
    private let feed: GroupPacketFeed
    private let id: Int
    private let closed = Atomic<Bool>(false)

    fileprivate init(feed: GroupPacketFeed, id: Int) {
        self.feed = feed
        self.id = id
    }

    func pop() -> RAOPSendItem? { feed.read(id) }

    func setOnAvailable(_ body: @escaping @Sendable () -> Void) { feed.setOnAvailable(id, body) }

    func close() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        feed.detach(id)
    }
}
