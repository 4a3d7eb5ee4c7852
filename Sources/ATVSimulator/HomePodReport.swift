import ATVCore

/// What a `VirtualHomePod` saw, cumulative over all connections and sessions.
public struct HomePodReport: Sendable, Equatable, CustomStringConvertible {
    /// How a control connection was authenticated.
    public enum PairingMode: String, Sendable, Equatable {
        /// Transient pair-setup (M1–M4, `X-Apple-HKP: 4`, PIN 3939): keys from the SRP session key.
        case transient
        /// PIN pair-setup (M1–M6): a controller was stored (no encryption on that connection).
        case pinSetup = "pin-setup"
        /// Pair-verify with a stored controller: keys from the X25519 shared secret.
        case verify
    }

    /// State of the event channel of the latest session.
    public enum EventChannelState: String, Sendable, Equatable {
        case none
        /// Listening on `eventPort`, the sender has not connected yet.
        case listening
        /// The sender connected; the `POST /command` is out.
        case connected
        /// The sender answered the `POST /command` with 200.
        case answered
        /// The receiver closed it (`dropEventChannelAfter`), or the sender never answered.
        case dropped
        /// The sender closed it.
        case closed
    }

    /// Control connections (TCP) accepted.
    public var connections = 0
    /// RTSP sessions (a session SETUP), and sessions that ended (TEARDOWN or connection closed).
    public var sessions = 0
    public var sessionsEnded = 0
    /// Every request in order: "METHOD /path" for HTTP-style paths, else the method ("SETUP");
    /// requests that arrived encrypted are prefixed with "enc " (e.g. "enc SETUP").
    public var requests: [String] = []
    /// `GET /info` answered with 403 because of the User-Agent.
    public var infoRejected = 0
    /// Pairing handshakes that completed, by mode, in order.
    public var pairings: [PairingMode] = []
    /// Pair-setup / pair-verify messages answered with an error TLV (wrong PIN, unknown controller, ...).
    public var pairingFailures: [String] = []
    /// Requests that arrived encrypted (HAP framing with the Control keys).
    public var encryptedRequests = 0
    /// Unencrypted session requests refused with 470 (pairing required).
    public var refusedUnauthenticated = 0
    /// Session SETUP: the timing protocol and the sender's timing port it asked for.
    public var timingProtocol: String?
    public var senderTimingPort: Int?
    /// The receiver's own ports of the latest session: event channel (TCP), audio data and control (UDP).
    public var eventPort: Int?
    public var dataPort: Int?
    public var controlPort: Int?
    /// Event channel.
    public var eventChannel: EventChannelState = .none
    /// Remote-control streams (type 130, the MRP tunnel) set up, and data channels the sender opened.
    public var remoteControlStreams = 0
    /// Session SETUPs with `isRemoteControlOnly` (not counted in `sessions`).
    public var remoteControlSessions = 0
    /// Remote-control SETUPs refused because the tunnel is off (`remoteControlTunnel` false).
    public var remoteControlRefused = 0
    public var dataChannelConnections = 0
    public var eventCommandsSent = 0
    public var eventRepliesReceived = 0
    /// Stream SETUP: RTP type (96 realtime), `ct` (1 PCM, 2 ALAC), `audioFormat`, `spf`.
    public var streamType: Int?
    public var compressionType: Int?
    public var audioFormat: Int?
    public var framesPerPacket: Int?
    /// "L16/44100/2" or "AppleLossless/44100/2".
    public var codec: String?
    /// Audio datagrams received on the data port (garbage and duplicates included), and their bytes.
    public var packetsReceived = 0
    /// When the first audio datagram arrived (for launch-to-first-packet benchmarks).
    public var firstAudioPacketAt: ContinuousClock.Instant?
    /// What the sender had done when the first audio datagram arrived.
    public struct BeforeFirstAudio: Sendable, Equatable {
        /// Control connections (TCP) accepted.
        public var connections: Int
        /// Remote-control (MRP tunnel) SETUPs: sessions, type-130 streams and refused ones.
        public var remoteControlSetups: Int
    }
    public var beforeFirstAudio: BeforeFirstAudio?
    public var audioBytesReceived = 0
    /// Packets that decrypted with `shk`, and those that failed (wrong key, tampered, too short).
    public var packetsDecrypted = 0
    public var decryptFailures = 0
    /// Datagrams on the data port that were not RTP audio at all.
    public var malformedPackets = 0
    /// Packets thrown away, and control requests left unanswered, because `noProgress` is set.
    public var packetsDiscarded = 0
    public var requestsUnanswered = 0
    /// Retransmit requests sent to the sender's control port, packets asked for, responses received.
    public var retransmitRequestsSent = 0
    public var packetsRequested = 0
    public var retransmitResponsesReceived = 0
    /// Missing packets that arrived in time after all (retransmitted or late).
    public var packetsRecovered = 0
    /// Packets never received (silence written for them).
    public var unrecoveredPackets = 0
    /// Duplicates and packets too late to be played.
    public var latePackets = 0
    public var decodeErrors = 0
    /// Sync packets (0x54) on the control port; NTP timing requests sent / replies received.
    public var syncPacketsReceived = 0
    public var timingRequestsSent = 0
    public var timingRepliesReceived = 0
    /// `POST /feedback` keep-alives.
    public var feedbacks = 0
    /// PCM frames written to the WAV file(s), and the silence among them.
    public var framesWritten = 0
    public var silenceFramesWritten = 0
    /// Bytes of RTSP/HTTP received on control connections (after decryption).
    public var rtspBytesReceived = 0
    public var metadata: MediaMetadata?
    public var artworkBytes = 0
    public var artworkType: String?
    public var volume: Double?
    public var progress: String?
    public var wavFiles: [String] = []
    public var errors: [String] = []

