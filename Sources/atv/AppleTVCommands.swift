import ArgumentParser
import ATV
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDiscovery
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// `atv simulate appletv`: an Apple TV on loopback: the AirPlay video side and the Companion side
/// (and, later, MRP: see `extraSides` below).
struct SimulateAppleTV: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "appletv",
        abstract: "A virtual Apple TV: plays URLs sent over AirPlay, speaks Companion (apps, power, keyboard, buttons) and MRP (now playing, commands, volume).",
        discussion: """
        AirPlay: it answers /server-info, /info, /play, /playback-info, /scrub, /rate, /stop and \
        the pairing endpoints (as a device that needs no pairing, unless --require-pairing or \
        --airplay2: then HAP PIN pairing with --pin, transient pairing, pair-verify and \
        encryption, legacy pairing, and with --airplay2 the AirPlay 2 session), and prints each \
        request and playback event. Test knobs: --fail-play 403|470|500 and \
        --fail-playback-info 500 make it refuse.

        Companion (own port, --companion-port): PIN pairing (--pin), then apps, launching, power, \
        keyboard, accounts, HID buttons and media control; it prints what it saw.

        MRP (own port, --mrp-port; tvOS 14 style, direct): PIN pairing (same --pin), a scripted \
        now-playing queue that advances every --advance seconds, commands, buttons, volume, \
        power; its lines start with "MRP ". With --airplay2 (or --require-pairing) the same MRP \
        device is also reachable through the AirPlay 2 remote-control tunnel (stream SETUP type \
        130); --tvos15 makes it look like tvOS 15 (osvers 15.0, MRP not advertised) so senders \
        choose the tunnel.

        Examples:
          atv simulate appletv --port 7000
          atv play-url https://example.com/film.mp4 --host 127.0.0.1
          atv simulate appletv --airplay2 --tvos15 --pin 1234
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "AirPlay port (0 = any free port).") var port: Int = 0
    @Option(help: "Name of the Apple TV.") var name: String = "swift-atv Apple TV"
    @Option(help: "Device id (MAC style).") var deviceId: String = "AA:BB:CC:DD:EE:01"
    @Option(help: "Media duration in seconds when it cannot be probed.") var duration: Double = 60
    @Option(help: "Answer POST /play with this HTTP status (test knob).") var failPlay: Int?
    @Option(help: "Answer GET /playback-info with this HTTP status (test knob).") var failPlaybackInfo: Int?
    @Option(help: "Exit after this many playbacks ended (0 = run until Ctrl-C).") var sessions: Int = 0
    @Flag(help: "Do not advertise over mDNS (_airplay._tcp, _companion-link._tcp on 127.0.0.1).") var noAdvertise = false
    @Option(help: "Companion port (0 = any free port).") var companionPort: Int = 0
    @Option(help: "The PIN Companion pairing expects (what a real device shows on screen).") var pin: String = "1111"
    @Option(help: "Companion: the accessory's pairing identifier (default: a random UUID).") var pairingId: String?
    @Flag(help: "No Companion side.") var noCompanion = false
    @Option(help: "MRP port (0 = any free port).") var mrpPort: Int = 0
    @Flag(help: "No MRP side.") var noMrp = false
    @Option(help: "MRP: seconds of playing before the scripted queue moves to the next track (0 = never).") var advance: Double = 10
    @Flag(help: "AirPlay: refuse /play and the session (470) until the connection pair-verified (HAP, PIN from --pin).") var requirePairing = false
    @Flag(name: .customLong("airplay2"), help: "AirPlay: advertise AirPlay 2 (features bits 38/48, pk) so senders pair-verify and set up a session before /play.") var airplay2 = false
    @Flag(name: .customLong("tvos15"), help: "Look like tvOS 15 (model AppleTV6,2, osvers 15.0 in the TXT; implies --airplay2): the MRP port is not advertised, so senders with AirPlay credentials reach MRP through the AirPlay 2 tunnel.") var tvos15 = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (0...65535).contains(companionPort) else { throw ValidationError("--companion-port must be 0...65535") }
        guard (0...65535).contains(mrpPort) else { throw ValidationError("--mrp-port must be 0...65535") }
        guard advance >= 0, advance.isFinite else { throw ValidationError("--advance must be ≥ 0") }
        guard !pin.isEmpty, pin.allSatisfy(\.isNumber) else { throw ValidationError("--pin must be digits") }
        let parts = deviceId.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
            throw ValidationError("--device-id must look like AA:BB:CC:DD:EE:FF")
        }
        guard duration.isFinite, duration > 0 else { throw ValidationError("--duration must be > 0") }
        for s in [failPlay, failPlaybackInfo].compactMap({ $0 }) where !(100...599).contains(s) {
            throw ValidationError("HTTP statuses must be within 100...599")
        }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            // MRP side (direct, as tvOS 14 speaks it): PIN pairing, now playing, commands, volume. The
            // same device answers the AirPlay 2 remote-control tunnel (stream type 130).
            var mrpSide: VirtualMRP?
            var mrpConfig: VirtualMRP.Configuration?
            if !noMrp {
                var mc = VirtualMRP.Configuration(port: mrpPort, name: name, pin: pin, advanceInterval: advance > 0 ? advance : nil)
                if let pairingId { mc.identity = HAPIdentity(identifier: pairingId) }
                mrpSide = try await VirtualMRP.start(mc)
                mrpConfig = mc
            }
            let mrp = mrpSide
            var config = VirtualAppleTV.Configuration(
                port: port, name: name, deviceID: deviceId.uppercased(), defaultDuration: duration,
                faults: .init(playStatus: failPlay, playbackInfoStatus: failPlaybackInfo),
                requirePairing: requirePairing, airplay2: airplay2 || tvos15, pin: pin,
                identity: pairingId.map { HAPIdentity(identifier: $0) } ?? HAPIdentity(identifier: UUID().uuidString))
            if tvos15 {
                config.model = "AppleTV6,2"
                config.osVersion = "15.0"
            }
            let atv: VirtualAppleTV
            do {
                atv = try await VirtualAppleTV.start(config, mrp: mrp)
            } catch {
                await mrp?.stop()
                throw error
            }
            let events = atv.events()
            print("Virtual Apple TV \"\(name)\" listening on 127.0.0.1:\(atv.port) (AirPlay)")
            if config.usesPairingFront {
                print("AirPlay pairing: PIN \(pin)\(requirePairing ? ", required for /play" : "")\(config.airplay2 ? ", AirPlay 2 session" : "")\(mrp != nil ? ", MRP tunnel" : "")")
                print("pyatv: atvremote --manual --address 127.0.0.1 --port \(atv.port) --protocol airplay --id \(deviceId.uppercased()) --service-properties \"\(config.servicePropertiesArgument)\"")
            }
            var extraServices: [MDNSService] = []
            // Companion side.
            var companionSide: VirtualCompanion?
            if !noCompanion {
                var cc = VirtualCompanion.Configuration(port: companionPort, name: name, deviceID: deviceId.uppercased(),
                                                        model: config.model, pin: pin)
                if let pairingId { cc.identity = HAPIdentity(identifier: pairingId) }
                let c = try await VirtualCompanion.start(cc)
                companionSide = c
                extraServices += c.mdnsServices()
                print("Companion on 127.0.0.1:\(c.port), PIN \(pin), pairing id \(String(decoding: cc.identity.identifier, as: UTF8.self))")
            }
            let companion = companionSide
            if let m = mrp, let mc = mrpConfig {
                // tvOS 15 no longer advertises MRP: senders go through the AirPlay tunnel.
                if !tvos15 { extraServices += m.mdnsServices() }
                print("MRP on 127.0.0.1:\(m.port)\(tvos15 ? " (not advertised: tvOS 15)" : ""), PIN \(pin), pairing id \(String(decoding: mc.identity.identifier, as: UTF8.self))")
            }
            let responder = noAdvertise ? nil : await advertise(port: atv.port, txt: config.txt, extra: extraServices)
            fflush(nil)
            let stop = InterruptHandler { Task { await responder?.stop(); await companion?.stop(); await mrp?.stop(); await atv.stop() } }
            defer { stop.cancel() }
            let companionLog = companion.map { c in
                Task {
                    var seen = VirtualCompanion.Report()
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                        let r = c.report
                        let lines = companionReportLines(r, since: seen)
                        if !lines.isEmpty {
                            print(lines.joined(separator: "\n"))
                            fflush(nil)
                        }
                        seen = r
                    }
                }
            }
            let mrpLog = mrp.map { m in
                Task {
                    var printer = MRPReportPrinter(m)
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                        let lines = printer.newLines(m).map { "MRP " + $0 }
                        if !lines.isEmpty {
                            print(lines.joined(separator: "\n"))
                            fflush(nil)
                        }
                    }
                }
            }
            var ended = 0
            for await event in events {
                switch event {
                case .request(let line):
                    print("< \(printable(line))")
                case .play(let p):
                    print("Play \(printable(p.url)) from \(p.startSeconds) s")
                case .fetched(let f):
                    if f.ok {
                        print("Fetched \(printable(f.url)): \(f.status ?? 0), \(f.bytes) bytes\(f.contentRange.map { " (\($0))" } ?? "")")
                    } else {
                        print("Cannot fetch \(printable(f.url)): \(printable(f.error ?? "?"))")
                    }
                case .started(_, let d, let p):
                    print("Playing: \(formatDuration(p)) / \(formatDuration(d))")
                case .ended(let url, let reason):
                    ended += 1
                    print("Playback ended (\(reason)): \(printable(url))")
                case .paired(let how):
                    print("Paired (\(how))")
                case .pairingFailed(let what):
                    print("Pairing failed: \(printable(what))")
                }
                fflush(nil)
                if sessions > 0 && ended >= sessions { break }
            }
            companionLog?.cancel()
            mrpLog?.cancel()
            await responder?.stop()
            await companion?.stop()
            await mrp?.stop()
            await atv.stop()
        }
    }

    func advertise(port: Int, txt: [String: String], extra: [MDNSService] = []) async -> MDNSResponder? {
        let compact = deviceId.filter { $0 != ":" }.uppercased()
        let service = MDNSService(instance: name, type: ServiceType.airplay, port: UInt16(port), txt: txt,
                                  hostName: "swift-atv-\(compact.lowercased()).local", address: "127.0.0.1")
        do {
            let r = try await MDNSResponder.start([service] + extra, options: .init(interfaceAddresses: ["127.0.0.1"]))
            let how = r.multicastInterfaces.isEmpty ? "unicast queries only (lo has no multicast)" : "also multicast on lo"
            let types = (["_airplay._tcp"] + extra.map { $0.type.replacing(".local", with: "") }).joined(separator: ", ")
            print("Advertising \"\(name)\" (\(types)) on 127.0.0.1 via mDNS, \(how)")
            return r
        } catch {
            print("Warning: not advertising over mDNS: \(error)")
            return nil
        }
    }
}

/// `atv play-url`: connect, play, show progress on a terminal, return when playback ends.
func playURL(_ cmd: PlayURL) async throws {
    cmd.global.bootstrapLogging()
    try await runReportingErrors {
        let target = cmd.url
        let lower = target.lowercased()
        let isURL = lower.hasPrefix("http://") || lower.hasPrefix("https://")
        if !isURL {
            var isDir = false
            guard FileManager.default.fileExists(atPath: target, isDirectory: &isDir), !isDir else {
                throw ATVError.badInput("\(target): no such file, and not an http(s) URL")
            }
        }
        // Bad input fails before anything touches the network.
        let config = try await resolveDevice(cmd.device, for: .airplay, defaultPort: 7000)
        let atv = try await connectWithin(cmd.device, config, options: ConnectOptions(), storage: cmd.storage.map { FileStorage(path: $0) })
        let interrupts = InterruptHandler { Task { try? await atv.remoteControl.stop() } }
        defer { interrupts.cancel() }
        let name = isURL ? target : URL(fileURLWithPath: target).lastPathComponent
        let tty = isatty(STDOUT_FILENO) == 1
        let progress = atv.stream.progress()
        let last = Mutex<StreamProgress?>(nil)
        let progressTask = Task {
            for await p in progress where p.state != .finished && p.state != .failed {
                last.withLock { $0 = p }
                guard tty else { continue }
                let total = p.duration.map { " / " + formatDuration($0.rounded()) } ?? ""
                let icon = p.state == .paused ? "⏸" : p.state == .loading ? "…" : "▶"
                let line = "\u{1B}[2K\r\(icon) \(printable(name))  \(formatDuration(p.position))\(total)"
                StandardStream.writeOutput(line)
            }
        }
        do {
            try await atv.stream.playURL(target, position: cmd.start)
        } catch {
            progressTask.cancel()
            if tty { print("") }
            await atv.close()
            throw error
        }
        progressTask.cancel()
        if tty { print("") }
        await atv.close()
        // Finished means the device reported the end of the media: the position is its end.
        let at = last.withLock { $0 }.map { p in
            let total = p.duration.map { $0.rounded() }
            let position = !interrupts.interrupted ? (total ?? p.position) : p.position
            return " at " + formatDuration(position) + (total.map { " of " + formatDuration($0) } ?? "")
        } ?? ""
        let port = config.service(.airplay)?.port ?? 0
        print("\(interrupts.interrupted ? "Stopped" : "Finished") playing \(printable(name))\(at) on \(config.address):\(port)")
        if interrupts.interrupted { throw ExitCode(130) }
    }
}

/// What a virtual Companion device saw since `seen`, one line each (`atv simulate companion` and
/// `atv simulate appletv` print these).
func companionReportLines(_ r: VirtualCompanion.Report, since seen: VirtualCompanion.Report) -> [String] {
    var out: [String] = []
    out += r.pairings.dropFirst(seen.pairings.count).map { "Paired with \($0)" }
    out += r.verifications.dropFirst(seen.verifications.count).map { "Verified \($0)" }
    out += r.authFailures.dropFirst(seen.authFailures.count).map { "Authentication failed: \($0)" }
    out += r.messages.dropFirst(seen.messages.count).map { "Message \($0)" }
    out += r.launched.dropFirst(seen.launched.count).map { "Launched \(printable($0))" }
    out += r.textOperations.dropFirst(seen.textOperations.count).map { "Text \(printable($0))" }
    out += r.buttons.dropFirst(seen.buttons.count).map { b in
        let name = b.count == 2 ? CompanionHIDButton(rawValue: b[1]).map { "\($0)" } ?? "code \(b[1])" : "?"
        return "Button \(name) \(b.first == 1 ? "down" : "up")"
    }
    out += r.mediaCommands.dropFirst(seen.mediaCommands.count).map { "Media \($0)" }
    out += r.powerChanges.dropFirst(seen.powerChanges.count).map { "Power \($0)" }
    if let a = r.account, a != seen.account { out.append("Account \(printable(a))") }
    return out
}
