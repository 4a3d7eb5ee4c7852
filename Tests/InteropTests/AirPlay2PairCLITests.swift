import ATVTestSupport
import Foundation
import Testing

/// `atv pair --protocol airplay` for AirPlay 2 devices: HAP PIN pairing, credentials in pyatv's
/// format, then pair-verify when streaming (by us and by pyatv with the same credentials).
@Suite(.serialized) struct AirPlay2PairCLITests {
    /// Every `credentials` string in a settings file.
    static func storedCredentials(_ path: String) throws -> [String] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        var found: [String] = []
        func walk(_ v: Any) {
            if let d = v as? [String: Any] {
                for (k, x) in d { if k == "credentials", let s = x as? String { found.append(s) } else { walk(x) } }
            } else if let a = v as? [Any] {
                a.forEach(walk)
            }
        }
        walk(json)
        return found
    }

    @Test func hapPairingThenPairVerifiedStreams() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let storage = dir.appendingPathComponent("devices.json").path
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "2",
                                                "--no-advertise", "--pin", "2468"])
        defer { pod.kill() }
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("listening on") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(out)") }
        let atv = try TestEnv.atv()
        let common = ["--host", "127.0.0.1", "--port", "\(port)", "--airplay-version", "2", "--storage", storage]

        // A wrong PIN: one clear error line, nothing stored.
        let wrong = try await run(atv, ["pair", "--protocol", "airplay", "--pin", "1357"] + common, timeout: 60)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.split(separator: "\n").count == 1 && wrong.stderr.hasPrefix("atv: error:"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: storage))

        let paired = try await run(atv, ["pair", "--protocol", "airplay", "--pin", "2468"] + common, timeout: 60)
        #expect(paired.status == 0, "\(paired.stderr)")
        #expect(paired.stdout.contains("AirPlay 2 HAP"), "\(paired.stdout)")
        let creds = try Self.storedCredentials(storage)
        #expect(!creds.isEmpty)
        // pyatv's HAP format: ltpk:ltsk:atv_id:client_id, lower-case hex.
        let fields = creds.first?.split(separator: ":", omittingEmptySubsequences: false) ?? []
        #expect(fields.count == 4 && fields[0].count == 64 && fields[1].count == 64, "\(creds)")
        #expect(fields.allSatisfy { $0.allSatisfy(\.isHexDigit) })

        // Our stream pair-verifies with them.
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sent = try await run(atv, ["stream", sample, "--latency", "500", "-v"] + common, timeout: 90)
        #expect(sent.status == 0, "\(sent.stderr.suffix(2000))")
        #expect(sent.stderr.contains("pair-verify with stored credentials"), "\(sent.stderr.suffix(2000))")

        // pyatv pair-verifies with the same credentials string.
        let home = try TestEnv.tempDir()
        let py = try await run(try TestEnv.venvTool("atvremote"),
                               ["--manual", "--address", "127.0.0.1", "--port", "\(port)", "--protocol", "raop",
                                "--id", "AA:BB:CC:DD:EE:F0", "--raop-credentials", creds[0],
                                "--service-properties", ";features=0x4A7FCA00,0xBC354BD0;ft=0x4A7FCA00,0xBC354BD0;model=AudioAccessory5,1;et=0,4;md=0,1,2",
                                "stream_file=\(sample)"],
                               timeout: 90, environment: ["HOME": home.path])
        #expect(py.status == 0, "atvremote: \(py.stderr.suffix(2000))")
        let result = try await pod.wait(timeout: 30)
        let verifies = result.stdout.components(separatedBy: "Paired (verify)").count - 1
        #expect(verifies >= 3, "\(result.stdout)")  // our check after pairing, our stream, pyatv's stream
        #expect(result.stdout.contains("Paired (pin-setup)"), "\(result.stdout)")
    }
}
