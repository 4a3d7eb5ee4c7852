@testable import ATVCore
import Testing

/// CLOCK_REALTIME − CLOCK_MONOTONIC from bracketed readings: a reading preempted between its
/// clock reads has a wide bracket and must not decide the offset.
@Suite struct SystemClocksTests {
    typealias Bracket = SystemClocks.Bracket

    @Test func theOffsetIsTheRealtimeReadingAtTheBracketsMidpoint() {
        let b = Bracket(monotonicBefore: 1_000, realtime: 5_000_000_600, monotonicAfter: 1_200)
        #expect(b.width == 200)
        #expect(b.offset == 5_000_000_600 - 1_100)
        // An odd width: the midpoint rounds down.
        #expect(Bracket(monotonicBefore: 1_000, realtime: 2_000, monotonicAfter: 1_001).offset == 1_000)
        // A bracket running backwards (impossible on CLOCK_MONOTONIC) is never the narrowest.
        #expect(Bracket(monotonicBefore: 2_000, realtime: 0, monotonicAfter: 1_000).width == .max)
    }

    /// Four readings of clocks 5 s apart; the second was preempted for 3 ms after its first
    /// monotonic read (so its realtime read is 3 ms late), the fourth after its realtime read.
    @Test func thePreemptedReadingsLoseToTheNarrowestBracket() throws {
        let offset: Int64 = 5_000_000_000
        let readings = [
            Bracket(monotonicBefore: 10_000, realtime: 10_030 + offset, monotonicAfter: 10_060),
            Bracket(monotonicBefore: 10_100, realtime: 3_010_130 + offset, monotonicAfter: 3_010_160),
            Bracket(monotonicBefore: 3_010_200, realtime: 3_010_220 + offset, monotonicAfter: 3_010_240),
            Bracket(monotonicBefore: 3_010_300, realtime: 3_010_330 + offset, monotonicAfter: 6_010_360),
        ]
        let best = try #require(SystemClocks.narrowest(readings))
        #expect(best == readings[2])
        #expect(best.offset == offset)
        // Taking the preempted reading, as two plain reads would, is 1.5 ms off.
        #expect(readings[1].offset - offset == 1_500_000)
        #expect(SystemClocks.narrowest([Bracket]()) == nil)
        // Equally narrow: the first.
        #expect(SystemClocks.narrowest([readings[0], readings[0]]) == readings[0])
    }

    /// The live clocks: monotonic → realtime → monotonic round-trips, and the measured offset
    /// agrees with a plain reading within what one reading on a loaded machine can be off by.
    @Test func theLiveClocksMapBothWays() {
        let mono: UInt64 = 123_456_789_000
        #expect(abs(SystemClocks.monotonic(atRealtime: SystemClocks.realtime(atMonotonic: mono)) - Int64(mono)) <= 1_000_000)
        let bracket = SystemClocks.readBracket()
        #expect(bracket.width < 1_000_000_000)
        #expect(abs(SystemClocks.realtimeOffset() - bracket.offset) < 1_000_000_000)
    }
}
