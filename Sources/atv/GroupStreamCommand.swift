// `atv stream` to several receivers at once (issue 17): which devices (`--to` repeated, groups,
// `--host` repeated, `--hosts a,b`), how the stream reports them (one progress line naming every
// member, one outcome line per member, the exit status), and the control socket other terminals
// reach them through. The engine is ATV's `streamGroup` / `GroupAudioStream`; what it reports
// (`RAOPGroupProgress`, `RAOPGroupReport`) is printed as it is.
import ArgumentParser
import ATV
import ATVAudio
import ATVCore
import ATVDiscovery
import ATVRAOP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// MARK: - Which devices

/// How `atv stream` picks its receivers: `DeviceOptions` with `--to` and `--host` repeatable.
struct StreamTargetOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Device name or identifier, or a group (`atv group`); repeat for several receivers.",
        discussion: "Found by scanning once for all of them; with --hosts, among the devices those hosts answer for."))
    var to: [String] = []

    @Option(name: .long, help: "Device IP address, or ADDRESS:PORT (no scan); repeat for several.")
    var host: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Comma-separated hosts to ask by unicast mDNS instead of multicast.",
        discussion: "With --to, the named devices among them; without, every host's only device is a receiver."))
    var hosts: String?

    @Option(name: .long, help: "Port of the receiver's service (with one --host).")
    var port: Int?

    @Option(name: .long, help: "Seconds to wait for each device at each step (default 3).")
    var timeout: Double?

    /// The hosts of --hosts (empty without it).
    var hostList: [String] { parseHostList(hosts) }

    func validate() throws {
        if let timeout, !(timeout.isFinite && (0.1...600).contains(timeout)) {
            throw ValidationError("--timeout must be within 0.1...600 seconds")
        }
        if to.isEmpty && host.isEmpty && hosts == nil {
            throw ValidationError("say which device: --to NAME|ID|GROUP, --host ADDRESS or --hosts ADDRESS")
        }
        if !host.isEmpty && hosts != nil {
            throw ValidationError("--host and --hosts exclude each other: --host ADDRESS talks to it directly, --hosts A,B finds devices by asking them")
        }
        if hosts != nil && hostList.isEmpty { throw ValidationError("--hosts needs at least one address") }
        if let p = port {
            guard (1...65535).contains(p) else { throw ValidationError("--port must be 1...65535") }
            if host.count + to.count > 1 || hostList.count > 1 && to.isEmpty {
                throw ValidationError("--port applies to one receiver; give each --host as ADDRESS:PORT")
            }
        }
        for h in host where (try? StreamTargetPlan.splitHostPort(h)) == nil {
            throw ValidationError("--host \(h) is not an address or ADDRESS:PORT with a port within 1...65535")
        }
    }
}

/// What the target options mean once groups are expanded: one receiver (the single-stream path,
/// as `DeviceOptions`) or several.
enum StreamTargetPlan: Equatable {
    /// Exactly one receiver: the `DeviceOptions` command line for it.
    case single(arguments: [String])
    /// Several: names to find in one scan (among `queryHosts` when given), addresses given
    /// directly, or (neither) the only device of each query host.
    case several(names: [String], addresses: [HostPort], queryHosts: [String])

    /// An address given with --host, and its port if it came as ADDRESS:PORT.
    struct HostPort: Equatable {
        var host: String
        var port: Int?
    }

