import ArgumentParser
import ATV
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging

@main
struct ATVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atv",
        abstract: "Find, pair with, control and stream to Apple TVs, HomePods and AirPlay speakers.",
        discussion: """
        Every button of `atv remote` is a command of its own too: `atv play-pause` is \
        `atv remote play-pause`. Errors are one line on stderr with a non-zero exit status: 1 for \
        errors, 3 for a feature not implemented yet, 4 for one the device does not support, 5 for \
        a device that was not found.

        Examples:
          atv scan
          atv stream song.flac --to Kitchen
          ffmpeg -i in.mp3 -f wav - | atv stream - --host 192.168.1.20
          atv pair --to "Living Room" --protocol companion
          atv play-pause --to "Living Room"
          atv power off --to "Living Room"
          atv simulate speaker --output capture.wav
        """,
        version: ATVVersion.string,
        subcommands: [
            Scan.self, Pair.self, Credentials.self,
            StreamCommand.self, PlayURL.self,
            PlayingCommand.self, PushUpdates.self, DeviceInfoCommand.self, FeaturesCommand.self,
            Remote.self, PowerCommand.self, VolumeCommand.self, AppsCommand.self,
            Launch.self, Text.self, Accounts.self, Artwork.self, GroupCommand.self,
            Simulate.self, Probe.self, ImportPyatv.self, Proxy.self, LogCommand.self, Doctor.self, PTPMasterCommand.self,
        ] + buttonShortcuts
    )
}

