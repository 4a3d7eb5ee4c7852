import ATVSimulator
import Foundation

/// Issue 6: the same file streamed over AirPlay 2 by us (`atv stream --airplay-version 2`) and by
/// pyatv (`atvremote stream_file`, which takes its AirPlay 2 path for the HomePod's TXT record) to
/// a virtual HomePod each, measured the same way: child CPU and peak RSS through GNU time,
/// launch to the first audio datagram at the receiver, bytes the receiver got.
func runAirPlay2StreamBenchmarks(seconds audioSeconds: Int = 60) async throws {
    let root = packageRoot()
    let atv = try siblingATV()
    let atvremote = root.appendingPathComponent(".venv-peers/bin/atvremote").path
    guard FileManager.default.isExecutableFile(atPath: atvremote) else {
        throw BenchError("\(atvremote) not found: run scripts/setup")
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atv-bench-ap2-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("bench.flac").path
    try shell("ffmpeg -hide_banner -loglevel error -f lavfi -i 'sine=frequency=220:duration=\(audioSeconds)' "
        + "-f lavfi -i 'sine=frequency=331:duration=\(audioSeconds)' -f lavfi -i 'anoisesrc=d=\(audioSeconds):a=0.05:c=pink' "
        + "-filter_complex '[0][1][2]amix=inputs=3,pan=stereo|c0=c0|c1=0.8*c0' -ar 44100 -sample_fmt s16 -y '\(file)'")
    let home = dir.appendingPathComponent("home").path
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)

    struct Run {
        var usage: ChildUsage
        var report: HomePodReport
        var firstPacket: Double
    }

    func measure(_ launch: (VirtualHomePod) throws -> (String, [String], [String: String])) async throws -> Run {
        let pod = try await VirtualHomePod.start(.init(port: 0))
        let (path, args, env) = try launch(pod)
        let clock = ContinuousClock()
        let startBox = StartBox()
        let usage: ChildUsage = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    try spawnAndMeasure(path, args, environment: env, onStart: { startBox.set(clock.now) })
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
        return Run(usage: usage, report: report, firstPacket: seconds(first - start))
    }

    let ours = try await measure { pod in
        (atv, ["stream", file, "--host", "127.0.0.1", "--port", "\(pod.port)", "--airplay-version", "2"], [:])
    }
    let pyatv = try await measure { pod in
        (atvremote, ["--manual", "--address", "127.0.0.1", "--port", "\(pod.port)", "--protocol", "raop",
                     "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", pod.raopServicePropertiesArgument(),
                     "stream_file=\(file)"], ["HOME": home])
    }
    let minutes = Double(audioSeconds) / 60
    func wire(_ r: HomePodReport) -> Double { Double(r.audioBytesReceived + r.rtspBytesReceived) }
    let metrics: [(String, Double, Double, String)] = [
        ("cpu_seconds_per_audio_minute", ours.usage.cpuSeconds / minutes, pyatv.usage.cpuSeconds / minutes, "<= 0.1"),
        ("peak_rss_mb", ours.usage.peakRSSMB, pyatv.usage.peakRSSMB, "<= 0.2"),
        ("launch_to_first_audio_packet_s", ours.firstPacket, pyatv.firstPacket, "<= 0.2"),
        ("wire_bytes", wire(ours.report), wire(pyatv.report), "-"),
    ]
    for (name, o, p, goal) in metrics {
        emit(["bench": "airplay2_stream", "metric": name, "audio_seconds": audioSeconds, "ours": round3(o), "pyatv": round3(p),
              "ratio": p > 0 ? round3(o / p) : NSNull(), "goal_ratio": goal])
    }
    emit(["bench": "airplay2_stream", "metric": "details",
          "ours_packets": ours.report.packetsDecrypted, "pyatv_packets": pyatv.report.packetsDecrypted,
          "ours_codec": ours.report.codec ?? "-", "pyatv_codec": pyatv.report.codec ?? "-",
          "ours_pairing": ours.report.pairingMode?.rawValue ?? "-", "pyatv_pairing": pyatv.report.pairingMode?.rawValue ?? "-",
          "ours_decrypt_failures": ours.report.decryptFailures, "pyatv_decrypt_failures": pyatv.report.decryptFailures,
          "ours_wall_s": round3(ours.usage.wallSeconds), "pyatv_wall_s": round3(pyatv.usage.wallSeconds)])
}
