// Streaming audio through the facade: the RAOP protocol's sender (ATVRAOP's `RAOPService`),
// set up on first use.
import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVRAOP

/// What an audio stream sent, from `FacadeStream.streamAudio`.
public struct AudioStreamReport: Sendable {
    /// The receiver, "address:port".
    public var receiver: String
    /// The AirPlay generation the stream used.
    public var airPlayVersion: AirPlayMajorVersion
    /// The sender's counters: codec, packets sent and retransmitted, source frames, timing.
    public var details: RAOPStreamReport
}

extension FacadeStream {
    /// Stream PCM packets (an opened `AudioDecoder`, or any 44.1 kHz s16 stereo source in
    /// 352-frame packets) to the device's audio receiver, with metadata from `tags` and
    /// `metadata` (the caller's win unless `overrideMissing`); returns when the stream has ended
    /// (played out, or stopped with `remoteControl.stop()`). Progress: `progress()`.
    public func streamAudio<S: AsyncSequence & Sendable>(_ packets: S, tags: MediaMetadata = MediaMetadata(), duration: Double? = nil,
                                                         metadata: MediaMetadata? = nil,
                                                         overrideMissing: Bool = false) async throws -> AudioStreamReport
        where S.Element == PCMPacket {
        try device.guardOpen()
        guard let raop = device.raop else { throw ATVError.noService(.raop) }
        try await device.setUp(.raop)
        let report = try await raop.stream(packets: packets, tags: tags, duration: duration, metadata: metadata,
                                           overrideMissing: overrideMissing)
        return AudioStreamReport(receiver: "\(device.config.address):\(raop.client.port)", airPlayVersion: raop.airPlayVersion,
                                 details: report)
    }
}

/// A PCM source started `frames` frames in (`atv stream --start`): the frames before are decoded
/// and dropped, a packet that straddles the position is cut, so the first packet out holds the
/// frame at the position. Works for every source, seekable or not (a pipe, a stream).
public struct PCMStartingAt<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == PCMPacket {
    /// The same packets as the base sequence, from the start position on.
    public typealias Element = PCMPacket
    let base: Base
    let frames: Int

    /// Starts `frames` frames (at 44.1 kHz) into `base`; a negative count starts at the beginning.
    public init(_ base: Base, frames: Int) {
        self.base = base
        self.frames = Swift.max(0, frames)
    }

    /// `seconds` into `base` at 44.1 kHz.
    public init(_ base: Base, seconds: Double) {
        self.init(base, frames: Int((Swift.max(0, seconds) * Double(PCMFormat.sampleRate)).rounded()))
    }

    /// Reads the base sequence, dropping the frames before the start position.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var toSkip: Int

        /// The next packet at or after the start position (the first one cut to start exactly
        /// there), or nil at the end of the base sequence.
        public mutating func next() async throws -> PCMPacket? {
            while let packet = try await base.next() {
                guard toSkip > 0 else { return packet }
                let count = Swift.min(packet.frames, packet.bytes.count / PCMFormat.bytesPerFrame)
                if count <= toSkip {
                    toSkip -= count
                    continue
                }
                let start = toSkip * PCMFormat.bytesPerFrame
                toSkip = 0
                return PCMPacket(bytes: Array(packet.bytes[start..<(count * PCMFormat.bytesPerFrame)]))
            }
            return nil
        }
    }

    /// An iterator that skips to the start position on its first `next()`.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), toSkip: frames)
    }
}

/// "90", "1:30", "1:02:03.5" as seconds; nil for anything else (`atv stream --start`).
public func parseStartPosition(_ text: String) -> Double? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard (1...3).contains(parts.count) else { return nil }
    var seconds = 0.0
    for (i, part) in parts.enumerated() {
        let last = i == parts.count - 1
        // Hours and minutes whole; the seconds may have a fraction; minutes and seconds below 60.
        guard let v = last ? Double(part) : Int(part).map(Double.init), v >= 0, v.isFinite, i == 0 || v < 60 else { return nil }
        seconds = seconds * 60 + v
    }
    return seconds
}
