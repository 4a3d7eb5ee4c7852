// A group member whose route turned out to be buffered AirPlay 2 (type 103 over TCP, PTP anchor):
// the buffered sender sets the session up, asks the group for its cursor and schedule
// (`GroupMemberHooks.ready`, with the lead its receiver needs) and names the member's
// `GroupMemberSchedule.firstPlayInstant` in its first SETRATEANCHORTIME.

extension RAOPClient {
    /// Streams the group's packets to a buffered AirPlay 2 member (`member.ready` gives the reader
    /// and schedule once the session is set up; `member.started` reports where the programme sits).
    func runBufferedGroupMember(options: RAOPOptions, session: AirPlay2AudioSession, member: GroupMemberHooks,
                                started: ContinuousClock.Instant) async throws -> RAOPStreamReport {
        try await runBuffered(.group(member), schedule: nil, options: options, session: session, started: started)
    }
}
