// OPACK, Apple's compact binary object encoding used by Companion.
// Sans-I/O: `OPACK.decode` and `OPACK.encode` are pure functions on byte arrays.
//
// Deliberate choices (Appendix A.4):
// * The decoder reads the whole type table, including -1 (0x07), NUL-terminated strings (0x6F)
//   and 1/2/3/4-byte back-reference indices (0xC1–0xC4).
// * Integers 0x30–0x33 are read unsigned (what devices and pyatv send: `_clFl` 128 is `30 80`) and
//   keep their width so they re-encode identically. Negative integers other than -1 are written
//   as 8-byte two's complement (0x33), which `intValue` reads back as negative.
// * Back-references use the *decoder's* object table (every decoded value except true/false/null,
//   -1, small integers, arrays and dicts, once per equal value). pyatv's encoder also counts
//   collections, so its indices can drift after a nested collection; ours never do.
import ATVAuth
import ATVCore

package indirect enum OPACK: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    /// 16 raw UUID bytes.
    case uuid([UInt8])
    /// 0x06: absolute time, 8 little-endian bytes kept as they are (Apple: CFAbsoluteTime, a float64).
    case absoluteTime(UInt64)
    /// An integer written in its shortest form (-1, 0...39 inline, else 1/2/4/8 bytes).
    case int(Int64)
    /// An integer read from (or to be written as) 0x30–0x33 with this many bytes (1, 2, 4 or 8).
    /// The decoder yields it only when the width is wider than needed (else `.int`).
    case sizedInt(UInt64, width: Int)
    case float(Float)
    case double(Double)
    case string(String)
    case data([UInt8])
    case array([OPACK])
    /// Ordered key/value pairs (keys need not be strings).
    case dictionary([Pair])

    package struct Pair: Sendable, Equatable {
        package var key: OPACK
        package var value: OPACK
        package init(_ key: OPACK, _ value: OPACK) { self.key = key; self.value = value }
    }

    // MARK: Convenience

    /// A dictionary with string keys, in the given order.
    package static func dict(_ pairs: KeyValuePairs<String, OPACK>) -> OPACK {
        .dictionary(pairs.map { Pair(.string($0.key), $0.value) })
    }
    package static func dict(_ pairs: [(String, OPACK)]) -> OPACK {
        .dictionary(pairs.map { Pair(.string($0.0), $0.1) })
    }

    /// The value under a string key of a dictionary.
    package subscript(key: String) -> OPACK? {
        guard case .dictionary(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }

    package var intValue: Int64? {
        switch self {
        case .int(let v): return v
        case .sizedInt(let v, let w): return w == 8 ? Int64(bitPattern: v) : Int64(v)
        case .bool(let b): return b ? 1 : 0
        case .double(let d) where d.rounded() == d && abs(d) < 9e18: return Int64(d)
        case .float(let f) where f.rounded() == f && abs(f) < 9e18: return Int64(f)
        default: return nil
        }
    }
    package var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .float(let f): return Double(f)
        case .int(let v): return Double(v)
        case .sizedInt(let v, let w): return w == 8 ? Double(Int64(bitPattern: v)) : Double(v)
        default: return nil
        }
    }
    package var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    package var dataValue: [UInt8]? { if case .data(let d) = self { d } else { nil } }
    package var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    package var arrayValue: [OPACK]? { if case .array(let a) = self { a } else { nil } }
    package var dictionaryValue: [Pair]? { if case .dictionary(let d) = self { d } else { nil } }

    /// Entries of a dictionary whose keys and values are strings (e.g. an app list).
    package var stringDictionary: [(key: String, value: String)] {
        (dictionaryValue ?? []).compactMap { p in
            guard let k = p.key.stringValue, let v = p.value.stringValue else { return nil }
            return (k, v)
        }
    }

    package var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .uuid(let u): "UUID(" + Hex.encode(u) + ")"
        case .absoluteTime(let t): "time(0x" + String(t, radix: 16) + ")"
        case .int(let v): String(v)
        case .sizedInt(let v, let w): w == 8 ? String(Int64(bitPattern: v)) : String(v)
        case .float(let f): String(f)
        case .double(let d): String(d)
        case .string(let s): "\"" + s + "\""
        case .data(let d): "0x" + Hex.encode(d)
        case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .dictionary(let d): "{" + d.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    /// Does the decoder put this value in the back-reference table?
    var isReferenceable: Bool {
        switch self {
        case .null, .bool, .array, .dictionary: false
        case .int(let v): !(v == -1 || (0 ... 39).contains(v))
        default: true
        }
    }

    /// Equality as the table's "already present" test sees it: numbers compare by value across
    /// integer and float forms; other kinds by content.
    func tableEquals(_ other: OPACK) -> Bool {
        switch (self, other) {
        case (.string(let a), .string(let b)): return a == b
        case (.data(let a), .data(let b)): return a == b
        case (.uuid(let a), .uuid(let b)): return a == b
        case (.absoluteTime(let a), .absoluteTime(let b)): return a == b
        default:
            if let a = numeric, let b = other.numeric { return a == b }
            return false
        }
    }

    private var numeric: Double? {
        switch self {
        case .int(let v): Double(v)
        case .sizedInt(let v, let w): w == 8 ? Double(Int64(bitPattern: v)) : Double(v)
        case .float(let f): Double(f)
        case .double(let d): d
        case .absoluteTime: nil
        default: nil
        }
    }
}

