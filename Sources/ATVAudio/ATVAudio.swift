import ATVCore
import CFFmpeg

/// The sample format everything in swift-atv streams: 44.1 kHz, signed 16-bit little-endian,
/// interleaved stereo (4 bytes per frame).
public enum PCMFormat {
    package static let sampleRate = 44_100
    package static let channels = 2
    package static let bytesPerFrame = 4
    /// Frames per RAOP/AirPlay audio packet.
    public static let framesPerPacket = 352
}

/// A chunk of decoded audio: s16le interleaved stereo at 44.1 kHz.
public struct PCMPacket: Sendable, Equatable {
    /// s16le interleaved stereo; `bytes.count == frames * 4`.
    public var bytes: [UInt8]
    /// Number of frames; ≤ the decoder's framesPerPacket (only the last packet may be short).
    public var frames: Int

    public init(bytes: [UInt8], frames: Int) {
        self.bytes = bytes
        self.frames = frames
    }

    /// A packet built from whole frames of `bytes` (a trailing partial frame is dropped).
    public init(bytes: [UInt8]) {
        let frames = bytes.count / PCMFormat.bytesPerFrame
        self.bytes = bytes.count == frames * PCMFormat.bytesPerFrame ? bytes : Array(bytes.prefix(frames * PCMFormat.bytesPerFrame))
        self.frames = frames
    }

    /// `frames` frames of silence.
    public static func silence(frames: Int) -> PCMPacket {
        PCMPacket(bytes: [UInt8](repeating: 0, count: frames * PCMFormat.bytesPerFrame), frames: frames)
    }

    /// This packet padded with silence to `frames` frames (unchanged if already that long).
    public func padded(to frames: Int) -> PCMPacket {
        guard self.frames < frames else { return self }
        return PCMPacket(bytes: bytes + [UInt8](repeating: 0, count: (frames - self.frames) * PCMFormat.bytesPerFrame),
                         frames: frames)
    }
}

/// What an input contains, read from its container without decoding all of it.
public struct AudioInfo: Sendable, Equatable {
    /// The demuxer's short name, e.g. "mp3", "flac", "wav", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "s16le".
    public var formatName: String
    /// The audio codec's short name, e.g. "mp3", "flac", "pcm_s16le", "vorbis", "aac".
    public var codecName: String
    /// The input's own sample rate (before resampling to 44.1 kHz).
    public var sampleRate: Int
    /// The input's own channel count (before mixing to stereo).
    public var channels: Int
    /// Seconds; nil when unknown (e.g. most inputs read from a pipe).
    public var duration: Double?
    /// Tags (title/artist/album), `duration`, and artwork from an attached picture stream.
    public var metadata: MediaMetadata

    public init(formatName: String, codecName: String, sampleRate: Int, channels: Int, duration: Double?,
                metadata: MediaMetadata) {
        self.formatName = formatName
        self.codecName = codecName
        self.sampleRate = sampleRate
        self.channels = channels
        self.duration = duration
        self.metadata = metadata
    }
}

// MARK: - FFmpeg helpers shared by the decoder and the ALAC codecs

enum FF {
    /// FFmpeg logs nothing (once per process): a failure reaches the user as the one line its
    /// error makes (with `av_strerror`'s text), not as FFmpeg's own lines on stderr (a corrupt
    /// file made one per bad frame).
    static let quiet: Void = { av_log_set_level(AV_LOG_QUIET) }()

    /// `av_strerror` as a Swift string.
    static func errorString(_ code: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        av_strerror(code, &buf, buf.count)
        let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "error \(code)" : s
    }

    static func string(_ p: UnsafePointer<CChar>?) -> String? {
        guard let p else { return nil }
        return String(cString: p)
    }
}
