import ATVCore

/// What a `VirtualHomePod` saw, cumulative over all connections and sessions. The counts both
/// receivers keep (`AudioReception`: sessions, packets, retransmits, frames, metadata, volume,
/// ...) read as its own fields; `requests` there are "METHOD /path" for HTTP-style paths, else
/// the method ("SETUP"), prefixed "enc " when they arrived encrypted.
@dynamicMemberLookup
package struct HomePodReport: AudioReceiverReport, Equatable, CustomStringConvertible {
    /// How a control connection was authenticated.
    package enum PairingMode: String, Sendable, Equatable {
        /// Transient pair-setup (M1–M4, `X-Apple-HKP: 4`, PIN 3939): keys from the SRP session key.
        case transient
        /// PIN pair-setup (M1–M6): a controller was stored (no encryption on that connection).
        case pinSetup = "pin-setup"
        /// Pair-verify with a stored controller: keys from the X25519 shared secret.
        case verify
    }

    /// State of the event channel of the latest session.
    package enum EventChannelState: String, Sendable, Equatable {
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
    package var connections = 0
    /// `GET /info` answered with 403 because of the User-Agent.
    package var infoRejected = 0
    /// Pairing handshakes that completed, by mode, in order.
    package var pairings: [PairingMode] = []
    /// Pair-setup / pair-verify messages answered with an error TLV (wrong PIN, unknown controller, ...).
    package var pairingFailures: [String] = []
    /// Requests that arrived encrypted (HAP framing with the Control keys).
    package var encryptedRequests = 0
    /// Unencrypted session requests refused with 470 (pairing required).
    package var refusedUnauthenticated = 0
    /// Session SETUP: the timing protocol and the sender's timing port it asked for.
    package var timingProtocol: String?
    package var senderTimingPort: Int?
    /// The receiver's own ports of the latest session: event channel (TCP), audio data and control (UDP).
    package var eventPort: Int?
    package var dataPort: Int?
    package var controlPort: Int?
    /// Event channel.
    package var eventChannel: EventChannelState = .none
    /// Remote-control streams (type 130, the MRP tunnel) set up, and data channels the sender opened.
    package var remoteControlStreams = 0
    /// Session SETUPs with `isRemoteControlOnly` (not counted in `sessions`).
    package var remoteControlSessions = 0
    /// Remote-control SETUPs refused because the tunnel is off (`remoteControlTunnel` false).
    package var remoteControlRefused = 0
    package var dataChannelConnections = 0
    package var eventCommandsSent = 0
    package var eventRepliesReceived = 0
    /// Stream SETUP: RTP type (96 realtime), `ct` (1 PCM, 2 ALAC), `audioFormat`, `spf`.
    package var streamType: Int?
    package var compressionType: Int?
    package var audioFormat: Int?
    package var framesPerPacket: Int?
    /// What the sender had done when the first audio datagram arrived.
    package struct BeforeFirstAudio: Sendable, Equatable {
        /// Control connections (TCP) accepted.
        package var connections: Int
        /// Remote-control (MRP tunnel) SETUPs: sessions, type-130 streams and refused ones.
        package var remoteControlSetups: Int
    }
    package var beforeFirstAudio: BeforeFirstAudio?
    /// Packets that decrypted with `shk`, and those that failed (wrong key, tampered, too short).
    package var packetsDecrypted = 0
    package var decryptFailures = 0
    /// Datagrams on the data port that were not RTP audio at all.
    package var malformedPackets = 0
    /// Packets thrown away, and control requests left unanswered, because `noProgress` is set.
    package var packetsDiscarded = 0
    package var requestsUnanswered = 0
    /// `POST /feedback` keep-alives.
    package var feedbacks = 0
    package var reception = AudioReception()
    /// PTP timing: the clock followed, anchors, and each packet's play instant. (NTP timing:
    /// `ntp`, in the `AudioReception` both receivers keep.)
    package var ptp = PTPReception()

    package init() {}

    package subscript<T>(dynamicMember path: WritableKeyPath<AudioReception, T>) -> T {
        get { reception[keyPath: path] }
        set { reception[keyPath: path] = newValue }
    }

    /// The last completed pairing's mode.
    package var pairingMode: PairingMode? { pairings.last }

    package var description: String {
        var lines: [String] = []
        lines.append("connections: \(connections), sessions: \(self.sessions) (ended \(self.sessionsEnded))")
        lines.append("pairing: \(pairings.map(\.rawValue).joined(separator: ", "))\(pairingFailures.isEmpty ? "" : " (failures: \(pairingFailures.count))")")
        lines.append("encrypted requests: \(encryptedRequests), refused unauthenticated: \(refusedUnauthenticated)")
        lines.append("rtsp requests: \(self.requests.joined(separator: ", "))")
        if requestsUnanswered > 0 { lines.append("requests left unanswered: \(requestsUnanswered)") }
        lines.append("timing: \(timingProtocol ?? "-"), event channel: \(eventChannel.rawValue) (commands \(eventCommandsSent), replies \(eventRepliesReceived))")
        if remoteControlSessions + remoteControlStreams + remoteControlRefused > 0 {
            lines.append("remote control: sessions \(remoteControlSessions), streams \(remoteControlStreams), data channels \(dataChannelConnections), refused \(remoteControlRefused)")
        }
        if let b = beforeFirstAudio {
            lines.append("before the first audio packet: control connections \(b.connections), remote-control setups \(b.remoteControlSetups)")
        }
        lines.append("stream: type \(streamType.map(String.init) ?? "-"), ct \(compressionType.map(String.init) ?? "-"), codec \(self.codec ?? "-")")
        lines.append("packets received: \(self.packetsReceived) (\(self.audioBytesReceived) bytes), decrypted \(packetsDecrypted), decrypt failures \(decryptFailures), discarded \(packetsDiscarded)")
        lines.append("retransmit requests sent: \(self.retransmitRequestsSent) (\(self.packetsRequested) packets), responses \(self.retransmitResponsesReceived), recovered \(self.packetsRecovered), unrecovered \(self.unrecoveredPackets)")
        lines.append("sync packets: \(self.syncPacketsReceived), timing requests/replies: \(self.timingRequestsSent)/\(self.timingRepliesReceived), feedbacks: \(feedbacks)")
        lines.append("frames written: \(self.framesWritten) (silence \(self.silenceFramesWritten))")
        if timingProtocol == "PTP" || !ptp.sessionsRefused.isEmpty { lines.append("ptp: \(ptp.summary)") }
        if timingProtocol == "NTP" { lines.append("ntp: \(reception.ntpSummary)") }
        let m = self.metadata
        lines.append("metadata: title=\(m?.title ?? "-") artist=\(m?.artist ?? "-") album=\(m?.album ?? "-"), artwork \(self.artworkBytes) bytes")
        lines.append("volume: \(self.volume.map { "\($0) dB" } ?? "-")")
        if !self.wavFiles.isEmpty { lines.append("wav: \(self.wavFiles.joined(separator: ", "))") }
        for e in self.errors { lines.append("error: \(e)") }
        return lines.joined(separator: "\n")
    }
}

/// When a virtual receiver (AirPlay 1 speaker, or HomePod on an NTP-timed real-time stream) played
/// each packet: by the latest sync packet (frame `rtpTimeLessLatency` plays at its NTP time on the
/// sender's clock) and the sender's clock offset measured with the timing requests
/// (`AudioReception.senderClockOffset`); see `NTPPlacement`.
package struct NTPReception: Sendable, Equatable {
    /// Sync packets taken as the anchor.
    package var syncAnchors = 0
    /// Played packets: `masterTime` on the sender's NTP clock (ns since 1900), `localTime` on our
    /// CLOCK_MONOTONIC (ns).
    package var playInstants: [PTPReception.PlayInstant] = []
    /// Packets played before a sync packet and a timing reply made their instant known.
    package var packetsUnplaced = 0

    package init() {}
}

extension AudioReception {
    /// "sync anchors S, packets placed P (unplaced U), sender clock offset O ns (round trip R ns),
    /// first frame F at sender N ns": the NTP placement in one report line.
    package var ntpSummary: String {
        var parts = ["sync anchors \(ntp.syncAnchors)", "packets placed \(ntp.playInstants.count) (unplaced \(ntp.packetsUnplaced))",
                     "sender clock offset \(senderClockOffset.map { "\($0) ns" } ?? "-") (round trip \(senderClockRoundTrip.map { "\($0) ns" } ?? "-"))"]
        if let first = ntp.playInstants.first { parts.append("first frame \(first.rtpTime) at sender \(first.masterTime) ns") }
        return parts.joined(separator: ", ")
    }
}

/// Things that happen on a `VirtualHomePod`, in order.
package enum HomePodEvent: Sendable, Equatable {
    case request(String)
    case paired(HomePodReport.PairingMode)
    case eventChannel(HomePodReport.EventChannelState)
    /// The remote-control data channel (MRP tunnel, stream type 130) was opened (true) or closed.
    case dataChannel(open: Bool)
    /// A session ended (TEARDOWN or connection closed); its WAV file, if any, is complete.
    case sessionEnded(wavPath: String?, report: HomePodReport)
}
