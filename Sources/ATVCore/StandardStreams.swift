#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unbuffered writes to standard output and error and whole-file reads with the C library, as
/// Foundation's FileHandle did them (FoundationEssentials has no FileHandle).
package enum StandardStream {
    package static func writeOutput(_ text: String) { write(1, Array(text.utf8)) }
    package static func writeError(_ text: String) { write(2, Array(text.utf8)) }
    package static func writeError(_ bytes: [UInt8]) { write(2, bytes) }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false when the descriptor fails.
    @discardableResult
    package static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                #else
                Darwin.write(fd, raw.baseAddress! + done, raw.count - done)
                #endif
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Everything readable from `fd` until end of file (stops at a read error).
    package static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                #if canImport(Glibc)
                Glibc.read(fd, raw.baseAddress!, raw.count)
                #else
                Darwin.read(fd, raw.baseAddress!, raw.count)
                #endif
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return out }
            out.append(contentsOf: buffer[0 ..< n])
        }
    }

    /// The whole file at `path` (also /proc files, whose size reads as 0); nil when it cannot be opened.
    package static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readAll(fd)
    }
}
