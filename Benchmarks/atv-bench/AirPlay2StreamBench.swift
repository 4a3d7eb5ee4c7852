import ATVSimulator
import Foundation

/// Issue 6: the same file streamed over AirPlay 2 by us (`atv stream --airplay-version 2`) and by
/// pyatv (`atvremote stream_file`, which takes its AirPlay 2 path for the HomePod's TXT record) to
/// a virtual HomePod each, measured the same way: child CPU and peak RSS through GNU time,
/// launch to the first audio datagram at the receiver, bytes the receiver got. Each figure is the
/// median of `runs` runs per sender, the senders alternating; every run's received audio must be
/// the source bit-exact, or the benchmark fails. Also ours with `--send-ahead 0` (one packet per
/// wake-up) against ours by default (bursts up to 40 ms ahead): the CPU the README quotes.
func runAirPlay2StreamBenchmarks(seconds audioSeconds: Int = 60, runs: Int = 3, baseline: String? = nil) async throws {
    let files = try StreamBenchFiles(seconds: audioSeconds, tag: "ap2-")
    defer { files.remove() }
    let (atv, atvremote, dir, file) = (files.atv, files.atvremote, files.dir, files.file)
    let home = dir.appendingPathComponent("home").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)

    struct Run {
        var usage: ChildUsage
        var report: HomePodReport
        var firstPacket: Double
    }

    let source = try referencePCM(file, in: dir)
    func measure(_ launch: (VirtualHomePod) throws -> (String, [String], [String: String])) async throws -> Run {
        let wav = dir.appendingPathComponent("received-\(UUID().uuidString.prefix(8)).wav").path
        defer { unlink(wav) }
        let pod = try await VirtualHomePod.start(.init(port: 0, outputPath: wav))
        let (path, args, env) = try launch(pod)
        let clock = ContinuousClock()
        let startBox = StartBox()
        let usage: ChildUsage = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    try spawnAndMeasure(path, args, environment: env, sampleMemory: true, onStart: { startBox.set(clock.now) })
                })
            }
        }
        let report = try await pod.waitForSessionEnd(sessions: 1, timeout: .seconds(30))
        await pod.stop()
        guard usage.status == 0 else {
            let log = (try? String(contentsOfFile: "/tmp/atv-bench-child.log", encoding: .utf8)) ?? ""
            throw BenchError("\(path) exited with \(usage.status): \(log.suffix(400))")
        }
        guard let first = report.firstAudioPacketAt, let start = startBox.value, report.packetsDecrypted > 0 else {
            throw BenchError("no decrypted audio arrived from \(path)")
        }
        if let why = verifyBitExact(source: source, capture: try wavPCM(wav)) {
            throw BenchError("\(URL(fileURLWithPath: path).lastPathComponent): the received audio is not the source: \(why)")
        }
        return Run(usage: usage, report: report, firstPacket: seconds(first - start))
    }

    let oursArgs = { (pod: VirtualHomePod) in ["stream", file, "--host", "127.0.0.1", "--port", "\(pod.port)", "--airplay-version", "2"] }
    var variants: [() async throws -> Run] = [
        { try await measure { pod in (atv, oursArgs(pod), [:]) } },
        { try await measure { pod in
            (atvremote, ["--manual", "--address", "127.0.0.1", "--port", "\(pod.port)", "--protocol", "raop",
                         "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", pod.raopServicePropertiesArgument(),
                         "stream_file=\(file)"], ["HOME": home])
        } },
        { try await measure { pod in (atv, oursArgs(pod) + ["--send-ahead", "0"], [:]) } },
    ]
    if let baseline { variants.append({ try await measure { pod in (baseline, oursArgs(pod), [:]) } }) }
    let results = try await alternating(runs: runs, variants)
    let ours = results[0], pyatv = results[1], oneWakeUpPerPacket = results[2]
    let minutes = Double(audioSeconds) / 60
    func wire(_ r: HomePodReport) -> Double { Double(r.audioBytesReceived + r.rtspBytesReceived) }
    func m(_ runs: [Run], _ f: (Run) -> Double) -> Double { median(runs.map(f)) }
    let metrics: [(String, (Run) -> Double, String)] = [
        ("cpu_seconds_per_audio_minute", { $0.usage.cpuSeconds / minutes }, "<= 0.1"),
        ("peak_rss_mb", { $0.usage.peakRSSMB }, "<= 0.2"),
        ("launch_to_first_audio_packet_s", { $0.firstPacket }, "<= 0.2"),
        ("wire_bytes", { wire($0.report) }, "-"),
    ] + memoryMetrics { $0.usage }
    for (name, f, goal) in metrics {
        let o = m(ours, f), p = m(pyatv, f)
        emit(["bench": "airplay2_stream", "metric": name, "audio_seconds": audioSeconds, "runs": runs, "ours": round3(o), "pyatv": round3(p),
              "ratio": p > 0 ? round3(o / p) : NSNull(), "goal_ratio": goal, "audio_verified": "bit-exact, every run"])
    }
    emitMemoryBreakdown("airplay2_stream", runs: ours.map(\.usage), extra: ["audio_seconds": audioSeconds, "runs": runs])
    // The README's send-ahead figure: CPU with the default send-ahead (bursts up to 40 ms ahead)
    // relative to one wake-up per 8 ms packet (`--send-ahead 0`), same runs, same receiver.
    let burst = m(ours) { $0.usage.cpuSeconds / minutes }, single = m(oneWakeUpPerPacket) { $0.usage.cpuSeconds / minutes }
    emit(["bench": "airplay2_stream", "metric": "send_ahead_cpu_seconds_per_audio_minute", "audio_seconds": audioSeconds, "runs": runs,
          "default_send_ahead": round3(burst), "send_ahead_0": round3(single), "ratio": single > 0 ? round3(burst / single) : NSNull(),
          "audio_verified": "bit-exact, every run"])
    if let baseline {
        emitBaseline("airplay2_stream", baseline: baseline, audioSeconds: audioSeconds, runs: runs,
                     metrics.map { ($0.0, m(ours, $0.1), m(results[3], $0.1)) })
    }
    emit(["bench": "airplay2_stream", "metric": "details", "runs": runs,
          "ours_packets": m(ours) { Double($0.report.packetsDecrypted) }, "pyatv_packets": m(pyatv) { Double($0.report.packetsDecrypted) },
          "ours_codec": ours[0].report.codec ?? "-", "pyatv_codec": pyatv[0].report.codec ?? "-",
          "ours_pairing": ours[0].report.pairingMode?.rawValue ?? "-", "pyatv_pairing": pyatv[0].report.pairingMode?.rawValue ?? "-",
          "ours_decrypt_failures": ours.map(\.report.decryptFailures).reduce(0, +),
          "pyatv_decrypt_failures": pyatv.map(\.report.decryptFailures).reduce(0, +),
          "ours_wall_s": round3(m(ours) { $0.usage.wallSeconds }), "pyatv_wall_s": round3(m(pyatv) { $0.usage.wallSeconds })])
}
