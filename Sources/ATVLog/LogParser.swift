// `atv log`'s core, sans-I/O: debug log text in, entries out (timestamp, level, label, source,
// message, continuation lines), each tagged with a protocol and, when the message carries a
// protocol message (Companion `opack=<hex>`, DMAP `dmap=<hex>`), a decoded tree. Never traps on
// arbitrary input: unknown lines become continuation lines or plain entries.
import ATVAuth
import ATVCore
import ATVCompanion
import ATVDMAP
import ATVMRP

package enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case trace, debug, info, notice, warning, error, critical

    package init?(name: String) {
        switch name.lowercased() {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "notice": self = .notice
        case "warning", "warn": self = .warning
        case "error": self = .error
        case "critical", "fatal": self = .critical
        default: return nil
        }
    }

    package var description: String { ["trace", "debug", "info", "notice", "warning", "error", "critical"][rawValue] }
    package static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

package struct LogEntry: Sendable, Equatable {
    /// 1-based line number of the entry's first line.
    package var line: Int
    package var timestamp: String?
    package var level: LogLevel?
    package var label: String?
    package var source: String?
    package var message: String
    /// Lines that followed without a header of their own.
    package var continuation: [String] = []
    /// companion, dmap, raop, airplay, mrp, discovery, or "other".
    package var proto: String
    /// A decoded protocol message, one line per node (indented with two spaces per level).
    package var decoded: [String]?

    /// Everything the filters look at (the decoded tree too, so `_launchApp` finds a Companion frame).
    package var fullText: String {
        ([timestamp, level?.description, label, source.map { "[\($0)]" }, message].compactMap { $0 }.joined(separator: " "))
            + continuation.map { "\n" + $0 }.joined() + (decoded ?? []).map { "\n" + $0 }.joined()
    }
}