extension ATVCommand {
    /// ArgumentParser's main, plus: with --json, a command line that does not parse also prints
    /// atvscript's failure object on stdout (run-time errors print theirs in runReportingErrors).
    static func main() async {
        Signals.install()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if CommandLine.arguments.contains("--json"), Self.exitCode(for: error) != .success {
                printJSON(ScriptOutput.failure(error: "invalid_arguments", exception: printable(Self.message(for: error))))
            }
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

enum ATVVersion {
    /// The release; scripts/package-deb names the package after it.
    static let number = "0.1.0"
    /// `atv --version`: the release and the git revision it was built from (scripts/build-info,
    /// run by the ATVBuildInfo plugin), "unknown" when not built from a git checkout.
    static let string = "\(number) (git revision \(BuildInfo.gitRevision)\(BuildInfo.modified ? ", with uncommitted changes" : ""))"
}

/// Options every command has.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "More logging on stderr (-v info, -vv debug, -vvv trace).")
    var verbose: Int

    func bootstrapLogging() {
        let level: Logger.Level = switch verbose {
        case 0: .warning
        case 1: .info
        case 2: .debug
        default: .trace
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// How a command picks its device.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "Device name or identifier (found by scanning; with --hosts, among the devices those hosts answer for).")
    var to: String?

    @Option(name: .long, help: "Device IP address (no scan).")
    var host: String?

    @Option(name: .long, help: ArgumentHelp(
        "Comma-separated hosts to ask by unicast mDNS instead of multicast (VLANs, containers).",
        discussion: "With --to, the named device among them; with a single host and no --to, the only device that host answers for."))
    var hosts: String?

    @Option(name: .long, help: "Port of the protocol's service (with --host).")
    var port: Int?

    @Option(name: .long, help: "Seconds to wait for the device at each step: to connect, and for each answer (default 3; a device that does not answer is reported within about this long; pair: 60).")
    var timeout: Double?

    /// `--timeout`, 3 s by default.
    var timeoutDuration: Duration { .milliseconds(Int64((timeout ?? 3) * 1000)) }

    /// The hosts of --hosts (empty without it).
    var hostList: [String] { parseHostList(hosts) }

    func validate() throws {
        if let timeout, !(timeout.isFinite && (0.1...600).contains(timeout)) {
            throw ValidationError("--timeout must be within 0.1...600 seconds")
        }
        if to == nil && host == nil && hosts == nil {
            throw ValidationError("say which device: --to NAME|ID, --host ADDRESS or --hosts ADDRESS")
        }
        if host != nil && hosts != nil {
            throw ValidationError("--host and --hosts exclude each other: --host ADDRESS talks to it directly, --hosts A,B finds the device by asking them")
        }
        if hosts != nil && hostList.isEmpty { throw ValidationError("--hosts needs at least one address") }
        if to == nil && hostList.count > 1 {
            throw ValidationError("with several --hosts, say which device with --to NAME|ID")
        }
        if let p = port, !(1...65535).contains(p) {
            throw ValidationError("--port must be 1...65535")
        }
    }
}

/// "a, b,,c" → ["a", "b", "c"].
func parseHostList(_ text: String?) -> [String] {
    text?.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty } ?? []
}

/// Runs a command body and turns our errors into one line on stderr and a non-zero exit; with
/// `json`, also atvscript's failure object on stdout.
func runReportingErrors(json: Bool = false, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ATVError {
        if json { printJSON(ScriptOutput.failure(error)) }
        StandardStream.writeError("atv: error: \(printable(error.description))\n")
        throw ExitCode(exitCode(for: error))
    } catch let exit as ExitCode {
        throw exit
    } catch let error as ValidationError {
        throw error
    } catch {
        // Anything else is reported as one clean line too: never a library's type names or errno text.
        let clean = cleanMessage(error)
        if json { printJSON(ScriptOutput.failure(error: "error", exception: clean)) }
        StandardStream.writeError("atv: error: \(printable(clean))\n")
        throw ExitCode(1)
    }
}

/// One line for an error that is not an `ATVError` (a library error that escaped a shell).
func cleanMessage(_ error: any Error) -> String {
    if error is CancellationError { return "interrupted" }
    switch NetworkFailure(error) {
    case .refused: return "connection failed: the device refused the connection"
    case .unreachable: return "connection failed: the device is unreachable"
    case .timedOut: return "timed out: the device did not answer"
    case .reset: return "connection lost: the device reset the connection"
    case .closed: return "connection lost: the device closed the connection"
    case .other:
        let text = "\(error)"
        let internals = ["Error(", "NIO", "errno", "descriptor", "Failure(", "IOError", "ChannelError", "(", "invalid constant"]
        if !internals.contains(where: { text.contains($0) }), text.count < 200, !text.contains("\n") { return text }
        return "unexpected failure (run with -v for details)"
    }
}

/// The device of a configuration, for messages: "192.168.1.20:7000", or the address and each port.
func endpointText(_ config: DeviceConfig) -> String {
    let enabled = config.services.filter(\.enabled)
    if enabled.count == 1, let s = enabled.first { return "\(config.address):\(s.port)" }
    return config.address + (enabled.isEmpty ? "" : " (" + enabled.map { "\($0.protocol.key) \($0.port)" }.joined(separator: ", ") + ")")
}

/// Connects, whatever the device does: every protocol waits at most `device.timeout` per step
/// (connecting, each answer), and a deadline of three steps ends a connection phase stuck anywhere
/// else (a device answering each step just in time, or a lost continuation).
func connectWithin(_ device: DeviceOptions, _ config: DeviceConfig, options: ConnectOptions,
                   storage: FileStorage? = nil) async throws -> AppleTV {
    var withTimeout = options
    withTimeout.timeout = device.timeoutDuration
    let options = withTimeout
    let limit = device.timeoutDuration
    let name = endpointText(config)
    return try await withDeadline(limit * 3 + .milliseconds(500), {
        ATVError.timeout("\(name) did not finish connecting within \(ATVError.seconds(limit * 3)) s (--timeout \(ATVError.seconds(limit)))")
    }) {
        try await connect(config, options: options, storage: storage)
    }
}

func exitCode(for error: ATVError) -> Int32 {
    switch error {
    case .notImplemented: return 3
    case .notSupported: return 4
    case .deviceNotFound: return 5
    default: return 1
    }
}

/// For commands whose protocol work is planned but not built yet: say so plainly and fail.
func notYet(_ what: String, issue: Int) throws -> Never {
    StandardStream.writeError("atv: \(what) is not implemented yet (tracked in issue #\(issue)).\n")
    throw ExitCode(3)
}

/// One printable line: control characters (from network garbage, say) are escaped.
func printable(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        if u.value < 0x20 || u.value == 0x7F || u.value == 0xFFFD {
            out += u.value == 0xFFFD ? "\\ufffd" : String(cFormat: "\\x%02x", u.value)
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}
