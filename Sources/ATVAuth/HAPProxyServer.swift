// The I/O shell shared by the Companion and MRP proxies: listens as a HAP accessory, and for each
// controller that connects opens a connection to the real device and drives one sans-I/O proxy
// session between them. Everything of one link runs on the controller channel's event loop.
import ATVCore
import NIOCore
import NIOPosix
import Synchronization

extension HAPIdentity {
    /// A proxy's pairing identity derived from its `name` (same name, same keys: controllers stay
    /// paired across restarts, as with atvproxy's fixed server key).
    package static func proxy(named name: String) throws(ATVError) -> HAPIdentity {
        let seed = HAPKeys.hkdf(salt: "swift-atv-proxy-seed", info: name, secret: Array(name.utf8), length: 32)
        let u = HAPKeys.hkdf(salt: "swift-atv-proxy-id", info: name, secret: Array(name.utf8), length: 16)
        let a = Array(Hex.encode(u, uppercase: true))
        let id = [a[0 ..< 8], a[8 ..< 12], a[12 ..< 16], a[16 ..< 20], a[20 ..< 32]].map { String($0) }.joined(separator: "-")
        return try HAPIdentity(identifier: id, seed: seed)
    }
}

/// A sans-I/O proxy session: bytes from either side in, outputs out.
package protocol HAPProxySession: SendableMetatype {
    associatedtype Output
    mutating func start() throws(ATVError) -> [Output]
    mutating func fromController(_ bytes: [UInt8], controllers: [HAPPairedController]) throws(ATVError) -> [Output]
    mutating func fromDevice(_ bytes: [UInt8]) throws(ATVError) -> [Output]
}

/// What the shell does for one session output; the protocol's own reporting happens in `HAPProxyServer.Hooks.output`.
package enum HAPProxyAction: Sendable {
    case toController([UInt8])
    case toDevice([UInt8])
    /// A controller finished pair-setup: it is accepted for pair-verify from now on.
    case paired(HAPPairedController)
    /// The device answered and pair-verified: the handshake deadline is cancelled.
    case deviceVerified
    case none
}

