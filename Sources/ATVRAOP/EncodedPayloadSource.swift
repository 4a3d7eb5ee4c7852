// Where a sender takes its encoded packets from. A single stream has its own producer and
// `RAOPPayloadPipe`; a member of a group stream (several receivers fed by one decode and one encode)
// reads the one shared encoded stream through its own cursor. The pacer (realtime routes) and the
// buffered sender consume either through this protocol.
import NIOCore

/// The consumer side of an encoded-packet queue.
protocol EncodedPayloadSource: AnyObject, Sendable {
    /// The next item, or nil when nothing is ready yet (then `onAvailable` fires once one is).
    func pop() -> RAOPSendItem?
    /// Called (outside any lock) when an item arrives while the consumer waits for one.
    func setOnAvailable(_ body: @escaping @Sendable () -> Void)
    /// The consumer is done: drop what is queued for it.
    func close()
}

extension RAOPPayloadPipe: EncodedPayloadSource {}

/// Where one group member's audio sits on the group's timeline: the programme packet it starts
/// with and the monotonic instant (the sender's `NIODeadline` base, which the PTP master's
/// timescale and the NTP wall clock are both read against) at which that packet's first frame
/// must be heard, the member's own offset already applied. A realtime member sends that packet
/// its latency earlier; a buffered member names that instant in its anchor.
struct GroupMemberSchedule: Sendable, Equatable {
    /// Index of the member's first packet in the programme (0 = the programme's first packet).
    var firstPacket: Int64
    /// When the first frame of `firstPacket` plays.
    var firstPlayInstant: NIODeadline
}