    /// "10.0.0.2" → (10.0.0.2, nil); "10.0.0.2:7000" → (10.0.0.2, 7000); "[fe80::1]:7000" →
    /// (fe80::1, 7000); an IPv6 address without brackets stays whole. Throws on a bad port.
    static func splitHostPort(_ text: String) throws -> HostPort {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return HostPort(host: host) }
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { throw ATVError.invalidValue("bad port in \(text)") }
            return HostPort(host: host, port: p)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            guard !text.isEmpty else { throw ATVError.invalidValue("empty --host") }
            return HostPort(host: text)
        }
        guard !parts[0].isEmpty, let p = Int(parts[1]), (1...65535).contains(p) else { throw ATVError.invalidValue("bad port in \(text)") }
        return HostPort(host: String(parts[0]), port: p)
    }

    /// The plan for `options` with `--to` values already expanded (`FileStorage.expandTargets`).
    static func make(_ options: StreamTargetOptions, expandedNames names: [String]) throws -> StreamTargetPlan {
        let addresses = try options.host.map(splitHostPort)
        let query = options.hostList
        var common: [String] = []
        if let t = options.timeout { common += ["--timeout", "\(t)"] }
        let count = names.count + addresses.count + (names.isEmpty && addresses.isEmpty ? query.count : 0)
        guard count > 0 else { throw ATVError.invalidValue("the groups named have no members") }
        if count == 1 {
            if let name = names.first {
                return .single(arguments: ["--to", name] + (options.hosts.map { ["--hosts", $0] } ?? [])
                               + (options.port.map { ["--port", "\($0)"] } ?? []) + common)
            }
            if let a = addresses.first {
                return .single(arguments: ["--host", a.host] + ((a.port ?? options.port).map { ["--port", "\($0)"] } ?? []) + common)
            }
            return .single(arguments: ["--hosts", query[0]] + (options.port.map { ["--port", "\($0)"] } ?? []) + common)
        }
        return .several(names: names, addresses: addresses, queryHosts: query)
    }
}

/// One receiver of a group stream, resolved.
struct GroupStreamTarget: Sendable {
    /// How the user named it (a name, identifier or address), or its address.
    var reference: String
    /// The member's name in the group stream and its messages (unique in the group).
    var name: String
    /// The device, with the service audio is streamed to.
    var config: DeviceConfig
    /// Its stored audio offset in milliseconds (`atv group offset`).
    var offsetMilliseconds: Double
    /// Its stored AirPlay 2 timing (`atv group route`), nil when none is stored.
    var timing: AirPlayTimingPreference? = nil
    /// Its stored AirPlay 2 buffering (`atv group route`), nil when none is stored.
    var buffered: AirPlayBufferedPreference? = nil

    /// The streaming service's port.
    var port: Int? { (config.service(.raop) ?? RAOPService.streamingService(in: config))?.port }
}

/// Resolves a `.several` plan: one scan for every name (and every query host), addresses as
/// they are; each device's offset and audio route from `storage`.
func resolveGroupTargets(names: [String], addresses: [StreamTargetPlan.HostPort], queryHosts: [String],
                         storage: FileStorage, timeout: Double = 3) async throws -> [GroupStreamTarget] {
    var found: [(String, DeviceConfig)] = []
    if !names.isEmpty {
        let configs = try await Discovery.findAll(names, options: ScanOptions(timeout: timeout, hosts: queryHosts))
        for (name, config) in zip(names, configs) { found.append((name, try streamableConfig(config, for: .raop, port: nil))) }
    } else if addresses.isEmpty {
        let options = ScanOptions(timeout: timeout, hosts: queryHosts)
        let (devices, silent) = try await Discovery.scanAllReportingSilence(options)
        if !silent.isEmpty { throw Discovery.silence(silent, timeout: timeout) }
        for host in queryHosts {
            let at = devices.filter { $0.address == host }
            guard at.count == 1 else {
                throw ATVError.deviceNotFound(at.isEmpty ? "\(host) announces no AirPlay receiver"
                    : "\(host) answers for \(at.count) devices: name each with --to NAME|ID")
            }
            found.append((host, try streamableConfig(at[0], for: .raop, port: nil)))
        }
    }
    for a in addresses {
        let service = ServiceConfig(protocol: .raop, identifier: a.host, port: a.port ?? 7000)
        found.append((a.port.map { "\(a.host):\($0)" } ?? a.host, DeviceConfig(name: a.host, address: a.host, services: [service])))
    }
    // The same receiver named twice (a name and its address) is one member.
    var seen = Set<String>()
    found = found.filter { ref, config in
        let port = (config.service(.raop) ?? RAOPService.streamingService(in: config))?.port ?? 0
        return seen.insert("\(config.address):\(port)").inserted
    }
    let names = GroupStreamText.uniqueNames(found.map { ($0.1.name, "\($0.1.address):\((($0.1.service(.raop) ?? RAOPService.streamingService(in: $0.1))?.port) ?? 0)") })
    return try zip(found, names).map { entry, name in
        let route = try storage.audioRoute(reference: entry.0, config: entry.1)
        return GroupStreamTarget(reference: entry.0, name: name, config: entry.1,
                                 offsetMilliseconds: try storage.audioOffset(reference: entry.0, config: entry.1),
                                 timing: route?.timing.flatMap(AirPlayTimingPreference.init(rawValue:)),
                                 buffered: route?.buffered.flatMap(AirPlayBufferedPreference.init(rawValue:)))
    }
}

