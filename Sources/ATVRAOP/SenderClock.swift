import ATVAirPlayCore
import NIOCore

/// The time a sender paces and syncs by, injected so that pacing, bursts, sync packets and
/// pause/resume can be tested on a manual clock (an `EmbeddedEventLoop`'s) with no wall-clock waits.
///
/// `now` is the monotonic time of the pacer's schedule; it must be the time base of the event
/// loop the pacer's timers run on (production: `NIODeadline.now()`, which every NIO loop uses).
/// `networkTime` is the clock the receiver synchronises to, read at a monotonic instant: the sync
/// packets say "at network time T the stream is at RTP time R". Today that is NTP wall-clock time
/// (the receiver asks our timing responder for it); a PTP master's timeline plugs in here.
struct SenderClock: Sendable {
    var now: @Sendable () -> NIODeadline
    var networkTime: @Sendable (_ at: NIODeadline) -> NTPTime

    init(now: @escaping @Sendable () -> NIODeadline, networkTime: @escaping @Sendable (_ at: NIODeadline) -> NTPTime) {
        self.now = now
        self.networkTime = networkTime
    }

    /// Monotonic time for the schedule, the wall clock (CLOCK_REALTIME, as the NTP timing
    /// responder answers) for sync packets.
    static let system = SenderClock(now: { NIODeadline.now() }, networkTime: { _ in NTPTime.now() })
}
