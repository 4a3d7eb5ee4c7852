import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import Synchronization

/// RAOP (AirPlay 1 audio) as a protocol of the facade: streaming, volume, and what is being
/// streamed as metadata and push updates. While a stream runs RAOP takes over Audio, Metadata,
/// PushUpdater and RemoteControl, so pause/stop/volume go to the stream.
///
/// `connect(_:options:storage:)` makes one for a device's audio receiver (`AppleTV/raop`); it
/// streams over AirPlay 1 or AirPlay 2 (see `airPlayVersion`).
public final class RAOPService: Sendable {
    /// The audio sender: RTSP (or AirPlay 2's encrypted RTSP), RTP, timing and retransmits.
    public let client: RAOPClient
    let service: ServiceConfig
    private struct State {
        var metadata = MediaMetadata()
        var streaming = false
        var paused = false
        var volume: Double = 33
        var position: Double = 0
        var takeover: (any TakeoverControl)?
    }
    private let state = Mutex(State())
    let updates = Broadcaster<DeviceUpdate>()
    let progress = Broadcaster<StreamProgress>()

    init(address: String, service: ServiceConfig, options: RAOPOptions) {
        self.service = service
        self.client = RAOPClient(host: address, port: service.port, options: options)
        if let v = options.volume { state.withLock { $0.volume = v } }
    }

    /// How it takes interfaces over while it works (the facade's relayers).
    func attach(_ takeover: any TakeoverControl) { state.withLock { $0.takeover = takeover } }

    /// AirPlay 1 or 2 for this receiver: the RAOP service's `ft`/`features`, then the AirPlay
    /// service's, decide unless `preference` forces one.
    public static func route(for service: ServiceConfig, in config: DeviceConfig,
                             preference: AirPlayVersion) -> AirPlayRoute {
        let airplay = config.service(.airplay)
        return AirPlayRoute.choose(preference: preference, featureTexts: [
            service.property("ft"), service.property("features"), airplay?.property("ft"), airplay?.property("features"),
        ])
    }

    /// The service audio streams go to: the RAOP service, or for a receiver that advertises only
    /// `_airplay._tcp` (several AirPlay 2 receivers do), one made from its AirPlay service (same
    /// port, TXT, credentials and password) when its features say audio goes there: bit 30
    /// (HasUnifiedAdvertiserInfo, pyatv's rule) or AirPlay 2 with audio (bits 38/48 and 9).
    /// nil when the device has neither.
    public static func streamingService(in config: DeviceConfig) -> ServiceConfig? {
        if let raop = config.service(.raop) { return raop }
        guard let airplay = config.service(.airplay),
              let text = airplay.property("features") ?? airplay.property("ft"),
              let word = AirPlayFeatureFlags(parsing: text), word.streamsAudioOnAirPlayService else { return nil }
        return ServiceConfig(protocol: .raop, identifier: airplay.identifier, port: airplay.port,
                             credentials: airplay.credentials, password: airplay.password,
                             requiresPassword: airplay.requiresPassword, pairing: airplay.pairing,
                             properties: airplay.properties, enabled: airplay.enabled)
    }

    /// The AirPlay generation streams to this receiver use.
    public var airPlayVersion: AirPlayMajorVersion { client.options.airPlayVersion }

    var setup: ProtocolSetup {
        ProtocolSetup(protocol: .raop,
                      interfaces: InterfaceSet(remoteControl: RAOPRemote(raop: self), metadata: RAOPMetadata(raop: self),
                                               pushUpdater: RAOPPush(raop: self), stream: RAOPStream(raop: self),
                                               audio: RAOPAudio(raop: self)),
                      features: RAOPFeatures(raop: self),
                      close: { [self] in
                          client.stop()
                          updates.finish()
                          progress.finish()
                      },
                      handle: self)
    }

    /// Whether a stream is running now.
    public var isStreaming: Bool { state.withLock { $0.streaming } }
    /// The volume streams start with and the last one set, 0...100.
    public var volume: Double { state.withLock { $0.volume } }

