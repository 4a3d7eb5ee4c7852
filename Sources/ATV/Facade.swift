import ATVCore
import ATVRAOP
import Logging
import Synchronization

/// A connected device: every protocol it offers behind one set of interfaces. Each call goes to
/// the best protocol that implements it (MRP > DMAP > Companion > AirPlay > RAOP; power prefers
/// Companion). A protocol is set up (connected, paired, verified) on its first use, so a call never
/// waits for, nor fails because of, a protocol it does not use; `setUp(_:)` sets protocols up
/// ahead of time. After `close()` every call throws `ATVError.blocked`.
///
/// Make one with ``connect(_:options:storage:)``.
public final class AppleTV: Sendable {
    /// The device as discovery (or the caller) described it, with stored settings applied.
    public let config: DeviceConfig

    let remoteRelayer = Relayer<any RemoteControl>()
    let metadataRelayer = Relayer<any Metadata>()
    let pushRelayer = Relayer<any PushUpdater>()
    let streamRelayer = Relayer<any StreamInterface>()
    let powerRelayer = Relayer<any Power>(priority: ATVProtocol.powerPriority)
    let audioRelayer = Relayer<any Audio>()
    let appsRelayer = Relayer<any Apps>()
    let accountsRelayer = Relayer<any UserAccounts>()
    let keyboardRelayer = Relayer<any Keyboard>()
    let touchRelayer = Relayer<any TouchGestures>()

    /// Where a protocol's setup stands.
    enum SetUpState: Sendable {
        case pending
        case connecting(Task<Void, any Error>)
        case ready
        case failed(any Error)
    }

    private struct State {
        var setups: [ProtocolSetup] = []
        var setUp: [ATVProtocol: SetUpState] = [:]
        var connected = false
        var closed = false
        var closeTask: Task<Void, Never>?
        var forwarders: [Task<Void, Never>] = []
        /// Someone subscribed to `updates()`: the push updaters are (to be) set up.
        var wantsPush = false
        var pushSetUpStarted = false
        var lastVolume: Double?
        var lastPlaying: Playing?
    }
    private let state = Mutex(State())
    struct Extra: Sendable {
        var raop: RAOPService?
    }
    let extra = Mutex(Extra())
    private let updateBroadcaster = Broadcaster<DeviceUpdate>()
    /// The longest one protocol's setup may take as a whole (each step has its own timeouts too).
    let setUpDeadline: Duration?
    private let logger = Logger(label: "atv.facade")

    /// An empty facade for `config`: add protocols with ``add(_:)``, then ``connect()``.
    /// ``connect(_:options:storage:)`` does all of this for every protocol the device offers.
    /// `setUpDeadline` bounds each protocol's whole setup.
    public init(config: DeviceConfig, setUpDeadline: Duration? = nil) {
        self.config = config
        self.setUpDeadline = setUpDeadline
    }

    // MARK: Setup

    /// Add a protocol. The first setup for a protocol wins; later ones for it are ignored.
    public func add(_ setup: ProtocolSetup) throws {
        try state.withLock { s in
            if s.connected || s.closed { throw ATVError.invalidState("protocols cannot be added after connect") }
            if s.setups.contains(where: { $0.protocol == setup.protocol }) { return }
            s.setups.append(setup)
            s.setUp[setup.protocol] = .pending
        }
    }

    /// The protocols added, in the order they were added.
    public var protocols: [ATVProtocol] { state.withLock { $0.setups.map(\.protocol) } }

    /// The protocols set up so far (connected, or connecting now / having failed: not listed).
    public var protocolsSetUp: [ATVProtocol] {
        state.withLock { s in s.setups.map(\.protocol).filter { if case .ready? = s.setUp[$0] { true } else { false } } }
    }

    /// Make every added protocol available: its interfaces are registered now and it is set up
    /// (connected) on first use. Connects nothing by itself.
    public func connect() async throws {
        let setups = try state.withLock { s -> [ProtocolSetup] in
            if s.connected { throw ATVError.invalidState("already connected") }
            if s.closed { throw ATVError.blocked }
            s.connected = true
            return s.setups
        }
        for setup in setups { register(setup) }
        let prepare: @Sendable (ATVProtocol) async throws -> Void = { [weak self] proto in
            guard let self else { throw ATVError.blocked }
            try await self.setUp(proto)
        }
        remoteRelayer.setPrepare(prepare)
        metadataRelayer.setPrepare(prepare)
        pushRelayer.setPrepare(prepare)
        streamRelayer.setPrepare(prepare)
        powerRelayer.setPrepare(prepare)
        audioRelayer.setPrepare(prepare)
        appsRelayer.setPrepare(prepare)
        accountsRelayer.setPrepare(prepare)
        keyboardRelayer.setPrepare(prepare)
        touchRelayer.setPrepare(prepare)
        startForwarding()
        if state.withLock({ $0.wantsPush }) { setUpPushUpdatersInBackground() }
    }

    /// Set protocols up now, in the order they were added (all of them when `protocols` is nil),
    /// waiting for any already under way; the first failure is thrown. Calls set up the protocol
    /// they use by themselves: this is for when everything should be known at once (features).
    public func setUp(_ protocols: [ATVProtocol]? = nil) async throws {
        let order = state.withLock { $0.setups.map(\.protocol) }
        for p in order where protocols?.contains(p) ?? true {
            try await setUp(p)
        }
    }

