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

    /// Decodes with the shared bounds-checked parser (ATVCore's `BinaryPlistParser`). Types the
    /// legacy pairing messages never carry (null, date, UID) are a protocol error here.
    public static func decode(_ bytes: [UInt8]) throws(ATVError) -> BPlistValue {
        let value: PlistValue
        do { value = try BinaryPlistParser.parse(bytes) } catch {
            throw ATVError.protocolError("malformed binary plist: \(error)")
        }
        return try convert(value)
    }

    static func convert(_ v: PlistValue) throws(ATVError) -> BPlistValue {
        switch v {
        case .string(let s): return .string(s)
        case .data(let d): return .data(d)
        case .int(let i): return .int(i)
        case .bool(let b): return .bool(b)
        case .real(let r): return .real(r)
        case .array(let a):
            var out: [BPlistValue] = []
            out.reserveCapacity(a.count)
            for e in a { out.append(try convert(e)) }
            return .array(out)
        case .dict(let d):
            var out: [String: BPlistValue] = [:]
            for (k, e) in d { out[k] = try convert(e) }
            return .dict(out)
        case .null, .date, .uid:
            throw ATVError.protocolError("malformed binary plist: unexpected \(v) in a pairing message")
        }
    }
}

extension BPlistValue: Hashable {}
