import ArgumentParser
import ATV
import ATVCore
import Foundation
import Logging

@main
struct ATVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atv",
        abstract: "Find, pair with, control and stream to Apple TVs, HomePods and AirPlay speakers.",
        discussion: """
        Examples:
          atv stream song.flac --host 192.168.1.20
          ffmpeg -i in.mp3 -f wav - | atv stream - --host 192.168.1.20
          atv simulate speaker --output capture.wav
          atv pair --to "Living Room" --protocol companion
          atv remote play-pause --to "Living Room"   (or: atv play-pause --to "Living Room";
                                                     every button of `atv remote` is a command too)
          atv power off --to "Living Room"
          atv probe song.flac
        """,
        version: ATVVersion.string,
        subcommands: [
            Scan.self, Pair.self, Credentials.self,
            StreamCommand.self, PlayURL.self,
            Playing.self, PushUpdates.self, DeviceInfoCommand.self, FeaturesCommand.self,
            Remote.self, Power.self, Volume.self, AppsCommand.self,
            Launch.self, Text.self, Accounts.self, Artwork.self,
            Simulate.self, Probe.self, ImportPyatv.self, Proxy.self, LogCommand.self,
        ] + buttonShortcuts
    )
}

extension ATVCommand {
    /// ArgumentParser's main, plus: with --json, a command line that does not parse also prints
    /// atvscript's failure object on stdout (run-time errors print theirs in runReportingErrors).
    static func main() async {
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
    static let string = "0.1.0"
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

    /// The hosts of --hosts (empty without it).
    var hostList: [String] { parseHostList(hosts) }

    func validate() throws {
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
    text?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } ?? []
}

/// Runs a command body and turns our errors into one line on stderr and a non-zero exit; with
/// `json`, also atvscript's failure object on stdout.
func runReportingErrors(json: Bool = false, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ATVError {
        if json { printJSON(ScriptOutput.failure(error)) }
        FileHandle.standardError.write(Data("atv: error: \(printable(error.description))\n".utf8))
        throw ExitCode(exitCode(for: error))
    } catch let exit as ExitCode {
        throw exit
    } catch {
        if json { printJSON(ScriptOutput.failure(error: "error", exception: "\(error)")) }
        throw error
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
    FileHandle.standardError.write(Data("atv: \(what) is not implemented yet (tracked in issue #\(issue)).\n".utf8))
    throw ExitCode(3)
}

/// One printable line: control characters (from network garbage, say) are escaped.
func printable(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        if u.value < 0x20 || u.value == 0x7F || u.value == 0xFFFD {
            out += u.value == 0xFFFD ? "\\ufffd" : String(format: "\\x%02x", u.value)
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}
