import ATVCore

/// Follows a URL playback from `/playback-info` polls (sans-I/O): before the device reports a
/// `duration` it is loading; a `duration` means playing; once started, an answer without
/// `duration` (or a position held at the end with rate 0) means it ended. An `error` in the
/// answer, or never starting within `startPolls` polls, is a failure.
package struct PlaybackTracker: Sendable, Equatable {
    package enum Phase: Sendable, Equatable { case loading, playing, ended }

    package enum Event: Sendable, Equatable {
        /// Still loading (nothing reported yet).
        case loading
        /// Playing or paused; the info has duration and position.
        case progress(PlaybackInfo)
        case ended
        case failed(ATVError)
    }

    package private(set) var phase: Phase = .loading
    package private(set) var polls = 0
    package private(set) var last: PlaybackInfo?
    /// Polls without `duration` tolerated before the start.
    package let startPolls: Int
    private var loadingPolls = 0
    private var heldAtEnd = 0

    package init(startPolls: Int = 20) {
        self.startPolls = max(1, startPolls)
    }

    package mutating func observe(_ info: PlaybackInfo) -> Event {
        polls += 1
        if phase == .ended { return .ended }
        if let e = info.error {
            phase = .ended
            let what = e.message.map { ": \($0)" } ?? ""
            return .failed(.playbackError("the Apple TV could not play it: error \(e.code) (\(e.domain))\(what)"))
        }
        guard let duration = info.duration else {
            if phase == .playing {
                phase = .ended
                return .ended
            }
            loadingPolls += 1
            if loadingPolls >= startPolls {
                phase = .ended
                return .failed(.playbackError("the Apple TV accepted the URL but did not start playing it (no duration after \(loadingPolls) polls of /playback-info)"))
            }
            return .loading
        }
        phase = .playing
        last = info
        let position = info.position ?? 0
        if duration > 0, position >= duration - 0.05, (info.rate ?? 0) == 0 {
            heldAtEnd += 1
            if heldAtEnd >= 2 {
                phase = .ended
                return .ended
            }
        } else {
            heldAtEnd = 0
        }
        return .progress(info)
    }
}
