import ATVTestSupport
import Foundation
import Testing

/// `atv simulate appletv` with its Companion and MRP sides, paired with `atv pair`, then the
/// control commands through connect() and the relayer: now playing, commands and volume go to MRP
/// (priority MRP > Companion), power prefers Companion, apps only Companion has.
@Suite(.serialized) struct AppleTVFacadeCLITests {
    struct Device {
        let sim: Child
        let companion: Int
        let mrp: Int
        let storage: String

        func atv(_ args: [String], timeout: Double = 60) async throws -> ProcessResult {
            try await run(try TestEnv.atv(), args + ["--host", "127.0.0.1", "--service", "companion:\(companion)",
                                                     "--service", "mrp:\(mrp)", "--storage", storage], timeout: timeout)
        }
    }

    static func port(after marker: String, in out: String) -> Int? {
        guard let r = out.range(of: marker) else { return nil }
        return Int(out[r.upperBound...].prefix { $0.isNumber })
    }

    static func pairedAppleTV(advance: Double = 1) async throws -> Device {
        let sim = try Child(try TestEnv.atv(), ["simulate", "appletv", "--port", "0", "--no-advertise", "--advance", String(advance)])
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("MRP on 127.0.0.1:") && $0.contains("Companion on 127.0.0.1:") }
        guard let c = port(after: "Companion on 127.0.0.1:", in: out), let m = port(after: "MRP on 127.0.0.1:", in: out) else {
            sim.kill()
            throw TestFailure("no ports in: \(out)")
        }
        let storage = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        for (proto, p) in [("companion", c), ("mrp", m)] {
            let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(p), "--protocol", proto,
                                                      "--pin", "1111", "--storage", storage])
            guard r.status == 0 else { sim.kill(); throw TestFailure("\(proto) pairing failed: \(r.stderr)") }
        }
        return Device(sim: sim, companion: c, mrp: m, storage: storage)
    }

    @Test func playingCommandsVolumePowerAndAppsGoToTheRightProtocol() async throws {
        let d = try await Self.pairedAppleTV(advance: 0)
        defer { d.sim.kill() }

        let playing = try await d.atv(["playing"])
        #expect(playing.status == 0, "\(playing.stderr)")
        #expect(playing.stdout.contains("Title: First Light") && playing.stdout.contains("Artist: The Virtuals"), "\(playing.stdout)")
        #expect(playing.stdout.contains("Device state: Playing"), "\(playing.stdout)")

        #expect(try await d.atv(["remote", "pause"]).status == 0)
        _ = try await d.sim.waitForOutput(timeout: 10) { $0.contains("MRP Command pause") }
        let paused = try await d.atv(["playing", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(paused.stdout.utf8)) as? [String: Any], "\(paused.stdout)")
        #expect(object["device_state"] as? String == "paused")
        #expect(object["title"] as? String == "First Light")

        #expect(try await d.atv(["next"]).status == 0)  // the top-level shortcut of `atv remote next`
        _ = try await d.sim.waitForOutput(timeout: 10) { $0.contains("MRP Now playing \"Second Wind\"") }

        let volume = try await d.atv(["volume", "30"])
        #expect(volume.status == 0, "\(volume.stderr)")
        _ = try await d.sim.waitForOutput(timeout: 10) { $0.contains("MRP Volume 30") }

        // Power prefers Companion (the relayer's rule), even though MRP could do it too.
        let off = try await d.atv(["power", "off"])
        #expect(off.status == 0, "\(off.stderr)")
        let out = try await d.sim.waitForOutput(timeout: 10) { $0.split(separator: "\n").contains("Power off") }
        #expect(!out.contains("MRP Power"), "\(out)")

        let apps = try await d.atv(["apps"])
        #expect(apps.status == 0 && apps.stdout.contains("App: "), "\(apps.stdout) \(apps.stderr)")

        let file = try TestEnv.tempDir().appendingPathComponent("art.png").path
        let art = try await d.atv(["artwork", "--out", file])
        #expect(art.status == 0, "\(art.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: file)).prefix(4)) == [0x89, 0x50, 0x4E, 0x47])

        let features = try await d.atv(["features"])
        for line in ["Title: Available", "Pause: Available", "AppList: Available", "PowerState: Available"] {
            #expect(features.stdout.contains(line), "\(line) missing in \(features.stdout)")
        }
    }

    @Test func pushUpdatesFollowTheMRPScriptAndEndWhenTheDeviceGoesAway() async throws {
        let d = try await Self.pairedAppleTV(advance: 1)
        defer { d.sim.kill() }
        let updates = try Child(try TestEnv.atv(), ["push-updates", "--json", "--host", "127.0.0.1", "--service", "companion:\(d.companion)",
                                                    "--service", "mrp:\(d.mrp)", "--storage", d.storage])
        defer { updates.kill() }
        let out = try await updates.waitForOutput(timeout: 30) { text in
            Set(text.split(separator: "\n").compactMap { line -> String? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["title"] as? String
            }).count >= 2
        }
        #expect(out.contains("\"title\":\"First Light\"") || out.contains("\"title\":\"Second Wind\""), "\(out)")
        d.sim.kill()
        let r = try await updates.wait(timeout: 30)
        #expect(r.status != 0)
        let last = try #require(r.stdout.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], "\(last)")
        #expect(object["result"] as? String == "failure" && object["connection"] as? String == "lost", "\(object)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("atv: error: "), "\(r.stderr)")
    }
}
