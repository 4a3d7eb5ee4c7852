import ATVCore
import Synchronization

/// DMAP/DACP (Apple TV 1–3) as a protocol of the facade: RemoteControl, Metadata (playing,
/// artwork), PushUpdater (long poll started at connect), Audio volume up/down and features.
/// Connecting logs in and reads the play status once (features depend on it).
///
/// `connect(_:options:storage:)` makes one for a device's DMAP service when it has credentials
/// (from `atv pair --protocol dmap`); use the interfaces of `AppleTV` rather than this class.
package final class DMAPService: Sendable {
    /// The DMAP/DACP client (login, commands, play status, artwork, long poll).
    package let client: DMAPClient
    let service: ServiceConfig
    let updates = Broadcaster<DeviceUpdate>()
    private struct State {
        var poller: Task<Void, Never>?
        var latest: DMAPPlayStatus?
        var artworkCache: [(String, ArtworkInfo)] = []
    }
    private let state = Mutex(State())

    init(address: String, service: ServiceConfig, timeout: Duration = .seconds(10)) throws {
        guard let credentials = service.credentials else { throw ATVError.noCredentials(.dmap) }
        self.service = service
        self.client = try DMAPClient(host: address, port: service.port, credentials: credentials, timeout: timeout)
    }

    var setup: ProtocolSetup {
        ProtocolSetup(protocol: .dmap,
                      interfaces: InterfaceSet(remoteControl: DMAPRemote(dmap: self), metadata: DMAPMetadata(dmap: self),
                                               pushUpdater: DMAPPush(dmap: self), audio: DMAPAudio(dmap: self)),
                      features: DMAPFeatures(dmap: self),
                      deviceInfo: DeviceInfo(operatingSystem: .legacy),
                      connect: { [self] in try await connect() },
                      close: { [self] in await close() },
                      handle: self)
    }

    func connect() async throws {
        try await client.login()
        remember(try await client.playStatus())
        let stream = client.pushUpdates()
        let task = Task { [self] in
            for await event in stream {
                switch event {
                case .update(let status):
                    remember(status)
                    updates.yield(.playing(status.playing))
                case .error:
                    continue
                case .connectionLost(let e):
                    updates.yield(.connectionLost("\(e)"))
                }
            }
            updates.finish()
        }
        state.withLock { $0.poller = task }
    }

    func close() async {
        let poller = state.withLock { s -> Task<Void, Never>? in
            defer { s.poller = nil }
            return s.poller
        }
        poller?.cancel()
        await client.close()
        updates.finish()
    }

    func remember(_ status: DMAPPlayStatus) { state.withLock { $0.latest = status } }
    var latest: DMAPPlayStatus? { state.withLock { $0.latest } }

    func playing() async throws -> Playing {
        let status = try await client.playStatus()
        remember(status)
        return status.playing
    }

    /// Artwork of what plays, cached by the playing hash (4 entries), as pyatv.
    func artwork(width: Int?, height: Int?) async throws -> ArtworkInfo? {
        let key = try await playing().hash
        if let hit = state.withLock({ $0.artworkCache.first { $0.0 == key }?.1 }) { return hit }
        guard let bytes = try await client.artwork(width: width, height: height) else { return nil }
        let info = ArtworkInfo(bytes: bytes, mimeType: "image/png", width: -1, height: -1)
        state.withLock { s in
            s.artworkCache.append((key, info))
            if s.artworkCache.count > 4 { s.artworkCache.removeFirst() }
        }
        return info
    }

    static let alwaysAvailable: Set<FeatureName> = [.down, .left, .menu, .right, .select, .topMenu, .up]
    static let unknownAvailability: Set<FeatureName> = [.artwork, .next, .pause, .play, .playPause, .previous,
                                                        .setPosition, .setRepeat, .setShuffle, .stop,
                                                        .skipForward, .skipBackward]
    /// Available when the play status has the field (pyatv keys Title on `caps` and Artist on
    /// `cann`; here each is keyed on its own tag).
    static let fieldFeatures: [FeatureName: String] = [.title: "cann", .artist: "cana", .album: "canl", .genre: "cang",
                                                       .totalTime: "cast", .position: "cant", .shuffle: "cash",
                                                       .repeat: "carp"]

    func feature(_ name: FeatureName) -> FeatureInfo {
        if Self.alwaysAvailable.contains(name) { return .available }
        if Self.unknownAvailability.contains(name) { return FeatureInfo(.unknown) }
        if let tag = Self.fieldFeatures[name] {
            return latest?.has(tag) == true ? .available : FeatureInfo(.unavailable)
        }
        if name == .volumeUp || name == .volumeDown {
            return latest?.volumeControllable == true ? .available : FeatureInfo(.unavailable)
        }
        if name == .pushUpdates { return .available }
        return .unsupported
    }
}

struct DMAPRemote: RemoteControl {
    let dmap: DMAPService
    var c: DMAPClient { dmap.client }
    func up(_ action: InputAction) async throws { try await c.arrow(.up) }
    func down(_ action: InputAction) async throws { try await c.arrow(.down) }
    func left(_ action: InputAction) async throws { try await c.arrow(.left) }
    func right(_ action: InputAction) async throws { try await c.arrow(.right) }
    func select(_ action: InputAction) async throws { try await c.controlPrompt("select") }
    func menu(_ action: InputAction) async throws { try await c.controlPrompt("menu") }
    func topMenu() async throws { try await c.controlPrompt("topmenu") }
    func play() async throws { try await c.command(.play) }
    func playPause() async throws { try await c.command(.playPause) }
    func pause() async throws { try await c.command(.pause) }
    func stop() async throws { try await c.command(.stop) }
    func next() async throws { try await c.command(.next) }
    func previous() async throws { try await c.command(.previous) }
    func skipForward(_ interval: Double) async throws { try await c.skip(by: interval, forward: true) }
    func skipBackward(_ interval: Double) async throws { try await c.skip(by: interval, forward: false) }
    func setPosition(_ position: Int) async throws { try await c.setPosition(position) }
    func setShuffle(_ state: ShuffleState) async throws { try await c.setShuffle(state) }
    func setRepeat(_ state: RepeatState) async throws { try await c.setRepeat(state) }
}

struct DMAPMetadata: Metadata {
    let dmap: DMAPService
    func playing() async throws -> Playing { try await dmap.playing() }
    func artwork(width: Int?, height: Int?) async throws -> ArtworkInfo? { try await dmap.artwork(width: width, height: height) }
    func artworkID() async throws -> String {
        if let latest = dmap.latest { return latest.playing.hash }
        return try await dmap.playing().hash
    }
}

struct DMAPPush: PushUpdater {
    let dmap: DMAPService
    func updates() -> AsyncStream<DeviceUpdate> { dmap.updates.subscribe() }
}

struct DMAPAudio: Audio {
    let dmap: DMAPService
    func volumeUp() async throws { try await dmap.client.command(.volumeUp) }
    func volumeDown() async throws { try await dmap.client.command(.volumeDown) }
}

struct DMAPFeatures: Features {
    let dmap: DMAPService
    func feature(_ name: FeatureName) -> FeatureInfo { dmap.feature(name) }
}
