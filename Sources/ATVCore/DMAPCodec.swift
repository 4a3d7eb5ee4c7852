
/// A DMAP value, typed by the tag table (`DMAPTagTable`).
package enum DMAPValue: Sendable, Equatable {
    case container([DMAPElement])
    /// Big-endian unsigned integer; `width` is its length in bytes on the wire (0...8, or more
    /// when the extra leading bytes are zero).
    case uint(UInt64, width: Int)
    /// True when the value reads as the integer 1.
    case bool(Bool)
    case string(String)
    /// A string tag whose bytes are not valid UTF-8, kept as received so that serializing it
    /// writes the same bytes (`string` gives them decoded, invalid sequences replaced).
    case invalidString([UInt8])
    /// A binary plist, kept as bytes (see `plist`).
    case bplist([UInt8])
    case raw([UInt8])
    /// A tag the table says to skip.
    case ignored

    package var uint: UInt64? {
        switch self {
        case .uint(let v, _): v
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }
    package var int: Int? { uint.flatMap { $0 <= UInt64(Int.max) ? Int($0) : nil } }
    package var bool: Bool? {
        switch self {
        case .bool(let b): b
        case .uint(let v, _): v == 1
        default: nil
        }
    }
    package var string: String? {
        switch self {
        case .string(let s): s
        case .invalidString(let b): String(decoding: b, as: UTF8.self)
        default: nil
        }
    }
    package var container: [DMAPElement]? { if case .container(let c) = self { c } else { nil } }
    package var bytes: [UInt8]? {
        switch self {
        case .raw(let b), .bplist(let b), .invalidString(let b): b
        case .string(let s): Array(s.utf8)
        default: nil
        }
    }
    /// The decoded binary plist, nil if it is not one or does not decode.
    package var plist: PlistValue? {
        guard case .bplist(let b) = self else { return nil }
        return try? BinaryPlistParser.parse(b)
    }
}

/// One tag and its value.
package struct DMAPElement: Sendable, Equatable {
    package var tag: String
    package var value: DMAPValue
    package init(_ tag: String, _ value: DMAPValue) {
        self.tag = tag
        self.value = value
    }

    package static func container(_ tag: String, _ children: [DMAPElement]) -> DMAPElement { DMAPElement(tag, .container(children)) }
    package static func uint8(_ tag: String, _ v: UInt8) -> DMAPElement { DMAPElement(tag, .uint(UInt64(v), width: 1)) }
    package static func uint16(_ tag: String, _ v: UInt16) -> DMAPElement { DMAPElement(tag, .uint(UInt64(v), width: 2)) }
    package static func uint32(_ tag: String, _ v: UInt32) -> DMAPElement { DMAPElement(tag, .uint(UInt64(v), width: 4)) }
    package static func uint64(_ tag: String, _ v: UInt64) -> DMAPElement { DMAPElement(tag, .uint(v, width: 8)) }
    package static func bool(_ tag: String, _ v: Bool) -> DMAPElement { DMAPElement(tag, .bool(v)) }
    package static func string(_ tag: String, _ v: String) -> DMAPElement { DMAPElement(tag, .string(v)) }
    package static func raw(_ tag: String, _ v: [UInt8]) -> DMAPElement { DMAPElement(tag, .raw(v)) }
}

/// Why DMAP bytes could not be parsed.
package enum DMAPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer than 8 bytes left for a tag header.
    case truncatedHeader(offset: Int)
    /// The length field points past the end of the enclosing data.
    case truncatedValue(tag: String, offset: Int, length: Int, available: Int)
    /// Containers nested deeper than `DMAPParser.maxDepth`.
    case tooDeep

    package var description: String {
        switch self {
        case .truncatedHeader(let o): "DMAP data ends inside a tag header at byte \(o)"
        case .truncatedValue(let t, let o, let l, let a): "DMAP tag \(t) at byte \(o) claims \(l) bytes but only \(a) remain"
        case .tooDeep: "DMAP containers nested deeper than \(DMAPParser.maxDepth) levels"
        }
    }
}

