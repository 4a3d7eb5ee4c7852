// Control commands: everything that connects to a device and goes through the facade, so any
// protocol that implements a call serves it (MRP > DMAP > Companion > AirPlay > RAOP; power
// prefers Companion). When none does, the error names the missing feature.
import ArgumentParser
import ATV
import ATVCore
import ATVDiscovery
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// How control commands reach a device besides --to/--host/--port, and where credentials come from.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("protocol"),
            help: "With --host: the protocol --port belongs to (companion, airplay, raop, mrp, dmap; default companion).")
    var protocolName: String?

    @Option(name: .customLong("service"), parsing: .singleValue,
            help: "With --host: a service as PROTO:PORT, repeatable (e.g. --service companion:49153 --service airplay:7000).")
    var services: [String] = []

    @Option(help: "Settings file with stored credentials (default $XDG_CONFIG_HOME/swift-atv/devices.json).")
    var storage: String?

    @Option(help: "Companion credentials to use instead of the stored ones.")
    var companionCredentials: String?

    @Option(help: "MRP credentials to use instead of the stored ones.")
    var mrpCredentials: String?

    @Option(help: "DMAP credentials (pairing GUID 0x… or Home Sharing id) to use instead of the stored ones.")
    var dmapCredentials: String?

    @Option(help: "AirPlay credentials to use instead of the stored ones.")
    var airplayCredentials: String?

    @Option(help: "MRP through the AirPlay 2 remote-control channel: auto (HomePods, tvOS 15+), force or disable.")
    var mrpTunnel: String = "auto"

    func tunnelMode() throws -> MRPTunnel {
        guard let m = MRPTunnel(rawValue: mrpTunnel) else {
            throw ATVError.invalidValue("--mrp-tunnel \(mrpTunnel): use auto, force or disable")
        }
        return m
    }

    /// Credentials given on the command line, per protocol.
    var commandLineCredentials: [(ATVProtocol, String)] {
        [(.companion, companionCredentials), (.mrp, mrpCredentials), (.dmap, dmapCredentials), (.airplay, airplayCredentials)]
            .compactMap { p, c in c.map { (p, $0) } }
    }

    static let defaultPorts: [ATVProtocol: Int] = [.companion: 49153, .airplay: 7000, .raop: 7000, .mrp: 49152, .dmap: 3689]

    func parseProtocol(_ name: String) throws -> ATVProtocol {
        guard let p = ATVProtocol(key: name) else {
            throw ATVError.invalidValue("unknown protocol '\(name)': use companion, airplay, raop, mrp or dmap")
        }
        return p
    }

    /// The services given on the command line (for --host).
    func commandLineServices(host: String, port: Int?) throws -> [ServiceConfig] {
        var out: [ServiceConfig] = []
        for spec in services {
            let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let port = Int(parts[1]), (1 ... 65535).contains(port) else {
                throw ATVError.invalidValue("--service \(spec): expected PROTO:PORT, e.g. companion:49153")
            }
            out.append(ServiceConfig(protocol: try parseProtocol(String(parts[0])), identifier: host, port: port))
        }
        if port != nil || protocolName != nil {
            let p = try parseProtocol(protocolName ?? "companion")
            out.append(ServiceConfig(protocol: p, identifier: host, port: port ?? Self.defaultPorts[p] ?? 0))
        }
        return out
    }
}

/// The device to control: from a scan (--to), the services given with --host, or (--host alone)
/// what the host answers to unicast mDNS; stored credentials applied, command-line ones on top.
func controlDevice(_ device: DeviceOptions, _ conn: ConnectionOptions) async throws -> DeviceConfig {
    var config: DeviceConfig
    if device.to == nil, let host = device.host {
        let services = try conn.commandLineServices(host: host, port: device.port)
        config = services.isEmpty ? try await findDevice(device) : DeviceConfig(name: host, address: host, services: services)
    } else {
        config = try await findDevice(device)
        if let p = device.port {
            let proto = try conn.parseProtocol(conn.protocolName ?? "companion")
            config.updateService(proto) { $0.port = p }
        }
    }
    let store = FileStorage(path: conn.storage)
    if config.identifier != nil {
        // A broken settings file is reported (one line), never silently ignored.
        store.apply(try store.settings(for: config), to: &config)
    }
    for (p, c) in conn.commandLineCredentials { config.setCredentials(p, c) }
    return config
}