// MARK: - Decoding

extension OPACK {
    /// Maximum nesting of arrays and dictionaries accepted from the network.
    package static let maxDepth = 64

    /// Decode exactly one object; trailing bytes are an error.
    package static func decode<C: Collection<UInt8>>(_ bytes: C) throws(ATVError) -> OPACK {
        var reader = Reader(bytes: Array(bytes))
        let value = try reader.object(depth: 0)
        guard reader.index == reader.bytes.count else {
            throw ATVError.protocolError("OPACK: \(reader.bytes.count - reader.index) trailing bytes after the object")
        }
        return value
    }

    /// Decode one object from the start; returns it and the number of bytes it used.
    package static func decodePrefix<C: Collection<UInt8>>(_ bytes: C) throws(ATVError) -> (OPACK, Int) {
        var reader = Reader(bytes: Array(bytes))
        let value = try reader.object(depth: 0)
        return (value, reader.index)
    }

    struct Reader {
        let bytes: [UInt8]
        var index = 0
        var table: [OPACK] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func take(_ n: Int, _ what: String) throws(ATVError) -> ArraySlice<UInt8> {
            guard n >= 0, bytes.count - index >= n else {
                throw ATVError.protocolError("OPACK: truncated \(what) (needs \(n) bytes, \(bytes.count - index) left)")
            }
            defer { index += n }
            return bytes[index ..< index + n]
        }

        mutating func littleEndian(_ n: Int, _ what: String) throws(ATVError) -> UInt64 {
            let s = try take(n, what)
            var v: UInt64 = 0
            for (i, b) in s.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
            return v
        }

        mutating func length(_ n: Int, _ what: String) throws(ATVError) -> Int {
            let v = try littleEndian(n, what + " length")
            guard v <= UInt64(bytes.count - index) else {
                throw ATVError.protocolError("OPACK: \(what) of \(v) bytes exceeds the \(bytes.count - index) bytes left")
            }
            return Int(v)
        }

        mutating func utf8(_ n: Int) throws(ATVError) -> String {
            let raw = try take(n, "string")
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw ATVError.protocolError("OPACK: string is not valid UTF-8")
            }
            return s
        }

