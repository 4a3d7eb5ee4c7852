import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where every file a test process makes lives: one folder per test process,
/// `$TMPDIR/atv-tests-PID`, removed when the process exits (normally or after a failed test). The
/// folders of test processes that no longer run (killed, crashed) are removed by the next test
/// process to start. Children started through `Child` get it as their TMPDIR, so what `atv`,
/// ffmpeg or a peer's scripts put in a temp dir goes with it.
public enum TestTemp {
    public static let root: URL = {
        let base = URL(fileURLWithPath: NSTemporaryDirectory())
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? fm.removeItem(at: base.appendingPathComponent(name)) }
        }
        let url = base.appendingPathComponent("\(prefix)\(getpid())")
        try? fm.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: TestTemp.root) }
        return url
    }()

    static let prefix = "atv-tests-"
}

/// A fresh, empty directory inside `TestTemp.root` (removed with it when the test process exits;
/// callers that remove it earlier may).
public func makeTempDir(_ prefix: String = "atv-test") throws -> URL {
    let url = TestTemp.root.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Poll `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
/// For tests that wait on another party (a socket, a process): no fixed sleep, a generous deadline.
public func poll(timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
                 _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try await condition() { return true }
        if clock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Poll `condition` until it holds; throws `TimedOut` naming `what` after `timeout`.
public func eventually(_ what: String, timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
                       _ condition: () async throws -> Bool) async throws {
    guard try await poll(timeout: timeout, interval: interval, condition) else { throw TimedOut("timed out after \(timeout) waiting for \(what)") }
}
