import ATVTestSupport
import Foundation
import Testing

/// `--help` of every command and subcommand (the hidden button shortcuts too) at 80 columns: no line
/// longer than the terminal, prose written as paragraphs (ArgumentParser wraps them; a discussion
/// broken by hand comes out ragged), and an example of the command itself.
@Suite struct HelpTextTests {
    /// `atv PATH --help` with the terminal `columns` wide.
    static func help(_ path: [String], columns: Int) async throws -> String {
        let r = try await run(try TestEnv.atv(), path + ["--help"], timeout: 30, environment: ["COLUMNS": "\(columns)"])
        guard r.status == 0 else { throw TestFailure("atv \(path.joined(separator: " ")) --help exited \(r.status): \(r.stderr)") }
        return r.stdout
    }

    /// `help` of each path, four processes at a time.
    static func helps(_ paths: [[String]], columns: Int) async throws -> [[String]: String] {
        var texts: [[String]: String] = [:]
        for start in stride(from: 0, to: paths.count, by: 4) {
            try await withThrowingTaskGroup(of: ([String], String).self) { group in
                for path in paths[start..<min(start + 4, paths.count)] {
                    group.addTask { (path, try await help(path, columns: columns)) }
                }
                for try await (path, text) in group { texts[path] = text }
            }
        }
        return texts
    }

    /// The names in a help text's SUBCOMMANDS section (`help` left out).
    static func subcommands(_ text: String) -> [String] {
        var names: [String] = []
        var inside = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("SUBCOMMANDS:") { inside = true; continue }
            guard inside else { continue }
            if line.isEmpty || !line.hasPrefix(" ") { break }
            // "  name   abstract" or "  name (default)   abstract"; wrapped abstracts are indented deeper.
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { continue }
            let name = String(line.dropFirst(2).prefix { $0 != " " })
            if name != "help" { names.append(name) }
        }
        return names
    }

    /// Every command path: the tree of SUBCOMMANDS sections, and `atv BUTTON` for each button of
    /// `atv remote` (commands of their own, hidden from the list).
    /// Each with its help text unwrapped (a very wide terminal).
    static func allCommands() async throws -> [(path: [String], wide: String)] {
        var commands: [(path: [String], wide: String)] = []
        var level: [[String]] = [[]]
        while !level.isEmpty {
            let texts = try await helps(level, columns: 1000)
            commands += level.map { ($0, texts[$0] ?? "") }
            level = level.flatMap { path in subcommands(texts[path] ?? "").map { path + [$0] } }
        }
        let remote = try #require(commands.first { $0.path == ["remote"] }).wide
        let buttons = try #require(remote.split(separator: "\n").first { $0.hasPrefix("Buttons: ") })
        let shortcuts = buttons.dropFirst("Buttons: ".count).split(separator: ",").map {
            [$0.trimmingCharacters(in: CharacterSet(charactersIn: " ."))]
        }
        let texts = try await helps(shortcuts, columns: 1000)
        commands += shortcuts.map { ($0, texts[$0] ?? "") }
        return commands
    }

    @Test func everyHelpFitsEightyColumnsWithParagraphsAndAnExample() async throws {
        let commands = try await Self.allCommands()
        let paths = commands.map(\.path)
        // The tree as it stands: atv, its 22 commands, simulate's, proxy's and credentials'
        // subcommands and 24 button shortcuts. Fewer means the walk stopped finding commands.
        #expect(paths.count >= 58, "found only \(paths.count) commands")
        #expect(paths.contains(["simulate", "homepod"]) && paths.contains(["credentials", "remove"]) && paths.contains(["play-pause"]))
        let narrowTexts = try await Self.helps(paths, columns: 80)
        var problems: [String] = []
        for (path, wideText) in commands {
            let name = (["atv"] + path).joined(separator: " ")
            let narrow = try #require(narrowTexts[path])
            let lines = narrow.split(separator: "\n", omittingEmptySubsequences: false)
            for line in lines where line.count > 80 {
                problems.append("\(name) --help: a line of \(line.count) columns: \(line)")
            }
            // An example of this very command: an indented line running it, after "Examples:".
            if let heading = lines.firstIndex(where: { $0 == "Examples:" || $0 == "Example:" }) {
                let examples = lines[heading...].dropFirst().prefix { $0.hasPrefix("  ") }
                if !examples.contains(where: { $0.contains("\(name) ") || $0.hasSuffix(name) }) {
                    problems.append("\(name) --help: no example runs `\(name)`")
                }
            } else {
                problems.append("\(name) --help: no Examples: section")
            }
            // Paragraphs: unwrapped (very wide terminal), the overview's prose lines are each a whole
            // paragraph, so two prose lines never follow each other (a hand-broken paragraph does).
            let wide = wideText.split(separator: "\n", omittingEmptySubsequences: false)
            let overview = wide.prefix { !$0.hasPrefix("USAGE:") }
            // Indented lines (examples) fit as they are: none is wrapped at 80 columns.
            for line in overview where line.hasPrefix("  ") && !lines.contains(line) {
                problems.append("\(name) --help: wrapped at 80 columns: \(line)")
            }
            for (a, b) in zip(overview, overview.dropFirst()) {
                let prose = { (l: Substring) in !l.isEmpty && !l.hasPrefix(" ") && !l.hasSuffix(":") }
                if prose(a), prose(b), !a.hasPrefix("OVERVIEW:") {
                    problems.append("\(name) --help: a paragraph broken by hand before: \(b)")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.count) problems:\n\(problems.joined(separator: "\n"))")
    }
}
