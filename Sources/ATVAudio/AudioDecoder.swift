import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Decodes a file, an http(s) URL, standard input or a file descriptor with FFmpeg into 44.1 kHz s16le
/// interleaved stereo, as `PCMPacket`s of `framesPerPacket` frames (only the last may be short).
///
/// Decoding runs on a dedicated thread (never on Swift's cooperative pool) that fills a bounded buffer
/// (384 packets, about 3 s of audio: the thread wakes about once per 1.5 s), so a slow consumer holds the decoder back. Iterate once; cancelling the iterating
/// task or dropping the iterator stops the thread and frees the FFmpeg state. An `AudioDecoder` that is
/// never iterated is stopped when released.
public final class AudioDecoder: AsyncSequence, Sendable {
    public typealias Element = PCMPacket

    /// Format, codec, input rate/channels, duration, tags and artwork.
    public let info: AudioInfo
    public let framesPerPacket: Int
    let pipeline: DecodePipeline

    private init(info: AudioInfo, framesPerPacket: Int, pipeline: DecodePipeline) {
        self.info = info
        self.framesPerPacket = framesPerPacket
        self.pipeline = pipeline
    }

    deinit {
        if !pipeline.claimedByIterator { pipeline.cancel() }
    }

    /// Opens `source` and decodes its first packet before returning, so a missing, non-audio, truncated or
    /// corrupt input fails here with `ATVError.badInput("<path>: <reason>")`. http(s) inputs time out
    /// after 10 s without data. `.stdin(rawFormat:)` with a format reads headerless PCM.
    public static func open(_ source: StreamSource, framesPerPacket: Int = PCMFormat.framesPerPacket)
        async throws -> AudioDecoder {
        try await open(spec: .from(source), framesPerPacket: framesPerPacket)
    }

    /// Reads a (possibly non-seekable) file descriptor such as a pipe; `rawFormat` for headerless PCM.
    /// The descriptor is not closed by the decoder.
    public static func open(fileDescriptor fd: Int32, rawFormat: RawPCMFormat? = nil, name: String? = nil,
                            framesPerPacket: Int = PCMFormat.framesPerPacket) async throws -> AudioDecoder {
        try await open(spec: .fileDescriptor(fd, display: name ?? "fd \(fd)", rawFormat: rawFormat),
                       framesPerPacket: framesPerPacket)
    }

    /// Reads a headerless raw PCM file.
    public static func open(rawPCMFile path: String, format: RawPCMFormat,
                            framesPerPacket: Int = PCMFormat.framesPerPacket) async throws -> AudioDecoder {
        try await open(spec: .location(path, display: path, isNetwork: false, rawFormat: format),
                       framesPerPacket: framesPerPacket)
    }

    static func open(spec: InputSpec, framesPerPacket: Int, ioTimeout: Double = 10,
                     bufferPackets: Int = 384) async throws -> AudioDecoder {
        guard framesPerPacket > 0 else { throw ATVError.invalidValue("framesPerPacket must be positive") }
        let pipeline = DecodePipeline(capacity: Swift.max(2, bufferPackets))
        let info = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<AudioInfo, Error>) in
                startThread(name: "atv-decode") {
                    pipeline.run(spec: spec, framesPerPacket: framesPerPacket, ioTimeout: ioTimeout, opened: cont)
                }
            }
        } onCancel: {
            pipeline.cancel()
        }
        return AudioDecoder(info: info, framesPerPacket: framesPerPacket, pipeline: pipeline)
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(token: pipeline.claim() ? IteratorToken(pipeline) : nil)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let token: IteratorToken?

        public mutating func next() async throws -> PCMPacket? {
            guard let token else {
                throw ATVError.invalidState("an AudioDecoder can be iterated only once")
            }
            return try await token.pipeline.next()
        }
    }

    /// Stops decoding and frees the FFmpeg state (also done when the iterator is dropped).
    public func cancel() { pipeline.cancel() }
}

/// Reads an input's format, tags, duration and artwork without decoding its audio.
/// Probing `.stdin` consumes what it reads; use `AudioDecoder.open(_:).info` for stdin instead.
package func probeAudio(_ source: StreamSource) async throws -> AudioInfo {
    try await probeAudio(spec: .from(source))
}

func probeAudio(spec: InputSpec, ioTimeout: Double = 10) async throws -> AudioInfo {
    let cancel = CancelFlag()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<AudioInfo, Error>) in
            startThread(name: "atv-probe") {
                do {
                    let input = try FFmpegInput(spec, cancel: cancel, ioTimeout: ioTimeout, openDecoder: false)
                    let info = input.info
                    input.close()
                    cont.resume(returning: info)
                } catch {
                    cont.resume(throwing: error)
                }
            }
        }
    } onCancel: {
        cancel.cancel()
    }
}