package final class HAPProxyServer<Session: HAPProxySession>: Sendable {
    package struct Endpoints: Sendable {
        package var listenHost: String
        package var listenPort: Int
        package var deviceHost: String
        package var devicePort: Int
        /// For connecting to the device, and again for its pair-verify to complete.
        package var timeout: Duration
        package init(listenHost: String, listenPort: Int, deviceHost: String, devicePort: Int, timeout: Duration) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.deviceHost = deviceHost
            self.devicePort = devicePort
            self.timeout = timeout
        }
    }

    package struct Hooks: Sendable {
        /// A new session for each controller connection.
        package var makeSession: @Sendable () -> Session
        /// What the shell does with an output; called for every output, in order, before `output`.
        package var action: @Sendable (Session.Output) -> HAPProxyAction
        /// Reports an output (after its action was carried out).
        package var output: @Sendable (Session.Output) -> Void
        package var controllerConnected: @Sendable (String) -> Void
        package var deviceFailed: @Sendable (String) -> Void
        package var closed: @Sendable (String) -> Void
        package init(makeSession: @escaping @Sendable () -> Session, action: @escaping @Sendable (Session.Output) -> HAPProxyAction,
                    output: @escaping @Sendable (Session.Output) -> Void, controllerConnected: @escaping @Sendable (String) -> Void,
                    deviceFailed: @escaping @Sendable (String) -> Void, closed: @escaping @Sendable (String) -> Void) {
            self.makeSession = makeSession
            self.action = action
            self.output = output
            self.controllerConnected = controllerConnected
            self.deviceFailed = deviceFailed
            self.closed = closed
        }
    }

    package let endpoints: Endpoints
    let hooks: Hooks
    let channel: Channel
    let controllers: Mutex<[HAPPairedController]>

    init(endpoints: Endpoints, hooks: Hooks, channel: Channel, controllers: [HAPPairedController]) {
        self.endpoints = endpoints
        self.hooks = hooks
        self.channel = channel
        self.controllers = Mutex(controllers)
    }

    package var port: Int { channel.localAddress?.port ?? 0 }
    package var pairedControllers: [HAPPairedController] { controllers.withLock { $0 } }

    /// `controllers`: paired before (e.g. loaded from a file), accepted for pair-verify.
    package static func start(_ endpoints: Endpoints, controllers: [HAPPairedController], hooks: Hooks) async throws -> HAPProxyServer {
        let box = Mutex<HAPProxyServer?>(nil)
        let channel = try await TCPListener.bind(host: endpoints.listenHost, port: endpoints.listenPort,
                                                 options: .init(noDelay: true)) { _, pipeline in
            guard let server = box.withLock({ $0 }) else { throw ATVError.invalidState("proxy is not ready") }
            try pipeline.addHandler(HAPProxyLink(server: server))
        }
        let server = HAPProxyServer(endpoints: endpoints, hooks: hooks, channel: channel, controllers: controllers)
        box.withLock { $0 = server }
        return server
    }

    package func stop() async {
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
final class HAPProxyLink<Session: HAPProxySession>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let server: HAPProxyServer<Session>
    var session: Session
    var controller: Channel?
    var device: Channel?
    var closed = false
    var deviceVerified = false
    var handshakeTimer: Scheduled<Void>?

    init(server: HAPProxyServer<Session>) {
        self.server = server
        session = server.hooks.makeSession()
    }

    func channelActive(context: ChannelHandlerContext) {
        let ch = context.channel
        controller = ch
        server.hooks.controllerConnected("\(ch.remoteAddress.map { "\($0)" } ?? "?")")
        let e = server.endpoints
        let t = e.timeout.components
        let ms = max(t.seconds * 1000 + t.attoseconds / 1_000_000_000_000_000, 1)
        ClientBootstrap(group: ch.eventLoop)
            .connectTimeout(.milliseconds(ms))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { dch in
                dch.eventLoop.makeCompletedFuture { try dch.pipeline.syncOperations.addHandler(HAPProxyDeviceHandler(link: self)) }
            }
            .connect(host: e.deviceHost, port: e.devicePort)
            .whenComplete { result in
                switch result {
                case .success(let dch):
                    self.device = dch
                    if self.closed { dch.close(promise: nil); return }
                    // The device must complete its handshake in time.
                    self.handshakeTimer = ch.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                        guard !self.deviceVerified, !self.closed else { return }
                        self.server.hooks.deviceFailed("no pair-verify from \(e.deviceHost):\(e.devicePort) within \(e.timeout)")
                        self.close()
                    }
                    self.perform { s throws(ATVError) in try s.start() }
                case .failure(let error):
                    self.server.hooks.deviceFailed("cannot connect to \(e.deviceHost):\(e.devicePort): \(error)")
                    self.close()
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        let bytes = buf.readBytes(length: buf.readableBytes) ?? []
        let known = server.pairedControllers
        perform { s throws(ATVError) in try s.fromController(bytes, controllers: known) }
    }

    func fromDevice(_ bytes: [UInt8]) {
        perform { s throws(ATVError) in try s.fromDevice(bytes) }
    }

    func perform(_ step: (inout Session) throws(ATVError) -> [Session.Output]) {
        guard !closed else { return }
        let outputs: [Session.Output]
        do { outputs = try step(&session) } catch {
            server.hooks.closed("\(error)")
            close()
            return
        }
        for o in outputs {
            switch server.hooks.action(o) {
            case .toController(let b): write(controller, b)
            case .toDevice(let b): write(device, b)
            case .paired(let c): server.addController(c)
            case .deviceVerified:
                deviceVerified = true
                handshakeTimer?.cancel()
            case .none: break
            }
            server.hooks.output(o)
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
        if !closed { server.hooks.closed("controller disconnected") }
        close()
    }

    func deviceInactive() {
        if !closed { server.hooks.closed("device disconnected") }
        close()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

final class HAPProxyDeviceHandler<Session: HAPProxySession>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let link: HAPProxyLink<Session>
    init(link: HAPProxyLink<Session>) { self.link = link }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        link.fromDevice(buf.readBytes(length: buf.readableBytes) ?? [])
    }
    func channelInactive(context: ChannelHandlerContext) { link.deviceInactive() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
