#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// printf-style formatting of numbers by the C library (`vsnprintf`): `String(cFormat: "%.1f", x)`,
    /// `"%02x"`, `"%d:%02d"`. Foundation's `String(cFormat:)` without Foundation (which costs the
    /// `atv` process megabytes of private memory). Numbers only: `%@` is Foundation's.
    package init(cFormat format: String, _ arguments: CVarArg...) {
        var buffer = [CChar](repeating: 0, count: 64)
        let needed = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        guard needed >= 0 else { self = ""; return }
        if Int(needed) >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(needed) + 1)
            _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        }
        self = String(decoding: buffer.prefix(Int(needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (Foundation's `trimmingWhitespace()`:
    /// Unicode space separators and the tab).
    package func trimmingWhitespace() -> String {
        func isSpace(_ c: Character) -> Bool {
            c == "\t" || c.unicodeScalars.allSatisfy { $0.properties.generalCategory == .spaceSeparator }
        }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first ... last])
    }

    /// Without leading and trailing white space and line breaks (Foundation's
    /// `trimmingWhitespaceAndNewlines()`).
    package func trimmingWhitespaceAndNewlines() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first ... last])
    }
}
