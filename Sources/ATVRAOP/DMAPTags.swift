import ATVAirPlayCore
import ATVCore
import ATVHTTP

/// The DMAP subset RAOP uses for track metadata (`application/x-dmap-tagged`):
/// `mlit { minm (title), asal (album), asar (artist) }`.
public struct RAOPTrackInfo: Sendable, Equatable {
    public var title: String?
    public var artist: String?
    public var album: String?

    public init(title: String? = nil, artist: String? = nil, album: String? = nil) {
        self.title = title
        self.artist = artist
        self.album = album
    }

    public init(_ metadata: MediaMetadata) {
        self.init(title: metadata.title, artist: metadata.artist, album: metadata.album)
    }

    /// `mlit` container with `minm`, `asal`, `asar` (absent fields are left out).
    public var dmapBytes: [UInt8] {
        var inner: [UInt8] = []
        if let title { inner += DMAP.tag("minm", Array(title.utf8)) }
        if let album { inner += DMAP.tag("asal", Array(album.utf8)) }
        if let artist { inner += DMAP.tag("asar", Array(artist.utf8)) }
        return DMAP.tag("mlit", inner)
    }

    /// Decodes an `mlit` container (or a bare list of tags); unknown tags are ignored.
    public init(dmap bytes: [UInt8]) throws {
        var items = try DMAP.parse(bytes)
        if items.count == 1, items[0].tag == "mlit" { items = try DMAP.parse(items[0].value) }
        for item in items {
            let text = String(decoding: item.value, as: UTF8.self)
            switch item.tag {
            case "minm": title = text
            case "asal": album = text
            case "asar": artist = text
            default: break
            }
        }
    }
}

/// Minimal DMAP tag codec: 4-byte code ‖ u32 BE length ‖ value.
public enum DMAP {
    public struct Item: Sendable, Equatable {
        public var tag: String
        public var value: [UInt8]
    }

    public static func tag(_ code: String, _ value: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + value.count)
        var code4 = Array(code.utf8.prefix(4))
        while code4.count < 4 { code4.append(0x20) }
        w.append(code4)
        w.u32(UInt32(truncatingIfNeeded: value.count))
        w.append(value)
        return w.bytes
    }

    /// Splits a byte string into consecutive tags (one level). Throws on truncation.
    public static func parse(_ bytes: [UInt8]) throws -> [Item] {
        var items: [Item] = []
        var i = 0
        let r = ByteReader(bytes)
        while i < bytes.count {
            guard i + 8 <= bytes.count else { throw ATVError.protocolError("truncated DMAP tag header") }
            let length = Int(try r.u32(i + 4))
            guard length <= bytes.count - i - 8 else { throw ATVError.protocolError("DMAP tag length \(length) exceeds the data") }
            let code = String(decoding: bytes[i..<(i + 4)], as: UTF8.self)
            items.append(Item(tag: code, value: Array(bytes[(i + 8)..<(i + 8 + length)])))
            i += 8 + length
        }
        return items
    }
}

/// The `progress: start/now/end` parameter (RTP timestamps).
public struct RAOPProgress: Sendable, Equatable {
    public var start: UInt32
    public var current: UInt32
    public var end: UInt32

    public init(start: UInt32, current: UInt32, end: UInt32) {
        self.start = start
        self.current = current
        self.end = end
    }

    /// `start/now/end`.
    public var value: String { "\(start)/\(current)/\(end)" }
    /// The `text/parameters` body: `progress: start/now/end\r\n`.
    public var parameterBody: String { "progress: \(value)\r\n" }

    /// Parses `start/now/end` (with or without the `progress:` prefix).
    public init(parsing text: String) throws {
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
    public func seconds(sampleRate: Int = 44_100) -> (position: Double, duration: Double) {
        let rate = Double(max(sampleRate, 1))
        return (Double(current &- start) / rate, Double(end &- start) / rate)
    }
}