    /// Set one protocol up, once: concurrent callers share one attempt, and a failed attempt is
    /// remembered (later calls get the same error; MRP, Companion and DMAP cannot reconnect).
    func setUp(_ proto: ATVProtocol) async throws {
        let task = try state.withLock { s -> Task<Void, any Error>? in
            if s.closed { throw ATVError.blocked }
            guard s.connected, let current = s.setUp[proto] else { return nil }
            switch current {
            case .ready: return nil
            case .failed(let error): throw error
            case .connecting(let t): return t
            case .pending:
                guard let setup = s.setups.first(where: { $0.protocol == proto }) else { return nil }
                let t = Task { [self] in
                    do {
                        try await connect(setup)
                        state.withLock { $0.setUp[proto] = .ready }
                    } catch {
                        state.withLock { $0.setUp[proto] = .failed(error) }
                        throw error
                    }
                }
                s.setUp[proto] = .connecting(t)
                return t
            }
        }
        try await task?.value
    }

    private func connect(_ setup: ProtocolSetup) async throws {
        logger.debug("setting up \(setup.protocol) for \(config.name)")
        guard let limit = setUpDeadline else { return try await setup.connect() }
        let name = config.name
        let proto = setup.protocol
        try await withDeadline(limit, {
            ATVError.timeout("\(name) did not finish setting up \(proto) within \(ATVError.seconds(limit)) s")
        }) { try await setup.connect() }
    }

    /// Push updates need their protocols connected: set those up in the background, once. A
    /// failure is logged, never fatal to the device or to a call that uses another protocol.
    private func setUpPushUpdatersInBackground() {
        let start = state.withLock { s -> Bool in
            s.wantsPush = true
            guard s.connected, !s.closed, !s.pushSetUpStarted else { return false }
            s.pushSetUpStarted = true
            return true
        }
        guard start else { return }
        for (proto, _) in pushRelayer.ordered() {
            Task { [weak self, logger] in
                do { try await self?.setUp(proto) } catch {
                    logger.info("\(proto) did not set up, no push updates from it: \(error)")
                }
            }
        }
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
            case .connectionLost, .connectionClosed:
                // Only a protocol that was set up can lose its connection; one that failed while
                // setting up has reported that to the call that needed it.
                guard case .ready? = s.setUp[proto] else { return false }
            default: break
            }
            return true
        }
        guard send else { return }
        updateBroadcaster.yield(update)
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
            // A setup under way finishes (each step has a timeout) before its protocol is closed.
            let connecting = s.setUp.values.compactMap { state -> Task<Void, any Error>? in
                if case .connecting(let t) = state { t } else { nil }
            }
            let broadcaster = updateBroadcaster
            let t = Task {
                for f in forwarders { f.cancel() }
                for c in connecting { _ = try? await c.value }
                for setup in setups.reversed() { await setup.close() }
                broadcaster.finish()
            }
            s.closeTask = t
            return t
        }
        await task.value
    }

    /// Whether ``close()`` was called (or a lost connection closed the device).
    public var isClosed: Bool { state.withLock { $0.closed } }

    func guardOpen() throws {
        if isClosed { throw ATVError.blocked }
    }

    // MARK: Interfaces

    /// Model, operating system, version, MAC address and more: from discovery, completed by what
    /// each protocol learnt while setting up.
    public var deviceInfo: DeviceInfo {
        var info = config.deviceInfo
        for s in state.withLock({ $0.setups }) { info.merge(s.deviceInfo) }
        return info
    }

    /// What the device can do now, feature by feature.
    public var features: FacadeFeatures { FacadeFeatures(device: self) }
    /// Buttons and playback commands.
    public var remoteControl: FacadeRemoteControl { FacadeRemoteControl(device: self) }
    /// What is playing, its artwork and app.
    public var metadata: FacadeMetadata { FacadeMetadata(device: self) }
    /// Audio streaming and URL playback.
    public var stream: FacadeStream { FacadeStream(device: self) }
    /// Power state, on and off.
    public var power: FacadePower { FacadePower(device: self) }
    /// Volume and output devices.
    public var audio: FacadeAudio { FacadeAudio(device: self) }
    /// Installed apps; launching them.
    public var apps: FacadeApps { FacadeApps(device: self) }
    /// User accounts; switching between them.
    public var userAccounts: FacadeUserAccounts { FacadeUserAccounts(device: self) }
    /// The text of the focused text field.
    public var keyboard: FacadeKeyboard { FacadeKeyboard(device: self) }
    /// Touch gestures.
    public var touch: FacadeTouch { FacadeTouch(device: self) }

    /// Push updates from every protocol (playing state only from the main one), each only on change.
    /// The stream ends when the device is closed. Subscribing sets up, in the background, every
    /// protocol that pushes updates (a failure there is logged and ends nothing).
    public func updates() -> AsyncStream<DeviceUpdate> {
        let stream = updateBroadcaster.subscribe()
        setUpPushUpdatersInBackground()
        return stream
    }

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
    /// Whether `name` is available now, unavailable now (supported, but not in this state),
    /// unsupported by every protocol of the device, or of unknown availability; with its options
    /// where the protocol has some.
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
