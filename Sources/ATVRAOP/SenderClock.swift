import ATVAirPlayCore
import NIOCore

/// The time a sender paces and syncs by, injected so that pacing, bursts, sync packets and
/// pause/resume can be tested on a manual clock (an `EmbeddedEventLoop`'s) with no wall-clock waits.
///
/// `now` is the monotonic time of the pacer's schedule; it must be the time base of the event
/// loop the pacer's timers run on (production: `NIODeadline.now()`, which every NIO loop uses).
/// `networkTime` is the clock the receiver synchronises to, read at a monotonic instant: the sync
/// packets say "at network time T the stream is at RTP time R". With NTP timing that is wall-clock
/// time (the receiver asks our timing responder for it); with PTP timing it is `ptp`, the PTP
/// master's timeline, and the sync packets become 0xD7 time announces.
struct SenderClock: Sendable {
    var now: @Sendable () -> NIODeadline
    var networkTime: @Sendable (_ at: NIODeadline) -> NTPTime
    /// The PTP timeline the receiver follows (realtime PTP sessions); nil: NTP timing.
    var ptp: PTPTimeline?

    init(now: @escaping @Sendable () -> NIODeadline, networkTime: @escaping @Sendable (_ at: NIODeadline) -> NTPTime,
         ptp: PTPTimeline? = nil) {
        self.now = now
        self.networkTime = networkTime
        self.ptp = ptp
    }

    /// Monotonic time for the schedule, the wall clock (CLOCK_REALTIME, as the NTP timing
    /// responder answers) for sync packets: the wall clock at the instant given, not read again
    /// (a sync packet pairs the RTP time due at `now` with the wall time of that same instant; a
    /// second read after a preemption would make a receiver play late by the preemption).
    static let system = SenderClock(now: { NIODeadline.now() }, networkTime: { NTPTime.at(monotonic: $0.uptimeNanoseconds) })

    /// The same clock, with sync packets on `timeline`.
    func with(ptp timeline: PTPTimeline?) -> SenderClock {
        var c = self
        c.ptp = timeline
        return c
    }
}

/// A PTP master's timeline as the sender sees it: its clock id (the 0xD7 packet's bytes 20-27) and
/// its time at a monotonic instant. Our master's timescale is CLOCK_MONOTONIC plus an offset fixed
/// at its start (docs/PTP-AND-BUFFERED-AUDIO.md §2.7), and a `NIODeadline` counts CLOCK_MONOTONIC
/// nanoseconds on Linux, so the pacer's instants map onto it exactly: PTP ns = deadline + offset.
package struct PTPTimeline: Sendable, Equatable {
    package var clockID: UInt64
    /// Nanoseconds added to the monotonic clock (`PTPMaster.timescaleOffset`).
    package var timescaleOffset: Int64

    package init(clockID: UInt64, timescaleOffset: Int64) {
        self.clockID = clockID
        self.timescaleOffset = timescaleOffset
    }

    /// The master's time, in nanoseconds, at the monotonic instant `at`.
    package func networkTime(at deadline: NIODeadline) -> UInt64 {
        UInt64(clamping: Int64(clamping: deadline.uptimeNanoseconds) &+ timescaleOffset)
    }
}
