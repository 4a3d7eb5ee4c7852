// The buffered stream's data connection shell: its failures are one line naming the port.
import ATVCore
@testable import ATVRAOP
import NIOCore
import NIOPosix
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
