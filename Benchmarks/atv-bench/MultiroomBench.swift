import ATVSimulator
import Foundation

/// The arguments of ONE `atv` process streaming `file` to every speaker (127.0.0.1, `ports`) as a group.
func multiroomGroupArguments(_ file: String, _ ports: [Int]) -> [String] {
    ["stream", file] + ports.flatMap { ["--host", "127.0.0.1:\($0)"] }
}

/// Issue 17, scale: N = 1, 2, 4, 8, 16 virtual AirPlay 1 speakers (`VirtualSpeaker`, 127.0.0.1,
/// in this process) receive the same file from N separate `atv stream` processes, from pyatv's
/// N separate `atvremote stream_file` processes (the only way it can), and from
/// one `atv` process streaming to all of them as a group. Per sender and N: CPU seconds per audio minute of all its processes
/// together (GNU time, user + system), their private memory (USS, Private_Clean + Private_Dirty
/// from /proc/PID/smaps_rollup, peak per process, summed) and RSS beside it, and the USS each
/// member beyond the first adds. Medians of `runs` runs per sender in alternating order; every
/// speaker's audio must be the source bit-exact in every run, or the benchmark fails.
/// With `--baseline ATV`, that build streams to all N as a group too (`baseline_group`), in the same
/// alternating rounds.
func runMultiroomBenchmarks(seconds audioSeconds: Int, runs: Int, members: [Int], baseline: String? = nil) async throws {
    let files = try StreamBenchFiles(seconds: audioSeconds, tag: "multiroom-")
    defer { files.remove() }
    let (atv, atvremote, dir, file) = (files.atv, files.atvremote, files.dir, files.file)
    let source = try referencePCM(file, in: dir)

    struct Run {
        var cpuSeconds: Double
        var ussMB: Double
        var rssMB: Double
        var anonMB: Double
        var wallSeconds: Double
        var usages: [ChildUsage]
    }

    /// N speakers, then the sender's processes (`launch` gives one command per process for the
    /// speakers' ports), all at once; every speaker's audio checked.
    func measure(_ n: Int, _ label: String, _ launch: ([Int]) -> [(String, [String], [String: String])]) async throws -> Run {
        var speakers: [VirtualSpeaker] = []
        var wavs: [String] = []
        defer { for w in wavs { unlink(w) } }
        for i in 0 ..< n {
            let wav = dir.appendingPathComponent("m\(i)-\(UUID().uuidString.prefix(8)).wav").path
            wavs.append(wav)
            // 16 speakers share this process's event loops with its own work: a generous grace after
            // TEARDOWN, so that datagrams still queued are played.
            speakers.append(try await VirtualSpeaker.start(.init(port: 0, name: "bench \(i)", outputPath: wav, endGrace: .seconds(2))))
        }
        let commands = launch(speakers.map(\.port))
        let usages: [ChildUsage] = try await withThrowingTaskGroup(of: ChildUsage.self) { group in
            for (k, (path, args, env)) in commands.enumerated() {
                group.addTask {
                    // posix_spawn + wait4 block: a thread of their own, off the cooperative pool.
                    try await withCheckedThrowingContinuation { continuation in
                        Thread.detachNewThread {
                            continuation.resume(with: Result {
                                try spawnAndMeasure(path, args, environment: env, sampleMemory: true,
                                                    stderrPath: "/tmp/atv-bench-multiroom-\(k).log")
                            })
                        }
                    }
                }
            }
            var out: [ChildUsage] = []
            for try await u in group { out.append(u) }
            return out
        }
        for s in speakers {
            _ = try? await s.waitForSessionEnd(sessions: 1, timeout: .seconds(30))
            await s.stop()
        }
        if let failed = usages.first(where: { $0.status != 0 }) {
            let log = (try? String(contentsOfFile: "/tmp/atv-bench-multiroom-0.log", encoding: .utf8)) ?? ""
            throw BenchError("\(label) (N = \(n)): a sender exited with \(failed.status): \(log.suffix(400))")
        }
        for (i, wav) in wavs.enumerated() {
            if let why = verifyBitExact(source: source, capture: (try? wavPCM(wav)) ?? []) {
                throw BenchError("\(label) (N = \(n)): speaker \(i) did not receive the source: \(why)")
            }
        }
        return Run(cpuSeconds: usages.map(\.cpuSeconds).reduce(0, +), ussMB: usages.map(\.peakUSSMB).reduce(0, +),
                   rssMB: usages.map(\.peakSmapsRSSMB).reduce(0, +), anonMB: usages.map(\.peakAnonMB).reduce(0, +),
                   wallSeconds: usages.map(\.wallSeconds).max() ?? 0, usages: usages)
    }

    let atvProcesses: ([Int]) -> [(String, [String], [String: String])] = { ports in
        ports.map { (atv, ["stream", file, "--host", "127.0.0.1", "--port", "\($0)"], [:]) }
    }
    let pyatvProcesses: ([Int]) -> [(String, [String], [String: String])] = { ports in
        ports.enumerated().map { i, port in
            // Each its own HOME: pyatv writes its settings file there.
            let home = dir.appendingPathComponent("home-\(i)").path
            try? FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            return (atvremote, ["--manual", "--address", "127.0.0.1", "--port", "\(port)", "--protocol", "raop",
                                "--id", "AA:BB:CC:DD:EE:FF", "stream_file=\(file)"], ["HOME": home])
        }
    }
    var senders: [(String, ([Int]) -> [(String, [String], [String: String])])] = [
        ("atv_group", { ports in [(atv, multiroomGroupArguments(file, ports), [:])] }),
        ("atv_processes", atvProcesses), ("pyatv_processes", pyatvProcesses),
    ]
    if let baseline {
        senders.append(("baseline_group", { ports in [(baseline, multiroomGroupArguments(file, ports), [:])] }))
    }

    let minutes = Double(audioSeconds) / 60
    var ussAtOne: [String: Double] = [:], anonAtOne: [String: Double] = [:]
    for n in members {
        let variants: [() async throws -> Run] = senders.map { name, launch in { try await measure(n, name, launch) } }
        let results = try await alternating(runs: runs, variants)
        for (k, (name, _)) in senders.enumerated() {
            let rs = results[k]
            let uss = median(rs.map(\.ussMB))
            let anon = median(rs.map(\.anonMB))
            if n == 1 { ussAtOne[name] = uss; anonAtOne[name] = anon }
            var line: [String: Any] = [
                "bench": "multiroom", "members": n, "sender": name, "processes": name.hasSuffix("_group") ? 1 : n,
                "audio_seconds": audioSeconds, "runs": runs,
                "cpu_seconds_per_audio_minute": round3(median(rs.map { $0.cpuSeconds / minutes })),
                "uss_mb": round3(uss), "rss_mb": round3(median(rs.map(\.rssMB))), "anon_mb": round3(anon),
                "wall_s": round3(median(rs.map(\.wallSeconds))), "audio_verified": "bit-exact, every speaker, every run",
            ]
            if n > 1, let one = ussAtOne[name] { line["uss_mb_per_extra_member"] = round3((uss - one) / Double(n - 1)) }
            if n > 1, let one = anonAtOne[name] { line["anon_mb_per_extra_member"] = round3((anon - one) / Double(n - 1)) }
            emit(line)
            if name == "atv_group" {
                emitMemoryBreakdown("multiroom", runs: rs.flatMap(\.usages), extra: ["members": n, "runs": runs, "audio_seconds": audioSeconds])
            }
        }
    }
}
