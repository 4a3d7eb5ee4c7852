import ATVCore
import NIOCore
import NIOPosix
import Synchronization

/// One persistent HTTP/1.1 connection. Requests may be sent concurrently: they are written in
/// order and answered in order (HTTP/1.1), each with its own timeout. A timeout or a lost
/// connection fails every outstanding request and closes the connection (a late answer could
/// otherwise be taken for the next one's). Responses are framed by the shared `RTSPParser`
/// (Content-Length, chunked, or no length: an empty body on a keep-alive connection, the rest
/// of the stream when the device closes it). Every request ends: answered, failed or timed out.
public final class HTTPClientConnection: Sendable {
    let channel: Channel
    package let host: String
    package let port: Int
    /// Why the device broke the connection (garbage), once it did.
    private let fate: ConnectionFate

    private init(channel: Channel, host: String, port: Int, fate: ConnectionFate) {
        self.channel = channel
        self.fate = fate
        self.host = host
        self.port = port
    }

    /// Connects, failing with `ATVError.connectionFailed` (refused, unreachable) or `.timeout`.
    package static func connect(host: String, port: Int, timeout: Duration = .seconds(5)) async throws -> HTTPClientConnection {
        let fate = ConnectionFate()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout.timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTPClientRequestHandler(host: host, port: port, fate: fate))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            return HTTPClientConnection(channel: channel, host: host, port: port, fate: fate)
        } catch {
            throw ATVError.connecting("\(host):\(port)", error, timeout: timeout)
        }
    }

    /// The address of our end of the connection: the one the device can reach us on.
    package var localAddress: String? { channel.localAddress?.ipAddress }
    package var remoteAddress: String? { channel.remoteAddress?.ipAddress }
    package var isActive: Bool { channel.isActive }

    /// Sends a request and waits for its response. `maxBody`: keep at most that many body bytes;
    /// a longer body is cut and the connection closed.
    package func send(_ request: HTTPRequestMessage, timeout: Duration = .seconds(10),
                     maxBody: Int = 16 << 20) async throws -> HTTPResponseMessage {
        let promise = channel.eventLoop.makePromise(of: HTTPResponseMessage.self)
        let what = "\(request.method) \(request.path)"
        let endpoint = "\(host):\(port)"
        // Whatever happens to the channel (closed before the handler saw the write, handler
        // already removed), the request ends: the write's failure or, at the latest, a timer
        // slightly after the handler's own fails it. Completing a promise twice is a no-op.
        let guardTimer = channel.eventLoop.scheduleTask(in: timeout.timeAmount + .milliseconds(250)) {
            promise.fail(ATVError.timeout("\(endpoint) did not answer \(what) within \(ATVError.seconds(timeout)) s"))
        }
        promise.futureResult.whenComplete { _ in guardTimer.cancel() }
        let written = channel.eventLoop.makePromise(of: Void.self)
        let fate = self.fate
        written.futureResult.whenFailure { error in
            promise.fail(fate.error ?? ATVError.connection(endpoint, error, during: what))
        }
        let outbound = HTTPClientRequestHandler.Outbound(request: request, promise: promise, maxBody: maxBody,
                                                          timeout: timeout.timeAmount, what: what)
        channel.writeAndFlush(outbound, promise: written)
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }

    /// Closes the connection; outstanding requests fail with `.connectionLost`.
    package func close() {
        channel.close(promise: nil)
    }

    /// Completes when the connection has closed (either side).
    package func closed() async {
        try? await channel.closeFuture.get()
    }
}

/// Set once, read from any thread.
final class ConnectionFate: Sendable {
    private let value = Mutex<ATVError?>(nil)
    var error: ATVError? {
        get { value.withLock { $0 } }
        set { value.withLock { if $0 == nil { $0 = newValue } } }
    }
}

