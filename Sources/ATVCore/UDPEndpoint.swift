// The one UDP socket wrapper: RAOP and AirPlay 2 audio (audio, control), the NTP timing
// responder, mDNS scanning and answering (multicast), and the virtual receivers all bind through
// it. Datagrams are handed to a callback on the socket's event loop (with a way to answer the
// sender on the same socket), or, for `receiving`, queued on an `AsyncStream`.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A received datagram.
package struct Datagram: Sendable {
    package var bytes: [UInt8]
    package var remote: SocketAddress

    package init(bytes: [UInt8], remote: SocketAddress) {
        self.bytes = bytes
        self.remote = remote
    }
}

/// A bound UDP socket.
package final class UDPEndpoint: Sendable {
    /// Called on the socket's event loop for each datagram: its bytes, who sent it, and `reply`,
    /// which writes an answer to that sender from this socket.
    package typealias OnPacket = @Sendable (_ bytes: [UInt8], _ remote: SocketAddress, _ reply: ([UInt8]) -> Void) -> Void

    package let channel: Channel
    /// The bound port.
    package let localPort: Int
    /// Datagrams as they arrive, for an endpoint opened with `receiving`; it ends when the socket
    /// closes. (Empty and finished for an endpoint that hands datagrams to a callback.)
    package let incoming: AsyncStream<Datagram>

    private init(channel: Channel, incoming: AsyncStream<Datagram>) {
        self.channel = channel
        self.localPort = channel.localAddress?.port ?? 0
        self.incoming = incoming
    }

    /// Socket options of a bind.
    package struct Options: Sendable {
        /// SO_REUSEADDR and SO_REUSEPORT (mDNS: several sockets on port 5353).
        package var reuse = false
        /// SO_RCVBUF in bytes (nil: the system default). Receivers ask for a few MB so that a
        /// burst is not dropped while the event loop is busy.
        package var receiveBufferSize: Int?

        package init(reuse: Bool = false, receiveBufferSize: Int? = nil) {
            self.reuse = reuse
            self.receiveBufferSize = receiveBufferSize
        }
    }

    /// Binds `host:port` (port 0: any free port) on `eventLoop`; each datagram goes to `onPacket`
    /// on that loop. Senders that write from one loop (the pacer, retransmits, timing) bind every
    /// socket on it so writes need no thread hop. A failure is `ATVError.listening`'s one line.
    package static func bind(host: String, port: Int = 0,
                             on eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
                             options: Options = Options(),
                             onPacket: @escaping OnPacket = { _, _, _ in }) async throws -> UDPEndpoint {
        try await bindFuture(host: host, port: port, on: eventLoop, options: options, onPacket: onPacket).get()
    }

    /// `bind` as an `EventLoopFuture` (for code that chains futures on the loop).
    package static func bindFuture(host: String, port: Int = 0, on eventLoop: any EventLoop,
                                   options: Options = Options(), onPacket: @escaping OnPacket) -> EventLoopFuture<UDPEndpoint> {
        let finished = AsyncStream<Datagram> { $0.finish() }
        return bootstrap(on: eventLoop, options: options, onPacket: onPacket)
            .bind(host: host, port: port)
            .map { UDPEndpoint(channel: $0, incoming: finished) }
            .flatMapErrorThrowing { throw ATVError.listening(host, port, $0, what: "bind UDP") }
    }

    /// Takes over a socket the caller created and bound itself (to set what NIO has no option for,
    /// e.g. the kernel receive timestamps the PTP master reads with SIOCGSTAMPNS); the endpoint
    /// owns and closes it.
    package static func adopt(descriptor: CInt, on eventLoop: any EventLoop, options: Options = Options(),
                              onPacket: @escaping OnPacket) async throws -> UDPEndpoint {
        let finished = AsyncStream<Datagram> { $0.finish() }
        let channel = try await bootstrap(on: eventLoop, options: options, onPacket: onPacket).withBoundSocket(descriptor).get()
        return UDPEndpoint(channel: channel, incoming: finished)
    }

    /// Binds `host:port` with the datagrams on `incoming` (the newest 1024 kept when nobody reads).
    package static func receiving(host: String, port: Int = 0, options: Options = Options()) async throws -> UDPEndpoint {
        let (stream, sink) = AsyncStream.makeStream(of: Datagram.self, bufferingPolicy: .bufferingNewest(1024))
        do {
            let channel = try await bootstrap(on: MultiThreadedEventLoopGroup.singleton.next(), options: options) { bytes, remote, _ in
                sink.yield(Datagram(bytes: bytes, remote: remote))
            }.bind(host: host, port: port).get()
            channel.closeFuture.whenComplete { _ in sink.finish() }
            return UDPEndpoint(channel: channel, incoming: stream)
        } catch {
            sink.finish()
            throw ATVError.listening(host, port, error, what: "bind UDP")
        }
    }

    private static func bootstrap(on eventLoop: any EventLoop, options: Options, onPacket: @escaping OnPacket) -> DatagramBootstrap {
        var bootstrap = DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramCallbackHandler(onPacket: onPacket))
                }
            }
        if options.reuse {
            bootstrap = bootstrap
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
        }
        if let size = options.receiveBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(size))
        }
        return bootstrap
    }

    /// Fire-and-forget send (written at once when called on the socket's loop).
    package func send(_ bytes: [UInt8], to address: SocketAddress) {
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    /// Sends and waits until the datagram is written (or the write failed).
    package func write(_ bytes: [UInt8], to address: SocketAddress) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: bytes))).get()
    }

    /// Joins a multicast group on an interface.
    package func joinMulticast(_ group: SocketAddress, device: NIONetworkDevice) async throws {
        guard let multicast = channel as? MulticastChannel else { return }
        try await multicast.joinGroup(group, device: device).get()
    }

    /// Sends multicast out of the interface with this IPv4 address, looped back locally, TTL 255.
    package func setMulticastInterface(_ address: SocketAddress) async throws {
        guard case .v4(let v4) = address, let options = channel as? SocketOptionProvider else { return }
        try await options.setIPMulticastIF(v4.address.sin_addr).get()
        try await options.setIPMulticastLoop(1).get()
        try await options.setIPMulticastTTL(255).get()
    }

    /// Closes the socket and waits until it is closed.
    package func close() async {
        try? await channel.close()
    }

    /// Closes the socket without waiting.
    package func closeNow() {
        channel.close(promise: nil)
    }

    /// IPv4 interfaces that can do multicast, one entry per interface (its first IPv4 address):
    /// an interface with several addresses must not get every query several times.
    package static func multicastInterfaces() -> [NIONetworkDevice] {
        var seen = Set<String>()
        return ((try? System.enumerateDevices()) ?? []).filter { device in
            guard device.multicastSupported, case .v4? = device.address else { return false }
            return seen.insert(device.name).inserted
        }
    }
}

/// Hands each datagram to the endpoint's callback, with a `reply` that answers on this socket.
final class DatagramCallbackHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let onPacket: UDPEndpoint.OnPacket

    init(onPacket: @escaping UDPEndpoint.OnPacket) { self.onPacket = onPacket }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        onPacket(Array(envelope.data.readableBytesView), remote) { answer in
            let out = AddressedEnvelope(remoteAddress: remote, data: context.channel.allocator.buffer(bytes: answer))
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
        }
    }

    // ICMP errors (port unreachable and the like) are not fatal for a UDP socket: a sender learns
    // that a receiver is gone from its control connection, a receiver from the session's end.
    func errorCaught(context: ChannelHandlerContext, error: Error) {}
}
