import ATVCore
import NIOCore
import NIOPosix
import Synchronization

/// A virtual AirPlay 1 (RAOP) speaker: an RTSP server plus the UDP audio, control and timing
/// receivers. It writes what it would play (in sequence order, silence for packets that never
/// arrived) to a WAV file, and counts everything in a `SpeakerReport`.
///
/// Loopback only by default (`127.0.0.1`); each RTSP connection is one session.
public final class VirtualSpeaker: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// TCP port for RTSP; 0 picks a free port (see `port`).
        public var port: Int
        public var name: String
        public var deviceID: String
        /// WAV file of the first session; session n > 1 writes `<stem>-n.wav`. nil: no file.
        public var outputPath: String?
        public var jitter: JitterBuffer.Configuration
        /// Interval between timing requests (the first is sent right after SETUP).
        public var timingInterval: Duration
        /// After TEARDOWN (or a closed connection) wait this long for in-flight UDP before finishing.
        public var endGrace: Duration
        /// Test hook to simulate loss: return true to drop the n-th audio packet (0-based) as it
        /// arrives on the audio port. Retransmissions are never dropped.
        public var dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)?

        public init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv virtual speaker",
                    deviceID: String = "AA:BB:CC:DD:EE:FF", outputPath: String? = nil,
                    jitter: JitterBuffer.Configuration = .init(), timingInterval: Duration = .seconds(3),
                    endGrace: Duration = .milliseconds(250),
                    dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)? = nil) {
            self.host = host
            self.port = port
            self.name = name
            self.deviceID = deviceID
            self.outputPath = outputPath
            self.jitter = jitter
            self.timingInterval = timingInterval
            self.endGrace = endGrace
            self.dropAudioPacket = dropAudioPacket
        }
    }

    public let configuration: Configuration
    /// The bound RTSP port.
    public let port: Int
    private let server: Channel
    let shared: SpeakerShared

    private init(configuration: Configuration, server: Channel, shared: SpeakerShared) {
        self.configuration = configuration
        self.server = server
        self.shared = shared
        self.port = server.localAddress?.port ?? configuration.port
    }

    /// Starts listening. Throws `ATVError.connectionFailed` if the address cannot be bound.
    public static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualSpeaker {
        let shared = SpeakerShared(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        do {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let session = SpeakerSession(channel: channel, shared: shared)
                        try channel.pipeline.syncOperations.addHandler(RTSPServerHandler(session: session))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
            return VirtualSpeaker(configuration: configuration, server: server, shared: shared)
        } catch {
            throw ATVError.listening(configuration.host, configuration.port, error)
        }
    }

    /// A snapshot of everything received so far.
    public func report() -> SpeakerReport { shared.report.withLock { $0 } }

    /// Events from now on (each call gives an independent stream).
    public func events() -> AsyncStream<SpeakerEvent> { shared.events.subscribe() }

    /// Waits until `sessions` sessions have ended (TEARDOWN or connection closed) and returns the report.
    public func waitForSessionEnd(sessions: Int = 1, timeout: Duration) async throws -> SpeakerReport {
        let stream = events()
        if report().sessionsEnded >= sessions { return report() }
        return try await withThrowingTaskGroup(of: SpeakerReport?.self) { group in
            group.addTask {
                for await event in stream {
                    if case .sessionEnded(_, let r) = event, r.sessionsEnded >= sessions { return r }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let r = first { return r }
            if report().sessionsEnded >= sessions { return report() }
            throw ATVError.timeout("no RAOP session ended on the virtual speaker within \(timeout)")
        }
    }

    /// Stops listening; open sessions are closed.
    /// Stops listening, closes open sessions and ends `events()` streams.
    public func stop() async {
        try? await server.close()
        shared.closeAll()
        shared.events.finish()
    }
}

/// State shared by all sessions of one speaker.
final class SpeakerShared: Sendable {
    let configuration: VirtualSpeaker.Configuration
    let report = Mutex(SpeakerReport())
    let events = Broadcaster<SpeakerEvent>(bufferingPolicy: .unbounded)
    private let openChannels = Mutex<[ObjectIdentifier: Channel]>([:])

    init(configuration: VirtualSpeaker.Configuration) { self.configuration = configuration }

    func update(_ body: (inout SpeakerReport) -> Void) { report.withLock { body(&$0) } }

    func emit(_ event: SpeakerEvent) { events.yield(event) }

    /// Starts a session: returns its number (1-based) and the WAV path it should write.
    func beginSession() -> (Int, String?) {
        let n = report.withLock { r in r.sessions += 1; return r.sessions }
        guard let path = configuration.outputPath else { return (n, nil) }
        if n == 1 { return (n, path) }
        let stem = path.hasSuffix(".wav") ? String(path.dropLast(4)) : path
        return (n, "\(stem)-\(n).wav")
    }

    func register(_ channel: Channel) { openChannels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func unregister(_ channel: Channel) { _ = openChannels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    func closeAll() {
        for c in openChannels.withLock({ Array($0.values) }) { c.close(promise: nil) }
    }
}

extension Duration {
    /// The same span as a NIO `TimeAmount` (nanosecond precision).
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
