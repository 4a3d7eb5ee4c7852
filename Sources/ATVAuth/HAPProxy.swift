// The Companion and MRP proxies (`atv proxy companion|mrp`) as one: a `HAPProxyServer` driving one
// sans-I/O session per controller, its outputs turned into events. What differs between the two
// protocols — the session, which outputs the shell acts on, which it reports — the session type
// supplies through `HAPProxyProtocol`.
import ATVCore

/// What a proxy reports, one event per line a caller prints. `Traffic` is what the protocol
/// forwards (Companion frames, MRP messages).
package enum HAPProxyEvent<Traffic: Sendable>: Sendable {
    case controllerConnected(String)
    case controllerPaired(HAPPairedController)
    case controllerVerified(String)
    case controllerAuthFailed(String)
    /// We pair-verified with the device; its name where the protocol learns it (MRP's DEVICE_INFO).
    case deviceVerified(String?)
    case deviceFailed(String)
    case traffic(Traffic)
    case closed(String)
}

/// One protocol's proxy session, with what the shared proxy needs to know about it.
package protocol HAPProxyProtocol: HAPProxySession, Sendable {
    associatedtype Traffic: Sendable
    /// A session for one controller connection.
    init(configuration: HAPProxyConfiguration<Self>)
    /// What the shell does with an output (called for each, in order, before `event(for:)`).
    static func action(for output: Output) -> HAPProxyAction
    /// The event to report for an output, nil for none.
    static func event(for output: Output) -> HAPProxyEvent<Traffic>?
}

/// Where a proxy listens, the device it forwards to, and the identities on both sides.
package struct HAPProxyConfiguration<Session: HAPProxyProtocol>: Sendable {
    package var listenHost: String
    package var listenPort: Int
    package var deviceHost: String
    package var devicePort: Int
    /// Ours with the device (stored HAP credentials of the protocol).
    package var credentials: HAPCredentials
    /// The proxy's own pairing identity towards controllers.
    package var identity: HAPIdentity
    package var pin: String
    /// The name the proxy reports for itself where the protocol has one (MRP's DEVICE_INFO).
    package var name: String
    /// For connecting to the device, and again for its pair-verify to complete.
    package var connectTimeout: Duration
    /// Controllers paired before (e.g. loaded from a file), accepted for pair-verify.
    package var controllers: [HAPPairedController] = []

    /// A proxy listening on `listenHost:listenPort` (0: any free port) for the device at
    /// `deviceHost:devicePort`, which it pair-verifies with `credentials`.
    package init(listenHost: String = "127.0.0.1", listenPort: Int = 0, deviceHost: String, devicePort: Int,
                credentials: HAPCredentials, identity: HAPIdentity, pin: String = "1111", name: String,
                connectTimeout: Duration = .seconds(10)) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.deviceHost = deviceHost
        self.devicePort = devicePort
        self.credentials = credentials
        self.identity = identity
        self.pin = pin
        self.name = name
        self.connectTimeout = connectTimeout
    }
}

/// A running proxy of one protocol.
package final class HAPProxy<Session: HAPProxyProtocol>: Sendable {
    package typealias Configuration = HAPProxyConfiguration<Session>
    package typealias Event = HAPProxyEvent<Session.Traffic>

    package let configuration: Configuration
    let server: HAPProxyServer<Session>

    init(configuration: Configuration, server: HAPProxyServer<Session>) {
        self.configuration = configuration
        self.server = server
    }

    package var port: Int { server.port }
    package var pairedControllers: [HAPPairedController] { server.pairedControllers }

    /// Listens and forwards until ``stop()``; every event goes to `events`.
    package static func start(_ configuration: Configuration, events: @escaping @Sendable (Event) -> Void) async throws -> HAPProxy {
        let c = configuration
        let hooks = HAPProxyServer<Session>.Hooks(
            makeSession: { Session(configuration: c) },
            action: { Session.action(for: $0) },
            output: { o in if let e = Session.event(for: o) { events(e) } },
            controllerConnected: { events(.controllerConnected($0)) },
            deviceFailed: { events(.deviceFailed($0)) },
            closed: { events(.closed($0)) })
        let endpoints = HAPProxyServer<Session>.Endpoints(
            listenHost: c.listenHost, listenPort: c.listenPort, deviceHost: c.deviceHost, devicePort: c.devicePort, timeout: c.connectTimeout)
        let server = try await HAPProxyServer.start(endpoints, controllers: c.controllers, hooks: hooks)
        return HAPProxy(configuration: configuration, server: server)
    }

    package func stop() async {
        await server.stop()
    }
}
