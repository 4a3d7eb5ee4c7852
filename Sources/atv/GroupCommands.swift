import ArgumentParser
import ATVCore
import Foundation

/// `atv group`: speaker groups and per-device audio offsets, kept in the settings file.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "group",
        abstract: "Speaker groups for multi-room streams, and per-device offsets.",
        discussion: """
        A group names several speakers: `atv stream song.flac --to Downstairs` streams to every \
        member in step. Members are what --to takes (a name, identifier or address), resolved \
        when a stream starts. Groups and offsets are kept in the settings file \
        ($XDG_CONFIG_HOME/swift-atv/devices.json).

        Examples:
          atv group add Downstairs Kitchen "Living Room"
          atv group list
          atv group offset Kitchen 40
          atv group remove Downstairs
        """,
        subcommands: [GroupAdd.self, GroupRemove.self, GroupList.self, GroupOffset.self],
        defaultSubcommand: GroupList.self)
}

struct GroupAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add",
        abstract: "Create a group, or replace the members of an existing one.",
        discussion: """
        Adding a group that exists (names compared without regard to case) replaces its \
        members with the ones given: list them all.

        Examples:
          atv group add Downstairs Kitchen "Living Room"
          atv group add Pair 192.168.1.20 192.168.1.21
        """)
    @Argument(help: "The group's name.") var name: String
    @Argument(help: "Devices: names, identifiers or addresses.") var members: [String] = []
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let store = FileStorage(path: storage, lockTimeout: .seconds(4))
            let (group, replaced) = try store.setGroup(name, members: members)
            print("\(replaced ? "Replaced" : "Added") group \(printable(group.name)): "
                  + group.members.map(printable).joined(separator: ", "))
        }
    }
}

struct GroupRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove",
        abstract: "Remove a group (its devices and their offsets stay).",
        discussion: """
        Examples:
          atv group remove Downstairs
        """)
    @Argument(help: "The group's name.") var name: String
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let store = FileStorage(path: storage, lockTimeout: .seconds(4))
            guard let old = try store.removeGroup(name) else {
                throw ATVError.invalidValue("no group named \(name) in \(store.path)")
            }
            print("Removed group \(printable(old.name))")
        }
    }
}

struct GroupList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list",
        abstract: "List groups and their members, and the devices' audio offsets.",
        discussion: """
        Examples:
          atv group list
          atv group list --json
        """)
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?
    @Flag(help: "Print JSON ({\"groups\": [{\"name\", \"members\"}], \"offsets\": {…}}).") var json = false

    func run() async throws {
        try await runReportingErrors(json: json) {
            let store = FileStorage(path: storage)
            let groups = try store.groups()
            let offsets = try store.audioOffsets()
            if json {
                printSuccess(["groups": groups.map { ["name": $0.name, "members": $0.members] as [String: Any] },
                              "offsets": offsets], json: true)
                return
            }
            print(GroupText.list(groups: groups, offsets: offsets, path: store.path))
        }
    }
}

struct GroupOffset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "offset",
        abstract: "Show or set a device's audio offset in milliseconds.",
        discussion: """
        For a speaker whose amplifier adds its own delay: a positive offset feeds it that much \
        earlier so it plays in step with the others (negative: later). 0 removes the offset. \
        The device is named as --to names it; the offset applies to every group stream it is in.

        Examples:
          atv group offset Kitchen 40
          atv group offset Kitchen
          atv group offset "Living Room" -15
          atv group offset Kitchen 0
        """)
    @Argument(help: "The device: a name, identifier or address.") var device: String
    // All unrecognized: a negative offset ("-12.5") is a value here, not an option.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Milliseconds within -2000...2000; omit to show.", valueName: "milliseconds")) var values: [String] = []
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            guard values.count <= 1 else {
                throw ATVError.invalidValue("give one offset in milliseconds, not \(values.joined(separator: " "))")
            }
            let store = FileStorage(path: storage, lockTimeout: .seconds(4))
            guard let text = values.first else {
                let v = SpeakerGroups.offset(in: try store.audioOffsets(), references: [device])
                print("Offset of \(printable(device)): \(GroupText.milliseconds(v))")
                return
            }
            let v = try SpeakerGroups.parseOffset(text)
            try store.setAudioOffset(v, for: device)
            print(v == 0 ? "Removed the offset of \(printable(device))"
                         : "Offset of \(printable(device)): \(GroupText.milliseconds(v))")
        }
    }
}

/// The text `atv group list` prints.
enum GroupText {
    /// 40 → "40 ms", -12.5 → "-12.5 ms".
    static func milliseconds(_ v: Double) -> String {
        (v == v.rounded() ? String(Int(v)) : String(v)) + " ms"
    }

    static func list(groups: [SpeakerGroup], offsets: [String: Double], path: String) -> String {
        var lines: [String] = []
        if groups.isEmpty { lines.append("No groups in \(path)") }
        for g in groups {
            lines.append("Group \(printable(g.name)): " + g.members.map { m in
                let off = SpeakerGroups.offset(in: offsets, references: [m])
                return printable(m) + (off == 0 ? "" : " (offset \(milliseconds(off)))")
            }.joined(separator: ", "))
        }
        let listed = Set(groups.flatMap(\.members).map { $0.lowercased() })
        for (device, v) in offsets.sorted(by: { $0.key.lowercased() < $1.key.lowercased() })
            where !listed.contains(device.lowercased()) {
            lines.append("Offset of \(printable(device)): \(milliseconds(v))")
        }
        return lines.joined(separator: "\n")
    }
}
