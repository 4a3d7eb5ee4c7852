import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Crypto

/// What is playing now.
public struct Playing: Sendable, Equatable, Codable {
    public var mediaType: MediaType
    public var deviceState: DeviceState
    public var title: String?
    public var artist: String?
    public var album: String?
    public var genre: String?
    /// Seconds.
    public var totalTime: Int?
    /// Seconds, clamped to 0...totalTime.
    public var position: Int? {
        didSet { position = Playing.clamp(position, totalTime) }
    }
    public var shuffle: ShuffleState?
    public var `repeat`: RepeatState?
    public var seriesName: String?
    public var seasonNumber: Int?
    public var episodeNumber: Int?
    public var contentIdentifier: String?
    public var iTunesStoreIdentifier: Int?
    /// Explicit content hash (MRP: content item identifier); nil → derived, see `hash`.
    public var explicitHash: String?

    public init(mediaType: MediaType = .unknown, deviceState: DeviceState = .idle, title: String? = nil,
                artist: String? = nil, album: String? = nil, genre: String? = nil, totalTime: Int? = nil,
                position: Int? = nil, shuffle: ShuffleState? = nil, repeat: RepeatState? = nil,
                seriesName: String? = nil, seasonNumber: Int? = nil, episodeNumber: Int? = nil,
                contentIdentifier: String? = nil, iTunesStoreIdentifier: Int? = nil, hash: String? = nil) {
        self.mediaType = mediaType
        self.deviceState = deviceState
        self.title = title
        self.artist = artist
        self.album = album
        self.genre = genre
        self.totalTime = totalTime
        self.position = Playing.clamp(position, totalTime)
        self.shuffle = shuffle
        self.repeat = `repeat`
        self.seriesName = seriesName
        self.seasonNumber = seasonNumber
        self.episodeNumber = episodeNumber
        self.contentIdentifier = contentIdentifier
        self.iTunesStoreIdentifier = iTunesStoreIdentifier
        self.explicitHash = hash
    }

    static func clamp(_ position: Int?, _ total: Int?) -> Int? {
        guard var p = position else { return nil }
        p = max(0, p)
        if let t = total { p = min(p, t) }
        return p
    }

    /// A stable identifier of the item: the explicit hash, else SHA-256 of title, artist, album
    /// and total time, exactly as pyatv computes it (missing values spelled "None").
    public var hash: String {
        if let h = explicitHash { return h }
        func s(_ v: String?) -> String { v ?? "None" }
        let text = s(title) + s(artist) + s(album) + (totalTime.map(String.init) ?? "None")
        return SHA256.hash(data: Array(text.utf8)).map { String(cFormat: "%02x", $0) }.joined()
    }
}

/// Artwork bytes with their type and size.
public struct ArtworkInfo: Sendable, Equatable {
    public var bytes: [UInt8]
    public var mimeType: String
    public var width: Int
    public var height: Int
    public init(bytes: [UInt8], mimeType: String, width: Int, height: Int) {
        self.bytes = bytes
        self.mimeType = mimeType
        self.width = width
        self.height = height
    }
}

public struct App: Sendable, Equatable, Codable {
    public var name: String?
    public var identifier: String
    public init(name: String?, identifier: String) {
        self.name = name
        self.identifier = identifier
    }
}

public struct UserAccount: Sendable, Equatable, Codable {
    public var name: String
    public var identifier: String
    public init(name: String, identifier: String) {
        self.name = name
        self.identifier = identifier
    }
}

public struct OutputDevice: Sendable, Equatable, Codable {
    public var identifier: String
    public var name: String?
    public var volume: Double
    public init(identifier: String, name: String? = nil, volume: Double = 0) {
        self.identifier = identifier
        self.name = name
        self.volume = volume
    }
}

/// Metadata a sender attaches to a stream (overrides what the file's tags say).
public struct MediaMetadata: Sendable, Equatable {
    public var title: String?
    public var artist: String?
    public var album: String?
    /// JPEG or PNG bytes.
    public var artwork: [UInt8]?
    /// Seconds.
    public var duration: Double?
    public init(title: String? = nil, artist: String? = nil, album: String? = nil, artwork: [UInt8]? = nil,
                duration: Double? = nil) {
        self.title = title
        self.artist = artist
        self.album = album
        self.artwork = artwork
        self.duration = duration
    }

    /// Fields set here win; missing ones come from `other`.
    public func filling(from other: MediaMetadata) -> MediaMetadata {
        MediaMetadata(title: title ?? other.title, artist: artist ?? other.artist, album: album ?? other.album,
                      artwork: artwork ?? other.artwork, duration: duration ?? other.duration)
    }
}