    public init() {}

    /// The last completed pairing's mode.
    public var pairingMode: PairingMode? { pairings.last }

    public var description: String {
        var lines: [String] = []
        lines.append("connections: \(connections), sessions: \(sessions) (ended \(sessionsEnded))")
        lines.append("pairing: \(pairings.map(\.rawValue).joined(separator: ", "))\(pairingFailures.isEmpty ? "" : " (failures: \(pairingFailures.count))")")
        lines.append("encrypted requests: \(encryptedRequests), refused unauthenticated: \(refusedUnauthenticated)")
        lines.append("rtsp requests: \(requests.joined(separator: ", "))")
        if requestsUnanswered > 0 { lines.append("requests left unanswered: \(requestsUnanswered)") }
        lines.append("timing: \(timingProtocol ?? "-"), event channel: \(eventChannel.rawValue) (commands \(eventCommandsSent), replies \(eventRepliesReceived))")
        if remoteControlSessions + remoteControlStreams + remoteControlRefused > 0 {
            lines.append("remote control: sessions \(remoteControlSessions), streams \(remoteControlStreams), data channels \(dataChannelConnections), refused \(remoteControlRefused)")
        }
        if let b = beforeFirstAudio {
            lines.append("before the first audio packet: control connections \(b.connections), remote-control setups \(b.remoteControlSetups)")
        }
        lines.append("stream: type \(streamType.map(String.init) ?? "-"), ct \(compressionType.map(String.init) ?? "-"), codec \(codec ?? "-")")
        lines.append("packets received: \(packetsReceived) (\(audioBytesReceived) bytes), decrypted \(packetsDecrypted), decrypt failures \(decryptFailures), discarded \(packetsDiscarded)")
        lines.append("retransmit requests sent: \(retransmitRequestsSent) (\(packetsRequested) packets), responses \(retransmitResponsesReceived), recovered \(packetsRecovered), unrecovered \(unrecoveredPackets)")
        lines.append("sync packets: \(syncPacketsReceived), timing requests/replies: \(timingRequestsSent)/\(timingRepliesReceived), feedbacks: \(feedbacks)")
        lines.append("frames written: \(framesWritten) (silence \(silenceFramesWritten))")
        let m = metadata
        lines.append("metadata: title=\(m?.title ?? "-") artist=\(m?.artist ?? "-") album=\(m?.album ?? "-"), artwork \(artworkBytes) bytes")
        lines.append("volume: \(volume.map { "\($0) dB" } ?? "-")")
        if !wavFiles.isEmpty { lines.append("wav: \(wavFiles.joined(separator: ", "))") }
        for e in errors { lines.append("error: \(e)") }
        return lines.joined(separator: "\n")
    }
}

/// Things that happen on a `VirtualHomePod`, in order.
public enum HomePodEvent: Sendable, Equatable {
    case request(String)
    case paired(HomePodReport.PairingMode)
    case eventChannel(HomePodReport.EventChannelState)
    /// The remote-control data channel (MRP tunnel, stream type 130) was opened (true) or closed.
    case dataChannel(open: Bool)
    /// A session ended (TEARDOWN or connection closed); its WAV file, if any, is complete.
    case sessionEnded(wavPath: String?, report: HomePodReport)
}
