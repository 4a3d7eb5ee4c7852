import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A named set of speakers streamed to together (`atv group add Downstairs Kitchen "Living Room"`,
/// then `atv stream song.flac --to Downstairs`). Members are device references as `--to` takes
/// them: a name, an identifier or an address; they are resolved when a stream starts.
public struct SpeakerGroup: Sendable, Equatable {
    /// The group's name (unique among groups, compared without regard to case).
    public var name: String
    /// The members, in the order given, without duplicates.
    public var members: [String]

    /// A group of `members` named `name`.
    public init(name: String, members: [String]) {
        self.name = name
        self.members = members
    }
}

/// A device's stored AirPlay 2 audio route (`atv group route`): what `--timing` and `--buffered`
/// would say for it. nil (or "auto") leaves the choice to the command line and the sender's rules.
/// The values are strings here (ATVCore sits below the streaming module); `normalized()` checks
/// them.
public struct AudioRoutePreference: Sendable, Equatable {
    /// The values `timing` may have.
    public static let timingValues = ["auto", "ntp", "ptp"]
    /// The values `buffered` may have.
    public static let bufferedValues = ["auto", "on", "off"]

    /// How the stream is timed: "auto", "ntp" or "ptp"; nil: not stored.
    public var timing: String?
    /// Whether the stream is buffered audio: "auto", "on" or "off"; nil: not stored.
    public var buffered: String?

    /// A preference with `timing` and `buffered` (unchecked; see `normalized()`).
    public init(timing: String? = nil, buffered: String? = nil) {
        self.timing = timing
        self.buffered = buffered
    }

    /// True when neither value says anything beyond "auto".
    public var isEmpty: Bool { timing == nil && buffered == nil }

    /// The preference checked, lowercased, with "auto" as nil. Throws `ATVError.invalidValue`
    /// naming the bad value and the values allowed.
    public func normalized() throws -> AudioRoutePreference {
        func check(_ value: String?, _ allowed: [String], _ what: String) throws -> String? {
            guard let value else { return nil }
            let v = value.trimmingWhitespace().lowercased()
            guard allowed.contains(v) else {
                throw ATVError.invalidValue("\(what) must be \(allowed.dropLast().joined(separator: ", ")) or \(allowed.last ?? ""), "
                                            + "not \(value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } ? "that" : value)")
            }
            return v == "auto" ? nil : v
        }
        return AudioRoutePreference(timing: try check(timing, Self.timingValues, "timing"),
                                    buffered: try check(buffered, Self.bufferedValues, "buffered"))
    }
}

/// The rules for groups and per-device audio offsets, and the expansion of `--to` values: pure
/// functions that `FileStorage` applies to what the settings file holds.
public enum SpeakerGroups {
    /// Top-level key of the settings file holding the groups: `{"NAME": ["member", …]}`.
    public static let groupsKey = "groups"
    /// Top-level key of the settings file holding the audio offsets: `{"device": milliseconds}`.
    public static let offsetsKey = "audio_offsets"
    /// Top-level key of the settings file holding the audio routes:
    /// `{"device": {"timing": "ptp", "buffered": "on"}}`.
    public static let routesKey = "audio_routes"
    /// The offsets a device may have, in milliseconds (positive: its amplifier plays late, so it
    /// is fed earlier).
    public static let offsetRange: ClosedRange<Double> = -2000...2000

    /// Checks a group or device reference: not empty, no control characters, at most 100
    /// characters. Throws `ATVError.invalidValue` naming `what`.
    public static func validateReference(_ text: String, what: String) throws {
        if text.trimmingWhitespace().isEmpty {
            throw ATVError.invalidValue("\(what) must not be empty")
        }
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ATVError.invalidValue("\(what) must not contain control characters")
        }
        if text.count > 100 { throw ATVError.invalidValue("\(what) must be at most 100 characters") }
    }

    /// Parses an offset in milliseconds ("40", "-12.5"); throws `ATVError.invalidValue` unless it
    /// is a finite number within `offsetRange`.
    public static func parseOffset(_ text: String) throws -> Double {
        guard let v = Double(text.trimmingWhitespace()), v.isFinite, offsetRange.contains(v) else {
            throw ATVError.invalidValue("offset must be a number of milliseconds within "
                                        + "\(Int(offsetRange.lowerBound))...\(Int(offsetRange.upperBound))")
        }
        return v
    }

    /// `members` checked and without duplicates (compared without regard to case, first kept).
    /// A member may not be a group (`groupNames`) or the group itself: groups hold devices.
    public static func normalizedMembers(_ members: [String], group: String, groupNames: [String]) throws -> [String] {
        try validateReference(group, what: "the group name")
        guard !members.isEmpty else { throw ATVError.invalidValue("group \(group) needs at least one member") }
        var seen = Set<String>()
        var out: [String] = []
        for m in members {
            try validateReference(m, what: "a member name")
            let key = m.lowercased()
            if key == group.lowercased() || groupNames.contains(where: { $0.lowercased() == key }) {
                throw ATVError.invalidValue("\(m) is a group; members are devices (name, identifier or address)")
            }
            if seen.insert(key).inserted { out.append(m) }
        }
        return out
    }

    /// `--to` values with every group name (without regard to case) replaced by its members;
    /// other values stay as they are. Duplicates are dropped, the first kept, order preserved.
    public static func expand(_ values: [String], groups: [SpeakerGroup]) -> [String] {
        var seen = Set<String>()
        var out: [String] = []
        for v in values {
            let members = groups.first { $0.name.lowercased() == v.lowercased() }?.members ?? [v]
            for m in members where seen.insert(m.lowercased()).inserted { out.append(m) }
        }
        return out
    }

    /// The stored offset of a device: the entry whose key (without regard to case) is one of
    /// `references` (what the user typed, then the device's name, address and identifiers); 0 if
    /// none.
    public static func offset(in offsets: [String: Double], references: [String]) -> Double {
        let lowered = Dictionary(offsets.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        for r in references { if let v = lowered[r.lowercased()] { return v } }
        return 0
    }

    /// The stored audio route of a device: the entry whose key (without regard to case) is one of
    /// `references` (what the user typed, then the device's name, address and identifiers); nil
    /// if none.
    public static func audioRoute(in routes: [String: AudioRoutePreference], references: [String]) -> AudioRoutePreference? {
        let lowered = Dictionary(routes.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        for r in references { if let v = lowered[r.lowercased()] { return v } }
        return nil
    }

    /// The references a resolved device is known by: its name, its address and its identifiers.
    public static func references(of config: DeviceConfig) -> [String] {
        [config.name, config.address] + config.allIdentifiers
    }

    // MARK: Reading and writing the file's values

    static func decodeGroups(_ value: JSONValue?, path: String) throws -> [SpeakerGroup] {
        guard let value else { return [] }
        func invalid() -> ATVError {
            .settings("\(path): \"\(groupsKey)\" must map group names to lists of member names; fix or remove it")
        }
        guard case .object(let map) = value else { throw invalid() }
        return try map.keys.sorted { $0.lowercased() < $1.lowercased() }.map { name in
            guard case .array(let items)? = map[name] else { throw invalid() }
            let members = try items.map { item -> String in
                guard case .string(let s) = item else { throw invalid() }
                return s
            }
            return SpeakerGroup(name: name, members: members)
        }
    }

    static func encodeGroups(_ groups: [SpeakerGroup]) -> JSONValue {
        .object(Dictionary(groups.map { ($0.name, JSONValue.array($0.members.map(JSONValue.string))) },
                           uniquingKeysWith: { a, _ in a }))
    }

    static func decodeOffsets(_ value: JSONValue?, path: String) throws -> [String: Double] {
        guard let value else { return [:] }
        func invalid() -> ATVError {
            .settings("\(path): \"\(offsetsKey)\" must map device names to milliseconds; fix or remove it")
        }
        guard case .object(let map) = value else { throw invalid() }
        var out: [String: Double] = [:]
        for (k, v) in map {
            switch v {
            case .int(let i): out[k] = Double(i)
            case .double(let d): out[k] = d
            default: throw invalid()
            }
        }
        return out
    }

    static func decodeRoutes(_ value: JSONValue?, path: String) throws -> [String: AudioRoutePreference] {
        guard let value else { return [:] }
        func invalid() -> ATVError {
            .settings("\(path): \"\(routesKey)\" must map device names to {\"timing\": auto|ntp|ptp, "
                      + "\"buffered\": auto|on|off}; fix or remove it")
        }
        guard case .object(let map) = value else { throw invalid() }
        var out: [String: AudioRoutePreference] = [:]
        for (device, entry) in map {
            guard case .object(let fields) = entry, Set(fields.keys).isSubset(of: ["timing", "buffered"]) else { throw invalid() }
            func text(_ key: String) throws -> String? {
                switch fields[key] {
                case nil, .null?: return nil
                case .string(let s)?: return s
                default: throw invalid()
                }
            }
            guard let route = try? AudioRoutePreference(timing: try text("timing"), buffered: try text("buffered")).normalized() else {
                throw invalid()
            }
            if !route.isEmpty { out[device] = route }
        }
        return out
    }

    static func encodeRoutes(_ routes: [String: AudioRoutePreference]) -> JSONValue {
        .object(routes.mapValues { route in
            var fields: [String: JSONValue] = [:]
            if let t = route.timing { fields["timing"] = .string(t) }
            if let b = route.buffered { fields["buffered"] = .string(b) }
            return .object(fields)
        })
    }

    static func encodeOffsets(_ offsets: [String: Double]) -> JSONValue {
        .object(offsets.mapValues { $0 == $0.rounded() && abs($0) < 1e15 ? .int(Int64($0)) : .double($0) })
    }
}

extension FileStorage {
    /// The stored speaker groups, sorted by name (as on disk now).
    public func groups() throws -> [SpeakerGroup] {
        try SpeakerGroups.decodeGroups(fileExtras()[SpeakerGroups.groupsKey], path: path)
    }

    /// Stores group `name` with `members` (device names, identifiers or addresses). A group of
    /// that name (without regard to case) is replaced: its members become exactly `members`.
    /// Returns the group as stored and whether it replaced one.
    @discardableResult
    public func setGroup(_ name: String, members: [String]) throws -> (group: SpeakerGroup, replaced: Bool) {
        try modifyFile { _, extra in
            var groups = try SpeakerGroups.decodeGroups(extra[SpeakerGroups.groupsKey], path: path)
            let others = groups.filter { $0.name.lowercased() != name.lowercased() }
            let replaced = others.count != groups.count
            let group = SpeakerGroup(name: name, members: try SpeakerGroups.normalizedMembers(members, group: name, groupNames: others.map(\.name)))
            groups = others + [group]
            extra[SpeakerGroups.groupsKey] = SpeakerGroups.encodeGroups(groups)
            return (group, replaced)
        }
    }

    /// Removes group `name` (without regard to case); returns it, nil if there was none.
    @discardableResult
    public func removeGroup(_ name: String) throws -> SpeakerGroup? {
        try modifyFile { _, extra in
            let groups = try SpeakerGroups.decodeGroups(extra[SpeakerGroups.groupsKey], path: path)
            guard let old = groups.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
            // The key stays (empty): another instance's `save()` keeps the file's value of a key.
            extra[SpeakerGroups.groupsKey] = SpeakerGroups.encodeGroups(groups.filter { $0 != old })
            return old
        }
    }

    /// `--to` values with group names replaced by their members (`SpeakerGroups.expand`).
    /// No values: the file is not read.
    public func expandTargets(_ values: [String]) throws -> [String] {
        guard !values.isEmpty else { return [] }
        return SpeakerGroups.expand(values, groups: try groups())
    }

    /// The stored per-device audio offsets in milliseconds, by device reference.
    public func audioOffsets() throws -> [String: Double] {
        try SpeakerGroups.decodeOffsets(fileExtras()[SpeakerGroups.offsetsKey], path: path)
    }

    /// Stores the audio offset of `device` (a name, identifier or address; replaces an entry
    /// with the same key without regard to case); 0 removes it. Throws `ATVError.invalidValue`
    /// outside `SpeakerGroups.offsetRange`.
    public func setAudioOffset(_ milliseconds: Double, for device: String) throws {
        try SpeakerGroups.validateReference(device, what: "the device name")
        guard milliseconds.isFinite, SpeakerGroups.offsetRange.contains(milliseconds) else {
            throw ATVError.invalidValue("offset must be within \(Int(SpeakerGroups.offsetRange.lowerBound))..."
                                        + "\(Int(SpeakerGroups.offsetRange.upperBound)) ms")
        }
        try modifyFile { _, extra in
            var offsets = try SpeakerGroups.decodeOffsets(extra[SpeakerGroups.offsetsKey], path: path)
            offsets = offsets.filter { $0.key.lowercased() != device.lowercased() }
            if milliseconds != 0 { offsets[device] = milliseconds }
            extra[SpeakerGroups.offsetsKey] = SpeakerGroups.encodeOffsets(offsets)
        }
    }

    /// The audio offset of a resolved device: looked up by `reference` (what the user typed),
    /// then its name, address and identifiers; 0 when none is stored.
    public func audioOffset(reference: String?, config: DeviceConfig) throws -> Double {
        SpeakerGroups.offset(in: try audioOffsets(), references: (reference.map { [$0] } ?? []) + SpeakerGroups.references(of: config))
    }

    /// The stored per-device audio routes (`atv group route`), by device reference; values are
    /// normalized (lowercase, "auto" as nil).
    public func audioRoutes() throws -> [String: AudioRoutePreference] {
        try SpeakerGroups.decodeRoutes(fileExtras()[SpeakerGroups.routesKey], path: path)
    }

    /// Stores the audio route of `device` (a name, identifier or address; replaces an entry with
    /// the same key without regard to case). A preference that is empty once normalized (both
    /// nil or "auto") removes the entry. Throws `ATVError.invalidValue` for a bad value or device
    /// name, leaving the file alone. Returns the preference as stored, nil when removed.
    @discardableResult
    public func setAudioRoute(_ preference: AudioRoutePreference, for device: String) throws -> AudioRoutePreference? {
        try SpeakerGroups.validateReference(device, what: "the device name")
        let route = try preference.normalized()
        return try modifyFile { _, extra in
            var routes = try SpeakerGroups.decodeRoutes(extra[SpeakerGroups.routesKey], path: path)
            routes = routes.filter { $0.key.lowercased() != device.lowercased() }
            if !route.isEmpty { routes[device] = route }
            extra[SpeakerGroups.routesKey] = SpeakerGroups.encodeRoutes(routes)
            return route.isEmpty ? nil : route
        }
    }

    /// The audio route of a resolved device: looked up by `reference` (what the user typed), then
    /// its name, address and identifiers; nil when none is stored.
    public func audioRoute(reference: String?, config: DeviceConfig) throws -> AudioRoutePreference? {
        SpeakerGroups.audioRoute(in: try audioRoutes(),
                                 references: (reference.map { [$0] } ?? []) + SpeakerGroups.references(of: config))
    }
}
