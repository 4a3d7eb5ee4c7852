import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVDiscovery
import Synchronization

/// AirPlay (video) as a protocol of the facade: `Stream.playURL`, and while a URL plays it takes
/// over RemoteControl (pause/play/stop/set position), Metadata (state, position, duration) and
/// push updates. Connecting is a no-op (each playback opens its own connection), as in pyatv.
///
/// `connect(_:options:storage:)` makes one for a device's AirPlay service; use `AppleTV/stream`
/// rather than this class.
package final class AirPlayService: Sendable {
    /// The AirPlay client that plays URLs (pair-verified with stored credentials, if any).
    package let client: AirPlayClient
    let service: ServiceConfig
    /// From the TXT `features`/`ft`; nil for a manual service without TXT.
    let flags: AirPlayFeatureFlags?
    private struct State {
        var playing = false
        var takeover: (any TakeoverControl)?
    }
    private let state = Mutex(State())
    let updates = Broadcaster<DeviceUpdate>()
    let progress = Broadcaster<StreamProgress>()
    static let takeoverKinds: Set<InterfaceKind> = [.remoteControl, .metadata, .pushUpdater]

    init(address: String, service: ServiceConfig, options: AirPlayOptions = AirPlayOptions()) throws(ATVError) {
        self.service = service
        let flags = AirPlayFeatureFlags(service: service)
        self.flags = flags
        var options = options
        // Stored HAP credentials: pair-verify, then everything encrypted. An AirPlay 2 device
        // (features bits 38/48) also gets the session recent tvOS needs before /play.
        // Stored legacy credentials: legacy verification on the plain connection.
        var legacy = false
        // Stored credentials that can't be read are an error, never a fall-back to no verification.
        if let text = service.credentials, !text.trimmingWhitespace().isEmpty {
            switch try AirPlayStoredCredentials.read(text, deviceName: address) {
            case .hap(let c): options.verification = .hap(c)
            case .legacy(let c): options.verification = .legacy(c); legacy = true
            default: break
            }
        }
        if !legacy, flags?.isAirPlay2 == true {
            options.airplay2Session = true
            if case .none = options.verification { options.verification = .transient }
        }
        self.client = AirPlayClient(host: address, port: service.port, options: options)
    }

    /// How it takes interfaces over while it works (the facade's relayers).
    func attach(_ takeover: any TakeoverControl) { state.withLock { $0.takeover = takeover } }

    var setup: ProtocolSetup {
        ProtocolSetup(protocol: .airplay,
                      interfaces: InterfaceSet(remoteControl: AirPlayRemote(airplay: self), metadata: AirPlayMetadata(airplay: self),
                                               pushUpdater: AirPlayPush(airplay: self), stream: AirPlayStream(airplay: self)),
                      features: AirPlayFeatures(airplay: self),
                      deviceInfo: deviceInfo,
                      close: { [self] in
                          await client.stop()
                          updates.finish()
                          progress.finish()
                      },
                      handle: self)
    }

    /// Model, OS and MAC from the TXT record.
    var deviceInfo: DeviceInfo {
        var info = DeviceInfo()
        if let model = service.property("model") {
            info.rawModel = model
            info.model = DeviceTables.model(model)
            info.operatingSystem = DeviceTables.operatingSystem(for: info.model)
        }
        info.version = service.property("osvers")
        info.mac = service.property("deviceid")
        info.outputDeviceID = service.property("psi") ?? service.property("pi")
        return info
    }

    /// PlayUrl is available when the features say AirPlay video (bit 0 or 49), or when there is no
    /// TXT to tell (a manual `--host` configuration).
    package var canPlayURL: Bool { flags?.supportsPlayURL ?? true }

    /// Whether a URL is playing now (from `playURL(_:position:)`).
    package var isPlaying: Bool { state.withLock { $0.playing } }

    func playing() -> Playing {
        guard isPlaying, let p = client.progress else { return Playing(mediaType: .unknown, deviceState: .idle) }
        let deviceState: DeviceState = switch p.state {
        case .loading: .loading
        case .playing: .playing
        case .paused: .paused
        case .ended: .idle
        }
        return Playing(mediaType: .video, deviceState: deviceState, totalTime: p.duration.map { Int($0.rounded()) },
                       position: Int(p.position))
    }

    func feature(_ name: FeatureName) -> FeatureInfo {
        let playing = isPlaying
        switch name {
        case .playURL: return canPlayURL ? .available : .unsupported
        case .pushUpdates: return .available
        // Claimed only while a URL plays, so other protocols decide otherwise.
        case .play, .pause, .playPause, .stop, .setPosition:
            return playing ? .available : .unsupported
        case .position, .totalTime:
            return playing && client.progress?.duration != nil ? .available : .unsupported
        default: return .unsupported
        }
    }

    /// Plays a URL (or a local file served for the duration) from `position` seconds; returns
    /// when playback has ended, with how it ended. One URL at a time: a second call while one
    /// plays throws `ATVError.invalidState`.
    package func playURL(_ url: String, position: Double) async throws -> AirPlayPlaybackReport {
        let takeover = try state.withLock { s -> (any TakeoverControl)? in
            if s.playing { throw ATVError.invalidState("a URL is already playing on this device; stop it first") }
            s.playing = true
            return s.takeover
        }
        do { try takeover?.takeover(.airplay, interfaces: Self.takeoverKinds) } catch {
            state.withLock { $0.playing = false }
            throw error
        }
        let clientProgress = client.progressUpdates()
        let forward = Task { [self] in
            for await p in clientProgress {
                updates.yield(.playing(playing()))
                let state: StreamProgress.State = switch p.state {
                case .loading: .loading
                case .playing: .playing
                case .paused: .paused
                case .ended: .finished
                }
                progress.yield(StreamProgress(state: state, position: p.position, duration: p.duration))
            }
        }
        var ended = false
        defer {
            forward.cancel()
            state.withLock { $0.playing = false }
            takeover?.release(.airplay, interfaces: Self.takeoverKinds)
            if !ended { progress.yield(StreamProgress(state: .failed, position: client.progress?.position ?? 0, duration: client.progress?.duration)) }
            updates.yield(.playing(playing()))
        }
        updates.yield(.playing(playing()))
        let report = try await client.play(url, position: position)
        ended = true
        progress.yield(StreamProgress(state: .finished, position: report.lastPosition, duration: client.progress?.duration))
        return report
    }
}