/// Pairs responses with requests in order. Runs on the channel's event loop.
final class HTTPClientRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    struct Outbound {
        var request: HTTPRequestMessage
        var promise: EventLoopPromise<HTTPResponseMessage>
        var maxBody: Int
        var timeout: TimeAmount
        var what: String
    }

    private struct Pending {
        var method: String
        var promise: EventLoopPromise<HTTPResponseMessage>
        var maxBody: Int
        var what: String
        var timer: Scheduled<Void>?
    }

    private let host: String
    private let port: Int
    private var pending: [Pending] = []
    private var parser = RTSPParser()
    private var inactive = false
    /// Why the connection ended, when the device broke it (garbage): later requests fail with it.
    private let fate: ConnectionFate
    private var broken: ATVError? {
        get { fate.error }
        set { fate.error = newValue }
    }

    init(host: String, port: Int, fate: ConnectionFate) {
        self.fate = fate
        self.host = host
        self.port = port
    }

    /// The request's bytes (Host and Content-Length added when missing).
    static func serialize(_ req: HTTPRequestMessage, host: String, port: Int) -> [UInt8] {
        var headers = RTSPHeaders()
        for f in req.headers.fields where f.name.lowercased() != "content-length" { headers.add(f.name, f.value) }
        if headers["Host"] == nil { headers.add("Host", "\(host):\(port)") }
        var bytes = RTSPSerializer.serialize(RTSPRequest(method: req.method, uri: req.uri, version: "HTTP/1.1",
                                                         headers: headers, body: req.body))
        if req.body.isEmpty {
            // An explicit zero length (some servers wait for a body otherwise).
            bytes.removeLast(2)
            bytes += Array("Content-Length: 0\r\n\r\n".utf8)
        }
        return bytes
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let out = unwrapOutboundIn(data)
        if inactive || broken != nil {
            let error = broken ?? ATVError.connectionLost("\(host):\(port) closed the connection before answering \(out.what)")
            out.promise.fail(error)
            promise?.fail(error)
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: out.timeout) {
            let (handler, ctx) = loopBound.value
            handler.timedOut(context: ctx, what: out.what, after: out.timeout)
        }
        pending.append(Pending(method: out.request.method, promise: out.promise, maxBody: out.maxBody, what: out.what, timer: timer))
        let bytes = Self.serialize(out.request, host: host, port: port)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        parser.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        drain(context: context)
    }

    private func drain(context: ChannelHandlerContext, atEnd: Bool = false) {
        while true {
            let message: RTSPMessage?
            do {
                message = atEnd ? try parser.endOfStream()
                    : try parser.nextMessage(bodilessResponse: pending.first?.method == "HEAD")
            } catch {
                fail(context, notHTTP())
                return
            }
            guard let message else {
                // Garbage is known as soon as its first bytes arrive, not at a timeout.
                if !parser.canBeginResponse(["HTTP/"]) { fail(context, notHTTP()) }
                return
            }
            // A request, or an answer when nothing was asked: not HTTP as a device speaks it.
            guard case .response(let r) = message, r.version.hasPrefix("HTTP/"), let first = pending.first else {
                fail(context, notHTTP())
                return
            }
            var response = r
            if response.body.count > first.maxBody {
                response.body = Array(response.body.prefix(first.maxBody))
                complete(.success(response))
                context.close(promise: nil)
                return
            }
            complete(.success(response))
            if atEnd { return }
        }
    }

    /// Ends the connection with `error`: outstanding requests fail with it, and so do later ones.
    private func fail(_ context: ChannelHandlerContext, _ error: ATVError) {
        if broken == nil { broken = error }
        failAll(error)
        context.close(promise: nil)
    }

    private func notHTTP() -> ATVError {
        ATVError.protocolError("\(host):\(port) answered something that is not HTTP")
    }

    private func complete(_ result: Result<HTTPResponseMessage, Error>) {
        guard !pending.isEmpty else { return }
        let p = pending.removeFirst()
        p.timer?.cancel()
        p.promise.completeWith(result)
    }

    private func timedOut(context: ChannelHandlerContext, what: String, after: TimeAmount) {
        failAll(ATVError.timeout("\(host):\(port) did not answer \(what) within \(ATVError.seconds(.nanoseconds(after.nanoseconds))) s"))
        context.close(promise: nil)
    }

    private func failAll(_ error: Error) {
        let all = pending
        pending = []
        for p in all {
            p.timer?.cancel()
            p.promise.fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        if !pending.isEmpty { drain(context: context, atEnd: true) }
        if let first = pending.first {
            failAll(ATVError.connectionLost("\(host):\(port) closed the connection without answering \(first.what)"))
        }
        if !parser.canBeginResponse(["HTTP/"]), broken == nil { broken = notHTTP() }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        inactive = true
        failAll(broken ?? ATVError.connectionLost("\(host):\(port) closed the connection"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let first = pending.first {
            failAll(ATVError.connection("\(host):\(port)", error, during: first.what))
        }
        context.close(promise: nil)
    }
}

extension Duration {
    /// The same span as a NIO `TimeAmount`.
    package var timeAmount: TimeAmount { .nanoseconds(wholeNanoseconds) }

    /// The duration in whole nanoseconds.
    package var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
