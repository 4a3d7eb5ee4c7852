// The sender's NTP-style timing port of an AirPlay 2 session (timingProtocol "NTP"): the receiver
// sends 0x52 requests, we answer 0x53 with our clock (protocols.md §4; same packets as RAOP).
import ATVCore
import ATVRAOP
import NIOCore
import NIOPosix
import Synchronization

final class AirPlayTimingResponder: Sendable {
    let channel: Channel
    private let counter: Counter

    var port: Int { channel.localAddress?.port ?? 0 }
    var repliesSent: Int { counter.count.withLock { $0 } }

    private init(channel: Channel, counter: Counter) {
        self.channel = channel
        self.counter = counter
    }

    static func start(host: String) async throws -> AirPlayTimingResponder {
        let counter = Counter()
        do {
            let ch = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(TimingHandler(counter: counter)) }
                }
                .bind(host: host, port: 0).get()
            return AirPlayTimingResponder(channel: ch, counter: counter)
        } catch {
            throw ATVError.connectionFailed("cannot open a UDP timing port on \(host): \(error)")
        }
    }

    func close() { channel.close(promise: nil) }

    final class Counter: Sendable {
        let count = Mutex(0)
    }

    final class TimingHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let counter: Counter
        init(counter: Counter) { self.counter = counter }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let received = NTPTime.now()
            guard let answer = RAOPStreamer.timingReply(to: Array(envelope.data.readableBytesView), receivedAt: received,
                                                        now: NTPTime.now()) else { return }
            let out = AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: context.channel.allocator.buffer(bytes: answer))
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            counter.count.withLock { $0 += 1 }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {}
    }
}
