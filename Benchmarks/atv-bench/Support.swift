import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished child process cost.
struct ChildUsage {
    var status: Int32
    var wallSeconds: Double
    var cpuSeconds: Double
    var peakRSSMB: Double
}

/// Runs a program with posix_spawn and collects its rusage with wait4 (CPU time and peak RSS of
/// exactly that process).
func spawnAndMeasure(_ path: String, _ args: [String], environment: [String: String] = [:],
                     onStart: (() -> Void)? = nil) throws -> ChildUsage {
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let argv = ([path] + args).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/tmp/atv-bench-child.log", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var pid: pid_t = 0
    let start = Date()
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(rc)))") }
    onStart?()
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return ChildUsage(status: (status >> 8) & 0xFF, wallSeconds: Date().timeIntervalSince(start), cpuSeconds: cpu,
                      peakRSSMB: Double(usage.ru_maxrss) / 1024)
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Package root (where Package.swift is), found from the current directory or this binary.
func packageRoot() -> URL {
    var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
    for var url in candidates {
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}

/// The `atv` binary built next to this benchmark (same configuration).
func siblingATV() throws -> String {
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let path = me.deletingLastPathComponent().appendingPathComponent("atv").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw BenchError("\(path) not found: build it with `swift build -c release` first")
    }
    return path
}

func shell(_ command: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", command]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError("command failed: \(command)") }
}

/// One JSON object per line on stdout.
func emit(_ object: [String: Any]) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
