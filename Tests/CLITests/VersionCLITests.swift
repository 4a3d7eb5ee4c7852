import ATVTestSupport
import Foundation
import Testing

/// `atv --version` and the script that records the git revision at build time (scripts/build-info,
/// run by the ATVBuildInfo plugin).
@Suite struct VersionCLITests {
    static let script = TestEnv.root.appendingPathComponent("scripts/build-info").path

    /// `git -C dir args...`, trimmed stdout, or nil when git fails there.
    static func git(_ dir: URL, _ args: [String]) async throws -> String? {
        let r = try await run("/usr/bin/env", ["git", "-C", dir.path, "-c", "user.name=t", "-c", "user.email=t@example.invalid"] + args)
        return r.status == 0 ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    /// Runs scripts/build-info on `dir`; returns the generated file's revision and modified flag.
    static func buildInfo(_ dir: URL, into out: URL) async throws -> (revision: String, modified: String) {
        let r = try await run("/bin/sh", [script, dir.path, out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOf: out, encoding: .utf8)
        func value(_ key: String) -> String {
            text.split(separator: "\n").first { $0.contains("static let \(key) = ") }
                .map { String($0.split(separator: "=").last!).trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "") } ?? "?"
        }
        return (value("gitRevision"), value("modified"))
    }

    @Test func versionNamesTheRevisionOfThisCheckout() async throws {
        let r = try await run(try TestEnv.atv(), ["--version"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.trimmingCharacters(in: .newlines)
        // The build ran scripts/build-info on this package folder: where git can read it, the
        // binary names its HEAD; where it cannot (not a checkout), it says "unknown".
        let head = try await Self.git(TestEnv.root, ["rev-parse", "--short=12", "HEAD"])
        let top = try await Self.git(TestEnv.root, ["rev-parse", "--show-toplevel"])
        let isTop = top.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path == TestEnv.root.resolvingSymlinksInPath().path } ?? false
        let expected = isTop ? head ?? "unknown" : "unknown"
        #expect(line.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+ \(git revision "# + expected + #"(, with uncommitted changes)?\)$"#,
                           options: .regularExpression) != nil, "atv --version printed: \(line)")
    }

    @Test func buildInfoRecordsRevisionModificationOrUnknown() async throws {
        let dir = try TestEnv.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("generated/BuildInfo.swift")
        let tree = dir.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try "one\n".write(to: tree.appendingPathComponent("file.txt"), atomically: true, encoding: .utf8)

        // Not a git checkout (a source tarball): "unknown".
        var info = try await Self.buildInfo(tree, into: out)
        #expect(info.revision == "unknown" && info.modified == "false")

        // A checkout: its HEAD, unmodified; then with a tracked file changed.
        #expect(try await Self.git(tree, ["init", "-q"]) != nil)
        #expect(try await Self.git(tree, ["add", "file.txt"]) != nil)
        #expect(try await Self.git(tree, ["commit", "-q", "-m", "one"]) != nil)
        let head = try #require(try await Self.git(tree, ["rev-parse", "--short=12", "HEAD"]))
        info = try await Self.buildInfo(tree, into: out)
        #expect(info.revision == head && info.revision.count == 12 && info.modified == "false")
        // Unchanged text: the file is left alone, so an unchanged revision recompiles nothing.
        // (Its date is set an hour back instead of waiting out the file system's timestamp resolution.)
        let before = Date(timeIntervalSinceNow: -3600)
        try FileManager.default.setAttributes([.modificationDate: before], ofItemAtPath: out.path)
        info = try await Self.buildInfo(tree, into: out)
        let after = try FileManager.default.attributesOfItem(atPath: out.path)[.modificationDate] as? Date
        #expect(after.map { abs($0.timeIntervalSince(before)) < 1 } == true, "BuildInfo.swift was rewritten with the same text")
        try "two\n".write(to: tree.appendingPathComponent("file.txt"), atomically: true, encoding: .utf8)
        info = try await Self.buildInfo(tree, into: out)
        #expect(info.revision == head && info.modified == "true")

        // A folder inside some other checkout is not built from that checkout: "unknown".
        info = try await Self.buildInfo(tree.appendingPathComponent("sub"), into: out)
        #expect(info.revision == "unknown")
    }
}
