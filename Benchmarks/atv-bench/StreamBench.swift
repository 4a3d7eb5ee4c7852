import ATVSimulator
import Foundation

/// Streams the same file with our sender (`atv stream`) and with pyatv (`atvremote stream_file`)
/// to a virtual speaker each, and compares what it cost and how it arrived. Everything about
/// the stream is measured at the receiver, the same way for both senders. Each figure is the
/// median of `runs` runs per sender, the senders alternating; every run's received audio must be
/// the source bit-exact (checked against the ffmpeg CLI's decoding), or the benchmark fails.
func runStreamBenchmarks(seconds audioSeconds: Int = 60, runs: Int = 3, baseline: String? = nil) async throws {
    let files = try StreamBenchFiles(seconds: audioSeconds, tag: "")
    defer { files.remove() }
    let (atv, atvremote, dir, file) = (files.atv, files.atvremote, files.dir, files.file)

    struct Run {
        var usage: ChildUsage
        var report: SpeakerReport
        var firstPacket: Double
    }

    let source = try referencePCM(file, in: dir)
    func measure(_ launch: (Int) throws -> (String, [String], [String: String])) async throws -> Run {
        let wav = dir.appendingPathComponent("received-\(UUID().uuidString.prefix(8)).wav").path
        defer { unlink(wav) }
        let speaker = try await VirtualSpeaker.start(.init(port: 0, outputPath: wav))
        let (path, args, env) = try launch(speaker.port)
        let clock = ContinuousClock()
        let startBox = StartBox()
        // posix_spawn + wait4 block: run them on a thread of their own, off the cooperative pool.
        let usage: ChildUsage = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    try spawnAndMeasure(path, args, environment: env, sampleMemory: true, onStart: { startBox.set(clock.now) })
                })
            }
        }
        let report = try await speaker.waitForSessionEnd(sessions: 1, timeout: .seconds(30))
        await speaker.stop()
        guard usage.status == 0 else {
            let log = (try? String(contentsOfFile: "/tmp/atv-bench-child.log", encoding: .utf8)) ?? ""
            throw BenchError("\(path) exited with \(usage.status): \(log.suffix(400))")
        }
        guard let first = report.firstAudioPacketAt, let start = startBox.value else {
            throw BenchError("no audio arrived from \(path)")
        }
        if let why = verifyBitExact(source: source, capture: try wavPCM(wav)) {
            throw BenchError("\(URL(fileURLWithPath: path).lastPathComponent): the received audio is not the source: \(why)")
        }
        return Run(usage: usage, report: report, firstPacket: seconds(first - start))
    }

    let home = dir.appendingPathComponent("home").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    var variants: [() async throws -> Run] = [
        { try await measure { port in (atv, ["stream", file, "--host", "127.0.0.1", "--port", "\(port)"], [:]) } },
        { try await measure { port in
            (atvremote, ["--manual", "--address", "127.0.0.1", "--port", "\(port)", "--protocol", "raop",
                         "--id", "AA:BB:CC:DD:EE:FF", "stream_file=\(file)"], ["HOME": home])
        } },
    ]
    if let baseline {
        variants.append({ try await measure { port in (baseline, ["stream", file, "--host", "127.0.0.1", "--port", "\(port)"], [:]) } })
    }
    let results = try await alternating(runs: runs, variants)
    let ours = results[0], pyatv = results[1]

    let minutes = Double(audioSeconds) / 60
    func wire(_ r: SpeakerReport) -> Double { Double(r.audioBytesReceived + r.controlBytesReceived + r.rtspBytesReceived) }
    func m(_ runs: [Run], _ f: (Run) -> Double) -> Double { median(runs.map(f)) }
    let metrics: [(String, (Run) -> Double, String)] = [
        ("cpu_seconds_per_audio_minute", { $0.usage.cpuSeconds / minutes }, "<= 0.1"),
        ("peak_rss_mb", { $0.usage.peakRSSMB }, "<= 0.2"),
        ("launch_to_first_audio_packet_s", { $0.firstPacket }, "<= 0.2"),
        ("send_interval_stddev_ms", { $0.report.arrivalIntervals.standardDeviation * 1000 }, "< 1 (below pyatv)"),
        ("wire_bytes", { wire($0.report) }, "<= 0.6"),
    ] + memoryMetrics { $0.usage }
    for (name, f, goal) in metrics {
        let o = m(ours, f), p = m(pyatv, f)
        emit(["bench": "raop_stream", "metric": name, "audio_seconds": audioSeconds, "runs": runs, "ours": round3(o), "pyatv": round3(p),
              "ratio": p > 0 ? round3(o / p) : NSNull(), "goal_ratio": goal, "audio_verified": "bit-exact, every run"])
    }
    emitMemoryBreakdown("raop_stream", runs: ours.map(\.usage), extra: ["audio_seconds": audioSeconds, "runs": runs])
    if let baseline {
        emitBaseline("raop_stream", baseline: baseline, audioSeconds: audioSeconds, runs: runs,
                     metrics.map { ($0.0, m(ours, $0.1), m(results[2], $0.1)) })
    }
    emit(["bench": "raop_stream", "metric": "details", "runs": runs,
          "ours_packets": m(ours) { Double($0.report.packetsReceived) }, "pyatv_packets": m(pyatv) { Double($0.report.packetsReceived) },
          "ours_codec": ours[0].report.codec ?? "-", "pyatv_codec": pyatv[0].report.codec ?? "-",
          "ours_interval_mean_ms": round3(m(ours) { $0.report.arrivalIntervals.mean * 1000 }),
          "pyatv_interval_mean_ms": round3(m(pyatv) { $0.report.arrivalIntervals.mean * 1000 }),
          "ours_interval_max_ms": round3(m(ours) { $0.report.arrivalIntervals.max * 1000 }),
          "pyatv_interval_max_ms": round3(m(pyatv) { $0.report.arrivalIntervals.max * 1000 }),
          "ours_wall_s": round3(m(ours) { $0.usage.wallSeconds }), "pyatv_wall_s": round3(m(pyatv) { $0.usage.wallSeconds })])
}

final class StartBox: @unchecked Sendable {
    private let lock = NSLock()
    private var instant: ContinuousClock.Instant?
    func set(_ i: ContinuousClock.Instant) { lock.withLock { instant = i } }
    var value: ContinuousClock.Instant? { lock.withLock { instant } }
}
