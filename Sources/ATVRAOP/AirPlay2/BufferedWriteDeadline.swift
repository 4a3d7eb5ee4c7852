// How long one write to the buffered (type 103) data connection may wait for the kernel to take it
// before the receiver counts as no longer reading (docs/PTP-AND-BUFFERED-AUDIO.md §4.5). Pure: times
// are PTP master nanoseconds, passed in.
//
// TCP back-pressure is legitimate and no error: shairport-sync stops reading when its 8 MiB buffer
// is full and reads again as it plays, other receivers read in bursts. But a receiver that plays
// must have read every packet before that packet's play time. The window keeps what we wrote at
// most `maximumLead` (3 s) ahead of the playhead and within `audioBufferSize`, so once the
// playhead (by the anchor) has passed everything written before the waiting packet, a receiver
// that still reads has taken all of it and the kernel has room for this one. The deadline is
// that instant plus `writeMargin` (Wi-Fi retransmissions, TCP's backed-off retransmit timer, a
// receiver that reads in bursts); by then a receiver that stopped reading has played everything
// it had and is silent. While no anchor plays (before the first, or paused) the playhead stands
// still: then the limit is a whole window (`maximumLead`) plus the margin.
package extension BufferedSendWindow {
    /// Added to the time the receiver needs to play what it already has.
    static let writeMargin: UInt64 = 3_000_000_000

    /// Nanoseconds the write of the packet whose first frame is stream position `position` may
    /// wait at master time `now` (the packet registered by `write`; everything before it written).
    func writeLimit(packetAt position: UInt64, now: UInt64) -> UInt64 {
        guard case .playing(let p0, let t0) = playback else { return configuration.maximumLead &+ Self.writeMargin }
        // Master time at which the playhead reaches `position`.
        let frames = position > p0 ? position - p0 : 0
        let product = frames.multipliedFullWidth(by: 1_000_000_000)
        let rate = UInt64(configuration.sampleRate)
        let span = product.high < rate ? rate.dividingFullWidth(product).quotient : UInt64.max / 4
        let reached = t0 &+ min(span, UInt64.max / 4)
        return (reached > now ? reached - now : 0) &+ Self.writeMargin
    }
}

/// The write deadline kept for a whole connection (one timer, not one per write): every packet
/// handed to the connection with its deadline (`writeLimit` from when it was handed over, as an
/// instant), removed when the kernel took it (writes complete in order). The connection arms one
/// timer at the earliest deadline pending; when it fires, a packet still pending past its deadline
/// means the receiver stopped reading. Pure: instants are monotonic nanoseconds, passed in.
package struct BufferedWriteWatchdog: Sendable {
    package struct Write: Sendable, Equatable {
        /// The instant by which the kernel must have taken the packet.
        package var deadline: UInt64
        /// The packet's limit and the audio the receiver had left to play when it was handed over (for the message).
        package var limit: UInt64
        package var queued: UInt64

        package init(deadline: UInt64, limit: UInt64, queued: UInt64) {
            self.deadline = deadline
            self.limit = limit
            self.queued = queued
        }
    }

    private var pending: [Write] = []
    private var head = 0
    /// The instant the armed timer fires (nil: none armed).
    package private(set) var armedAt: UInt64?

    package init() {}

    /// Packets handed over and not yet taken.
    package var count: Int { pending.count - head }

    /// A packet handed over; returns the instant to arm a timer at, when none is armed that early.
    package mutating func written(_ write: Write) -> UInt64? {
        pending.append(write)
        guard armedAt.map({ write.deadline < $0 }) ?? true else { return nil }
        armedAt = write.deadline
        return write.deadline
    }

    /// The kernel took the oldest packet pending.
    package mutating func accepted() {
        guard head < pending.count else { return }
        head += 1
        if head == pending.count {
            pending.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 256, head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
    }

    /// A timer fired at `now`: the packet pending past its deadline (the receiver stopped
    /// reading), or else the instant to arm the next timer at (nil: none needed).
    package mutating func fired(now: UInt64) -> (expired: Write?, rearm: UInt64?) {
        if let armed = armedAt, armed <= now { armedAt = nil }
        var earliest: Write?
        for w in pending[head...] where earliest.map({ w.deadline < $0.deadline }) ?? true { earliest = w }
        guard let earliest else { return (nil, nil) }
        if earliest.deadline <= now { return (earliest, nil) }
        guard armedAt.map({ earliest.deadline < $0 }) ?? true else { return (nil, nil) }
        armedAt = earliest.deadline
        return (nil, earliest.deadline)
    }
}
