import ATVTestSupport
import Foundation
import Testing

@Suite struct StorageCLITests {
    /// pyatv's storage layout, as atvremote 0.18 wrote it, with shortened credentials.
    static let pyatvFile = """
    {"version": 1, "devices": [{"info": {"rp_id": "2fda1147e030"},
      "protocols": {"airplay": {"identifier": "00:01:02:03:04:05"},
       "companion": {"credentials": "e734ea6c:f5946bf4:3544:6236"},
       "dmap": {"identifier": "FakeATV", "credentials": "12345678-6789-1111-2222-012345678911"},
       "mrp": {"identifier": "6D797FD3-3538-427E-A47B-A32FC6CF3A69", "credentials": "e734:348e:3544:6630"},
       "raop": {"identifier": "AA:BB:CC:DD:EE:FF"}}}]}
    """

    @Test func importPyatvKeepsPairingsAndWritesPrivately() async throws {
        let dir = try TestEnv.tempDir()
        let source = dir.appendingPathComponent("pyatv.conf")
        try Self.pyatvFile.write(to: source, atomically: true, encoding: .utf8)
        let target = dir.appendingPathComponent("conf/devices.json").path
        let r = try await run(try TestEnv.atv(), ["import-pyatv", source.path, "--storage", target])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Imported 1 device"))
        let attrs = try FileManager.default.attributesOfItem(atPath: target)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: target))) as? [String: Any])
        let device = try #require((json["devices"] as? [[String: Any]])?.first)
        let protocols = try #require(device["protocols"] as? [String: [String: Any]])
        #expect(protocols["mrp"]?["credentials"] as? String == "e734:348e:3544:6630")
        #expect(protocols["dmap"]?["credentials"] as? String == "12345678-6789-1111-2222-012345678911")
        #expect(protocols["companion"]?["credentials"] as? String == "e734ea6c:f5946bf4:3544:6236")
        // Importing again adds nothing.
        let again = try await run(try TestEnv.atv(), ["import-pyatv", source.path, "--storage", target])
        #expect(again.stdout.contains("Imported 0 devices"))
    }

    @Test func corruptSettingsFileIsReportedAndKept() async throws {
        let dir = try TestEnv.tempDir()
        let source = dir.appendingPathComponent("pyatv.conf")
        try Self.pyatvFile.write(to: source, atomically: true, encoding: .utf8)
        let target = dir.appendingPathComponent("devices.json")
        let garbage = Data("{\"version\": 1, \"devices\": [ oops".utf8)
        try garbage.write(to: target)
        let r = try await run(try TestEnv.atv(), ["import-pyatv", source.path, "--storage", target.path])
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("atv: error: settings: \(target.path) is not a valid settings file"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(try Data(contentsOf: target) == garbage, "a corrupt file must never be overwritten")
    }

    @Test func missingPyatvFile() async throws {
        let r = try await run(try TestEnv.atv(), ["import-pyatv", "/nonexistent/.pyatv.conf", "--storage", "/tmp/x.json"])
        #expect(r.status == 1)
        #expect(r.stderr == "atv: error: /nonexistent/.pyatv.conf: no such file\n")
    }
}
