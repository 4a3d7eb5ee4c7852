// libFuzzer driver: one executable holds every fuzz target; ATV_FUZZ_TARGET picks one.
// Built only by `scripts/fuzz` (ATV_FUZZ=1, `-sanitize=fuzzer`, which supplies `main`).
//
//   ATV_FUZZ_TARGET=dns atv-fuzz CORPUS_DIR SEED_DIR -max_total_time=60
//   ATV_FUZZ_LIST=1 atv-fuzz             prints the target names and exits
//   ATV_FUZZ_WRITE_SEEDS=DIR atv-fuzz    writes every target's seeds (built with our own encoders
//                                        from the test vectors) to DIR/TARGET/ and exits
#if canImport(Glibc)
import Glibc
#endif

/// One fuzz target: `run` feeds one input to a parser / state machine and must never trap;
/// `seeds` are valid inputs to start from.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void
    let seeds: @Sendable () -> [[UInt8]]
}

let allTargets: [FuzzTarget] = [
    dnsTarget, rtspTarget, legacyHTTPTarget, airplayHTTPTarget, plistTarget, tlv8Target, opackTarget,
    companionTarget, mrpTarget, dmapTarget, rtpTarget, hapTarget, legacyPairingTarget,
    proxyTarget, secureFramesTarget, ptpTarget, bufferedTarget,
    simSpeakerTarget, simHomePodTarget, simAppleTVTarget, simMRPTarget, simCompanionTarget, simAppleTV3Target,
]

nonisolated(unsafe) var selected: FuzzTarget?

private func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

private func fail(_ message: String) -> Never {
    let line = Array("atv-fuzz: error: \(message)\n".utf8)
    _ = line.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if environment("ATV_FUZZ_LIST") != nil {
        for t in allTargets { print(t.name) }
        exit(0)
    }
    if let dir = environment("ATV_FUZZ_WRITE_SEEDS") {
        for t in allTargets { writeSeeds(t, to: dir) }
        exit(0)
    }
    guard let name = environment("ATV_FUZZ_TARGET") else {
        fail("set ATV_FUZZ_TARGET to one of: \(allTargets.map(\.name).joined(separator: ", "))")
    }
    guard let t = allTargets.first(where: { $0.name == name }) else {
        fail("unknown fuzz target \"\(name)\"; targets: \(allTargets.map(\.name).joined(separator: ", "))")
    }
    selected = t
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    selected?.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

private func writeSeeds(_ t: FuzzTarget, to dir: String) {
    let path = dir + "/" + t.name
    mkdir(dir, 0o755)
    mkdir(path, 0o755)
    for (i, seed) in t.seeds().enumerated() {
        let file = path + "/" + String(format2(i))
        guard let f = fopen(file, "wb") else { fail("cannot write \(file)") }
        _ = seed.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }
}

private func format2(_ i: Int) -> String { i < 10 ? "seed-0\(i)" : "seed-\(i)" }

// MARK: Input helpers

/// Splits one input into several messages: each is a 2-byte big-endian length then that many
/// bytes (a short last message takes what is left). Lets one input drive a multi-step exchange.
func messages(_ data: [UInt8], max: Int = 8) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var i = 0
    while i < data.count, out.count < max {
        guard i + 2 <= data.count else { out.append(Array(data[i...])); break }
        let n = Int(data[i]) << 8 | Int(data[i + 1])
        let end = min(data.count, i + 2 + n)
        out.append(Array(data[(i + 2)..<end]))
        i = end
    }
    return out
}

/// The inverse of `messages`, for seeds.
func framed(_ parts: [[UInt8]]) -> [UInt8] {
    parts.flatMap { [UInt8(($0.count >> 8) & 0xFF), UInt8($0.count & 0xFF)] + $0 }
}

/// Splits bytes into chunks whose sizes come from the input itself (first byte), so incremental
/// parsers see messages cut at arbitrary places.
func chunks(_ data: [UInt8]) -> [ArraySlice<UInt8>] {
    guard let first = data.first else { return [] }
    let step = Int(first % 64) + 1
    let rest = data.dropFirst()
    return stride(from: rest.startIndex, to: rest.endIndex, by: step).map { rest[$0..<min($0 + step, rest.endIndex)] }
}
