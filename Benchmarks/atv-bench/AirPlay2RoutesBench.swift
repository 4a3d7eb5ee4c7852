import ATVSimulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 16: our three AirPlay 2 routes — realtime NTP (`--timing ntp`), realtime PTP
/// (`--timing ptp`) and buffered PTP (`--timing ptp --buffered on`) — and pyatv's AirPlay 2 path
/// (realtime NTP, the only one it has), each streaming the same file to a virtual HomePod in the
/// same run. Per route: launch → the first source sample *played* by the receiver, by the clock
/// it follows (PTP: our master's, through its follower's offset; NTP: the sender's clock, through
/// its sync packets and timing exchanges), as the receiver's CLOCK_MONOTONIC minus the spawn's;
/// CPU seconds per audio minute (GNU time, user + system); peak USS (private pages from
/// `/proc/PID/smaps_rollup`) with peak RSS beside it. Each figure is the median of `runs` runs per
/// sender in alternating order; every run's received audio must be the source bit-exact and the
/// receiver must have seen the route asked for, or the benchmark fails.
///
/// PTP needs UDP 319/320 for our master (127.0.0.1) and for the HomePod's follower (127.0.0.2):
/// the group runs in a private network namespace of its own (`unshare --net`, as root), so it
/// never collides with another program's PTP ports.
func runAirPlay2RouteBenchmarks(seconds audioSeconds: Int, runs: Int, baseline: String?) async throws {
    guard ProcessInfo.processInfo.environment["ATV_BENCH_NETNS"] == "1" else {
        try reexecInPrivateNetworkNamespace(seconds: audioSeconds, runs: runs, baseline: baseline)
        return
    }
    let files = try StreamBenchFiles(seconds: audioSeconds, tag: "routes-")
    defer { files.remove() }
    let (atv, atvremote, dir, file) = (files.atv, files.atvremote, files.dir, files.file)
    let home = dir.appendingPathComponent("home").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    let source = try referencePCM(file, in: dir)
    let host = "127.0.0.2"  // the HomePod's address (its PTP follower's too); our master is on 127.0.0.1

    /// The last one is buffered PTP to the HomePod's strict profile advertising
    /// `model=ShairportSync`: the sender then keeps shairport-sync's documented start (1.5 s after
    /// the stream SETUP), the floor for such receivers.
    enum Route: String, CaseIterable {
        case realtimeNTP = "realtime NTP", realtimePTP = "realtime PTP", bufferedPTP = "buffered PTP"
        case bufferedPTPShairport = "buffered PTP, model ShairportSync (strict profile)"
        var args: [String] {
            switch self {
            case .realtimeNTP: ["--timing", "ntp"]
            case .realtimePTP: ["--timing", "ptp"]
            case .bufferedPTP, .bufferedPTPShairport: ["--timing", "ptp", "--buffered", "on"]
            }
        }
        var timing: String { self == .realtimeNTP ? "NTP" : "PTP" }
        var streamType: Int { self == .bufferedPTP || self == .bufferedPTPShairport ? 103 : 96 }
        var receiver: VirtualHomePod.Configuration {
            var c = VirtualHomePod.Configuration(host: "127.0.0.2", port: 0)
            if self == .bufferedPTPShairport {
                c.profile = .shairportAP2
                c.model = "ShairportSync"
            }
            return c
        }
    }

    struct Run {
        var usage: ChildUsage
        /// Launch → the source's first frame played, and → the first audio packet at the receiver.
        var firstSound: Double
        var firstPacket: Double
    }

    func measure(_ route: Route, _ launch: (VirtualHomePod) -> (String, [String], [String: String])) async throws -> Run {
        let wav = dir.appendingPathComponent("received-\(UUID().uuidString.prefix(8)).wav").path
        defer { unlink(wav) }
        var config = route.receiver
        config.outputPath = wav
        let pod = try await VirtualHomePod.start(config)
        let (path, args, env) = launch(pod)
        let name = URL(fileURLWithPath: path).lastPathComponent
        let clock = ContinuousClock()
        let startBox = StartBox()
        let usage: ChildUsage
        let report: HomePodReport
        do {
            usage = try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread {
                    continuation.resume(with: Result {
                        try spawnAndMeasure(path, args, environment: env, sampleMemory: true, onStart: { startBox.set(clock.now) })
                    })
                }
            }
            report = try await pod.waitForSessionEnd(sessions: 1, timeout: .seconds(30))
        } catch {
            await pod.stop()
            throw error
        }
        await pod.stop()
        guard usage.status == 0 else {
            let log = (try? String(contentsOfFile: "/tmp/atv-bench-child.log", encoding: .utf8)) ?? ""
            throw BenchError("\(name) (\(route.rawValue)) exited with \(usage.status): \(log.suffix(400))")
        }
        guard report.timingProtocol == route.timing, report.streamType == route.streamType else {
            throw BenchError("\(name): the receiver saw timing \(report.timingProtocol ?? "-"), stream type \(report.streamType.map(String.init) ?? "-"), not \(route.rawValue)")
        }
        guard let first = report.firstAudioPacketAt, let start = startBox.value, report.packetsDecrypted > 0 else {
            throw BenchError("no decrypted audio arrived from \(name) (\(route.rawValue))")
        }
        let frame: Int
        switch locateSource(source: source, capture: try wavPCM(wav)) {
        case .success(let f): frame = f
        case .failure(let why): throw BenchError("\(name) (\(route.rawValue)): the received audio is not the source: \(why)")
        }
        // The packet that holds the source's first frame, and when the receiver played it.
        let played = route == .realtimeNTP ? report.ntp.playInstants : report.ptp.playInstants
        guard let p = played.first(where: { $0.framesBefore <= frame && frame < $0.framesBefore + $0.frames }),
              let local = p.localTime else {
            throw BenchError("\(name) (\(route.rawValue)): the receiver did not place the source's first frame on the clock it follows (\(played.count) packets placed)")
        }
        let instant = local + Int64(frame - p.framesBefore) * 1_000_000_000 / 44_100
        return Run(usage: usage, firstSound: Double(instant - Int64(usage.launchedAt)) / 1e9, firstPacket: seconds(first - start))
    }

    func ours(_ route: Route, _ binary: String) -> (VirtualHomePod) -> (String, [String], [String: String]) {
        { pod in (binary, ["stream", file, "--host", host, "--port", "\(pod.port)", "--airplay-version", "2"] + route.args, ["HOME": home]) }
    }
    var variants: [() async throws -> Run] = Route.allCases.map { route in { try await measure(route, ours(route, atv)) } }
    variants.append({ try await measure(.realtimeNTP) { pod in
        (atvremote, ["--manual", "--address", host, "--port", "\(pod.port)", "--protocol", "raop",
                     "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", pod.raopServicePropertiesArgument(),
                     "stream_file=\(file)"], ["HOME": home])
    } })
    if let baseline {
        variants += Route.allCases.map { route in { try await measure(route, ours(route, baseline)) } }
    }
    let results = try await alternating(runs: runs, variants)
    let routes = Route.allCases.count
    let pyatv = results[routes]
    let minutes = Double(audioSeconds) / 60
    func m(_ runs: [Run], _ f: (Run) -> Double) -> Double { median(runs.map(f)) }
    let metrics: [(String, (Run) -> Double)] = [
        ("launch_to_first_sound_s", { $0.firstSound }),
        ("launch_to_first_audio_packet_s", { $0.firstPacket }),
        ("cpu_seconds_per_audio_minute", { $0.usage.cpuSeconds / minutes }),
        ("peak_uss_mb", { $0.usage.peakUSSMB }),
        ("peak_rss_mb", { $0.usage.peakSmapsRSSMB }),
    ]
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "-"
    for (i, route) in Route.allCases.enumerated() {
        for (name, f) in metrics {
            let o = m(results[i], f), p = m(pyatv, f)
            emit(["bench": "airplay2_routes", "route": route.rawValue, "metric": name, "audio_seconds": audioSeconds, "runs": runs,
                  "ours": round3(o), "pyatv": round3(p), "pyatv_route": "realtime NTP", "ratio": p > 0 ? round3(o / p) : NSNull(),
                  "goal": name == "launch_to_first_sound_s" && route != .realtimeNTP && route != .realtimePTP ? "<= 0.5 s" : "-",
                  "audio_verified": "bit-exact, every run", "load_after": load])
        }
        if baseline != nil {
            emitBaseline("airplay2_routes_\(["realtime_ntp", "realtime_ptp", "buffered_ptp", "buffered_ptp_shairportsync"][i])",
                         baseline: baseline!, audioSeconds: audioSeconds, runs: runs,
                         metrics.map { ($0.0, m(results[i], $0.1), m(results[routes + 1 + i], $0.1)) })
        }
    }
}

/// Runs this benchmark group again inside `unshare --net` (loopback up), its JSON lines on our
/// stdout; fails unless it succeeded.
private func reexecInPrivateNetworkNamespace(seconds: Int, runs: Int, baseline: String?) throws {
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
        throw BenchError("airplay2-routes needs root and unshare (PTP's UDP 319/320 in a private network namespace)")
    }
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    var args = ["airplay2-routes", "--runs", "\(runs)", "--seconds", "\(seconds)"]
    if let baseline { args += ["--baseline", baseline] }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
    p.arguments = ["--net", "/bin/bash", "-c", "ip link set lo up && exec \"$0\" \"$@\"", me] + args
    var env = ProcessInfo.processInfo.environment
    env["ATV_BENCH_NETNS"] = "1"
    p.environment = env
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError("airplay2-routes failed (exit \(p.terminationStatus))") }
}
