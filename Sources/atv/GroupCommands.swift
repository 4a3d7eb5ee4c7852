import ArgumentParser
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `atv group`: speaker groups, per-device audio offsets and audio routes, kept in the settings file.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "group",
        abstract: "Speaker groups for multi-room streams; per-device offsets, routes.",
        discussion: """
        A group names several speakers: `atv stream song.flac --to Downstairs` streams to every \
        member in step. Members are what --to takes (a name, identifier or address), resolved \
        when a stream starts. Groups, offsets and routes are kept in the settings file \
        ($XDG_CONFIG_HOME/swift-atv/devices.json).

        Examples:
          atv group add Downstairs Kitchen "Living Room"
          atv group list
          atv group offset Kitchen 40
          atv group route Kitchen --timing ptp
          atv group remove Downstairs
        """,
        subcommands: [GroupAdd.self, GroupRemove.self, GroupList.self, GroupOffset.self, GroupRoute.self],
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
        abstract: "List groups and their members, and the devices' offsets and routes.",
        discussion: """
        Examples:
          atv group list
          atv group list --json
        """)
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?
    @Flag(help: "Print JSON ({\"groups\": [{\"name\", \"members\"}], \"offsets\": {…}, \"routes\": {…}}).") var json = false

    func run() async throws {
        try await runReportingErrors(json: json) {
            let store = FileStorage(path: storage)
            let groups = try store.groups()
            let offsets = try store.audioOffsets()
            let routes = try store.audioRoutes()
            if json {
                printSuccess(["groups": groups.map { ["name": $0.name, "members": $0.members] as [String: Any] },
                              "offsets": offsets, "routes": routes.mapValues(GroupText.json)], json: true)
                return
            }
            print(GroupText.list(groups: groups, offsets: offsets, routes: routes, path: store.path))
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

struct GroupRoute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "route",
        abstract: "Show or set a device's AirPlay 2 timing and buffering.",
        usage: "atv group route <device> [--timing <timing>] [--buffered <buffered>]",
        discussion: """
        What `atv stream --timing/--buffered` would say, kept for one device: a group can hold \
        one receiver on PTP timing and another on buffered audio. An option left out keeps its \
        stored value; auto removes it. For a single-device stream the stored route applies \
        where the command line leaves --timing/--buffered at auto.

        Examples:
          atv group route Kitchen --timing ptp
          atv group route "Living Room" --buffered on
          atv group route Kitchen
          atv group route Kitchen --timing auto --buffered auto
        """)
    @Argument(help: "The device: a name, identifier or address.") var device: String
    @Option(help: "auto, ntp or ptp (omit both options to show the route).") var timing: String?
    @Option(help: "auto, on or off.") var buffered: String?
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let store = FileStorage(path: storage, lockTimeout: .seconds(4))
            // Checked before the file is read: a bad value is the error, whatever the file holds.
            let given = try AudioRoutePreference(timing: timing, buffered: buffered).normalized()
            let old = SpeakerGroups.audioRoute(in: try store.audioRoutes(), references: [device])
            guard timing != nil || buffered != nil else {
                print("Audio route of \(printable(device)): \(GroupText.route(old))")
                return
            }
            let route = AudioRoutePreference(timing: timing == nil ? old?.timing : given.timing,
                                             buffered: buffered == nil ? old?.buffered : given.buffered)
            let stored = try store.setAudioRoute(route, for: device)
            print(stored == nil ? "Removed the audio route of \(printable(device))"
                                : "Audio route of \(printable(device)): \(GroupText.route(stored))")
        }
    }
}

/// The text `atv group list` prints.
enum GroupText {
    /// "timing ptp, buffered auto"; nil → "timing auto, buffered auto".
    static func route(_ r: AudioRoutePreference?) -> String {
        "timing \(r?.timing ?? "auto"), buffered \(r?.buffered ?? "auto")"
    }

    /// The stored values only: {"timing": "ptp"}.
    static func json(_ r: AudioRoutePreference) -> [String: String] {
        var out: [String: String] = [:]
        if let t = r.timing { out["timing"] = t }
        if let b = r.buffered { out["buffered"] = b }
        return out
    }

    /// 40 → "40 ms", -12.5 → "-12.5 ms".
    static func milliseconds(_ v: Double) -> String {
        (v == v.rounded() ? String(Int(v)) : String(v)) + " ms"
    }

    static func list(groups: [SpeakerGroup], offsets: [String: Double], routes: [String: AudioRoutePreference] = [:],
                     path: String) -> String {
        var lines: [String] = []
        if groups.isEmpty { lines.append("No groups in \(path)") }
        for g in groups {
            lines.append("Group \(printable(g.name)): " + g.members.map { m in
                let off = SpeakerGroups.offset(in: offsets, references: [m])
                var notes = off == 0 ? [] : ["offset \(milliseconds(off))"]
                if let r = SpeakerGroups.audioRoute(in: routes, references: [m]) { notes.append(route(r)) }
                return printable(m) + (notes.isEmpty ? "" : " (\(notes.joined(separator: ", ")))")
            }.joined(separator: ", "))
        }
        let listed = Set(groups.flatMap(\.members).map { $0.lowercased() })
        for (device, v) in offsets.sorted(by: { $0.key.lowercased() < $1.key.lowercased() })
            where !listed.contains(device.lowercased()) {
            lines.append("Offset of \(printable(device)): \(milliseconds(v))")
        }
        for (device, r) in routes.sorted(by: { $0.key.lowercased() < $1.key.lowercased() })
            where !listed.contains(device.lowercased()) {
            lines.append("Audio route of \(printable(device)): \(route(r))")
        }
        return lines.joined(separator: "\n")
    }
}
