import ArgumentParser
import ATV
import ATVCore
import ATVAudio
import ATVDiscovery
import ATVRAOP
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream",
        abstract: "Stream a file, URL or stdin (-) to a speaker in real time.",
        discussion: """
        AirPlay 1 or 2 follows the receiver's features (--airplay-version overrides it). Ctrl-C \
        stops cleanly: the receiver gets a TEARDOWN.

        AirPlay 2 timing (--timing): NTP by default (what HomePods and Apple TVs are known to \
        play), PTP for receivers that refuse NTP or need PTP (shairport-sync's AirPlay 2 mode, \
        Sonos, Samsung). PTP makes this process the clock master on UDP 319/320: run as root, or \
        allow it with `sudo setcap cap_net_bind_service=+ep $(command -v atv)` or \
        `sudo sysctl -w net.ipv4.ip_unprivileged_port_start=319`. -v logs the route and why; the \
        last line names it.

        Several receivers (--to repeated, a group from `atv group`, --host repeated or \
        --hosts a,b) play one stream in step: the progress line names each one's route and \
        state; the exit status is 0 when at least one played the whole stream. While it plays, \
        `atv volume 30 --to Kitchen` from another terminal sets that receiver's volume in it.

        Examples:
          atv stream song.flac --to Kitchen
          atv stream song.flac --to Kitchen --to "Living Room"
          atv stream song.flac --to Downstairs
          atv stream https://example.com/radio.mp3 --host 192.168.1.20 --volume 40
          atv stream song.flac --to "Pi Speaker" --timing ptp
          ffmpeg -i in.mkv -f wav - | atv stream - --host 192.168.1.20
          sox in.wav -t raw -r 44100 -e signed -b 16 -c 2 - | \\
            atv stream - --format s16le:44100:2 --host 192.168.1.20
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var targets: StreamTargetOptions
    @Argument(help: "Audio file, http(s) URL, or - for stdin.") var input: String
    @Option(help: "Volume 0-100 for this stream.") var volume: Double?
    @Option(help: "Raw PCM on stdin, e.g. s16le:44100:2.") var format: String?
    @Option(help: "Title shown on the device.") var title: String?
    @Option(help: "Artist shown on the device.") var artist: String?
    @Option(help: "Album shown on the device.") var album: String?
    @Option(help: "Payload codec: alac (the default), pcm, or aac (buffered AirPlay 2 only: AAC-LC 44.1 kHz). Buffered streams without --codec take ALAC, or AAC-LC where the receiver's /info lists only that.")
    var codec: String?
    @Option(help: "Start this far into the input, e.g. 1:30 or 90 (seconds, m:ss or h:mm:ss).") var start: String?
    @Option(help: "Receiver buffer in milliseconds.") var latency: Int = 2000
    @Option(help: "AirPlay version: auto (from the receiver's features), 1 (RAOP) or 2 (HAP-paired, encrypted).")
    var airplayVersion: String = "auto"
    @Option(help: "AirPlay 2 timing: auto (NTP; PTP for receivers that refuse NTP or need PTP), ntp or ptp (needs UDP 319/320).")
    var timing: String = "auto"
    @Option(help: "AirPlay 2 buffered audio (type 103): auto (realtime), on (buffered PTP) or off.")
    var buffered: String = "auto"
    @Option(help: "AirPlay 2: fail when the receiver leaves an RTSP request (the /feedback keep-alive every 2 s, volume, metadata) unanswered this many seconds with no other sign of life.")
    var progressTimeout: Double = 10
    @Option(help: "Send each burst of packets up to this many milliseconds before they are due (0 = one packet per wake-up, smoothest; higher = fewer wake-ups, less CPU). Must stay well below --latency. Default: 24 for AirPlay 1 (RAOP: bursts of at most 4 packets; 0 to HomePods), 40 for AirPlay 2.")
    var sendAhead: Int?
    @Option(help: "Settings file with stored credentials (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func validate() throws {
        if let v = volume, !(0...100).contains(v) { throw ValidationError("--volume must be within 0...100") }
        if format != nil && input != "-" { throw ValidationError("--format applies to raw PCM on stdin (-) only") }
        if let codec {
            guard ["alac", "pcm", "aac"].contains(codec) else { throw ValidationError("--codec must be alac, pcm or aac") }
            if codec == "aac", buffered != "on" { throw ValidationError("--codec aac needs --buffered on (AAC-LC is sent on buffered AirPlay 2 streams only)") }
        }
        guard (100...10_000).contains(latency) else { throw ValidationError("--latency must be within 100...10000 ms") }
        guard AirPlayVersion(rawValue: airplayVersion) != nil else { throw ValidationError("--airplay-version must be auto, 1 or 2") }
        guard AirPlayTimingPreference(rawValue: timing) != nil else { throw ValidationError("--timing must be auto, ntp or ptp") }
        guard AirPlayBufferedPreference(rawValue: buffered) != nil else { throw ValidationError("--buffered must be auto, on or off") }
        if let start, parseStartPosition(start) == nil {
            throw ValidationError("--start must be a position such as 90, 1:30 or 1:02:03")
        }
        if let sendAhead, !(0...500).contains(sendAhead) || sendAhead * 4 > latency {
            throw ValidationError("--send-ahead must be within 0...500 ms and at most a quarter of --latency")
        }
        guard progressTimeout >= 0.5 && progressTimeout <= 600 else { throw ValidationError("--progress-timeout must be within 0.5...600 s") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            let source = try streamSource(input, format: format)
            // Open the input first: a bad file fails before anything touches the network.
            let decoder = try await AudioDecoder.open(source)
            let store = FileStorage(path: storage)
            let plan = try StreamTargetPlan.make(targets, expandedNames: try store.expandTargets(targets.to))
            var raopOptions = RAOPOptions(codec: codec == "pcm" ? .l16 : .alac,
                                          latencyFrames: latency * PCMFormat.sampleRate / 1000, volume: volume)
            raopOptions.progressTimeout = .milliseconds(Int64(progressTimeout * 1000))
            raopOptions.sendAhead = sendAhead.map { .milliseconds($0) }
            raopOptions.timing = AirPlayTimingPreference(rawValue: timing) ?? .auto
            raopOptions.buffered = AirPlayBufferedPreference(rawValue: buffered) ?? .auto
            raopOptions.bufferedCodec = codec.flatMap(AirPlayBufferedCodec.init(rawValue:))
            let device: DeviceOptions
            switch plan {
            case .single(let arguments):
                device = try DeviceOptions.parse(arguments)
            case .several(let names, let addresses, let queryHosts):
                let members = try await resolveGroupTargets(names: names, addresses: addresses, queryHosts: queryHosts, storage: store)
                try await runGroupStream(targets: members, command: self, decoder: decoder, raopOptions: raopOptions, storage: store)
                return
            }
            let config = try await resolveDevice(device, for: .raop, defaultPort: 7000)
            // The device's stored route (`atv group route`) where the command line says auto.
            if let route = try store.audioRoute(reference: device.to ?? device.host, config: config) {
                if raopOptions.timing == .auto, let t = route.timing.flatMap(AirPlayTimingPreference.init(rawValue:)) { raopOptions.timing = t }
                if raopOptions.buffered == .auto, let b = route.buffered.flatMap(AirPlayBufferedPreference.init(rawValue:)) { raopOptions.buffered = b }
            }
            let atv = try await connectWithin(device, config, options: ConnectOptions(raop: raopOptions, airPlayVersion: AirPlayVersion(rawValue: airplayVersion) ?? .auto),
                                              storage: store)
            defer { Task { await atv.close() } }

            // Ctrl-C stops the stream once it runs (the stream has then taken over remote control).
            let started = Mutex(false)
            let interrupts = InterruptHandler {
                if started.withLock({ $0 }) { Task { try? await atv.remoteControl.stop() } }
            }
            defer { interrupts.cancel() }
            let user = MediaMetadata(title: title, artist: artist, album: album)
            let name = title ?? decoder.info.metadata.title ?? (input == "-" ? "stdin" : URL(fileURLWithPath: input).lastPathComponent)
            let tty = isatty(STDOUT_FILENO) == 1
            let progress = atv.stream.progress()
            // Other terminals reach this stream's volume (`atv volume 30 --to ...`) through its
            // control socket; a stream that cannot open one plays on without it.
            let lastState = Mutex<String?>(nil)
            let controlDevice = StreamControlDevice(config: config, port: atv.raop?.client.port)
            let control = try? await StreamControlServer.start(devices: [controlDevice], actions: StreamControlActions(
                setVolume: { _, percent in try await atv.audio.setVolume(percent) },
                status: { [StreamControlMemberStatus(device: controlDevice, volume: atv.raop?.volume, state: lastState.withLock { $0 })] }))
            let progressTask = Task {
                for await p in progress {
                    started.withLock { $0 = true }
                    lastState.withLock { $0 = "\(p.state)" }
                    guard tty, p.state != .finished, p.state != .failed else { continue }
                    let total = (p.duration ?? decoder.info.duration).map { " / " + formatDuration($0) } ?? ""
                    let vol = p.volume.map { "  vol \(Int($0.rounded()))%" } ?? ""
                    let line = "\u{1B}[2K\r\(p.state == .paused ? "⏸" : "▶") \(name)  \(formatDuration(max(0, p.position)))\(total)\(vol)"
                    StandardStream.writeOutput(line)
                }
            }
            let result = try await playing(progress: progressTask, control: control, tty: tty) {
                let from = start.flatMap(parseStartPosition) ?? 0
                return try await atv.stream.streamAudio(PCMStartingAt(decoder, seconds: from), tags: decoder.info.metadata,
                                                        duration: decoder.info.duration, metadata: user)
            }
            let report = result.details
            let seconds = Double(report.sourceFrames) / Double(PCMFormat.sampleRate)
            let how = report.stopped ? "Stopped after" : "Streamed"
            print("\(how) \(formatDuration(seconds)) to \(result.receiver) "
                  + "(\(result.airPlayVersion == .v2 ? "AirPlay 2, " : "")\(report.route.bufferedCodec?.rawValue ?? "\(report.codec)"), \(report.packetsSent) packets, \(report.retransmittedPackets) retransmitted, "
                  + "\(report.route.summary))")
            if interrupts.interrupted { throw ExitCode(130) }
        }
    }
}

/// Runs a stream (`body`), then, however it ended, stops what ran beside it: the progress line's
/// task, the control socket other terminals reach it through, and ends the progress line.
func playing<T>(progress: Task<Void, Never>, control: StreamControlServer?, tty: Bool,
                _ body: () async throws -> T) async throws -> T {
    let result: Result<T, any Error>
    do {
        result = .success(try await body())
    } catch {
        result = .failure(error)
    }
    progress.cancel()
    await control?.stop()
    if tty { print("") }
    return try result.get()
}

/// Find the device a command talks to: by scan (--to, --hosts; see `findDevice`) or by address
/// (--host, no scan).
func resolveDevice(_ opts: DeviceOptions, for proto: ATVProtocol, defaultPort: Int) async throws -> DeviceConfig {
    if let host = opts.host {
        let service = ServiceConfig(protocol: proto, identifier: host, port: opts.port ?? defaultPort)
        return DeviceConfig(name: host, address: host, services: [service])
    }
    return try streamableConfig(try await findDevice(opts), for: proto, port: opts.port)
}

/// A scanned device checked for the service `proto` uses (audio also streams to an AirPlay 2
/// receiver that advertises only `_airplay._tcp`), with `port` put on that service.
func streamableConfig(_ config: DeviceConfig, for proto: ATVProtocol, port: Int?) throws -> DeviceConfig {
    var config = config
    let target = proto == .raop && config.service(.raop) == nil && RAOPService.streamingService(in: config) != nil ? .airplay : proto
    guard config.service(target) != nil else {
        throw ATVError.noService(proto)
    }
    if let p = port { config.updateService(target) { $0.port = p } }
    return config
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a virtual device on loopback.",
        discussion: """
        Examples:
          atv simulate speaker --output got.wav
          atv simulate homepod --no-raop
          atv simulate appletv --tvos15
        """,
        subcommands: [SimulateSpeaker.self, SimulateHomePod.self, SimulateAppleTV.self, SimulateCompanion.self, SimulateMRP.self, SimulateAppleTV3.self,
                     SimulatePTPFollower.self])
}

struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an input's format, duration and tags.",
        discussion: """
        Examples:
          atv probe song.flac
          ffmpeg -i in.mkv -f wav - | atv probe -
        """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Audio file, http(s) URL, or - for stdin.") var input: String
    @Option(help: "Raw PCM on stdin, e.g. s16le:44100:2.") var format: String?
    func run() async throws {
        try await runReportingErrors {
            let source = try streamSource(input, format: format)
            let info = try await probeAudio(source)
            var lines = [
                "Input: \(input == "-" ? "stdin" : input)",
                "Format: \(info.formatName), codec \(info.codecName), \(info.sampleRate) Hz, \(info.channels) channel\(info.channels == 1 ? "" : "s")",
                "Duration: \(info.duration.map(formatDuration) ?? "unknown")",
            ]
            let m = info.metadata
            if let t = m.title { lines.append("Title: \(t)") }
            if let a = m.artist { lines.append("Artist: \(a)") }
            if let a = m.album { lines.append("Album: \(a)") }
            if let art = m.artwork { lines.append("Artwork: \(art.count) bytes (\(imageKind(art)))") }
            print(lines.joined(separator: "\n"))
        }
    }
}

/// Maps the CLI's input argument to a source: "-" is stdin, http(s) is a URL, anything else a file.
func streamSource(_ input: String, format: String?) throws -> StreamSource {
    if input == "-" { return .stdin(rawFormat: try format.map { try RawPCMFormat(parsing: $0) }) }
    if input.hasPrefix("http://") || input.hasPrefix("https://") { return .url(input) }
    if format != nil { throw ATVError.badInput("--format applies to raw PCM on stdin (-) only") }
    return .file(input)
}

/// 3725.5 → "1:02:05", 65 → "1:05".
func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded(.down))
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60)
    return h > 0 ? String(cFormat: "%d:%02d:%02d", h, m, sec) : String(cFormat: "%d:%02d", m, sec)
}

func imageKind(_ bytes: [UInt8]) -> String {
    if bytes.starts(with: [0xFF, 0xD8]) { return "JPEG" }
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "PNG" }
    return "unknown image type"
}
