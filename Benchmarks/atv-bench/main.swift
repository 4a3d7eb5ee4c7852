import Foundation

// atv-bench: prints JSON lines, each comparing swift-atv with pyatv or the ffmpeg CLI measured in
// the same run. Build in release: `swift build -c release && .build/release/atv-bench [groups]`.
// Groups: stream (RAOP vs pyatv), airplay2-stream (AirPlay 2 to the virtual HomePod vs pyatv), discovery (mDNS scan vs pyatv; needs root for a private
// network namespace), audio (decode/ALAC vs ffmpeg), pairing (HAP client CPU vs pyatv against pyatv's
// own accessory), airplay2-pairing (AirPlay 2 transient pair-setup / pair-verify client CPU vs pyatv
// against the virtual HomePod), control (MRP launch-to-playing and idle push-update CPU vs pyatv).
// Default: all.
let groups = Set(CommandLine.arguments.dropFirst())
func wants(_ g: String) -> Bool { groups.isEmpty || groups.contains(g) }

do {
    if wants("audio") { try await runAudioBenchmarks() }
    if wants("discovery") { try await runDiscoveryBenchmarks() }
    if wants("stream") { try await runStreamBenchmarks() }
    if wants("airplay2-stream") { try await runAirPlay2StreamBenchmarks() }
    if wants("pairing") { try await runPairingBenchmarks() }
    if wants("airplay2-pairing") { try await runAirPlay2PairingBenchmarks() }
    if wants("control") { try await runControlBenchmarks() }
} catch {
    FileHandle.standardError.write(Data("atv-bench: \(error)\n".utf8))
    exit(1)
}
