import ATVCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A received datagram.
public struct Datagram: Sendable {
    public var bytes: [UInt8]
    public var remote: SocketAddress
}

/// A small async wrapper around a NIO datagram channel: received datagrams arrive on `incoming`.
public final class UDPSocket: Sendable {
    let channel: Channel
    public let incoming: AsyncStream<Datagram>

    private final class Inbound: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let continuation: AsyncStream<Datagram>.Continuation
        init(_ c: AsyncStream<Datagram>.Continuation) { continuation = c }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let env = unwrapInboundIn(data)
            continuation.yield(Datagram(bytes: Array(env.data.readableBytesView), remote: env.remoteAddress))
        }
        func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            // ICMP port unreachable and similar errors are not fatal for a UDP socket.
        }
    }

    private init(channel: Channel, incoming: AsyncStream<Datagram>) {
        self.channel = channel
        self.incoming = incoming
    }

    /// Bind to host:port (port 0 = ephemeral). `reuse` sets SO_REUSEADDR and SO_REUSEPORT (mDNS).
    public static func bind(host: String, port: Int, reuse: Bool = false) async throws -> UDPSocket {
        let (stream, cont) = AsyncStream.makeStream(of: Datagram.self, bufferingPolicy: .bufferingNewest(1024))
        var bootstrap = DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Inbound(cont)) }
            }
        if reuse {
            bootstrap = bootstrap
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
        }
        do {
            let ch = try await bootstrap.bind(host: host, port: port).get()
            return UDPSocket(channel: ch, incoming: stream)
        } catch {
            cont.finish()
            throw ATVError.listening(host, port, error, what: "bind UDP")
        }
    }

    public var localPort: Int? { channel.localAddress?.port }

    public func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        let buf = channel.allocator.buffer(bytes: bytes)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buf)).get()
    }

    /// Join a multicast group on an interface, and send multicast out of it.
    public func joinMulticast(_ group: SocketAddress, device: NIONetworkDevice) async throws {
        guard let mc = channel as? MulticastChannel else { return }
        try await mc.joinGroup(group, device: device).get()
    }

    /// Send multicast out of the interface with this IPv4 address, looped back locally.
    public func setMulticastInterface(_ address: SocketAddress) async throws {
        guard case .v4(let v4) = address, let sop = channel as? SocketOptionProvider else { return }
        try await sop.setIPMulticastIF(v4.address.sin_addr).get()
        try await sop.setIPMulticastLoop(1).get()
        try await sop.setIPMulticastTTL(255).get()
    }

    public func close() async {
        try? await channel.close().get()
    }

    /// IPv4 interfaces that can do multicast, one entry per interface (its first IPv4 address):
    /// an interface with several addresses must not get every query several times.
    public static func multicastInterfaces() -> [NIONetworkDevice] {
        var seen = Set<String>()
        return ((try? System.enumerateDevices()) ?? []).filter { dev in
            guard dev.multicastSupported, case .v4? = dev.address else { return false }
            return seen.insert(dev.name).inserted
        }
    }
}
