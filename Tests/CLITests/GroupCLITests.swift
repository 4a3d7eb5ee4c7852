import ATVTestSupport
import Foundation
import Testing

/// `atv group`: groups and offsets in the settings file, as users run it.
@Suite struct GroupCLITests {
    func atv(_ args: [String]) async throws -> ProcessResult {
        try await run(try TestEnv.atv(), args, timeout: 20)
    }

    func expectOneLineError(_ r: ProcessResult, containing text: String) {
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr should be one line: \(r.stderr)")
        #expect(r.stderr.hasPrefix("atv: error: "), "stderr: \(r.stderr)")
        #expect(r.stderr.contains(text), "stderr: \(r.stderr)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
    }

    @Test func addListReplaceRemove() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("conf/devices.json").path
        let s = ["--storage", file]
        var r = try await atv(["group", "add", "Downstairs", "Kitchen", "Living Room"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Added group Downstairs: Kitchen, Living Room\n")
        let attrs = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        r = try await atv(["group", "offset", "Kitchen", "40"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Offset of Kitchen: 40 ms\n")
        r = try await atv(["group", "offset", "Attic", "-12.5"] + s)
        #expect(r.stdout == "Offset of Attic: -12.5 ms\n")
        r = try await atv(["group", "offset", "kitchen"] + s)
        #expect(r.stdout == "Offset of kitchen: 40 ms\n")

        r = try await atv(["group", "list"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Group Downstairs: Kitchen (offset 40 ms), Living Room\nOffset of Attic: -12.5 ms\n")

        r = try await atv(["group", "list", "--json"] + s)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["result"] as? String == "success")
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(groups.count == 1)
        #expect(groups.first?["name"] as? String == "Downstairs")
        #expect(groups.first?["members"] as? [String] == ["Kitchen", "Living Room"])
        #expect(json["offsets"] as? [String: Double] == ["Kitchen": 40, "Attic": -12.5])

        // Adding an existing group replaces its members.
        r = try await atv(["group", "add", "downstairs", "Office"] + s)
        #expect(r.stdout == "Replaced group downstairs: Office\n")
        r = try await atv(["group"] + s)   // list is the default
        #expect(r.stdout.hasPrefix("Group downstairs: Office\n"), "\(r.stdout)")

        r = try await atv(["group", "remove", "DOWNSTAIRS"] + s)
        #expect(r.stdout == "Removed group downstairs\n")
        r = try await atv(["group", "offset", "Kitchen", "0"] + s)
        #expect(r.stdout == "Removed the offset of Kitchen\n")
        r = try await atv(["group", "list"] + s)
        #expect(r.stdout == "No groups in \(file)\nOffset of Attic: -12.5 ms\n")
    }

    @Test func routesAreSetShownListedAndRemoved() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("conf/devices.json").path
        let s = ["--storage", file]
        var r = try await atv(["group", "route", "Kitchen"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Audio route of Kitchen: timing auto, buffered auto\n")

        r = try await atv(["group", "add", "Downstairs", "Kitchen", "Living Room"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        r = try await atv(["group", "route", "Kitchen", "--timing", "ptp"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Audio route of Kitchen: timing ptp, buffered auto\n")
        // An option left out keeps its stored value.
        r = try await atv(["group", "route", "kitchen", "--buffered", "off"] + s)
        #expect(r.stdout == "Audio route of kitchen: timing ptp, buffered off\n")
        r = try await atv(["group", "route", "Attic", "--buffered", "ON"] + s)
        #expect(r.stdout == "Audio route of Attic: timing auto, buffered on\n")
        r = try await atv(["group", "route", "KITCHEN"] + s)
        #expect(r.stdout == "Audio route of KITCHEN: timing ptp, buffered off\n")
        r = try await atv(["group", "offset", "Kitchen", "40"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        let attrs = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        r = try await atv(["group", "list"] + s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "Group Downstairs: Kitchen (offset 40 ms, timing ptp, buffered off), Living Room\n"
                          + "Audio route of Attic: timing auto, buffered on\n")
        r = try await atv(["group", "list", "--json"] + s)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["result"] as? String == "success")
        #expect(json["routes"] as? [String: [String: String]]
                == ["kitchen": ["timing": "ptp", "buffered": "off"], "Attic": ["buffered": "on"]])
        #expect(json["offsets"] as? [String: Double] == ["Kitchen": 40])

        // auto clears a value; both auto removes the route.
        r = try await atv(["group", "route", "Kitchen", "--timing", "auto"] + s)
        #expect(r.stdout == "Audio route of Kitchen: timing auto, buffered off\n")
        r = try await atv(["group", "route", "Kitchen", "--buffered", "auto"] + s)
        #expect(r.stdout == "Removed the audio route of Kitchen\n")
        r = try await atv(["group", "list"] + s)
        #expect(r.stdout == "Group Downstairs: Kitchen (offset 40 ms), Living Room\nAudio route of Attic: timing auto, buffered on\n")

        // A bad value: one line, non-zero, the file untouched.
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        expectOneLineError(try await atv(["group", "route", "Attic", "--timing", "fast"] + s),
                           containing: "timing must be auto, ntp or ptp, not fast")
        expectOneLineError(try await atv(["group", "route", "Attic", "--buffered", "yes"] + s),
                           containing: "buffered must be auto, on or off, not yes")
        expectOneLineError(try await atv(["group", "route", "", "--timing", "ptp"] + s),
                           containing: "the device name must not be empty")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before)
    }

    @Test func badInputIsOneLineAndLeavesTheFileAlone() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let s = ["--storage", file]
        _ = try await atv(["group", "add", "Downstairs", "Kitchen"] + s)
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        expectOneLineError(try await atv(["group", "offset", "Kitchen", "abc"] + s), containing: "offset must be a number of milliseconds within -2000...2000")
        expectOneLineError(try await atv(["group", "offset", "Kitchen", "5000"] + s), containing: "-2000...2000")
        expectOneLineError(try await atv(["group", "offset", "Kitchen", "nan"] + s), containing: "offset must be")
        expectOneLineError(try await atv(["group", "add", "Up"] + s), containing: "group Up needs at least one member")
        expectOneLineError(try await atv(["group", "add", "Up", "downstairs"] + s), containing: "downstairs is a group")
        expectOneLineError(try await atv(["group", "add", "", "Kitchen"] + s), containing: "the group name must not be empty")
        expectOneLineError(try await atv(["group", "remove", "Nowhere"] + s), containing: "no group named Nowhere")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before)

        // A settings file that is not one: reported, never overwritten.
        let garbage = Data("{\"version\": 1, \"devices\": [ oops".utf8)
        try garbage.write(to: URL(fileURLWithPath: file))
        expectOneLineError(try await atv(["group", "add", "Up", "Bedroom"] + s), containing: "is not a valid settings file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == garbage)
        let json = try await atv(["group", "list", "--json"] + s)
        #expect(json.status != 0)
        #expect(json.stdout.contains("\"result\":\"failure\""), "\(json.stdout)")
    }
}
