import ATVTestSupport
import ATVLog
import Testing

/// The parser and views behind `atv log`, on real lines from `atv … -vv` (captured from a
/// proxy run and a DMAP session against the virtual devices).
struct LogParserTests {
    static let launch = "2026-11-21T16:39:22+0000 debug atv.proxy.companion: [ATVCompanion] companion frame controller->device type=8 opack=e4425f694a5f6c61756e6368417070425f740a425f63e1495f62756e646c65494453636f6d2e6e6574666c69782e4e6574666c6978425f783167e9"
    static let login = "2026-11-21T16:43:24+0000 debug atv.dmap: [ATVDMAP] dmap response /login?pairing-guid=0x1234ABCDE56789FF&hasFP=1 status=200 dmap=6d6c6f67000000186d73747400000004000000c86d6c696400000004314b96b7"
    static let plain = "2026-11-21T16:39:22+0000 info atv.proxy.companion: [ATVCompanion] proxy started"
    static let pyatv = "2024-05-01 12:00:00 DEBUG [pyatv.protocols.mrp.protocol]: Sending message"

    @Test func parsesSwiftLogHeaders() throws {
        let e = try #require(LogParser.parseLine(Self.plain))
        #expect(e.timestamp == "2026-11-21T16:39:22+0000")
        #expect(e.level == .info)
        #expect(e.label == "atv.proxy.companion")
        #expect(e.source == "ATVCompanion")
        #expect(e.message == "proxy started")
        #expect(e.proto == "companion")
        #expect(e.decoded == nil)
    }

    @Test func parsesPyatvHeaders() throws {
        let e = try #require(LogParser.parseLine(Self.pyatv))
        #expect(e.level == .debug && e.label == "pyatv.protocols.mrp.protocol" && e.message == "Sending message" && e.proto == "mrp")
    }

    @Test func decodesCompanionOPACK() throws {
        let e = try #require(LogParser.parseLine(Self.launch))
        #expect(e.level == .debug && e.proto == "companion")
        let tree = try #require(e.decoded)
        #expect(tree.first == "{")
        #expect(tree.contains("  _i: \"_launchApp\""), "\(tree)")
        #expect(tree.contains("    _bundleID: \"com.netflix.Netflix\""), "\(tree)")
        #expect(tree.contains("  _t: 2"), "\(tree)")
    }

    @Test func decodesDMAPTags() throws {
        let e = try #require(LogParser.parseLine(Self.login))
        #expect(e.proto == "dmap")
        let tree = try #require(e.decoded)
        #expect(tree.first == "mlog:")
        #expect(tree.contains("  mstt: 200"), "\(tree)")
        #expect(tree.contains { $0.hasPrefix("  mlid: ") }, "\(tree)")
    }

    @Test func continuationLinesAndLeadingGarbage() {
        let text = "not a header\n" + Self.plain + "\n  a stack line\n\n" + Self.launch + "\n"
        let entries = LogParser.parse(text)
        #expect(entries.count == 3)
        #expect(entries[0].message == "not a header" && entries[0].level == nil)
        #expect(entries[1].continuation == ["  a stack line"])
        #expect(entries[2].line == 5)
    }

    @Test func filtersByRegexLevelAndProtocol() throws {
        let entries = LogParser.parse([Self.plain, Self.launch, Self.login, Self.pyatv].joined(separator: "\n"))
        #expect(try LogFilter(protocols: ["dmap"]).apply(entries).map(\.line) == [3])
        #expect(try LogFilter(minimumLevel: .info).apply(entries).map(\.line) == [1])
        #expect(try LogFilter(include: "companion frame").apply(entries).map(\.line) == [2])
        #expect(try LogFilter(include: "_bundleID: \"com.netflix").apply(entries).map(\.line) == [2])
        #expect(try LogFilter(exclude: "^2026").apply(entries).map(\.line) == [4])
        #expect(throws: LogFilterError.self) { try LogFilter(include: "([").apply(entries) }
    }

    @Test func terminalViewShowsTheTreeWithoutColoursWhenAsked() {
        let out = LogRenderer.terminal(LogParser.parse(Self.launch), color: false)
        #expect(!out.contains("\u{1B}["))
        #expect(out.contains("DEBUG") && out.contains("[companion]") && out.contains("_bundleID: \"com.netflix.Netflix\""))
        let colored = LogRenderer.terminal(LogParser.parse(Self.launch), color: true)
        #expect(colored.contains("\u{1B}[36m"))
        // Control characters from the log are escaped.
        #expect(!LogRenderer.terminal(LogParser.parse("x\u{1B}[2Jy"), color: false).contains("\u{1B}"))
    }

    @Test func htmlIsSelfContainedAndEscaped() {
        let page = LogRenderer.html(LogParser.parse(Self.launch + "\n" + Self.plain + " </script><b>"), title: "t")
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(!page.contains("src=") && !page.contains("href="))
        #expect(page.components(separatedBy: "</script>").count == 2, "the log must not close the script element")
        #expect(page.contains("_bundleID") && page.contains("id=\"inc\"") && page.contains("id=\"exc\"") && page.contains("class=\"proto\""))
    }

    /// Random and mutated input never traps (the parser meets arbitrary files); entries keep their
    /// line order within the text, a filter keeps a subset in order, and a bad pattern is a
    /// `LogFilterError`.
    @Test func fuzz() {
        let seed = TestSeed.value(default: 0x106F)
        var rng = SplitMix64(seed: seed)
        let alphabet = Array(" \n\t:[]=-_.0123456789abcdefTZ+opackdmDEBUGinfo\u{1B}\u{0}é")
        let seeds = [Self.launch, Self.login, Self.plain, Self.pyatv]
        for i in 0 ..< 3000 {
            var s: String
            if i % 2 == 0 {
                s = String((0 ..< Int.random(in: 0 ... 300, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            } else {
                var chars = Array(seeds[i % seeds.count])
                for _ in 0 ..< Int.random(in: 1 ... 8, using: &rng) where !chars.isEmpty {
                    let k = Int.random(in: 0 ..< chars.count, using: &rng)
                    switch Int.random(in: 0 ..< 3, using: &rng) {
                    case 0: chars[k] = alphabet.randomElement(using: &rng)!
                    case 1: chars.remove(at: k)
                    default: chars = Array(chars.prefix(k))
                    }
                }
                s = String(chars)
            }
            let entries = LogParser.parse(s)
            let lines = s.split(separator: "\n", omittingEmptySubsequences: false).count
            #expect(entries.allSatisfy { (1 ... lines).contains($0.line) }, "seed \(seed) case \(i)")
            #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.line < $1.line }, "seed \(seed) case \(i)")
            _ = LogRenderer.terminal(entries, color: true)
            _ = LogRenderer.html(entries, title: s)
            #expect((try? LogFilter().apply(entries)) == entries, "seed \(seed) case \(i)")
            do {
                let kept = try LogFilter(include: s.isEmpty ? nil : String(s.prefix(5))).apply(entries)
                var rest = entries[...]
                #expect(kept.allSatisfy { k in
                    guard let at = rest.firstIndex(of: k) else { return false }
                    rest = rest[(at + 1)...]
                    return true
                }, "seed \(seed) case \(i): the filter invented or reordered entries")
            } catch {
                #expect(error is LogFilterError, "seed \(seed) case \(i): \(error)")
            }
        }
    }
}
