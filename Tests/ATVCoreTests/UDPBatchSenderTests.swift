@testable import ATVCore
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The real-time audio socket: datagrams queued for several destinations leave in one flush,
/// intact and in order; `flushSoon` from several callers in one loop iteration is one send.
@Suite struct UDPBatchSenderTests {
    /// What each receiver got, by receiver index.
    final class Received: Sendable {
        let datagrams = Mutex<[Int: [[UInt8]]]>([:])
        func withLock<T>(_ body: ([Int: [[UInt8]]]) -> T) -> T { datagrams.withLock { body($0) } }
    }

    static func receivers(_ n: Int, on loop: any EventLoop) async throws -> ([UDPEndpoint], Received) {
        let got = Received()
        var endpoints: [UDPEndpoint] = []
        for i in 0 ..< n {
            endpoints.append(try await UDPEndpoint.bind(host: "127.0.0.1", on: loop) { bytes, _, _ in
                got.datagrams.withLock { $0[i, default: []].append(bytes) }
            })
        }
        return (endpoints, got)
    }

    static func waitFor(_ count: Int, in got: Received) async throws {
        for _ in 0 ..< 300 where got.withLock({ $0.values.reduce(0) { $0 + $1.count } }) < count {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func oneFlushSendsEveryQueuedDatagramToItsDestination() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let (receivers, got) = try await Self.receivers(3, on: loop)
        let sender = try UDPBatchSender.bind(host: "127.0.0.1", on: loop)
        #expect(sender.localPort > 0)
        let destinations = try receivers.map { UDPBatchSender.Destination(try SocketAddress(ipAddress: "127.0.0.1", port: $0.localPort)) }
        // 4 packets to each of 3 receivers, of different sizes (the batch buffer grows past 16 KB).
        // Each fits the receivers' 2048-byte datagram buffer (NIO's default for a datagram channel:
        // a longer datagram arrives cut to 2048 bytes); audio packets are under 1500.
        var expected: [Int: [[UInt8]]] = [:]
        for k in 0 ..< 4 {
            for (i, d) in destinations.enumerated() {
                let packet = [UInt8](repeating: UInt8(16 * i + k), count: 1400 + 200 * k + i)
                expected[i, default: []].append(packet)
                sender.enqueue(packet, to: d)
            }
        }
        let sent = try await loop.submit { sender.flush() }.get()
        #expect(sent == 12)
        try await Self.waitFor(12, in: got)
        #expect(got.withLock { $0 } == expected)
        #expect(sender.counts.sent == 12)
        #expect(sender.counts.dropped == 0)
        // Nothing is left queued: a second flush sends nothing.
        #expect(try await loop.submit { sender.flush() }.get() == 0)
        try await loop.submit { sender.close() }.get()
        for r in receivers { await r.close() }
        try await group.shutdownGracefully()
    }

    @Test func flushSoonFromSeveralCallersIsOneSendOnTheLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let (receivers, got) = try await Self.receivers(2, on: loop)
        let sender = try UDPBatchSender.bind(host: "127.0.0.1", on: loop)
        let destinations = try receivers.map { UDPBatchSender.Destination(try SocketAddress(ipAddress: "127.0.0.1", port: $0.localPort)) }
        // Two "pacers" queue and ask for a flush in the same loop iteration: the first flush task
        // sends both bursts; the second request found one queued and added none.
        let flushedInTask = try await loop.submit { () -> (Int, Int) in
            for (i, d) in destinations.enumerated() {
                sender.enqueue([UInt8(i), 1, 2], to: d)
                sender.enqueue([UInt8(i), 3], to: d)
                sender.flushSoon()
            }
            return (sender.counts.sent, 0)
        }.get()
        #expect(flushedInTask.0 == 0)  // nothing left before the loop ran the flush task
        try await Self.waitFor(4, in: got)
        #expect(got.withLock { $0 } == [0: [[0, 1, 2], [0, 3]], 1: [[1, 1, 2], [1, 3]]])
        #expect(sender.counts.sent == 4)
        try await loop.submit { sender.close() }.get()
        // Closed: queued datagrams are ignored.
        sender.enqueue([9], to: destinations[0])
        #expect(sender.flush() == 0)
        for r in receivers { await r.close() }
        try await group.shutdownGracefully()
    }
}
