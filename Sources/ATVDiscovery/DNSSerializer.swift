/// Encodes DNS messages with name compression.
package struct DNSSerializer {
    private var out: [UInt8] = []
    private var offsets: [String: Int] = [:]

    package static func serialize(_ message: DNSMessage) -> [UInt8] {
        var s = DNSSerializer()
        s.u16(message.id)
        s.u16(message.flags)
        s.u16(UInt16(message.questions.count))
        s.u16(UInt16(message.answers.count))
        s.u16(UInt16(message.authorities.count))
        s.u16(UInt16(message.additionals.count))
        for q in message.questions {
            s.name(q.name)
            s.u16(q.type.rawValue)
            s.u16(1 | (q.unicastResponse ? 0x8000 : 0))
        }
        for r in message.answers + message.authorities + message.additionals { s.record(r) }
        return s.out
    }

    mutating func u16(_ v: UInt16) { out += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }

    /// Splits a name into labels. An instance name may contain dots ("Dot.Within._http._tcp.local"):
    /// everything before the first label that starts with "_" is one label when the name has a
    /// service part.
    static func labels(_ name: String) -> [String] {
        var parts = name.split(separator: ".", omittingEmptySubsequences: true).map(String.init)
        if let i = parts.firstIndex(where: { $0.hasPrefix("_") }), i > 1 {
            parts = [parts[0..<i].joined(separator: ".")] + parts[i...]
        }
        return parts
    }

    /// Truncates a label to 63 bytes on a UTF-8 character boundary.
    static func labelBytes(_ label: String) -> [UInt8] {
        var bytes = Array(label.utf8)
        if bytes.count > 63 {
            var cut = 63
            while cut > 0, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
            bytes = Array(bytes[..<cut])
        }
        return bytes
    }

    mutating func name(_ name: String) {
        let labels = Self.labels(name)
        for i in labels.indices {
            let suffix = labels[i...].joined(separator: ".").lowercased()
            if let off = offsets[suffix], off < 0x3FFF {
                u16(0xC000 | UInt16(off))
                return
            }
            if out.count < 0x3FFF { offsets[suffix] = out.count }
            let b = Self.labelBytes(labels[i])
            out.append(UInt8(b.count))
            out += b
        }
        out.append(0)
    }

    mutating func record(_ r: DNSRecord) {
        name(r.name)
        u16(r.type.rawValue)
        u16(r.recordClass | (r.cacheFlush ? 0x8000 : 0))
        u32(r.ttl)
        let lengthAt = out.count
        u16(0)
        switch r.data {
        case .a(let ip):
            out += ip.split(separator: ".").map { UInt8($0) ?? 0 }
        case .aaaa(let b):
            out += b
        case .ptr(let n):
            name(n)
        case .srv(let priority, let weight, let port, let target):
            u16(priority); u16(weight); u16(port)
            name(target)
        case .txt(let strings):
            if strings.isEmpty { out.append(0) }
            for s in strings {
                let b = s.prefix(255)
                out.append(UInt8(b.count))
                out += b
            }
        case .nsec(let next, let types):
            name(next)
            var windows: [UInt8: [UInt8]] = [:]
            for t in types {
                let w = UInt8(t >> 8), bit = Int(t & 0xFF)
                var bitmap = windows[w] ?? []
                if bitmap.count <= bit / 8 { bitmap += Array(repeating: 0, count: bit / 8 + 1 - bitmap.count) }
                bitmap[bit / 8] |= 0x80 >> UInt8(bit % 8)
                windows[w] = bitmap
            }
            for (w, bitmap) in windows.sorted(by: { $0.key < $1.key }) {
                out += [w, UInt8(bitmap.count)] + bitmap
            }
        case .raw(let b):
            out += b
        }
        let length = out.count - lengthAt - 2
        out[lengthAt] = UInt8(length >> 8)
        out[lengthAt + 1] = UInt8(length & 0xFF)
    }
}