    func playing() -> Playing {
        state.withLock { s in
            guard s.streaming else { return Playing(mediaType: .unknown, deviceState: .idle) }
            return Playing(mediaType: .music, deviceState: s.paused ? .paused : .playing, title: s.metadata.title,
                           artist: s.metadata.artist, album: s.metadata.album,
                           totalTime: s.metadata.duration.map { Int($0.rounded()) },
                           position: Int(s.position))
        }
    }

    func feature(_ name: FeatureName) -> FeatureInfo {
        let (streaming, m) = state.withLock { ($0.streaming, $0.metadata) }
        switch name {
        case .streamFile, .volume, .setVolume, .volumeUp, .volumeDown, .pushUpdates:
            return .available
        case .pause, .stop, .play:
            return FeatureInfo(streaming ? .available : .unavailable)
        case .setPosition:
            // Only while a stream runs (otherwise another protocol's seek is the one meant).
            guard streaming else { return .unsupported }
            return FeatureInfo(client.canSeek ? .available : .unavailable)
        case .title: return FeatureInfo(streaming && m.title != nil ? .available : .unavailable)
        case .artist: return FeatureInfo(streaming && m.artist != nil ? .available : .unavailable)
        case .album: return FeatureInfo(streaming && m.album != nil ? .available : .unavailable)
        case .position, .totalTime: return FeatureInfo(streaming && m.duration != nil ? .available : .unavailable)
        default: return .unsupported
        }
    }

    func setVolume(_ level: Double) async throws {
        try await client.setVolume(level)
        state.withLock { $0.volume = level }
        updates.yield(.volume(level))
    }

    func pause(_ paused: Bool) {
        guard isStreaming else { return }
        if paused { client.pause() } else { client.resume() }
        state.withLock { $0.paused = paused }
        updates.yield(.playing(playing()))
    }

    /// Moves the running stream to `seconds` into its source (`RemoteControl.setPosition`; see
    /// `RAOPClient.seek(toSeconds:)` for where it works).
    public func seek(toSeconds seconds: Double) throws {
        try client.seek(toSeconds: seconds)
        state.withLock { $0.position = seconds }
        updates.yield(.playing(playing()))
    }

    /// Stream a source: decode, attach metadata (from tags, the caller's, or both), send; returns
    /// when the stream has ended, with the sender's counters. A file can seek while it streams
    /// (`seek(toSeconds:)`: it is opened again and decoded from the position, `PCMStartingAt`).
    public func stream(_ source: StreamSource, metadata: MediaMetadata?, overrideMissing: Bool) async throws -> RAOPStreamReport {
        let decoder = try await AudioDecoder.open(source)
        var reopen: (@Sendable (UInt64) async throws -> PCMStartingAt<AudioDecoder>)?
        if case .file = source {
            reopen = { frame in PCMStartingAt(try await AudioDecoder.open(source), frames: Int(clamping: frame)) }
        }
        return try await stream(packets: PCMStartingAt(decoder, frames: 0), reopen: reopen, tags: decoder.info.metadata,
                                duration: decoder.info.duration, metadata: metadata, overrideMissing: overrideMissing)
    }

