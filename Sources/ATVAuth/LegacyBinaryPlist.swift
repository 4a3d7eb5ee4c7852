// A small binary property list ("bplist00") codec: enough for the legacy AirPlay pairing bodies
// (dictionaries of strings, data, integers, booleans, reals, arrays). The encoder lays objects out
// exactly as Python's plistlib does (dict, then its keys, then its values, depth first; keys sorted;
// equal strings/data shared; smallest integer and reference widths), so requests are byte-identical
// to pyatv's. The decoder reads any well-formed bplist00 and never traps on garbage.
import ATVCore

public indirect enum BPlistValue: Sendable, Equatable {
    case string(String)
    case data([UInt8])
    case int(Int64)
    case bool(Bool)
    case real(Double)
    case array([BPlistValue])
    case dict([String: BPlistValue])

    public subscript(key: String) -> BPlistValue? {
        if case .dict(let d) = self { return d[key] }
        return nil
    }

    public var dataValue: [UInt8]? { if case .data(let d) = self { return d }; return nil }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
}

public enum BinaryPlist {
    // MARK: Encoding

    public static func encode(_ root: BPlistValue) -> [UInt8] {
        var objects: [BPlistValue] = []

        var children: [[Int]] = []
        var shared: [BPlistValue: Int] = [:]

        func flatten(_ v: BPlistValue) -> Int {
            switch v {
            case .string, .data, .int, .bool, .real:
                if let r = shared[v] { return r }
                let r = objects.count
                objects.append(v); children.append([]); shared[v] = r
                return r
            case .array(let items):
                let r = objects.count
                objects.append(v); children.append([])
                children[r] = items.map { flatten($0) }
                return r
            case .dict(let d):
                let r = objects.count
                objects.append(v); children.append([])
                let keys = d.keys.sorted()
                let keyRefs = keys.map { flatten(.string($0)) }
                let valueRefs = keys.map { flatten(d[$0]!) }
                children[r] = keyRefs + valueRefs
                return r
            }
        }
        _ = flatten(root)

        let refSize = byteWidth(UInt64(objects.count))
        var out: [UInt8] = Array("bplist00".utf8)
        var offsets: [Int] = []
        for (i, obj) in objects.enumerated() {
            offsets.append(out.count)
            switch obj {
            case .string(let s):
                if s.utf8.allSatisfy({ $0 < 0x80 }) {
                    writeMarker(0x50, count: s.utf8.count, into: &out)
                    out += Array(s.utf8)
                } else {
                    let units = Array(s.utf16)
                    writeMarker(0x60, count: units.count, into: &out)
                    for u in units { out += [UInt8(u >> 8), UInt8(u & 0xFF)] }
                }
            case .data(let d):
                writeMarker(0x40, count: d.count, into: &out)
                out += d
            case .int(let v):
                writeInt(v, into: &out)
            case .bool(let b):
                out.append(b ? 0x09 : 0x08)
            case .real(let r):
                out.append(0x23)
                out += bigEndian(r.bitPattern, width: 8)
            case .array:
                writeMarker(0xA0, count: children[i].count, into: &out)
                for c in children[i] { out += bigEndian(UInt64(c), width: refSize) }
            case .dict:
                writeMarker(0xD0, count: children[i].count / 2, into: &out)
                for c in children[i] { out += bigEndian(UInt64(c), width: refSize) }
            }
        }
        let tableOffset = out.count
        let offsetSize = byteWidth(UInt64(tableOffset))
        for o in offsets { out += bigEndian(UInt64(o), width: offsetSize) }
        out += [UInt8](repeating: 0, count: 6)
        out += [UInt8(offsetSize), UInt8(refSize)]
        out += bigEndian(UInt64(objects.count), width: 8)
        out += bigEndian(0, width: 8)
        out += bigEndian(UInt64(tableOffset), width: 8)
        return out
    }

    static func byteWidth(_ v: UInt64) -> Int {
        v < 1 << 8 ? 1 : v < 1 << 16 ? 2 : v < 1 << 32 ? 4 : 8
    }

    static func bigEndian(_ v: UInt64, width: Int) -> [UInt8] {
        (0 ..< width).reversed().map { UInt8(truncatingIfNeeded: v >> (UInt64($0) * 8)) }
    }

    static func writeMarker(_ kind: UInt8, count: Int, into out: inout [UInt8]) {
        if count < 15 {
            out.append(kind | UInt8(count))
        } else {
            out.append(kind | 0x0F)
            writeInt(Int64(count), into: &out)
        }
    }

    static func writeInt(_ v: Int64, into out: inout [UInt8]) {
        if v < 0 {
            out.append(0x13); out += bigEndian(UInt64(bitPattern: v), width: 8)
        } else if v < 1 << 8 {
            out.append(0x10); out += bigEndian(UInt64(v), width: 1)
        } else if v < 1 << 16 {
            out.append(0x11); out += bigEndian(UInt64(v), width: 2)
        } else if v < 1 << 32 {
            out.append(0x12); out += bigEndian(UInt64(v), width: 4)
        } else {
            out.append(0x13); out += bigEndian(UInt64(v), width: 8)
        }
    }

    // MARK: Decoding

