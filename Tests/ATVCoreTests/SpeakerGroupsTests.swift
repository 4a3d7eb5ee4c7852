import Foundation
import ATVTestSupport
import Testing
@testable import ATVCore

/// Speaker groups and per-device audio offsets in the settings file (`atv group`).
@Suite struct SpeakerGroupsTests {
    @Test func groupsAreStoredReplacedAndRemovedKeepingDevicesPrivate() throws {
        let dir = TempDir()
        // A file with a device entry and an unknown key: both must survive.
        try writeBytes(dir.settingsPath, """
        {"version": 1, "devices": [{"info": {"rp_id": "2fda1147e030"}, "protocols": {"raop": {"identifier": "AA:BB"}}}],
         "future": 7}
        """)
        let store = FileStorage(path: dir.settingsPath)
        let (g, replaced) = try store.setGroup("Downstairs", members: ["Kitchen", "Living Room", "kitchen"])
        #expect(!replaced)
        #expect(g == SpeakerGroup(name: "Downstairs", members: ["Kitchen", "Living Room"]), "duplicates dropped, first kept")
        try store.setGroup("Upstairs", members: ["Bedroom"])
        #expect(try FileStorage(path: dir.settingsPath).groups().map(\.name) == ["Downstairs", "Upstairs"])

        // Adding a group that exists (any case) replaces its members.
        let (again, replacedNow) = try store.setGroup("downstairs", members: ["Office"])
        #expect(replacedNow)
        #expect(again.members == ["Office"])
        #expect(try store.groups() == [SpeakerGroup(name: "downstairs", members: ["Office"]), SpeakerGroup(name: "Upstairs", members: ["Bedroom"])])

        #expect(try store.removeGroup("UPSTAIRS")?.name == "Upstairs")
        #expect(try store.removeGroup("Upstairs") == nil)
        let json = try jsonObject(dir.settingsPath)
        #expect(json["future"] as? Int == 7)
        #expect((json["devices"] as? [Any])?.count == 1)
        #expect(json["groups"] as? [String: [String]] == ["downstairs": ["Office"]])
        #expect(mode(dir.settingsPath) & 0o777 == 0o600)
        // A device entry is still readable as before.
        #expect(try FileStorage(path: dir.settingsPath).allSettings.first?.protocols.raop.identifier == "AA:BB")
    }

    @Test func badGroupsAreRefusedWithoutTouchingTheFile() throws {
        let dir = TempDir()
        let store = FileStorage(path: dir.settingsPath)
        try store.setGroup("Downstairs", members: ["Kitchen"])
        let before = try readBytes(dir.settingsPath)
        for (name, members) in [("Up", [String]()), ("", ["Kitchen"]), ("Up", ["Downstairs"]), ("Up", ["up"]),
                                ("Up", ["a\u{7}b"]), (String(repeating: "x", count: 101), ["Kitchen"])] {
            #expect(throws: ATVError.self) { try store.setGroup(name, members: members) }
        }
        #expect(try readBytes(dir.settingsPath) == before)
    }

    @Test func expandingTargetsReplacesGroupNamesByTheirMembers() throws {
        let groups = [SpeakerGroup(name: "Downstairs", members: ["Kitchen", "Living Room"]),
                      SpeakerGroup(name: "Up", members: ["Bedroom", "kitchen"])]
        #expect(SpeakerGroups.expand(["downstairs"], groups: groups) == ["Kitchen", "Living Room"])
        #expect(SpeakerGroups.expand(["Attic", "Downstairs", "Up"], groups: groups) == ["Attic", "Kitchen", "Living Room", "Bedroom"])
        #expect(SpeakerGroups.expand(["Kitchen"], groups: groups) == ["Kitchen"], "a plain name stays")
        #expect(SpeakerGroups.expand([], groups: groups).isEmpty)

        let dir = TempDir()
        let store = FileStorage(path: dir.settingsPath)
        #expect(try store.expandTargets(["Kitchen", "10.0.0.2"]) == ["Kitchen", "10.0.0.2"], "no file: nothing to expand")
        try store.setGroup("Pair", members: ["10.0.0.2", "10.0.0.3:7001"])
        #expect(try store.expandTargets(["pair"]) == ["10.0.0.2", "10.0.0.3:7001"])
    }

