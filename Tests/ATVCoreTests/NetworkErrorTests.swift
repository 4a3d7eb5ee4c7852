import ATVCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Testing

/// The one mapping of socket and NIO errors to one-line `ATVError`s, and the deadline that never
/// waits for a stuck body.
@Suite struct NetworkErrorTests {
    /// Errors as NIO and POSIX describe them (their text is all a caller above NIO sees).
    struct Described: Error, CustomStringConvertible { var description: String }

    /// NIO's own error types are read by type and errno, not by their text.
    @Test func nioErrorTypesAreClassified() {
        #expect(NetworkFailure(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .refused)
        #expect(NetworkFailure(IOError(errnoCode: ECONNRESET, reason: "read")) == .reset)
        #expect(NetworkFailure(IOError(errnoCode: EHOSTUNREACH, reason: "connect")) == .unreachable)
        #expect(NetworkFailure(IOError(errnoCode: EPIPE, reason: "write")) == .closed)
        #expect(NetworkFailure(ChannelError.connectTimeout(.seconds(3))) == .timedOut)
        #expect(NetworkFailure(ChannelError.ioOnClosedChannel) == .closed)
        #expect(NetworkFailure(ChannelError.eof) == .closed)
    }

    /// A real refused connection through NIO's bootstrap (whose error wraps one failure per address).
    @Test func aRealRefusedConnectIsRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        try await listener.close()
        do {
            let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
            try await channel.close()
            Issue.record("connected to a closed port")
        } catch {
            #expect(NetworkFailure(error) == .refused, "\(error)")
            let line = ATVError.connecting("127.0.0.1:\(port)", error).description
            #expect(line.contains("refused the connection") && !line.contains("NIO") && !line.contains("errno"), "\(line)")
        }
        try await group.shutdownGracefully()
    }

    @Test func socketErrorsAreClassifiedAndNamed() {
        let cases: [(String, NetworkFailure)] = [
            ("NIOConnectionError(host: \"127.0.0.1\", port: 49159, dnsAError: nil, dnsAAAAError: nil, connectionErrors: [NIOPosix.SingleConnectionFailure(target: [IPv4]127.0.0.1/127.0.0.1:49159, error: connect(descriptor:addr:size:): Connection refused (errno: 111))])", .refused),
            ("read(descriptor:pointer:size:): Connection reset by peer (errno: 104)", .reset),
            ("Connect timeout (4 s)", .timedOut),
            ("connectTimeout(TimeAmount(nanoseconds: 3000000000))", .timedOut),
            ("connect(descriptor:addr:size:): No route to host (errno: 113)", .unreachable),
            ("I/O on closed channel", .closed),
            ("write(descriptor:pointer:size:): Broken pipe (errno: 32)", .closed),
            ("something else entirely", .other),
        ]
        for (text, expected) in cases {
            #expect(NetworkFailure(Described(description: text)) == expected, "\(text)")
        }
        let refused = ATVError.connecting("127.0.0.1:49159", Described(description: cases[0].0))
        #expect(refused == .connectionFailed("127.0.0.1:49159 refused the connection (nothing listens on that port)"))
        let timedOut = ATVError.connecting("10.0.0.9:7000", Described(description: "Connect timeout (3 s)"), timeout: .seconds(3))
        #expect(timedOut.description == "timed out: 10.0.0.9:7000 did not accept the connection within 3 s (check the address and that the device is on)")
        let reset = ATVError.connection("127.0.0.1:7000", Described(description: cases[1].0), during: "POST /play")
        #expect(reset == .connectionLost("127.0.0.1:7000 reset the connection during POST /play"))
        // No text of the library error survives, whatever it was.
        for (text, _) in cases {
            for e in [ATVError.connecting("h:1", Described(description: text)), ATVError.connection("h:1", Described(description: text))] {
                #expect(!e.description.contains("errno") && !e.description.contains("descriptor") && !e.description.contains("NIO"), "\(e)")
            }
        }
        // Our own errors pass through.
        #expect(ATVError.connecting("h:1", ATVError.timeout("x")) == .timeout("x"))
    }

    @Test func naming() {
        #expect(ATVError.timeout("the receiver did not answer GET /info").naming("10.0.0.2:7000")
                == .timeout("the receiver at 10.0.0.2:7000 did not answer GET /info"))
        #expect(ATVError.protocolError("10.0.0.2:7000 sent junk").naming("10.0.0.2:7000") == .protocolError("10.0.0.2:7000 sent junk"))
    }

    @Test func deadlineDoesNotWaitForAStuckBody() async throws {
        let start = ContinuousClock.now
        await #expect(throws: ATVError.timeout("stuck")) {
            try await withDeadline(.milliseconds(200), { .timeout("stuck") }) {
                // A continuation nobody resumes: what a lost promise looks like.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            }
        }
        #expect(ContinuousClock.now - start < .seconds(2))
        let value = try await withDeadline(.seconds(5), { .timeout("late") }) { 42 }
        #expect(value == 42)
        await #expect(throws: ATVError.badInput("no")) {
            try await withDeadline(.seconds(5), { .timeout("late") }) { () async throws -> Int in throw ATVError.badInput("no") }
        }
    }

    /// A port already taken: the line says so and what to do, without the socket call or errno.
    @Test func aRealBusyPortIsOneLineSayingItIsInUse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let first = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(first.localAddress?.port)
        do {
            let second = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: port).get()
            try await second.close()
            Issue.record("bound a port that was taken")
        } catch {
            let line = ATVError.listening("127.0.0.1", port, error).description
            #expect(line.contains("cannot listen on 127.0.0.1:\(port): the port is in use"), "\(line)")
            #expect(!line.contains("errno") && !line.contains("bind(") && !line.contains("IOError"), "\(line)")
        }
        try await first.close()
        try await group.shutdownGracefully()
        #expect(ATVError.listening("::1", 80, IOError(errnoCode: EACCES, reason: "bind")).description
            == "connection failed: cannot listen on [::1]:80: not permitted (ports below 1024 need privileges)")
        #expect(ATVError.listening("h", 1, ATVError.timeout("x")) == .timeout("x"))
    }
}
