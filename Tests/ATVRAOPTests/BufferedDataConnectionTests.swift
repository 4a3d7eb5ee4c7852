// The buffered stream's data connection shell: its failures are one line naming the port.
import ATVCore
@testable import ATVRAOP
import NIOCore
import NIOPosix
import Synchronization
import ATVTestSupport
import Testing

@Suite struct BufferedDataConnectionTests {
    /// Nothing listens: one clear line, no socket or errno text.
    @Test func refusedConnectionIsOneLine() async throws {
        // A port that was just free: bind, note it, close.
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        try await server.close()
        await #expect(throws: ATVError.connectionFailed(
            "the receiver's buffered audio port 127.0.0.1:\(port) refused the connection (nothing listens on that port)")) {
            _ = try await BufferedDataConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
        }
    }

    /// The receiver closes the connection: a write fails with "closed the connection during
    /// buffered audio" (or "reset"), never an NIO type name.
    @Test func closedByTheReceiverEndsWrites() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.close() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let data = try await BufferedDataConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
        var failure: (any Error)?
        for _ in 0..<500 where failure == nil {
            do {
                try await data.write([UInt8](repeating: 0, count: 1024))
                try await Task.sleep(for: .milliseconds(10))
            } catch {
                failure = error
            }
        }
        let error = try #require(failure as? ATVError)
        let text = "\(error)"
        #expect(text.contains("the receiver's buffered audio port 127.0.0.1:\(port)") && text.contains("during buffered audio"), "\(text)")
        #expect(!text.contains("IOError") && !text.contains("errno") && !text.contains("ChannelError"), "\(text)")
        await data.close()
    }
}

/// The write deadline's shell: a receiver that accepts the connection and never reads.
@Suite struct BufferedDataWriteDeadlineTests {
    @Test func writeThatIsNeverTakenFailsWithOneLineNamingThePort() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_rcvbuf), value: 16_384)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let data = try await BufferedDataConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5), sendBuffer: 16_384)
        let clock = ContinuousClock()
        var failure: (any Error)?
        var stuckFor: Duration = .zero
        for _ in 0..<10_000 where failure == nil {
            let began = clock.now
            do {
                try await data.write([UInt8](repeating: 0x55, count: 1400), within: .milliseconds(500), queued: .zero)
            } catch {
                failure = error
                stuckFor = clock.now - began
            }
        }
        guard case .timeout(let text)? = failure as? ATVError else { Issue.record("\(String(describing: failure))"); return }
        #expect(text == "the receiver's buffered audio port 127.0.0.1:\(port) stopped taking audio: nothing accepted for 0.5 s "
                + "with 0 s of audio left to play", "\(text)")
        // Failed at its deadline, not much later.
        #expect(stuckFor >= .milliseconds(500) && stuckFor < .seconds(3), "\(stuckFor)")
        await data.close()
    }
}

/// The write deadline kept once per connection: packets pending with their deadlines, one timer.
@Suite struct BufferedWriteWatchdogTests {
    typealias W = BufferedWriteWatchdog.Write

    /// The first write arms a timer; later ones with later deadlines do not; one with an earlier
    /// deadline arms an earlier one. Taken in order; a timer that finds nothing pending disarms.
    @Test func oneTimerAtTheEarliestDeadline() {
        var w = BufferedWriteWatchdog()
        #expect(w.written(W(deadline: 6_000, limit: 6_000, queued: 3_000)) == 6_000)
        #expect(w.written(W(deadline: 6_100, limit: 6_000, queued: 3_000)) == nil)
        #expect(w.written(W(deadline: 4_000, limit: 3_900, queued: 900)) == 4_000)
        #expect(w.count == 3 && w.armedAt == 4_000)
        w.accepted()
        w.accepted()
        // At 4000 the third is still pending, exactly at its deadline: expired.
        let (expired, rearm) = w.fired(now: 4_000)
        #expect(expired == W(deadline: 4_000, limit: 3_900, queued: 900) && rearm == nil)
        w.accepted()
        #expect(w.count == 0)
        let idle = w.fired(now: 5_000)
        #expect(idle.expired == nil && idle.rearm == nil)
        #expect(w.armedAt == nil)
        #expect(w.written(W(deadline: 9_000, limit: 1, queued: 0)) == 9_000)
    }