    @Test func offsetsAreValidatedStoredAndFoundByAnyReference() throws {
        #expect(try SpeakerGroups.parseOffset("40") == 40)
        #expect(try SpeakerGroups.parseOffset("-12.5") == -12.5)
        for bad in ["abc", "", "nan", "inf", "2000.5", "-2001", "1e9"] {
            #expect(throws: ATVError.self) { try SpeakerGroups.parseOffset(bad) }
        }
        let dir = TempDir()
        let store = FileStorage(path: dir.settingsPath)
        try store.setAudioOffset(40, for: "Kitchen")
        try store.setAudioOffset(-12.5, for: "AA:BB:CC:DD:EE:FF")
        try store.setAudioOffset(25, for: "kitchen")  // same device, other case: replaces
        #expect(try store.audioOffsets() == ["kitchen": 25, "AA:BB:CC:DD:EE:FF": -12.5])
        #expect(throws: ATVError.self) { try store.setAudioOffset(3000, for: "Kitchen") }
        #expect(throws: ATVError.self) { try store.setAudioOffset(.nan, for: "Kitchen") }

        let kitchen = DeviceConfig(name: "Kitchen", address: "10.0.0.2",
                                   services: [ServiceConfig(protocol: .raop, identifier: "11:22:33:44:55:66", port: 7000)])
        #expect(try store.audioOffset(reference: "10.0.0.2", config: kitchen) == 25, "found by the device's name")
        let other = DeviceConfig(name: "Speaker", address: "10.0.0.3",
                                 services: [ServiceConfig(protocol: .raop, identifier: "aa:bb:cc:dd:ee:ff", port: 7000)])
        #expect(try store.audioOffset(reference: nil, config: other) == -12.5, "found by an identifier, any case")
        let unknown = DeviceConfig(name: "Attic", address: "10.0.0.4", services: [])
        #expect(try store.audioOffset(reference: "Attic", config: unknown) == 0)

        try store.setAudioOffset(0, for: "KITCHEN")  // 0 removes
        #expect(try store.audioOffsets() == ["AA:BB:CC:DD:EE:FF": -12.5])
        #expect((try jsonObject(dir.settingsPath))["audio_offsets"] as? [String: Double] == ["AA:BB:CC:DD:EE:FF": -12.5])
    }