/// Connect, run `body` with the facade, close. A call no connected protocol implements fails with
/// the feature's name; if Companion was left out for want of credentials, the error says so.
func withDevice<T>(_ device: DeviceOptions, _ conn: ConnectionOptions, _ body: (AppleTV) async throws -> T) async throws -> T {
    let config = try await controlDevice(device, conn)
    let atv = try await connectWithin(device, config, options: ConnectOptions(mrpTunnel: try conn.tunnelMode()))
    do {
        let result = try await body(atv)
        await atv.close()
        return result
    } catch ATVError.notSupported(let feature) {
        await atv.close()
        if let c = config.service(.companion), c.credentials?.isEmpty ?? true, !atv.protocols.contains(.companion) {
            StandardStream.writeError("atv: error: \(ATVError.notSupported(feature)); Companion might, but it has no credentials: pair with `atv pair --protocol companion`\n")
            throw ExitCode(exitCode(for: .notSupported(feature)))
        }
        throw ATVError.notSupported(feature)
    } catch {
        await atv.close()
        throw error
    }
}

/// `{"result": "success", "datetime": …, …}` (atvscript's envelope).
func printSuccess(_ fields: [String: Any], json: Bool) {
    guard json else { return }
    var object = fields
    object["result"] = "success"
    object["datetime"] = isoNow()
    printJSON(object)
}

// MARK: Playing

enum PlayingFormat {
    static func mediaType(_ t: MediaType) -> String {
        switch t { case .unknown: "Unknown"; case .video: "Video"; case .music: "Music"; case .tv: "TV" }
    }
    static func deviceState(_ s: DeviceState) -> String {
        switch s {
        case .idle: "Idle"; case .loading: "Loading"; case .paused: "Paused"; case .playing: "Playing"
        case .stopped: "Stopped"; case .seeking: "Seeking"
        }
    }
    static func repeatState(_ r: RepeatState) -> String {
        switch r { case .off: "Off"; case .track: "Track"; case .all: "All" }
    }
    static func shuffleState(_ s: ShuffleState) -> String {
        switch s { case .off: "Off"; case .albums: "Albums"; case .songs: "Songs" }
    }

    /// pyatv's "  Media type: …" block.
    static func text(_ p: Playing) -> String {
        var out = ["  Media type: \(mediaType(p.mediaType))", "Device state: \(deviceState(p.deviceState))"]
        if let v = p.title { out.append("       Title: \(printable(v))") }
        if let v = p.artist { out.append("      Artist: \(printable(v))") }
        if let v = p.album { out.append("       Album: \(printable(v))") }
        if let v = p.genre { out.append("       Genre: \(printable(v))") }
        if let v = p.seriesName { out.append(" Series Name: \(printable(v))") }
        if let v = p.seasonNumber { out.append("      Season: \(v)") }
        if let v = p.episodeNumber { out.append("     Episode: \(v)") }
        if let v = p.contentIdentifier, !v.isEmpty { out.append("  Identifier: \(printable(v))") }
        if let pos = p.position, let total = p.totalTime, total != 0 {
            out.append("    Position: \(pos)/\(total)s (\(String(cFormat: "%.1f", Double(pos) / Double(total) * 100))%)")
        } else if let pos = p.position, pos != 0 {
            out.append("    Position: \(pos)s")
        } else if let total = p.totalTime, p.position != 0 {
            out.append("  Total time: \(total)s")
        }
        if let r = p.repeat { out.append("      Repeat: \(repeatState(r))") }
        if let s = p.shuffle { out.append("     Shuffle: \(shuffleState(s))") }
        if let i = p.iTunesStoreIdentifier { out.append("iTunes Store Identifier: \(i)") }
        return out.joined(separator: "\n")
    }

