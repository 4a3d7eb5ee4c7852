// When is an AirPlay 2 receiver stuck? Only from signals every receiver gives (issue 14 item 3):
// its answers on the RTSP connection (`POST /feedback` every couple of seconds, SET_PARAMETER,
// FLUSH), requests on the event channel, and, when present, timing or retransmit requests.
// Receivers are not obliged to ask for timing (one that plays by its own clock, or follows PTP,
// never does) nor for retransmits (nothing lost), so their absence means nothing. Socket errors
// and a closed connection or event channel end the stream on their own (`AirPlay2Connection.failure`).
// Pure: time is passed in.

/// What a connection knows about its receiver being alive.
public struct AirPlay2Liveness: Sendable, Equatable {
    /// The oldest request still without an answer ("POST /feedback", "SET_PARAMETER", …) and when
    /// it was sent; nil when every request was answered.
    public var oldestUnanswered: (what: String, sentAt: ContinuousClock.Instant)?
    /// The last answer on the control connection (late answers included).
    public var lastAnswer: ContinuousClock.Instant?
    /// The last request the receiver sent on the event channel.
    public var lastEventRequest: ContinuousClock.Instant?

    public init(oldestUnanswered: (what: String, sentAt: ContinuousClock.Instant)? = nil,
                lastAnswer: ContinuousClock.Instant? = nil, lastEventRequest: ContinuousClock.Instant? = nil) {
        self.oldestUnanswered = oldestUnanswered
        self.lastAnswer = lastAnswer
        self.lastEventRequest = lastEventRequest
    }

    public static func == (a: AirPlay2Liveness, b: AirPlay2Liveness) -> Bool {
        a.oldestUnanswered?.what == b.oldestUnanswered?.what && a.oldestUnanswered?.sentAt == b.oldestUnanswered?.sentAt
            && a.lastAnswer == b.lastAnswer && a.lastEventRequest == b.lastEventRequest
    }
}

/// The stuck-receiver decision: a request has gone unanswered for `timeout`, and nothing else came
/// from the receiver in that time.
public struct AirPlay2StallRule: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        /// Alive; decide again at `recheckAt` (nil: nothing is pending, wait for the next request).
        case alive(recheckAt: ContinuousClock.Instant?)
        /// Stuck: `what` has been waiting for its answer for `waited`.
        case stuck(what: String, waited: Duration)
    }

    public var timeout: Duration

    public init(timeout: Duration) { self.timeout = timeout }

    /// `otherSigns`: the last timing or retransmit request (UDP) from the receiver, if any.
    public func verdict(now: ContinuousClock.Instant, liveness: AirPlay2Liveness,
                        otherSigns: ContinuousClock.Instant? = nil) -> Verdict {
        guard let (what, sentAt) = liveness.oldestUnanswered else { return .alive(recheckAt: nil) }
        // The clock runs from the request, or from the last sign of life after it.
        var since = sentAt
        for sign in [liveness.lastAnswer, liveness.lastEventRequest, otherSigns] {
            if let sign, sign > since { since = sign }
        }
        if now - since >= timeout { return .stuck(what: what, waited: now - sentAt) }
        return .alive(recheckAt: since + timeout)
    }
}