package enum LogParser {
    package static let protocols = ["companion", "dmap", "mrp", "airplay", "raop", "discovery", "other"]

    /// Parses a whole log.
    package static func parse(_ text: String) -> [LogEntry] {
        var out: [LogEntry] = []
        var n = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            n += 1
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            if let e = parseLine(line, number: n) {
                out.append(e)
            } else if line.isEmpty {
                continue
            } else if !out.isEmpty {
                out[out.count - 1].continuation.append(line)
            } else {
                out.append(LogEntry(line: n, message: line, proto: classify(label: nil, message: line)))
            }
        }
        return out
    }

    /// One header line: swift-log's `TIMESTAMP LEVEL LABEL: [metadata] [SOURCE] MESSAGE`, or
    /// pyatv's `DATE TIME LEVEL [LOGGER]: MESSAGE`. nil when the line is neither.
    package static func parseLine(_ line: String, number: Int = 0) -> LogEntry? {
        let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        // swift-log
        if words.count >= 3, looksLikeTimestamp(words[0]), let level = LogLevel(name: words[1]), words[2].hasSuffix(":") || words[2].hasSuffix(" :") {
            let label = String(words[2].dropLast())
            var rest = words.count > 3 ? words[3] : ""
            var source: String?
            // Metadata (k=v …) then [source]; the source is the first bracketed word.
            if let open = rest.firstIndex(of: "["), let close = rest[open...].firstIndex(of: "]"),
               !rest[rest.startIndex ..< open].contains(where: { $0 == "[" }) {
                let inside = rest[rest.index(after: open) ..< close]
                if !inside.contains(" ") {
                    source = String(inside)
                    rest = String(rest[rest.index(after: close)...]).trimmingLeadingSpaces()
                }
            }
            return entry(number, words[0], level, label, source, rest)
        }
        // pyatv: "2024-05-01 12:00:00 DEBUG [pyatv.x]: message" (optionally ",123" milliseconds).
        if words.count >= 4, looksLikeDate(words[0]), let level = LogLevel(name: words[2]) {
            let rest = words[3]
            guard rest.hasPrefix("["), let close = rest.firstIndex(of: "]") else { return nil }
            let label = String(rest[rest.index(after: rest.startIndex) ..< close])
            var msg = String(rest[rest.index(after: close)...])
            if msg.hasPrefix(":") { msg.removeFirst() }
            return entry(number, words[0] + " " + words[1], level, label, nil, msg.trimmingLeadingSpaces())
        }
        return nil
    }

    static func entry(_ n: Int, _ ts: String, _ level: LogLevel, _ label: String, _ source: String?, _ message: String) -> LogEntry {
        LogEntry(line: n, timestamp: ts, level: level, label: label, source: source, message: message,
                 proto: classify(label: label, message: message), decoded: decode(message))
    }

    static func looksLikeTimestamp(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return u.count >= 19 && looksLikeDate(String(decoding: u.prefix(10), as: UTF8.self)) && u[10] == UInt8(ascii: "T")
    }

    static func looksLikeDate(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 10 else { return false }
        for (i, c) in u.enumerated() {
            if i == 4 || i == 7 { if c != UInt8(ascii: "-") { return false } } else if !(48 ... 57).contains(c) { return false }
        }
        return true
    }

    /// The protocol a line belongs to, from the logger's label (atv.companion, pyatv.protocols.dmap…) or the message.
    package static func classify(label: String?, message: String) -> String {
        let l = (label ?? "").lowercased()
        for p in ["companion", "dmap", "mrp", "airplay", "raop"] where l.contains(p) { return p }
        if l.contains("rtsp") || l.contains("rtp") { return "raop" }
        if l.contains("mdns") || l.contains("discovery") || l.contains("scan") { return "discovery" }
        let m = message.lowercased()
        if m.hasPrefix("companion ") { return "companion" }
        if m.hasPrefix("dmap ") { return "dmap" }
        return "other"
    }

    // MARK: Decoding protocol messages

    /// The value of `key=` up to the next space, if the message has one.
    static func field(_ key: String, in message: String) -> Substring? {
        guard let r = message.firstRange(of: " " + key + "=") ?? (message.hasPrefix(key + "=") ? message.firstRange(of: key + "=") : nil) else { return nil }
        let rest = message[r.upperBound...]
        return rest.prefix { $0 != " " }
    }

    /// A tree for the protocol message in `message`, or nil.
    package static func decode(_ message: String) -> [String]? {
        if let hex = field("opack", in: message), !hex.isEmpty, let bytes = Hex.decode(String(hex)) {
            guard let value = try? OPACK.decode(bytes) else { return ["(undecodable OPACK, \(bytes.count) bytes)"] }
            var lines: [String] = []
            opackTree(value, key: nil, depth: 0, into: &lines)
            return lines
        }
        if let hex = field("protobuf", in: message), !hex.isEmpty, let bytes = Hex.decode(String(hex)) {
            guard let m = try? MRPCodec.decode(bytes) else { return ["(undecodable MRP message, \(bytes.count) bytes)"] }
            let text = m.textFormatString()
            return Array(text.split(separator: "\n", omittingEmptySubsequences: true).prefix(maxLines).map(String.init))
        }
        if let hex = field("dmap", in: message), !hex.isEmpty, let bytes = Hex.decode(String(hex)) {
            guard let elements = try? DMAPParser.parse(bytes) else { return ["(undecodable DMAP, \(bytes.count) bytes)"] }
            var lines: [String] = []
            for e in elements { dmapTree(e, depth: 0, into: &lines) }
            return lines
        }
        return nil
    }

    static let maxLines = 2000

    static func opackTree(_ v: OPACK, key: String?, depth: Int, into lines: inout [String]) {
        guard lines.count < maxLines else { return }
        let pad = String(repeating: "  ", count: depth)
        let prefix = pad + (key.map { $0 + ": " } ?? "")
        switch v {
        case .dictionary(let pairs):
            lines.append(prefix + "{")
            for p in pairs {
                let k: String = if case .string(let s) = p.key { s } else { "\(p.key)" }
                opackTree(p.value, key: k, depth: depth + 1, into: &lines)
            }
            lines.append(pad + "}")
        case .array(let items):
            lines.append(prefix + "[")
            for i in items { opackTree(i, key: nil, depth: depth + 1, into: &lines) }
            lines.append(pad + "]")
        case .data(let d):
            // Data that is itself OPACK or a binary plist is common (e.g. _tiD); show bytes, shortened.
            let hex = Hex.encode(d.prefix(48))
            lines.append(prefix + "<\(d.count) bytes \(hex)\(d.count > 48 ? "…" : "")>" + (d.starts(with: Array("bplist".utf8)) ? " (bplist)" : ""))
        default:
            lines.append(prefix + "\(v)")
        }
    }

    static func dmapTree(_ e: DMAPElement, depth: Int, into lines: inout [String]) {
        guard lines.count < maxLines else { return }
        let pad = String(repeating: "  ", count: depth)
        switch e.value {
        case .container(let children):
            lines.append(pad + e.tag + ":")
            for c in children { dmapTree(c, depth: depth + 1, into: &lines) }
        case .uint(let v, _): lines.append(pad + "\(e.tag): \(v)")
        case .bool(let b): lines.append(pad + "\(e.tag): \(b)")
        case .string(let s): lines.append(pad + "\(e.tag): \"\(s)\"")
        case .invalidString(let b): lines.append(pad + "\(e.tag): \"\(String(decoding: b, as: UTF8.self))\"")
        case .bplist(let b): lines.append(pad + "\(e.tag): <bplist \(b.count) bytes>")
        case .raw(let b): lines.append(pad + "\(e.tag): <\(b.count) bytes \(Hex.encode(b.prefix(32)))\(b.count > 32 ? "…" : "")>")
        case .ignored: lines.append(pad + "\(e.tag): (ignored)")
        }
    }
}

extension String {
    func trimmingLeadingSpaces() -> String { String(drop { $0 == " " }) }
}