    public static func decode(_ bytes: [UInt8]) throws(ATVError) -> BPlistValue {
        var r = Reader(b: bytes)
        return try r.decodeRoot()
    }

    struct Reader {
        let b: [UInt8]
        var offsetSize = 0, refSize = 0, count = 0, tableOffset = 0
        var depth = 0

        static func bad(_ why: String) -> ATVError { .protocolError("malformed binary plist: \(why)") }

        func uint(at o: Int, width: Int) throws(ATVError) -> UInt64 {
            guard width >= 1, width <= 8, o >= 0, o <= b.count - width else { throw Self.bad("read past the end") }
            var v: UInt64 = 0
            for i in 0 ..< width { v = v << 8 | UInt64(b[o + i]) }
            return v
        }

        mutating func decodeRoot() throws(ATVError) -> BPlistValue {
            guard b.count >= 8 + 32, b.prefix(8).elementsEqual("bplist00".utf8) else { throw Self.bad("no bplist00 header") }
            let t = b.count - 32
            offsetSize = Int(b[t + 6]); refSize = Int(b[t + 7])
            let n = try uint(at: t + 8, width: 8), top = try uint(at: t + 16, width: 8), table = try uint(at: t + 24, width: 8)
            guard (1 ... 8).contains(offsetSize), (1 ... 8).contains(refSize),
                  n > 0, n < UInt64(b.count), top < n, table < UInt64(t),
                  UInt64(table) + n * UInt64(offsetSize) <= UInt64(t) else { throw Self.bad("bad trailer") }
            count = Int(n); tableOffset = Int(table)
            return try object(Int(top))
        }

        mutating func object(_ ref: Int) throws(ATVError) -> BPlistValue {
            guard ref >= 0, ref < count else { throw Self.bad("object reference out of range") }
            depth += 1
            defer { depth -= 1 }
            guard depth < 64 else { throw Self.bad("nested too deeply") }
            let o64 = try uint(at: tableOffset + ref * offsetSize, width: offsetSize)
            guard o64 >= 8, o64 < UInt64(tableOffset) else { throw Self.bad("object offset out of range") }
            var o = Int(o64)
            let marker = b[o]
            let kind = marker >> 4, low = Int(marker & 0x0F)
            o += 1
            func length() throws(ATVError) -> Int {
                if low != 0x0F { return low }
                guard o < b.count, b[o] >> 4 == 1 else { throw Self.bad("bad length marker") }
                let w = 1 << Int(b[o] & 0x0F)
                guard w <= 8 else { throw Self.bad("bad length width") }
                let v = try uint(at: o + 1, width: w)
                o += 1 + w
                guard v <= UInt64(b.count) else { throw Self.bad("length past the end") }
                return Int(v)
            }
            switch kind {
            case 0x0:
                switch marker {
                case 0x08: return .bool(false)
                case 0x09: return .bool(true)
                default: throw Self.bad("unsupported simple marker \(marker)")
                }
            case 0x1:
                let w = 1 << low
                guard w <= 8 else { throw Self.bad("integer wider than 8 bytes") }
                let v = try uint(at: o, width: w)
                return .int(w == 8 ? Int64(bitPattern: v) : Int64(v))
            case 0x2:
                let w = 1 << low
                guard w == 4 || w == 8 else { throw Self.bad("bad real width") }
                let v = try uint(at: o, width: w)
                return .real(w == 8 ? Double(bitPattern: v) : Double(Float(bitPattern: UInt32(v))))
            case 0x4:
                let n = try length()
                guard o <= b.count - n else { throw Self.bad("data past the end") }
                return .data(Array(b[o ..< o + n]))
            case 0x5:
                let n = try length()
                guard o <= b.count - n else { throw Self.bad("string past the end") }
                return .string(String(decoding: b[o ..< o + n], as: UTF8.self))
            case 0x6:
                let n = try length()
                guard n <= b.count / 2, o <= b.count - 2 * n else { throw Self.bad("string past the end") }
                var units: [UInt16] = []
                for i in 0 ..< n { units.append(UInt16(b[o + 2 * i]) << 8 | UInt16(b[o + 2 * i + 1])) }
                return .string(String(decoding: units, as: UTF16.self))
            case 0xA:
                let n = try length()
                guard n <= count, o <= b.count - n * refSize else { throw Self.bad("array past the end") }
                var items: [BPlistValue] = []
                for i in 0 ..< n { items.append(try object(Int(try uint(at: o + i * refSize, width: refSize)))) }
                return .array(items)
            case 0xD:
                let n = try length()
                guard n <= count, o <= b.count - 2 * n * refSize else { throw Self.bad("dictionary past the end") }
                var d: [String: BPlistValue] = [:]
                for i in 0 ..< n {
                    guard case .string(let k) = try object(Int(try uint(at: o + i * refSize, width: refSize))) else {
                        throw Self.bad("dictionary key is not a string")
                    }
                    d[k] = try object(Int(try uint(at: o + (n + i) * refSize, width: refSize)))
                }
                return .dict(d)
            default:
                throw Self.bad("unsupported object marker \(marker)")
            }
        }
    }
}

extension BPlistValue: Hashable {}