        mutating func object(depth: Int) throws(ATVError) -> OPACK {
            guard depth <= OPACK.maxDepth else { throw ATVError.protocolError("OPACK: nested deeper than \(OPACK.maxDepth)") }
            guard index < bytes.count else { throw ATVError.protocolError("OPACK: truncated (no type byte)") }
            let tag = bytes[index]
            index += 1
            let value: OPACK
            switch tag {
            case 0x01: return .bool(true)
            case 0x02: return .bool(false)
            case 0x04: return .null
            case 0x05: value = .uuid(Array(try take(16, "UUID")))
            case 0x06: value = .absoluteTime(try littleEndian(8, "absolute time"))
            case 0x07: return .int(-1)
            case 0x08 ... 0x2F: return .int(Int64(tag) - 8)
            case 0x30 ... 0x33:
                let w = 1 << Int(tag - 0x30)
                let raw = try littleEndian(w, "integer")
                // The shortest form comes back as .int; a wider one keeps its width.
                let candidate = OPACK.int(w == 8 ? Int64(bitPattern: raw) : Int64(raw))
                value = candidate.encoded().count == 1 + w ? candidate : .sizedInt(raw, width: w)
            case 0x35: value = .float(Float(bitPattern: UInt32(try littleEndian(4, "float32"))))
            case 0x36: value = .double(Double(bitPattern: try littleEndian(8, "float64")))
            case 0x40 ... 0x60: value = .string(try utf8(Int(tag - 0x40)))
            case 0x61 ... 0x64: value = .string(try utf8(try length(Int(tag - 0x60), "string")))
            case 0x6F:
                guard let end = bytes[index...].firstIndex(of: 0) else {
                    throw ATVError.protocolError("OPACK: NUL-terminated string without a NUL")
                }
                let s = try utf8(end - index)
                index += 1
                value = .string(s)
            case 0x70 ... 0x90: value = .data(Array(try take(Int(tag - 0x70), "data")))
            case 0x91 ... 0x94:
                value = .data(Array(try take(try length(1 << Int(tag - 0x91), "data"), "data")))
            case 0xA0 ... 0xC0: return try reference(Int(tag - 0xA0))
            case 0xC1 ... 0xC4:
                let idx = try littleEndian(Int(tag - 0xC0), "reference index")
                guard idx < UInt64(table.count) else {
                    throw ATVError.protocolError("OPACK: reference to object #\(idx) but only \(table.count) seen")
                }
                return try reference(Int(idx))
            case 0xD0 ... 0xDF:
                var items: [OPACK] = []
                if tag == 0xDF {
                    while true {
                        guard index < bytes.count else { throw ATVError.protocolError("OPACK: endless array without terminator") }
                        if bytes[index] == 0x03 { index += 1; break }
                        items.append(try object(depth: depth + 1))
                    }
                } else {
                    for _ in 0 ..< Int(tag - 0xD0) { items.append(try object(depth: depth + 1)) }
                }
                return .array(items)
            case 0xE0 ... 0xEF:
                var pairs: [Pair] = []
                if tag == 0xEF {
                    while true {
                        guard index < bytes.count else { throw ATVError.protocolError("OPACK: endless dictionary without terminator") }
                        if bytes[index] == 0x03 { index += 1; break }
                        let k = try object(depth: depth + 1)
                        pairs.append(Pair(k, try object(depth: depth + 1)))
                    }
                } else {
                    for _ in 0 ..< Int(tag - 0xE0) {
                        let k = try object(depth: depth + 1)
                        pairs.append(Pair(k, try object(depth: depth + 1)))
                    }
                }
                return .dictionary(pairs)
            default:
                throw ATVError.protocolError("OPACK: unsupported type byte 0x" + String(tag, radix: 16))
            }
            if !table.contains(where: { $0.tableEquals(value) }) { table.append(value) }
            return value
        }

        func reference(_ i: Int) throws(ATVError) -> OPACK {
            guard i < table.count else {
                throw ATVError.protocolError("OPACK: reference to object #\(i) but only \(table.count) seen")
            }
            return table[i]
        }
    }
}

// MARK: - Encoding

extension OPACK {
    /// Encode with back-references to repeated strings, data, UUIDs and wide numbers.
    package func encoded() -> [UInt8] {
        var w = Writer()
        w.write(self)
        return w.out
    }

