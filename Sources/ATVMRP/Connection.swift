// Controller side of an MRP connection over TCP: a thin SwiftNIO/actor shell around
// the sans-I/O `MRPChannel` (framing + encryption), `MRPHandshake` and the HAP state machines.
import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix

package actor MRPConnection {
    /// What the connection tells its owner. Both closures run on the connection's actor, in the
    /// order messages arrived, so an owner sees every message before a later reply resumes a caller.
    package struct Listener: Sendable {
        /// A message no request waited for (SET_STATE, VOLUME_DID_CHANGE, …).
        package var message: @Sendable (MRPProtocolMessage) -> Void
        /// The connection ended: nil when closed by us, the error when the device closed it or it broke.
        package var closed: @Sendable (ATVError?) -> Void
        package init(message: @escaping @Sendable (MRPProtocolMessage) -> Void = { _ in },
                    closed: @escaping @Sendable (ATVError?) -> Void = { _ in }) {
            self.message = message
            self.closed = closed
        }
    }

    package nonisolated let host: String
    package nonisolated let port: Int
    /// How messages travel: varint-framed on a TCP connection of its own, or in "sync"
    /// frames of an AirPlay 2 data stream (stream SETUP type 130; its HAP encryption is added by `configure`).
    package enum Transport: Sendable { case direct, airPlayDataStream }

    let channel: Channel
    var codec = MRPChannel()
    var stream: MRPDataStream?
    var listener: Listener
    nonisolated let incoming = Broadcaster<MRPProtocolMessage>(bufferingPolicy: .bufferingNewest(1024))
    var pending: [String: (token: Int, continuation: CheckedContinuation<MRPProtocolMessage, Error>)] = [:]
    var nextToken = 0
    var closedError: ATVError?
    var reader: Task<Void, Never>?
    var heartbeat: Task<Void, Never>?
    /// At debug level every message is logged as `mrp message in|out type=T protobuf=<hex>`,
    /// which `atv log` decodes.
    let logger = Logger(label: "atv.mrp")
    /// The device's DEVICE_INFO reply, once `start` or `pairSetup` sent ours.
    package private(set) var deviceInfo: MRPDeviceInfoMessage?
    package var isEncrypted: Bool { codec.isEncrypted }
    package var isOpen: Bool { closedError == nil }

    init(channel: Channel, host: String, port: Int, transport: Transport = .direct, listener: Listener) {
        self.channel = channel
        if transport == .airPlayDataStream { stream = MRPDataStream(role: .controller) }
        self.host = host
        self.port = port
        self.listener = listener
    }

    /// Open the TCP connection (nothing is sent yet).
    /// `configure` adds handlers below the MRP one (e.g. the data stream's HAP encryption).
    package static func connect(host: String, port: Int, timeout: Duration = .seconds(10), transport: Transport = .direct,
                               configure: (@Sendable (Channel) throws -> Void)? = nil,
                               listener: Listener = Listener()) async throws(ATVError) -> MRPConnection {
        let (stream, cont) = AsyncStream<[UInt8]?>.makeStream()
        let channel: Channel
        do {
            let ms = Int64(timeout.components.seconds) * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(max(ms, 1)))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try configure?(ch)
                        try ch.pipeline.syncOperations.addHandler(ByteForwarder(cont))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw ATVError.connecting("MRP at \(host):\(port)", error, timeout: timeout)
        }
        let c = MRPConnection(channel: channel, host: host, port: port, transport: transport, listener: listener)
        await c.startReading(stream)
        return c
    }

    package func setListener(_ l: Listener) { listener = l }

    /// Messages no request waited for, from now on, in arrival order; ends when the connection does.
    package nonisolated func messages() -> AsyncStream<MRPProtocolMessage> { incoming.subscribe() }

    func startReading(_ stream: AsyncStream<[UInt8]?>) {
        reader = Task { [weak self] in
            for await chunk in stream {
                guard let self else { return }
                guard let chunk else { break }
                if await !self.received(chunk) { return }
            }
            await self?.fail(ATVError.connectionLost("the device at \(self?.host ?? "?"):\(self?.port ?? 0) closed the MRP connection"))
        }
    }

    /// Decode and dispatch; false when the stream is unusable (the connection is closed then).
    func received(_ bytes: [UInt8]) -> Bool {
        let messages: [MRPProtocolMessage]
        do {
            if stream != nil {
                let (got, answers) = try stream!.receive(bytes)
                if !answers.isEmpty { channel.writeAndFlush(channel.allocator.buffer(bytes: answers), promise: nil) }
                messages = got
            } else {
                messages = try codec.receive(bytes)
            }
        } catch {
            fail(ATVError.protocolError("\(host):\(port) sent data that is not MRP (\(error.description))"))
            return false
        }
        for m in messages {
            log("in", m)
            let key = MRPCorrelation.key(m)
            if let p = pending.removeValue(forKey: key) {
                p.continuation.resume(returning: m)
            } else {
                listener.message(m)
                incoming.yield(m)
            }
        }
        return true
    }

    private func log(_ direction: String, _ message: MRPProtocolMessage) {
        guard logger.logLevel <= .debug, let bytes = try? MRPCodec.encode(message) else { return }
        logger.debug("mrp message \(direction) type=\(message.type) protobuf=\(Hex.encode(bytes))")
    }

    /// Ends the connection with `error` (e.g. the AirPlay session carrying it failed).
    package func abort(_ error: ATVError) { fail(error) }

    /// Fail everything once: waiting requests, the heartbeat, the listener; closes the socket.
    func fail(_ error: ATVError?) {
        guard closedError == nil else { return }
        closedError = error ?? ATVError.invalidState("the MRP connection was closed; connect again")
        let e = closedError!
        for (_, p) in pending { p.continuation.resume(throwing: e) }
        pending = [:]
        heartbeat?.cancel()
        heartbeat = nil
        channel.close(promise: nil)
        listener.closed(error)
        incoming.finish()
    }

    // MARK: Sending

    /// Send without waiting for a reply.
    package func send(_ message: MRPProtocolMessage) throws(ATVError) {
        if let closedError { throw closedError }
        let bytes = stream != nil ? try stream!.encode(message) : try codec.encode(message)
        log("out", message)
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    /// Send and wait for the reply with the same identifier (CRYPTO_PAIRING: the same type).
    package func sendAndReceive(_ message: MRPProtocolMessage, timeout: Duration = .seconds(MRPHandshake.replyTimeout)) async throws -> MRPProtocolMessage {
        if let closedError { throw closedError }
        var m = message
        let key = MRPCorrelation.prepare(&m, identifier: UUID().uuidString.uppercased())
        nextToken += 1
        let token = nextToken
        let what = "\(message.type)"
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<MRPProtocolMessage, Error>) in
            if let old = pending.removeValue(forKey: key) {
                old.continuation.resume(throwing: ATVError.invalidState("another \(what) request replaced this one"))
            }
            pending[key] = (token, c)
            do { try send(m) } catch {
                pending[key] = nil
                c.resume(throwing: error)
                return
            }
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expire(key, token: token, what: what, timeout: timeout)
            }
        }
    }

    func expire(_ key: String, token: Int, what: String, timeout: Duration) {
        guard let p = pending[key], p.token == token else { return }
        pending[key] = nil
        let partial = stream == nil ? codec.bufferedByteCount : 0
        if partial > 0 {
            // Something came, but never a whole message: most likely not an MRP port.
            p.continuation.resume(throwing: ATVError.protocolError("\(host):\(port) sent \(partial) bytes that do not make an MRP message within \(ATVError.seconds(timeout)) s (is that the MRP port?)"))
            return
        }
        p.continuation.resume(throwing: ATVError.timeout("\(host):\(port) did not answer \(what) within \(ATVError.seconds(timeout)) s"))
    }

    /// Writes bytes as they are, bypassing framing and encryption (for fuzz tests).
    package func writeRaw(_ bytes: [UInt8]) {
        guard closedError == nil else { return }
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    // MARK: Handshake and pairing

    /// The connection sequence: DEVICE_INFO, pair-verify + encryption when there are
    /// credentials, SET_CONNECTION_STATE, CLIENT_UPDATES_CONFIG, GET_KEYBOARD_SESSION.
    /// - Returns: the device's DEVICE_INFO.
    @discardableResult
    package func start(client: MRPMessages.ClientInfo, credentials: HAPCredentials?,
                      timeout: Duration = .seconds(MRPHandshake.replyTimeout)) async throws -> MRPDeviceInfoMessage {
        var info = client
        if let credentials { info.pairingID = String(decoding: credentials.clientID, as: UTF8.self) }
        for step in MRPHandshake.steps(info, hasCredentials: credentials != nil) {
            switch step {
            case .send(let m): try send(m)
            case .sendAndWait(let m):
                let reply = try await sendAndReceive(m, timeout: timeout)
                if m.type == .deviceInfo {
                    guard reply.hasMRPdeviceInfoMessage else {
                        throw ATVError.protocolError("the device answered DEVICE_INFO with \(reply.type)")
                    }
                    deviceInfo = reply.MRPdeviceInfoMessage
                    listener.message(reply)
                }
            case .pairVerify:
                guard let credentials else { continue }
                try await pairVerify(credentials, timeout: timeout)
            }
        }
        guard let deviceInfo else { throw ATVError.protocolError("the device sent no DEVICE_INFO") }
        return deviceInfo
    }

    func exchangePairing(_ tlv: [UInt8], m1: Bool = false, timeout: Duration) async throws -> [UInt8] {
        let reply = try await sendAndReceive(MRPMessages.cryptoPairing(tlv, isPairSetupM1: m1), timeout: timeout)
        guard reply.hasMRPcryptoPairingMessage else { throw ATVError.protocolError("pairing reply without CRYPTO_PAIRING data") }
        return Array(reply.MRPcryptoPairingMessage.pairingData)
    }

    /// HAP pair-verify over CRYPTO_PAIRING (TLV8 in `pairingData`), then every message is encrypted.
    package func pairVerify(_ credentials: HAPCredentials, timeout: Duration = .seconds(MRPHandshake.replyTimeout)) async throws {
        var v = HAPPairVerifyClient(credentials: credentials)
        var tlv = try await exchangePairing(try v.start(), timeout: timeout)
        while true {
            switch try v.handle(tlv) {
            case .send(let next): tlv = try await exchangePairing(next, timeout: timeout)
            case .verified(let shared):
                codec.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared))
                return
            }
        }
    }

    /// PIN pair-setup (HAP M1–M6) after DEVICE_INFO: returns credentials in pyatv's format. The device's
    /// SRP proof and M6 signature are verified; nothing is returned otherwise.
    package func pairSetup(pin: String, identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString.lowercased()),
                          name: String = "swift-atv", osBuild: String = "18M60",
                          timeout: Duration = .seconds(30)) async throws -> HAPCredentials {
        if deviceInfo == nil {
            let client = MRPMessages.ClientInfo(pairingID: String(decoding: identity.identifier, as: UTF8.self), name: name, osBuild: osBuild)
            let reply = try await sendAndReceive(MRPMessages.deviceInfo(client), timeout: .seconds(MRPHandshake.replyTimeout))
            if reply.hasMRPdeviceInfoMessage { deviceInfo = reply.MRPdeviceInfoMessage }
        }
        var setup = HAPPairSetupClient(pin: pin, identity: identity)
        var tlv = try await exchangePairing(try setup.start(), m1: true, timeout: timeout)
        while true {
            switch try setup.handle(tlv) {
            case .send(let next): tlv = try await exchangePairing(next, timeout: timeout)
            case .paired(let creds): return creds
            case .transient: throw ATVError.protocolError("MRP pair-setup ended as transient")
            }
        }
    }

    // MARK: Heartbeat and close

    /// GENERIC every `interval` seconds; one immediate retry; a second failure closes the connection.
    package func startHeartbeat(interval: Duration = .seconds(MRPHandshake.heartbeatInterval),
                               timeout: Duration = .seconds(MRPHandshake.replyTimeout)) {
        heartbeat?.cancel()
        heartbeat = Task { [weak self] in
            var failures = 0
            while !Task.isCancelled {
                if failures == 0 { try? await Task.sleep(for: interval) }
                guard !Task.isCancelled, let self else { return }
                do {
                    _ = try await self.sendAndReceive(MRPMessages.generic(), timeout: timeout)
                    failures = 0
                } catch {
                    failures += 1
                    if failures > 1 {
                        await self.fail(ATVError.connectionLost("the device stopped answering heartbeats"))
                        return
                    }
                }
            }
        }
    }

    /// Close the connection; waiting requests fail, later calls throw.
    package func close() async {
        fail(nil)
        reader?.cancel()
        try? await channel.closeFuture.get()
    }
}

/// An opened MRP tunnel (AirPlay 2 stream SETUP type 130): the data channel's address, the handlers it needs
/// (HAP encryption with the DataStream keys), and the session carrying it.
package struct MRPTunnelEndpoint: Sendable {
    package var host: String
    package var port: Int
    /// Adds the transport's handlers (called on the new channel's event loop).
    package var configure: @Sendable (Channel) throws -> Void
    /// Ends the carrying session (TEARDOWN, close).
    package var close: @Sendable () async -> Void
    /// Registers a handler for the carrying session failing (control connection lost, feedback unanswered).
    package var onFailure: @Sendable (@escaping @Sendable (ATVError) -> Void) -> Void

    package init(host: String, port: Int, configure: @escaping @Sendable (Channel) throws -> Void,
                close: @escaping @Sendable () async -> Void,
                onFailure: @escaping @Sendable (@escaping @Sendable (ATVError) -> Void) -> Void) {
        self.host = host
        self.port = port
        self.configure = configure
        self.close = close
        self.onFailure = onFailure
    }
}
