import ATVCore
import NIOCore
import NIOPosix
import Synchronization

/// A small HTTP/1.1 server: each request (head + whole body, capped) goes to an async handler,
/// responses are written in request order, file bodies are sent with `FileRegion` (sendfile).
/// Framing is ATVHTTP's own (`RTSPServerHandler`: `RTSPParser` and `RTSPSerializer`, the same
/// the clients and the virtual devices use). Keep-alive as HTTP/1.1 says (HTTP/1.0 only with
/// `Connection: keep-alive`). Used to serve local files to an Apple TV, for DMAP pairing and by
/// the virtual devices.
package final class HTTPServer: Sendable {
    package struct Request: Sendable {
        package var message: HTTPRequestMessage
        /// The client's IP address.
        package var remoteAddress: String?
        /// The address the client connected to.
        package var localAddress: String?
        /// Identifies the TCP connection (unique per server run).
        package var connection: Int
    }
    package typealias Handler = @Sendable (Request) async -> HTTPServerResponse

    private let channel: Channel
    private let registry: ConnectionRegistry
    package let host: String
    package let port: Int

    private init(channel: Channel, host: String, registry: ConnectionRegistry) {
        self.channel = channel
        self.host = host
        self.registry = registry
        self.port = channel.localAddress?.port ?? 0
    }

    /// Listens on `host:port` (0 = any free port). `maxRequestBody` caps accepted bodies (413 beyond).
    /// `onClose` is called with a connection's id when it closes.
    package static func start(host: String, port: Int = 0, maxRequestBody: Int = 1 << 20,
                             onClose: (@Sendable (Int) -> Void)? = nil,
                             handler: @escaping Handler) async throws -> HTTPServer {
        let registry = ConnectionRegistry()
        let channel = try await TCPListener.bind(host: host, port: port) { channel, pipeline in
            let id = registry.add(channel)
            let remote = channel.remoteAddress?.ipAddress
            let local = channel.localAddress?.ipAddress
            let loop = channel.eventLoop
            try pipeline.addHandler(RTSPServerHandler(parser: RTSPParser(maxBodyBytes: maxRequestBody), errorVersion: "HTTP/1.1") { message in
                let request = Request(message: message, remoteAddress: remote, localAddress: local, connection: id)
                return loop.makeFutureWithTask { await handler(request) }.map { reply(to: message, $0) }
            })
            channel.closeFuture.whenComplete { _ in
                registry.remove(channel)
                onClose?(id)
            }
        }
        return HTTPServer(channel: channel, host: host, registry: registry)
    }

    /// Stops listening and closes open connections.
    package func stop() async {
        try? await channel.close()
        for c in registry.channels.withLock({ Array($0.values) }) { c.close(promise: nil) }
    }

    /// The base URL, e.g. "http://192.168.1.5:43121".
    package var baseURL: String {
        host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
    }
}

/// Open child channels of one server, closed when it stops.
final class ConnectionRegistry: Sendable {
    let channels = Mutex<[ObjectIdentifier: Channel]>([:])
    private let counter = Mutex(0)
    func add(_ c: Channel) -> Int {
        channels.withLock { $0[ObjectIdentifier(c)] = c }
        return counter.withLock { $0 += 1; return $0 }
    }
    func remove(_ c: Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(c)) } }
}

extension HTTPServer {
    /// The wire reply to `request`: the handler's status, headers and body, `Connection: close`
    /// when the connection ends with it, no body for HEAD.
    static func reply(to request: HTTPRequestMessage, _ response: HTTPServerResponse) -> RTSPServerReply {
        let version = request.version == "HTTP/1.0" ? "HTTP/1.0" : "HTTP/1.1"
        var head = RTSPResponse(version: version, status: response.status, headers: response.headers)
        let keepAlive = isKeepAlive(request)
        if !keepAlive { head.headers.set("Connection", "close") }
        var file: RTSPServerReply.FileBody?
        switch response.body {
        case .bytes(let b): head.body = b
        case .file(let path, let offset, let length): file = .init(path: path, offset: offset, length: length)
        }
        var out = RTSPServerReply(head, file: file, headOnly: request.method == "HEAD", close: !keepAlive)
        out.afterSent = response.afterSent
        return out
    }

    /// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
    static func isKeepAlive(_ request: HTTPRequestMessage) -> Bool {
        let tokens = request.headers.values(for: "Connection").flatMap { $0.lowercased().split(separator: ",") }
            .map { String($0).trimmingSpaces }
        if tokens.contains("close") { return false }
        if request.version == "HTTP/1.0" { return tokens.contains("keep-alive") }
        return true
    }
}
