import ATVAirPlayCore
import Testing

/// `POST /feedback` scheduling and the "receiver gone" rule, with plain instants.
@Suite struct KeepAliveTests {
    let t0 = ContinuousClock.now

    @Test func firstOneIntervalAfterStartThenOneIntervalAfterEachAnswer() {
        var k = AirPlay2KeepAlive(interval: .seconds(2), failAfterMisses: 2)
        #expect(k.firstDue(startedAt: t0) == t0 + .seconds(2))
        // A slow answer (0.7 s) moves the next one: an interval after the answer, not the send.
        #expect(k.answered(status: 200, now: t0 + .milliseconds(2700)) == .continueAt(t0 + .milliseconds(4700)))
        #expect(k.answered(status: 404, now: t0 + .milliseconds(4750)) == .continueAt(t0 + .milliseconds(6750)))
        #expect(k.answers == [200: 1, 404: 1])
        #expect(k.misses == 0)
    }

    @Test func missesInARowEndTheConnectionAndAnAnswerResetsThem() {
        var k = AirPlay2KeepAlive(interval: .seconds(2), failAfterMisses: 2)
        #expect(k.missed(now: t0 + .seconds(3)) == .continueAt(t0 + .seconds(5)))
        // Any status is an answer: 400 from a receiver that does not use /feedback is alive.
        #expect(k.answered(status: 400, now: t0 + .seconds(5)) == .continueAt(t0 + .seconds(7)))
        #expect(k.misses == 0)
        #expect(k.missed(now: t0 + .seconds(8)) == .continueAt(t0 + .seconds(10)))
        #expect(k.missed(now: t0 + .seconds(11)) == .gone(misses: 2))
    }

    @Test func withoutALimitMissesNeverEndTheConnection() {
        var k = AirPlay2KeepAlive(interval: .milliseconds(500), failAfterMisses: nil)
        for i in 1 ... 50 {
            let now = t0 + .seconds(i)
            #expect(k.missed(now: now) == .continueAt(now + .milliseconds(500)))
        }
        #expect(k.misses == 50)
    }

    @Test func nonsenseSettingsAreClamped() {
        var k = AirPlay2KeepAlive(interval: .zero, failAfterMisses: 0)
        #expect(k.interval == .milliseconds(1))
        #expect(k.missed(now: t0) == .gone(misses: 1))
    }
}