// MARK: - Running it

/// `atv stream` with several receivers: opens the group, shows one progress line for every
/// member, answers other terminals (`atv volume 30 --to Kitchen`), and ends with a line per member.
func runGroupStream(targets: [GroupStreamTarget], command: StreamCommand, decoder: AudioDecoder,
                    raopOptions: RAOPOptions, storage: FileStorage) async throws {
    // A device's stored route (`atv group route`) where the command line left the choice at auto,
    // as for a single device.
    let devices = targets.map {
        GroupDevice(name: $0.name, config: $0.config, offsetMilliseconds: $0.offsetMilliseconds,
                    timing: raopOptions.timing == .auto ? $0.timing : nil,
                    buffered: raopOptions.buffered == .auto ? $0.buffered : nil)
    }
    let connect = ConnectOptions(raop: raopOptions, airPlayVersion: AirPlayVersion(rawValue: command.airplayVersion) ?? .auto,
                                 timeout: .milliseconds(Int64((command.targets.timeout ?? 3) * 1000)))
    let session = try streamGroup(devices, options: connect, storage: storage)
    let latest = Mutex<RAOPGroupProgress?>(nil)
    let volumes = Mutex<[String: Double]>([:])
    if let v = command.volume { volumes.withLock { for t in targets { $0[t.name] = v } } }
    let control = try? await StreamControlServer.start(
        devices: targets.map { StreamControlDevice(config: $0.config, port: $0.port) },
        actions: StreamControlActions(
            setVolume: { device, percent in
                guard let t = targets.first(where: { $0.config.address == device.address && $0.port == device.port }) else { return }
                try await session.setVolume(percent, member: t.name)
                volumes.withLock { $0[t.name] = percent }
            },
            status: {
                let p = latest.withLock { $0 }
                let v = volumes.withLock { $0 }
                return targets.map { t in
                    StreamControlMemberStatus(device: StreamControlDevice(config: t.config, port: t.port), volume: v[t.name],
                                              state: p?.members.first { $0.name == t.name }?.state.rawValue)
                }
            }))
    let interrupts = InterruptHandler { session.stop() }
    defer { interrupts.cancel() }
    let title = command.title ?? decoder.info.metadata.title ?? (command.input == "-" ? "stdin" : URL(fileURLWithPath: command.input).lastPathComponent)
    await session.setMetadata(MediaMetadata(title: command.title, artist: command.artist, album: command.album).filling(from: decoder.info.metadata))
    let tty = isatty(STDOUT_FILENO) == 1
    let updates = session.progressUpdates()
    let progressTask = Task {
        for await p in updates {
            latest.withLock { $0 = p }
            guard tty else { continue }
            let line = "\u{1B}[2K\r" + GroupStreamText.progressLine(title: title, progress: p, duration: p.duration ?? decoder.info.duration)
            StandardStream.writeOutput(line)
        }
    }
    let report = try await playing(progress: progressTask, control: control, tty: tty) {
        try await session.stream(PCMStartingAt(decoder, seconds: command.start.flatMap(parseStartPosition) ?? 0))
    }
    // A source that failed (the same for every member): the single stream's one error line.
    if let failure = report.sourceError, !report.stopped { throw failure }
    print(GroupStreamText.outcomeLines(report).joined(separator: "\n"))
    let status = GroupStreamText.exitStatus(report, interrupted: interrupts.interrupted)
    if status != 0 { throw ExitCode(status) }
}

