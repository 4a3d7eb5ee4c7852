import Foundation
import Testing
@testable import ATVAirPlay

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

enum Support {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atv-airplay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A 16-bit stereo 44.1 kHz WAV of a quiet ramp, `seconds` long (FFmpeg probes its duration exactly).
    static func makeWAV(seconds: Double, named name: String = "media.wav", in dir: URL) throws -> URL {
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

    /// Waits until `condition` holds, polling every 20 ms.
    static func eventually(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline { throw TestError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static let fast = AirPlayOptions(pollInterval: .milliseconds(200), startTimeout: .seconds(5), connectTimeout: .seconds(3),
                                     requestTimeout: .seconds(8), playAttempts: 3, retryPause: .milliseconds(100))
}
