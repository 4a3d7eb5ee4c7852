import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVHTTP
import NIOCore
import NIOPosix
import Synchronization

/// A small AirPlay 2 controller for tests: HTTP/RTSP requests over NIO with ATVRAOP's
/// `HAPEncryptionHandler` in the pipeline (plaintext until `enableEncryption`).
final class HomePodTestClient: Sendable {
    let channel: Channel
    private let inbox: Inbox
    private let parser = Mutex(RTSPParser())
    private let cseq = Mutex(0)

    private init(channel: Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// `keys`: encrypt from the first byte (the event channel, where the receiver speaks first).
    /// `from`: the local address to connect from (the receiver sees it as the RTSP peer).
    static func connect(port: Int, keys: ChannelKeys? = nil, from: String? = nil) async throws -> HomePodTestClient {
        let inbox = Inbox()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let from { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: from, port: 0)) }
        let channel = try await bootstrap
            .connectTimeout(.seconds(5))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    let crypto = HAPEncryptionHandler()
                    if let keys { crypto.enable(keys: keys) }
                    try ch.pipeline.syncOperations.addHandler(crypto)
                    try ch.pipeline.syncOperations.addHandler(Collector(inbox: inbox))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return HomePodTestClient(channel: channel, inbox: inbox)
    }

    func enableEncryption(_ keys: ChannelKeys) async throws {
        try await channel.enableHAPEncryption(keys).get()
    }

    /// Bytes straight to the socket, past the encryption handler.
    func writeRaw(_ bytes: [UInt8]) async throws {
        let ch = channel
        let buffer = ch.allocator.buffer(bytes: bytes)
        try await ch.eventLoop.flatSubmit {
            do {
                let ctx = try ch.pipeline.syncOperations.context(handlerType: HAPEncryptionHandler.self)
                return ctx.writeAndFlush(NIOAny(buffer))
            } catch {
                return ch.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

    func request(_ method: String, _ uri: String, version: String = "RTSP/1.0", headers: [(String, String)] = [],
                 body: [UInt8] = [], timeout: Duration = .seconds(5)) async throws -> RTSPResponse {
        var r = RTSPRequest(method: method, uri: uri, version: version)
        let n = cseq.withLock { c in c += 1; return c }
        r.headers.set("CSeq", String(n))
        r.headers.set("User-Agent", "AirPlay/550.10")
        for (k, v) in headers { r.headers.set(k, v) }
        r.body = body
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: r.serialized)).get()
        return try await nextResponse(timeout: timeout)
    }

    func post(_ path: String, hkp: Int, _ body: [UInt8]) async throws -> RTSPResponse {
        try await request("POST", path, version: "HTTP/1.1",
                          headers: [("X-Apple-HKP", String(hkp)), ("Content-Type", "application/octet-stream")], body: body)
    }

    func nextResponse(timeout: Duration) async throws -> RTSPResponse {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let r = try parser.withLock({ try $0.nextResponse() }) { return r }
            guard let bytes = try await nextBytes(until: deadline) else {
                throw ATVError.connectionLost("the virtual HomePod closed the connection")
            }
            parser.withLock { $0.append(bytes) }
        }
    }

    /// The next request the peer sends (the event channel's `POST /command`).
    func nextRequest(timeout: Duration) async throws -> RTSPRequest {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let r = try parser.withLock({ try $0.nextRequest() }) { return r }
            guard let bytes = try await nextBytes(until: deadline) else {
                throw ATVError.connectionLost("the virtual HomePod closed the connection")
            }
            parser.withLock { $0.append(bytes) }
        }
    }

    /// Answers a request the way pyatv's event channel does: 200, empty body, CSeq and Server copied.
    func answer(_ request: RTSPRequest) async throws {
        var r = RTSPResponse(version: request.version, status: 200)
        r.headers.set("Content-Length", "0")
        r.headers.set("Audio-Latency", "0")
        if let s = request.headers["Server"] { r.headers.set("Server", s) }
        if let c = request.headers["CSeq"] { r.headers.set("CSeq", c) }
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: r.serialized)).get()
    }

    /// True if the peer closes the connection before `timeout`.
    func waitForClose(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                guard try await nextBytes(until: deadline) != nil else { return true }
            } catch is ATVError {
                return false
            }
        }
    }

    private func nextBytes(until deadline: ContinuousClock.Instant) async throws -> [UInt8]? {
        while true {
            let (bytes, closed) = inbox.withLock { box -> ([UInt8], Bool) in
                let b = box.bytes
                box.bytes = []
                return (b, box.closed)
            }
            if !bytes.isEmpty { return bytes }
            if closed { return nil }
            if ContinuousClock.now >= deadline { throw ATVError.timeout("no answer from the virtual HomePod") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func close() async { try? await channel.close() }

    /// Transient pair-setup over `/pair-pin-start` + `/pair-setup` (M1–M4), then Control-key encryption.
    /// Returns the SRP session key.
    @discardableResult
    func pairTransient(pin: String = "3939") async throws -> [UInt8] {
        _ = try await post("/pair-pin-start", hkp: 4, [])
        var setup = HAPPairSetupClient.transient(pin: pin)
        var message = try setup.start()
        while true {
            let response = try await post("/pair-setup", hkp: 4, message)
            switch try setup.handle(response.body) {
            case .send(let next): message = next
            case .transient(let K):
                try await enableEncryption(HAPChannel.airPlayControl.keys(sharedSecret: K))
                return K
            case .paired: throw ATVError.protocolError("unexpected PIN pairing result")
            }
        }
    }

    /// PIN pair-setup (M1–M6): returns the credentials (no encryption follows).
    func pairPIN(_ pin: String) async throws -> HAPCredentials {
        var setup = HAPPairSetupClient(pin: pin)
        _ = try await post("/pair-pin-start", hkp: 3, [])
        var message = try setup.start()
        while true {
            let response = try await post("/pair-setup", hkp: 3, message)
            switch try setup.handle(response.body) {
            case .send(let next): message = next
            case .paired(let c): return c
            case .transient: throw ATVError.protocolError("unexpected transient result")
            }
        }
    }

    /// Pair-verify with stored credentials, then Control-key encryption. Returns the shared secret.
    @discardableResult
    func pairVerify(_ credentials: HAPCredentials) async throws -> [UInt8] {
        var verify = HAPPairVerifyClient(credentials: credentials)
        var message = try verify.start()
        while true {
            let response = try await post("/pair-verify", hkp: 3, message)
            switch try verify.handle(response.body) {
            case .send(let next): message = next
            case .verified(let secret):
                try await enableEncryption(HAPChannel.airPlayControl.keys(sharedSecret: secret))
                return secret
            }
        }
    }
}

struct Box: Sendable {
    var bytes: [UInt8] = []
    var closed = false
}
final class Inbox: Sendable {
    let box = Mutex(Box())
    func withLock<R>(_ body: (inout Box) -> R) -> R { box.withLock { body(&$0) } }
}

private final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let inbox: Inbox
    init(inbox: Inbox) { self.inbox = inbox }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Array(unwrapInboundIn(data).readableBytesView)
        inbox.withLock { $0.bytes += bytes }
    }
    func channelInactive(context: ChannelHandlerContext) {
        inbox.withLock { $0.closed = true }
        context.fireChannelInactive()
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
