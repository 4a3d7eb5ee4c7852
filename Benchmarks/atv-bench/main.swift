import Foundation

// atv-bench: prints JSON lines, each comparing swift-atv with pyatv or the ffmpeg CLI measured in
// the same run. Build in release: `swift build -c release && .build/release/atv-bench [groups]`.
// Groups: stream (RAOP vs pyatv), airplay2-stream (AirPlay 2 to the virtual HomePod vs pyatv),
// airplay2-routes (our realtime NTP, realtime PTP and buffered PTP beside pyatv's AirPlay 2: launch to
// the first sample played, CPU, USS and RSS; needs root: a private network namespace), discovery (mDNS scan vs pyatv; needs root for a private
// network namespace), audio (decode/ALAC vs ffmpeg), pairing (HAP client CPU vs pyatv against pyatv's
// own accessory), airplay2-pairing (AirPlay 2 transient pair-setup / pair-verify client CPU vs pyatv
// against the virtual HomePod), control (MRP launch-to-playing and idle push-update CPU vs pyatv),
// multiroom (N = 1, 2, 4, 8, 16 virtual speakers: one `atv` process streaming to all N as a group,
// N `atv stream` processes and pyatv's N processes; CPU per audio minute, USS and RSS; only when named,
// `--members 1,2,4` narrows N; with `--baseline` that build streams as a group beside ours).
// Default: all. Options: `--runs N` (≥ 3, default 3; every comparison is the median of N runs per
// side in alternating order), `--seconds N` (audio length of the stream groups, default 60),
// `--baseline PATH` (another `atv` build, e.g. an earlier commit's: the stream groups run it as a
// third sender in the same rounds and print ours / baseline per metric, `*_vs_baseline` lines),
// `--atv PATH` (our sender: that build instead of the `atv` beside atv-bench, e.g. the statically
// linked one scripts/install ships).
// A missing baseline (pyatv, ffmpeg) or a run whose received audio is not bit-exact is an error:
// the benchmark exits non-zero instead of printing a partial comparison.
do {
    let options = try BenchOptions.parse(Array(CommandLine.arguments.dropFirst()))
    func wants(_ g: String) -> Bool { options.groups.isEmpty || options.groups.contains(g) }
    if wants("audio") { try await runAudioBenchmarks() }
    if wants("discovery") { try await runDiscoveryBenchmarks(rounds: max(options.runs, 5)) }
    if wants("stream") { try await runStreamBenchmarks(seconds: options.audioSeconds, runs: options.runs, baseline: options.baseline) }
    if wants("airplay2-stream") { try await runAirPlay2StreamBenchmarks(seconds: options.audioSeconds, runs: options.runs, baseline: options.baseline) }
    if wants("airplay2-routes") { try await runAirPlay2RouteBenchmarks(seconds: options.audioSeconds, runs: options.runs, baseline: options.baseline) }
    if wants("pairing") { try await runPairingBenchmarks() }
    if wants("airplay2-pairing") { try await runAirPlay2PairingBenchmarks() }
    if wants("control") { try await runControlBenchmarks() }
    // Long (every N, every sender): only when asked for by name.
    if options.groups.contains("multiroom") { try await runMultiroomBenchmarks(seconds: options.audioSeconds, runs: options.runs, members: options.members, baseline: options.baseline) }
} catch {
    FileHandle.standardError.write(Data("atv-bench: \(error)\n".utf8))
    exit(1)
}
