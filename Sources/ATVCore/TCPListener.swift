// The one way a TCP listener is opened: the HTTP server, the proxies and the relay, and every
// virtual device.
import NIOCore
import NIOPosix

/// A TCP listener on `host:port` (0: any free port), SO_REUSEADDR set.
package enum TCPListener {
    /// Options for the accepted connections.
    package struct Options: Sendable {
        /// TCP_NODELAY (small frames that must not wait: MRP, proxies).
        package var noDelay = false
        /// Read only when asked (a relay that reads once its other side is connected).
        package var autoRead = true

        package init(noDelay: Bool = false, autoRead: Bool = true) {
            self.noDelay = noDelay
            self.autoRead = autoRead
        }
    }

    /// Binds; `configure` sets up each accepted connection's pipeline on its event loop (throw to
    /// refuse it). A failure to listen is `ATVError.listening`'s one line.
    package static func bind(host: String, port: Int, options: Options = Options(),
                             configure: @escaping @Sendable (Channel, ChannelPipeline.SynchronousOperations) throws -> Void) async throws -> Channel {
        try await bind(host: host, port: port, on: MultiThreadedEventLoopGroup.singleton, options: options, configure: configure).get()
    }

    /// `bind` on `group` as an `EventLoopFuture` (a listener opened on a connection's own loop).
    package static func bind(host: String, port: Int, on group: any EventLoopGroup, options: Options = Options(),
                             configure: @escaping @Sendable (Channel, ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<Channel> {
        var bootstrap = ServerBootstrap(group: group).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if options.noDelay { bootstrap = bootstrap.childChannelOption(.socketOption(.tcp_nodelay), value: 1) }
        if !options.autoRead { bootstrap = bootstrap.childChannelOption(.autoRead, value: false) }
        return bootstrap
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try configure(ch, ch.pipeline.syncOperations) }
            }
            .bind(host: host, port: port)
            .flatMapErrorThrowing { throw ATVError.listening(host, port, $0) }
    }
}
