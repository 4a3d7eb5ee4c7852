import ATVAirPlay

/// The media timeline of the virtual Apple TV (sans-I/O: time is passed in, in seconds): the
/// position advances with the rate from the last change, clamped to the duration; reaching the
/// duration while playing is the end.
package struct PlaybackTimeline: Sendable, Equatable {
    package let url: String
    package let duration: Double
    package private(set) var rate: Double
    /// Position at `anchorTime`.
    private var anchorPosition: Double
    private var anchorTime: Double

    package init(url: String, duration: Double, start: Double, now: Double, rate: Double = 1) {
        self.url = url
        self.duration = max(0, duration)
        self.rate = rate
        self.anchorPosition = min(max(0, start), max(0, duration))
        self.anchorTime = now
    }

    package func position(at now: Double) -> Double {
        min(duration, max(0, anchorPosition + (now - anchorTime) * rate))
    }

    package func isEnded(at now: Double) -> Bool { rate > 0 && position(at: now) >= duration }

    package mutating func setRate(_ r: Double, at now: Double) {
        anchorPosition = position(at: now)
        anchorTime = now
        rate = max(0, r)
    }

    package mutating func seek(to p: Double, at now: Double) {
        anchorPosition = min(max(0, p), duration)
        anchorTime = now
    }

    /// What `/playback-info` answers while this is loaded.
    package func info(at now: Double) -> PlaybackInfo {
        PlaybackInfo(duration: duration, position: position(at: now), rate: rate, readyToPlay: true,
                     playbackBufferEmpty: false, playbackBufferFull: true, playbackLikelyToKeepUp: true)
    }
}
