import ATVCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// One persistent HTTP/1.1 connection. Requests may be sent concurrently: they are written in
/// order and answered in order (HTTP/1.1), each with its own timeout. A timeout or a lost
/// connection fails every outstanding request and closes the connection (a late answer could
/// otherwise be taken for the next one's).
public final class HTTPClientConnection: Sendable {
    let channel: Channel
    public let host: String
    public let port: Int

    private init(channel: Channel, host: String, port: Int) {
        self.channel = channel
        self.host = host
        self.port = port
    }

    /// Connects, failing with `ATVError.connectionFailed` (refused, unreachable) or `.timeout`.
    public static func connect(host: String, port: Int, timeout: Duration = .seconds(5)) async throws -> HTTPClientConnection {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout.timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPClientRequestHandler(host: host, port: port))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            return HTTPClientConnection(channel: channel, host: host, port: port)
        } catch let e as ChannelError {
            if case .connectTimeout = e { throw ATVError.timeout("connecting to \(host):\(port) (no answer within \(timeout))") }
            throw ATVError.connectionFailed("\(host):\(port): \(shortReason(e))")
        } catch {
            throw ATVError.connectionFailed("\(host):\(port): \(shortReason(error))")
        }
    }

    /// The address of our end of the connection: the one the device can reach us on.
    public var localAddress: String? { channel.localAddress?.ipAddress }
    public var remoteAddress: String? { channel.remoteAddress?.ipAddress }
    public var isActive: Bool { channel.isActive }

    /// Sends a request and waits for its response. `maxBody`: keep at most that many body bytes;
    /// a longer body is cut (`truncated`) and the connection closed.
    public func send(_ request: HTTPRequestMessage, timeout: Duration = .seconds(10),
                     maxBody: Int = 16 << 20) async throws -> HTTPResponseMessage {
        let promise = channel.eventLoop.makePromise(of: HTTPResponseMessage.self)
        let what = "\(request.method) \(request.path)"
        let outbound = HTTPClientRequestHandler.Outbound(request: request, promise: promise, maxBody: maxBody,
                                                          timeout: timeout.timeAmount, what: what)
        channel.writeAndFlush(outbound, promise: nil)
        return try await promise.futureResult.get()
    }

    /// Closes the connection; outstanding requests fail with `.connectionLost`.
    public func close() {
        channel.close(promise: nil)
    }

    /// Completes when the connection has closed (either side).
    public func closed() async {
        try? await channel.closeFuture.get()
    }
}

/// Pairs responses with requests in order. Runs on the channel's event loop.
final class HTTPClientRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Outbound
    typealias OutboundOut = HTTPClientRequestPart

    struct Outbound {
        var request: HTTPRequestMessage
        var promise: EventLoopPromise<HTTPResponseMessage>
        var maxBody: Int
        var timeout: TimeAmount
        var what: String
    }

    private struct Pending {
        var promise: EventLoopPromise<HTTPResponseMessage>
        var maxBody: Int
        var what: String
        var timer: Scheduled<Void>?
    }

    private let host: String
    private let port: Int
    private var pending: [Pending] = []
    private var current: HTTPResponseMessage?
    private var inactive = false

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let out = unwrapOutboundIn(data)
        if inactive {
            out.promise.fail(ATVError.connectionLost("\(host):\(port) closed the connection before \(out.what)"))
            return
        }
        let req = out.request
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: req.method), uri: req.uri)
        for f in req.headers.fields { head.headers.add(name: f.name, value: f.value) }
        if !head.headers.contains(name: "Host") { head.headers.add(name: "Host", value: "\(host):\(port)") }
        if !head.headers.contains(name: "Content-Length") { head.headers.add(name: "Content-Length", value: String(req.body.count)) }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: out.timeout) {
            let (handler, ctx) = loopBound.value
            handler.timedOut(context: ctx, what: out.what, after: out.timeout)
        }
        pending.append(Pending(promise: out.promise, maxBody: out.maxBody, what: out.what, timer: timer))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !req.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: req.body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            var fields = HTTPFields()
            for h in head.headers { fields.fields.append((name: h.name, value: h.value)) }
            current = HTTPResponseMessage(status: Int(head.status.code), reason: head.status.reasonPhrase, headers: fields)
        case .body(var buffer):
            guard var c = current, let first = pending.first else { return }
            let room = first.maxBody - c.body.count
            if buffer.readableBytes > room {
                c.body += buffer.readBytes(length: max(0, room)) ?? []
                c.truncated = true
                current = nil
                complete(.success(c))
                context.close(promise: nil)
                return
            }
            c.body += buffer.readBytes(length: buffer.readableBytes) ?? []
            current = c
        case .end:
            if let c = current {
                current = nil
                complete(.success(c))
            }
        }
    }

    private func complete(_ result: Result<HTTPResponseMessage, Error>) {
        guard !pending.isEmpty else { return }
        let p = pending.removeFirst()
        p.timer?.cancel()
        p.promise.completeWith(result)
    }

    private func timedOut(context: ChannelHandlerContext, what: String, after: TimeAmount) {
        failAll(ATVError.timeout("\(host):\(port) did not answer \(what) within \(Double(after.nanoseconds) / 1e9) s"))
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
        if let first = pending.first {
            failAll(ATVError.connectionLost("\(host):\(port) closed the connection while waiting for the answer to \(first.what)"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(ATVError.protocolError("\(host):\(port): bad HTTP response: \(error)"))
        context.close(promise: nil)
    }
}

/// NIO's connection errors are long; name the cause when it is a common one.
func shortReason(_ error: Error) -> String {
    let text = "\(error)"
    for known in ["Connection refused", "No route to host", "Network is unreachable", "Host is down",
                  "Connection timed out", "Address not available"] where text.contains(known) {
        return known.lowercased()
    }
    if text.contains("connectTimeout") { return "connection timed out" }
    return text
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
