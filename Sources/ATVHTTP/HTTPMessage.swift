// ATVHTTP: the RTSP/HTTP-1.x message model, parser and serializer (`RTSPMessage`, `RTSPParser`,
// `RTSPSerializer`), the NIO client connections (`RTSPConnection`, `HTTPClientConnection`), the
// server end of a connection (`RTSPServerHandler`) and a small HTTP server on it (`HTTPServer`),
// shared by AirPlay audio and video, DMAP and the virtual devices.
//
// Client and server frame messages with the same `RTSPParser`, which reads devices the way pyatv
// does: an answer without Content-Length on a keep-alive connection has no body. HTTP requests
// and responses are the RTSP/HTTP model's.

/// An HTTP/1.1 request, as sent by `HTTPClientConnection` (which writes `HTTP/1.1` whatever
/// `version` says) or received by `HTTPServer` (with the version received): the RTSP/HTTP model.
package typealias HTTPRequestMessage = RTSPRequest

/// An HTTP/1.1 response as received by `HTTPClientConnection` (framed by `RTSPParser`).
public typealias HTTPResponseMessage = RTSPResponse

extension RTSPRequest {
    /// The path without the query.
    package var path: String { String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }

    /// Query parameters (last one wins; no percent-decoding beyond `+` → space is done).
    package var query: [String: String] {
        let parts = uri.split(separator: "?", maxSplits: 1)
        guard parts.count == 2 else { return [:] }
        var out: [String: String] = [:]
        for pair in parts[1].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0]).removingPercentEncodingSafely
            out[key] = kv.count > 1 ? String(kv[1]).removingPercentEncodingSafely : ""
        }
        return out
    }
}

/// A response produced by an `HTTPServer` handler.
package struct HTTPServerResponse: Sendable {
    package enum Body: Sendable, Equatable {
        case bytes([UInt8])
        /// `length` bytes of a file from `offset` (sent with sendfile). For HEAD, nothing is sent
        /// but Content-Length says `length`.
        case file(path: String, offset: Int, length: Int)
    }
    package var status: Int
    package var headers: RTSPHeaders
    package var body: Body
    /// Runs once the response has been written to the socket.
    package var afterSent: (@Sendable () -> Void)?

    package init(status: Int, headers: RTSPHeaders = [:], body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    package init(status: Int, headers: RTSPHeaders = [:], bytes: [UInt8]) {
        self.init(status: status, headers: headers, body: .bytes(bytes))
    }
}

extension String {
    /// Percent-decoding that never fails: invalid escapes are kept as they are.
    var removingPercentEncodingSafely: String {
        let plus = replacing("+", with: " ")
        var out: [UInt8] = []
        let bytes = Array(plus.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
}
