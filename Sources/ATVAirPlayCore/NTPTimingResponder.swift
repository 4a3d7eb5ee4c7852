// The sender's NTP-style timing port (RAOP, and AirPlay 2 sessions with timingProtocol "NTP"):
// the receiver sends 0x52 requests, we answer 0x53 with our clock. The one responder every sender
// uses (RAOP audio, AirPlay 2 audio, the AirPlay 2 session before `/play`).
import ATVCore
import NIOCore
import NIOPosix
import Synchronization

package final class NTPTimingResponder: Sendable {
    let channel: Channel
    private let counter: Counter

    package var port: Int { channel.localAddress?.port ?? 0 }
    package var repliesSent: Int { counter.count.withLock { $0 } }

    private init(channel: Channel, counter: Counter) {
        self.channel = channel
        self.counter = counter
    }

    /// Answers a timing request (raw bytes) with a timing reply, or nil if it is not one.
    package static func reply(to requestBytes: [UInt8], receivedAt: NTPTime, now: NTPTime) -> [UInt8]? {
        guard let request = try? RAOPTimingPacket(decoding: requestBytes), !request.isReply else { return nil }
        return RAOPTimingPacket.reply(to: request, receivedAt: receivedAt, sentAt: now).bytes
    }

    /// Binds a UDP port on `host` (any free port) on `eventLoop`. `onReply` runs on that loop after
    /// each reply is written, with the reply's size.
    package static func start(host: String, on eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
                              onReply: @escaping @Sendable (_ replyBytes: Int) -> Void = { _ in }) async throws -> NTPTimingResponder {
        let counter = Counter()
        do {
            let ch = try await DatagramBootstrap(group: eventLoop)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(TimingHandler(counter: counter, onReply: onReply))
                    }
                }
                .bind(host: host, port: 0).get()
            return NTPTimingResponder(channel: ch, counter: counter)
        } catch {
            throw ATVError.connectionFailed("cannot open a UDP timing port on \(host): \(error)")
        }
    }

    package func close() { channel.close(promise: nil) }

    /// Closes and waits until the socket is closed.
    package func closeAndWait() async { try? await channel.close() }

    final class Counter: Sendable {
        let count = Mutex(0)
    }

    final class TimingHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let counter: Counter
        let onReply: @Sendable (Int) -> Void
        init(counter: Counter, onReply: @escaping @Sendable (Int) -> Void) {
            self.counter = counter
            self.onReply = onReply
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let received = NTPTime.now()
            guard let answer = NTPTimingResponder.reply(to: Array(envelope.data.readableBytesView), receivedAt: received,
                                                        now: NTPTime.now()) else { return }
            let out = AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: context.channel.allocator.buffer(bytes: answer))
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            counter.count.withLock { $0 += 1 }
            onReply(answer.count)
        }

        // ICMP errors (ECONNREFUSED) on UDP are not fatal; the RTSP connection tells us when the
        // receiver is gone.
        func errorCaught(context: ChannelHandlerContext, error: Error) {}
    }
}
