import ATVCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small HTTP/1.1 server: each request (head + whole body, capped) goes to an async handler,
/// responses are written in request order (NIOHTTP1's pipelining handler), file bodies are sent
/// with `FileRegion` (sendfile). Used to serve local files to an Apple TV and by the virtual
/// Apple TV.
public final class HTTPServer: Sendable {
    public struct Request: Sendable {
        public var message: HTTPRequestMessage
        /// The client's IP address.
        public var remoteAddress: String?
        /// The address the client connected to.
        public var localAddress: String?
        /// Identifies the TCP connection (unique per server run).
        public var connection: Int
    }
    public typealias Handler = @Sendable (Request) async -> HTTPServerResponse

    private let channel: Channel
    private let registry: ConnectionRegistry
    public let host: String
    public let port: Int

    private init(channel: Channel, host: String, registry: ConnectionRegistry) {
        self.channel = channel
        self.host = host
        self.registry = registry
        self.port = channel.localAddress?.port ?? 0
    }

    /// Listens on `host:port` (0 = any free port). `maxRequestBody` caps accepted bodies (413 beyond).
    /// `onClose` is called with a connection's id when it closes.
    public static func start(host: String, port: Int = 0, maxRequestBody: Int = 1 << 20,
                             onClose: (@Sendable (Int) -> Void)? = nil,
                             handler: @escaping Handler) async throws -> HTTPServer {
        let registry = ConnectionRegistry()
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        let id = registry.add(channel)
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPServerRequestHandler(handler: handler, maxBody: maxRequestBody, connection: id))
                        channel.closeFuture.whenComplete { _ in
                            registry.remove(channel)
                            onClose?(id)
                        }
                    }
                }
                .bind(host: host, port: port).get()
            return HTTPServer(channel: channel, host: host, registry: registry)
        } catch {
            throw ATVError.listening(host, port, error)
        }
    }

    /// Stops listening and closes open connections.
    public func stop() async {
        try? await channel.close()
        for c in registry.channels.withLock({ Array($0.values) }) { c.close(promise: nil) }
    }

    /// The base URL, e.g. "http://192.168.1.5:43121".
    public var baseURL: String {
        host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
    }
}

/// Open child channels of one server, closed when it stops.
final class ConnectionRegistry: Sendable {
    let channels = Mutex<[ObjectIdentifier: Channel]>([:])
    private let counter = Mutex(0)
    func add(_ c: Channel) -> Int {
        channels.withLock { $0[ObjectIdentifier(c)] = c }
        return counter.withLock { $0 += 1; return $0 }
    }
    func remove(_ c: Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(c)) } }
}

final class HTTPServerRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: HTTPServer.Handler
    private let maxBody: Int
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private let connection: Int

    init(handler: @escaping HTTPServer.Handler, maxBody: Int, connection: Int) {
        self.handler = handler
        self.maxBody = maxBody
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > maxBody { tooLarge = true; return }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let h = head else { return }
            head = nil
            if tooLarge {
                respond(context: context, head: h, HTTPServerResponse(status: 413), keepAlive: false)
                return
            }
            var fields = RTSPHeaders()
            for f in h.headers { fields.add(f.name, f.value) }
            let request = HTTPServer.Request(
                message: HTTPRequestMessage(method: h.method.rawValue, uri: h.uri,
                                            version: "HTTP/\(h.version.major).\(h.version.minor)", headers: fields, body: body),
                remoteAddress: context.channel.remoteAddress?.ipAddress,
                localAddress: context.channel.localAddress?.ipAddress, connection: connection)
            body = []
            let handler = self.handler
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: HTTPServerResponse.self)
            promise.completeWithTask { await handler(request) }
            promise.futureResult.whenSuccess { response in
                let (me, ctx) = loopBound.value
                me.respond(context: ctx, head: h, response, keepAlive: h.isKeepAlive)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head request: HTTPRequestHead, _ response: HTTPServerResponse,
                         keepAlive: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        for f in response.headers.fields { headers.add(name: f.name, value: f.value) }
        let isHead = request.method == .HEAD
        var region: FileRegion?
        var bytes: [UInt8] = []
        var status = response.status
        switch response.body {
        case .bytes(let b):
            bytes = b
            headers.replaceOrAdd(name: "Content-Length", value: String(b.count))
        case .file(let path, let offset, let length):
            headers.replaceOrAdd(name: "Content-Length", value: String(length))
            if !isHead && length > 0 {
                do {
                    let handle = try NIOFileHandle(_deprecatedPath: path)
                    region = FileRegion(fileHandle: handle, readerIndex: offset, endIndex: offset + length)
                } catch {
                    status = 500
                    headers.replaceOrAdd(name: "Content-Length", value: "0")
                }
            }
        }
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: status,
                                            reasonPhrase: RTSPResponse.defaultReason(status)), headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if !isHead {
            if let region {
                let handle = region.fileHandle
                let done = context.eventLoop.makePromise(of: Void.self)
                done.futureResult.whenComplete { _ in try? handle.close() }
                context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: done)
            } else if !bytes.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
            }
        }
        let end = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            end.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
