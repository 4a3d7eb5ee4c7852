// The I/O shell of the MRP proxy: listens as an MRP accessory, and for each controller that
// connects opens a connection to the real device and runs an MRPProxySession between them.
// Everything of one link runs on the controller channel's event loop.
import ATVAuth
import ATVCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

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
    public enum Event: Sendable {
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

    public static func start(_ configuration: Configuration, events: @escaping @Sendable (Event) -> Void) async throws -> MRPProxy {
        let box = Mutex<MRPProxy?>(nil)
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        guard let proxy = box.withLock({ $0 }) else { throw ATVError.invalidState("proxy is not ready") }
                        try ch.pipeline.syncOperations.addHandler(MRPProxyControllerHandler(proxy: proxy))
                    }
                }
                .bind(host: configuration.listenHost, port: configuration.listenPort).get()
        } catch {
            throw ATVError.connectionFailed("cannot listen on \(configuration.listenHost):\(configuration.listenPort): \(error)")
        }
        let proxy = MRPProxy(configuration: configuration, channel: channel, handler: events)
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
final class MRPProxyControllerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let proxy: MRPProxy
    var session: MRPProxySession
    var controller: Channel?
    var device: Channel?
    var closed = false
    var handshakeTimer: Scheduled<Void>?
    let logger = Logger(label: "atv.proxy.mrp")

    init(proxy: MRPProxy) {
        self.proxy = proxy
        let c = proxy.configuration
        session = MRPProxySession(identity: c.identity, pin: c.pin, credentials: c.credentials, name: c.name)
    }

    func channelActive(context: ChannelHandlerContext) {
        let ch = context.channel
        controller = ch
        proxy.handler(.controllerConnected("\(ch.remoteAddress.map { "\($0)" } ?? "?")"))
        let c = proxy.configuration
        let t = c.connectTimeout.components
        let ms = t.seconds * 1000 + t.attoseconds / 1_000_000_000_000_000
        ClientBootstrap(group: ch.eventLoop)
            .connectTimeout(.milliseconds(max(ms, 1)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { dch in
                dch.eventLoop.makeCompletedFuture { try dch.pipeline.syncOperations.addHandler(MRPProxyDeviceHandler(link: self)) }
            }
            .connect(host: c.deviceHost, port: c.devicePort)
            .whenComplete { result in
                switch result {
                case .success(let dch):
                    self.device = dch
                    if self.closed { dch.close(promise: nil); return }
                    // The device must answer DEVICE_INFO and pair-verify in time.
                    self.handshakeTimer = ch.eventLoop.scheduleTask(in: .milliseconds(max(ms, 1))) {
                        guard !self.session.deviceVerified, !self.closed else { return }
                        self.proxy.handler(.deviceFailed("no DEVICE_INFO reply or pair-verify from \(c.deviceHost):\(c.devicePort) within \(c.connectTimeout)"))
                        self.close()
                    }
                    self.perform { s throws(ATVError) in try s.start() }
                case .failure(let error):
                    self.proxy.handler(.deviceFailed("cannot connect to \(c.deviceHost):\(c.devicePort): \(error)"))
                    self.close()
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

    func perform(_ step: (inout MRPProxySession) throws(ATVError) -> [MRPProxySession.Output]) {
        guard !closed else { return }
        let outputs: [MRPProxySession.Output]
        do { outputs = try step(&session) } catch {
            proxy.handler(.closed("\(error)"))
            close()
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
            case .deviceVerified(let info):
                handshakeTimer?.cancel()
                proxy.handler(.deviceVerified(info.name))
            case .message(let d, let m):
                if logger.logLevel <= .debug, let bytes = try? MRPCodec.encode(m) {
                    logger.debug("mrp message \(d.rawValue) type=\(m.type) protobuf=\(Hex.encode(bytes))")
                }
                proxy.handler(.message(d, m))
            case .dropped(let m): proxy.handler(.dropped(m))
            }
        }
    }

    func write(_ ch: Channel?, _ bytes: [UInt8]) {
        guard let ch else { return }
        ch.writeAndFlush(ch.allocator.buffer(bytes: bytes), promise: nil)
    }

    func close() {
        guard !closed else { return }
        closed = true
        handshakeTimer?.cancel()
        controller?.close(promise: nil)
        device?.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closed { proxy.handler(.closed("controller disconnected")) }
        close()
    }

    func deviceInactive() {
        if !closed { proxy.handler(.closed("device disconnected")) }
        close()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

final class MRPProxyDeviceHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let link: MRPProxyControllerHandler
    init(link: MRPProxyControllerHandler) { self.link = link }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        link.fromDevice(buf.readBytes(length: buf.readableBytes) ?? [])
    }
    func channelInactive(context: ChannelHandlerContext) { link.deviceInactive() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
