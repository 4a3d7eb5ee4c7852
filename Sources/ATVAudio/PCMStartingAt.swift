import ATVCore

/// A PCM source started `frames` frames in (`atv stream --start`, and a
/// seek in a file stream: the file opened again and started at the new position): the frames before are decoded
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