    /// atvscript's playing object (enums as lower-case names, missing values null).
    static func json(_ p: Playing, app: App?) -> [String: Any] {
        func v(_ x: Any?) -> Any { ScriptOutput.truthy(x) }
        return [
            "hash": p.hash, "media_type": mediaType(p.mediaType).lowercased(),
            "device_state": deviceState(p.deviceState).lowercased(),
            "title": v(p.title), "artist": v(p.artist), "album": v(p.album), "genre": v(p.genre),
            "total_time": v(p.totalTime), "position": v(p.position),
            "shuffle": shuffleState(p.shuffle ?? .off).lowercased(), "repeat": repeatState(p.repeat ?? .off).lowercased(),
            "series_name": v(p.seriesName), "season_number": v(p.seasonNumber), "episode_number": v(p.episodeNumber),
            "content_identifier": v(p.contentIdentifier), "itunes_store_identifier": v(p.iTunesStoreIdentifier),
            "app": (app?.name).map { $0 as Any } ?? JSONNull(), "app_id": (app?.identifier).map { $0 as Any } ?? JSONNull(),
        ]
    }
}

func runPlaying(_ cmd: PlayingCommand) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        try await withDevice(cmd.device, cmd.connection) { atv in
            let p = try await atv.metadata.playing()
            let app = atv.features.feature(.app).state == .available ? try? await atv.metadata.app() : nil
            if cmd.json {
                printSuccess(PlayingFormat.json(p, app: app ?? nil), json: true)
            } else {
                print(PlayingFormat.text(p))
                if let a = app ?? nil { print("         App: \(printable(a.name ?? "?")) (\(printable(a.identifier)))") }
            }
        }
    }
}

