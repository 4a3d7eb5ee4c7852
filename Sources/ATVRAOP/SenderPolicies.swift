// The audio sender's rules as pure value types, for AirPlay 1 and AirPlay 2 alike: given plain
// numbers (the injected `SenderClock`'s now, the schedule's anchor, packets sent, the backlog),
// they say what to send and when to wake. The shells do the I/O: `RAOPPacedSender` (timers and
// socket writes on the UDP loop), `RAOPLiveState.makeSync` and the control socket's handler in
// `AudioSender.swift`, with the per-stream state in `RAOPStreamer`.
import ATVAirPlayCore
import NIOCore

/// When audio packets go out. Packet `n` is due at `anchor + n·framesPerPacket/sampleRate`
/// (`RAOPPacer`, no drift). At each wake-up every packet due within `sendAhead` from now goes out in
/// one burst; the next wake-up is when the first packet not sent is due. `sendAhead` zero sends
/// each packet at its own wake-up (per-packet mode); by default AirPlay 1 sends bursts of up to
/// 24 ms (4 packets, `RAOPOptions.raopDefaultSendAhead`), AirPlay 2 of up to 40 ms.
struct PacingPolicy: Sendable, Equatable {
    let pacer: RAOPPacer
    /// How early a packet may leave (≥ 0).
    let sendAhead: TimeAmount
    /// Packets sent more than this after they were due count as late.
    static let lateAfter = TimeAmount.milliseconds(5)

    init(pacer: RAOPPacer, sendAhead: Duration) {
        self.pacer = pacer
        self.sendAhead = .nanoseconds(max(0, RAOPPacer.nanoseconds(sendAhead)))
    }

    /// What to do at one wake-up.
    struct Decision: Sendable, Equatable {
        /// The packets (numbered from the anchor) to send now, in order.
        var packets: Range<Int64>
        /// When the first packet after them is due: the next wake-up once they are all sent.
        var wakeAt: NIODeadline
    }

    /// When packet `n` of the schedule anchored at `anchor` is due.
    func due(packet n: Int64, anchor: NIODeadline) -> NIODeadline {
        anchor + .nanoseconds(pacer.nanoseconds(ofPacket: n))
    }

    /// At `now`, with packets `0..<next` of the schedule sent: the packets due by `now + sendAhead`.
    func decide(now: NIODeadline, anchor: NIODeadline, next: Int64) -> Decision {
        let horizon = now + sendAhead
        var end = next
        while due(packet: end, anchor: anchor) <= horizon { end += 1 }
        return Decision(packets: next ..< end, wakeAt: due(packet: end, anchor: anchor))
    }

    /// A packet sent at `now` that was due at `due` is late.
    static func isLate(sentAt now: NIODeadline, due: NIODeadline) -> Bool { now - due > lateAfter }
}

/// How AirPlay 1 paces by default, per receiver: bursts of up to 4 packets
/// (`RAOPOptions.raopDefaultSendAhead`), except to HomePods (model `AudioAccessory…`), which keep
/// one packet per wake-up: HomePod 26 needed tighter packet pacing from some RAOP senders
/// (LMS-Raop PR #49), and nothing shows that it takes bursts.
enum RAOPBurstRule {
    static func defaultSendAhead(_ traits: AirPlayReceiverTraits) -> Duration {
        if traits.model?.hasPrefix("AudioAccessory") == true { return .zero }
        return RAOPOptions.raopDefaultSendAhead
    }
}

/// Sync packets (control socket, 0x54; 0xD7 time announces with PTP timing): one when the schedule starts (start, resume), then every
/// `interval`, and one more at once after our first timing reply when one already went out before
/// it (receivers such as shairport-sync ignore syncs that arrive before their first timing
/// exchange). Each says "at network time T the stream is at RTP time R", R being the frame due now
/// on the pacing schedule; the first after a start or flush carries the 0x90 flag.
struct SyncPolicy: Sendable, Equatable {
    let latencyFrames: Int
    private(set) var syncsSinceStart = 0
    private var timingReplied = false
    private var syncBeforeTiming = false

    init(latencyFrames: Int) { self.latencyFrames = latencyFrames }

    /// The repeat interval: the configured one, at least 1 ms.
    static func interval(_ configured: Duration) -> TimeAmount {
        .nanoseconds(max(1_000_000, RAOPPacer.nanoseconds(configured)))
    }

    /// The RTP time of the frame due at `now` on the schedule that started at `anchor` with
    /// `anchorRTP`.
    static func rtpTime(now: NIODeadline, anchor: NIODeadline, anchorRTP: UInt32, pacer: RAOPPacer) -> UInt32 {
        let elapsed = Duration.nanoseconds((now - anchor).nanoseconds)
        return anchorRTP &+ UInt32(truncatingIfNeeded: pacer.frames(at: elapsed))
    }

    /// The sync packet saying: at `ntpTime` the stream is at `rtpTime`, so frame `rtpTime − latency`
    /// is playing.
    mutating func packet(rtpTime: UInt32, ntpTime: NTPTime) -> RAOPSyncPacket {
        let first = syncsSinceStart == 0
        syncsSinceStart += 1
        if !timingReplied { syncBeforeTiming = true }
        return RAOPSyncPacket(isFirst: first, rtpTimeLessLatency: rtpTime &- UInt32(truncatingIfNeeded: latencyFrames),
                              ntpTime: ntpTime, rtpTime: rtpTime)
    }

    /// The PTP form (realtime PTP sessions, docs/PTP-AND-BUFFERED-AUDIO.md §3.8): at
    /// `networkTime` (the master's ns) the stream is at `rtpTime`, so frame `rtpTime − latency` is
    /// audible then; the packet says so in shairport-sync's convention (`frame_1` = that frame +
    /// 11035). Same schedule and "first" flag as the NTP sync.
    mutating func timeAnnounce(rtpTime: UInt32, networkTime: UInt64, clockID: UInt64) -> PTPTimeAnnouncePacket {
        let first = syncsSinceStart == 0
        syncsSinceStart += 1
        if !timingReplied { syncBeforeTiming = true }
        return PTPTimeAnnouncePacket(isFirst: first, frame: rtpTime &- UInt32(truncatingIfNeeded: latencyFrames),
                                     audibleAt: networkTime, clockID: clockID)
    }

    /// A timing reply went out: true when a sync must go at once (the first reply, after a sync).
    mutating func timingReplySent() -> Bool {
        guard !timingReplied else { return false }
        timingReplied = true
        if syncBeforeTiming {
            syncsSinceStart = 0  // the repeated one counts as the first
            return true
        }
        return false
    }

    /// The schedule restarted (resume after a FLUSH): the next sync is a first one again.
    mutating func restarted() { syncsSinceStart = 0 }
}

/// Retransmit requests (control socket, 0x55): each asked-for sequence number (at most the backlog's
/// capacity of them) is answered with the packet that was sent, when the backlog still holds it;
/// a missing one is counted and nothing goes in its place (the receiver conceals the gap).
enum RetransmitPolicy {
    /// The sequence numbers to resend and those no longer (or never) held, in request order.
    static func plan(_ request: RAOPRetransmitRequest, capacity: Int,
                     held: (UInt16) -> Bool) -> (resend: [UInt16], missing: [UInt16]) {
        var resend: [UInt16] = []
        var missing: [UInt16] = []
        for seq in request.sequenceNumbers.prefix(capacity) {
            if held(seq) { resend.append(seq) } else { missing.append(seq) }
        }
        return (resend, missing)
    }
}
