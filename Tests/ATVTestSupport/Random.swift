import Foundation

/// Deterministic PRNG for randomized tests (SplitMix64), so every failure reproduces from its seed.
/// Randomized tests take their seed from `TestSeed.value(default:)` and print it in their failure
/// messages (`"seed \(seed)"`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a randomized test: `ATV_TEST_SEED` (decimal or 0x-hex) when set, to replay a failure
/// or explore other inputs, else the test's fixed default (so a plain run is deterministic).
public enum TestSeed {
    public static func value(default fallback: UInt64) -> UInt64 {
        guard let s = ProcessInfo.processInfo.environment["ATV_TEST_SEED"], !s.isEmpty else { return fallback }
        if s.hasPrefix("0x") || s.hasPrefix("0X") { return UInt64(s.dropFirst(2), radix: 16) ?? fallback }
        return UInt64(s) ?? fallback
    }
}

public func randomBytes<G: RandomNumberGenerator>(_ count: Int, using rng: inout G) -> [UInt8] {
    (0 ..< count).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
}

/// "0a 05 41" → [0x0a, 0x05, 0x41]; whitespace ignored.
public func hex(_ s: String) -> [UInt8] {
    let digits = Array(s.filter { !$0.isWhitespace })
    precondition(digits.count % 2 == 0, "odd hex string in a test: \(s)")
    return stride(from: 0, to: digits.count, by: 2).map {
        guard let b = UInt8(String(digits[$0 ... $0 + 1]), radix: 16) else { fatalError("bad hex in a test: \(s)") }
        return b
    }
}

/// [0x0a, 0xff] → "0aff".
public func hexString<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
