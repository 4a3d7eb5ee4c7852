import ATVTestSupport
import Foundation
import Testing

/// `atv play-url` and pyatv against `atv simulate appletv --require-pairing --airplay2`: HAP PIN
/// pairing, then pair-verify, the AirPlay 2 session and `/play` over the encrypted connection.
@Suite(.serialized) struct PlayURLPairingCLITests {
    var sample: String { TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path }

    /// The device, its port and the `--service-properties` line it prints for pyatv.
    func startAppleTV(_ extra: [String] = []) async throws -> (Child, Int, String) {
        let atv = try Child(try TestEnv.atv(), ["simulate", "appletv", "--port", "0", "--no-advertise", "--no-companion", "--no-mrp",
                                                "--require-pairing", "--airplay2", "--pin", "2468"] + extra)
        let out = try await atv.waitForOutput(timeout: 60) { $0.contains("--service-properties") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[r].split(separator: ":")[1]),
              let p = out.range(of: #"--service-properties "([^"]+)""#, options: .regularExpression) else {
            throw TestFailure("no port/TXT in: \(out)")
        }
        return (atv, port, String(out[p].dropFirst("--service-properties \"".count).dropLast()))
    }

    func pair(_ port: Int, storage: String) async throws -> ProcessResult {
        try await run(try TestEnv.atv(), ["pair", "--protocol", "airplay", "--airplay-version", "2", "--host", "127.0.0.1",
                                          "--port", "\(port)", "--pin", "2468", "--storage", storage], timeout: 60)
    }

