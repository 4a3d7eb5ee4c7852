import ATVCore

/// Incremental RTSP/HTTP-1.x message parser. Feed bytes with `append`, then pull complete
/// messages; `nil` means "need more bytes". Never traps on malformed input: every problem is an
/// `ATVError.protocolError`, after which the parser should be discarded.
public struct RTSPParser: Sendable {
    public static let defaultMaxHeaderBytes = 64 * 1024
    public static let defaultMaxBodyBytes = 16 * 1024 * 1024

    public let maxHeaderBytes: Int
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where to resume scanning for the end of the header block (avoids quadratic rescans).
    private var scanIndex = 0

    public init(maxHeaderBytes: Int = RTSPParser.defaultMaxHeaderBytes,
                maxBodyBytes: Int = RTSPParser.defaultMaxBodyBytes) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Bytes received but not yet consumed as a message.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            scanIndex -= readIndex
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete request, or nil if more bytes are needed.
    public mutating func nextRequest() throws -> RTSPRequest? {
        guard let message = try nextMessage() else { return nil }
        guard case .request(let request) = message else {
            throw ATVError.protocolError("expected an RTSP request, got a response")
        }
        return request
    }

    /// The next complete response, or nil if more bytes are needed.
    public mutating func nextResponse() throws -> RTSPResponse? {
        guard let message = try nextMessage() else { return nil }
        guard case .response(let response) = message else {
            throw ATVError.protocolError("expected an RTSP response, got a request")
        }
        return response
    }

    /// The next complete message of either kind (a start line beginning with `RTSP/` or `HTTP/`
    /// is a response), or nil if more bytes are needed.
    public mutating func nextMessage() throws -> RTSPMessage? {
        // Skip blank lines between messages (tolerated by RFC 2326 / 7230).
        while readIndex < buffer.count, buffer[readIndex] == 0x0D || buffer[readIndex] == 0x0A {
            readIndex += 1
        }
        if scanIndex < readIndex { scanIndex = readIndex }
        guard let (headerEnd, bodyStart) = findHeaderEnd() else {
            if buffer.count - readIndex > maxHeaderBytes {
                throw ATVError.protocolError("RTSP header block larger than \(maxHeaderBytes) bytes")
            }
            return nil
        }
        if headerEnd - readIndex > maxHeaderBytes {
            throw ATVError.protocolError("RTSP header block larger than \(maxHeaderBytes) bytes")
        }
        let lines = Self.splitLines(buffer[readIndex..<headerEnd])
        guard let startLine = lines.first, !startLine.isEmpty else {
            throw ATVError.protocolError("empty RTSP start line")
        }
        var headers = RTSPHeaders()
        for line in lines.dropFirst() {
            if line.isEmpty { continue }
            if (line.first == " " || line.first == "\t"), headers.count > 0 {
                // Obsolete line folding: append to the previous value.
                let last = headers.fields[headers.count - 1]
                headers.set(last.name, last.value + " " + line.trimmingSpaces)
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw ATVError.protocolError("malformed RTSP header line \"\(line.prefix(60))\"")
            }
            let name = String(line[..<colon]).trimmingSpaces
            guard !name.isEmpty, !name.contains(" ") else {
                throw ATVError.protocolError("malformed RTSP header name \"\(name.prefix(60))\"")
            }
            headers.add(name, String(line[line.index(after: colon)...]).trimmingSpaces)
        }
        var bodyLength = 0
        if let raw = headers["Content-Length"] {
            guard let n = Int(raw.trimmingSpaces), n >= 0 else {
                throw ATVError.protocolError("invalid Content-Length \"\(raw.prefix(40))\"")
            }
            guard n <= maxBodyBytes else {
                throw ATVError.protocolError("RTSP body of \(n) bytes exceeds the \(maxBodyBytes)-byte limit")
            }
            bodyLength = n
        }
        guard buffer.count - bodyStart >= bodyLength else { return nil }
        let body = Array(buffer[bodyStart..<(bodyStart + bodyLength)])
        let message = try Self.makeMessage(startLine: startLine, headers: headers, body: body)
        readIndex = bodyStart + bodyLength
        scanIndex = readIndex
        return message
    }

    private static func makeMessage(startLine: String, headers: RTSPHeaders, body: [UInt8]) throws -> RTSPMessage {
        let parts = startLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2 else {
            throw ATVError.protocolError("malformed RTSP start line \"\(startLine.prefix(80))\"")
        }
        if isVersion(parts[0]) {
            guard let status = Int(parts[1]), (100...999).contains(status) else {
                throw ATVError.protocolError("malformed RTSP status line \"\(startLine.prefix(80))\"")
            }
            let reason = parts.count > 2 ? String(parts[2]) : ""
            return .response(RTSPResponse(version: String(parts[0]), status: status, reason: reason,
                                          headers: headers, body: body))
        }
        guard parts.count == 3, isVersion(parts[2]) else {
            throw ATVError.protocolError("malformed RTSP request line \"\(startLine.prefix(80))\"")
        }
        let method = String(parts[0])
        guard method.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ATVError.protocolError("malformed RTSP method")
        }
        return .request(RTSPRequest(method: method, uri: String(parts[1]), version: String(parts[2]),
                                    headers: headers, body: body))
    }

    private static func isVersion(_ s: Substring) -> Bool {
        (s.hasPrefix("RTSP/") || s.hasPrefix("HTTP/")) && s.count <= 16
    }

    /// Finds the blank line ending the header block: returns (end of header text, body start).
    private mutating func findHeaderEnd() -> (Int, Int)? {
        var i = scanIndex
        let end = buffer.count
        while i < end {
            if buffer[i] == 0x0A {
                // "\n\n" or "\n\r\n"
                if i + 1 < end, buffer[i + 1] == 0x0A { return (i, i + 2) }
                if i + 2 < end, buffer[i + 1] == 0x0D, buffer[i + 2] == 0x0A { return (i, i + 3) }
                if i + 2 >= end { break }
            }
            i += 1
        }
        // Resume a few bytes back next time so a terminator split across appends is found.
        scanIndex = max(readIndex, end - 3)
        return nil
    }

    private static func splitLines(_ bytes: ArraySlice<UInt8>) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == 0x0A {
                var lineEnd = i
                if lineEnd > start, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                lines.append(String(decoding: bytes[start..<lineEnd], as: UTF8.self))
                start = i + 1
            }
            i += 1
        }
        if start < bytes.endIndex {
            var lineEnd = bytes.endIndex
            if bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            lines.append(String(decoding: bytes[start..<lineEnd], as: UTF8.self))
        }
        return lines
    }
}
