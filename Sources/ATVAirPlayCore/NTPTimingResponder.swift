// The sender's NTP-style timing port (RAOP, and AirPlay 2 sessions with timingProtocol "NTP"):
// the receiver sends 0x52 requests, we answer 0x53 with our clock. The one responder every sender
// uses (RAOP audio, AirPlay 2 audio, the AirPlay 2 session before `/play`).
import ATVCore
import NIOCore
import NIOPosix
import Synchronization

package final class NTPTimingResponder: Sendable {
    let endpoint: UDPEndpoint
    private let counter: Counter

    package var port: Int { endpoint.localPort }
    package var repliesSent: Int { counter.count.withLock { $0 } }

    private init(endpoint: UDPEndpoint, counter: Counter) {
        self.endpoint = endpoint
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
        let endpoint = try await UDPEndpoint.bind(host: host, on: eventLoop) { bytes, _, reply in
            let received = NTPTime.now()
            guard let answer = NTPTimingResponder.reply(to: bytes, receivedAt: received, now: NTPTime.now()) else { return }
            reply(answer)
            counter.count.withLock { $0 += 1 }
            onReply(answer.count)
        }
        return NTPTimingResponder(endpoint: endpoint, counter: counter)
    }

    package func close() { endpoint.closeNow() }

    /// Closes and waits until the socket is closed.
    package func closeAndWait() async { await endpoint.close() }

    final class Counter: Sendable {
        let count = Mutex(0)
    }
}
