import ATVAirPlayCore
import ATVCore
import ATVHTTP

/// The DMAP subset RAOP uses for track metadata (`application/x-dmap-tagged`):
/// `mlit { minm (title), asal (album), asar (artist) }`.
package struct RAOPTrackInfo: Sendable, Equatable {
    package var title: String?
    package var artist: String?
    package var album: String?

    package init(title: String? = nil, artist: String? = nil, album: String? = nil) {
        self.title = title
        self.artist = artist
        self.album = album
    }

    package init(_ metadata: MediaMetadata) {
        self.init(title: metadata.title, artist: metadata.artist, album: metadata.album)
    }

    /// `mlit` container with `minm`, `asal`, `asar` (absent fields are left out), written by
    /// ATVCore's DMAP codec.
    package var dmapBytes: [UInt8] {
        var inner: [DMAPElement] = []
        if let title { inner.append(.string("minm", title)) }
        if let album { inner.append(.string("asal", album)) }
        if let artist { inner.append(.string("asar", artist)) }
        return DMAPSerializer.serialize(.container("mlit", inner))
    }

    /// Decodes an `mlit` container (or a bare list of tags); unknown tags are ignored. Malformed
    /// DMAP is `ATVError.protocolError`.
    package init(dmap bytes: [UInt8]) throws(ATVError) {
        var items: [DMAPElement]
        do { items = try DMAPParser.parse(bytes) } catch {
            throw ATVError.protocolError("malformed DMAP metadata: \(error)")
        }
        if items.count == 1, items[0].tag == "mlit", let inner = items[0].value.container { items = inner }
        for item in items {
            switch item.tag {
            case "minm": title = item.value.string
            case "asal": album = item.value.string
            case "asar": artist = item.value.string
            default: break
            }
        }
    }
}

/// The `progress: start/now/end` parameter (RTP timestamps).
package struct RAOPProgress: Sendable, Equatable {
    package var start: UInt32
    package var current: UInt32
    package var end: UInt32

    package init(start: UInt32, current: UInt32, end: UInt32) {
        self.start = start
        self.current = current
        self.end = end
    }

    /// `start/now/end`.
    package var value: String { "\(start)/\(current)/\(end)" }
    /// The `text/parameters` body: `progress: start/now/end\r\n`.
    package var parameterBody: String { "progress: \(value)\r\n" }

    /// Parses `start/now/end` (with or without the `progress:` prefix).
    package init(parsing text: String) throws {
        var s = text.trimmingSpaces
        if s.lowercased().hasPrefix("progress:") { s = String(s.dropFirst("progress:".count)).trimmingSpaces }
        let parts = s.split(separator: "/")
        guard parts.count == 3, let a = UInt32(parts[0]), let b = UInt32(parts[1]), let c = UInt32(parts[2]) else {
            throw ATVError.protocolError("malformed progress \"\(text.prefix(60))\"")
        }
        start = a
        current = b
        end = c
    }

    /// Elapsed and total seconds at `sampleRate` (RTP wrap-aware).
    package func seconds(sampleRate: Int = 44_100) -> (position: Double, duration: Double) {
        let rate = Double(max(sampleRate, 1))
        return (Double(current &- start) / rate, Double(end &- start) / rate)
    }
}
