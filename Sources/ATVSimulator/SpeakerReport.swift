import ATVCore

/// What a `VirtualSpeaker` received, cumulative over all sessions. The counts both receivers
/// keep (`AudioReception`: sessions, requests "METHOD uri", packets, retransmits, frames,
/// metadata, volume, ...) read as its own fields.
@dynamicMemberLookup
package struct SpeakerReport: AudioReceiverReport, Equatable, CustomStringConvertible {
    package var reception = AudioReception()
    /// UDP payload bytes received on the control port.
    package var controlBytesReceived = 0
    /// Seconds between consecutive audio packets as they arrived (the sender's pacing as seen
    /// from the receiver).
    package var arrivalIntervals = IntervalStats()
    var lastAudioArrival: ContinuousClock.Instant?

    package init() {}

    package subscript<T>(dynamicMember path: WritableKeyPath<AudioReception, T>) -> T {
        get { reception[keyPath: path] }
        set { reception[keyPath: path] = newValue }
    }

    /// Duplicates and packets that arrived after their slot had been played.
    package var packetsDiscarded: Int { reception.latePackets }

    package var description: String {
        var lines: [String] = []
        lines.append("sessions: \(self.sessions) (ended \(self.sessionsEnded))")
        lines.append("codec: \(self.codec ?? "-")")
        lines.append("rtsp requests: \(self.requests.map { $0.split(separator: " ").first.map(String.init) ?? $0 }.joined(separator: ", "))")
        lines.append("packets received: \(self.packetsReceived)")
        lines.append("retransmit requests sent: \(self.retransmitRequestsSent) (\(self.packetsRequested) packets)")
        lines.append("retransmit responses received: \(self.retransmitResponsesReceived)")
        lines.append("packets recovered: \(self.packetsRecovered)")
        lines.append("unrecovered packets: \(self.unrecoveredPackets) (\(self.silenceFramesWritten) silence frames)")
        lines.append("discarded packets: \(packetsDiscarded), decode errors: \(self.decodeErrors)")
        lines.append("sync packets: \(self.syncPacketsReceived), timing requests/replies: \(self.timingRequestsSent)/\(self.timingRepliesReceived)")
        lines.append("frames written: \(self.framesWritten)")
        lines.append("ntp: \(reception.ntpSummary)")
        let m = self.metadata
        lines.append("metadata: title=\(m?.title ?? "-") artist=\(m?.artist ?? "-") album=\(m?.album ?? "-")")
        lines.append("artwork: \(self.artworkBytes) bytes\(self.artworkType.map { " (\($0))" } ?? "")")
        lines.append("volume: \(self.volume.map { "\($0) dB" } ?? "-")")
        if let progress = self.progress { lines.append("progress: \(progress)") }
        if !self.wavFiles.isEmpty { lines.append("wav: \(self.wavFiles.joined(separator: ", "))") }
        for e in self.errors { lines.append("error: \(e)") }
        return lines.joined(separator: "\n")
    }
}

/// Things that happen on a `VirtualSpeaker`, in order.
package enum SpeakerEvent: Sendable, Equatable {
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
package struct IntervalStats: Sendable, Equatable {
    package private(set) var count = 0
    package private(set) var mean = 0.0
    private var m2 = 0.0
    package private(set) var min = Double.infinity
    package private(set) var max = 0.0
    package init() {}
    package mutating func add(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / Double(count)
        m2 += d * (x - mean)
        min = Swift.min(min, x)
        max = Swift.max(max, x)
    }
    package var standardDeviation: Double { count > 1 ? (m2 / Double(count - 1)).squareRoot() : 0 }
}
