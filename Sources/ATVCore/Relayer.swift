import Synchronization

/// Picks the protocol that serves a call. Implementations are tried in priority order (a protocol
/// holding a takeover comes first); one that throws `ATVError.notSupported` lacks that member, so
/// the call falls through to the next. When none has it, the call throws `.notSupported(feature)`.
/// A `prepare` hook, when set, runs before each protocol is asked (the facade sets the protocol up
/// there, on first use); its error ends the call.
package final class Relayer<Interface: Sendable>: Sendable {
    private struct State {
        var implementations: [ATVProtocol: Interface] = [:]
        var takeover: ATVProtocol?
        var prepare: (@Sendable (ATVProtocol) async throws -> Void)?
    }
    private let state = Mutex(State())
    package let priority: [ATVProtocol]

    package init(priority: [ATVProtocol] = ATVProtocol.defaultPriority) {
        self.priority = priority
    }

    package func register(_ implementation: Interface, for proto: ATVProtocol) {
        state.withLock { $0.implementations[proto] = implementation }
    }

    package var protocols: Set<ATVProtocol> { state.withLock { Set($0.implementations.keys) } }

    /// Runs before a call is relayed to a protocol (once per protocol tried).
    package func setPrepare(_ prepare: @escaping @Sendable (ATVProtocol) async throws -> Void) {
        state.withLock { $0.prepare = prepare }
    }

    /// Implementations in the order calls try them.
    package func ordered(priority override: [ATVProtocol]? = nil) -> [(ATVProtocol, Interface)] {
        state.withLock { s in
            var order = override ?? priority
            // Protocols missing from an override list still come last, in default order.
            order += priority.filter { !order.contains($0) }
            if let t = s.takeover { order = [t] + order.filter { $0 != t } }
            return order.compactMap { p in s.implementations[p].map { (p, $0) } }
        }
    }

    /// The first implementation in priority order (the "main" instance).
    package func main(priority override: [ATVProtocol]? = nil) -> (ATVProtocol, Interface)? {
        ordered(priority: override).first
    }

    /// Relay a call. `feature` names what is missing if no protocol implements it.
    package func relay<R>(_ feature: FeatureName, priority override: [ATVProtocol]? = nil,
                         _ call: (Interface) async throws -> R) async throws -> R {
        let prepare = state.withLock { $0.prepare }
        for (proto, impl) in ordered(priority: override) {
            try await prepare?(proto)
            do {
                return try await call(impl)
            } catch ATVError.notSupported {
                continue
            }
        }
        throw ATVError.notSupported(feature)
    }

    /// Make `proto` the first choice until `release` is called. A second takeover fails.
    package func takeover(by proto: ATVProtocol) throws {
        try state.withLock { s in
            if let t = s.takeover {
                throw ATVError.invalidState("\(t) has already taken over this interface")
            }
            s.takeover = proto
        }
    }

    package func release(by proto: ATVProtocol) {
        state.withLock { s in if s.takeover == proto { s.takeover = nil } }
    }
}

/// The interface implementations one protocol provides for a connected device.
public struct InterfaceSet: Sendable {
    public var remoteControl: (any RemoteControl)?
    public var metadata: (any Metadata)?
    public var pushUpdater: (any PushUpdater)?
    public var stream: (any StreamInterface)?
    public var power: (any Power)?
    public var audio: (any Audio)?
    public var apps: (any Apps)?
    public var userAccounts: (any UserAccounts)?
    public var keyboard: (any Keyboard)?
    public var touch: (any TouchGestures)?

    public init(remoteControl: (any RemoteControl)? = nil, metadata: (any Metadata)? = nil,
                pushUpdater: (any PushUpdater)? = nil, stream: (any StreamInterface)? = nil, power: (any Power)? = nil,
                audio: (any Audio)? = nil, apps: (any Apps)? = nil, userAccounts: (any UserAccounts)? = nil,
                keyboard: (any Keyboard)? = nil, touch: (any TouchGestures)? = nil) {
        self.remoteControl = remoteControl
        self.metadata = metadata
        self.pushUpdater = pushUpdater
        self.stream = stream
        self.power = power
        self.audio = audio
        self.apps = apps
        self.userAccounts = userAccounts
        self.keyboard = keyboard
        self.touch = touch
    }
}

/// Lets a protocol make itself first choice for some interfaces while it works (RAOP does this for
/// Audio, Metadata, PushUpdater and RemoteControl while streaming).
package protocol TakeoverControl: Sendable {
    func takeover(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>) throws
    func release(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>)
}

package enum InterfaceKind: String, Sendable, CaseIterable {
    case remoteControl, metadata, pushUpdater, stream, power, audio, apps, userAccounts, keyboard, touch
}

/// What one protocol contributes to a connected device: its interfaces, the features it claims,
/// device info it learned, and how to connect and close it.
public struct ProtocolSetup: Sendable {
    public var `protocol`: ATVProtocol
    public var interfaces: InterfaceSet
    public var features: any Features
    public var deviceInfo: DeviceInfo
    public var connect: @Sendable () async throws -> Void
    public var close: @Sendable () async -> Void
    /// The protocol's own object (e.g. `RAOPService`), for what the facade offers beyond the
    /// shared interfaces.
    public var handle: (any Sendable)?

    public init(protocol: ATVProtocol, interfaces: InterfaceSet, features: any Features,
                deviceInfo: DeviceInfo = DeviceInfo(),
                connect: @escaping @Sendable () async throws -> Void = {},
                close: @escaping @Sendable () async -> Void = {}, handle: (any Sendable)? = nil) {
        self.protocol = `protocol`
        self.handle = handle
        self.interfaces = interfaces
        self.features = features
        self.deviceInfo = deviceInfo
        self.connect = connect
        self.close = close
    }
}
