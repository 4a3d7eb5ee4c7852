import ATVSimulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 8: MRP control, ours (`atv`) against pyatv (`atvremote`) on the same virtual MRP device
/// (VirtualMRP, in this process) in one run, both with the same stored credentials.
/// - launch → first `playing` result: wall time of the whole command, median of 5 each.
/// - idle push updates: CPU the client process uses while subscribed to an idle device
///   (nothing changes; MRP heartbeats only), read from /proc/PID/stat between 5 s and 5 + window
///   s after launch (window 180 s, or ATV_BENCH_IDLE_SECONDS), scaled to one hour.
func runControlBenchmarks(idleWindow: Double = Double(ProcessInfo.processInfo.environment["ATV_BENCH_IDLE_SECONDS"] ?? "") ?? 180) async throws {
    let root = packageRoot()
    let atv = try siblingATV()
    let atvremote = root.appendingPathComponent(".venv-peers/bin/atvremote").path
    guard FileManager.default.isExecutableFile(atPath: atvremote) else {
        throw BenchError("\(atvremote) not found (run scripts/setup)")
    }
    let device = try await VirtualMRP.start(.init(port: 0, advanceInterval: nil))
    defer { Task { await device.stop() } }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atv-bench-control-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let storage = dir.appendingPathComponent("devices.json").path
    let home = dir.appendingPathComponent("home").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)

    let port = String(device.port)
    let pair = try runToEnd(atv, ["pair", "--host", "127.0.0.1", "--port", port, "--protocol", "mrp", "--pin", "1111", "--storage", storage])
    guard pair.status == 0 else { throw BenchError("atv pair --protocol mrp failed: \(pair.stderr)") }
    let credentials = try storedMRPCredentials(storage)

    let oursArgs = ["--host", "127.0.0.1", "--protocol", "mrp", "--port", port, "--mrp-credentials", credentials]
    let pyArgs = ["--manual", "--address", "127.0.0.1", "--port", port, "--protocol", "mrp", "--id", "SWIFTATVBENCH",
                  "--mrp-credentials", credentials]
    let pyEnv = ["HOME": home]

    var oursWall: [Double] = [], pyWall: [Double] = []
    for _ in 0 ..< 5 {
        let a = try runToEnd(atv, ["playing"] + oursArgs)
        guard a.status == 0, a.stdout.contains("Title: ") else { throw BenchError("atv playing failed: \(a.stderr)") }
        oursWall.append(a.wall)
        let b = try runToEnd(atvremote, pyArgs + ["playing"], environment: pyEnv)
        guard b.status == 0, b.stdout.contains("Title: ") else { throw BenchError("atvremote playing failed: \(b.stderr.suffix(300))") }
        pyWall.append(b.wall)
    }
    let a = median(oursWall), b = median(pyWall)
    emit(["bench": "mrp_launch_to_playing", "unit": "s", "ours_s": round3(a), "pyatv_s": round3(b), "ratio": round3(a / b),
          "measured": "wall time of `atv playing` vs `atvremote playing` (MRP, stored credentials), median of 5"])

    let oursIdle = try idleCPU(atv, ["push-updates"] + oursArgs, window: idleWindow)
    let pyIdle = try idleCPU(atvremote, pyArgs + ["push_updates"], environment: pyEnv, window: idleWindow)
    emit(["bench": "mrp_idle_push_updates_cpu", "unit": "s per hour", "ours_s_per_hour": round3(oursIdle * 3600 / idleWindow),
          "pyatv_s_per_hour": round3(pyIdle * 3600 / idleWindow), "ratio": pyIdle > 0 ? round3(oursIdle / pyIdle) : NSNull(),
          "window_s": idleWindow, "resolution_s": round3(1 / clockTick),
          "measured": "client CPU (utime+stime of the whole process from /proc) while subscribed to an idle device, \(Int(idleWindow)) s window after 5 s, scaled to 1 h"])
}

private struct Finished {
    var status: Int32
    var stdout: String
    var stderr: String
    var wall: Double
}

private func runToEnd(_ path: String, _ args: [String], environment: [String: String] = [:]) throws -> Finished {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    let start = Date()
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Finished(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                    stderr: String(decoding: e, as: UTF8.self), wall: Date().timeIntervalSince(start))
}

/// CPU seconds a long-running client uses between 5 s and 5 + window s after its start.
private func idleCPU(_ path: String, _ args: [String], environment: [String: String] = [:], window: Double) throws -> Double {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let stdin = Pipe()   // kept open: atvremote's push_updates ends on ENTER or EOF
    p.standardInput = stdin
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    defer {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try? stdin.fileHandleForWriting.close()
    }
    Thread.sleep(forTimeInterval: 5)
    guard p.isRunning, let t0 = processCPU(p.processIdentifier) else { throw BenchError("\(path) \(args.last ?? "") ended early") }
    Thread.sleep(forTimeInterval: window)
    guard p.isRunning, let t1 = processCPU(p.processIdentifier) else { throw BenchError("\(path) \(args.last ?? "") ended during the window") }
    return t1 - t0
}

/// utime + stime of a whole process in seconds, exited threads included (fields 14 and 15 of
/// /proc/PID/stat), in clock ticks of 1/CLK_TCK s. Per-thread schedstat is finer but loses the
/// time of threads that exit during the window, so the coarse whole-process figure is used and
/// its resolution reported.
private func processCPU(_ pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command name, the state is field 3, so utime (14) and stime (15) are at 11 and 12.
    guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
    return (u + s) / clockTick
}

private let clockTick = Double(sysconf(Int32(_SC_CLK_TCK)))

private func storedMRPCredentials(_ path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let devices = json["devices"] as? [[String: Any]],
          let c = devices.compactMap({ (($0["protocols"] as? [String: [String: Any]])?["mrp"])?["credentials"] as? String }).first else {
        throw BenchError("no MRP credentials in \(path)")
    }
    return c
}
