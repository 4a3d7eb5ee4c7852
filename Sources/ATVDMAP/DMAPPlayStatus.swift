import ATVCore

/// The fields of a `playstatusupdate` answer (`cmst` container).
package struct DMAPPlayStatus: Sendable, Equatable {
    /// The whole parsed answer.
    package var elements: [DMAPElement]

    package init(_ elements: [DMAPElement]) { self.elements = elements }

    package init(bytes: [UInt8]) throws(DMAPParseError) { self.init(try DMAPParser.parse(bytes)) }

    func field(_ tag: String) -> DMAPValue? { elements.first("cmst", tag) }

    /// `cmsr`: the revision to ask for next (long poll).
    package var revision: UInt64? { field("cmsr")?.uint }
    /// `caps`: 0 idle, 1 loading, 2 stopped, 3 paused, 4 playing, 5/6 seeking.
    package var playState: UInt64? { field("caps")?.uint }
    package var mediaKind: UInt64? { field("cmmk")?.uint }
    package var title: String? { field("cann")?.string }
    package var artist: String? { field("cana")?.string }
    package var album: String? { field("canl")?.string }
    package var genre: String? { field("cang")?.string }
    /// Milliseconds.
    package var totalMs: UInt64? { field("cast")?.uint }
    /// Milliseconds left.
    package var remainingMs: UInt64? { field("cant")?.uint }
    package var shuffleRaw: UInt64? { field("cash")?.uint }
    package var repeatRaw: UInt64? { field("carp")?.uint }
    /// `cavc`: volume can be changed (volume up/down work).
    package var volumeControllable: Bool? { field("cavc")?.bool }

    /// True when the tag is present inside `cmst`.
    package func has(_ tag: String) -> Bool { field(tag) != nil }

    /// iTunes media kind → media type (1 and 32770 unknown; video; music; TV). Kinds not in the
    /// table are reported as unknown (pyatv raises).
    package static func mediaType(kind: UInt64) -> MediaType {
        switch kind {
        case 3, 7, 11, 12, 13, 18, 32: .video
        case 2, 4, 10, 14, 17, 21, 36: .music
        case 8, 64: .tv
        default: .unknown
        }
    }

    /// `caps` → device state; values outside 0...6 are reported as idle (pyatv raises).
    package static func deviceState(_ caps: UInt64?) -> DeviceState {
        switch caps {
        case 1: .loading
        case 2: .stopped
        case 3: .paused
        case 4: .playing
        case 5, 6: .seeking
        default: .idle
        }
    }

    /// Milliseconds → whole seconds, rounding half to even as Python's `round`; 2³²−1 and above
    /// (a device's "unknown") → 0.
    package static func seconds(ms: UInt64) -> Int {
        if ms >= 0xFFFF_FFFF { return 0 }
        return Int((Double(ms) / 1000).rounded(.toNearestOrEven))
    }

    /// As pyatv builds `Playing`: media type from `cmmk` (missing: music if artist or album,
    /// else video; nothing playing: unknown), position = total − remaining (only when both are
    /// non-zero), shuffle off unless `cash` ≠ 0 (then songs), repeat from `carp` (default off).
    package var playing: Playing {
        let state = Self.deviceState(playState)
        let mediaType: MediaType
        if playState == nil || playState == 0 {
            mediaType = .unknown
        } else if let kind = mediaKind {
            mediaType = Self.mediaType(kind: kind)
        } else {
            mediaType = (artist != nil || album != nil) ? .music : .video
        }
        let total = totalMs.map { Self.seconds(ms: $0) }
        var position: Int?
        if let t = total, t != 0, let r = remainingMs.map({ Self.seconds(ms: $0) }), r != 0 { position = t - r }
        let shuffle: ShuffleState = (shuffleRaw ?? 0) == 0 ? .off : .songs
        let rep: RepeatState = repeatRaw.flatMap { Int(exactly: $0) }.flatMap { RepeatState(rawValue: $0) } ?? .off
        return Playing(mediaType: mediaType, deviceState: state, title: title, artist: artist, album: album,
                       genre: genre, totalTime: total, position: position, shuffle: shuffle, repeat: rep)
    }
}