/// Cancels the pipeline when the (single) iterator goes away.
final class IteratorToken: Sendable {
    let pipeline: DecodePipeline
    init(_ pipeline: DecodePipeline) { self.pipeline = pipeline }
    deinit { pipeline.cancel() }
}

/// Bounded single-producer (decode thread) / single-consumer (async iterator) packet queue.
final class DecodePipeline: @unchecked Sendable {
    private let condition = ConditionMutex()
    let cancelFlag = CancelFlag()
    private let capacity: Int
    private var queue: [PCMPacket] = []
    private var head = 0
    private var finished = false
    private var failure: Error?
    private var cancelled = false
    private var waiter: CheckedContinuation<PCMPacket?, Error>?
    private var claimed = false
    /// For tests: packets the decode thread has produced, and whether it has exited (FFmpeg state freed).
    private var produced = 0
    private var exited = false

    init(capacity: Int) { self.capacity = capacity }

    var producedPackets: Int { condition.lock(); defer { condition.unlock() }; return produced }
    var threadExited: Bool { condition.lock(); defer { condition.unlock() }; return exited }
    var bufferCapacity: Int { capacity }

    var claimedByIterator: Bool { condition.lock(); defer { condition.unlock() }; return claimed }

    /// True for the first caller only.
    func claim() -> Bool {
        condition.lock(); defer { condition.unlock() }
        if claimed { return false }
        claimed = true
        return true
    }

    private var count: Int { queue.count - head }

    // MARK: producer (decode thread)

    func run(spec: InputSpec, framesPerPacket: Int, ioTimeout: Double,
             opened: CheckedContinuation<AudioInfo, Error>) {
        defer { condition.lock(); exited = true; condition.unlock() }
        let input: FFmpegInput
        do {
            input = try FFmpegInput(spec, cancel: cancelFlag, ioTimeout: ioTimeout)
            // Decode the first packet now so a truncated/corrupt input fails at open.
            guard let first = try input.nextPacket(frames: framesPerPacket) else {
                throw ATVError.badInput("\(spec.display): no audio could be decoded (truncated or corrupt file?)")
            }
            _ = push(first)
        } catch {
            opened.resume(throwing: error)
            finish(error: error)
            return
        }
        opened.resume(returning: input.info)
        do {
            while let packet = try input.nextPacket(frames: framesPerPacket) {
                guard push(packet) else { break }   // cancelled
            }
            input.close()
            finish(error: nil)
        } catch {
            input.close()
            finish(error: error)
        }
    }

    /// Blocks while the buffer is full; false when cancelled.
    private func push(_ packet: PCMPacket) -> Bool {
        condition.lock()
        if count >= capacity {
            // Wait until the consumer has drained half of the buffer (fewer wake-ups).
            while count > capacity / 2 && !cancelled { condition.wait() }
        }
        if cancelled { condition.unlock(); return false }
        produced += 1
        if let w = waiter {
            waiter = nil
            condition.unlock()
            w.resume(returning: packet)
            return true
        }
        if head > 0 && head >= capacity {
            queue.removeFirst(head)
            head = 0
        }
        queue.append(packet)
        condition.unlock()
        return true
    }

    private func finish(error: Error?) {
        condition.lock()
        finished = true
        if failure == nil, !cancelled { failure = error }
        let w = waiter
        waiter = nil
        let f = failure
        if w != nil { failure = nil }
        condition.unlock()
        if let w {
            if let f { w.resume(throwing: f) } else { w.resume(returning: nil) }
        }
    }

    // MARK: consumer

    func next() async throws -> PCMPacket? {
        if let ready = try takeReady() { return ready }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<PCMPacket?, Error>) in
                condition.lock()
                if count > 0 {
                    let p = pop()
                    condition.unlock()
                    cont.resume(returning: p)
                } else if cancelled {
                    condition.unlock()
                    cont.resume(throwing: CancellationError())
                } else if finished {
                    let f = failure
                    failure = nil
                    condition.unlock()
                    if let f { cont.resume(throwing: f) } else { cont.resume(returning: nil) }
                } else {
                    waiter = cont
                    condition.unlock()
                }
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// A packet if one is buffered (or the end/failure), without suspending; `nil` means "must wait".
    private func takeReady() throws -> PCMPacket?? {
        condition.lock()
        defer { condition.unlock() }
        if count > 0 { return .some(pop()) }
        if cancelled { throw CancellationError() }
        if finished {
            let f = failure
            failure = nil
            if let f { throw f }
            return .some(nil)
        }
        return nil
    }

    /// Caller holds the lock.
    private func pop() -> PCMPacket {
        let p = queue[head]
        head += 1
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
        if count <= capacity / 2 { condition.signal() }
        return p
    }

    func cancel() {
        cancelFlag.cancel()
        condition.lock()
        let alreadyDone = cancelled
        cancelled = true
        let w = waiter
        waiter = nil
        queue.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
        if !alreadyDone, let w { w.resume(throwing: CancellationError()) }
    }
}
