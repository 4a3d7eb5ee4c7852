import ATVCore
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// ATVCore's stand-ins for what FoundationEssentials lacks, checked against Foundation itself
/// (which the tests may import; the modules of `atv` may not).
@Suite struct FoundationFreeTests {
    @Test func cFormatMatchesFoundationsFormat() {
        for (format, value) in [("%.1f", 2.5), ("%.6f", 1 / 3.0), ("%.3f ms", 1234.5678), ("%.4f %%", 99.99999)] {
            #expect(String(cFormat: format, value) == String(format: format, value))
        }
        #expect(String(cFormat: "%02x", UInt8(7)) == "07")
        #expect(String(cFormat: "%d:%02d", 3, 5) == "3:05")
        #expect(String(cFormat: "%04o", 0o600) == "0600")
        // Longer than the first buffer: formatted again at its size.
        let long = String(repeating: "x", count: 300)
        #expect(String(cFormat: "%d" + long, 42) == "42" + long)
    }

    /// What NSString answers for each (read off this toolchain's Foundation, 6.3.1, one process per
    /// path: its `deletingLastPathComponent` traps on a bare name such as "c", so the test cannot ask
    /// it in-process; Apple's answers "" there).
    @Test func pathNamesAsNSStringTookThemApart() {
        let table: [(path: String, directory: String, last: String, ext: String)] = [
            ("/a/b/c", "/a/b", "c", ""), ("/a/b/", "/a", "b", ""), ("/c", "/", "c", ""), ("c", "", "c", ""),
            ("/", "/", "/", ""), ("a/b", "a", "b", ""), ("//a//b//", "/a", "b", ""),
            ("/a/b.flac", "/a", "b.flac", "flac"), (".profile", "", ".profile", ""), ("dir.d/file", "dir.d", "file", ""),
        ]
        for row in table {
            #expect(PathName.directory(row.path) == row.directory, "\(row.path)")
            #expect(PathName.lastComponent(row.path) == row.last, "\(row.path)")
            #expect(PathName.pathExtension(row.path) == row.ext, "\(row.path)")
            if row.path.contains("/") {
                let ns = row.path as NSString
                #expect(ns.deletingLastPathComponent == row.directory && ns.lastPathComponent == row.last
                        && ns.pathExtension == row.ext, "\(row.path): Foundation answers differently")
            }
        }
        #expect(PathName.homeDirectory() == NSHomeDirectoryForUser(NSUserName()) ?? "/")
    }

    @Test func trimmingAsFoundationTrims() {
        for s in ["  a b \t", "\n x \n", "", "   ", "\u{00A0}y\u{2003}", "z"] {
            #expect(s.trimmingWhitespace() == s.trimmingCharacters(in: .whitespaces), "\(Array(s.unicodeScalars))")
            #expect(s.trimmingWhitespaceAndNewlines() == s.trimmingCharacters(in: .whitespacesAndNewlines), "\(Array(s.unicodeScalars))")
        }
    }

    @Test func fileErrorsReadAsTheCLibrarysText() throws {
        // A real failed write: the POSIX cause's text.
        do {
            try Data("x".utf8).write(to: URL(fileURLWithPath: "/nonexistent-dir/f"))
            Issue.record("the write to a missing directory succeeded")
        } catch {
            #expect(PathName.describe(error) == "No such file or directory")
        }
        // File errors without a POSIX cause, and any other error: text, never a type name.
        #expect(PathName.describe(CocoaError(.fileWriteOutOfSpace)) == "No space left on device")
        #expect(PathName.describe(CocoaError(.fileReadNoPermission)) == "Permission denied")
        #expect(PathName.describe(CocoaError(.fileReadCorruptFile)) == "the file operation failed")
        struct Odd: Error { let detail = "internal" }
        #expect(PathName.describe(Odd()) == "the file operation failed")
    }

    @Test func readFileReadsProcFilesToTheEnd() throws {
        let bytes = try #require(StandardStream.readFile("/proc/self/status"))
        #expect(String(decoding: bytes, as: UTF8.self).contains("Pid:\t\(getpid())"))
        #expect(StandardStream.readFile("/nonexistent/file") == nil)
    }

    @Test func aStartedThreadRunsNamedAndSignalsThroughTheCondition() {
        let condition = ConditionMutex()
        let result = Mutex<String?>(nil)
        let done = Mutex(false)
        startThread(name: "atv-test-thread-long-name") {
            let name = StandardStream.readFile("/proc/thread-self/comm").map { String(decoding: $0, as: UTF8.self) }
            result.withLock { $0 = name }
            condition.withLock { done.withLock { $0 = true } }
            condition.signal()
        }
        condition.lock()
        while !done.withLock({ $0 }) { condition.wait() }
        condition.unlock()
        // The kernel keeps 15 bytes of a thread's name.
        #expect(result.withLock { $0 } == "atv-test-thread\n")
    }
}
