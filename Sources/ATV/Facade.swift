import ATVCore
import Synchronization

/// A connected device: every protocol it offers behind one set of interfaces. Each call goes to
/// the best protocol that implements it (MRP > DMAP > Companion > AirPlay > RAOP; power prefers
/// Companion). After `close()` every call throws `ATVError.blocked`.
public final class AppleTV: Sendable {
    public let config: DeviceConfig

    let remoteRelayer = Relayer<any RemoteControl>()
    let metadataRelayer = Relayer<any Metadata>()
    let pushRelayer = Relayer<any PushUpdater>()
    let streamRelayer = Relayer<any ATVCore.Stream>()
    let powerRelayer = Relayer<any Power>(priority: ATVProtocol.powerPriority)
    let audioRelayer = Relayer<any Audio>()
    let appsRelayer = Relayer<any Apps>()
    let accountsRelayer = Relayer<any UserAccounts>()
    let keyboardRelayer = Relayer<any Keyboard>()
    let touchRelayer = Relayer<any TouchGestures>()

    private struct State {
        var setups: [ProtocolSetup] = []
        var connected = false
        var closed = false
        var closeTask: Task<Void, Never>?
        var forwarders: [Task<Void, Never>] = []
        var lastVolume: Double?
        var lastPlaying: Playing?
    }
    private let state = Mutex(State())
    struct Extra: Sendable {
        var raop: RAOPService?
    }
    let extra = Mutex(Extra())
    private let updateBroadcaster = Broadcaster<DeviceUpdate>()

    public init(config: DeviceConfig) {
        self.config = config
    }

    // MARK: Setup

    /// Add a protocol. The first setup for a protocol wins; later ones for it are ignored.
    public func add(_ setup: ProtocolSetup) throws {
        try state.withLock { s in
            if s.connected || s.closed { throw ATVError.invalidState("protocols cannot be added after connect") }
            if s.setups.contains(where: { $0.protocol == setup.protocol }) { return }
            s.setups.append(setup)
        }
    }

    public var protocols: [ATVProtocol] { state.withLock { $0.setups.map(\.protocol) } }

    /// Connect every added protocol in the order added and register its interfaces.
    public func connect() async throws {
        let setups = try state.withLock { s -> [ProtocolSetup] in
            if s.connected { throw ATVError.invalidState("already connected") }
            if s.closed { throw ATVError.blocked }
            s.connected = true
            return s.setups
        }
        for setup in setups {
            try await setup.connect()
            register(setup)
        }
        startForwarding()
    }

    private func register(_ setup: ProtocolSetup) {
        let p = setup.protocol
        let i = setup.interfaces
        if let x = i.remoteControl { remoteRelayer.register(x, for: p) }
        if let x = i.metadata { metadataRelayer.register(x, for: p) }
        if let x = i.pushUpdater { pushRelayer.register(x, for: p) }
        if let x = i.stream { streamRelayer.register(x, for: p) }
        if let x = i.power { powerRelayer.register(x, for: p) }
        if let x = i.audio { audioRelayer.register(x, for: p) }
        if let x = i.apps { appsRelayer.register(x, for: p) }
        if let x = i.userAccounts { accountsRelayer.register(x, for: p) }
        if let x = i.keyboard { keyboardRelayer.register(x, for: p) }
        if let x = i.touch { touchRelayer.register(x, for: p) }
    }

    /// Forward push updates: playing updates only from the main push updater, everything else from
    /// any protocol, and each only when it changed.
    private func startForwarding() {
        let updaters = pushRelayer.ordered()
        guard !updaters.isEmpty else { return }
        var tasks: [Task<Void, Never>] = []
        for (proto, updater) in updaters {
            let stream = updater.updates()
            tasks.append(Task { [weak self] in
                for await update in stream {
                    guard let self else { return }
                    self.forward(update, from: proto)
                }
            })
        }
        state.withLock { $0.forwarders = tasks }
    }

    func forward(_ update: DeviceUpdate, from proto: ATVProtocol) {
        let send: Bool = state.withLock { s in
            if s.closed { return false }
            switch update {
            case .playing(let p):
                guard pushRelayer.main()?.0 == proto, s.lastPlaying != p else { return false }
                s.lastPlaying = p
            case .volume(let v):
                guard s.lastVolume != v else { return false }
                s.lastVolume = v
            default: break
            }
            return true
        }
        if send { updateBroadcaster.yield(update) }
        switch update {
        case .connectionLost, .connectionClosed:
            Task { await self.close() }
        default: break
        }
    }

