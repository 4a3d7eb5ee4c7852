// `atv log`: a debug log (`atv <command> -vv 2> file`) as a readable, filterable view, with
// Companion (OPACK) and DMAP messages decoded (pyatv's atvlog).
import ArgumentParser
import ATVCore
import ATVLog
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log",
        abstract: "Show a debug log (from `atv … -vv`) readably, filtered, with protocol messages decoded.",
        usage: "atv log [<options>] <file>",
        discussion: """
        Examples:
          atv playing --to "Living Room" -vv 2> debug.log
          atv log debug.log --protocol companion
          atv log debug.log --include '_launchApp' --level debug
          atv log debug.log --html report.html
        """)
    @Argument(help: "The log file, or - for stdin.") var file: String
    @Option(help: "Only entries matching this regular expression.") var include: String?
    @Option(help: "Leave out entries matching this regular expression.") var exclude: String?
    @Option(help: "Minimum level (trace, debug, info, notice, warning, error, critical).") var level: String?
    @Option(name: .customLong("protocol"), parsing: .singleValue,
            help: "Only this protocol (companion, dmap, mrp, airplay, raop, discovery, other); repeatable.") var protocols: [String] = []
    @Option(help: "Write a self-contained HTML page (filters in the page) instead of printing.") var html: String?
    @Flag(help: "Colours even when stdout is not a terminal.") var color = false
    @Flag(help: "No colours.") var noColor = false

    func validate() throws {
        if let level, LogLevel(name: level) == nil { throw ValidationError("--level must be one of \(LogLevel.allCases.map(\.description).joined(separator: ", "))") }
        for p in protocols where !LogParser.protocols.contains(p) {
            throw ValidationError("--protocol \(p): use \(LogParser.protocols.joined(separator: ", "))")
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let data: Data
            if file == "-" {
                data = Data(StandardStream.readAll(0))
            } else {
                guard let d = FileManager.default.contents(atPath: file) else { throw ATVError.badInput("cannot read \(file)") }
                data = d
            }
            let entries = LogParser.parse(String(decoding: data, as: UTF8.self))
            if let html {
                let page = LogRenderer.html(entries, title: file == "-" ? "atv log" : URL(fileURLWithPath: file).lastPathComponent)
                do { try Data(page.utf8).write(to: URL(fileURLWithPath: html)) } catch {
                    throw ATVError.badInput("cannot write \(html): \(PathName.describe(error))")
                }
                print("Wrote \(entries.count) entries to \(html)")
                return
            }
            let filter = LogFilter(include: include, exclude: exclude, minimumLevel: level.flatMap(LogLevel.init(name:)), protocols: Set(protocols))
            let shown: [LogEntry]
            do { shown = try filter.apply(entries) } catch let e as LogFilterError { throw ATVError.invalidValue(e.message) }
            let useColor = !noColor && (color || isatty(STDOUT_FILENO) == 1)
            StandardStream.writeOutput(LogRenderer.terminal(shown, color: useColor))
        }
    }
}
