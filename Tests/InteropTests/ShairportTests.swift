import ATVTestSupport
import Foundation
import Testing

/// `atv stream` against a real AirPlay 1 receiver: shairport-sync 3.3.8 with its stdout backend, in
/// a private network namespace made by scripts/peers/shairport-netns.sh (only 127.0.0.1 inside).
/// Needs root, `ip netns`, shairport-sync and avahi-daemon (scripts/setup installs them).
@Suite(.serialized) struct ShairportTests {
    static let peers = TestEnv.root.appendingPathComponent("scripts/peers")
    static let rtspPort = 5000
    /// The sender's lead-in: 9 packets of 352 frames of silence (shairport-sync replaces the first
    /// 9 packets of a session with silence).
    static let leadInFrames = 9 * 352

    // MARK: Harness

    /// Fails (never skips) when the machine cannot run shairport-sync in a namespace.
    static func requirePeers() async throws {
        var missing: [String] = []
        if getuid() != 0 { missing.append("root (ip netns needs it)") }
        for tool in ["ip", "shairport-sync", "avahi-daemon", "dbus-daemon", "python3", "ffmpeg"] {
            let r = try await sh("command -v \(tool)", timeout: 5)
            if r.status != 0 { missing.append(tool) }
        }
        if missing.isEmpty {
            let r = try await sh("ip netns list", timeout: 5)
            if r.status != 0 { missing.append("`ip netns` (\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))") }
        }
        if !missing.isEmpty {
            throw TestFailure("shairport-sync tests cannot run: missing \(missing.joined(separator: ", ")). "
                              + "Run scripts/setup as root, and run the tests as root.")
        }
    }

    /// A running shairport-sync in its own namespace; `stop()` removes everything it started.
    struct Shairport {
        var namespace: String
        var capture: String
        var logPath: String { "/tmp/atv-peers/\(namespace)/shairport-sync.log" }

        static func start(capture: String) async throws -> Shairport {
            try await ShairportTests.requirePeers()
            // The script names the namespace atv-sp-<its pid>: unique while it exists.
            let r = try await run("/usr/bin/python3", cleanChild(spawn: true, [peers.appendingPathComponent("shairport-netns.sh").path,
                                  "start", capture, "\(rtspPort)"]), timeout: 30)
            let name = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            guard r.status == 0, name.hasPrefix("atv-sp-") else {
                throw TestFailure("shairport-netns.sh start failed (\(r.status)): \(r.stderr)")
            }
            return Shairport(namespace: name, capture: capture)
        }

        /// The last lines of shairport-sync's log, for failure messages.
        func logTail() -> String {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").suffix(15).joined(separator: "\n")
        }

        /// Also runs when the test was cancelled (time limit): in a task of its own, which does
        /// not inherit the cancellation.
        func stop() async {
            let script = peers.appendingPathComponent("shairport-netns.sh").path, name = namespace
            await Task { _ = try? await run(script, ["stop", name], timeout: 20) }.value
        }

        /// Arguments that run `cmd` inside the namespace.
        func inside(_ cmd: [String]) -> [String] { [namespace] + cmd }
    }

    /// Start shairport-sync, run `body`, and always stop it (namespace deleted) afterwards.
    func withShairport<T>(_ capture: String, _ body: (Shairport) async throws -> T) async throws -> T {
        let sp = try await Shairport.start(capture: capture)
        do {
            let result = try await body(sp)
            await sp.stop()
            return result
        } catch {
            let log = sp.logTail()
            await sp.stop()
            if !log.isEmpty { print("shairport-sync log (\(sp.namespace)):\n\(log)") }
            throw error
        }
    }