struct AirPlayStream: StreamInterface {
    let airplay: AirPlayService
    func playURL(_ url: String, position: Double) async throws {
        guard airplay.canPlayURL else { throw ATVError.notSupported(.playURL) }
        _ = try await airplay.playURL(url, position: position)
    }
    func progress() -> AsyncStream<StreamProgress> { airplay.progress.subscribe() }
}

struct AirPlayMetadata: Metadata {
    let airplay: AirPlayService
    func playing() async throws -> Playing {
        guard airplay.isPlaying else { throw ATVError.notSupported(.title) }
        return airplay.playing()
    }
}

struct AirPlayPush: PushUpdater {
    let airplay: AirPlayService
    func updates() -> AsyncStream<DeviceUpdate> { airplay.updates.subscribe() }
}

/// Playback commands for the URL that plays; otherwise not supported (the call falls through).
struct AirPlayRemote: RemoteControl {
    let airplay: AirPlayService
    private func guardPlaying(_ f: FeatureName) throws {
        guard airplay.isPlaying else { throw ATVError.notSupported(f) }
    }
    func pause() async throws {
        try guardPlaying(.pause)
        try await airplay.client.pause()
    }
    func play() async throws {
        try guardPlaying(.play)
        try await airplay.client.resume()
    }
    func playPause() async throws {
        try guardPlaying(.playPause)
        if airplay.client.progress?.state == .paused { try await airplay.client.resume() } else { try await airplay.client.pause() }
    }
    func stop() async throws {
        try guardPlaying(.stop)
        await airplay.client.stop()
    }
    func setPosition(_ position: Int) async throws {
        try guardPlaying(.setPosition)
        try await airplay.client.seek(to: Double(position))
    }
}

struct AirPlayFeatures: Features {
    let airplay: AirPlayService
    func feature(_ name: FeatureName) -> FeatureInfo { airplay.feature(name) }
}