struct Artwork: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Save the artwork of what is playing.",
        discussion: """
        Examples:
          atv artwork --out cover.jpg --to "Living Room"
          atv artwork --out cover.jpg --width 1024 --to Kitchen
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "File to write (the image's bytes as the device sends them).") var out: String
    @Option(help: "Requested width in pixels.") var width: Int = 512
    @Option(help: "Requested height in pixels (default: keep the aspect ratio).") var height: Int?
    @Flag(help: "Print JSON.") var json = false
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            try await withDevice(device, connection) { atv in
                guard let art = try await atv.metadata.artwork(width: width, height: height) else {
                    throw ATVError.invalidState("the device has no artwork for what is playing")
                }
                do { try Data(art.bytes).write(to: URL(fileURLWithPath: out)) } catch {
                    throw ATVError.badInput("cannot write \(out): \(PathName.describe(error))")
                }
                if json {
                    printSuccess(["artwork": ["path": out, "bytes": art.bytes.count, "mimetype": art.mimeType,
                                              "width": art.width, "height": art.height] as [String: Any]], json: true)
                } else {
                    print("Wrote \(art.bytes.count) bytes (\(art.mimeType), \(art.width)x\(art.height)) to \(out)")
                }
            }
        }
    }
}

// MARK: Push updates

func runPushUpdates(_ cmd: PushUpdates) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        let config = try await controlDevice(cmd.device, cmd.connection)
        let atv = try await connect(config, options: ConnectOptions(mrpTunnel: try cmd.connection.tunnelMode()))
        guard atv.features.feature(.pushUpdates).state == .available else {
            await atv.close()
            throw ATVError.notSupported(.pushUpdates)
        }
        // Updates flow only from protocols that are connected: set them up now, so a failure is
        // reported here rather than as silence.
        do { try await atv.setUp() } catch {
            await atv.close()
            throw error
        }
        let updates = atv.updates()
        let interrupts = InterruptHandler { Task { await atv.close() } }
        defer { interrupts.cancel() }
        if cmd.json { printSuccess(["push_updates": "started"], json: true) } else { print("Waiting for updates (Ctrl-C to stop)") }
        // What is known at start.
        if atv.features.feature(.powerState).state == .available, let p = try? await atv.power.powerState() {
            emit(.powerState(p), json: cmd.json)
        }
        fflush(nil)
        var lost: String?
        var levels: [String: Double] = [:]
        for await update in updates {
            switch update {
            case .connectionLost(let why): lost = why
            case .connectionClosed: lost = "the device closed the connection"
            case .outputDeviceVolume(let id, let v) where cmd.json:
                // atvscript's volume_device_update: old and new level of that output device.
                printSuccess(["output_device_id": id, "old_level": levels[id] ?? JSONNull(), "new_level": v], json: true)
                levels[id] = v
            default: emit(update, json: cmd.json)
            }
            fflush(nil)
        }
        await atv.close()
        if interrupts.interrupted {
            if cmd.json { printSuccess(["push_updates": "finished"], json: true) }
            return
        }
        let why = lost ?? "the device went away"
        // atvscript's connection_lost object is the last line (not a second failure object).
        let error = ATVError.connectionLost(why)
        if cmd.json { printJSON(ScriptOutput.failure(error, values: ["connection": "lost"])) }
        StandardStream.writeError("atv: error: \(printable(error.description))\n")
        throw ExitCode(exitCode(for: error))
    }
}

private func powerName(_ p: PowerState) -> String {
    switch p { case .on: "on"; case .off: "off"; case .unknown: "unknown" }
}

private func focusName(_ f: KeyboardFocusState) -> String {
    switch f { case .focused: "focused"; case .unfocused: "unfocused"; case .unknown: "unknown" }
}

func emit(_ update: DeviceUpdate, json: Bool) {
    switch update {
    case .playing(let p):
        if json { printSuccess(PlayingFormat.json(p, app: nil), json: true) } else { print(PlayingFormat.text(p)); print(String(repeating: "-", count: 20)) }
    case .volume(let v):
        if json { printSuccess(["volume": v], json: true) } else { print("Volume: \(formatVolume(v))") }
    case .outputDeviceVolume(let id, let v):
        if json { printSuccess(["output_device_id": id, "new_level": v], json: true) } else { print("Volume of \(printable(id)): \(formatVolume(v))") }
    case .outputDevices(let list):
        if json {
            printSuccess(["output_devices": list.map { ["name": $0.name ?? JSONNull(), "identifier": $0.identifier] as [String: Any] }], json: true)
        } else {
            print("Output devices: " + list.map { "\(printable($0.name ?? "?")) (\(printable($0.identifier)))" }.joined(separator: ", "))
        }
    case .powerState(let p):
        if json { printSuccess(["power_state": powerName(p)], json: true) } else { print("Power: \(powerName(p))") }
    case .keyboardFocus(let f):
        if json { printSuccess(["focus_state": focusName(f)], json: true) } else { print("Keyboard focus: \(focusName(f))") }
    case .connectionLost, .connectionClosed:
        break
    }
}

func formatVolume(_ v: Double) -> String {
    v == v.rounded() ? String(Int(v)) : String(cFormat: "%.1f", v)
}

// MARK: Remote, power, volume

func runRemote(_ button: Remote.Button, _ cmd: RemoteOptions) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        let action: InputAction = cmd.hold ? .hold : cmd.double ? .doubleTap : .singleTap
        try await withDevice(cmd.device, cmd.connection) { atv in
            let r = atv.remoteControl
            switch button {
            case .up: try await r.up(action)
            case .down: try await r.down(action)
            case .left: try await r.left(action)
            case .right: try await r.right(action)
            case .select: try await r.select(action)
            case .menu: try await r.menu(action)
            case .home: try await r.home(action)
            case .homeHold: try await r.homeHold()
            case .topMenu: try await r.topMenu()
            case .play: try await r.play()
            case .pause: try await r.pause()
            case .playPause: try await r.playPause()
            case .stop: try await r.stop()
            case .next: try await r.next()
            case .previous: try await r.previous()
            case .skipForward: try await r.skipForward(cmd.interval ?? 0)
            case .skipBackward: try await r.skipBackward(cmd.interval ?? 0)
            case .channelUp: try await r.channelUp()
            case .channelDown: try await r.channelDown()
            case .screensaver: try await r.screensaver()
            case .guide: try await r.guide()
            case .controlCenter: try await r.controlCenter()
            case .volumeUp: try await atv.audio.volumeUp()
            case .volumeDown: try await atv.audio.volumeDown()
            }
        }
        if cmd.json { printSuccess(["command": button.rawValue], json: true) } else { print("OK \(button.rawValue)") }
    }
}

func runPower(_ cmd: PowerCommand) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        let state: PowerState = try await withDevice(cmd.device, cmd.connection) { atv in
            switch cmd.action {
            case .on: try await atv.power.turnOn(awaitNewState: !cmd.noWait)
            case .off: try await atv.power.turnOff(awaitNewState: !cmd.noWait)
            case .state, .status: break
            }
            return try await atv.power.powerState()
        }
        if cmd.json { printSuccess(["power_state": powerName(state)], json: true) } else { print("Power: \(powerName(state))") }
    }
}

func runVolume(_ cmd: VolumeCommand) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        // A running `atv stream` that holds the device sets it there (a second connection would
        // start a second session); otherwise talk to the device.
        if let held = try await volumeThroughRunningStream(cmd) {
            if cmd.json {
                printSuccess(["volume": held.volume, "stream_pid": Int(held.pid)], json: true)
            } else {
                print("Volume: \(formatVolume(held.volume)) (set in the running stream, pid \(held.pid), to \(printable(held.device.name)))")
            }
            return
        }
        let level: Double = try await withDevice(cmd.device, cmd.connection) { atv in
            switch cmd.level {
            case nil: break
            case "up": try await atv.audio.volumeUp()
            case "down": try await atv.audio.volumeDown()
            case let l?:
                guard let v = Double(l) else { throw ATVError.invalidValue("volume \(l) is not a number") }
                try await atv.audio.setVolume(v)
            }
            return try await atv.audio.volume()
        }
        if cmd.json { printSuccess(["volume": level], json: true) } else { print("Volume: \(formatVolume(level))") }
    }
}

/// Which running stream `atv volume` may set the level in: the device named by --to or --host
/// (a one-address --hosts), with --port as a filter on the stream's port. A stream plays over
/// RAOP or AirPlay, so a command that names its protocols explicitly (--protocol, --service) asks
/// a stream only when one of them is RAOP or AirPlay, on that service's port: `atv volume 30
/// --host 10.0.0.5 --service mrp:49152` goes to the device's MRP, even while a stream to another
/// service of that address plays. nil: ask no stream.
func runningStreamQuery(_ device: DeviceOptions, _ conn: ConnectionOptions) throws -> (reference: String, port: Int?)? {
    guard let reference = device.to ?? device.host ?? (device.hostList.count == 1 ? device.hostList[0] : nil) else { return nil }
    let streaming: Set<ATVProtocol> = [.raop, .airplay]
    if let name = conn.protocolName, !streaming.contains(try conn.parseProtocol(name)) { return nil }
    guard !conn.services.isEmpty else { return (reference, device.port) }
    let named = try conn.commandLineServices(host: reference, port: device.port).filter { streaming.contains($0.protocol) }
    guard let service = named.first else { return nil }
    return (reference, service.port)
}

/// `atv volume` through the running stream that holds the device, if one does: the level to
/// set (or show), or nil when no running stream holds it.
func volumeThroughRunningStream(_ cmd: VolumeCommand) async throws -> StreamControlVolumeResult? {
    guard let (reference, port) = try runningStreamQuery(cmd.device, cmd.connection) else { return nil }
    switch cmd.level {
    case nil: return await StreamControl.volume(device: reference, port: port)
    case "up": return try await StreamControl.setVolume(delta: 5, device: reference, port: port)
    case "down": return try await StreamControl.setVolume(delta: -5, device: reference, port: port)
    case let l?:
        guard let v = Double(l) else { throw ATVError.invalidValue("volume \(l) is not a number") }
        return try await StreamControl.setVolume(v, device: reference, port: port)
    }
}

// MARK: Apps, accounts, text

func runApps(_ cmd: AppsCommand) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors(json: cmd.json) {
        if let target = cmd.launch {
            try await withDevice(cmd.device, cmd.connection) { try await $0.apps.launchApp(target) }
            if cmd.json { printSuccess(["launched": target], json: true) } else { print("Launched \(printable(target))") }
            return
        }
        let apps = try await withDevice(cmd.device, cmd.connection) { try await $0.apps.appList() }
        if cmd.json {
            printSuccess(["apps": apps.map { ["name": $0.name ?? JSONNull(), "identifier": $0.identifier] as [String: Any] }], json: true)
        } else {
            for a in apps { print("App: \(printable(a.name ?? "?")) (\(printable(a.identifier)))") }
        }
    }
}

struct Launch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Launch an app by bundle identifier, or open a URL (Companion).",
        discussion: """
        Examples:
          atv launch com.netflix.Netflix --to "Living Room"
          atv launch https://www.youtube.com/watch?v=… --to "Living Room"
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bundle identifier or URL.") var target: String
    @Flag(help: "Print JSON.") var json = false
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            try await withDevice(device, connection) { try await $0.apps.launchApp(target) }
            if json { printSuccess(["launched": target], json: true) } else { print("Launched \(printable(target))") }
        }
    }
}

