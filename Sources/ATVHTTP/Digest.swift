import ATVCore
import Crypto

/// A `WWW-Authenticate: Digest realm="…", nonce="…"` challenge.
package struct RTSPDigestChallenge: Sendable, Equatable {
    package var realm: String
    package var nonce: String

    package init(realm: String, nonce: String) {
        self.realm = realm
        self.nonce = nonce
    }

    /// Parses a `WWW-Authenticate` header value; throws if it is not a Digest challenge with realm and nonce.
    package init(header: String) throws {
        let trimmed = header.trimmingSpaces
        guard trimmed.lowercased().hasPrefix("digest") else {
            throw ATVError.protocolError("unsupported authentication scheme \"\(trimmed.prefix(40))\"")
        }
        let params = RTSPDigest.parseParameters(String(trimmed.dropFirst(6)))
        guard let realm = params["realm"], let nonce = params["nonce"] else {
            throw ATVError.protocolError("Digest challenge without realm or nonce")
        }
        self.realm = realm
        self.nonce = nonce
    }

    /// The header value a receiver sends.
    package var headerValue: String { "Digest realm=\"\(realm)\", nonce=\"\(nonce)\"" }
}

/// RTSP Digest authentication (RFC 2069 style, as AirPlay 1 receivers use it).
package enum RTSPDigest {
    package static func md5Hex(_ s: String) -> String {
        Insecure.MD5.hash(data: Array(s.utf8)).map { hex2($0) }.joined()
    }

    /// `MD5(MD5(user:realm:pwd):nonce:MD5(method:uri))`, lowercase hex.
    package static func response(username: String, password: String, realm: String, nonce: String,
                                method: String, uri: String) -> String {
        let ha1 = md5Hex("\(username):\(realm):\(password)")
        let ha2 = md5Hex("\(method):\(uri)")
        return md5Hex("\(ha1):\(nonce):\(ha2)")
    }

    /// The `Authorization` header value for a request.
    package static func authorization(username: String, password: String, challenge: RTSPDigestChallenge,
                                     method: String, uri: String) -> String {
        let r = response(username: username, password: password, realm: challenge.realm,
                         nonce: challenge.nonce, method: method, uri: uri)
        return "Digest username=\"\(username)\", realm=\"\(challenge.realm)\", nonce=\"\(challenge.nonce)\", uri=\"\(uri)\", response=\"\(r)\""
    }

    /// Receiver side: checks an `Authorization` header against the password (any username).
    package static func verify(authorization header: String, password: String, challenge: RTSPDigestChallenge,
                              method: String) -> Bool {
        let trimmed = header.trimmingSpaces
        guard trimmed.lowercased().hasPrefix("digest") else { return false }
        let p = parseParameters(String(trimmed.dropFirst(6)))
        guard let user = p["username"], let uri = p["uri"], let resp = p["response"],
              p["realm"] == challenge.realm, p["nonce"] == challenge.nonce else { return false }
        let expected = response(username: user, password: password, realm: challenge.realm,
                                nonce: challenge.nonce, method: method, uri: uri)
        return expected == resp.lowercased()
    }

    /// Parses `key="value", key=value, …` (quoted values may contain commas).
    package static func parseParameters(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        var chars = Substring(s)
        while true {
            while let c = chars.first, c == " " || c == "," || c == "\t" { chars = chars.dropFirst() }
            guard let eq = chars.firstIndex(of: "=") else { break }
            let key = String(chars[..<eq]).trimmingSpaces.lowercased()
            chars = chars[chars.index(after: eq)...]
            var value = ""
            if chars.first == "\"" {
                chars = chars.dropFirst()
                var escaped = false
                while let c = chars.first {
                    chars = chars.dropFirst()
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { break }
                    value.append(c)
                }
            } else {
                let end = chars.firstIndex(of: ",") ?? chars.endIndex
                value = String(chars[..<end]).trimmingSpaces
                chars = chars[end...]
            }
            if !key.isEmpty { out[key] = value }
        }
        return out
    }
}

/// Two lowercase hex digits.
package func hex2(_ v: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(v >> 4)], digits[Int(v & 0x0F)]])
}
