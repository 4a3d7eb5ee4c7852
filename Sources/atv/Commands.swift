import ArgumentParser
import ATV
import ATVCore
import ATVDiscovery
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct PlayURL: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "play-url",
        abstract: "Make an Apple TV play a URL or a local file (AirPlay).",
        usage: "atv play-url [<options>] <url>",
        discussion: """
        Returns when playback ends; Ctrl-C stops playback on the device. A local file is served \
        to the device by a small HTTP server on the address it reaches us on, for the duration.

        Examples:
          atv play-url https://example.com/video.mp4 --to "Living Room"
          atv play-url ~/Movies/clip.mp4 --host 192.168.1.20 --start 90
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @Argument(help: "http(s) URL or local file.") var url: String
    @Option(name: [.customLong("start"), .customLong("position")], help: "Start position in seconds.") var start: Double = 0
    @Option(help: "Settings file with stored AirPlay credentials (from `atv pair --protocol airplay`): the connection is pair-verified and encrypted.") var storage: String?
    func validate() throws {
        guard start.isFinite, start >= 0 else { throw ValidationError("--start must be a number of seconds ≥ 0") }
    }
    func run() async throws { try await playURL(self) }
}

struct PlayingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "playing", abstract: "Show what is playing (every Playing field).",
        discussion: """
        Examples:
          atv playing --to "Living Room"
          atv playing --hosts 192.168.1.20 --json
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON (atvscript's playing object).") var json = false
    func run() async throws { try await runPlaying(self) }
}

struct PushUpdates: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "push-updates",
        abstract: "Print every change the device pushes until interrupted.",
        discussion: """
        One line per change (or one JSON object per line with --json) until Ctrl-C; if the \
        device goes away it ends with a one-line error and a non-zero exit.

        Examples:
          atv push-updates --to "Living Room"
          atv push-updates --to "Living Room" --json | jq .title
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON lines.") var json = false
    func run() async throws { try await runPushUpdates(self) }
}

struct DeviceInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "device-info",
        abstract: "Show model, OS, MAC, identifiers and services (from discovery).",
        usage: "atv device-info [<options>]",
        discussion: """
        Examples:
          atv device-info --to Kitchen
          atv device-info --hosts 192.168.1.20 --json
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @Flag(help: "Print JSON (atvscript's device object).") var json = false
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            let config = try await findDevice(device)
            if json {
                printJSON(["result": "success", "datetime": isoNow(), "device": deviceJSON(config)])
            } else {
                print(describe(config))
            }
        }
    }
}

