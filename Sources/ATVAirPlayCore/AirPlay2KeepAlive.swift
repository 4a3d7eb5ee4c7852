// The keep-alive of an AirPlay 2 connection: `POST /feedback` every `interval` (2 s, as iOS and
// pyatv send it) while a session lives. Pure: the shell (`AirPlay2Connection.startFeedback`)
// sleeps until `nextDue`, sends, and reports each outcome here; this decides when the next one is
// due and whether the receiver is gone. Any status counts as an answer (some receivers answer
// 200, others 400 or 404 to a request they do not use; they are alive all the same).

/// When to send `POST /feedback`, and when unanswered ones mean the receiver is gone.
package struct AirPlay2KeepAlive: Sendable, Equatable {
    package enum Decision: Sendable, Equatable {
        /// Keep going; send the next one at `nextDue`.
        case continueAt(ContinuousClock.Instant)
        /// `misses` in a row went unanswered: end the connection.
        case gone(misses: Int)
    }

    package let interval: Duration
    /// Unanswered in a row that end the connection; nil: never (an audio stream decides with
    /// `AirPlay2StallRule` instead).
    package let failAfterMisses: Int?
    package private(set) var misses = 0
    /// Answers so far, by status.
    package private(set) var answers: [Int: Int] = [:]

    package init(interval: Duration = .seconds(2), failAfterMisses: Int? = 2) {
        self.interval = max(interval, .milliseconds(1))
        self.failAfterMisses = failAfterMisses.map { max($0, 1) }
    }

    /// The first one goes one interval after the session starts.
    package func firstDue(startedAt: ContinuousClock.Instant) -> ContinuousClock.Instant { startedAt + interval }

    /// The receiver answered (any status) at `now`.
    package mutating func answered(status: Int, now: ContinuousClock.Instant) -> Decision {
        misses = 0
        answers[status, default: 0] += 1
        return .continueAt(now + interval)
    }

    /// The request failed or timed out at `now`.
    package mutating func missed(now: ContinuousClock.Instant) -> Decision {
        misses += 1
        if let limit = failAfterMisses, misses >= limit { return .gone(misses: misses) }
        return .continueAt(now + interval)
    }
}
