// One member of a group stream (`RAOPGroupStream`) is an ordinary session of its route
// (`RAOPClient.runSession`) that, instead of decoding and encoding a source of its own, asks the
// group for a reader of the shared encoded stream and for its place on the group's timeline once
// it is set up (`GroupMemberHooks.ready`), then paces from that place.
import ATVAirPlayCore
import ATVAudio
import ATVCore
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
    /// AirPlay 2 PTP members: the group's clock group, which SETPEERS names.
    var clockGroup: GroupClockMembership?
    /// The loop the member's UDP sockets and pacer run on (the group's one send loop); nil: any.
    var eventLoop: (any EventLoop)? = nil
    /// The group's audio socket for the member's local address (every member's packets leave
    /// through it, one `sendmmsg` per burst for all); nil: the session opens its own.
    var audioSender: (@Sendable (_ localIP: String) throws -> UDPBatchSender)? = nil
}

/// A PTP member's place in the group's clock group (docs/PTP-AND-BUFFERED-AUDIO.md §3.3: an
/// iPhone's SETPEERS to each member lists every member's addresses, newest first, itself last, and
/// is sent again to every member when one joins or leaves).
struct GroupClockMembership: Sendable {
    /// The session joins at its SETPEERS with the addresses its receiver is known by; the answer is
    /// every member's addresses, newest (this one) first. `changed` gets the new list whenever
    /// another member joins or leaves, until this session leaves (the group's, when it ends).
    var join: @Sendable (_ addresses: [String], _ changed: @escaping @Sendable ([[String]]) -> Void) -> [[String]]
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
            // The NTP clock (the wall clock) at the anchor.
            let wall = clock.networkTime(programmeAnchor)
            let seconds = Double(wall.raw >> 32) + Double(wall.raw & 0xFFFF_FFFF) / 4_294_967_296
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

/// The group's clock group (its AirPlay 2 PTP members) in the order they joined: what every
/// member's SETPEERS lists (pure; `RAOPGroupStream` keeps one).
struct GroupClockPeers: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var name: String
        var addresses: [String]
    }

    /// Oldest first.
    private(set) var entries: [Entry] = []

    /// Every member's addresses, newest first.
    var newestFirst: [[String]] { entries.reversed().map(\.addresses) }

    /// `name` joins (again, after a retry: it is then the newest); returns the new list.
    mutating func join(_ name: String, addresses: [String]) -> [[String]] {
        entries.removeAll { $0.name == name }
        entries.append(Entry(name: name, addresses: addresses))
        return newestFirst
    }

    /// `name` leaves; false when it was not a member (never joined, or left already).
    mutating func leave(_ name: String) -> Bool {
        guard entries.contains(where: { $0.name == name }) else { return false }
        entries.removeAll { $0.name == name }
        return true
    }
}
