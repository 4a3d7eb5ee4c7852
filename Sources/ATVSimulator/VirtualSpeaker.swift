import ATVCore
import NIOCore
import NIOPosix
import Synchronization

/// A virtual AirPlay 1 (RAOP) speaker: an RTSP server plus the UDP audio, control and timing
/// receivers. It writes what it would play (in sequence order, silence for packets that never
/// arrived) to a WAV file, and counts everything in a `SpeakerReport`.
///
/// Loopback only by default (`127.0.0.1`); each RTSP connection is one session.
package final class VirtualSpeaker: Sendable {
    package struct Configuration: AudioReceiverConfiguration {
        package var host: String
        /// TCP port for RTSP; 0 picks a free port (see `port`).
        package var port: Int
        package var name: String
        package var deviceID: String
        /// WAV file of the first session; session n > 1 writes `<stem>-n.wav`. nil: no file.
        package var outputPath: String?
        package var jitter: JitterBuffer.Configuration
        /// Interval between timing requests (the first is sent right after SETUP).
        package var timingInterval: Duration
        /// After TEARDOWN (or a closed connection) wait this long for in-flight UDP before finishing.
        package var endGrace: Duration
        /// Test hook to simulate loss: return true to drop the n-th audio packet (0-based) as it
        /// arrives on the audio port. Retransmissions are never dropped.
        package var dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)?

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv virtual speaker",
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

    package let configuration: Configuration
    /// The bound RTSP port.
    package let port: Int
    private let server: Channel
    let shared: SpeakerShared

    private init(configuration: Configuration, server: Channel, shared: SpeakerShared) {
        self.configuration = configuration
        self.server = server
        self.shared = shared
        self.port = server.localAddress?.port ?? configuration.port
    }

    /// Starts listening. Throws `ATVError.connectionFailed` if the address cannot be bound.
    package static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualSpeaker {
        let shared = SpeakerShared(configuration: configuration)
        let server = try await TCPListener.bind(host: configuration.host, port: configuration.port) { channel, pipeline in
            try pipeline.addHandler(SpeakerSession(channel: channel, shared: shared).serverHandler())
        }
        return VirtualSpeaker(configuration: configuration, server: server, shared: shared)
    }

    /// A snapshot of everything received so far.
    package func report() -> SpeakerReport { shared.report.withLock { $0 } }

    /// Events from now on (each call gives an independent stream).
    package func events() -> AsyncStream<SpeakerEvent> { shared.events.subscribe() }

    /// Waits until `sessions` sessions have ended (TEARDOWN or connection closed) and returns the report.
    package func waitForSessionEnd(sessions: Int = 1, timeout: Duration) async throws -> SpeakerReport {
        try await shared.waitForSessionEnd(sessions: sessions, timeout: timeout, what: "RAOP session ended on the virtual speaker") {
            if case .sessionEnded(_, let r) = $0 { r } else { nil }
        }
    }

    /// Stops listening, closes open sessions and ends `events()` streams.
    package func stop() async {
        try? await server.close()
        shared.closeAll()
        shared.events.finish()
    }
}

/// State shared by all sessions of one speaker.
typealias SpeakerShared = ReceiverShared<VirtualSpeaker.Configuration, SpeakerReport, SpeakerEvent, Void>

extension ReceiverShared where Configuration == VirtualSpeaker.Configuration, Report == SpeakerReport, Extra == Void {
    convenience init(configuration: Configuration) {
        self.init(configuration: configuration, report: SpeakerReport(), extra: ())
    }
}
