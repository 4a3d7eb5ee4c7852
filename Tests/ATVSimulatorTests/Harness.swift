import ATVTestSupport
import Foundation
import Testing

/// Helpers for end-to-end tests against real peers (ffmpeg CLI, pyatv's atvremote).
enum Harness {
    /// The package root (three levels above this file).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var atvremote: String { packageRoot.appendingPathComponent(".venv-peers/bin/atvremote").path }

    static func requireAtvremote() throws -> String {
        let path = atvremote
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("pyatv's atvremote not found at \(path): run scripts/setup (it creates .venv-peers with pyatv 0.18.0)")
        }
        return path
    }

    static func makeTempDir() throws -> URL { try ATVTestSupport.makeTempDir("atv-sim") }

    static func findExecutable(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw HarnessError("\(name) not found on PATH: run scripts/setup")
    }

    struct Result {
        var status: Int32
        var timedOut: Bool
        var stdout: String
        var stderr: String
    }

    /// Runs a process with output to files (no pipe deadlocks), killing it after `timeout`.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    in dir: URL, timeout: Duration) async throws -> Result {
        let tag = UUID().uuidString.prefix(8)
        let outURL = dir.appendingPathComponent("proc-\(tag).out")
        let errURL = dir.appendingPathComponent("proc-\(tag).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer { try? outHandle.close(); try? errHandle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                timedOut = true
                process.terminate()
                try await Task.sleep(for: .milliseconds(500))
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, timedOut: timedOut, stdout: out, stderr: err)
    }

    /// `ffmpeg -y -hide_banner -loglevel error <args>`; throws with ffmpeg's message on failure.
    static func ffmpeg(_ args: [String], in dir: URL) async throws {
        let r = try await run(try findExecutable("ffmpeg"), ["-y", "-hide_banner", "-loglevel", "error"] + args,
                              in: dir, timeout: .seconds(60))
        guard r.status == 0, !r.timedOut else { throw HarnessError("ffmpeg \(args.joined(separator: " ")) failed: \(r.stderr)") }
    }

    /// Makes a stereo 44.1 kHz 16-bit fixture: a sine on the left, seeded noise on the right, so
    /// both channels and every bit matter. `ext` picks the container ("wav" or "flac").
    static func makeFixture(seconds: Double, ext: String, metadata: [String: String] = [:], in dir: URL) async throws -> URL {
        let url = dir.appendingPathComponent("fixture.\(ext)")
        var args = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=\(seconds)",
                    "-f", "lavfi", "-i", "anoisesrc=d=\(seconds):c=pink:a=0.25:r=44100:seed=7",
                    "-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo[a]", "-map", "[a]",
                    "-ar", "44100", "-ac", "2", "-sample_fmt", "s16"]
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { args += ["-metadata", "\(k)=\(v)"] }
        if ext == "wav" { args += ["-c:a", "pcm_s16le"] }
        args.append(url.path)
        try await ffmpeg(args, in: dir)
        return url
    }

    /// The file decoded by ffmpeg to s16le stereo 44.1 kHz.
    static func decodePCM(_ url: URL, in dir: URL) async throws -> [UInt8] {
        let raw = dir.appendingPathComponent("\(url.lastPathComponent).s16le")
        try await ffmpeg(["-i", url.path, "-f", "s16le", "-ac", "2", "-ar", "44100", raw.path], in: dir)
        return [UInt8](try Data(contentsOf: raw))
    }

    /// The PCM of the `data` chunk of a WAV file.
    static func wavPCM(_ url: URL) throws -> [UInt8] {
        let bytes = [UInt8](try Data(contentsOf: url))
        var i = 12
        while i + 8 <= bytes.count {
            let id = String(decoding: bytes[i..<i + 4], as: UTF8.self)
            let size = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
            if id == "data" { return Array(bytes[(i + 8)..<min(bytes.count, i + 8 + size)]) }
            i += 8 + size + (size & 1)
        }
        throw HarnessError("no data chunk in \(url.path)")
    }

    /// Index of the first frame (4 bytes) that is not all zero.
    static func firstNonSilentFrame(_ pcm: [UInt8]) -> Int? {
        var f = 0
        while (f + 1) * 4 <= pcm.count {
            if pcm[f * 4] != 0 || pcm[f * 4 + 1] != 0 || pcm[f * 4 + 2] != 0 || pcm[f * 4 + 3] != 0 { return f }
            f += 1
        }
        return nil
    }

    struct Comparison {
        var offsetFrames: Int
        var sourceFrames: Int
        var capturedFrames: Int
        var firstMismatchFrame: Int?
        var trailingNonZeroFrames: Int
    }

    /// Aligns `captured` on `source` by their first non-silent frames and compares the whole source.
    static func compare(source: [UInt8], captured: [UInt8]) throws -> Comparison {
        guard let s0 = firstNonSilentFrame(source) else { throw HarnessError("source is silent") }
        guard let c0 = firstNonSilentFrame(captured) else { throw HarnessError("capture is silent") }
        let offset = c0 - s0
        let sourceFrames = source.count / 4
        let capturedFrames = captured.count / 4
        var mismatch: Int?
        for f in 0..<sourceFrames {
            let c = f + offset
            guard c >= 0, (c + 1) * 4 <= captured.count else { mismatch = f; break }
            if source[(f * 4)..<(f * 4 + 4)] != captured[(c * 4)..<(c * 4 + 4)] { mismatch = f; break }
        }
        var trailing = 0
        var f = max(0, sourceFrames + offset)
        while (f + 1) * 4 <= captured.count {
            if captured[(f * 4)..<(f * 4 + 4)].contains(where: { $0 != 0 }) { trailing += 1 }
            f += 1
        }
        return Comparison(offsetFrames: offset, sourceFrames: sourceFrames, capturedFrames: capturedFrames,
                          firstMismatchFrame: mismatch, trailingNonZeroFrames: trailing)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
