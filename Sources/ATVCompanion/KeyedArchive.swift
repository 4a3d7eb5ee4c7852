// Text input (RTI, protocols.md §6.7) carries NSKeyedArchiver binary plists in `_tiD`. This is
// a small bplist00 codec with UIDs (what keyed archives need) plus the few archives RTI uses.
// The decoder never traps on garbage: bounds-checked reads, bounded nesting, no cycles followed.
import ATVCore

public indirect enum PlistObject: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case real(Double)
    case string(String)
    case data([UInt8])
    case uid(Int)
    case array([PlistObject])
    /// Ordered (string keys, as keyed archives use).
    case dict([(key: String, value: PlistObject)])

    public subscript(key: String) -> PlistObject? {
        if case .dict(let d) = self { return d.first { $0.key == key }?.value }
        return nil
    }

    public static func == (a: PlistObject, b: PlistObject) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.real(let x), .real(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.data(let x), .data(let y)): x == y
        case (.uid(let x), .uid(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.dict(let x), .dict(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }
}

public enum BinaryPlistCodec {
    // MARK: Encoding (no sharing; every object written once where it appears)

    public static func encode(_ root: PlistObject) -> [UInt8] {
        var objects: [[UInt8]] = []  // bodies, refs patched below
        var pending: [(index: Int, marker: UInt8, count: Int, refs: [Int])] = []

        func add(_ v: PlistObject) -> Int {
            let i = objects.count
            objects.append([])
            switch v {
            case .null: objects[i] = [0x00]
            case .bool(let b): objects[i] = [b ? 0x09 : 0x08]
            case .int(let n): objects[i] = int(n)
            case .real(let d): objects[i] = [0x23] + be(d.bitPattern, 8)
            case .string(let s):
                if s.utf8.allSatisfy({ $0 < 0x80 }) { objects[i] = marker(0x50, s.utf8.count) + Array(s.utf8) }
                else { objects[i] = marker(0x60, s.utf16.count) + s.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
            case .data(let d): objects[i] = marker(0x40, d.count) + d
            case .uid(let u):
                let w = u < 0x100 ? 1 : u < 0x10000 ? 2 : 4
                objects[i] = [0x80 | UInt8(w - 1)] + be(UInt64(u), w)
            case .array(let items):
                let refs = items.map { add($0) }
                pending.append((i, 0xA0, items.count, refs))
            case .dict(let pairs):
                let keys = pairs.map { add(.string($0.key)) }
                let values = pairs.map { add($0.value) }
                pending.append((i, 0xD0, pairs.count, keys + values))
            }
            return i
        }
        _ = add(root)
        let refSize = objects.count < 0x100 ? 1 : objects.count < 0x10000 ? 2 : 4
        for p in pending { objects[p.index] = marker(p.marker, p.count) + p.refs.flatMap { be(UInt64($0), refSize) } }
        var out = Array("bplist00".utf8)
        var offsets: [Int] = []
        for o in objects { offsets.append(out.count); out += o }
        let table = out.count
        let offSize = table < 0x100 ? 1 : table < 0x10000 ? 2 : table < 0x1_0000_0000 ? 4 : 8
        for o in offsets { out += be(UInt64(o), offSize) }
        out += [0, 0, 0, 0, 0, 0, UInt8(offSize), UInt8(refSize)]
        out += be(UInt64(objects.count), 8) + be(0, 8) + be(UInt64(table), 8)
        return out
    }

    static func be(_ v: UInt64, _ w: Int) -> [UInt8] { (0 ..< w).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    static func marker(_ kind: UInt8, _ count: Int) -> [UInt8] {
        count < 15 ? [kind | UInt8(count)] : [kind | 0x0F] + int(Int64(count))
    }
    static func int(_ n: Int64) -> [UInt8] {
        if n < 0 { return [0x13] + be(UInt64(bitPattern: n), 8) }
        if n < 0x100 { return [0x10] + be(UInt64(n), 1) }
        if n < 0x10000 { return [0x11] + be(UInt64(n), 2) }
        if n < 0x1_0000_0000 { return [0x12] + be(UInt64(n), 4) }
        return [0x13] + be(UInt64(n), 8)
    }

    // MARK: Decoding

    public static func decode(_ b: [UInt8]) throws(ATVError) -> PlistObject {
        func bad(_ why: String) -> ATVError { ATVError.protocolError("binary plist: \(why)") }
        guard b.count >= 40, b.starts(with: Array("bplist00".utf8)) else { throw bad("not a bplist00") }
        let t = b.count - 32
        func read(_ at: Int, _ w: Int) throws(ATVError) -> UInt64 {
            guard w > 0, w <= 8, at >= 0, at + w <= b.count else { throw bad("read out of bounds") }
            var v: UInt64 = 0
            for i in 0 ..< w { v = v << 8 | UInt64(b[at + i]) }
            return v
        }
        let offSize = Int(b[t + 6]), refSize = Int(b[t + 7])
        let count = try read(t + 8, 8), top = try read(t + 16, 8), table = try read(t + 24, 8)
        guard (1 ... 8).contains(offSize), (1 ... 8).contains(refSize), count > 0, count < 1 << 20, top < count,
              table < UInt64(t), table + count * UInt64(offSize) <= UInt64(t) else { throw bad("bad trailer") }

        var budget = 100_000  // objects visited: shared references cannot blow up the work
        func object(_ ref: Int, _ depth: Int) throws(ATVError) -> PlistObject {
            guard depth < 64, ref >= 0, UInt64(ref) < count else { throw bad("bad reference or too deep") }
            budget -= 1
            guard budget >= 0 else { throw bad("too many objects") }
            let rawOffset = try read(Int(table) + ref * offSize, offSize)
            guard rawOffset >= 8, rawOffset < UInt64(t) else { throw bad("bad object offset") }
            let off = Int(rawOffset)
            let m = b[off], hi = m >> 4, lo = Int(m & 0x0F)
            func length() throws(ATVError) -> (Int, Int) {  // (count, start of body)
                guard lo == 0x0F else { return (lo, off + 1) }
                guard off + 1 < t, b[off + 1] >> 4 == 1 else { throw bad("bad length") }
                let w = 1 << Int(b[off + 1] & 0x0F)
                let n = try read(off + 2, w)
                guard n < UInt64(b.count) else { throw bad("length too large") }
                return (Int(n), off + 2 + w)
            }
            switch hi {
            case 0x0:
                switch m { case 0x00: return .null; case 0x08: return .bool(false); case 0x09: return .bool(true); default: throw bad("unknown marker") }
            case 0x1:
                let w = 1 << lo
                guard w <= 8 else { throw bad("integer too wide") }
                let v = try read(off + 1, w)
                return .int(w == 8 ? Int64(bitPattern: v) : Int64(v))
            case 0x2:
                if lo == 2 { return .real(Double(Float(bitPattern: UInt32(try read(off + 1, 4))))) }
                if lo == 3 { return .real(Double(bitPattern: try read(off + 1, 8))) }
                throw bad("bad real")
            case 0x3: return .real(Double(bitPattern: try read(off + 1, 8)))
            case 0x4, 0x5, 0x6:
                let (n, s) = try length()
                let bytes = hi == 0x6 ? n * 2 : n
                guard s + bytes <= t else { throw bad("truncated") }
                let body = Array(b[s ..< s + bytes])
                if hi == 0x4 { return .data(body) }
                if hi == 0x5 { return .string(String(decoding: body, as: UTF8.self)) }
                var units: [UInt16] = []
                for i in stride(from: 0, to: body.count, by: 2) { units.append(UInt16(body[i]) << 8 | UInt16(body[i + 1])) }
                return .string(String(decoding: units, as: UTF16.self))
            case 0x8: return .uid(Int(try read(off + 1, lo + 1) & 0x7FFF_FFFF))
            case 0xA, 0xD:
                let (n, s) = try length()
                let refs = hi == 0xD ? 2 * n : n
                guard s + refs * refSize <= t else { throw bad("truncated collection") }
                var items: [PlistObject] = []
                for i in 0 ..< refs {
                    let r = try read(s + i * refSize, refSize)
                    guard r < count else { throw bad("bad reference or too deep") }
                    items.append(try object(Int(r), depth + 1))
                }
                if hi == 0xA { return .array(items) }
                var pairs: [(key: String, value: PlistObject)] = []
                for i in 0 ..< n {
                    guard case .string(let k) = items[i] else { throw bad("non-string dictionary key") }
                    pairs.append((k, items[n + i]))
                }
                return .dict(pairs)
            default: throw bad("unsupported marker 0x" + String(m, radix: 16))
            }
        }
        return try object(Int(top), 0)
    }
}

/// NSKeyedArchiver archives as RTI uses them.
public enum RTIArchive {
    static func classRef(_ name: String) -> PlistObject {
        .dict([("$classname", .string(name)), ("$classes", .array([.string(name), .string("NSObject")]))])
    }
    static func archive(top: [(key: String, value: PlistObject)], objects: [PlistObject]) -> [UInt8] {
        BinaryPlistCodec.encode(.dict([("$version", .int(100000)), ("$archiver", .string("RTIKeyedArchiver")),
                                       ("$top", .dict(top)), ("$objects", .array(objects))]))
    }

    /// Follow `path` from `$top`, resolving UIDs into `$objects` (as pyatv reads archives).
    public static func property(_ archive: [UInt8], _ path: [String]) -> PlistObject? {
        guard let root = try? BinaryPlistCodec.decode(archive), case .array(let objects)? = root["$objects"],
              var element = root["$top"] else { return nil }
        for key in path {
            guard var next = element[key] else { return nil }
            var hops = 0
            while case .uid(let u) = next {
                guard u < objects.count, hops < 8 else { return nil }
                next = objects[u]
                hops += 1
            }
            element = next
        }
        return element
    }

    /// The text-input session a device sends in `_tiStart`: `$top.sessionUUID` (16 bytes) and
    /// `$top.documentState.docSt.contextBeforeInput` (the current text).
    public static func session(uuid: [UInt8], text: String) -> [UInt8] {
        archive(top: [("sessionUUID", .uid(1)), ("documentState", .uid(2))],
                objects: [.string("$null"), .data(uuid),
                          .dict([("docSt", .uid(3)), ("$class", .uid(5))]),
                          .dict([("contextBeforeInput", .uid(4)), ("$class", .uid(6))]),
                          .string(text), classRef("RTIDocumentState"), classRef("TIDocumentState")])
    }

    /// `_tiC` payload that replaces the text with "" (clear).
    public static func clear(session: [UInt8]) -> [UInt8] {
        archive(top: [("textOperations", .uid(1))],
                objects: [.string("$null"),
                          .dict([("$class", .uid(7)), ("targetSessionUUID", .uid(5)), ("keyboardOutput", .uid(2)), ("textToAssert", .uid(4))]),
                          .dict([("$class", .uid(3))]), classRef("TIKeyboardOutput"), .string(""),
                          .dict([("NS.uuidbytes", .data(session)), ("$class", .uid(6))]), classRef("NSUUID"),
                          classRef("RTITextOperations")])
    }

    /// `_tiC` payload that inserts `text`.
    public static func insert(session: [UInt8], text: String) -> [UInt8] {
        archive(top: [("textOperations", .uid(1))],
                objects: [.string("$null"),
                          .dict([("keyboardOutput", .uid(2)), ("$class", .uid(7)), ("targetSessionUUID", .uid(5))]),
                          .dict([("insertionText", .uid(3)), ("$class", .uid(4))]), .string(text), classRef("TIKeyboardOutput"),
                          .dict([("NS.uuidbytes", .data(session)), ("$class", .uid(6))]), classRef("NSUUID"),
                          classRef("RTITextOperations")])
    }

    /// What a `_tiC` archive asks for.
    public struct Operation: Sendable, Equatable {
        public var session: [UInt8]?
        public var insertionText: String?
        public var textToAssert: String?
    }

    public static func operation(_ archive: [UInt8]) -> Operation? {
        guard property(archive, ["textOperations"]) != nil else { return nil }
        var op = Operation()
        if case .data(let d)? = property(archive, ["textOperations", "targetSessionUUID", "NS.uuidbytes"]) { op.session = d }
        if case .string(let s)? = property(archive, ["textOperations", "keyboardOutput", "insertionText"]) { op.insertionText = s }
        if case .string(let s)? = property(archive, ["textOperations", "textToAssert"]) { op.textToAssert = s }
        return op
    }
}
