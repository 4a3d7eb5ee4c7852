// The I/O shell of the Companion proxy: listens as an accessory, and for each controller that
// connects opens a connection to the real device and runs a CompanionProxySession between them.
// Everything of one link runs on the controller channel's event loop.
import ATVAuth
import ATVCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

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
    let channel: Channel
    let controllers = Mutex<[HAPPairedController]>([])
    let handler: @Sendable (Event) -> Void

    init(configuration: Configuration, channel: Channel, handler: @escaping @Sendable (Event) -> Void) {
        self.configuration = configuration
        self.channel = channel
        self.handler = handler
    }

    public var port: Int { channel.localAddress?.port ?? 0 }
    public var pairedControllers: [HAPPairedController] { controllers.withLock { $0 } }

    public static func start(_ configuration: Configuration, events: @escaping @Sendable (Event) -> Void) async throws -> CompanionProxy {
        let box = Mutex<CompanionProxy?>(nil)
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        guard let proxy = box.withLock({ $0 }) else { throw ATVError.invalidState("proxy is not ready") }
                        try ch.pipeline.syncOperations.addHandler(ProxyControllerHandler(proxy: proxy))
                    }
                }
                .bind(host: configuration.listenHost, port: configuration.listenPort).get()
        } catch {
            throw ATVError.connectionFailed("cannot listen on \(configuration.listenHost):\(configuration.listenPort): \(error)")
        }
        let proxy = CompanionProxy(configuration: configuration, channel: channel, handler: events)
        proxy.controllers.withLock { $0 = configuration.controllers }
        box.withLock { $0 = proxy }
        return proxy
    }

    public func stop() async {
        try? await channel.close()
    }

    func addController(_ c: HAPPairedController) {
        controllers.withLock { list in
            list.removeAll { $0.identifier == c.identifier }
            list.append(c)
        }
    }
}

/// One link: the controller's channel, the device's, and the session between them (event-loop confined).
final class ProxyControllerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let proxy: CompanionProxy
    var session: CompanionProxySession
    var controller: Channel?
    var device: Channel?
    var closed = false
    let logger = Logger(label: "atv.proxy.companion")

    init(proxy: CompanionProxy) {
        self.proxy = proxy
        session = CompanionProxySession(identity: proxy.configuration.identity, pin: proxy.configuration.pin,
                                        credentials: proxy.configuration.credentials)
    }

    func channelActive(context: ChannelHandlerContext) {
        let ch = context.channel
        controller = ch
        proxy.handler(.controllerConnected("\(ch.remoteAddress.map { "\($0)" } ?? "?")"))
        let c = proxy.configuration
        let t = c.connectTimeout.components
        ClientBootstrap(group: ch.eventLoop)
            .connectTimeout(.milliseconds(t.seconds * 1000 + t.attoseconds / 1_000_000_000_000_000))
            .channelInitializer { dch in
                dch.eventLoop.makeCompletedFuture { try dch.pipeline.syncOperations.addHandler(ProxyDeviceHandler(link: self)) }
            }
            .connect(host: c.deviceHost, port: c.devicePort)
            .whenComplete { result in
                switch result {
                case .success(let dch):
                    self.device = dch
                    if self.closed { dch.close(promise: nil); return }
                    self.perform { s throws(ATVError) in try s.start() }
                case .failure(let error):
                    self.proxy.handler(.deviceFailed("cannot connect to \(c.deviceHost):\(c.devicePort): \(error)"))
                    self.close("device unreachable")
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        let bytes = buf.readBytes(length: buf.readableBytes) ?? []
        let known = proxy.pairedControllers
        perform { s throws(ATVError) in try s.fromController(bytes, controllers: known) }
    }

    func fromDevice(_ bytes: [UInt8]) {
        perform { s throws(ATVError) in try s.fromDevice(bytes) }
    }

    func perform(_ step: (inout CompanionProxySession) throws(ATVError) -> [CompanionProxySession.Output]) {
        let outputs: [CompanionProxySession.Output]
        do { outputs = try step(&session) } catch {
            proxy.handler(.closed("\(error)"))
            close("\(error)")
            return
        }
        for o in outputs {
            switch o {
            case .sendToController(let b): write(controller, b)
            case .sendToDevice(let b): write(device, b)
            case .paired(let c):
                proxy.addController(c)
                proxy.handler(.controllerPaired(c))
            case .controllerVerified(let c): proxy.handler(.controllerVerified(String(decoding: c.identifier, as: UTF8.self)))
            case .controllerAuthFailed(let e): proxy.handler(.controllerAuthFailed("\(e)"))
            case .deviceVerified: proxy.handler(.deviceVerified)
            case .forwarded(let d, let f):
                logger.debug("companion frame \(d.rawValue) type=\(f.type) opack=\(Hex.encode(f.payload))")
                proxy.handler(.frame(d, f))
            }
        }
    }

    func write(_ ch: Channel?, _ bytes: [UInt8]) {
        guard let ch else { return }
        ch.writeAndFlush(ch.allocator.buffer(bytes: bytes), promise: nil)
    }

    func close(_ why: String) {
        guard !closed else { return }
        closed = true
        controller?.close(promise: nil)
        device?.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closed { proxy.handler(.closed("controller disconnected")) }
        close("controller disconnected")
    }

    func deviceInactive() {
        if !closed { proxy.handler(.closed("device disconnected")) }
        close("device disconnected")
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

final class ProxyDeviceHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let link: ProxyControllerHandler
    init(link: ProxyControllerHandler) { self.link = link }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        link.fromDevice(buf.readBytes(length: buf.readableBytes) ?? [])
    }
    func channelInactive(context: ChannelHandlerContext) { link.deviceInactive() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

extension CompanionProxy {
    /// A pairing identity derived from `name` (same name, same keys: controllers stay paired
    /// across restarts, as with atvproxy's fixed server key).
    public static func identity(for name: String) throws(ATVError) -> HAPIdentity {
        let seed = HAPKeys.hkdf(salt: "swift-atv-proxy-seed", info: name, secret: Array(name.utf8), length: 32)
        let u = HAPKeys.hkdf(salt: "swift-atv-proxy-id", info: name, secret: Array(name.utf8), length: 16)
        let h = Hex.encode(u, uppercase: true)
        let a = Array(h)
        let id = [a[0 ..< 8], a[8 ..< 12], a[12 ..< 16], a[16 ..< 20], a[20 ..< 32]].map { String($0) }.joined(separator: "-")
        return try HAPIdentity(identifier: id, seed: seed)
    }

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