    @Test func pairThenPlayURLOverTheVerifiedSession() async throws {
        let dir = try TestEnv.tempDir()
        let storage = dir.appendingPathComponent("devices.json").path
        let (sim, port, _) = try await startAppleTV(["--sessions", "1"])
        defer { sim.kill() }
        let paired = try await pair(port, storage: storage)
        #expect(paired.status == 0, "\(paired.stderr)")
        #expect(paired.stdout.contains("AirPlay 2 HAP"), "\(paired.stdout)")

        let r = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)",
                                                  "--storage", storage, "--start", "7", "-v"], timeout: 60)
        #expect(r.status == 0, "stderr: \(r.stderr.suffix(1500))")
        #expect(r.stdout.contains("Finished playing arpeggio.flac at 0:10 of 0:10 on 127.0.0.1:\(port)"), "stdout: \(r.stdout)")
        #expect(r.stderr.contains("pair-verify with stored credentials"))
        let s = try await sim.wait(timeout: 30)
        let out = s.stdout
        #expect(out.contains("Paired (PIN)"), "\(out)")
        // In order: verified, session SETUP, event channel, RECORD, then /play, all encrypted.
        let marks = ["Paired (verified)", "< enc SETUP", "event channel connected", "< enc RECORD", "< enc POST /play",
                     "arpeggio.flac from 7.0 s", "< enc GET /playback-info", "Playback ended (finished)"]
        var at = out.startIndex
        for m in marks {
            guard let found = out.range(of: m, range: at..<out.endIndex) else {
                Issue.record("\"\(m)\" missing or out of order in:\n\(out)")
                break
            }
            at = found.upperBound
        }
        #expect(!out.contains("refused: not verified"), "\(out)")
    }

    @Test func withoutCredentialsItNamesPairing() async throws {
        let (sim, port, _) = try await startAppleTV()
        defer { sim.kill() }
        let r = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)"], timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("atv: error: "), "\(r.stderr)")
        #expect(r.stderr.contains("470") && r.stderr.contains("run `atv pair --protocol airplay`"), "\(r.stderr)")
    }

    /// Credentials of another device (same address, so the stored entry applies): one clear line.
    @Test func staleCredentialsAreOneClearLine() async throws {
        let dir = try TestEnv.tempDir()
        let storage = dir.appendingPathComponent("devices.json").path
        let (first, port1, _) = try await startAppleTV()
        let paired = try await pair(port1, storage: storage)
        first.kill()
        #expect(paired.status == 0, "\(paired.stderr)")
        let (sim, port, _) = try await startAppleTV()
        defer { sim.kill() }
        let r = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)", "--storage", storage],
                              timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("atv: error: "), "\(r.stderr)")
        #expect(r.stderr.contains("rejected the stored AirPlay credentials") && r.stderr.contains("pair again with `atv pair --protocol airplay`"),
                "\(r.stderr)")
    }

    /// pyatv pairs (PIN typed on stdin) and plays with the TXT the simulator prints: its AirPlay 2 path.
    @Test func pyatvPairsAndPlaysOnTheSimulator() async throws {
        let dir = try TestEnv.tempDir()
        let (sim, port, properties) = try await startAppleTV(["--sessions", "1"])
        defer { sim.kill() }
        let tool = try TestEnv.venvTool("atvremote")
        let common = "'\(tool)' --manual --address 127.0.0.1 --port \(port) --protocol airplay --id AA:BB:CC:DD:EE:01 --service-properties '\(properties)'"
        let env = ["HOME": dir.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let pair = try await run("/bin/sh", ["-c", "echo 2468 | \(common) pair"], timeout: 60, environment: env)
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr.suffix(1500))")
        guard let line = pair.stdout.split(separator: "\n").first(where: { $0.contains("You may now use these credentials:") }) else {
            throw TestFailure("no credentials: \(pair.stdout)")
        }
        let credentials = String(line.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        let play = try await run("/bin/sh", ["-c", "\(common) --airplay-credentials \(credentials) play_url='\(sample)'"],
                                 timeout: 60, environment: env)
        #expect(play.status == 0, "\(play.stdout) \(play.stderr.suffix(1500))")
        let s = try await sim.wait(timeout: 30)
        for m in ["Paired (PIN)", "Paired (verified)", "< enc SETUP", "event channel connected", "< enc RECORD", "< enc POST /play",
                  "< enc GET /playback-info", "Playback ended (finished)"] {
            #expect(s.stdout.contains(m), "\(m) missing:\n\(s.stdout)")
        }
    }

    /// A device that is not AirPlay 2 but requires pairing: legacy AirPlay pairing and verification
    /// (two `/pair-verify` POSTs, no encryption), by us and by pyatv.
    @Test func legacyPairingThenVerifiedPlay() async throws {
        let dir = try TestEnv.tempDir()
        let storage = dir.appendingPathComponent("devices.json").path
        let atvSim = try Child(try TestEnv.atv(), ["simulate", "appletv", "--port", "0", "--no-advertise", "--no-companion", "--no-mrp",
                                                   "--require-pairing", "--pin", "2468", "--sessions", "2"])
        defer { atvSim.kill() }
        let out = try await atvSim.waitForOutput(timeout: 60) { $0.contains("--service-properties") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[r].split(separator: ":")[1]),
              let p = out.range(of: #"--service-properties "([^"]+)""#, options: .regularExpression) else {
            throw TestFailure("no port/TXT in: \(out)")
        }
        let properties = String(out[p].dropFirst("--service-properties \"".count).dropLast())
        let paired = try await run(try TestEnv.atv(), ["pair", "--protocol", "airplay", "--host", "127.0.0.1", "--port", "\(port)",
                                                       "--pin", "2468", "--storage", storage], timeout: 60)
        #expect(paired.status == 0 && paired.stdout.contains("legacy"), "\(paired.stdout) \(paired.stderr)")
        let ours = try await run(try TestEnv.atv(), ["play-url", sample, "--host", "127.0.0.1", "--port", "\(port)",
                                                     "--storage", storage, "--start", "8", "-v"], timeout: 60)
        #expect(ours.status == 0, "\(ours.stderr.suffix(1500))")
        #expect(ours.stderr.contains("legacy verification with stored credentials"))
        #expect(ours.stdout.contains("Finished playing arpeggio.flac at 0:10 of 0:10"), "\(ours.stdout)")

        let tool = try TestEnv.venvTool("atvremote")
        let common = "'\(tool)' --manual --address 127.0.0.1 --port \(port) --protocol airplay --id AA:BB:CC:DD:EE:01 --service-properties '\(properties)'"
        let env = ["HOME": dir.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let pair = try await run("/bin/sh", ["-c", "echo 2468 | \(common) pair"], timeout: 60, environment: env)
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr.suffix(1500))")
        guard let line = pair.stdout.split(separator: "\n").first(where: { $0.contains("You may now use these credentials:") }) else {
            throw TestFailure("no credentials: \(pair.stdout)")
        }
        let credentials = String(line.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        let py = try await run("/bin/sh", ["-c", "\(common) --airplay-credentials \(credentials) play_url='\(sample)'"],
                               timeout: 60, environment: env)
        #expect(py.status == 0, "\(py.stdout) \(py.stderr.suffix(1500))")
        let s = try await atvSim.wait(timeout: 30)
        #expect(s.stdout.components(separatedBy: "Paired (legacy PIN)").count - 1 == 2, "\(s.stdout)")
        // Our check after pairing, our play, pyatv's play (pyatv does not check after pairing).
        #expect(s.stdout.components(separatedBy: "Paired (legacy verified)").count - 1 >= 3, "\(s.stdout)")
        #expect(s.stdout.components(separatedBy: "Playback ended (finished)").count - 1 == 2, "\(s.stdout)")
        #expect(!s.stdout.contains("refused: not verified"), "\(s.stdout)")
    }
}
