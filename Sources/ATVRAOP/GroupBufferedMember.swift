// The hook for a group member whose route turned out to be buffered AirPlay 2 (type 103 over
// TCP, PTP anchor): the buffered sender (AirPlay2/BufferedAudioSender.swift) provides the real
// `runBufferedGroupMember`, reading the group's `EncodedPayloadSource` and naming the member's
// `GroupMemberSchedule.firstPlayInstant` in its SETRATEANCHORTIME. Until then such a member
// fails with one clear error (the others go on). Replace this file when that lands.
import ATVCore

extension RAOPClient {
    /// Streams the group's packets to a buffered AirPlay 2 member (`member.ready` gives the reader
    /// and schedule; `member.started` reports where the programme sits).
    func runBufferedGroupMember(options: RAOPOptions, session: AirPlay2AudioSession, member: GroupMemberHooks,
                                started: ContinuousClock.Instant) async throws -> RAOPStreamReport {
        await session.close()
        throw ATVError.invalidState("buffered members are not supported in a group yet")
    }
}
