import ATVTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Paths and process helpers for tests that drive the real `atv` binary and peers.
enum TestEnv {
    /// The package root, from this file's path.
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    /// The built `atv` executable (scripts/test builds it before running tests).
    static func atv() throws -> String {
        let candidates = [".build/debug/atv", ".build/x86_64-unknown-linux-gnu/debug/atv"].map { root.appendingPathComponent($0).path }
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestFailure("the atv binary is not built: run `swift build` (scripts/test does) before the tests")
        }
        return path
    }

    static func venvTool(_ name: String) throws -> String {
        let path = root.appendingPathComponent(".venv-peers/bin/\(name)").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("\(name) not found at \(path): run scripts/setup")
        }
        return path
    }

    static func tempDir() throws -> URL { try makeTempDir("atv-test") }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Result of a finished process.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double
}

/// A started child process whose output is collected.
final class Child: @unchecked Sendable {
    let process = Process()
    private let outPipe = Pipe(), errPipe = Pipe()
    private let lock = NSLock()
    private var out = Data(), err = Data()
    let started = Date()

    init(_ executable: String, _ args: [String], stdin: FileHandle? = nil, environment: [String: String]? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.standardOutput = outPipe
        process.standardError = errPipe
        if let stdin { process.standardInput = stdin } else { process.standardInput = FileHandle.nullDevice }
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, n in n } }
        process.currentDirectoryURL = TestEnv.root
        outPipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.lock.withLock { self?.out.append(d) }
        }
        errPipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.lock.withLock { self?.err.append(d) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }

    /// Wait until `predicate(stdout)` holds, or throw after `timeout` seconds.
    func waitForOutput(timeout: Double, _ predicate: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let s = stdout
            if predicate(s) { return s }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("timed out waiting for output; stdout: \(stdout) stderr: \(stderr)")
    }

    /// Wait for exit; kill and throw after `timeout` seconds.
    func wait(timeout: Double) async throws -> ProcessResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            kill()
            throw TestFailure("process did not exit within \(timeout) s; stdout: \(stdout) stderr: \(stderr)")
        }
        try await Task.sleep(for: .milliseconds(50))  // let the pipes drain
        return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr,
                             seconds: Date().timeIntervalSince(started))
    }

    func interrupt() { if process.isRunning { process.interrupt() } }
    /// SIGTERM, for children that unblock it themselves and report on exit.
    func terminate() { if process.isRunning { process.terminate() } }
    /// SIGKILL: children of the test runner inherit a mask that blocks SIGTERM.
    func kill() { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }
    deinit { kill() }
}

/// Run a command to completion.
func run(_ executable: String, _ args: [String], timeout: Double = 60, environment: [String: String]? = nil) async throws -> ProcessResult {
    try await Child(executable, args, environment: environment).wait(timeout: timeout)
}

/// Run a shell pipeline with bash.
func sh(_ script: String, timeout: Double = 60) async throws -> ProcessResult {
    try await run("/bin/bash", ["-c", script], timeout: timeout)
}

/// s16le PCM of a file, decoded by the ffmpeg CLI (an independent decoder).
func referencePCM(_ path: String) async throws -> [UInt8] {
    let out = try TestEnv.tempDir().appendingPathComponent("ref.raw").path
    let r = try await run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-i", path, "-f", "s16le", "-ar", "44100", "-ac", "2", "-y", out])
    guard r.status == 0 else { throw TestFailure("ffmpeg failed: \(r.stderr)") }
    return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
}

/// The PCM payload of a 16-bit WAV file (the data chunk).
func wavPCM(_ path: String) throws -> [UInt8] {
    let b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    var i = 12
    while i + 8 <= b.count {
        let id = String(decoding: b[i..<(i + 4)], as: UTF8.self)
        let size = Int(b[i + 4]) | Int(b[i + 5]) << 8 | Int(b[i + 6]) << 16 | Int(b[i + 7]) << 24
        if id == "data" { return Array(b[(i + 8)..<min(b.count, i + 8 + size)]) }
        i += 8 + size + (size & 1)
    }
    throw TestFailure("\(path) has no data chunk")
}

/// Where `needle` starts in `haystack` (frame-aligned), or nil.
func findPCM(_ needle: ArraySlice<UInt8>, in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    var i = 0
    while i + needle.count <= haystack.count {
        if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        i += 4
    }
    return nil
}
