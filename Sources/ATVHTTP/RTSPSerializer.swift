/// Serializes RTSP/HTTP-1.x messages: CRLF line endings, `Content-Length` set from the body
/// (any stale value is replaced; absent for an empty body).
package enum RTSPSerializer {
    package static func serialize(_ request: RTSPRequest) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + request.body.count)
        append("\(request.method) \(request.uri) \(request.version)\r\n", to: &out)
        appendHeadersAndBody(request.headers, request.body, to: &out)
        return out
    }

    package static func serialize(_ response: RTSPResponse) -> [UInt8] {
        var out = serializeHead(response, contentLength: response.body.isEmpty ? nil : response.body.count,
                                reserving: response.body.count)
        out.append(contentsOf: response.body)
        return out
    }

    /// The status line and headers of `response`, ending with the blank line, with
    /// `Content-Length: contentLength` (none when nil) in place of any it has; its body is not
    /// written (a server sends it after, from memory or a file, or not at all for HEAD).
    package static func serializeHead(_ response: RTSPResponse, contentLength: Int?, reserving extra: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + extra)
        append("\(response.version) \(response.status) \(response.reason)\r\n", to: &out)
        var headers = response.headers
        headers.remove("Content-Length")
        if let contentLength { headers.add("Content-Length", String(contentLength)) }
        appendHeaders(headers, to: &out)
        return out
    }

    package static func serialize(_ message: RTSPMessage) -> [UInt8] {
        switch message {
        case .request(let r): serialize(r)
        case .response(let r): serialize(r)
        }
    }

    private static func appendHeadersAndBody(_ headers: RTSPHeaders, _ body: [UInt8], to out: inout [UInt8]) {
        var headers = headers
        headers.remove("Content-Length")
        if !body.isEmpty { headers.add("Content-Length", String(body.count)) }
        appendHeaders(headers, to: &out)
        out.append(contentsOf: body)
    }

    private static func appendHeaders(_ headers: RTSPHeaders, to out: inout [UInt8]) {
        for field in headers {
            // Header values must not smuggle line breaks.
            let value = field.value.replacingLineBreaks()
            append("\(field.name): \(value)\r\n", to: &out)
        }
        append("\r\n", to: &out)
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }
}

extension RTSPRequest {
    /// The wire form of this request.
    package var serialized: [UInt8] { RTSPSerializer.serialize(self) }
}

extension RTSPResponse {
    /// The wire form of this response.
    package var serialized: [UInt8] { RTSPSerializer.serialize(self) }
}

extension String {
    fileprivate func replacingLineBreaks() -> String {
        guard utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return self }
        return String(map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 })
    }
}
