// DMAP ("Remote" app) pairing. We act as a remote: the Apple TV finds our
// `_touch-remote._tcp` service, the user types the PIN there, and the Apple TV calls
// `GET /pair?pairingcode=<MD5 hex>&servicename=<…>`; we answer `cmpa{cmpg, cmnm, cmty}` if the code
// matches our GUID and PIN, else HTTP 500. Sans-I/O: `DMAPPairingHandler.handle` maps a request
// line to a reply.
import ATVCore
import Crypto

package enum DMAPPairing {
    /// The code the Apple TV sends: MD5(GUID ‖ each PIN digit followed by a NUL), upper-case hex.
    package static func pairingCode(guid: String, pin: String) -> String {
        var data = Array(guid.utf8)
        for c in pin.utf8 { data += [c, 0] }
        return Hex.encode(Array(Insecure.MD5.hash(data: data)), uppercase: true)
    }

    /// A random pairing GUID: 16 upper-case hex digits.
    package static func randomGUID() -> String { Hex.encode(randomBytes(8), uppercase: true) }

    /// PINs are 4 digits; shorter ones are zero-padded as pyatv does.
    package static func normalizePIN(_ pin: String) throws(ATVError) -> String {
        let p = pin.trimmingWhitespace()
        guard !p.isEmpty, p.count <= 4, p.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ATVError.invalidValue("a DMAP pairing PIN is 1 to 4 digits (got \"\(p)\")")
        }
        return String(repeating: "0", count: 4 - p.count) + p
    }

    /// The `_touch-remote._tcp` instance name: the IPv4 address as a 40-digit zero-padded decimal.
    package static func serviceInstanceName(ipv4: String) -> String? {
        let parts = ipv4.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 < 256 }) else { return nil }
        let n = parts.reduce(UInt32(0)) { $0 << 8 | $1 }
        let s = String(n)
        return String(repeating: "0", count: 40 - s.count) + s
    }

    /// TXT record of the `_touch-remote._tcp` service.
    package static func txtRecord(name: String, guid: String) -> [String: String] {
        ["DvNm": name, "RemV": "10000", "DvTy": "iPod", "RemN": "Remote", "txtvers": "1", "Pair": guid]
    }

    /// `cmpa{ cmpg(u64 GUID), cmnm(name), cmty("iPhone") }`.
    package static func responseBody(guid: String, name: String) -> [UInt8] {
        DMAPSerializer.serialize(.container("cmpa", [
            .uint64("cmpg", UInt64(guid, radix: 16) ?? 0), .string("cmnm", name), .string("cmty", "iPhone"),
        ]))
    }

    /// Split `/path?a=b&c=d` into the path and percent-decoded query items (never traps).
    package static func parseTarget(_ target: String) -> (path: String, query: [String: String]) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var q: [String: String] = [:]
        if parts.count == 2 {
            for item in parts[1].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                q[percentDecode(String(kv[0]))] = kv.count == 2 ? percentDecode(String(kv[1])) : ""
            }
        }
        return (String(parts.first ?? ""), q)
    }

    static func percentDecode(_ s: String) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let v = Hex.decode(String(decoding: b[i + 1 ... i + 2], as: UTF8.self)) {
                out += v; i += 3
            } else if b[i] == UInt8(ascii: "+") {
                out.append(0x20); i += 1
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Answers the Apple TV's pairing request. `pin == nil` accepts any code (as pyatv).
package struct DMAPPairingHandler: Sendable {
    package struct Reply: Sendable, Equatable {
        package var status: Int
        package var body: [UInt8]
        /// Set when the request paired: the Apple TV's `servicename`.
        package var pairedWith: String?
    }

    package let guid: String
    package let pin: String?
    package let name: String

    package init(guid: String = DMAPPairing.randomGUID(), pin: String?, name: String) throws(ATVError) {
        guard guid.count == 16, guid.allSatisfy(\.isHexDigit) else {
            throw ATVError.invalidValue("a DMAP pairing GUID is 16 hex digits")
        }
        self.guid = guid.uppercased()
        self.pin = try pin.map { p throws(ATVError) in try DMAPPairing.normalizePIN(p) }
        self.name = name
    }

    /// The credentials to store once paired: `0x` + GUID.
    package var credentials: ATVCredentials { .dmapPairingGUID("0x" + guid) }

    package func handle(method: String, target: String) -> Reply {
        let (path, query) = DMAPPairing.parseTarget(target)
        guard method == "GET", path == "/pair" else { return Reply(status: 404, body: [], pairedWith: nil) }
        guard let code = query["pairingcode"], let service = query["servicename"] else {
            return Reply(status: 500, body: [], pairedWith: nil)
        }
        if let pin {
            guard code.lowercased() == DMAPPairing.pairingCode(guid: guid, pin: pin).lowercased() else {
                return Reply(status: 500, body: [], pairedWith: nil)
            }
        }
        return Reply(status: 200, body: DMAPPairing.responseBody(guid: guid, name: name), pairedWith: service)
    }
}