    struct Writer {
        var out: [UInt8] = []
        var table: [OPACK] = []

        mutating func le(_ v: UInt64, _ n: Int) {
            for i in 0 ..< n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
        }

        mutating func write(_ value: OPACK) {
            if value.isReferenceable {
                if let i = table.firstIndex(where: { $0.tableEquals(value) }) {
                    // Only refer to an entry that decodes to exactly this value.
                    if table[i] == value {
                        if i <= 0x20 { out.append(0xA0 + UInt8(i)) }
                        else if i <= 0xFF { out.append(0xC1); le(UInt64(i), 1) }
                        else if i <= 0xFFFF { out.append(0xC2); le(UInt64(i), 2) }
                        else if i <= 0xFF_FFFF { out.append(0xC3); le(UInt64(i), 3) }
                        else { out.append(0xC4); le(UInt64(i), 4) }
                        return
                    }
                } else {
                    table.append(value)
                }
            }
            switch value {
            case .null: out.append(0x04)
            case .bool(let b): out.append(b ? 0x01 : 0x02)
            case .uuid(let u):
                out.append(0x05)
                out += u.count == 16 ? u : Array((u + [UInt8](repeating: 0, count: 16)).prefix(16))
            case .absoluteTime(let t): out.append(0x06); le(t, 8)
            case .int(let v):
                if v == -1 { out.append(0x07) }
                else if (0 ... 39).contains(v) { out.append(UInt8(v + 8)) }
                else if v < 0 { out.append(0x33); le(UInt64(bitPattern: v), 8) }
                else if v <= 0xFF { out.append(0x30); le(UInt64(v), 1) }
                else if v <= 0xFFFF { out.append(0x31); le(UInt64(v), 2) }
                else if v <= 0xFFFF_FFFF { out.append(0x32); le(UInt64(v), 4) }
                else { out.append(0x33); le(UInt64(v), 8) }
            case .sizedInt(let v, let width):
                let w = [1, 2, 4, 8].first { $0 >= width && (w64($0) >= v) } ?? 8
                out.append(0x30 + UInt8(w.trailingZeroBitCount)); le(v, w)
            case .float(let f): out.append(0x35); le(UInt64(f.bitPattern), 4)
            case .double(let d): out.append(0x36); le(d.bitPattern, 8)
            case .string(let s):
                let u = Array(s.utf8)
                if u.count <= 0x20 { out.append(0x40 + UInt8(u.count)) }
                else if u.count <= 0xFF { out.append(0x61); le(UInt64(u.count), 1) }
                else if u.count <= 0xFFFF { out.append(0x62); le(UInt64(u.count), 2) }
                else if u.count <= 0xFF_FFFF { out.append(0x63); le(UInt64(u.count), 3) }
                else { out.append(0x64); le(UInt64(u.count), 4) }
                out += u
            case .data(let d):
                if d.count <= 0x20 { out.append(0x70 + UInt8(d.count)) }
                else if d.count <= 0xFF { out.append(0x91); le(UInt64(d.count), 1) }
                else if d.count <= 0xFFFF { out.append(0x92); le(UInt64(d.count), 2) }
                else if d.count <= 0xFFFF_FFFF { out.append(0x93); le(UInt64(d.count), 4) }
                else { out.append(0x94); le(UInt64(d.count), 8) }
                out += d
            case .array(let items):
                out.append(0xD0 + UInt8(min(items.count, 15)))
                for i in items { write(i) }
                if items.count >= 15 { out.append(0x03) }
            case .dictionary(let pairs):
                out.append(0xE0 + UInt8(min(pairs.count, 15)))
                for p in pairs { write(p.key); write(p.value) }
                if pairs.count >= 15 { out.append(0x03) }
            }
        }

        func w64(_ bytes: Int) -> UInt64 { bytes >= 8 ? .max : (UInt64(1) << UInt64(8 * bytes)) - 1 }
    }
}
