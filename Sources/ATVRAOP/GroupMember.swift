// One member of a group stream (`RAOPGroupStream`) is an ordinary session of its route
// (`RAOPClient.runSession`) that, instead of decoding and encoding a source of its own, asks the
// group for a reader of the shared encoded stream and for its place on the group's timeline once
// it is set up (`GroupMemberHooks.ready`), then paces from that place.
import ATVAirPlayCore
import ATVAudio
import NIOCore

/// What a group member's session asks the group, and tells it.
struct GroupMemberHooks: Sendable {
    /// The session is set up and can send: the group answers (once its start instant is chosen)
    /// with the member's reader and schedule. `lead`: how long before a frame plays the member
    /// sends it (a realtime receiver's latency).
    var ready: @Sendable (_ route: AirPlayAudioRouteChoice, _ lead: Duration) async throws
        -> (source: any EncodedPayloadSource, schedule: GroupMemberSchedule)
    /// The member's pacer is set to start: where the programme sits on its RTP numbering and clock.
    var started: @Sendable (GroupMemberStart) -> Void
    /// The loop the member's UDP sockets and pacer run on (the group's one send loop); nil: any.
    var eventLoop: (any EventLoop)? = nil
}

/// Where a member put the programme: the sequence number and RTP time of its first packet, the
/// instant (its anchor) that packet is due, and the same for programme packet 0 (extrapolated for a
/// member that joined later) on the monotonic clock and on the receiver's (PTP or NTP), so a frame
/// of one member maps onto another's.
struct GroupMemberStart: Sendable, Equatable {
    var schedule: GroupMemberSchedule
    /// The member's first packet (programme packet `schedule.firstPacket`).
    var first: RTPPosition
    var framesPerPacket: Int
    /// When its first packet is due to be sent (its first play instant less its latency).
    var anchor: NIODeadline
    /// When programme packet 0 is (or would have been) due on this member.
    var programmeAnchor: NIODeadline
    /// `programmeAnchor` on the receiver's clock: "PTP <ns> ns" or "NTP <seconds>".
    var networkAnchor: String

    init(schedule: GroupMemberSchedule, first: RTPPosition, framesPerPacket: Int, anchor: NIODeadline,
         clock: SenderClock) {
        self.schedule = schedule
        self.first = first
        self.framesPerPacket = framesPerPacket
        self.anchor = anchor
        let pacer = RAOPPacer(framesPerPacket: framesPerPacket)
        let programmeAnchor = anchor - .nanoseconds(pacer.nanoseconds(ofPacket: schedule.firstPacket))
        self.programmeAnchor = programmeAnchor
        if let ptp = clock.ptp {
            networkAnchor = "PTP \(ptp.networkTime(at: programmeAnchor)) ns"
        } else {
            // The NTP clock (the wall clock) read now, moved to the anchor.
            let now = clock.now()
            let wall = clock.networkTime(now)
            let seconds = Double(wall.raw >> 32) + Double(wall.raw & 0xFFFF_FFFF) / 4_294_967_296
                + Double((programmeAnchor - now).nanoseconds) / 1e9
            networkAnchor = "NTP " + String(format6: seconds)
        }
    }

    /// The RTP time the member gave programme frame 0 (for a late member: where it would have been).
    var programmeRTPTime: UInt32 {
        first.rtpTime &- UInt32(truncatingIfNeeded: schedule.firstPacket &* Int64(framesPerPacket))
    }

    /// The sequence number programme packet 0 has (or would have had) on the member.
    var programmeSequence: UInt16 { first.sequence &- UInt16(truncatingIfNeeded: schedule.firstPacket) }
}

private extension String {
    /// `x` with six decimals, without Foundation.
    init(format6 x: Double) {
        let micro = Int64((x * 1_000_000).rounded())
        let (q, r) = micro.quotientAndRemainder(dividingBy: 1_000_000)
        let frac = String(abs(r))
        self = "\(q)." + String(repeating: "0", count: 6 - frac.count) + frac
    }
}

/// A PCM source that is never read (a group member's session encodes nothing itself).
struct NoPCM: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    struct AsyncIterator: AsyncIteratorProtocol {
        mutating func next() async -> PCMPacket? { nil }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
}

extension RAOPClient {
    /// Runs one session as a member of a group stream (`stop()` ends it, `setVolume`/`setMetadata`
    /// reach it as on a single stream).
    func streamGroupMember(_ member: GroupMemberHooks) async throws -> RAOPStreamReport {
        try await stream(NoPCM(), reopen: nil, member: member)
    }
}
