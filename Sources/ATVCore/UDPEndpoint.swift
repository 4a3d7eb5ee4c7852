// The one UDP socket wrapper: the RAOP and AirPlay 2 control sockets, the NTP timing responder,
// mDNS scanning and answering (multicast), and the virtual receivers all bind through it.
// Datagrams are handed to a callback on the socket's event loop (with a way to answer the sender
// on the same socket), or, for `receiving`, queued on an `AsyncStream`. Real-time audio, which
// only sends, leaves through `UDPBatchSender` below (no channel; one `sendmmsg` per loop iteration).
import NIOCore
import NIOPosix
import Synchronization

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

/// The real-time audio send side: a non-blocking UDP socket with no event-loop channel (an audio
/// socket never reads) that sends what is queued on it in batches, one `sendmmsg` per flush
/// whatever the datagrams' destinations. A group stream's members share one on the group's send
/// loop, so the packets every member has due at one wake-up leave in one system call instead of one
/// per member (and none of NIO's per-datagram write path). Datagrams are copied into one buffer
/// that is kept between flushes: nothing is allocated per packet.
///
/// `enqueue` and `flushSoon` may be called from any thread; the send itself runs on `eventLoop`,
/// once per loop iteration however many senders asked for it (`flushSoon` from every pacer whose
/// timer fired in that iteration: one task, one system call).
package final class UDPBatchSender: Sendable {
    /// A destination, converted once to the `sockaddr` the system call takes.
    package struct Destination: Sendable {
        fileprivate var storage = sockaddr_storage()
        fileprivate var length: socklen_t = 0
        package let address: SocketAddress

        package init(_ address: SocketAddress) {
            self.address = address
            length = address.withSockAddr { p, n in
                withUnsafeMutableBytes(of: &storage) { out in
                    let n = min(n, out.count)
                    out.copyMemory(from: UnsafeRawBufferPointer(start: p, count: n))
                    return socklen_t(n)
                }
            }
        }
    }

    private struct Queued {
        var offset: Int
        var count: Int
        var to: Destination
    }

    private struct Batch {
        var bytes: [UInt8] = []
        var used = 0
        var queued: [Queued] = []
        var flushQueued = false
        var closed = false
        var sent = 0
        var dropped = 0
        /// The system call's arrays, kept between flushes.
        var iovecs: [iovec] = []
        var headers: [MMsgHdr] = []
    }

    /// The bound port.
    package let localPort: Int
    /// The loop the sends run on.
    package let eventLoop: any EventLoop
    private let fd: CInt
    private let batch = Mutex(Batch())

    private init(fd: CInt, localPort: Int, eventLoop: any EventLoop) {
        self.fd = fd
        self.localPort = localPort
        self.eventLoop = eventLoop
    }

    /// Binds a UDP socket on `host` (any free port) whose sends run on `eventLoop`. A failure is
    /// `ATVError.listening`'s one line.
    package static func bind(host: String, on eventLoop: any EventLoop) throws -> UDPBatchSender {
        do {
            let local = try SocketAddress(ipAddress: host, port: 0)
            let family: CInt = if case .v6 = local { AF_INET6 } else { AF_INET }
            let fd = socket(family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
            var ok = false
            defer { if !ok { Glibc.close(fd) } }
            let rc = local.withSockAddr { p, n in Glibc.bind(fd, p, socklen_t(n)) }
            guard rc == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
            var bound = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let got = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard got == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
            let port = withUnsafeBytes(of: &bound) { raw -> Int in
                // sin_port and sin6_port sit at the same offset, in network byte order.
                Int(UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self)))
            }
            ok = true
            return UDPBatchSender(fd: fd, localPort: port, eventLoop: eventLoop)
        } catch {
            throw ATVError.listening(host, 0, error, what: "bind UDP")
        }
    }

    /// Queues a datagram (sent at the next flush), copying it into the batch buffer.
    package func enqueue(_ bytes: [UInt8], to destination: Destination) {
        batch.withLock { b in
            guard !b.closed else { return }
            let count = bytes.count
            if b.bytes.count < b.used + count {
                b.bytes.append(contentsOf: repeatElement(0, count: max(b.used + count - b.bytes.count, 16_384)))
            }
            let at = b.used
            b.bytes.withUnsafeMutableBytes { out in
                bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[at ..< at + count]).copyMemory(from: $0) }
            }
            b.queued.append(Queued(offset: at, count: count, to: destination))
            b.used += count
        }
    }

    /// Sends what is queued on `eventLoop` in this loop iteration: one task however many callers
    /// ask before it runs.
    package func flushSoon() {
        let schedule = batch.withLock { b -> Bool in
            guard !b.flushQueued, !b.queued.isEmpty, !b.closed else { return false }
            b.flushQueued = true
            return true
        }
        if schedule { eventLoop.execute { self.flush() } }
    }

    /// Sends everything queued now (`sendmmsg`, as many calls as the system takes). A datagram the
    /// socket refuses (its buffer full, EAGAIN, or an error for that destination) is dropped and
    /// counted, as a full network would drop it: the receiver asks for it again. Returns how many
    /// datagrams were sent.
    @discardableResult
    package func flush() -> Int {
        batch.withLock { b -> Int in
            b.flushQueued = false
            guard !b.closed, !b.queued.isEmpty else { return 0 }
            let total = b.queued.count
            if b.headers.count < total {
                b.headers = [MMsgHdr](repeating: MMsgHdr(), count: total)
                b.iovecs = [iovec](repeating: iovec(), count: total)
            }
            var sent = 0, dropped = 0
            let nameOffset = MemoryLayout<Queued>.offset(of: \Queued.to.storage)!
            b.bytes.withUnsafeMutableBytes { raw in
                b.queued.withUnsafeMutableBufferPointer { queued in
                    b.iovecs.withUnsafeMutableBufferPointer { iov in
                        b.headers.withUnsafeMutableBufferPointer { h in
                            let names = UnsafeMutableRawPointer(queued.baseAddress!)
                            for i in 0 ..< total {
                                iov[i] = iovec(iov_base: raw.baseAddress! + queued[i].offset, iov_len: queued[i].count)
                                h[i] = MMsgHdr()
                                h[i].msg_hdr.msg_iov = iov.baseAddress! + i
                                h[i].msg_hdr.msg_iovlen = 1
                                h[i].msg_hdr.msg_name = names + i * MemoryLayout<Queued>.stride + nameOffset
                                h[i].msg_hdr.msg_namelen = queued[i].to.length
                            }
                            var next = 0
                            while next < total {
                                let n = Self.sendmmsg(fd, UnsafeMutableRawPointer(h.baseAddress! + next), CUnsignedInt(total - next), 0)
                                if n > 0 {
                                    next += Int(n)
                                    sent += Int(n)
                                } else if n < 0 && errno == EINTR {
                                    continue
                                } else {
                                    next += 1
                                    dropped += 1
                                }
                            }
                        }
                    }
                }
            }
            b.sent += sent
            b.dropped += dropped
            b.queued.removeAll(keepingCapacity: true)
            b.used = 0
            return sent
        }
    }

    /// `struct mmsghdr` (<sys/socket.h>): a `msghdr` and the bytes sent; 64 bytes apart in an array,
    /// as in C (Glibc's Swift module leaves it out: it needs _GNU_SOURCE).
    private struct MMsgHdr {
        var msg_hdr = msghdr()
        var msg_len: CUnsignedInt = 0
    }

    /// Glibc's `sendmmsg`, looked up once (not in Glibc's Swift module: it needs _GNU_SOURCE).
    private static let sendmmsg: @convention(c) (CInt, UnsafeMutableRawPointer, CUnsignedInt, CInt) -> CInt = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sendmmsg") else {
            fatalError("sendmmsg is missing from the C library")
        }
        return unsafeBitCast(symbol, to: (@convention(c) (CInt, UnsafeMutableRawPointer, CUnsignedInt, CInt) -> CInt).self)
    }()

    /// Datagrams sent and dropped so far.
    package var counts: (sent: Int, dropped: Int) { batch.withLock { ($0.sent, $0.dropped) } }

    /// Sends what is still queued, then closes the socket (later calls do nothing).
    package func close() {
        flush()
        let close = batch.withLock { b -> Bool in
            defer { b.closed = true }
            return !b.closed
        }
        if close { Glibc.close(fd) }
    }
}