    @Test func audioRoutesAreValidatedStoredPrivatelyAndFoundByAnyReference() throws {
        // Validation: lowercased, "auto" as nil, anything else one clear error.
        #expect(try AudioRoutePreference(timing: "PTP", buffered: "auto").normalized() == AudioRoutePreference(timing: "ptp"))
        #expect(try AudioRoutePreference(timing: "auto", buffered: "auto").normalized().isEmpty)
        #expect {
            try AudioRoutePreference(timing: "fast").normalized()
        } throws: { error in
            (error as? ATVError) == .invalidValue("timing must be auto, ntp or ptp, not fast")
        }
        #expect {
            try AudioRoutePreference(buffered: "yes").normalized()
        } throws: { error in
            (error as? ATVError) == .invalidValue("buffered must be auto, on or off, not yes")
        }

        let dir = TempDir()
        try writeBytes(dir.settingsPath, #"{"version": 1, "devices": [], "audio_offsets": {"Kitchen": 40}, "future": 7}"#)
        let store = FileStorage(path: dir.settingsPath)
        #expect(try store.audioRoutes().isEmpty)
        #expect(try store.setAudioRoute(AudioRoutePreference(timing: "ptp", buffered: "Off"), for: "Kitchen")
                == AudioRoutePreference(timing: "ptp", buffered: "off"))
        try store.setAudioRoute(AudioRoutePreference(buffered: "on"), for: "AA:BB:CC:DD:EE:FF")
        try store.setAudioRoute(AudioRoutePreference(timing: "ntp"), for: "kitchen")  // same device, other case: replaces
        #expect(try FileStorage(path: dir.settingsPath).audioRoutes()
                == ["kitchen": AudioRoutePreference(timing: "ntp"), "AA:BB:CC:DD:EE:FF": AudioRoutePreference(buffered: "on")])
        let before = try readBytes(dir.settingsPath)
        #expect(throws: ATVError.self) { try store.setAudioRoute(AudioRoutePreference(timing: "sometimes"), for: "Kitchen") }
        #expect(throws: ATVError.self) { try store.setAudioRoute(AudioRoutePreference(timing: "ptp"), for: "") }
        #expect(try readBytes(dir.settingsPath) == before, "a refused value leaves the file alone")

        let json = try jsonObject(dir.settingsPath)
        #expect(json["audio_routes"] as? [String: [String: String]]
                == ["kitchen": ["timing": "ntp"], "AA:BB:CC:DD:EE:FF": ["buffered": "on"]])
        #expect(json["audio_offsets"] as? [String: Double] == ["Kitchen": 40])
        #expect(json["future"] as? Int == 7)
        #expect(mode(dir.settingsPath) & 0o777 == 0o600)

        let kitchen = DeviceConfig(name: "Kitchen", address: "10.0.0.2",
                                   services: [ServiceConfig(protocol: .raop, identifier: "11:22:33:44:55:66", port: 7000)])
        #expect(try store.audioRoute(reference: "10.0.0.2", config: kitchen) == AudioRoutePreference(timing: "ntp"),
                "found by the device's name, any case")
        let other = DeviceConfig(name: "Speaker", address: "10.0.0.3",
                                 services: [ServiceConfig(protocol: .raop, identifier: "aa:bb:cc:dd:ee:ff", port: 7000)])
        #expect(try store.audioRoute(reference: nil, config: other) == AudioRoutePreference(buffered: "on"),
                "found by an identifier, any case")
        #expect(try store.audioRoute(reference: "KITCHEN", config: other) == AudioRoutePreference(timing: "ntp"),
                "what the user typed comes first")
        #expect(try store.audioRoute(reference: "Attic", config: DeviceConfig(name: "Attic", address: "10.0.0.4", services: [])) == nil)

        // Both auto (or nil) removes the entry.
        #expect(try store.setAudioRoute(AudioRoutePreference(timing: "auto", buffered: "AUTO"), for: "KITCHEN") == nil)
        try store.setAudioRoute(AudioRoutePreference(), for: "aa:bb:cc:dd:ee:ff")
        #expect(try store.audioRoutes().isEmpty)
        #expect((try jsonObject(dir.settingsPath))["audio_routes"] as? [String: Any] != nil)
        #expect(mode(dir.settingsPath) & 0o777 == 0o600)
    }

    @Test func malformedAudioRoutesInTheFileAreOneClearError() throws {
        for routes in [#""ptp""#, #"{"Kitchen": "ptp"}"#, #"{"Kitchen": {"timing": "fast"}}"#,
                       #"{"Kitchen": {"timing": 1}}"#, #"{"Kitchen": {"latency": "ptp"}}"#] {
            let dir = TempDir()
            try writeBytes(dir.settingsPath, #"{"version": 1, "devices": [], "audio_routes": "# + routes + "}")
            let before = try readBytes(dir.settingsPath)
            let store = FileStorage(path: dir.settingsPath)
            #expect {
                try store.audioRoutes()
            } throws: { error in
                "\(error)".contains("\"audio_routes\" must map device names to")
            }
            #expect(throws: ATVError.self) { try store.setAudioRoute(AudioRoutePreference(timing: "ptp"), for: "Kitchen") }
            #expect(try readBytes(dir.settingsPath) == before, "never overwritten")
        }
    }

    @Test func malformedGroupsInTheFileAreOneClearError() throws {
        let dir = TempDir()
        try writeBytes(dir.settingsPath, #"{"version": 1, "devices": [], "groups": {"Downstairs": "Kitchen"}}"#)
        let store = FileStorage(path: dir.settingsPath)
        #expect {
            try store.groups()
        } throws: { error in
            "\(error)".contains("\"groups\" must map group names to lists of member names")
        }
    }

    @Test func anotherInstancesSaveKeepsGroups() throws {
        let dir = TempDir()
        let first = FileStorage(path: dir.settingsPath)
        _ = try first.allSettings  // loaded before the group existed
        try FileStorage(path: dir.settingsPath).setGroup("Downstairs", members: ["Kitchen"])
        try first.update(DeviceConfig(name: "TV", address: "10.0.0.9",
                                      services: [ServiceConfig(protocol: .mrp, identifier: "MRP-1", port: 49152)]))
        try first.save()
        #expect(try FileStorage(path: dir.settingsPath).groups() == [SpeakerGroup(name: "Downstairs", members: ["Kitchen"])])
    }
}
