import ATVTestSupport
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

    static func tempDir() throws -> URL { try makeTempDir("atv-airplay") }

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

    /// Waits until `condition` holds (the shared poll with a deadline).
    static func eventually(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        try await ATVTestSupport.eventually(what, timeout: timeout, condition)
    }

    static let fast = AirPlayOptions(pollInterval: .milliseconds(200), startTimeout: .seconds(5), connectTimeout: .seconds(3),
                                     requestTimeout: .seconds(8), playAttempts: 3, retryPause: .milliseconds(100))
}

/// A child process with output to files (no pipe deadlocks).
final class Child: @unchecked Sendable {
    let process = Process()
    let outURL: URL
    let errURL: URL

    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, in dir: URL) throws {
        let tag = UUID().uuidString.prefix(8)
        outURL = dir.appendingPathComponent("proc-\(tag).out")
        errURL = dir.appendingPathComponent("proc-\(tag).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// Waits for exit; kills the process after `timeout` and reports that.
    func wait(timeout: Duration) async throws -> (status: Int32, timedOut: Bool) {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                process.terminate()
                try await Task.sleep(for: .milliseconds(300))
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
                return (process.terminationStatus, true)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        return (process.terminationStatus, false)
    }

    func describe() -> String { "--- stdout\n\(stdout)\n--- stderr (tail)\n\(stderr.suffix(3000))" }
}

extension Support {
    static var atvremote: String { packageRoot.appendingPathComponent(".venv-peers/bin/atvremote").path }

    static func requireAtvremote() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: atvremote) else {
            throw TestError("pyatv's atvremote not found at \(atvremote): run scripts/setup (it creates .venv-peers with pyatv 0.18.0)")
        }
        return atvremote
    }

    /// `atvremote --manual … --protocol airplay play_url=URL`. pyatv only offers play_url when the
    /// service's `features` has bit 0 or 49, and a manual service has no TXT unless given.
    static func atvremotePlayURL(_ url: String, port: Int, home: URL, features: String? = "0x5A7FFFF7,0xE") throws -> Child {
        var args = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                    "--id", "AA:BB:CC:DD:EE:01"]
        if let features { args += ["--service-properties", ";features=\(features)"] }
        args.append("play_url=\(url)")
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home.path
        return try Child(try requireAtvremote(), args, environment: env, in: home)
    }
}