/// Parses DMAP: 4 ASCII bytes ‖ u32 BE length ‖ value, containers holding nested tags (repeated
/// tags allowed). Bounds-checked and depth-limited; garbage gives an error, never a crash.
package enum DMAPParser {
    package static let maxDepth = 32

    package static func parse(_ bytes: [UInt8]) throws(DMAPParseError) -> [DMAPElement] {
        try parse(bytes[...], depth: 0)
    }

    static func parse(_ data: ArraySlice<UInt8>, depth: Int) throws(DMAPParseError) -> [DMAPElement] {
        if depth > maxDepth { throw .tooDeep }
        var out: [DMAPElement] = []
        var i = data.startIndex
        while i < data.endIndex {
            guard data.endIndex - i >= 8 else { throw .truncatedHeader(offset: i) }
            let tag = String(decoding: data[i..<(i + 4)], as: UTF8.self)
            var length = 0
            for b in data[(i + 4)..<(i + 8)] { length = length << 8 | Int(b) }
            let start = i + 8
            guard data.endIndex - start >= length else {
                throw .truncatedValue(tag: tag, offset: i, length: length, available: data.endIndex - start)
            }
            let value = data[start..<(start + length)]
            out.append(DMAPElement(tag, try decode(tag: tag, value, depth: depth)))
            i = start + length
        }
        return out
    }

    static func decode(tag: String, _ v: ArraySlice<UInt8>, depth: Int) throws(DMAPParseError) -> DMAPValue {
        switch DMAPTagTable.kind(tag) {
        case .container: return .container(try parse(v, depth: depth + 1))
        case .uint: return readUInt(v).map { .uint($0, width: v.count) } ?? .raw(Array(v))
        case .bool: return .bool(readUInt(v) == 1)
        case .string:
            // Valid UTF-8 re-encodes to the same bytes; anything else is kept as bytes.
            if let s = String(validating: v, as: UTF8.self) { return .string(s) }
            return .invalidString(Array(v))
        case .bplist: return .bplist(Array(v))
        case .ignore: return .ignored
        case .raw, nil: return .raw(Array(v))
        }
    }

    /// Big-endian unsigned value of any width; nil if it does not fit in 64 bits.
    static func readUInt(_ v: ArraySlice<UInt8>) -> UInt64? {
        var x: UInt64 = 0
        for b in v {
            if x >> 56 != 0 { return nil }
            x = x << 8 | UInt64(b)
        }
        return x
    }
}

/// Writes DMAP. Tag names are taken as their UTF-8 bytes, padded or cut to 4.
package enum DMAPSerializer {
    package static func serialize(_ elements: [DMAPElement]) -> [UInt8] {
        var out: [UInt8] = []
        for e in elements { append(e, to: &out) }
        return out
    }

    package static func serialize(_ element: DMAPElement) -> [UInt8] { serialize([element]) }

    static func append(_ e: DMAPElement, to out: inout [UInt8]) {
        let value: [UInt8]
        switch e.value {
        case .container(let c): value = serialize(c)
        case .uint(let v, let width):
            let w = max(width, 0)
            value = (0..<w).map { k in
                let shift = (w - 1 - k) * 8
                return shift >= 64 ? 0 : UInt8(truncatingIfNeeded: v >> UInt64(shift))
            }
        case .bool(let b): value = [b ? 1 : 0]
        case .string(let s): value = Array(s.utf8)
        case .bplist(let b), .raw(let b), .invalidString(let b): value = b
        case .ignored: value = []
        }
        var name = Array(e.tag.utf8.prefix(4))
        while name.count < 4 { name.append(0x20) }
        out += name
        let n = UInt32(truncatingIfNeeded: value.count)
        out += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        out += value
    }
}

extension Array where Element == DMAPElement {
    /// The value at a path of tags, taking the first match at each level
    /// (`response.first("cmst", "caps")`); nil if any step is missing.
    package func first(_ path: String...) -> DMAPValue? { first(path: path[...]) }

    package func first(path: ArraySlice<String>) -> DMAPValue? {
        guard let head = path.first else { return nil }
        guard let e = self.first(where: { $0.tag == head }) else { return nil }
        if path.count == 1 { return e.value }
        return e.value.container?.first(path: path.dropFirst())
    }

    /// Every top-level element with this tag.
    package func all(_ tag: String) -> [DMAPElement] { filter { $0.tag == tag } }

    /// An indented listing, one tag a line (for logs and the CLI).
    package func pretty(indent: Int = 0) -> String {
        var out = ""
        for e in self {
            let pad = String(repeating: " ", count: indent)
            switch e.value {
            case .container(let c): out += "\(pad)\(e.tag):\n" + c.pretty(indent: indent + 2)
            case .uint(let v, _): out += "\(pad)\(e.tag): \(v)\n"
            case .bool(let b): out += "\(pad)\(e.tag): \(b)\n"
            case .string(let s): out += "\(pad)\(e.tag): \(s)\n"
            case .invalidString(let b): out += "\(pad)\(e.tag): \(String(decoding: b, as: UTF8.self))\n"
            case .bplist(let b): out += "\(pad)\(e.tag): <bplist \(b.count) bytes>\n"
            case .raw(let b): out += "\(pad)\(e.tag): 0x\(b.map { String($0, radix: 16).leftPad2 }.joined())\n"
            case .ignored: out += "\(pad)\(e.tag): (ignored)\n"
            }
        }
        return out
    }
}

extension String {
    var leftPad2: String { count < 2 ? "0" + self : self }
}
