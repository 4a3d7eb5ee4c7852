import ATVCore

/// DNS record types swift-atv reads (others are kept as raw data).
package struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: UInt16
    package init(rawValue: UInt16) { self.rawValue = rawValue }
    package static let a = DNSType(rawValue: 1)
    package static let ptr = DNSType(rawValue: 12)
    package static let txt = DNSType(rawValue: 16)
    package static let aaaa = DNSType(rawValue: 28)
    package static let srv = DNSType(rawValue: 33)
    package static let nsec = DNSType(rawValue: 47)
    package static let any = DNSType(rawValue: 255)
    package var description: String {
        switch self {
        case .a: "A"
        case .ptr: "PTR"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .nsec: "NSEC"
        case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// A question. `unicastResponse` is the mDNS QU bit (top bit of the class).
package struct DNSQuestion: Hashable, Sendable {
    package var name: String
    package var type: DNSType
    package var unicastResponse: Bool
    package init(name: String, type: DNSType, unicastResponse: Bool = false) {
        self.name = name
        self.type = type
        self.unicastResponse = unicastResponse
    }
}

/// Decoded record data.
package enum DNSRecordData: Hashable, Sendable {
    /// IPv4 address, dotted.
    case a(String)
    /// IPv6 address, as 16 bytes.
    case aaaa([UInt8])
    case ptr(String)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
    /// TXT character-strings, raw.
    case txt([[UInt8]])
    /// NSEC: next name and the set of types present.
    case nsec(next: String, types: Set<UInt16>)
    case raw([UInt8])
}

package struct DNSRecord: Hashable, Sendable {
    package var name: String
    package var type: DNSType
    /// The class without the cache-flush bit.
    package var recordClass: UInt16
    package var cacheFlush: Bool
    package var ttl: UInt32
    package var data: DNSRecordData

    package init(name: String, type: DNSType, recordClass: UInt16 = 1, cacheFlush: Bool = false, ttl: UInt32 = 120,
                data: DNSRecordData) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
        self.cacheFlush = cacheFlush
        self.ttl = ttl
        self.data = data
    }
}

package struct DNSMessage: Hashable, Sendable {
    package var id: UInt16
    package var flags: UInt16
    package var questions: [DNSQuestion]
    package var answers: [DNSRecord]
    package var authorities: [DNSRecord]
    package var additionals: [DNSRecord]

    package init(id: UInt16 = 0, flags: UInt16 = 0, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
                authorities: [DNSRecord] = [], additionals: [DNSRecord] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    package var isResponse: Bool { flags & 0x8000 != 0 }
    /// The TC bit: the sender cut the answer short.
    package var isTruncated: Bool { flags & 0x0200 != 0 }

    /// Every record in every section.
    package var allRecords: [DNSRecord] { answers + authorities + additionals }
}

/// TXT records as key/value pairs: keys case-insensitive, values decoded as UTF-8 with
/// non-breaking spaces made plain; keys without `=` get an empty value; empty or non-ASCII keys
/// are skipped.
package enum TXTProperties {
    package static func decode(_ strings: [[UInt8]]) -> [String: String] {
        var out: [String: String] = [:]
        for s in strings {
            let (keyBytes, valueBytes): (ArraySlice<UInt8>, ArraySlice<UInt8>)
            if let eq = s.firstIndex(of: UInt8(ascii: "=")) {
                keyBytes = s[..<eq]
                valueBytes = s[(eq + 1)...]
            } else {
                keyBytes = s[...]
                valueBytes = []
            }
            guard !keyBytes.isEmpty, keyBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { continue }
            let key = String(decoding: keyBytes, as: UTF8.self)
            if out.keys.contains(where: { $0.lowercased() == key.lowercased() }) { continue }
            out[key] = decodeText(Array(valueBytes))
        }
        return out
    }

    package static func encode(_ properties: [String: String]) -> [[UInt8]] {
        properties.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)".utf8) }
    }

    static func decodeText(_ bytes: [UInt8]) -> String {
        var cleaned: [UInt8] = []
        cleaned.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + 1 < bytes.count, (bytes[i] == 0xC2 || bytes[i] == 0x00), bytes[i + 1] == 0xA0 {
                cleaned.append(0x20)
                i += 2
            } else {
                cleaned.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: cleaned, as: UTF8.self)
    }
}