struct FeaturesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "features",
        abstract: "Connect and list the device's features and their state.",
        discussion: """
        Examples:
          atv features --to "Living Room"
          atv features --host 192.168.1.20 --json
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Include unsupported features.") var all = false
    @Flag(help: "Print JSON ({\"features\": {\"Play\": \"available\", …}}).") var json = false
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            try await withDevice(device, connection) { atv in
                // Features depend on what each protocol learns when it connects: set them all up.
                try await atv.setUp()
                let features = atv.features.allFeatures(includeUnsupported: all)
                if json {
                    var map: [String: String] = [:]
                    for (name, info) in features { map["\(name)"] = "\(info.state)".lowercased() }
                    printSuccess(["features": map], json: true)
                    return
                }
                for name in FeatureName.allCases {
                    guard let info = features[name] else { continue }
                    print("\(name): \(info.state)")
                }
            }
        }
    }
}

/// A device by scan: --to NAME|ID (multicast, or unicast to --hosts), the only device a single
/// --hosts host answers for, or (--host) the device at that address, asked directly by unicast.
func findDevice(_ opts: DeviceOptions) async throws -> DeviceConfig {
    let hosts = opts.hostList
    if let name = opts.to { return try await Discovery.find(name, options: ScanOptions(timeout: 3, hosts: hosts)) }
    if let host = opts.host ?? hosts.first {
        let options = ScanOptions(timeout: 3, hosts: [host])
        let (devices, silent) = try await Discovery.scanAllReportingSilence(options)
        if !silent.isEmpty { throw Discovery.notFound(host, options: options, silentHosts: silent) }
        if opts.host != nil, let d = devices.first(where: { $0.address == host }) ?? devices.first { return d }
        switch devices.count {
        case 0: throw ATVError.deviceNotFound("\(host) answered but announces no Apple TV, HomePod or AirPlay service")
        case 1: return devices[0]
        default:
            let names = devices.map { "'\($0.name)'" }.joined(separator: ", ")
            throw ATVError.deviceNotFound("\(host) answers for \(devices.count) devices (\(names)): say which with --to NAME|ID")
        }
    }
    throw ATVError.invalidConfig("say which device: --to NAME|ID, --host ADDRESS or --hosts ADDRESS")
}

/// Remote-control buttons and playback commands.
struct Remote: AsyncParsableCommand {
    enum Button: String, ExpressibleByArgument, CaseIterable {
        case up, down, left, right, select, menu, home, homeHold = "home-hold", topMenu = "top-menu"
        case play, pause, playPause = "play-pause", stop, next, previous
        case skipForward = "skip-forward", skipBackward = "skip-backward"
        case channelUp = "channel-up", channelDown = "channel-down", screensaver, guide
        case controlCenter = "control-center"
        case volumeUp = "volume-up", volumeDown = "volume-down"
    }
    static let configuration = CommandConfiguration(
        abstract: "Press a button or send a playback command.",
        discussion: "Buttons: " + Button.allCases.map(\.rawValue).joined(separator: ", ") + """
        .

        Each button is also a command of its own: `atv play-pause` is `atv remote play-pause`.

        Examples:
          atv remote play-pause --to "Living Room"
          atv remote select --hold --to "Living Room"
          atv remote skip-forward --interval 30 --to "Living Room"
        """)
    @Argument(help: "The button or command.") var button: Button
    @OptionGroup var options: RemoteOptions
    func run() async throws { try await runRemote(button, options) }
}

/// Everything `atv remote` takes besides the button (shared with the `atv play`-style shortcuts).
struct RemoteOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Double tap.") var double = false
    @Flag(help: "Hold.") var hold = false
    @Option(help: "skip-forward/skip-backward: seconds (default: the app's interval).") var interval: Double?
    @Flag(help: "Print JSON.") var json = false
}

struct PowerCommand: AsyncParsableCommand {
    enum Action: String, ExpressibleByArgument, CaseIterable { case on, off, state, status }
    static let configuration = CommandConfiguration(commandName: "power", abstract: "Turn a device on or off, or show its power state.",
        discussion: """
        on/off wait until the device reports the new state (--no-wait: do not), then print it.

        Examples:
          atv power status --to "Living Room"
          atv power off --to "Living Room"
          atv power on --to "Living Room" --no-wait
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "on, off or status (state).") var action: Action
    @Flag(help: "Do not wait for the device to report the new state.") var noWait = false
    @Flag(help: "Print JSON.") var json = false
    func run() async throws { try await runPower(self) }
}

struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "volume", abstract: "Show or set the volume (0-100), or step it with up/down.",
        discussion: """
        Examples:
          atv volume --to Kitchen
          atv volume 30 --to Kitchen
          atv volume up --to "Living Room"
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "A level 0-100, 'up' or 'down'; omit to show.") var level: String?
    @Flag(help: "Print JSON.") var json = false
    func validate() throws {
        if let l = level, l != "up", l != "down" {
            guard let v = Double(l), (0...100).contains(v) else {
                throw ValidationError("volume must be a number within 0...100, 'up' or 'down'")
            }
        }
    }
    func run() async throws { try await runVolume(self) }
}

struct AppsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apps", abstract: "List apps, or launch one.",
        discussion: """
        Examples:
          atv apps --to "Living Room"
          atv apps --launch com.netflix.Netflix --to "Living Room"
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Bundle identifier or URL to launch (same as `atv launch`).") var launch: String?
    @Flag(help: "Print JSON.") var json = false
    func run() async throws { try await runApps(self) }
}

struct ImportPyatv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-pyatv",
        abstract: "Import pairings from pyatv's storage file (~/.pyatv.conf) into swift-atv's.",
        discussion: """
        Examples:
          atv import-pyatv
          atv import-pyatv ~/backup/pyatv.conf
        """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "pyatv's storage file (default ~/.pyatv.conf).") var file: String?
    @Option(help: "swift-atv's settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let source = file ?? (ProcessInfo.processInfo.environment["HOME"] ?? PathName.homeDirectory()) + "/.pyatv.conf"
            guard FileManager.default.fileExists(atPath: source) else {
                throw ATVError.badInput("\(source): no such file")
            }
            let store = FileStorage(path: storage)
            let n = try store.importPyatv(from: source)
            print("Imported \(n) device\(n == 1 ? "" : "s") from \(source) into \(store.path)")
        }
    }
}