// MARK: - What it prints (pure)

enum GroupStreamText {
    /// Member names made unique: a name shared by several devices gets its "address:port".
    static func uniqueNames(_ devices: [(name: String, endpoint: String)]) -> [String] {
        var counts: [String: Int] = [:]
        for d in devices { counts[d.name.lowercased(), default: 0] += 1 }
        return devices.map { d in (counts[d.name.lowercased()] ?? 0) > 1 && d.name != d.endpoint ? "\(d.name) (\(d.endpoint))" : d.name }
    }

    /// "Kitchen: playing (AirPlay 1)", "Bedroom: rejoined (buffered PTP, attempt 2)",
    /// "Attic: failed (refused)".
    static func memberStatus(_ m: RAOPGroupMemberStatus) -> String {
        var details: [String] = []
        if let r = m.route { details.append(r.shortName) }
        if m.attempts > 1 { details.append("attempt \(m.attempts)") }
        if let e = m.error, m.state == .failed || m.state == .lost { details.append(e) }
        return "\(printable(m.name)): \(m.state.rawValue)" + (details.isEmpty ? "" : " (\(details.map(printable).joined(separator: ", ")))")
    }

    /// The progress line: "▶ Song  0:12 / 3:45  Kitchen: playing (AirPlay 1) · Bedroom: joining".
    static func progressLine(title: String, progress p: RAOPGroupProgress, duration: Double?) -> String {
        let total = duration.map { " / " + formatDuration($0) } ?? ""
        return "▶ \(printable(title))  \(formatDuration(max(0, p.position)))\(total)  "
            + p.members.map(memberStatus).joined(separator: " · ")
    }

    /// One member's final line: "  Kitchen: played the whole stream (AirPlay 1, 1234 packets,
    /// 0 retransmitted)" or "  Attic: did not play the whole stream: failed after 3 attempts
    /// (connection refused)".
    static func outcomeLine(_ m: RAOPGroupMemberOutcome) -> String {
        var details: [String] = []
        if let r = m.route { details.append(r.shortName) }
        if let rep = m.report { details.append("\(rep.packetsSent) packets, \(rep.retransmittedPackets) retransmitted") }
        let what: String
        if m.playedWhole {
            what = "played the whole stream"
        } else {
            let attempts = m.attempts > 1 ? " after \(m.attempts) attempts" : ""
            what = "did not play the whole stream: \(m.state.rawValue)\(attempts)"
        }
        if let e = m.error, !m.playedWhole { details.append(e) }
        return "  \(printable(m.name)): \(what)" + (details.isEmpty ? "" : " (\(details.map(printable).joined(separator: ", ")))")
    }

    /// The summary line, then one line per member.
    static func outcomeLines(_ report: RAOPGroupReport) -> [String] {
        let whole = report.members.filter(\.playedWhole).count
        let n = report.members.count
        let how = report.stopped ? "Stopped after" : "Streamed"
        let head = "\(how) \(formatDuration(report.seconds)) to \(n) receiver\(n == 1 ? "" : "s"): "
            + (report.stopped ? "\(whole) of \(n) played without a break" : "\(whole) of \(n) played the whole stream")
        return [head] + report.members.map(outcomeLine)
    }

    /// 130 after Ctrl-C (as for one receiver); otherwise 0 when at least one member played the
    /// whole stream, 1 when none did.
    static func exitStatus(_ report: RAOPGroupReport, interrupted: Bool) -> Int32 {
        if interrupted { return 130 }
        return report.anyPlayedWhole ? 0 : 1
    }
}
