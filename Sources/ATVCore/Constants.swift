// Enumerations shared by every module. Raw values are the ones pyatv uses, so JSON output,
// stored settings and scripts line up with what pyatv users know.

/// A protocol an Apple device speaks.
public enum ATVProtocol: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case dmap = 1, mrp = 2, airplay = 3, companion = 4, raop = 5

    public var description: String {
        switch self {
        case .dmap: "DMAP"
        case .mrp: "MRP"
        case .airplay: "AirPlay"
        case .companion: "Companion"
        case .raop: "RAOP"
        }
    }

    /// Lower-case key used in settings files and on the command line.
    public var key: String { description.lowercased() }

    public init?(key: String) {
        guard let p = ATVProtocol.allCases.first(where: { $0.key == key.lowercased() }) else { return nil }
        self = p
    }

    /// Default relay priority: MRP > DMAP > Companion > AirPlay > RAOP.
    public static let defaultPriority: [ATVProtocol] = [.mrp, .dmap, .companion, .airplay, .raop]
    /// Power prefers Companion, then MRP.
    public static let powerPriority: [ATVProtocol] = [.companion, .mrp, .dmap, .airplay, .raop]
}

public enum MediaType: Int, Sendable, Codable, CaseIterable { case unknown = 0, video, music, tv }
public enum DeviceState: Int, Sendable, Codable, CaseIterable { case idle = 0, loading, paused, playing, stopped, seeking }
public enum RepeatState: Int, Sendable, Codable, CaseIterable { case off = 0, track, all }
public enum ShuffleState: Int, Sendable, Codable, CaseIterable { case off = 0, albums, songs }
public enum PowerState: Int, Sendable, Codable, CaseIterable { case unknown = 0, off, on }
public enum KeyboardFocusState: Int, Sendable, Codable, CaseIterable { case unknown = 0, unfocused, focused }
public enum OperatingSystem: Int, Sendable, Codable, CaseIterable { case unknown = 0, legacy, tvOS, airPortOS, macOS }
public enum InputAction: Int, Sendable, Codable, CaseIterable { case singleTap = 0, doubleTap, hold }
public enum TouchAction: Int, Sendable, Codable, CaseIterable { case press = 1, hold = 3, release = 4, click = 5 }

public enum PairingRequirement: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case unsupported = 1, disabled, notNeeded, optional, mandatory
    public var description: String {
        switch self {
        case .unsupported: "Unsupported"
        case .disabled: "Disabled"
        case .notNeeded: "NotNeeded"
        case .optional: "Optional"
        case .mandatory: "Mandatory"
        }
    }
}

public enum DeviceModel: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case unknown = 0, gen2, gen3, gen4, gen4K, homePod, homePodMini, airPortExpress, airPortExpressGen2,
         appleTV4KGen2, music, appleTV4KGen3, homePodGen2, appleTVGen1

    public var description: String {
        switch self {
        case .unknown: "Unknown"
        case .gen2: "Apple TV 2"
        case .gen3: "Apple TV 3"
        case .gen4: "Apple TV 4"
        case .gen4K: "Apple TV 4K"
        case .homePod: "HomePod"
        case .homePodMini: "HomePod Mini"
        case .airPortExpress: "AirPort Express (gen 1)"
        case .airPortExpressGen2: "AirPort Express (gen 2)"
        case .appleTV4KGen2: "Apple TV 4K (gen 2)"
        case .music: "Music/iTunes"
        case .appleTV4KGen3: "Apple TV 4K (gen 3)"
        case .homePodGen2: "HomePod (gen 2)"
        case .appleTVGen1: "Apple TV 1"
        }
    }
}
