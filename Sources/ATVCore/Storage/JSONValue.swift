import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Any JSON value. Used to carry keys of a settings file that this version does not know, so that
/// writing the file back does not lose them.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// A coding key made from any string: lets settings types read and write unknown keys.
struct AnyKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension KeyedDecodingContainer where Key == AnyKey {
    /// Every key not in `known`, with its value (unknown keys are kept, never interpreted).
    func extras(excluding known: Set<String>) throws -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for k in allKeys where !known.contains(k.stringValue) {
            out[k.stringValue] = try decode(JSONValue.self, forKey: k)
        }
        return out
    }

    func string(_ key: String) throws -> String? {
        try decodeIfPresent(String.self, forKey: AnyKey(key))
    }

    /// An integer given as a JSON number or a numeric string (pydantic accepts both).
    func lenientInt(_ key: String) throws -> Int? {
        let k = AnyKey(key)
        guard contains(k), try !decodeNil(forKey: k) else { return nil }
        if let i = try? decode(Int.self, forKey: k) { return i }
        if let s = try? decode(String.self, forKey: k), let i = Int(s) { return i }
        throw DecodingError.typeMismatch(Int.self, .init(codingPath: codingPath + [k],
                                                          debugDescription: "\(key) must be an integer"))
    }
}

extension KeyedEncodingContainer where Key == AnyKey {
    mutating func encodeExtras(_ extras: [String: JSONValue]) throws {
        for (k, v) in extras { try encode(v, forKey: AnyKey(k)) }
    }

    /// Writes the value unless it is nil or equal to the default (pydantic's `exclude_defaults`).
    mutating func put<T: Encodable & Equatable>(_ value: T?, _ key: String, default def: T? = nil) throws {
        guard let value, value != def else { return }
        try encode(value, forKey: AnyKey(key))
    }
}
