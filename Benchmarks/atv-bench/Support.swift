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
    /// CLOCK_MONOTONIC (ns) right before the spawn: the launch instant.
    var launchedAt: UInt64 = 0
    /// Peaks of the program's private memory (USS: Private_Clean + Private_Dirty) and of its RSS,
    /// sampled from `/proc/PID/smaps_rollup` every 50 ms (`sampleMemory`); 0 when not sampled.
    var peakUSSMB: Double = 0
    var peakSmapsRSSMB: Double = 0
    /// Peak of its anonymous pages (heap, thread stacks, malloc arenas and the libraries' relocated
    /// data: what no other process can share), from the same samples.
    var peakAnonMB: Double = 0
    /// Where its memory was when its USS peaked (`MemoryBreakdown`); nil when not sampled.
    var breakdown: MemoryBreakdown?
}

/// RSS and USS (MB) of a process by what its mappings hold, from `/proc/PID/smaps`: the file pages
/// of the program itself, of the Swift runtime with Foundation (and its ICU), of FFmpeg's own
/// libraries and of the rest of the shared libraries (most of them FFmpeg's dependencies on
/// Debian); `relocated_data`, the anonymous pages inside those file mappings (relocated pointers,
/// written data: private to the process, whatever the library); and `anonymous`, heap, thread
/// stacks and malloc arenas.
struct MemoryBreakdown {
    static let categories = ["binary", "swift_foundation", "ffmpeg", "other_libraries", "relocated_data", "anonymous"]
    var rssKB: [String: Double] = [:]
    var ussKB: [String: Double] = [:]
    var libraries = 0

