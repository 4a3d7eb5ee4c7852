// The Companion proxy: the shared HAPProxyServer shell driving a CompanionProxySession per
// controller, its outputs turned into events (one decoded line each).
import ATVAuth
import ATVCore
import Logging

public final class CompanionProxy: Sendable {
    public struct Configuration: Sendable {
        public var listenHost: String
        public var listenPort: Int
        public var deviceHost: String
        public var devicePort: Int
        public var credentials: HAPCredentials
        public var identity: HAPIdentity
        public var pin: String
        public var connectTimeout: Duration
        /// Controllers paired before (e.g. loaded from a file), accepted for pair-verify.
        public var controllers: [HAPPairedController] = []
        public init(listenHost: String = "127.0.0.1", listenPort: Int = 0, deviceHost: String, devicePort: Int,
                    credentials: HAPCredentials, identity: HAPIdentity, pin: String = "1111", connectTimeout: Duration = .seconds(10)) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.deviceHost = deviceHost
            self.devicePort = devicePort
            self.credentials = credentials
            self.identity = identity
            self.pin = pin
            self.connectTimeout = connectTimeout
        }
    }

    /// What happened, for the caller to print: one line per event, decoded.
    public enum Event: Sendable {
        case controllerConnected(String)
        case controllerPaired(HAPPairedController)
        case controllerVerified(String)
        case controllerAuthFailed(String)
        case deviceVerified
        case deviceFailed(String)
        case frame(CompanionProxySession.Direction, CompanionFrame)
        case closed(String)
    }

    public let configuration: Configuration
    let server: HAPProxyServer<CompanionProxySession>

    init(configuration: Configuration, server: HAPProxyServer<CompanionProxySession>) {
        self.configuration = configuration
        self.server = server
    }

    public var port: Int { server.port }
    public var pairedControllers: [HAPPairedController] { server.pairedControllers }

    public static func start(_ configuration: Configuration, events: @escaping @Sendable (Event) -> Void) async throws -> CompanionProxy {
        let c = configuration
        let logger = Logger(label: "atv.proxy.companion")
        let hooks = HAPProxyServer<CompanionProxySession>.Hooks(
            makeSession: { CompanionProxySession(identity: c.identity, pin: c.pin, credentials: c.credentials) },
            action: { o in
                switch o {
                case .sendToController(let b): .toController(b)
                case .sendToDevice(let b): .toDevice(b)
                case .paired(let p): .paired(p)
                case .deviceVerified: .deviceVerified
                case .controllerVerified, .controllerAuthFailed, .forwarded: .none
                }
            },
            output: { o in
                switch o {
                case .sendToController, .sendToDevice: break
                case .paired(let p): events(.controllerPaired(p))
                case .controllerVerified(let p): events(.controllerVerified(String(decoding: p.identifier, as: UTF8.self)))
                case .controllerAuthFailed(let e): events(.controllerAuthFailed("\(e)"))
                case .deviceVerified: events(.deviceVerified)
                case .forwarded(let d, let f):
                    logger.debug("companion frame \(d.rawValue) type=\(f.type) opack=\(Hex.encode(f.payload))")
                    events(.frame(d, f))
                }
            },
            controllerConnected: { events(.controllerConnected($0)) },
            deviceFailed: { events(.deviceFailed($0)) },
            closed: { events(.closed($0)) })
        let endpoints = HAPProxyServer<CompanionProxySession>.Endpoints(
            listenHost: c.listenHost, listenPort: c.listenPort, deviceHost: c.deviceHost, devicePort: c.devicePort, timeout: c.connectTimeout)
        let server = try await HAPProxyServer.start(endpoints, controllers: c.controllers, hooks: hooks)
        return CompanionProxy(configuration: configuration, server: server)
    }

    public func stop() async {
        await server.stop()
    }
}

extension CompanionProxySession: HAPProxySession {}

extension CompanionProxy {
    /// One line for a forwarded frame: its type and, for OPACK frames, the decoded message.
    public static func describe(_ frame: CompanionFrame) -> String {
        let type = CompanionFrameType(rawValue: frame.type).map { "\($0)" } ?? String(format: "0x%02x", frame.type)
        guard CompanionFrameType(rawValue: frame.type)?.isOPACK == true else {
            return "\(type) \(frame.payload.count) bytes"
        }
        guard let value = try? OPACK.decode(frame.payload) else { return "\(type) undecodable \(Hex.encode(frame.payload.prefix(64)))" }
        if let m = try? CompanionMessage(decoding: frame.payload) {
            return "\(type) \(m.kind) \(m.identifier ?? "-") x=\(m.xid.map(String.init) ?? "-") \(m.content)" + (m.errorMessage.map { " error=\($0)" } ?? "")
        }
        return "\(type) \(value)"
    }
}
