import ATVCore
import NIOCore
import NIOPosix

/// What arrives on an RTSP client connection.
package enum RTSPConnectionEvent: Sendable {
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
    /// "host:port", for messages.
    private let endpoint: String

    init(continuation: AsyncStream<RTSPConnectionEvent>.Continuation, endpoint: String) {
        self.continuation = continuation
        self.endpoint = endpoint
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let buffer = unwrapInboundIn(data)
        parser.append(buffer.readableBytesView)
        do {
            while let response = try parser.nextResponse() {
                continuation.yield(.response(response))
            }
            // Garbage is known from its first bytes, not at a timeout.
            if !parser.canBeginResponse() { throw ATVError.protocolError("not RTSP") }
        } catch {
            finish(.protocolError("\(endpoint) answered something that is not RTSP (is it an AirPlay receiver?)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(ATVError.connection(endpoint, error))
        context.close(promise: nil)
    }

    private func finish(_ error: ATVError?) {
        guard !done else { return }
        done = true
        continuation.yield(.closed(error))
        continuation.finish()
    }
}

/// A TCP client connection carrying RTSP (a RAOP receiver's).
package final class RTSPConnection: Sendable {
    package let channel: Channel
    package let events: AsyncStream<RTSPConnectionEvent>
    /// Our address on this connection (used for the UDP sockets, SDP and URIs).
    package let localIP: String
    package let remoteIP: String
    /// "host:port", for messages.
    package let endpoint: String

    private init(channel: Channel, events: AsyncStream<RTSPConnectionEvent>, localIP: String, remoteIP: String, endpoint: String) {
        self.endpoint = endpoint
        self.channel = channel
        self.events = events
        self.localIP = localIP
        self.remoteIP = remoteIP
    }

    package static func connect(host: String, port: Int, timeout: Duration) async throws -> RTSPConnection {
        let (events, continuation) = AsyncStream.makeStream(of: RTSPConnectionEvent.self)
        let ms = max(1, Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(ms))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RTSPResponseHandler(continuation: continuation, endpoint: "\(host):\(port)"))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            continuation.finish()
            throw ATVError.connecting("\(host):\(port)", error, timeout: timeout)
        }
        let local = channel.localAddress?.ipAddress ?? "127.0.0.1"
        let remote = channel.remoteAddress?.ipAddress ?? host
        return RTSPConnection(channel: channel, events: events, localIP: local, remoteIP: remote, endpoint: "\(host):\(port)")
    }

    /// Writes a request; a failed write surfaces as the connection closing.
    package func send(_ request: RTSPRequest) {
        let bytes = request.serialized
        let channel = self.channel
        channel.eventLoop.execute {
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    package func close() async {
        try? await channel.close()
    }
}