    /// Nil when the process is gone.
    static func read(pid: String) -> MemoryBreakdown? {
        // Read to the end: /proc files report size 0, and a size-based read stops after the first chunk.
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps") else { return nil }
        // Throwing read: the process may exit between open and read (ESRCH), which
        // readDataToEndOfFile() turns into a crash of the benchmark.
        let text = String(decoding: ((try? handle.readToEnd()) ?? nil) ?? Data(), as: UTF8.self)
        try? handle.close()
        guard !text.isEmpty else { return nil }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
        var b = MemoryBreakdown()
        var seen: Set<Substring> = []
        var category = "anonymous"
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard let first = f.first else { continue }
            if first.last != ":" {
                // A mapping's header: "start-end perms offset dev inode [path]".
                let path = f.count == 6 ? f[5].trimmingCharacters(in: .whitespaces) : ""
                category = MemoryBreakdown.category(path: path, executable: exe)
                if path.hasPrefix("/") && category != "binary" { seen.insert(Substring(path)) }
                continue
            }
            guard f.count >= 2, let kb = Double(f[1]) else { continue }
            switch first {
            case "Anonymous:":
                // Relocated or written pages of a file mapping are anonymous: counted apart.
                if category != "anonymous" {
                    b.rssKB["relocated_data", default: 0] += kb
                    b.ussKB["relocated_data", default: 0] += kb
                    b.rssKB[category, default: 0] -= kb
                    b.ussKB[category, default: 0] -= kb
                }
            case "Rss:": b.rssKB[category, default: 0] += kb
            case "Private_Clean:", "Private_Dirty:": b.ussKB[category, default: 0] += kb
            default: break
            }
        }
        b.libraries = seen.count
        return b
    }

    static func category(path: String, executable: String) -> String {
        guard path.hasPrefix("/") else { return "anonymous" }
        if path == executable { return "binary" }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        for prefix in ["libswift", "libFoundation", "lib_FoundationICU", "libdispatch", "libBlocksRuntime"] where name.hasPrefix(prefix) {
            return "swift_foundation"
        }
        for prefix in ["libavformat", "libavcodec", "libavutil", "libswresample", "libavfilter", "libavdevice", "libswscale", "libpostproc"]
            where name.hasPrefix(prefix) {
            return "ffmpeg"
        }
        return "other_libraries"
    }

    /// The figures in MB, e.g. `binary_rss_mb`, `binary_uss_mb`, plus `shared_libraries`.
    var fields: [String: Any] {
        var out: [String: Any] = ["shared_libraries": libraries]
        for c in Self.categories {
            out["\(c)_rss_mb"] = round3((rssKB[c] ?? 0) / 1024)
            out["\(c)_uss_mb"] = round3((ussKB[c] ?? 0) / 1024)
        }
        return out
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the PTP master's time base, and what the virtual HomePod
/// reports play instants in).
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Samples a process's memory from `/proc/PID/smaps_rollup` (private pages, not RSS: Debian's
/// FFmpeg and Python libraries are shared pages) until it is gone or `stop` is called; keeps the
/// peaks. The program runs under GNU time, so the process sampled is that pid's child.
final class MemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var ussKB = 0.0, rssKB = 0.0, anonKB = 0.0
    private var breakdown: MemoryBreakdown?
    private let done = DispatchSemaphore(value: 0)

    init(parent: pid_t) {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            var child: String?
            var lastBreakdown = 0
            var tick = 0
            while !isStopped {
                tick += 1
                if child == nil {
                    let list = (try? String(contentsOfFile: "/proc/\(parent)/task/\(parent)/children", encoding: .utf8)) ?? ""
                    child = list.split(separator: " ").first.map(String.init)
                }
                if let child {
                    guard let text = try? String(contentsOfFile: "/proc/\(child)/smaps_rollup", encoding: .utf8) else { break }
                    var uss = 0.0, rss = 0.0, anon = 0.0
                    for line in text.split(separator: "\n") {
                        let f = line.split(separator: " ", omittingEmptySubsequences: true)
                        guard f.count >= 2, let kb = Double(f[1]) else { continue }
                        switch f[0] {
                        case "Rss:": rss = kb
                        case "Private_Clean:", "Private_Dirty:": uss += kb
                        case "Anonymous:": anon = kb
                        default: break
                        }
                    }
                    let newPeak = lock.withLock {
                        defer {
                            ussKB = max(ussKB, uss)
                            rssKB = max(rssKB, rss)
                            anonKB = max(anonKB, anon)
                        }
                        return uss > ussKB
                    }
                    // The whole smaps (hundreds of mappings) at a new USS peak, at most once a second.
                    if newPeak && tick - lastBreakdown >= 20, let b = MemoryBreakdown.read(pid: child) {
                        lastBreakdown = tick
                        lock.withLock { breakdown = b }
                    }
                }
                usleep(50_000)
            }
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    /// Stops sampling; the peaks in MB and the breakdown at the last USS peak read.
    func finish() -> (uss: Double, rss: Double, anon: Double, breakdown: MemoryBreakdown?) {
        lock.withLock { stopped = true }
        done.wait()
        return lock.withLock { (ussKB / 1024, rssKB / 1024, anonKB / 1024, breakdown) }
    }
}

/// Runs a program and reports its CPU time and peak RSS, measured by GNU time (`/usr/bin/time`).
/// A small intermediate process matters: on Linux a child's `ru_maxrss` includes the high-water
/// mark of the memory it was spawned from before exec, and posix_spawn shares the spawner's
/// memory, so measuring a child of this (large) benchmark process directly would report our own
/// size instead of the child's.
func spawnAndMeasure(_ path: String, _ args: [String], environment: [String: String] = [:],
                     sampleMemory: Bool = false, stderrPath: String = "/tmp/atv-bench-child.log",
                     onStart: (() -> Void)? = nil) throws -> ChildUsage {
    let timeBinary = "/usr/bin/time"
    guard FileManager.default.isExecutableFile(atPath: timeBinary) else {
        throw BenchError("\(timeBinary) not found: run scripts/setup (Debian package `time`)")
    }
    // One file per spawn: `multiroom` measures several children at once.
    let report = FileManager.default.temporaryDirectory.appendingPathComponent("atv-bench-usage-\(getpid())-\(UUID().uuidString.prefix(8)).txt").path
    defer { unlink(report) }
    let fullArgs = [timeBinary, "-f", "%U %S %M", "-o", report, path] + args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let argv = fullArgs.map { strdup($0) } + [nil]
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
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var pid: pid_t = 0
    let start = Date()
    let launchedAt = monotonicNanoseconds()
    let rc = posix_spawn(&pid, timeBinary, &actions, nil, argv, envp)
    guard rc == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(rc)))") }
    onStart?()
    let sampler = sampleMemory ? MemorySampler(parent: pid) : nil
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let wall = Date().timeIntervalSince(start)
    let memory = sampler?.finish() ?? (uss: 0, rss: 0, anon: 0, breakdown: nil)
    // GNU time writes "Command exited with non-zero status N" before the figures on failure.
    let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
    guard let line = text.split(separator: "\n").last, case let f = line.split(separator: " "), f.count == 3,
          let user = Double(f[0]), let sys = Double(f[1]), let maxKB = Double(f[2]) else {
        throw BenchError("no usage figures from \(timeBinary) for \(path): \(text)")
    }
    return ChildUsage(status: (status >> 8) & 0xFF, wallSeconds: wall, cpuSeconds: user + sys, peakRSSMB: maxKB / 1024,
                      launchedAt: launchedAt, peakUSSMB: memory.uss, peakSmapsRSSMB: memory.rss,
                      peakAnonMB: memory.anon, breakdown: memory.breakdown)
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
    if let chosen = ProcessInfo.processInfo.environment["ATV_BENCH_ATV"] { return chosen }
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

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Benchmark options from the command line: `--runs N` (≥ 3; every comparison is the median of
/// that many runs per side) and `--seconds N` (audio length of the stream benchmarks).
struct BenchOptions {
    var runs = 3
    var audioSeconds = 60
    var groups: Set<String> = []
    /// Another build of `atv` (e.g. an earlier commit's release build): the stream groups run it as
    /// a third sender in the same alternating rounds and report ours / baseline per metric.
    var baseline: String?
    /// `multiroom`: the numbers of receivers (`--members 1,2,4`), default 1, 2, 4, 8, 16.
    var members = [1, 2, 4, 8, 16]

    static func parse(_ args: [String]) throws -> BenchOptions {
        var o = BenchOptions()
        var i = 0
        while i < args.count {
            switch args[i] {
            case "--runs", "--seconds":
                guard i + 1 < args.count, let n = Int(args[i + 1]), n > 0 else { throw BenchError("\(args[i]) needs a positive number") }
                if args[i] == "--runs" {
                    guard n >= 3 else { throw BenchError("--runs must be at least 3 (comparisons are medians)") }
                    o.runs = n
                } else {
                    o.audioSeconds = n
                }
                i += 2
            case "--baseline":
                guard i + 1 < args.count else { throw BenchError("--baseline needs the path of an atv binary") }
                let path = args[i + 1]
                guard FileManager.default.isExecutableFile(atPath: path) else { throw BenchError("--baseline: \(path) is not an executable") }
                o.baseline = path
                i += 2
            case "--atv":
                // Our sender: another build than the `atv` beside this binary, e.g. the one
                // scripts/install ships (standard library linked in statically).
                guard i + 1 < args.count, FileManager.default.isExecutableFile(atPath: args[i + 1]) else {
                    throw BenchError("--atv needs the path of an atv binary")
                }
                setenv("ATV_BENCH_ATV", args[i + 1], 1)
                i += 2
            case "--members":
                guard i + 1 < args.count, case let ns = args[i + 1].split(separator: ",").compactMap({ Int($0) }),
                      !ns.isEmpty, ns.allSatisfy({ $0 > 0 && $0 <= 64 }) else {
                    throw BenchError("--members needs numbers of receivers, e.g. 1,2,4,8,16")
                }
                o.members = ns
                i += 2
            default:
                o.groups.insert(args[i])
                i += 1
            }
        }
        return o
    }
}

/// `atv --version` of a binary (names the baseline's revision in the JSON).
func atvVersion(_ path: String) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = ["--version"]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return "unknown" }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs each variant `runs` times; round r starts with variant r mod n, so no variant always goes
/// first (or always follows the same one). Returns the results per variant, in variant order.
func alternating<R>(runs: Int, _ variants: [() async throws -> R]) async throws -> [[R]] {
    var out = Array(repeating: [R](), count: variants.count)
    for r in 0 ..< runs {
        for k in 0 ..< variants.count {
            let v = (r + k) % variants.count
            out[v].append(try await variants[v]())
        }
    }
    return out
}

