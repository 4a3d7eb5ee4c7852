import Foundation

/// Helpers for end-to-end tests against real peers (ffmpeg CLI, pyatv's atvremote).
public enum Harness {
    /// The package root (three levels above this file).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func requireAtvremote() throws -> String { try TestEnv.venvTool("atvremote") }

    public static func makeTempDir() throws -> URL { try ATVTestSupport.makeTempDir("atv-sim") }

    public static func findExecutable(_ name: String) throws -> String { try TestEnv.executable(name) }

    /// Runs a process with output to files in `dir` (ATVTestSupport's runner), killing it after `timeout`.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    in dir: URL, timeout: Duration) async throws -> ProcessResult {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        return try await Child(executable, arguments, environment: environment, in: dir).finish(timeout: seconds)
    }

    /// `ffmpeg -y -hide_banner -loglevel error <args>`; throws with ffmpeg's message on failure.
    public static func ffmpeg(_ args: [String], in dir: URL) async throws {
        let r = try await run(try findExecutable("ffmpeg"), ["-y", "-hide_banner", "-loglevel", "error"] + args,
                              in: dir, timeout: .seconds(60))
        guard r.status == 0, !r.timedOut else { throw HarnessError("ffmpeg \(args.joined(separator: " ")) failed: \(r.stderr)") }
    }

    /// Makes a stereo 44.1 kHz 16-bit fixture: a sine on the left, seeded noise on the right, so
    /// both channels and every bit matter. `ext` picks the container ("wav" or "flac").
    public static func makeFixture(seconds: Double, ext: String, metadata: [String: String] = [:], in dir: URL) async throws -> URL {
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
    public static func decodePCM(_ url: URL, in dir: URL) async throws -> [UInt8] {
        let raw = dir.appendingPathComponent("\(url.lastPathComponent).s16le")
        try await ffmpeg(["-i", url.path, "-f", "s16le", "-ac", "2", "-ar", "44100", raw.path], in: dir)
        return [UInt8](try Data(contentsOf: raw))
    }

    /// The PCM of the `data` chunk of a WAV file.
    public static func wavPCM(_ url: URL) throws -> [UInt8] { try ATVTestSupport.wavPCM(url.path) }

    /// Index of the first frame (4 bytes) that is not all zero.
    public static func firstNonSilentFrame(_ pcm: [UInt8]) -> Int? {
        var f = 0
        while (f + 1) * 4 <= pcm.count {
            if pcm[f * 4] != 0 || pcm[f * 4 + 1] != 0 || pcm[f * 4 + 2] != 0 || pcm[f * 4 + 3] != 0 { return f }
            f += 1
        }
        return nil
    }

    public struct Comparison: Sendable {
        public var offsetFrames: Int
        public var sourceFrames: Int
        public var capturedFrames: Int
        public var firstMismatchFrame: Int?
        public var trailingNonZeroFrames: Int
    }

    /// Aligns `captured` on `source` by their first non-silent frames and compares the whole source.
    public static func compare(source: [UInt8], captured: [UInt8]) throws -> Comparison {
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

public typealias HarnessError = TestFailure
