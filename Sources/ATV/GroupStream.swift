// Multi-room through the facade (issue 17): each device's route (AirPlay 1 or 2, timing,
// credentials) is chosen as for one device (`RAOPProtocol.streaming`, the rule `connect` uses),
// then ATVRAOP's `RAOPGroupStream` streams to all of them in step.
import ATVAudio
import ATVCore
import ATVRAOP
import Logging

/// One stream to several devices in step: the facade's wrapper of `RAOPGroupStream`, made by
/// `streamGroup`.
public final class GroupAudioStream: Sendable {
    /// The engine (members, timeline, retries).
    public let engine: RAOPGroupStream
    private let options: ConnectOptions
    private let storage: FileStorage?

    init(engine: RAOPGroupStream, options: ConnectOptions, storage: FileStorage?) {
        self.engine = engine
        self.options = options
        self.storage = storage
    }

    /// Streams PCM packets (44.1 kHz s16 stereo, e.g. an opened `AudioDecoder`) to every member
    /// until the source ends, every member ended, or ``stop()``; returns each member's outcome.
    public func stream<S: AsyncSequence & Sendable>(_ packets: S) async throws -> RAOPGroupReport where S.Element == PCMPacket {
        try await engine.stream(packets)
    }

    /// Adds a device while the stream plays (it joins at the current position) or before it starts.
    /// Throws when the device has no service audio streams go to, or its credentials can't be read.
    public func add(name: String, config: DeviceConfig, offsetMilliseconds: Double = 0) throws {
        engine.add(try groupMember(name: name, config: config, offsetMilliseconds: offsetMilliseconds,
                                   options: options, storage: storage))
    }

    /// Takes a member out (TEARDOWN); the others go on.
    public func remove(name: String) { engine.remove(name: name) }

    /// Volume of one member, in percent.
    public func setVolume(_ percent: Double, member name: String) async throws {
        try await engine.setVolume(percent, member: name)
    }

    /// Title/artist/album/artwork to every member.
    public func setMetadata(_ metadata: MediaMetadata) async { await engine.setMetadata(metadata) }

    /// Ends the stream for every member.
    public func stop() { engine.stop() }

    /// Progress: position and every member's name, route and state.
    public func progressUpdates() -> AsyncStream<RAOPGroupProgress> { engine.progressUpdates() }
}

/// A group stream to `devices` (each with its name in the group and its offset in milliseconds,
/// positive for a receiver whose amplifier plays late). Each device's route is chosen as
/// ``connect(_:options:storage:)`` would for it alone (its stored settings and credentials
/// from `storage`); nothing is connected until ``GroupAudioStream/stream(_:)``. Throws when a
/// device has no service audio streams go to, or two share a name.
public func streamGroup(_ devices: [(name: String, config: DeviceConfig, offsetMilliseconds: Double)],
                        options: ConnectOptions = ConnectOptions(), groupOptions: RAOPGroupOptions = .init(),
                        storage: FileStorage? = nil, logger: Logger = Logger(label: "atv.group")) throws -> GroupAudioStream {
    try streamGroup(devices.map { GroupDevice(name: $0.name, config: $0.config, offsetMilliseconds: $0.offsetMilliseconds) },
                    options: options, groupOptions: groupOptions, storage: storage, logger: logger)
}

/// One device of a group stream: its name in the group, its offset and, where it differs from
/// the group's, its own AirPlay 2 timing and buffered choice.
public struct GroupDevice: Sendable {
    /// The member's name (progress, outcome, `setVolume(_:member:)`).
    public var name: String
    /// The device (from a scan, `Discovery.find`, or made from an address).
    public var config: DeviceConfig
    /// Milliseconds this device is fed early (positive: its amplifier plays late).
    public var offsetMilliseconds: Double
    /// This device's AirPlay 2 timing; nil: the group's (`ConnectOptions.raop.timing`).
    public var timing: AirPlayTimingPreference?
    /// This device's buffered-audio choice; nil: the group's (`ConnectOptions.raop.buffered`).
    public var buffered: AirPlayBufferedPreference?

    /// A device with the group's route choices unless `timing`/`buffered` are given.
    public init(name: String, config: DeviceConfig, offsetMilliseconds: Double = 0,
                timing: AirPlayTimingPreference? = nil, buffered: AirPlayBufferedPreference? = nil) {
        self.name = name
        self.config = config
        self.offsetMilliseconds = offsetMilliseconds
        self.timing = timing
        self.buffered = buffered
    }
}

/// A group stream to `devices`, each with its own offset and, where given, its own AirPlay 2
/// timing and buffered choice; nothing is connected until ``GroupAudioStream/stream(_:)``. Throws when a
/// device has no service audio streams go to, or two share a name.
public func streamGroup(_ devices: [GroupDevice], options: ConnectOptions = ConnectOptions(),
                        groupOptions: RAOPGroupOptions = .init(), storage: FileStorage? = nil,
                        logger: Logger = Logger(label: "atv.group")) throws -> GroupAudioStream {
    var names = Set<String>()
    let members = try devices.map { d -> RAOPGroupMember in
        guard names.insert(d.name).inserted else { throw ATVError.invalidValue("\(d.name) is named twice in the group") }
        var own = options
        if let timing = d.timing { own.raop.timing = timing }
        if let buffered = d.buffered { own.raop.buffered = buffered }
        return try groupMember(name: d.name, config: d.config, offsetMilliseconds: d.offsetMilliseconds,
                               options: own, storage: storage)
    }
    return GroupAudioStream(engine: RAOPGroupStream(members: members, options: groupOptions, logger: logger),
                            options: options, storage: storage)
}

/// The member for one device: its streaming service and options, as for a single stream.
private func groupMember(name: String, config: DeviceConfig, offsetMilliseconds: Double, options: ConnectOptions,
                         storage: FileStorage?) throws -> RAOPGroupMember {
    var config = config
    if let storage, config.identifier != nil, let settings = try? storage.settings(for: config) {
        storage.apply(settings, to: &config)
    }
    guard let service = RAOPService.streamingService(in: config),
          let (streamService, raopOptions) = try RAOPProtocol.streaming(
              config, service: service, options: RAOPSetupOptions(raop: options.raop, airPlayVersion: options.airPlayVersion),
              timeout: options.timeout)
    else { throw ATVError.noService(.raop) }
    return RAOPGroupMember(name: name, host: config.address, port: streamService.port, options: raopOptions,
                           offsetMilliseconds: offsetMilliseconds)
}