/// s16le stereo 44.1 kHz PCM of `file`, decoded by the ffmpeg CLI (independent of our decoder).
func referencePCM(_ file: String, in dir: URL) throws -> [UInt8] {
    let raw = dir.appendingPathComponent("reference-\(UUID().uuidString.prefix(8)).raw").path
    defer { unlink(raw) }
    try shell("ffmpeg -hide_banner -loglevel error -i '\(file)' -f s16le -ar 44100 -ac 2 -y '\(raw)'")
    return Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
}

/// The PCM payload (data chunk) of a WAV file a virtual receiver wrote.
func wavPCM(_ path: String) throws -> [UInt8] {
    let b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    var i = 12
    while i + 8 <= b.count {
        let id = String(decoding: b[i ..< i + 4], as: UTF8.self)
        let size = Int(b[i + 4]) | Int(b[i + 5]) << 8 | Int(b[i + 6]) << 16 | Int(b[i + 7]) << 24
        if id == "data" { return Array(b[(i + 8) ..< (size == 0 ? b.count : min(b.count, i + 8 + size))]) }
        i += 8 + size + (size & 1)
    }
    throw BenchError("\(path) has no data chunk")
}

/// Nil when `capture` holds all of `source` bit-exact (after any leading silence), else why not.
func verifyBitExact(source: [UInt8], capture: [UInt8]) -> String? {
    if case .failure(let why) = locateSource(source: source, capture: capture) { return why.description }
    return nil
}

