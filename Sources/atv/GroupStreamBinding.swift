// `atv stream` with several receivers, bound to ATV's group stream (`streamGroup`,
// `GroupAudioStream`): the command's view types are filled from the engine's.
import ATV
import ATVAudio
import ATVCore
import ATVRAOP

/// Opens the group through the facade: each member's route chosen as for one device.
struct FacadeGroupStreamOpener: GroupStreamOpener {
    func open(members: [GroupStreamMember], options: RAOPOptions, airPlayVersion: AirPlayVersion,
              timeout: Duration, storage: FileStorage) async throws -> any GroupStreamSession {
        let devices = members.map {
            GroupDevice(name: $0.name, config: $0.config, offsetMilliseconds: $0.offsetMilliseconds,
                        timing: $0.timing, buffered: $0.buffered)
        }
        let stream = try streamGroup(devices, options: ConnectOptions(raop: options, airPlayVersion: airPlayVersion, timeout: timeout),
                                     storage: storage)
        return FacadeGroupStreamSession(stream: stream)
    }
}

/// A running facade group stream as `runGroupStream` drives it.
struct FacadeGroupStreamSession: GroupStreamSession {
    let stream: GroupAudioStream

    func progressUpdates() -> AsyncStream<GroupProgressView> {
        let updates = stream.progressUpdates()
        return AsyncStream { continuation in
            let task = Task {
                for await p in updates { continuation.yield(Self.view(p)) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func setMetadata(_ metadata: MediaMetadata) async { await stream.setMetadata(metadata) }

    func stream<S: AsyncSequence & Sendable>(_ packets: S) async throws -> GroupReportView where S.Element == PCMPacket {
        let report = try await stream.stream(packets)
        let members = report.members.map { m in
            GroupMemberOutcomeView(name: m.name, route: m.route, playedWhole: m.playedWhole, state: Self.state(m.state),
                                   error: m.error, report: m.report, attempts: m.attempts)
        }
        // The programme's length as the member that got furthest into it saw it.
        let frames = report.members.compactMap { $0.report?.sourceFrames }.max() ?? 0
        return GroupReportView(members: members, stopped: report.stopped, seconds: Double(frames) / 44_100)
    }

    func setVolume(_ percent: Double, member name: String) async throws { try await stream.setVolume(percent, member: name) }

    func stop() { stream.stop() }

    static func state(_ s: RAOPGroupMemberStatus.State) -> GroupMemberState {
        GroupMemberState(rawValue: s.rawValue) ?? .failed
    }

    static func view(_ p: RAOPGroupProgress) -> GroupProgressView {
        GroupProgressView(position: p.position, duration: p.duration, members: p.members.map {
            GroupMemberStatusView(name: $0.name, route: $0.route, state: state($0.state), attempts: $0.attempts, error: $0.error)
        })
    }
}
