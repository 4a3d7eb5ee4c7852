// CLOCK_MONOTONIC, CLOCK_REALTIME and the offset between them. Carrying an instant from one clock
// to the other needs both clocks read at the same moment; two calls in a row are not that when the
// thread is preempted between them (on a loaded machine: milliseconds), and the instant carried
// moves by the preemption. `realtimeOffset` reads monotonic, realtime, monotonic a few times and
// keeps the reading whose monotonic bracket is narrowest (the least disturbed one), taking the
// realtime reading at the bracket's midpoint. The only place the two clocks are related.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package enum SystemClocks {
    /// CLOCK_MONOTONIC in nanoseconds (NIO's `NIODeadline.now().uptimeNanoseconds` on Linux).
    package static func monotonic() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in nanoseconds since the Unix epoch.
    package static func realtime() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// One realtime reading between two monotonic readings.
    package struct Bracket: Sendable, Hashable {
        package var monotonicBefore: UInt64
        package var realtime: Int64
        package var monotonicAfter: UInt64

        package init(monotonicBefore: UInt64, realtime: Int64, monotonicAfter: UInt64) {
            self.monotonicBefore = monotonicBefore
            self.realtime = realtime
            self.monotonicAfter = monotonicAfter
        }

        /// How long the reading took on the monotonic clock (a preemption inside it widens it).
        package var width: UInt64 { monotonicAfter >= monotonicBefore ? monotonicAfter - monotonicBefore : .max }

        /// realtime − monotonic, the realtime reading taken at the bracket's midpoint.
        package var offset: Int64 {
            let midpoint = monotonicAfter >= monotonicBefore ? monotonicBefore + (monotonicAfter - monotonicBefore) / 2 : monotonicBefore
            return realtime &- Int64(clamping: midpoint)
        }
    }

    /// The narrowest bracket of `readings` (the first of equally narrow ones); nil when there is none.
    package static func narrowest<S: Sequence>(_ readings: S) -> Bracket? where S.Element == Bracket {
        var best: Bracket?
        for r in readings where best.map({ r.width < $0.width }) ?? true { best = r }
        return best
    }

    /// Readings per `realtimeOffset`: one preempted reading is outvoted by the others.
    package static let readings = 4

    /// One bracket read now.
    package static func readBracket() -> Bracket {
        let before = monotonic()
        let real = realtime()
        return Bracket(monotonicBefore: before, realtime: real, monotonicAfter: monotonic())
    }

    /// CLOCK_REALTIME − CLOCK_MONOTONIC now, in nanoseconds (it changes only when the wall clock is
    /// stepped or slewed), from the narrowest of `readings` brackets.
    package static func realtimeOffset() -> Int64 {
        narrowest((0 ..< readings).lazy.map { _ in readBracket() })?.offset ?? (realtime() &- Int64(clamping: monotonic()))
    }

    /// The CLOCK_REALTIME instant (ns since 1970) at the CLOCK_MONOTONIC instant `monotonic`.
    package static func realtime(atMonotonic monotonic: UInt64) -> Int64 {
        Int64(clamping: monotonic) &+ realtimeOffset()
    }

    /// The CLOCK_MONOTONIC instant at the CLOCK_REALTIME instant `realtime` (ns since 1970), e.g. a
    /// kernel time stamp; negative when it lies before the monotonic clock's start.
    package static func monotonic(atRealtime realtime: Int64) -> Int64 {
        realtime &- realtimeOffset()
    }
}