    /// A timer that fires before the earliest pending deadline re-arms at it; a packet taken in
    /// time is never reported, however long the stream.
    @Test func firesEarlyRearmsAndTakenPacketsNeverExpire() {
        var w = BufferedWriteWatchdog()
        _ = w.written(W(deadline: 1_000, limit: 1_000, queued: 0))
        w.accepted()
        _ = w.written(W(deadline: 2_000, limit: 1_000, queued: 0))
        let (expired, rearm) = w.fired(now: 1_000)
        #expect(expired == nil && rearm == 2_000 && w.armedAt == 2_000)
        for i in 0..<10_000 {
            w.accepted()
            _ = w.written(W(deadline: UInt64(3_000 + i), limit: 1_000, queued: 0))
        }
        w.accepted()
        #expect(w.count == 0)
        #expect(w.fired(now: 1_000_000).expired == nil)
    }
}

/// Batches on the shell: every frame of a batch arrives in order; a batch the receiver never takes
/// fails at the deadline of its earliest frame, one line, the connection closed.
@Suite struct BufferedDataBatchTests {
    @Test func batchArrivesInOrderAndAStuckBatchFailsAtItsEarliestDeadline() async throws {
        let received = Collect.Bytes()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(Collect(received)) }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let data = try await BufferedDataConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
        let frames = (0..<40).map { i in [UInt8](repeating: UInt8(i), count: 1400) }
        try await data.write(frames.map { .init(frame: $0, limit: .seconds(5), queued: .seconds(2)) })
        try await data.write(frames.map { .init(frame: $0, limit: .seconds(5), queued: .seconds(2)) })
        let expected = frames.flatMap { $0 } + frames.flatMap { $0 }
        #expect(await poll(timeout: .seconds(5)) { received.bytes.withLock { $0.count } == expected.count })
        #expect(received.bytes.withLock { $0 } == expected)
        await data.close()

        // A receiver that never reads: the batch's later frames have later deadlines; the first
        // pending frame's (0.5 s) ends it.
        let stuck = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_rcvbuf), value: 16_384)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { stuck.close(promise: nil) }
        let stuckPort = try #require(stuck.localAddress?.port)
        let slow = try await BufferedDataConnection.connect(host: "127.0.0.1", port: stuckPort, timeout: .seconds(5), sendBuffer: 16_384)
        let batch = (0..<200).map { i in
            BufferedDataConnection.Outgoing(frame: [UInt8](repeating: 0x55, count: 1400), limit: .milliseconds(500 + 10 * Int64(i)),
                                            queued: .zero)
        }
        let clock = ContinuousClock()
        let began = clock.now
        var failure: (any Error)?
        do { try await slow.write(batch) } catch { failure = error }
        let took = clock.now - began
        guard case .timeout(let text)? = failure as? ATVError else { Issue.record("\(String(describing: failure))"); return }
        #expect(text.hasPrefix("the receiver's buffered audio port 127.0.0.1:\(stuckPort) stopped taking audio: nothing accepted for "), "\(text)")
        #expect(took >= .milliseconds(500) && took < .seconds(3), "\(took)")
        // Later writes fail at once with the same line.
        await #expect(throws: ATVError.timeout(text)) { try await slow.write([UInt8](repeating: 0, count: 10)) }
        await slow.close()
    }

    final class Collect: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        final class Bytes: Sendable { let bytes = Mutex([UInt8]()) }
        let box: Bytes
        init(_ box: Bytes) { self.box = box }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            box.bytes.withLock { $0 += buffer.readableBytesView }
        }
    }
}
