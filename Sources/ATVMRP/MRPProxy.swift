// The MRP proxy: the shared HAPProxyServer shell driving an MRPProxySession per controller (the
// device must answer DEVICE_INFO and pair-verify within `connectTimeout`), outputs turned into events.
import ATVAuth
import ATVCore
import Logging

public final class MRPProxy: Sendable {
    public struct Configuration: Sendable {
        public var listenHost: String
        public var listenPort: Int
        public var deviceHost: String
        public var devicePort: Int
        public var credentials: HAPCredentials
        public var identity: HAPIdentity
        public var pin: String
        /// The name the proxy reports in DEVICE_INFO.
        public var name: String
        public var connectTimeout: Duration
        /// Controllers paired before (e.g. loaded from a file), accepted for pair-verify.
        public var controllers: [HAPPairedController] = []
        public init(listenHost: String = "127.0.0.1", listenPort: Int = 0, deviceHost: String, devicePort: Int,
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

    /// What happened, for the caller to print: one line per event.
    package enum Event: Sendable {
        case controllerConnected(String)
        case controllerPaired(HAPPairedController)
        case controllerVerified(String)
        case controllerAuthFailed(String)
        case deviceVerified(String)
        case deviceFailed(String)
        case message(MRPProxySession.Direction, MRPProtocolMessage)
        case dropped(MRPProtocolMessage)
        case closed(String)
    }

    public let configuration: Configuration
    let server: HAPProxyServer<MRPProxySession>

    init(configuration: Configuration, server: HAPProxyServer<MRPProxySession>) {
        self.configuration = configuration
        self.server = server
    }

    public var port: Int { server.port }
    public var pairedControllers: [HAPPairedController] { server.pairedControllers }

    package static func start(_ configuration: Configuration, events: @escaping @Sendable (Event) -> Void) async throws -> MRPProxy {
        let c = configuration
        let logger = Logger(label: "atv.proxy.mrp")
        let hooks = HAPProxyServer<MRPProxySession>.Hooks(
            makeSession: { MRPProxySession(identity: c.identity, pin: c.pin, credentials: c.credentials, name: c.name) },
            action: { o in
                switch o {
                case .sendToController(let b): .toController(b)
                case .sendToDevice(let b): .toDevice(b)
                case .paired(let p): .paired(p)
                case .deviceVerified: .deviceVerified
                case .controllerVerified, .controllerAuthFailed, .message, .dropped: .none
                }
            },
            output: { o in
                switch o {
                case .sendToController, .sendToDevice: break
                case .paired(let p): events(.controllerPaired(p))
                case .controllerVerified(let p): events(.controllerVerified(String(decoding: p.identifier, as: UTF8.self)))
                case .controllerAuthFailed(let e): events(.controllerAuthFailed("\(e)"))
                case .deviceVerified(let info): events(.deviceVerified(info.name))
                case .message(let d, let m):
                    if logger.logLevel <= .debug, let bytes = try? MRPCodec.encode(m) {
                        logger.debug("mrp message \(d.rawValue) type=\(m.type) protobuf=\(Hex.encode(bytes))")
                    }
                    events(.message(d, m))
                case .dropped(let m): events(.dropped(m))
                }
            },
            controllerConnected: { events(.controllerConnected($0)) },
            deviceFailed: { events(.deviceFailed($0)) },
            closed: { events(.closed($0)) })
        let endpoints = HAPProxyServer<MRPProxySession>.Endpoints(
            listenHost: c.listenHost, listenPort: c.listenPort, deviceHost: c.deviceHost, devicePort: c.devicePort, timeout: c.connectTimeout)
        let server = try await HAPProxyServer.start(endpoints, controllers: c.controllers, hooks: hooks)
        return MRPProxy(configuration: configuration, server: server)
    }

    package func stop() async {
        await server.stop()
    }
}

extension MRPProxySession: HAPProxySession {}
