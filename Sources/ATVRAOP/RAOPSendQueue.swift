import Synchronization

/// One entry of the encoded-ahead queue between the producer (source → ALAC) and the pacer.
enum RAOPSendItem: Sendable {
    /// An encoded payload covering `framesPerPacket` frames, `sourceFrames` of which came from the source.
    case packet(payload: [UInt8], sourceFrames: Int, silence: Bool)
    /// The source (and the silence padding) ended: nothing follows.
    case end
    /// Reading or encoding the source failed; raised once everything queued before it was sent.
    case failure(any Error)
}

/// A FIFO of encoded payloads with high/low water marks, without I/O or locking. The producer
/// fills it up to `highWater` and then waits; the consumer wakes the producer only once the queue has
/// drained to `lowWater`, so the hand-off costs one wake-up per `highWater − lowWater` packets.
struct RAOPSendQueue {
    let highWater: Int
    let lowWater: Int
    private var ring: [RAOPSendItem?]
    private var head = 0
    private(set) var count = 0

    init(highWater: Int, lowWater: Int) {
        self.highWater = max(1, highWater)
        self.lowWater = min(max(0, lowWater), self.highWater - 1)
        var capacity = 1
        while capacity < self.highWater + 1 { capacity <<= 1 }
        ring = Array(repeating: nil, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    /// The producer should wait before pushing more.
    var isFull: Bool { count >= highWater }
    /// The consumer has drained enough to wake a waiting producer.
    var wantsRefill: Bool { count <= lowWater }

    /// Appends (the ring grows if a terminal item arrives while full).
    mutating func push(_ item: RAOPSendItem) {
        if count == ring.count { grow() }
        ring[(head + count) & (ring.count - 1)] = item
        count += 1
    }

    mutating func pop() -> RAOPSendItem? {
        guard count > 0 else { return nil }
        let item = ring[head]
        ring[head] = nil
        head = (head + 1) & (ring.count - 1)
        count -= 1
        return item
    }

    mutating func removeAll() {
        ring = Array(repeating: nil, count: ring.count)
        head = 0
        count = 0
    }

    private mutating func grow() {
        var bigger = [RAOPSendItem?](repeating: nil, count: ring.count * 2)
        for i in 0..<count { bigger[i] = ring[(head + i) & (ring.count - 1)] }
        ring = bigger
        head = 0
    }
}

/// The producer/consumer hand-off around `RAOPSendQueue`: the producer task suspends on a
/// continuation while the queue is full (no polling) and is resumed when the consumer drains it to
/// the low-water mark; the consumer (the pacer on its event loop) is told through `onAvailable`
/// only when it found the queue empty.
final class RAOPPayloadPipe: Sendable {
    private struct State {
        var queue: RAOPSendQueue
        var producer: CheckedContinuation<Bool, Never>?
        var consumerWaiting = false
        var closed = false
        var onAvailable: (@Sendable () -> Void)?
    }

    private let state: Mutex<State>

    init(highWater: Int, lowWater: Int) {
        state = Mutex(State(queue: RAOPSendQueue(highWater: highWater, lowWater: lowWater)))
    }

    /// Called (outside the lock) when an item arrives while the consumer waits for one.
    func setOnAvailable(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.onAvailable = body }
    }

    var count: Int { state.withLock { $0.queue.count } }

    // MARK: producer

    /// Queues `item`, then waits while the queue is full. False once the pipe is closed (stop the producer).
    func push(_ item: RAOPSendItem) async -> Bool {
        let (accepted, mustWait) = offer(item)
        guard accepted else { return false }
        guard mustWait else { return true }
        return await waitForRoom()
    }

    /// Queues `item` without waiting: whether it was accepted (false once closed) and whether the
    /// queue is now full (a producer should wait before offering more).
    @discardableResult
    func offer(_ item: RAOPSendItem) -> (accepted: Bool, full: Bool) {
        let (accepted, notify, mustWait) = state.withLock { s -> (Bool, (@Sendable () -> Void)?, Bool) in
            guard !s.closed else { return (false, nil, false) }
            s.queue.push(item)
            var notify: (@Sendable () -> Void)?
            if s.consumerWaiting {
                s.consumerWaiting = false
                notify = s.onAvailable
            }
            return (true, notify, s.queue.isFull)
        }
        notify?()
        return (accepted, mustWait)
    }

    private func waitForRoom() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
                let resumeNow: Bool? = state.withLock { s in
                    if s.closed || Task.isCancelled { return false }
                    if !s.queue.isFull { return true }
                    s.producer = cont
                    return nil
                }
                if let resumeNow { cont.resume(returning: resumeNow) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                defer { s.producer = nil }
                return s.producer
            }
            waiter?.resume(returning: false)
        }
    }

    // MARK: consumer

    /// The next item, or nil when the queue is empty (then `onAvailable` fires on the next push).
    func pop() -> RAOPSendItem? {
        let (item, producer) = state.withLock { s -> (RAOPSendItem?, CheckedContinuation<Bool, Never>?) in
            guard let item = s.queue.pop() else {
                s.consumerWaiting = !s.closed
                return (nil, nil)
            }
            var producer: CheckedContinuation<Bool, Never>?
            if s.queue.wantsRefill, let p = s.producer {
                s.producer = nil
                producer = p
            }
            return (item, producer)
        }
        producer?.resume(returning: true)
        return item
    }

    /// Drops what is queued and ends the producer (its `push` returns false).
    func close() {
        let producer = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.closed = true
            s.consumerWaiting = false
            s.onAvailable = nil
            s.queue.removeAll()
            defer { s.producer = nil }
            return s.producer
        }
        producer?.resume(returning: false)
    }
}
