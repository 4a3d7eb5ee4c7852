import ATVCore

/// RTSP/HTTP header fields: order-preserving, case-insensitive lookup.
public struct RTSPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public struct Field: Sendable, Equatable {
        package var name: String
        package var value: String
        package init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    package private(set) var fields: [Field]

    public init() { fields = [] }

    package init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    package var count: Int { fields.count }
    package var isEmpty: Bool { fields.isEmpty }

    /// The first value for `name` (case-insensitive). Setting replaces every field of that name
    /// (in place of the first one), `nil` removes them.
    package subscript(name: String) -> String? {
        get { fields.first { Self.same($0.name, name) }?.value }
        set {
            if let newValue { set(name, newValue) } else { remove(name) }
        }
    }

    /// All values for `name`, in order.
    package func values(for name: String) -> [String] {
        fields.filter { Self.same($0.name, name) }.map(\.value)
    }

    package func contains(_ name: String) -> Bool { fields.contains { Self.same($0.name, name) } }

    /// Appends a field (keeps existing ones of the same name).
    package mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces the first field named `name` and drops the others; appends if absent.
    package mutating func set(_ name: String, _ value: String) {
        if let index = fields.firstIndex(where: { Self.same($0.name, name) }) {
            fields[index].value = value
            var i = fields.count - 1
            while i > index {
                if Self.same(fields[i].name, name) { fields.remove(at: i) }
                i -= 1
            }
        } else {
            fields.append(Field(name: name, value: value))
        }
    }

    package mutating func remove(_ name: String) {
        fields.removeAll { Self.same($0.name, name) }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    public var description: String { fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") }

    /// The `CSeq` header as an integer.
    package var cseq: Int? { self["CSeq"].flatMap { Int($0.trimmingSpaces) } }

    /// The `Content-Length` header as an integer (nil if absent or not a number).
    package var contentLength: Int? { self["Content-Length"].flatMap { Int($0.trimmingSpaces) } }

    static func same(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a.lowercased() == b.lowercased()
    }
}

/// An RTSP (or HTTP/1.1, for `POST /feedback`-style requests) request.
public struct RTSPRequest: Sendable, Equatable {
    package var method: String
    package var uri: String
    package var version: String
    package var headers: RTSPHeaders
    package var body: [UInt8]

    package init(method: String, uri: String, version: String = "RTSP/1.0",
                headers: RTSPHeaders = RTSPHeaders(), body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers
        self.body = body
    }

    package var cseq: Int? { headers.cseq }
    /// The body as UTF-8 text (lossy).
    package var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// An RTSP (or HTTP/1.1) response.
public struct RTSPResponse: Sendable, Equatable {
    package var version: String
    package var status: Int
    package var reason: String
    package var headers: RTSPHeaders
    package var body: [UInt8]

    package init(version: String = "RTSP/1.0", status: Int = 200, reason: String? = nil,
                headers: RTSPHeaders = RTSPHeaders(), body: [UInt8] = []) {
        self.version = version
        self.status = status
        self.reason = reason ?? RTSPResponse.defaultReason(status)
        self.headers = headers
        self.body = body
    }

    package var cseq: Int? { headers.cseq }
    package var bodyText: String { String(decoding: body, as: UTF8.self) }
    package var isSuccess: Bool { (200..<300).contains(status) }

    /// The standard reason phrase for the statuses RTSP and HTTP peers of AirPlay use.
    package static func defaultReason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 206: "Partial Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 416: "Range Not Satisfiable"
        case 451: "Parameter Not Understood"
        case 453: "Not Enough Bandwidth"
        case 454: "Session Not Found"
        case 455: "Method Not Valid in This State"
        case 470: "Connection Authorization Required"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Status \(status)"
        }
    }
}

/// Either kind of message, for a peer that may receive both.
package enum RTSPMessage: Sendable, Equatable {
    case request(RTSPRequest)
    case response(RTSPResponse)
}

extension String {
    package var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}

/// The `Transport` header of SETUP (`RTP/AVP/UDP;unicast;mode=record;control_port=…;timing_port=…`).
package struct RTSPTransport: Sendable, Equatable {
    /// The first element, e.g. `RTP/AVP/UDP`.
    package var profile: String
    /// Parameters in order; flags (no `=`) have an empty value.
    package var parameters: [(String, String)] {
        get { storage.map { ($0.name, $0.value) } }
        set { storage = newValue.map { RTSPHeaders.Field(name: $0.0, value: $0.1) } }
    }
    private var storage: [RTSPHeaders.Field]

    package init(profile: String = "RTP/AVP/UDP", parameters: [(String, String)] = []) {
        self.profile = profile
        storage = parameters.map { RTSPHeaders.Field(name: $0.0, value: $0.1) }
    }

    package init(parsing value: String) {
        let parts = value.split(separator: ";").map { String($0).trimmingSpaces }
        profile = parts.first ?? ""
        storage = parts.dropFirst().map { part in
            if let eq = part.firstIndex(of: "=") {
                return RTSPHeaders.Field(name: String(part[..<eq]), value: String(part[part.index(after: eq)...]))
            }
            return RTSPHeaders.Field(name: part, value: "")
        }
    }

    package subscript(name: String) -> String? {
        get { storage.first { RTSPHeaders.same($0.name, name) }?.value }
        set {
            if let i = storage.firstIndex(where: { RTSPHeaders.same($0.name, name) }) {
                if let newValue { storage[i].value = newValue } else { storage.remove(at: i) }
            } else if let newValue {
                storage.append(RTSPHeaders.Field(name: name, value: newValue))
            }
        }
    }

    /// An integer parameter such as `server_port` (the first number of a `a-b` range).
    package func port(_ name: String) -> Int? {
        guard let v = self[name] else { return nil }
        let first = v.split(separator: "-").first.map(String.init) ?? v
        guard let p = Int(first), (1...65535).contains(p) else { return nil }
        return p
    }

    package var headerValue: String {
        ([profile] + storage.map { $0.value.isEmpty ? $0.name : "\($0.name)=\($0.value)" }).joined(separator: ";")
    }

    package static func == (a: RTSPTransport, b: RTSPTransport) -> Bool {
        a.profile == b.profile && a.storage == b.storage
    }
}
