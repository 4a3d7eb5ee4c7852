/// Every feature a device can have, with pyatv's numeric ids (67 is unused).
public enum FeatureName: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case up = 0, down, left, right, play, playPause, pause, stop, next, previous
    case select = 10, menu, volumeUp, volumeDown, home, homeHold, topMenu, suspend, wakeUp, setPosition
    case setShuffle = 20, setRepeat, title, artist, album, genre, totalTime, position, shuffle, `repeat`
    case artwork = 30, playURL, powerState, turnOn, turnOff, app, skipForward, skipBackward, appList, launchApp
    case seriesName = 40, seasonNumber, episodeNumber, pushUpdates, streamFile, volume, setVolume,
         contentIdentifier, channelUp, channelDown
    case iTunesStoreIdentifier = 50, textGet, textClear, textAppend, textSet, accountList, switchAccount,
         textFocusState, screensaver, outputDevices
    case addOutputDevices = 60, removeOutputDevices, setOutputDevices, swipe, action, click, guide
    case controlCenter = 68

    /// pyatv's spelling (`PlayPause`, `iTunesStoreIdentifier`, `PlayUrl`), used in CLI output.
    public var description: String {
        self == .controlCenter ? "ControlCenter" : FeatureName.names[rawValue]
    }

    private static let names = [
        "Up", "Down", "Left", "Right", "Play", "PlayPause", "Pause", "Stop",
        "Next", "Previous", "Select", "Menu", "VolumeUp", "VolumeDown", "Home", "HomeHold",
        "TopMenu", "Suspend", "WakeUp", "SetPosition", "SetShuffle", "SetRepeat", "Title", "Artist",
        "Album", "Genre", "TotalTime", "Position", "Shuffle", "Repeat", "Artwork", "PlayUrl",
        "PowerState", "TurnOn", "TurnOff", "App", "SkipForward", "SkipBackward", "AppList", "LaunchApp",
        "SeriesName", "SeasonNumber", "EpisodeNumber", "PushUpdates", "StreamFile", "Volume", "SetVolume", "ContentIdentifier",
        "ChannelUp", "ChannelDown", "iTunesStoreIdentifier", "TextGet", "TextClear", "TextAppend", "TextSet", "AccountList",
        "SwitchAccount", "TextFocusState", "Screensaver", "OutputDevices", "AddOutputDevices", "RemoveOutputDevices", "SetOutputDevices", "Swipe",
        "Action", "Click", "Guide",
    ]
}

public enum FeatureState: Int, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Supported by the device, availability unknown.
    case unknown = 0
    case unsupported = 1
    case unavailable = 2
    case available = 3

    public var description: String {
        switch self {
        case .unknown: "Unknown"
        case .unsupported: "Unsupported"
        case .unavailable: "Unavailable"
        case .available: "Available"
        }
    }
}

public struct FeatureInfo: Sendable, Equatable, Codable {
    public var state: FeatureState
    public var options: [String: String]
    public init(_ state: FeatureState, options: [String: String] = [:]) {
        self.state = state
        self.options = options
    }
    public static let unsupported = FeatureInfo(.unsupported)
    public static let available = FeatureInfo(.available)
}

/// What a protocol (or the facade) says about features.
public protocol Features: Sendable {
    /// The state of one feature. Protocols return `.unsupported` for features they do not claim.
    func feature(_ name: FeatureName) -> FeatureInfo
}

extension Features {
    /// Every feature and its state; unsupported ones only if asked for.
    public func allFeatures(includeUnsupported: Bool = false) -> [FeatureName: FeatureInfo] {
        var out: [FeatureName: FeatureInfo] = [:]
        for name in FeatureName.allCases {
            let info = feature(name)
            if includeUnsupported || info.state != .unsupported { out[name] = info }
        }
        return out
    }

    /// True if every named feature is in one of the given states.
    public func inState(_ states: Set<FeatureState>, _ names: FeatureName...) -> Bool {
        names.allSatisfy { states.contains(feature($0).state) }
    }
}

/// A fixed feature table, handy for protocols whose claims do not change.
package struct StaticFeatures: Features {
    package var table: [FeatureName: FeatureInfo]
    package init(_ table: [FeatureName: FeatureInfo]) { self.table = table }
    package init(available names: Set<FeatureName>) {
        self.table = Dictionary(uniqueKeysWithValues: names.map { ($0, FeatureInfo.available) })
    }
    package func feature(_ name: FeatureName) -> FeatureInfo { table[name] ?? .unsupported }
}
