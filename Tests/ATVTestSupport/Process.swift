import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the package, the built `atv` and the peers' venv are, for tests that start processes.
public enum TestEnv {
    /// The package root (the folder holding Package.swift), from this file's path.
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    /// The built `atv` executable: the one beside the running test binary, so the tests check the
    /// build they belong to (`swift test`, or `swift test -c release`: scripts/test runs the tests
    /// of its one release build); else the debug build's.
    public static let atvPath: String = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("atv").path
        let candidates = [besideTests] + [".build/debug/atv", ".build/x86_64-unknown-linux-gnu/debug/atv"].map { root.appendingPathComponent($0).path }
        return candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) ?? candidates[1]
    }()

    /// The built `atv` executable (scripts/test builds it before running tests).
    public static func atv() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: atvPath) else {
            throw TestFailure("the atv binary is not built: run `swift build` (scripts/test does) before the tests")
        }
        return atvPath
    }

    /// The peers' venv (pyatv 0.18, python-zeroconf): the package's `.venv-peers`, else /work/main's.
    public static var venv: String {
        let local = root.appendingPathComponent(".venv-peers").path
        if FileManager.default.isExecutableFile(atPath: local + "/bin/python") { return local }
        return "/work/main/.venv-peers"
    }

    /// A tool of the peers' venv (`atvremote`, `python`).
    public static func venvTool(_ name: String) throws -> String {
        let path = venv + "/bin/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("\(name) not found at \(path): run scripts/setup (it creates .venv-peers with pyatv 0.18.0)")
        }
        return path
    }

    /// An executable on PATH.
    public static func executable(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw TestFailure("\(name) not found on PATH: run scripts/setup")
    }

    public static func tempDir() throws -> URL { try makeTempDir("atv-test") }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A finished process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// From spawn to exit, as the child's own lifetime (the exit is stamped when it happens, not when
    /// a loaded test runner gets round to noticing it).
    public var seconds: Double
    /// It outlived its limit and was killed.
    public var timedOut: Bool
}

/// A started child process, the one process runner of every test target. Its stdout and stderr go
/// to files (no pipe to fill up, no reader thread per child: many children can run at once); the
/// exit is stamped by the termination handler. Every wait is async (polls with a deadline), so a
/// waiting test never blocks a thread of the shared concurrency pool. Killed when released.
public final class Child: @unchecked Sendable {
    public let process = Process()
    public let outURL: URL
    public let errURL: URL
    private let ownedDir: URL?
    private let lock = NSLock()
    private var exitedAt: ContinuousClock.Instant?
    public let started = ContinuousClock.now

    /// `environment` is added to (and overrides) the test runner's; `directory` holds the output
    /// files (a private temp dir, removed with the child, when nil). The working directory is the
    /// package root unless given.
    public init(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil,
                environment: [String: String]? = nil, in directory: URL? = nil, workingDirectory: URL? = nil) throws {
        let dir: URL
        if let directory { dir = directory; ownedDir = nil } else { dir = try makeTempDir("atv-proc"); ownedDir = dir }
        let tag = UUID().uuidString.prefix(8)
        outURL = dir.appendingPathComponent("proc-\(tag).out")
        errURL = dir.appendingPathComponent("proc-\(tag).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer { try? outHandle.close(); try? errHandle.close() }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = stdin ?? FileHandle.nullDevice
        // TMPDIR: the test process's own temp folder (removed at its exit), unless `environment` sets one.
        // XDG_RUNTIME_DIR too, where running streams put their control sockets: `atv volume` in
        // one test process never reaches a stream of another (or of the person running the tests).
        let runtime = TestTemp.root.appendingPathComponent("run")
        try? FileManager.default.createDirectory(at: runtime, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        process.environment = ProcessInfo.processInfo.environment
            .merging(["TMPDIR": TestTemp.root.path, "XDG_RUNTIME_DIR": runtime.path]) { _, n in n }
            .merging(environment ?? [:]) { _, n in n }
        process.currentDirectoryURL = workingDirectory ?? TestEnv.root
        process.terminationHandler = { [weak self] _ in
            guard let self else { return }
            self.lock.withLock { self.exitedAt = ContinuousClock.now }
        }
        try process.run()
    }

    public var stdoutData: Data { (try? Data(contentsOf: outURL)) ?? Data() }
    public var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
    public var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { lock.withLock { exitedAt == nil } }
    public var pid: Int32 { process.processIdentifier }

    /// Seconds from spawn to exit (or to now while it runs).
    public var seconds: Double {
        let end = lock.withLock { exitedAt } ?? ContinuousClock.now
        let d = end - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Wait until `predicate(stdout)` holds, or throw after `timeout` seconds (or when the child exits first).
    @discardableResult
    public func waitForOutput(timeout: Double, _ predicate: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            let s = stdout
            if predicate(s) { return s }
            if !isRunning {
                let last = stdout
                if predicate(last) { return last }
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("timed out waiting for output; stdout: \(stdout) stderr: \(stderr)")
    }

    /// Wait for the exit; after `timeout` seconds SIGTERM, then SIGKILL, and `timedOut` is set.
    public func finish(timeout: Double) async -> ProcessResult {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var timedOut = false
        while isRunning {
            if ContinuousClock.now >= deadline {
                timedOut = true
                terminate()
                let grace = ContinuousClock.now + .milliseconds(300)
                while isRunning && ContinuousClock.now < grace { try? await Task.sleep(for: .milliseconds(10)) }
                kill()
                while isRunning { try? await Task.sleep(for: .milliseconds(10)) }
                break
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        process.waitUntilExit()  // already exited: returns at once
        return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr, seconds: seconds, timedOut: timedOut)
    }

    /// Wait for the exit; kill it and throw after `timeout` seconds.
    public func wait(timeout: Double) async throws -> ProcessResult {
        let r = await finish(timeout: timeout)
        if r.timedOut { throw TestFailure("process did not exit within \(timeout) s; stdout: \(r.stdout) stderr: \(r.stderr)") }
        return r
    }

    /// Blocking wait, for the few synchronous helpers (fixture makers): no deadline of its own.
    public func finishBlocking() -> ProcessResult {
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr, seconds: seconds, timedOut: false)
    }

    public func interrupt() { if process.isRunning { process.interrupt() } }
    /// SIGTERM, for children that unblock it themselves and report on exit.
    public func terminate() { if process.isRunning { process.terminate() } }
    /// SIGKILL: children of the test runner inherit a mask that blocks SIGTERM.
    public func kill() { if process.isRunning { _ = Glibc.kill(process.processIdentifier, SIGKILL) } }

    /// Its output, for failure messages.
    public func describe() -> String { "--- stdout\n\(stdout)\n--- stderr (tail)\n\(stderr.suffix(3000))" }

    deinit {
        kill()
        if let ownedDir { try? FileManager.default.removeItem(at: ownedDir) }
    }
}

/// Run a command to completion; throws when it outlives `timeout` seconds.
public func run(_ executable: String, _ args: [String], timeout: Double = 60, environment: [String: String]? = nil,
                in directory: URL? = nil) async throws -> ProcessResult {
    try await Child(executable, args, environment: environment, in: directory).wait(timeout: timeout)
}

/// Run a shell script with bash.
public func sh(_ script: String, timeout: Double = 60) async throws -> ProcessResult {
    try await run("/bin/bash", ["-c", script], timeout: timeout)
}
