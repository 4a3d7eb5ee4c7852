// Minimal HTTP/1.1 for the pairing exchanges: a sans-I/O message parser plus thin blocking-socket
// shells (a keep-alive client and a small server) that run on their own threads, never on Swift's
// cooperative pool. Every wait has a timeout.
import ATVCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct HTTPMessage: Sendable, Equatable {
    /// "POST /pair-verify HTTP/1.1" or "HTTP/1.1 200 OK".
    public var startLine: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Status code of a response (nil for a request or a malformed status line).
    public var status: Int? {
        let p = startLine.split(separator: " ")
        return p.count >= 2 && p[0].hasPrefix("HTTP/") ? Int(p[1]) : nil
    }

    /// Method and target of a request.
    public var requestLine: (method: String, target: String)? {
        let p = startLine.split(separator: " ")
        return p.count == 3 && p[2].hasPrefix("HTTP/") ? (String(p[0]), String(p[1])) : nil
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.startLine == b.startLine && a.body == b.body && a.headers.map { "\($0.name):\($0.value)" } == b.headers.map { "\($0.name):\($0.value)" }
    }

    public func serialized() -> [UInt8] {
        var head = startLine + "\r\n"
        for h in headers { head += "\(h.name): \(h.value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}

/// Incremental HTTP/1.1 parser (Content-Length bodies only; no chunked encoding).
public struct HTTPMessageParser: Sendable {
    var buffer: [UInt8] = []
    public static let maxHeaderBytes = 16 * 1024
    public static let maxBodyBytes = 1 << 20

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) { buffer += bytes }

    /// The next complete message, nil if more bytes are needed.
    public mutating func next() throws(ATVError) -> HTTPMessage? {
        guard let end = Self.headerEnd(buffer) else {
            if buffer.count > Self.maxHeaderBytes { throw ATVError.protocolError("HTTP header longer than \(Self.maxHeaderBytes) bytes") }
            return nil
        }
        let lines = String(decoding: buffer[0 ..< end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let start = lines.first, !start.isEmpty else { throw ATVError.protocolError("empty HTTP start line") }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw ATVError.protocolError("malformed HTTP header line") }
            headers.append((String(line[..<colon]).trimmingWhitespace(), String(line[line.index(after: colon)...]).trimmingWhitespace()))
        }
        var length = 0
        if let cl = headers.first(where: { $0.name.lowercased() == "content-length" })?.value {
            guard let n = Int(cl), n >= 0, n <= Self.maxBodyBytes else { throw ATVError.protocolError("bad Content-Length \(cl)") }
            length = n
        }
        if headers.contains(where: { $0.name.lowercased() == "transfer-encoding" && $0.value.lowercased() != "identity" }) {
            throw ATVError.protocolError("chunked HTTP bodies are not supported here")
        }
        let bodyStart = end + 4
        guard buffer.count - bodyStart >= length else { return nil }
        let msg = HTTPMessage(startLine: start, headers: headers, body: Array(buffer[bodyStart ..< bodyStart + length]))
        buffer.removeFirst(bodyStart + length)
        return msg
    }

    static func headerEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0 ... b.count - 4 where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }
}

/// Run blocking work on a fresh thread and await it.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws(ATVError) -> T) async throws(ATVError) -> T {
    let r: Result<T, ATVError> = await withCheckedContinuation { cont in
        let t = Thread {
            let r: Result<T, ATVError>
            do throws(ATVError) { r = .success(try body()) } catch { r = .failure(error) }
            cont.resume(returning: r)
        }
        t.start()
    }
    return try r.get()
}

/// A blocking TCP socket with deadlines.
final class BlockingSocket: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    private var closed = false

    init(fd: Int32) { self.fd = fd }
    deinit { close() }

    func close() {
        lock.lock(); defer { lock.unlock() }
        if !closed { closed = true; _ = Glibc.close(fd) }
    }

    static func sockaddr4(_ host: String, _ port: Int) throws(ATVError) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { throw ATVError.invalidValue("\(host) is not an IPv4 address") }
        return a
    }

    static func connect(host: String, port: Int, timeout: Double) throws(ATVError) -> BlockingSocket {
        var addr = try sockaddr4(host, port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ATVError.connectionFailed("socket(): errno \(errno)") }
        let s = BlockingSocket(fd: fd)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            guard errno == EINPROGRESS else { throw ATVError.connectionFailed("\(host):\(port): \(String(cString: strerror(errno)))") }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { throw ATVError.timeout("connecting to \(host):\(port) (\(timeout) s)") }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { throw ATVError.connectionFailed("\(host):\(port): \(String(cString: strerror(err)))") }
        }
        _ = fcntl(fd, F_SETFL, flags)
        return s
    }

    func write(_ bytes: [UInt8], timeout: Double) throws(ATVError) {
        var off = 0
        while off < bytes.count {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { throw ATVError.timeout("sending (\(timeout) s)") }
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ATVError.connectionLost("send failed: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    /// Read until the parser yields a message.
    func readMessage(_ parser: inout HTTPMessageParser, timeout: Double) throws(ATVError) -> HTTPMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let m = try parser.next() { return m }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw ATVError.timeout("waiting for an HTTP message (\(timeout) s)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(max(1, left * 1000)))
            if r == 0 { continue }
            guard r > 0 else { throw ATVError.connectionLost("poll failed") }
            var buf = [UInt8](repeating: 0, count: 16384)
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return nil }
            guard n > 0 else { throw ATVError.connectionLost("recv failed: \(String(cString: strerror(errno)))") }
            parser.feed(Array(buf[0 ..< n]))
        }
    }
}

