import ATVCore

/// What a `VirtualSpeaker` received, cumulative over all sessions.
public struct SpeakerReport: Sendable, Equatable, CustomStringConvertible {
    /// RTSP connections that sent ANNOUNCE or SETUP.
    public var sessions = 0
    /// Sessions that ended (TEARDOWN or connection closed).
    public var sessionsEnded = 0
    /// Codec of the last ANNOUNCE ("L16" or "AppleLossless"), with its format.
    public var codec: String?
    /// Every RTSP request line seen, in order ("GET /info", "ANNOUNCE", ...).
    public var requests: [String] = []
    /// Audio packets received on the audio port (duplicates included).
    public var packetsReceived = 0
    /// When the first audio packet of the latest session arrived.
    public var firstAudioPacketAt: ContinuousClock.Instant?
    /// UDP payload bytes received on the audio and control ports, and RTSP bytes (requests).
    public var audioBytesReceived = 0
    public var controlBytesReceived = 0
    public var rtspBytesReceived = 0
    /// Seconds between consecutive audio packets as they arrived (the sender's pacing as seen
    /// from the receiver).
    public var arrivalIntervals = IntervalStats()
    var lastAudioArrival: ContinuousClock.Instant?
    /// Retransmit requests sent to the sender's control port, and packets asked for in total.
    public var retransmitRequestsSent = 0
    public var packetsRequested = 0
    /// Retransmit responses (0x56) received on the control port.
    public var retransmitResponsesReceived = 0
    /// Packets that were missing and then arrived (by retransmission or late) in time to be played.
    public var packetsRecovered = 0
    /// Packets never received: silence was written for them.
    public var unrecoveredPackets = 0
    /// Duplicates and packets that arrived after their slot had been played.
    public var packetsDiscarded = 0
    /// Packets that could not be decoded (silence written instead).
    public var decodeErrors = 0
    /// Sync packets (0x54) received on the control port.
    public var syncPacketsReceived = 0
    /// Timing requests sent to the sender, replies received.
    public var timingRequestsSent = 0
    public var timingRepliesReceived = 0
    /// PCM frames (44.1 kHz stereo s16) written to the WAV file(s), silence included.
    public var framesWritten = 0
    /// Silence frames written for lost packets.
    public var silenceFramesWritten = 0
    /// Last text metadata (DMAP `mlit`) received.
    public var metadata: MediaMetadata?
    /// Bytes of the last artwork (`image/*`) received, and its content type.
    public var artworkBytes = 0
    public var artworkType: String?
    /// Last volume in dB (`volume: -20.1`).
    public var volume: Double?
    /// Last `progress: start/now/end`.
    public var progress: String?
    /// WAV files written, one per session.
    public var wavFiles: [String] = []
    /// Problems on the speaker's side (e.g. the WAV file could not be written).
    public var errors: [String] = []

    public init() {}

    public var description: String {
        var lines: [String] = []
        lines.append("sessions: \(sessions) (ended \(sessionsEnded))")
        lines.append("codec: \(codec ?? "-")")
        lines.append("rtsp requests: \(requests.map { $0.split(separator: " ").first.map(String.init) ?? $0 }.joined(separator: ", "))")
        lines.append("packets received: \(packetsReceived)")
        lines.append("retransmit requests sent: \(retransmitRequestsSent) (\(packetsRequested) packets)")
        lines.append("retransmit responses received: \(retransmitResponsesReceived)")
        lines.append("packets recovered: \(packetsRecovered)")
        lines.append("unrecovered packets: \(unrecoveredPackets) (\(silenceFramesWritten) silence frames)")
        lines.append("discarded packets: \(packetsDiscarded), decode errors: \(decodeErrors)")
        lines.append("sync packets: \(syncPacketsReceived), timing requests/replies: \(timingRequestsSent)/\(timingRepliesReceived)")
        lines.append("frames written: \(framesWritten)")
        let m = metadata
        lines.append("metadata: title=\(m?.title ?? "-") artist=\(m?.artist ?? "-") album=\(m?.album ?? "-")")
        lines.append("artwork: \(artworkBytes) bytes\(artworkType.map { " (\($0))" } ?? "")")
        lines.append("volume: \(volume.map { "\($0) dB" } ?? "-")")
        if let progress { lines.append("progress: \(progress)") }
        if !wavFiles.isEmpty { lines.append("wav: \(wavFiles.joined(separator: ", "))") }
        for e in errors { lines.append("error: \(e)") }
        return lines.joined(separator: "\n")
    }
}

/// Things that happen on a `VirtualSpeaker`, in order.
public enum SpeakerEvent: Sendable, Equatable {
    /// An RTSP request arrived ("METHOD uri").
    case request(String)
    /// ANNOUNCE accepted: a stream with this codec description will follow.
    case announced(codec: String)
    case volume(Double)
    case metadata(MediaMetadata)
    case artwork(type: String, bytes: Int)
    case progress(String)
    /// A session ended (TEARDOWN or connection closed); its WAV file, if any, is complete.
    case sessionEnded(wavPath: String?, report: SpeakerReport)
}

/// Running mean and standard deviation (Welford), in seconds.
public struct IntervalStats: Sendable, Equatable {
    public private(set) var count = 0
    public private(set) var mean = 0.0
    private var m2 = 0.0
    public private(set) var min = Double.infinity
    public private(set) var max = 0.0
    public init() {}
    public mutating func add(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / Double(count)
        m2 += d * (x - mean)
        min = Swift.min(min, x)
        max = Swift.max(max, x)
    }
    public var standardDeviation: Double { count > 1 ? (m2 / Double(count - 1)).squareRoot() : 0 }
}
