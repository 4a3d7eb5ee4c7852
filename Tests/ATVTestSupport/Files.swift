import Foundation

/// A fresh, empty directory under the system temporary directory.
public func makeTempDir(_ prefix: String = "atv-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
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