struct Accounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List user accounts, or switch to one (Companion).",
        discussion: """
        Examples:
          atv accounts --to "Living Room"
          atv accounts switch A1B2C3 --to "Living Room"
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "'list' (default) or 'switch'.") var action: String = "list"
    @Argument(help: "With switch: the account identifier.") var id: String?
    @Flag(help: "Print JSON.") var json = false
    func validate() throws {
        guard action == "list" || action == "switch" else { throw ValidationError("expected 'list' or 'switch ID'") }
        if action == "switch" && id == nil { throw ValidationError("switch needs an account identifier") }
    }
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            if action == "switch", let id {
                try await withDevice(device, connection) { try await $0.userAccounts.switchAccount(id) }
                if json { printSuccess(["switched": id], json: true) } else { print("Switched to account \(printable(id))") }
                return
            }
            let list = try await withDevice(device, connection) { try await $0.userAccounts.accountList() }
            if json {
                printSuccess(["accounts": list.map { ["name": $0.name, "identifier": $0.identifier] }], json: true)
            } else {
                for a in list { print("Account: \(printable(a.name)) (\(printable(a.identifier)))") }
            }
        }
    }
}

struct Text: AsyncParsableCommand {
    enum Action: String, ExpressibleByArgument, CaseIterable { case get, set, append, clear, focus }
    static let configuration = CommandConfiguration(abstract: "Read or change the text of the focused text field (Companion).",
        discussion: """
        Examples:
          atv text set "star wars" --to "Living Room"
          atv text get --to "Living Room"
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "get, set, append, clear or focus.") var action: Action
    @Argument(help: "The text (set, append).") var text: String?
    @Flag(help: "Print JSON.") var json = false
    func validate() throws {
        if action == .set || action == .append, text == nil { throw ValidationError("\(action.rawValue) needs the text") }
    }
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            let result: String? = try await withDevice(device, connection) { atv in
                let k = atv.keyboard
                switch action {
                case .get:
                    guard let t = try await k.textGet() else { throw ATVError.invalidState("no text field has focus on the device") }
                    return t
                case .set: try await k.textSet(text ?? "")
                case .append: try await k.textAppend(text ?? "")
                case .clear: try await k.textClear()
                case .focus: return focusName(try await k.textFocusState())
                }
                return nil
            }
            switch (action, json) {
            case (.get, true): printSuccess(["text": result ?? ""], json: true)
            case (.get, false): print(printable(result ?? ""))
            case (.focus, true): printSuccess(["focus_state": result ?? "unknown"], json: true)
            case (.focus, false): print("Keyboard focus: \(result ?? "unknown")")
            case (_, true): printSuccess(["command": "text_\(action.rawValue)"], json: true)
            case (_, false): print("OK text \(action.rawValue)")
            }
        }
    }
}