    /// Stream any PCM sequence (s16le stereo 44.1 kHz, 352-frame packets); returns when the stream
    /// has ended (played out, or stopped), with the sender's counters. `tags` are the source's own
    /// metadata; `metadata`, the caller's, wins over them (with `overrideMissing`, only fills gaps).
    public func stream<S: AsyncSequence & Sendable>(packets: S, tags: MediaMetadata = MediaMetadata(), duration: Double? = nil,
                                                    metadata: MediaMetadata? = nil, overrideMissing: Bool = false) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        try await stream(packets: packets, reopen: nil, tags: tags, duration: duration, metadata: metadata,
                         overrideMissing: overrideMissing)
    }

    private func stream<S: AsyncSequence & Sendable>(packets: S, reopen: (@Sendable (UInt64) async throws -> S)?, tags: MediaMetadata,
                                                     duration: Double?, metadata: MediaMetadata?,
                                                     overrideMissing: Bool) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        var meta = tags
        if let user = metadata { meta = overrideMissing ? meta.filling(from: user) : user.filling(from: tags) }
        if meta.duration == nil { meta.duration = duration }
        let takeover = try state.withLock { s -> (any TakeoverControl)? in
            if s.streaming { throw ATVError.invalidState("a stream to this device is already running; stop it first") }
            s.streaming = true
            s.paused = false
            s.position = 0
            s.metadata = meta
            return s.takeover
        }
        let kinds: Set<InterfaceKind> = [.audio, .metadata, .pushUpdater, .remoteControl]
        do { try takeover?.takeover(.raop, interfaces: kinds) } catch {
            state.withLock { $0.streaming = false }
            throw error
        }
        let clientProgress = client.progressUpdates()
        let forward = Task { [self] in
            var lastSecond = -1
            for await p in clientProgress {
                state.withLock { $0.position = p.position }
                // The end (finished or failed) is published once the stream call returns.
                if let mapped = streamProgress(p) { progress.yield(mapped) }
                if Int(p.position) != lastSecond {
                    lastSecond = Int(p.position)
                    updates.yield(.playing(playing()))
                }
            }
        }
        var ended = StreamProgress.State.failed
        defer {
            forward.cancel()
            takeover?.release(.raop, interfaces: kinds)
            let (position, duration) = state.withLock { s in
                s.streaming = false
                return (s.position, s.metadata.duration)
            }
            progress.yield(StreamProgress(state: ended, position: position, duration: duration, volume: volume))
            updates.yield(.playing(playing()))
        }
        try await client.setMetadata(meta)
        try await client.setVolume(volume)
        updates.yield(.playing(playing()))
        let report = try await client.stream(packets, reopen: reopen)
        ended = .finished
        return report
    }

    /// The facade's view of the client's progress; nil for the end, which `stream` reports.
    func streamProgress(_ p: RAOPStreamProgress) -> StreamProgress? {
        let state: StreamProgress.State
        switch p.state {
        case .connecting: state = .loading
        case .streaming, .finishing: state = .playing
        case .paused: state = .paused
        case .finished, .failed: return nil
        }
        return StreamProgress(state: state, position: p.position, duration: p.duration, volume: volume)
    }
}

struct RAOPStream: StreamInterface {
    let raop: RAOPService
    func streamFile(_ source: StreamSource, metadata: MediaMetadata?, overrideMissingMetadata: Bool) async throws {
        _ = try await raop.stream(source, metadata: metadata, overrideMissing: overrideMissingMetadata)
    }
    func progress() -> AsyncStream<StreamProgress> { raop.progress.subscribe() }
}

struct RAOPAudio: Audio {
    let raop: RAOPService
    func volume() async throws -> Double { raop.volume }
    func setVolume(_ level: Double, outputDevice: String?) async throws { try await raop.setVolume(level) }
    func volumeUp() async throws { try await raop.setVolume(min(100, raop.volume + 5)) }
    func volumeDown() async throws { try await raop.setVolume(max(0, raop.volume - 5)) }
}

struct RAOPMetadata: Metadata {
    let raop: RAOPService
    func playing() async throws -> Playing { raop.playing() }
}

struct RAOPPush: PushUpdater {
    let raop: RAOPService
    func updates() -> AsyncStream<DeviceUpdate> { raop.updates.subscribe() }
}

/// Only what makes sense for a stream we send: pause/resume, seek (a file on the buffered route)
/// and stop it.
struct RAOPRemote: RemoteControl {
    let raop: RAOPService
    func pause() async throws {
        guard raop.isStreaming else { throw ATVError.notSupported(.pause) }
        raop.pause(true)
    }
    func play() async throws {
        guard raop.isStreaming else { throw ATVError.notSupported(.play) }
        raop.pause(false)
    }
    func stop() async throws {
        guard raop.isStreaming else { throw ATVError.notSupported(.stop) }
        raop.client.stop()
    }
    /// Seconds into the stream's source, as pyatv's `set_position`.
    func setPosition(_ position: Int) async throws {
        guard raop.isStreaming else { throw ATVError.notSupported(.setPosition) }
        try raop.seek(toSeconds: Double(position))
    }
}

struct RAOPFeatures: Features {
    let raop: RAOPService
    func feature(_ name: FeatureName) -> FeatureInfo { raop.feature(name) }
}

