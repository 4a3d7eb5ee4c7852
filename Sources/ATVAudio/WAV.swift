import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Writes a 16-bit PCM WAV file (default 44.1 kHz stereo, i.e. what `PCMPacket`s hold): a header, then
/// appended PCM. The RIFF and data sizes are rewritten about once per second of audio and on `close()`,
/// so a file cut short by a crash is still readable up to the last update.
/// A value type wrapping a file descriptor: don't use copies after `close()`.
package struct WAVWriter: Sendable {
    package let path: String
    package let sampleRate: Int
    package let channels: Int
    /// PCM bytes written so far.
    package private(set) var dataBytes: Int = 0
    private var fd: Int32
    private var bytesSinceHeader = 0

    /// Creates (or truncates) `path` and writes a header.
    package init(path: String, sampleRate: Int = PCMFormat.sampleRate, channels: Int = PCMFormat.channels) throws {
        self.path = path
        self.sampleRate = sampleRate
        self.channels = channels
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ATVError.badInput("\(path): cannot create WAV file: \(String(cString: strerror(errno)))")
        }
        try writeAll(Self.header(dataBytes: 0, sampleRate: sampleRate, channels: channels), at: nil)
    }

    /// The 44-byte canonical header for `dataBytes` of 16-bit PCM.
    package static func header(dataBytes: Int, sampleRate: Int = PCMFormat.sampleRate,
                              channels: Int = PCMFormat.channels) -> [UInt8] {
        var h: [UInt8] = []
        h.reserveCapacity(44)
        func u32(_ v: Int) { let x = UInt32(truncatingIfNeeded: v); h += [UInt8(x & 0xFF), UInt8((x >> 8) & 0xFF), UInt8((x >> 16) & 0xFF), UInt8(x >> 24)] }
        func u16(_ v: Int) { let x = UInt16(truncatingIfNeeded: v); h += [UInt8(x & 0xFF), UInt8(x >> 8)] }
        let dataSize = min(dataBytes, Int(UInt32.max) - 36)
        h += Array("RIFF".utf8); u32(36 + dataSize); h += Array("WAVE".utf8)
        h += Array("fmt ".utf8); u32(16); u16(1); u16(channels); u32(sampleRate)
        u32(sampleRate * channels * 2); u16(channels * 2); u16(16)
        h += Array("data".utf8); u32(dataSize)
        return h
    }

    package mutating func write(_ packet: PCMPacket) throws {
        try write(bytes: packet.bytes)
    }

    /// Appends raw little-endian 16-bit interleaved PCM.
    package mutating func write(bytes: [UInt8]) throws {
        guard fd >= 0 else { throw ATVError.invalidState("\(path): WAV writer is closed") }
        guard !bytes.isEmpty else { return }
        try writeAll(bytes, at: nil)
        dataBytes += bytes.count
        bytesSinceHeader += bytes.count
        if bytesSinceHeader >= sampleRate * channels * 2 {
            bytesSinceHeader = 0
            try writeAll(Self.header(dataBytes: dataBytes, sampleRate: sampleRate, channels: channels), at: 0)
        }
    }

    /// Rewrites the sizes and closes the file.
    package mutating func close() throws {
        guard fd >= 0 else { return }
        defer { _ = Glibc.close(fd); fd = -1 }
        try writeAll(Self.header(dataBytes: dataBytes, sampleRate: sampleRate, channels: channels), at: 0)
    }

    private func writeAll(_ bytes: [UInt8], at offset: Int?) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let p = raw.baseAddress! + done
                let n = offset.map { pwrite(fd, p, raw.count - done, off_t($0 + done)) } ?? Glibc.write(fd, p, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ATVError.badInput("\(path): write failed: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }
}

/// A parsed PCM WAV file (tests and tools): format fields and the raw bytes of the data chunk.
package struct WAVFile: Sendable, Equatable {
    package var sampleRate: Int
    package var channels: Int
    package var bitsPerSample: Int
    /// The audio format code (1 = integer PCM, 3 = float, 0xFFFE = extensible).
    package var formatTag: Int
    package var data: [UInt8]

    package var frames: Int { channels * bitsPerSample / 8 > 0 ? data.count / (channels * bitsPerSample / 8) : 0 }

    /// Parses RIFF/WAVE bytes; a data chunk size larger than the file (a stream cut short, or 0xFFFFFFFF)
    /// is clamped to what is there. Throws `ATVError.badInput` on anything that is not a WAV file.
    package init(bytes: [UInt8]) throws {
        func u32(_ o: Int) -> Int? {
            guard o >= 0, o + 4 <= bytes.count else { return nil }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= bytes.count else { return nil }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8
        }
        func tag(_ o: Int) -> String? {
            guard o >= 0, o + 4 <= bytes.count else { return nil }
            return String(decoding: bytes[o..<(o + 4)], as: UTF8.self)
        }
        guard tag(0) == "RIFF", tag(8) == "WAVE" else { throw ATVError.badInput("not a WAV file (no RIFF/WAVE header)") }
        var fmt: (tag: Int, channels: Int, rate: Int, bits: Int)? = nil
        var offset = 12
        while let id = tag(offset), let size = u32(offset + 4) {
            let body = offset + 8
            if id == "fmt " {
                guard let t = u16(body), let c = u16(body + 2), let r = u32(body + 4), let b = u16(body + 14) else {
                    throw ATVError.badInput("WAV file: truncated fmt chunk")
                }
                fmt = (t, c, r, b)
            } else if id == "data" {
                guard let f = fmt else { throw ATVError.badInput("WAV file: data chunk before fmt chunk") }
                let end = min(bytes.count, body + size)
                sampleRate = f.rate
                channels = f.channels
                bitsPerSample = f.bits
                formatTag = f.tag
                data = Array(bytes[body..<max(body, end)])
                return
            }
            offset = body + size + (size & 1)
        }
        throw ATVError.badInput("WAV file: no data chunk")
    }

    package init(path: String) throws {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ATVError.badInput("\(path): cannot read")
        }
        do { try self.init(bytes: [UInt8](d)) } catch let ATVError.badInput(msg) {
            throw ATVError.badInput("\(path): \(msg)")
        }
    }
}