/// Where `capture` holds all of `source` bit-exact: the capture frame of the source's frame 0.
func locateSource(source: [UInt8], capture: [UInt8]) -> Result<Int, BenchError> {
    func fail(_ why: String) -> Result<Int, BenchError> { .failure(BenchError(why)) }
    let frames = source.count / 4
    guard frames > 0 else { return fail("the source is empty") }
    let firstLoud: Int? = (0 ..< frames).first(where: { f in source[f * 4 ..< f * 4 + 4].contains { $0 != 0 } })
    let loud = firstLoud ?? 0
    let probe = min(1024, frames - loud)
    let needle = source[loud * 4 ..< (loud + probe) * 4]
    var at: Int?
    var i = 0
    while i + needle.count <= capture.count {
        if capture[i ..< i + needle.count].elementsEqual(needle) { at = i; break }
        i += 4
    }
    guard let at else { return fail("the source was not found in the \(capture.count / 4)-frame capture") }
    let offset = at - loud * 4
    guard offset >= 0 else { return fail("the capture starts inside the source") }
    guard offset + source.count <= capture.count else {
        return fail("the capture ends \((offset + source.count - capture.count) / 4) frames before the source does")
    }
    if let f = (0 ..< frames).first(where: { capture[offset + $0 * 4 ..< offset + $0 * 4 + 4] != source[$0 * 4 ..< $0 * 4 + 4] }) {
        return fail("the capture differs from the source at frame \(f) of \(frames)")
    }
    return .success(offset / 4)
}

/// One `<bench>_vs_baseline` line per metric: this build against another build of `atv`, measured
/// in the same alternating rounds (medians), each run's audio verified bit-exact like the others.
func emitBaseline(_ bench: String, baseline: String, audioSeconds: Int, runs: Int, _ rows: [(String, Double, Double)]) {
    let version = atvVersion(baseline)
    for (name, ours, base) in rows {
        emit(["bench": "\(bench)_vs_baseline", "metric": name, "audio_seconds": audioSeconds, "runs": runs,
              "ours": round3(ours), "baseline": round3(base), "ratio": base > 0 ? round3(ours / base) : NSNull(),
              "baseline_version": version, "audio_verified": "bit-exact, every run"])
    }
}

/// What every stream benchmark starts from: our `atv` beside this binary, pyatv's `atvremote`, a
/// scratch directory (removed by `remove()`), and in it `bench.flac`, `seconds` of music-like
/// audio (two tones and a little pink noise, stereo, 44.1 kHz, 16-bit) made by the ffmpeg CLI.
struct StreamBenchFiles {
    let atv: String
    let atvremote: String
    let dir: URL
    let file: String

    init(seconds: Int, tag: String) throws {
        atv = try siblingATV()
        atvremote = packageRoot().appendingPathComponent(".venv-peers/bin/atvremote").path
        guard FileManager.default.isExecutableFile(atPath: atvremote) else {
            throw BenchError("\(atvremote) not found: run scripts/setup")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("atv-bench-\(tag)\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        file = dir.appendingPathComponent("bench.flac").path
        try shell("ffmpeg -hide_banner -loglevel error -f lavfi -i 'sine=frequency=220:duration=\(seconds)' "
            + "-f lavfi -i 'sine=frequency=331:duration=\(seconds)' -f lavfi -i 'anoisesrc=d=\(seconds):a=0.05:c=pink' "
            + "-filter_complex '[0][1][2]amix=inputs=3,pan=stereo|c0=c0|c1=0.8*c0' -ar 44100 -sample_fmt s16 -y '\(file)'")
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }
}

/// The memory metrics every stream group reports beside GNU time's peak RSS: peak USS
/// (`Private_Clean + Private_Dirty`), peak RSS and peak anonymous memory from smaps_rollup.
func memoryMetrics<R>(_ usage: @escaping (R) -> ChildUsage) -> [(String, (R) -> Double, String)] {
    [("peak_uss_mb", { usage($0).peakUSSMB }, "-"),
     ("peak_smaps_rss_mb", { usage($0).peakSmapsRSSMB }, "-"),
     ("peak_anon_mb", { usage($0).peakAnonMB }, "-")]
}

/// One `<bench>` line, metric `memory_breakdown`: where our process's RSS and USS were at its USS
/// peak (`MemoryBreakdown`), from the run with the median peak USS; the issue-17 goals beside it.
func emitMemoryBreakdown(_ bench: String, runs: [ChildUsage], extra: [String: Any] = [:]) {
    let sampled = runs.filter { $0.breakdown != nil }.sorted { $0.peakUSSMB < $1.peakUSSMB }
    guard !sampled.isEmpty else { return }
    let run = sampled[sampled.count / 2]
    var line: [String: Any] = ["bench": bench, "metric": "memory_breakdown", "sender": "atv",
                               "peak_uss_mb": round3(run.peakUSSMB), "peak_rss_mb": round3(run.peakSmapsRSSMB),
                               "goal": "USS <= 12 MB, RSS <= 45 MB (issue 17)"]
    for (k, v) in run.breakdown!.fields { line[k] = v }
    for (k, v) in extra { line[k] = v }
    emit(line)
}
