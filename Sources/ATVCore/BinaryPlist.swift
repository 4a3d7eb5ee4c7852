// The one binary property list ("bplist00") implementation: the value type, the encoder and the
// bounds-checked decoder every protocol uses (AirPlay bodies, legacy pairing, MRP data streams,
// DMAP `ceSD`, NSKeyedArchiver archives for Companion text input).

/// A value of a binary property list. `.uid` is a keyed-archive object reference (NSKeyedArchiver's
/// `CF$UID`); `.date` is seconds since 2001-01-01 UTC.
public indirect enum PlistValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case real(Double)
    case date(Double)
    case data([UInt8])
    case string(String)
    case uid(UInt64)
    case array([PlistValue])
    case dict([String: PlistValue])

    public var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .real(let d): d
        default: nil
        }
    }
    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var data: [UInt8]? { if case .data(let d) = self { d } else { nil } }
    public var bool: Bool? {
        switch self {
        case .bool(let b): b
        case .int(let i): i != 0
        default: nil
        }
    }
    public var array: [PlistValue]? { if case .array(let a) = self { a } else { nil } }
    public var dict: [String: PlistValue]? { if case .dict(let d) = self { d } else { nil } }

    public subscript(_ key: String) -> PlistValue? { dict?[key] }
}

/// Encodes and decodes `bplist00`.
package enum BinaryPlist {
    /// Lays objects out exactly as Python's `plistlib.dumps(value, fmt=FMT_BINARY)` does (what pyatv
    /// sends): each container before its contents, depth first, a dictionary's keys (sorted) before
    /// its values; equal strings, data, numbers, dates and booleans written once and shared; the
    /// smallest integer, reference and offset widths. UIDs are written where they appear.
    package static func encode(_ root: PlistValue) -> [UInt8] {
        var objects: [PlistValue] = []
        var children: [[Int]] = []
        var shared: [PlistValue: Int] = [:]

        func flatten(_ v: PlistValue) -> Int {
            switch v {
            case .null, .bool, .int, .real, .date, .data, .string:
                if let r = shared[v] { return r }
                let r = objects.count
                objects.append(v); children.append([]); shared[v] = r
                return r
            case .uid:
                objects.append(v); children.append([])
                return objects.count - 1
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
        offsets.reserveCapacity(objects.count)
        for (i, obj) in objects.enumerated() {
            offsets.append(out.count)
            switch obj {
            case .null:
                out.append(0x00)
            case .bool(let b):
                out.append(b ? 0x09 : 0x08)
            case .int(let v):
                writeInt(v, into: &out)
            case .real(let r):
                out.append(0x23)
                out += bigEndian(r.bitPattern, width: 8)
            case .date(let d):
                out.append(0x33)
                out += bigEndian(d.bitPattern, width: 8)
            case .data(let d):
                writeMarker(0x40, count: d.count, into: &out)
                out += d
            case .string(let s):
                if s.utf8.allSatisfy({ $0 < 0x80 }) {
                    writeMarker(0x50, count: s.utf8.count, into: &out)
                    out += Array(s.utf8)
                } else {
                    let units = Array(s.utf16)
                    writeMarker(0x60, count: units.count, into: &out)
                    for u in units { out += [UInt8(u >> 8), UInt8(u & 0xFF)] }
                }
            case .uid(let u):
                let width = byteWidth(u)
                out.append(0x80 | UInt8(width - 1))
                out += bigEndian(u, width: width)
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

    /// Decodes with `BinaryPlistParser`; anything malformed is `ATVError.protocolError`.
    package static func decode(_ bytes: [UInt8]) throws(ATVError) -> PlistValue {
        do { return try BinaryPlistParser.parse(bytes) } catch {
            throw ATVError.protocolError("malformed binary plist (\(error))")
        }
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
        } else {
            let width = byteWidth(UInt64(v))
            out.append(0x10 | UInt8(width.trailingZeroBitCount))
            out += bigEndian(UInt64(v), width: width)
        }
    }
}

/// A bounds-checked `bplist00` parser (sans-I/O), shared by every protocol that reads binary
/// plists from the network. Foundation's parser is not used for network input: on Linux it
/// crashes on some malformed plists (found by the fuzz test).
package struct BinaryPlistParser {
    package enum Failure: Error, Equatable {
        case notBinaryPlist
        case truncated
        case badTrailer
        case badObject(offset: Int)
        case tooDeep
    }

    private let bytes: [UInt8]
    private let offsetSize: Int
    private let refSize: Int
    private let objectCount: Int
    private let tableOffset: Int
    private let maxDepth = 32

    /// Parses a whole plist and returns its top object.
    package static func parse(_ bytes: [UInt8]) throws -> PlistValue {
        let p = try BinaryPlistParser(bytes)
        return try p.top()
    }

    private let topIndex: Int

    private init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 8 + 32, Array(bytes[0..<6]) == Array("bplist".utf8) else { throw Failure.notBinaryPlist }
        self.bytes = bytes
        let t = bytes.count - 32
        offsetSize = Int(bytes[t + 6])
        refSize = Int(bytes[t + 7])
        guard (1...8).contains(offsetSize), (1...8).contains(refSize) else { throw Failure.badTrailer }
        let count = Self.be(bytes, t + 8, 8)
        let top = Self.be(bytes, t + 16, 8)
        let table = Self.be(bytes, t + 24, 8)
        guard count > 0, count < UInt64(bytes.count), top < count, table >= 8, table < UInt64(t),
              UInt64(table) + count * UInt64(offsetSize) <= UInt64(t) else { throw Failure.badTrailer }
        objectCount = Int(count)
        topIndex = Int(top)
        tableOffset = Int(table)
    }

    private func top() throws -> PlistValue {
        var budget = 100_000 // objects visited: shared references cannot blow up the work
        return try object(topIndex, depth: 0, budget: &budget)
    }

    private static func be(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<n { v = v << 8 | UInt64(b[at + i]) }
        return v
    }

    /// Reads n big-endian bytes at `at`, bounds-checked against the object area.
    private func read(_ at: Int, _ n: Int) throws -> UInt64 {
        guard at >= 0, n >= 0, n <= 8, at + n <= tableOffset else { throw Failure.truncated }
        return Self.be(bytes, at, n)
    }

    private func offset(of index: Int) throws -> Int {
        guard index >= 0, index < objectCount else { throw Failure.badObject(offset: -1) }
        let o = Self.be(bytes, tableOffset + index * offsetSize, offsetSize)
        guard o >= 8, o < UInt64(tableOffset) else { throw Failure.badObject(offset: Int(truncatingIfNeeded: o)) }
        return Int(o)
    }

    /// An object reference (`refSize` bytes): one that does not fit an Int is no valid index either.
    private func reference(at position: Int) throws -> Int {
        guard let index = Int(exactly: try read(position, refSize)) else { throw Failure.badObject(offset: -1) }
        return index
    }

    /// The length of a variable-size object: the low nibble, or an int object after the marker.
    private func length(_ marker: UInt8, at off: Int) throws -> (count: Int, start: Int) {
        let low = Int(marker & 0x0F)
        if low != 0x0F { return (low, off + 1) }
        let m = try read(off + 1, 1)
        guard m >> 4 == 0x1 else { throw Failure.badObject(offset: off) }
        let n = 1 << Int(m & 0x0F)
        guard n <= 8 else { throw Failure.badObject(offset: off) }
        let v = try read(off + 2, n)
        guard v < UInt64(bytes.count) else { throw Failure.truncated }
        return (Int(v), off + 2 + n)
    }

    private func object(_ index: Int, depth: Int, budget: inout Int) throws -> PlistValue {
        budget -= 1
        guard depth < maxDepth, budget >= 0 else { throw Failure.tooDeep }
        let off = try offset(of: index)
        let marker = UInt8(try read(off, 1))
        let low = Int(marker & 0x0F)
        switch marker >> 4 {
        case 0x0:
            switch marker {
            case 0x00: return .null
            case 0x08: return .bool(false)
            case 0x09: return .bool(true)
            default: throw Failure.badObject(offset: off)
            }
        case 0x1:
            guard low <= 3 else {
                // 16-byte integers: keep the low 8 bytes when the high ones are a sign extension.
                guard low == 4 else { throw Failure.badObject(offset: off) }
                let hi = try read(off + 1, 8), lo = try read(off + 9, 8)
                guard hi == 0 || hi == UInt64.max else { throw Failure.badObject(offset: off) }
                return .int(Int64(bitPattern: lo))
            }
            let n = 1 << low
            let v = try read(off + 1, n)
            return .int(n == 8 ? Int64(bitPattern: v) : Int64(v))
        case 0x2:
            switch low {
            case 2: return .real(Double(Float(bitPattern: UInt32(try read(off + 1, 4)))))
            case 3: return .real(Double(bitPattern: try read(off + 1, 8)))
            default: throw Failure.badObject(offset: off)
            }
        case 0x3:
            guard marker == 0x33 else { throw Failure.badObject(offset: off) }
            return .date(Double(bitPattern: try read(off + 1, 8)))
        case 0x4:
            let (n, start) = try length(marker, at: off)
            guard start + n <= tableOffset else { throw Failure.truncated }
            return .data(Array(bytes[start..<start + n]))
        case 0x5:
            let (n, start) = try length(marker, at: off)
            guard start + n <= tableOffset else { throw Failure.truncated }
            return .string(String(decoding: bytes[start..<start + n], as: UTF8.self))
        case 0x6:
            let (n, start) = try length(marker, at: off)
            guard n <= tableOffset, start + 2 * n <= tableOffset else { throw Failure.truncated }
            var units: [UInt16] = []
            units.reserveCapacity(n)
            for i in 0..<n { units.append(UInt16(bytes[start + 2 * i]) << 8 | UInt16(bytes[start + 2 * i + 1])) }
            return .string(String(decoding: units, as: UTF16.self))
        case 0x8:
            return .uid(try read(off + 1, low + 1))
        case 0xA:
            let (n, start) = try length(marker, at: off)
            guard n <= objectCount, start + n * refSize <= tableOffset else { throw Failure.truncated }
            var out: [PlistValue] = []
            for i in 0..<n {
                out.append(try object(try reference(at: start + i * refSize), depth: depth + 1, budget: &budget))
            }
            return .array(out)
        case 0xD:
            let (n, start) = try length(marker, at: off)
            guard n <= objectCount, start + 2 * n * refSize <= tableOffset else { throw Failure.truncated }
            var out: [String: PlistValue] = [:]
            for i in 0..<n {
                let k = try object(try reference(at: start + i * refSize), depth: depth + 1, budget: &budget)
                guard case .string(let key) = k else { throw Failure.badObject(offset: off) }
                out[key] = try object(try reference(at: start + (n + i) * refSize), depth: depth + 1, budget: &budget)
            }
            return .dict(out)
        default:
            throw Failure.badObject(offset: off)
        }
    }
}
