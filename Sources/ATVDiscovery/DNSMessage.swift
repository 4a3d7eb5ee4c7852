import ATVCore

/// DNS record types swift-atv reads (others are kept as raw data).
public struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let a = DNSType(rawValue: 1)
    public static let ptr = DNSType(rawValue: 12)
    public static let txt = DNSType(rawValue: 16)
    public static let aaaa = DNSType(rawValue: 28)
    public static let srv = DNSType(rawValue: 33)
    public static let nsec = DNSType(rawValue: 47)
    public static let any = DNSType(rawValue: 255)
    public var description: String {
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
public struct DNSQuestion: Hashable, Sendable {
    public var name: String
    public var type: DNSType
    public var unicastResponse: Bool
    public init(name: String, type: DNSType, unicastResponse: Bool = false) {
        self.name = name
        self.type = type
        self.unicastResponse = unicastResponse
    }
}

/// Decoded record data.
public enum DNSRecordData: Hashable, Sendable {
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

public struct DNSRecord: Hashable, Sendable {
    public var name: String
    public var type: DNSType
    /// The class without the cache-flush bit.
    public var recordClass: UInt16
    public var cacheFlush: Bool
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: String, type: DNSType, recordClass: UInt16 = 1, cacheFlush: Bool = false, ttl: UInt32 = 120,
                data: DNSRecordData) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
        self.cacheFlush = cacheFlush
        self.ttl = ttl
        self.data = data
    }
}

public struct DNSMessage: Hashable, Sendable {
    public var id: UInt16
    public var flags: UInt16
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    public init(id: UInt16 = 0, flags: UInt16 = 0, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
                authorities: [DNSRecord] = [], additionals: [DNSRecord] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    public var isResponse: Bool { flags & 0x8000 != 0 }
    /// The TC bit: the sender cut the answer short.
    public var isTruncated: Bool { flags & 0x0200 != 0 }

    /// Every record in every section.
    public var allRecords: [DNSRecord] { answers + authorities + additionals }
}

/// TXT records as key/value pairs: keys case-insensitive, values decoded as UTF-8 with
/// non-breaking spaces made plain; keys without `=` get an empty value; empty or non-ASCII keys
/// are skipped.
public enum TXTProperties {
    public static func decode(_ strings: [[UInt8]]) -> [String: String] {
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

    public static func encode(_ properties: [String: String]) -> [[UInt8]] {
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
