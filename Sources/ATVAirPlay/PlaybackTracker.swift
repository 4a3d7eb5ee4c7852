import ATVCore

/// Follows a URL playback from `/playback-info` polls (sans-I/O): before the device reports a
/// `duration` it is loading; a `duration` means playing; once started, an answer without
/// `duration` (or a position held at the end with rate 0) means it ended. An `error` in the
/// answer, or never starting within `startPolls` polls, is a failure.
public struct PlaybackTracker: Sendable, Equatable {
    public enum Phase: Sendable, Equatable { case loading, playing, ended }

    public enum Event: Sendable, Equatable {
        /// Still loading (nothing reported yet).
        case loading
        /// Playing or paused; the info has duration and position.
        case progress(PlaybackInfo)
        case ended
        case failed(ATVError)
    }

    public private(set) var phase: Phase = .loading
    public private(set) var polls = 0
    public private(set) var last: PlaybackInfo?
    /// Polls without `duration` tolerated before the start.
    public let startPolls: Int
    private var loadingPolls = 0
    private var heldAtEnd = 0

    public init(startPolls: Int = 20) {
        self.startPolls = max(1, startPolls)
    }

    public mutating func observe(_ info: PlaybackInfo) -> Event {
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