    /// python3 arguments that run `argv` with no signal blocked. Foundation's Process passes on
    /// the test runner's signal mask (SIGINT and SIGTERM blocked), so a child could not be
    /// stopped by a signal. With `spawn` argv runs as a subprocess that also does not inherit
    /// Foundation's process-exit socket: Process reports an exit only once every holder of that
    /// socket is gone, which for the daemons shairport-netns.sh leaves running would be never.
    /// Without `spawn` the wrapper execs argv (same pid, so signals reach it).
    static func cleanChild(spawn: Bool, _ argv: [String]) -> [String] {
        let run = spawn ? "sys.exit(subprocess.run(sys.argv[1:]).returncode)" : "os.execv(sys.argv[1], sys.argv[1:])"
        return ["-c", "import os, signal, subprocess, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); " + run] + argv
    }

    static var inNetns: String { peers.appendingPathComponent("in-netns.sh").path }

    /// Wait until the capture stops growing (the stdout backend writes as it plays).
    func settledCapture(_ path: String, timeout: Double = 10) async throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var last = -1, stableSince = Date()
        while Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            if size != last { last = size; stableSince = Date() }
            else if Date().timeIntervalSince(stableSince) > 0.6 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return Array(data.prefix(data.count - data.count % 4))
    }

    /// A 10 s stereo 44.1 kHz 16-bit FLAC made now: pink noise left, 440 Hz sine right.
    func makeSource(in dir: URL, seconds: Int = 10) async throws -> String {
        let path = dir.appendingPathComponent("noise-sine.flac").path
        let r = try await run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", "anoisesrc=d=\(seconds):c=pink:a=0.4:seed=20250101",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=\(seconds):sample_rate=44100",
            "-filter_complex", "[0:a][1:a]amerge=inputs=2[a]", "-map", "[a]",
            "-ar", "44100", "-ac", "2", "-sample_fmt", "s16", "-c:a", "flac", "-y", path], timeout: 30)
        guard r.status == 0 else { throw TestFailure("ffmpeg could not make the test FLAC: \(r.stderr)") }
        return path
    }

    // MARK: Comparison

    struct Alignment {
        var offsetFrames: Int        // capture frame where source frame 0 is played
        var sourceFrames: Int
        var matchedFrames: Int       // frames equal in both channels
        var matchedSamples: Int
        var firstMismatchFrame: Int?
        var preRollQuiet: Bool       // everything before the source is dithered silence (|x| <= 1)
        var captureFrames: Int
        var ms: Double { Double(offsetFrames) * 1000 / 44_100 }
    }

    static func sample(_ b: [UInt8], _ i: Int) -> Int16 { Int16(bitPattern: UInt16(b[i]) | UInt16(b[i + 1]) << 8) }

    /// Locate the source in the capture (by a loud stretch of it; several probes so one
    /// unrecovered gap cannot hide it) and compare sample by sample from there.
    static func align(source: [UInt8], capture: [UInt8]) throws -> Alignment {
        let frames = source.count / 4
        func loud(_ b: [UInt8], _ f: Int) -> Bool { abs(Int(sample(b, f * 4))) > 1 || abs(Int(sample(b, f * 4 + 2))) > 1 }
        let firstLoud = try #require((0..<frames).first { loud(source, $0) }, "the source is silent")
        var offset: Int?
        for probe in [firstLoud, firstLoud + 44_100, firstLoud + 3 * 44_100] where probe + 1024 <= frames {
            if let at = findPCM(source[(probe * 4)..<((probe + 1024) * 4)], in: capture) {
                offset = at / 4 - probe
                break
            }
        }
        let off = try #require(offset, "the source was not found in the capture (\(capture.count / 4) frames)")
        try #require(off >= 0, "the capture starts inside the source: its first \(-off) frames were lost")
        var matchedFrames = 0, matchedSamples = 0
        var firstMismatch: Int?
        for f in 0..<frames {
            let c = (off + f) * 4
            guard c + 4 <= capture.count else { if firstMismatch == nil { firstMismatch = f }; continue }
            let l = source[f * 4] == capture[c] && source[f * 4 + 1] == capture[c + 1]
            let r = source[f * 4 + 2] == capture[c + 2] && source[f * 4 + 3] == capture[c + 3]
            matchedSamples += (l ? 1 : 0) + (r ? 1 : 0)
            if l && r { matchedFrames += 1 } else if firstMismatch == nil { firstMismatch = f }
        }
        let quiet = (0..<off).allSatisfy { !loud(capture, $0) }
        return Alignment(offsetFrames: off, sourceFrames: frames, matchedFrames: matchedFrames,
                         matchedSamples: matchedSamples, firstMismatchFrame: firstMismatch,
                         preRollQuiet: quiet, captureFrames: capture.count / 4)
    }

    /// `N retransmitted` from the `atv stream` summary line.
    static func retransmitted(_ stdout: String) -> Int? {
        guard let r = stdout.range(of: #"(\d+) retransmitted"#, options: .regularExpression) else { return nil }
        return Int(stdout[r].split(separator: " ")[0])
    }

    // MARK: Tests

    /// Default pacing (AirPlay 1: bursts of up to 4 packets) and the per-packet option
    /// (`--send-ahead 0`): both bit-exact.
    @Test(.timeLimit(.minutes(1)), arguments: [[String](), ["--send-ahead", "0"]])
    func fileArrivesBitExact(pacing: [String]) async throws {
        let dir = try TestEnv.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let flac = try await makeSource(in: dir)
        let source = try await referencePCM(flac)
        let cap = dir.appendingPathComponent("cap.pcm").path
        let atv = try TestEnv.atv()
        try await withShairport(cap) { sp in
            let r = try await run(Self.inNetns, sp.inside([atv, "stream", flac, "--host", "127.0.0.1", "--port", "\(Self.rtspPort)", "-v"] + pacing), timeout: 40)
            #expect(r.status == 0, "atv stream failed: \(r.stderr)")
            #expect(r.stdout.contains("Streamed 0:10"), "summary: \(r.stdout)")
            // No TXT with --host: GET /info decides, and shairport-sync (AirPlay 1) does not answer it with features.
            #expect(r.stderr.contains("AirPlay 1 (RAOP) (GET /info"), "route: \(r.stderr.suffix(2000))")
            #expect(!r.stdout.contains("AirPlay 2"), "summary: \(r.stdout)")
            let a = try Self.align(source: source, capture: try await settledCapture(cap))
            print("shairport-sync file\(pacing.isEmpty ? "" : " " + pacing.joined(separator: " ")): \(a.matchedFrames)/\(a.sourceFrames) frames bit-exact; leading silence \(a.offsetFrames) frames (\(String(format: "%.1f", a.ms)) ms) including the \(Self.leadInFrames)-frame lead-in; \(Self.retransmitted(r.stdout) ?? -1) retransmitted")
            #expect(a.matchedFrames == a.sourceFrames,
                    "\(a.matchedFrames) of \(a.sourceFrames) source frames bit-exact (first mismatch at \(a.firstMismatchFrame ?? -1)); leading silence \(a.offsetFrames) frames")
            #expect(a.offsetFrames >= Self.leadInFrames,
                    "leading silence \(a.offsetFrames) frames (\(a.ms) ms) should include the sender's \(Self.leadInFrames)-frame (9 × 352) lead-in")
            #expect(a.preRollQuiet, "the \(a.offsetFrames) frames before the source should be the receiver's dithered silence")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func fivePercentLossIsRepairedByRetransmits() async throws {
        let dir = try TestEnv.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let flac = try await makeSource(in: dir)
        let source = try await referencePCM(flac)
        let cap = dir.appendingPathComponent("cap.pcm").path
        let atv = try TestEnv.atv()
        let proxyPort = Self.rtspPort + 100
        try await withShairport(cap) { sp in
            // RTSP goes through the proxy, which starts a relay dropping 5% of RTP audio (seeded)
            // and points the sender's audio at it; control (retransmits) and timing go direct.
            let proxy = try Child("/usr/bin/python3", Self.cleanChild(spawn: false, [Self.inNetns] + sp.inside(["/usr/bin/python3", Self.peers.appendingPathComponent("rtsp-port-proxy.py").path,
                "--listen", "\(proxyPort)", "--target-port", "\(Self.rtspPort)", "--loss", "0.05", "--seed", "3",
                "--only-audio", "--max-seconds", "60"])))
            _ = try await proxy.waitForOutput(timeout: 30) { $0.contains("\"listening\"") }
            let r = try await run(Self.inNetns, sp.inside([atv, "stream", flac, "--host", "127.0.0.1", "--port", "\(proxyPort)"]), timeout: 40)
            proxy.terminate()   // SIGTERM: the proxy stops its relay, which prints its counts
            let p = try await proxy.wait(timeout: 10)
            #expect(r.status == 0, "atv stream failed: \(r.stderr)")

            let counts = p.stdout.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }.first { $0["dropped"] != nil }
            let relay = try #require(counts, "the relay printed no counts: \(p.stdout) \(p.stderr)")
            let dropped = relay["dropped"] as? Int ?? 0, forwarded = relay["forwarded"] as? Int ?? 0
            let retransmitted = try #require(Self.retransmitted(r.stdout), "no retransmit count in: \(r.stdout)")
            let a = try Self.align(source: source, capture: try await settledCapture(cap))
            let ratio = Double(a.matchedSamples) / Double(2 * a.sourceFrames)
            print("shairport-sync 5% loss: relay dropped \(dropped) of \(dropped + forwarded) audio packets, \(retransmitted) retransmitted; \(a.matchedSamples)/\(2 * a.sourceFrames) samples (\(String(format: "%.4f", ratio * 100))%) bit-exact; leading silence \(a.offsetFrames) frames")
            #expect(Double(dropped) >= 0.02 * Double(dropped + forwarded),
                    "the relay dropped only \(dropped) of \(dropped + forwarded) audio packets")
            #expect(retransmitted > 0, "no retransmits although the relay dropped \(dropped) packets")
            // The README claims bit-exact with 5 % loss: every sample of the source.
            #expect(a.matchedSamples == 2 * a.sourceFrames,
                    "\(a.matchedSamples) of \(2 * a.sourceFrames) samples bit-exact (\(ratio * 100)%), relay dropped \(dropped), \(retransmitted) retransmitted; first mismatch at frame \(a.firstMismatchFrame ?? -1)")
            #expect(a.offsetFrames >= Self.leadInFrames, "leading silence \(a.offsetFrames) frames, lead-in \(Self.leadInFrames)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func stdinFromFFmpegArrivesBitExact() async throws {
        let dir = try TestEnv.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let flac = try await makeSource(in: dir, seconds: 4)
        let source = try await referencePCM(flac)
        let cap = dir.appendingPathComponent("cap.pcm").path
        let atv = try TestEnv.atv()
        try await withShairport(cap) { sp in
            let r = try await sh("set -o pipefail; ffmpeg -hide_banner -loglevel error -i '\(flac)' -f wav - | '\(Self.inNetns)' \(sp.namespace) '\(atv)' stream - --host 127.0.0.1 --port \(Self.rtspPort)", timeout: 40)
            #expect(r.status == 0, "ffmpeg | atv stream - failed: \(r.stderr)")
            let a = try Self.align(source: source, capture: try await settledCapture(cap))
            print("shairport-sync stdin: \(a.matchedFrames)/\(a.sourceFrames) frames bit-exact; leading silence \(a.offsetFrames) frames")
            #expect(a.matchedFrames == a.sourceFrames,
                    "\(a.matchedFrames) of \(a.sourceFrames) source frames bit-exact (first mismatch at \(a.firstMismatchFrame ?? -1)); leading silence \(a.offsetFrames) frames")
            #expect(a.offsetFrames >= Self.leadInFrames, "leading silence \(a.offsetFrames) frames, lead-in \(Self.leadInFrames)")
            #expect(a.preRollQuiet, "the \(a.offsetFrames) frames before the source should be dithered silence")
        }
    }
}