/// One keep-alive HTTP connection to a device (legacy pairing needs all steps on one connection).
public final class PairingHTTPClient: Sendable {
    let socket: BlockingSocket
    let host: String
    let port: Int
    public let timeout: Double

    init(socket: BlockingSocket, host: String, port: Int, timeout: Double) {
        self.socket = socket; self.host = host; self.port = port; self.timeout = timeout
    }

    public static func connect(host: String, port: Int, timeout: Double = 10) async throws(ATVError) -> PairingHTTPClient {
        let s = try await onThread { () throws(ATVError) in try BlockingSocket.connect(host: host, port: port, timeout: timeout) }
        return PairingHTTPClient(socket: s, host: host, port: port, timeout: timeout)
    }

    /// Send a request, return the response (status and body).
    public func send(_ request: PairingHTTPRequest) async throws(ATVError) -> (status: Int, body: [UInt8]) {
        var headers = [(name: "Host", value: "\(host):\(port)")] + request.headers
        headers.append(("Content-Length", String(request.body.count)))
        let msg = HTTPMessage(startLine: "\(request.method) \(request.path) HTTP/1.1", headers: headers, body: request.body)
        let (socket, timeout) = (self.socket, self.timeout)
        let path = request.path
        return try await onThread { () throws(ATVError) in
            try socket.write(msg.serialized(), timeout: timeout)
            var parser = HTTPMessageParser()
            guard let resp = try socket.readMessage(&parser, timeout: timeout) else {
                throw ATVError.connectionLost("the device closed the connection after \(path)")
            }
            guard let status = resp.status else { throw ATVError.protocolError("malformed HTTP status line from the device") }
            return (status, resp.body)
        }
    }

    public func close() { socket.close() }
}

/// A small threaded HTTP server (one thread per connection, keep-alive). For pairing endpoints
/// and test accessories; bind it to the address you mean (loopback in tests).
public final class PairingHTTPServer: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String?
        public var body: [UInt8]
        public init(status: Int, contentType: String? = nil, body: [UInt8] = []) {
            self.status = status; self.contentType = contentType; self.body = body
        }
    }

    let listener: BlockingSocket
    public let port: Int
    let handler: @Sendable (HTTPMessage) -> Response

    public static func start(host: String = "127.0.0.1", port: Int = 0,
                             handler: @escaping @Sendable (HTTPMessage) -> Response) throws(ATVError) -> PairingHTTPServer {
        var addr = try BlockingSocket.sockaddr4(host, port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ATVError.connectionFailed("socket(): errno \(errno)") }
        let s = BlockingSocket(fd: fd)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 16) == 0 else { throw ATVError.connectionFailed("cannot listen on \(host):\(port): \(String(cString: strerror(errno)))") }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let server = PairingHTTPServer(listener: s, port: Int(UInt16(bigEndian: bound.sin_port)), handler: handler)
        Thread { server.acceptLoop() }.start()
        return server
    }

    init(listener: BlockingSocket, port: Int, handler: @escaping @Sendable (HTTPMessage) -> Response) {
        self.listener = listener; self.port = port; self.handler = handler
    }

    public func stop() {
        shutdown(listener.fd, Int32(SHUT_RDWR))
        listener.close()
    }

    func acceptLoop() {
        while true {
            let c = accept(listener.fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                return
            }
            let conn = BlockingSocket(fd: c)
            let handler = self.handler
            Thread {
                var parser = HTTPMessageParser()
                while let req = try? conn.readMessage(&parser, timeout: 60), req.requestLine != nil {
                    let r = handler(req)
                    var headers: [(name: String, value: String)] = [("Content-Length", String(r.body.count))]
                    if let ct = r.contentType { headers.append(("Content-Type", ct)) }
                    let msg = HTTPMessage(startLine: "HTTP/1.1 \(r.status) \(r.status == 200 ? "OK" : "Error")", headers: headers, body: r.body)
                    guard (try? conn.write(msg.serialized(), timeout: 10)) != nil else { break }
                }
                conn.close()
            }.start()
        }
    }
}