    // MARK: Close

    /// Close every protocol once. Safe to call many times and concurrently.
    public func close() async {
        let task = state.withLock { s -> Task<Void, Never> in
            if let t = s.closeTask { return t }
            s.closed = true
            let setups = s.setups
            let forwarders = s.forwarders
            let broadcaster = updateBroadcaster
            let t = Task {
                for f in forwarders { f.cancel() }
                for setup in setups.reversed() { await setup.close() }
                broadcaster.finish()
            }
            s.closeTask = t
            return t
        }
        await task.value
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    func guardOpen() throws {
        if isClosed { throw ATVError.blocked }
    }

    // MARK: Interfaces

    public var deviceInfo: DeviceInfo {
        var info = config.deviceInfo
        for s in state.withLock({ $0.setups }) { info.merge(s.deviceInfo) }
        return info
    }

    public var features: FacadeFeatures { FacadeFeatures(device: self) }
    public var remoteControl: FacadeRemoteControl { FacadeRemoteControl(device: self) }
    public var metadata: FacadeMetadata { FacadeMetadata(device: self) }
    public var stream: FacadeStream { FacadeStream(device: self) }
    public var power: FacadePower { FacadePower(device: self) }
    public var audio: FacadeAudio { FacadeAudio(device: self) }
    public var apps: FacadeApps { FacadeApps(device: self) }
    public var userAccounts: FacadeUserAccounts { FacadeUserAccounts(device: self) }
    public var keyboard: FacadeKeyboard { FacadeKeyboard(device: self) }
    public var touch: FacadeTouch { FacadeTouch(device: self) }

    /// Push updates from every protocol (playing state only from the main one), each only on change.
    /// The stream ends when the device is closed.
    public func updates() -> AsyncStream<DeviceUpdate> { updateBroadcaster.subscribe() }

    var featureSources: [(ATVProtocol, any Features)] {
        let setups = state.withLock { $0.setups }
        let byProto = Dictionary(setups.map { ($0.protocol, $0.features) }, uniquingKeysWith: { a, _ in a })
        return ATVProtocol.defaultPriority.compactMap { p in byProto[p].map { (p, $0) } }
    }

    var takeoverControl: any TakeoverControl { FacadeTakeover(device: self) }

    func relayer(_ kind: InterfaceKind) -> (take: (ATVProtocol) throws -> Void, release: (ATVProtocol) -> Void) {
        switch kind {
        case .remoteControl: (remoteRelayer.takeover, remoteRelayer.release)
        case .metadata: (metadataRelayer.takeover, metadataRelayer.release)
        case .pushUpdater: (pushRelayer.takeover, pushRelayer.release)
        case .stream: (streamRelayer.takeover, streamRelayer.release)
        case .power: (powerRelayer.takeover, powerRelayer.release)
        case .audio: (audioRelayer.takeover, audioRelayer.release)
        case .apps: (appsRelayer.takeover, appsRelayer.release)
        case .userAccounts: (accountsRelayer.takeover, accountsRelayer.release)
        case .keyboard: (keyboardRelayer.takeover, keyboardRelayer.release)
        case .touch: (touchRelayer.takeover, touchRelayer.release)
        }
    }
}

/// Takeover on behalf of a protocol (all-or-nothing across the interfaces asked for).
struct FacadeTakeover: TakeoverControl {
    let device: AppleTV
    func takeover(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>) throws {
        var done: [InterfaceKind] = []
        do {
            for k in interfaces.sorted(by: { $0.rawValue < $1.rawValue }) {
                try device.relayer(k).take(proto)
                done.append(k)
            }
        } catch {
            for k in done { device.relayer(k).release(proto) }
            throw error
        }
    }
    func release(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>) {
        for k in interfaces { device.relayer(k).release(proto) }
    }
}

/// Feature states across protocols: the highest-priority protocol that claims a feature decides;
/// PushUpdates is available when any protocol has a push updater.
public struct FacadeFeatures: Features {
    let device: AppleTV
    public func feature(_ name: FeatureName) -> FeatureInfo {
        if name == .pushUpdates {
            return device.pushRelayer.protocols.isEmpty ? .unsupported : .available
        }
        for (_, f) in device.featureSources {
            let info = f.feature(name)
            if info.state != .unsupported { return info }
        }
        return .unsupported
    }
}
