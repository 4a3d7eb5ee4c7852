import ATVCore

/// Decodes DNS messages. Garbage never crashes it: every read is bounds-checked, compression
/// pointers may only point backwards and at most 32 jumps are followed.
package enum DNSParser {
    package struct Error: Swift.Error, Equatable, CustomStringConvertible {
        package var reason: String
        package var offset: Int
        package var description: String { "malformed DNS message at byte \(offset): \(reason)" }
    }

    package static func parse(_ bytes: [UInt8]) throws -> DNSMessage {
        var r = Reader(bytes: bytes)
        let id = try r.u16()
        let flags = try r.u16()
        let qd = try r.u16(), an = try r.u16(), ns = try r.u16(), ar = try r.u16()
        var msg = DNSMessage(id: id, flags: flags)
        for _ in 0..<qd {
            let name = try r.name()
            let type = try r.u16()
            let cls = try r.u16()
            msg.questions.append(DNSQuestion(name: name, type: DNSType(rawValue: type), unicastResponse: cls & 0x8000 != 0))
        }
        // A truncated message may stop in the middle of a record: keep what was complete.
        func records(_ n: UInt16) throws -> [DNSRecord] {
            var out: [DNSRecord] = []
            for _ in 0..<n {
                do {
                    out.append(try record(&r))
                } catch let e as Error {
                    if msg.isTruncated { return out }
                    throw e
                }
            }
            return out
        }
        msg.answers = try records(an)
        msg.authorities = try records(ns)
        msg.additionals = try records(ar)
        return msg
    }

    static func record(_ r: inout Reader) throws -> DNSRecord {
        let name = try r.name()
        let type = DNSType(rawValue: try r.u16())
        let cls = try r.u16()
        let ttl = try r.u32()
        let length = Int(try r.u16())
        let start = r.offset
        guard start + length <= r.bytes.count else { throw Error(reason: "record data past the end", offset: start) }
        let end = start + length
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw Error(reason: "A record of \(length) bytes", offset: start) }
            data = .a(r.bytes[start..<end].map(String.init).joined(separator: "."))
        case .aaaa:
            guard length == 16 else { throw Error(reason: "AAAA record of \(length) bytes", offset: start) }
            data = .aaaa(Array(r.bytes[start..<end]))
        case .ptr:
            data = .ptr(try r.name(limit: end))
        case .srv:
            let priority = try r.u16(), weight = try r.u16(), port = try r.u16()
            data = .srv(priority: priority, weight: weight, port: port, target: try r.name(limit: end))
        case .txt:
            var strings: [[UInt8]] = []
            var i = start
            while i < end {
                let n = Int(r.bytes[i])
                guard i + 1 + n <= end else { throw Error(reason: "TXT string past the record", offset: i) }
                if n > 0 { strings.append(Array(r.bytes[(i + 1)..<(i + 1 + n)])) }
                i += 1 + n
            }
            data = .txt(strings)
        case .nsec:
            let next = try r.name(limit: end)
            var types = Set<UInt16>()
            var i = r.offset
            while i + 2 <= end {
                let window = UInt16(r.bytes[i]), len = Int(r.bytes[i + 1])
                guard len <= 32, i + 2 + len <= end else { throw Error(reason: "bad NSEC bitmap", offset: i) }
                for (bi, byte) in r.bytes[(i + 2)..<(i + 2 + len)].enumerated() {
                    for bit in 0..<8 where byte & (0x80 >> bit) != 0 {
                        types.insert(window * 256 + UInt16(bi * 8 + bit))
                    }
                }
                i += 2 + len
            }
            data = .nsec(next: next, types: types)
        default:
            data = .raw(Array(r.bytes[start..<end]))
        }
        r.offset = end
        return DNSRecord(name: name, type: type, recordClass: cls & 0x7FFF, cacheFlush: cls & 0x8000 != 0, ttl: ttl, data: data)
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws -> UInt8 {
            guard offset < bytes.count else { throw Error(reason: "unexpected end", offset: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func u16() throws -> UInt16 { UInt16(try u8()) << 8 | UInt16(try u8()) }
        mutating func u32() throws -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }

        /// A possibly compressed name; labels are UTF-8 (`xn--` labels are kept as sent).
        mutating func name(limit: Int? = nil) throws -> String {
            var labels: [String] = []
            var pos = offset
            var jumped = false
            var jumps = 0
            var total = 0
            while true {
                guard pos < bytes.count else { throw Error(reason: "name past the end", offset: pos) }
                let len = bytes[pos]
                switch len & 0xC0 {
                case 0x00:
                    if len == 0 {
                        pos += 1
                        if !jumped { offset = pos }
                        if let limit, offset > limit { throw Error(reason: "name past its record", offset: offset) }
                        return labels.joined(separator: ".")
                    }
                    let n = Int(len)
                    guard pos + 1 + n <= bytes.count else { throw Error(reason: "label past the end", offset: pos) }
                    total += n + 1
                    guard total <= 255 * 4 else { throw Error(reason: "name too long", offset: pos) }
                    labels.append(String(decoding: bytes[(pos + 1)..<(pos + 1 + n)], as: UTF8.self))
                    pos += 1 + n
                case 0xC0:
                    guard pos + 1 < bytes.count else { throw Error(reason: "pointer past the end", offset: pos) }
                    let target = Int(len & 0x3F) << 8 | Int(bytes[pos + 1])
                    guard target < pos else { throw Error(reason: "forward compression pointer", offset: pos) }
                    jumps += 1
                    guard jumps <= 32 else { throw Error(reason: "compression loop", offset: pos) }
                    if !jumped { offset = pos + 2 }
                    jumped = true
                    pos = target
                default:
                    throw Error(reason: "reserved label type", offset: pos)
                }
            }
        }
    }
}
