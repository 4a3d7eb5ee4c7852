import ATVCore
import NIOCore
import NIOPosix

/// What arrives on an RTSP client connection.
enum RTSPConnectionEvent: Sendable {
    case response(RTSPResponse)
    /// The connection ended; a non-nil error says why (garbage, reset, …).
    case closed(ATVError?)
}

/// Decodes responses with `RTSPParser` and forwards them (and the end of the connection).
final class RTSPResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var parser = RTSPParser()
    private let continuation: AsyncStream<RTSPConnectionEvent>.Continuation
    private var done = false

    init(continuation: AsyncStream<RTSPConnectionEvent>.Continuation) {
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let buffer = unwrapInboundIn(data)
        parser.append(buffer.readableBytesView)
        do {
            while let response = try parser.nextResponse() {
                continuation.yield(.response(response))
            }
        } catch {
            let e = error as? ATVError ?? .protocolError("\(error)")
            finish(.protocolError("the receiver sent an invalid RTSP answer (\(e.description))"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(.connectionLost("RTSP connection error: \(error)"))
        context.close(promise: nil)
    }

    private func finish(_ error: ATVError?) {
        guard !done else { return }
        done = true
        continuation.yield(.closed(error))
        continuation.finish()
    }
}

/// A TCP connection to a RAOP receiver carrying RTSP.
final class RTSPConnection: Sendable {
    let channel: Channel
    let events: AsyncStream<RTSPConnectionEvent>
    /// Our address on this connection (used for the UDP sockets, SDP and URIs).
    let localIP: String
    let remoteIP: String

    private init(channel: Channel, events: AsyncStream<RTSPConnectionEvent>, localIP: String, remoteIP: String) {
        self.channel = channel
        self.events = events
        self.localIP = localIP
        self.remoteIP = remoteIP
    }

    static func connect(host: String, port: Int, timeout: Duration) async throws -> RTSPConnection {
        let (events, continuation) = AsyncStream.makeStream(of: RTSPConnectionEvent.self)
        let ms = max(1, Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(ms))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RTSPResponseHandler(continuation: continuation))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch let error as ChannelError {
            continuation.finish()
            if case .connectTimeout = error {
                throw ATVError.timeout("connecting to \(host):\(port) (no answer within \(timeout))")
            }
            throw ATVError.connectionFailed("cannot connect to \(host):\(port): \(error)")
        } catch {
            continuation.finish()
            throw ATVError.connectionFailed("cannot connect to \(host):\(port): \(error)")
        }
        let local = channel.localAddress?.ipAddress ?? "127.0.0.1"
        let remote = channel.remoteAddress?.ipAddress ?? host
        return RTSPConnection(channel: channel, events: events, localIP: local, remoteIP: remote)
    }

    /// Writes a request; a failed write surfaces as the connection closing.
    func send(_ request: RTSPRequest) {
        let bytes = request.serialized
        let channel = self.channel
        channel.eventLoop.execute {
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    func close() async {
        try? await channel.close()
    }
}
