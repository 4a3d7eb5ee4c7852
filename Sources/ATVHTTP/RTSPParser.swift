import ATVCore

/// Incremental RTSP/HTTP-1.x message parser. Feed bytes with `append`, then pull complete
/// messages; `nil` means "need more bytes". Never traps on malformed input: every problem is an
/// `ATVError.protocolError`, after which the parser should be discarded.
package struct RTSPParser: Sendable {
    package static let defaultMaxHeaderBytes = 64 * 1024
    package static let defaultMaxBodyBytes = 16 * 1024 * 1024

    package let maxHeaderBytes: Int
    package let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where to resume scanning for the end of the header block (avoids quadratic rescans).
    private var scanIndex = 0

    package init(maxHeaderBytes: Int = RTSPParser.defaultMaxHeaderBytes,
                maxBodyBytes: Int = RTSPParser.defaultMaxBodyBytes) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Set when the last error was a body over `maxBodyBytes` (a server answers 413, not 400).
    package private(set) var bodyLimitExceeded = false

    /// Bytes received but not yet consumed as a message.
    package var bufferedByteCount: Int { buffer.count - readIndex }

    package mutating func append(_ bytes: some Collection<UInt8>) {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            scanIndex -= readIndex
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// False once the buffered bytes cannot be the start of a response whose version begins with
    /// one of `versions`: garbage is known from its first bytes, without waiting for a header end.
    package func canBeginResponse(_ versions: [String] = ["RTSP/", "HTTP/"]) -> Bool {
        var i = readIndex
        while i < buffer.count, buffer[i] == 0x0D || buffer[i] == 0x0A { i += 1 }
        let head = buffer[i..<min(buffer.count, i + 5)]
        return versions.contains { v in
            let prefix = Array(v.utf8)
            return head.count <= prefix.count ? prefix.starts(with: head) : head.starts(with: prefix)
        }
    }

    /// The next complete request, or nil if more bytes are needed.
    package mutating func nextRequest() throws -> RTSPRequest? {
        guard let message = try nextMessage() else { return nil }
        guard case .request(let request) = message else {
            throw ATVError.protocolError("expected an RTSP request, got a response")
        }
        return request
    }

    /// The next complete response, or nil if more bytes are needed.
    package mutating func nextResponse() throws -> RTSPResponse? {
        guard let message = try nextMessage() else { return nil }
        guard case .response(let response) = message else {
            throw ATVError.protocolError("expected an RTSP response, got a request")
        }
        return response
    }

    /// The next complete message of either kind (a start line beginning with `RTSP/` or `HTTP/`
    /// is a response), or nil if more bytes are needed. `bodilessResponse`: a response to a HEAD
    /// request, which has no body whatever its headers say.
    package mutating func nextMessage(bodilessResponse: Bool = false) throws -> RTSPMessage? {
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
        let isResponse = Self.isResponseStartLine(startLine)
        let body: [UInt8]
        let end: Int
        if isResponse && bodilessResponse {
            (body, end) = ([], bodyStart)
        } else if let raw = headers["Transfer-Encoding"], raw.lowercased().trimmingSpaces != "identity" {
            guard raw.lowercased().contains("chunked") else {
                throw ATVError.protocolError("unsupported Transfer-Encoding \"\(raw.prefix(40))\"")
            }
            guard let (b, e) = try dechunk(from: bodyStart) else { return nil }
            (body, end) = (b, e)
        } else if let raw = headers["Content-Length"] {
            guard let n = Int(raw.trimmingSpaces), n >= 0 else {
                throw ATVError.protocolError("invalid Content-Length \"\(raw.prefix(40))\"")
            }
            guard n <= maxBodyBytes else {
                bodyLimitExceeded = true
                throw ATVError.protocolError("RTSP body of \(n) bytes exceeds the \(maxBodyBytes)-byte limit")
            }
            guard buffer.count - bodyStart >= n else { return nil }
            (body, end) = (Array(buffer[bodyStart..<(bodyStart + n)]), bodyStart + n)
        } else if isResponse, Self.readsUntilClose(startLine: startLine, headers: headers) {
            // An HTTP response without a length that closes the connection: its body is
            // everything until the close (`endOfStream()` delivers it).
            if buffer.count - bodyStart > maxBodyBytes {
                bodyLimitExceeded = true
                throw ATVError.protocolError("HTTP body exceeds the \(maxBodyBytes)-byte limit")
            }
            return nil
        } else {
            // No length on a keep-alive connection: no body (RTSP's rule; HTTP devices that answer
            // `200 OK` without Content-Length and keep the connection open mean the same; pyatv too).
            (body, end) = ([], bodyStart)
        }
        let message = try Self.makeMessage(startLine: startLine, headers: headers, body: body)
        readIndex = end
        scanIndex = readIndex
        return message
    }

    /// The connection ended: a pending HTTP response whose body runs until the close (no length,
    /// `Connection: close` or HTTP/1.0), with what arrived as its body; nil when none is pending.
    package mutating func endOfStream() throws -> RTSPMessage? {
        while readIndex < buffer.count, buffer[readIndex] == 0x0D || buffer[readIndex] == 0x0A { readIndex += 1 }
        if scanIndex < readIndex { scanIndex = readIndex }
        guard let (headerEnd, bodyStart) = findHeaderEnd() else { return nil }
        let lines = Self.splitLines(buffer[readIndex..<headerEnd])
        guard let startLine = lines.first, Self.isResponseStartLine(startLine) else { return nil }
        var headers = RTSPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(String(line[..<colon]).trimmingSpaces, String(line[line.index(after: colon)...]).trimmingSpaces)
        }
        guard headers["Content-Length"] == nil, headers["Transfer-Encoding"] == nil,
              Self.readsUntilClose(startLine: startLine, headers: headers) else { return nil }
        let body = Array(buffer[bodyStart...])
        let message = try Self.makeMessage(startLine: startLine, headers: headers, body: body)
        readIndex = buffer.count
        scanIndex = readIndex
        return message
    }

    private static func isResponseStartLine(_ line: String) -> Bool {
        guard let first = line.split(separator: " ", maxSplits: 1).first else { return false }
        return isVersion(first)
    }

    /// HTTP (not RTSP) responses without a length whose connection ends with them.
    private static func readsUntilClose(startLine: String, headers: RTSPHeaders) -> Bool {
        guard startLine.hasPrefix("HTTP/") else { return false }
        let parts = startLine.split(separator: " ", maxSplits: 2)
        if parts.count >= 2, let status = Int(parts[1]), status < 200 || status == 204 || status == 304 { return false }
        let connection = (headers["Connection"] ?? "").lowercased()
        if connection.contains("close") { return true }
        return startLine.hasPrefix("HTTP/1.0") && !connection.contains("keep-alive")
    }

    /// A chunked body starting at `start`: the body and where the message ends, nil when incomplete.
    private mutating func dechunk(from start: Int) throws -> ([UInt8], Int)? {
        var body: [UInt8] = []
        var i = start
        func line() -> (String, Int)? {
            var j = i
            while j < buffer.count, buffer[j] != 0x0A { j += 1 }
            guard j < buffer.count else { return nil }
            var lineEnd = j
            if lineEnd > i, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            return (String(decoding: buffer[i..<lineEnd], as: UTF8.self), j + 1)
        }
        while true {
            guard let (sizeLine, next) = line() else {
                if buffer.count - i > 1024 { throw ATVError.protocolError("malformed chunk size line") }
                return nil
            }
            let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingSpaces } ?? ""
            guard !hex.isEmpty, hex.count <= 8, let size = Int(hex, radix: 16) else {
                throw ATVError.protocolError("malformed chunk size \"\(sizeLine.prefix(20))\"")
            }
            guard body.count + size <= maxBodyBytes else {
                bodyLimitExceeded = true
                throw ATVError.protocolError("HTTP body exceeds the \(maxBodyBytes)-byte limit")
            }
            i = next
            if size == 0 {
                // Trailers until an empty line.
                while true {
                    guard let (trailer, after) = line() else { return nil }
                    i = after
                    if trailer.isEmpty { return (body, i) }
                }
            }
            guard buffer.count - i >= size + 1 else { return nil }
            body += buffer[i..<(i + size)]
            i += size
            guard let (rest, after) = line() else { return nil }
            guard rest.isEmpty else { throw ATVError.protocolError("malformed chunk (no line break after its data)") }
            i = after
        }
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
