import ATVCore
import NIOCore
import NIOPosix

/// Hands each datagram to a callback on the event loop, with a way to answer on the same socket.
final class UDPCallbackHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let onPacket: @Sendable ([UInt8], SocketAddress, _ reply: ([UInt8]) -> Void) -> Void

    init(onPacket: @escaping @Sendable ([UInt8], SocketAddress, _ reply: ([UInt8]) -> Void) -> Void) {
        self.onPacket = onPacket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        let remote = envelope.remoteAddress
        onPacket(bytes, remote) { answer in
            var buffer = context.channel.allocator.buffer(capacity: answer.count)
            buffer.writeBytes(answer)
            context.writeAndFlush(self.wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: buffer)), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP errors (ECONNREFUSED) on UDP are not fatal; the RTSP connection tells us when the
        // receiver is gone.
    }
}

/// A bound UDP socket.
final class UDPEndpoint: Sendable {
    let channel: Channel
    let localPort: Int

    private init(channel: Channel, localPort: Int) {
        self.channel = channel
        self.localPort = localPort
    }

    /// Binds on `eventLoop`: the pacer, the retransmit handler and the timing handler share one loop
    /// so they write without hopping threads.
    static func bind(host: String, on eventLoop: EventLoop,
                     onPacket: @escaping @Sendable ([UInt8], SocketAddress, _ reply: ([UInt8]) -> Void) -> Void = { _, _, _ in })
        async throws -> UDPEndpoint {
        do {
            let channel = try await DatagramBootstrap(group: eventLoop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPCallbackHandler(onPacket: onPacket))
                    }
                }
                .bind(host: host, port: 0).get()
            guard let port = channel.localAddress?.port else {
                try? await channel.close()
                throw ATVError.connectionFailed("UDP socket on \(host) has no port")
            }
            return UDPEndpoint(channel: channel, localPort: port)
        } catch let error as ATVError {
            throw error
        } catch {
            throw ATVError.connectionFailed("cannot open a UDP socket on \(host): \(error)")
        }
    }

    /// Fire-and-forget send (written directly when called on the channel's loop).
    func send(_ bytes: [UInt8], to address: SocketAddress) {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
    }

    func close() async {
        try? await channel.close()
    }
}
