import Foundation

/// The PCM payload of a 16-bit WAV file (its data chunk).
public func wavPCM(_ path: String) throws -> [UInt8] {
    let b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    var i = 12
    while i + 8 <= b.count {
        let id = String(decoding: b[i..<(i + 4)], as: UTF8.self)
        let size = Int(b[i + 4]) | Int(b[i + 5]) << 8 | Int(b[i + 6]) << 16 | Int(b[i + 7]) << 24
        if id == "data" { return Array(b[(i + 8)..<min(b.count, i + 8 + size)]) }
        i += 8 + size + (size & 1)
    }
    throw TestFailure("\(path) has no data chunk")
}

/// Where `needle` starts in `haystack` (frame-aligned), or nil.
public func findPCM(_ needle: ArraySlice<UInt8>, in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    var i = 0
    while i + needle.count <= haystack.count {
        if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        i += 4
    }
    return nil
}

/// s16le 44.1 kHz stereo PCM of a file, decoded by the ffmpeg CLI (an independent decoder).
public func referencePCM(_ path: String) async throws -> [UInt8] {
    let dir = try makeTempDir("atv-ref")
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("ref.raw").path
    let r = try await run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
                                              "-f", "s16le", "-ar", "44100", "-ac", "2", "-y", out])
    guard r.status == 0 else { throw TestFailure("ffmpeg failed: \(r.stderr)") }
    return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
}

/// A 16-bit stereo 44.1 kHz WAV of a quiet ramp, `seconds` long (FFmpeg probes its duration exactly).
public func makeWAV(seconds: Double, named name: String = "media.wav", in dir: URL) throws -> URL {
    let frames = Int(seconds * 44100)
    let dataSize = frames * 4
    var b: [UInt8] = []
    func u32(_ v: Int) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
    func u16(_ v: Int) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    b += Array("RIFF".utf8); u32(36 + dataSize); b += Array("WAVE".utf8)
    b += Array("fmt ".utf8); u32(16); u16(1); u16(2); u32(44100); u32(44100 * 4); u16(4); u16(16)
    b += Array("data".utf8); u32(dataSize)
    b.reserveCapacity(b.count + dataSize)
    for f in 0..<frames { let s = (f % 256) - 128; u16(s & 0xFFFF); u16(s & 0xFFFF) }
    let url = dir.appendingPathComponent(name)
    try Data(b).write(to: url)
    return url
}

