import ATVCore
import ATVHTTP

/// RAOP volume: percent (0…100) ↔ the dB value sent as `volume: <dB>`.
package enum RAOPVolume {
    /// The value that means mute.
    package static let muteDB = -144.0
    package static let minDB = -30.0
    package static let maxDB = 0.0
    /// Default when nothing else is known.
    package static let defaultPercent = 33.0

    /// 0 → −144 (mute); otherwise linear 0…100 → −30…0. Input is clamped to 0…100.
    package static func dB(fromPercent percent: Double) -> Double {
        let p = min(max(percent.isNaN ? 0 : percent, 0), 100)
        if p == 0 { return muteDB }
        return minDB + (maxDB - minDB) * p / 100
    }

    /// dB < −30 (including −144) → 0; otherwise linear −30…0 → 0…100 (clamped).
    package static func percent(fromDB dB: Double) -> Double {
        if dB.isNaN || dB < minDB { return 0 }
        return min(100, (dB - minDB) / (maxDB - minDB) * 100)
    }

    /// The `text/parameters` body for a volume in dB, e.g. `volume: -20.100000\r\n`.
    package static func parameterBody(dB: Double) -> String {
        "volume: \(formatFixed(dB, decimals: 6))\r\n"
    }

    /// Parses a `text/parameters` body into key/value pairs (`key: value` lines).
    package static func parseParameters(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon]).trimmingSpaces.lowercased()
            out[key] = String(line[line.index(after: colon)...]).trimmingSpaces
        }
        return out
    }

    /// Fixed-point formatting without Foundation.
    static func formatFixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.0e15 else { return String(value) }
        let n = Int64(scaled)
        let whole = n / Int64(scale)
        var frac = String(n % Int64(scale))
        while frac.count < decimals { frac = "0" + frac }
        let sign = value < 0 && n != 0 ? "-" : ""
        return decimals == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(frac)"
    }
}
