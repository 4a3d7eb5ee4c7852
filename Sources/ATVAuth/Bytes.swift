// Small byte helpers shared by the auth module.
import ATVCore

package enum Hex {
    package static func encode<C: Collection<UInt8>>(_ bytes: C, uppercase: Bool = false) -> String {
        let digits: [Character] = Array(uppercase ? "0123456789ABCDEF" : "0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0F)])
        }
        return s
    }

    /// Decode hex (any case; spaces, tabs and newlines ignored). nil on odd length or a non-hex character.
    package static func decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        var hi: UInt8? = nil
        for c in s.utf8 {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"): continue
            default: return nil
            }
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        return hi == nil ? out : nil
    }
}

/// Compare two byte strings in time independent of where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var d: UInt8 = 0
    for i in 0 ..< a.count { d |= a[i] ^ b[i] }
    return d == 0
}

/// Strip leading zero bytes (minimal big-endian encoding of the same integer).
func stripLeadingZeros(_ b: [UInt8]) -> [UInt8] {
    guard let i = b.firstIndex(where: { $0 != 0 }) else { return [] }
    return Array(b[i...])
}
