import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A `Range: bytes=…` request header resolved against a file size (RFC 9110 §14). Only a single
/// range is honoured; a syntactically invalid header is ignored (whole file), as the RFC says.
package enum ByteRangeRequest: Sendable, Equatable {
    /// No (usable) Range header: send everything with 200.
    case whole
    /// Send `length` bytes from `offset` with 206 and `Content-Range: bytes offset-(offset+length-1)/size`.
    case partial(offset: Int, length: Int)
    /// 416 with `Content-Range: bytes */size`.
    case unsatisfiable

    package init(header: String?, size: Int) {
        guard let header, size >= 0 else { self = .whole; return }
        let trimmed = header.trimmingWhitespace()
        guard trimmed.lowercased().hasPrefix("bytes=") else { self = .whole; return }
        let spec = trimmed.dropFirst("bytes=".count)
        // Several ranges: serve the first (media players ask for one at a time).
        guard let first = spec.split(separator: ",", omittingEmptySubsequences: false).first else { self = .whole; return }
        let parts = first.trimmingWhitespace().split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { self = .whole; return }
        let a = parts[0], b = parts[1]
        func number(_ s: Substring) -> Int? {
            guard !s.isEmpty, s.count <= 18, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(s)
        }
        if a.isEmpty {
            // Suffix: the last n bytes.
            guard let n = number(b) else { self = .whole; return }
            if n == 0 || size == 0 { self = .unsatisfiable; return }
            let len = min(n, size)
            self = .partial(offset: size - len, length: len)
            return
        }
        guard let start = number(a) else { self = .whole; return }
        var end = size - 1
        if !b.isEmpty {
            guard let e = number(b) else { self = .whole; return }
            if e < start { self = .whole; return }
            end = min(e, size - 1)
        }
        guard start < size else { self = .unsatisfiable; return }
        self = .partial(offset: start, length: end - start + 1)
    }
}
