// The AirPlay 2 / pairing front of `VirtualAppleTV`:
// one TCP port that speaks HTTP/1.1 and RTSP, HAP pairing (`/pair-pin-start`, PIN pair-setup
// HKP 3, transient pair-setup HKP 4, `/pair-verify`), then everything over HAP encryption with
// the Control keys: session SETUP (event channel), RECORD, `/feedback`, and the video endpoints
// (`/play`, `/playback-info`, `/scrub`, `/rate`, `/stop`) served by `AppleTVCore`.
import ATVAirPlay
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVHTTP
import NIOCore
import NIOPosix
import Synchronization

/// Pairing state and controllers shared by all connections of one virtual Apple TV.
final class AppleTVPairingShared: Sendable {
    let identity: HAPIdentity
    let pin: String
    let controllers = Mutex<[HAPPairedController]>([])
    /// Legacy AirPlay pairing (`/pair-setup-pin`, legacy `/pair-verify`); one exchange at a time.
    let legacy: Mutex<LegacyPairingAccessory?>
    private let nextID = Mutex(1_000_000)
    private let open = Mutex<[ObjectIdentifier: Channel]>([:])

    init(identity: HAPIdentity, pin: String) {
        self.identity = identity
        self.pin = pin
        legacy = Mutex(try? LegacyPairingAccessory(pin: pin))
    }

    func newConnectionID() -> Int { nextID.withLock { $0 += 1; return $0 } }
    func register(_ c: Channel) { open.withLock { $0[ObjectIdentifier(c)] = c } }
    func unregister(_ c: Channel) { _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(c)) } }
    func closeAll() { for c in open.withLock({ Array($0.values) }) { c.close(promise: nil) } }
}

/// What to send, and whether to switch to encryption after it.
struct AppleTVReply: Sendable {
    var response: RTSPResponse
    var enableKeys: ChannelKeys?
}

/// One connection: pairing, then requests over HAP encryption. Requests are handled one at a time
/// (the handler chains them), so the state needs no more than a lock.
final class AppleTVAirPlay2Connection: Sendable {
    private struct State {
        var pairSetup: HAPPairSetupServer
        var pairVerify: HAPPairVerifyServer?
        var secret: [UInt8]?
        /// Passed legacy verification (no encryption follows).
        var legacyVerified = false
        var eventServer: Channel?
        var timing: Channel?
        /// The MRP tunnel's data channel listener and its connections.
        var dataServer: Channel?
        var dataConnections: [Channel] = []
        var closed = false
    }
    let id: Int
    let core: AppleTVCore
    let shared: AppleTVPairingShared
    let channel: Channel
    private let state: Mutex<State>

    init(channel: Channel, core: AppleTVCore, shared: AppleTVPairingShared) {
        self.channel = channel
        self.core = core
        self.shared = shared
        self.id = shared.newConnectionID()
        state = Mutex(State(pairSetup: HAPPairSetupServer(identity: shared.identity, pin: shared.pin)))
        shared.register(channel)
    }

    var verified: Bool { state.withLock { $0.secret != nil } }

    /// The HTTP/RTSP server end of this connection: answers in request order, and encryption
    /// switched on right after the pairing answer that completes a handshake (that answer itself
    /// goes out in plaintext).
    func serverHandler(crypto: HAPEncryptionHandler) -> RTSPServerHandler {
        let crypto = NIOLoopBound(crypto, eventLoop: channel.eventLoop)
        let loop = channel.eventLoop
        let respond: RTSPServerHandler.Respond = { [self] request in
            loop.makeFutureWithTask { await self.handle(request) }.map { (reply: AppleTVReply) -> RTSPServerReply in
                var afterWrite: (@Sendable () -> Void)?
                if let keys = reply.enableKeys { afterWrite = { crypto.value.enable(keys: keys) } }
                return RTSPServerReply(reply.response, afterWrite: afterWrite)
            }
        }
        return RTSPServerHandler(parser: RTSPParser(maxBodyBytes: 4 * 1024 * 1024), errorVersion: "HTTP/1.1",
                                 onClose: { [self] in closed() }, respond: respond)
    }

    var authorized: Bool { state.withLock { $0.secret != nil || $0.legacyVerified } }

    private func response(_ status: Int, for r: RTSPRequest, reason: String? = nil) -> RTSPResponse {
        var out = RTSPResponse(version: r.version.hasPrefix("HTTP/") ? r.version : "RTSP/1.0", status: status, reason: reason)
        if let cseq = r.headers["CSeq"] { out.headers.set("CSeq", cseq) }
        out.headers.set("Server", "AirTunes/\(VirtualAppleTV.sourceVersion)")
        return out
    }

    func handle(_ request: RTSPRequest) async -> AppleTVReply {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let encrypted = verified
        var ok = response(200, for: request)
        switch (request.method, path) {
        case ("POST", "/pair-pin-start"):
            core.log("\(request.method) \(path)")
            _ = shared.legacy.withLock { $0?.handle(path: path, body: []) }  // a legacy pairing starts over
            return AppleTVReply(response: ok)
        case ("POST", "/pair-setup"):
            core.log("\(request.method) \(path)")
            ok.headers.set("Content-Type", "application/octet-stream")
            return pairSetup(request, ok)
        case ("POST", "/pair-verify") where request.body.first == 0 || request.body.first == 1:
            // Legacy verification: a 4-byte flag word (1: step 1, 0: step 2), not a TLV.
            core.log("\(request.method) \(path) (legacy)")
            return legacyStep(request, path: path)
        case ("POST", "/pair-setup-pin"):
            core.log("\(request.method) \(path)")
            return legacyStep(request, path: path)
        case ("POST", "/pair-verify"):
            core.log("\(request.method) \(path)")
            ok.headers.set("Content-Type", "application/octet-stream")
            return pairVerify(request, ok)
        case ("GET", "/info"), ("GET", "/server-info"), ("OPTIONS", _):
            return await http(request, encrypted: encrypted)
        default:
            break
        }
        if core.configuration.requirePairing && !authorized {
            core.log("\(request.method) \(request.uri) refused: not verified")
            core.report.withLock { $0.refusedUnverified += 1 }
            return AppleTVReply(response: response(470, for: request, reason: "Connection Authorization Required"))
        }
        switch (request.method, path) {
        case ("SETUP", _):
            core.log("\(encrypted ? "enc " : "")SETUP")
            return await setup(request, ok)
        case ("RECORD", _), ("TEARDOWN", _), ("FLUSH", _), ("SET_PARAMETER", _), ("GET_PARAMETER", _), ("SETPEERS", _),
             ("POST", "/feedback"), ("POST", "/command"), ("POST", "/audioMode"), ("PUT", "/setProperty"):
            core.log("\(encrypted ? "enc " : "")\(request.method)\(path.hasPrefix("/") ? " " + path : "")")
            if request.method == "RECORD" { core.report.withLock { $0.records += 1 } }
            if path == "/feedback" { core.report.withLock { $0.feedbacks += 1 } }
            return AppleTVReply(response: ok)
        default:
            return await http(request, encrypted: encrypted)
        }
    }

    /// A video or info request, answered by the shared core.
    private func http(_ r: RTSPRequest, encrypted: Bool) async -> AppleTVReply {
        let message: HTTPRequestMessage = r
        if encrypted { core.report.withLock { $0.encryptedRequests += 1 } }
        let answer = await core.handle(message, connection: id, prefix: encrypted ? "enc " : "")
        var out = response(answer.status, for: r)
        for f in answer.headers.fields where f.name.lowercased() != "content-length" { out.headers.set(f.name, f.value) }
        if case .bytes(let b) = answer.body { out.body = b }
        return AppleTVReply(response: out)
    }

    private func pairSetup(_ r: RTSPRequest, _ ok: RTSPResponse) -> AppleTVReply {
        var ok = ok
        let first = (try? TLV8.decode(r.body))?.byte(.state) == 1
        let result = state.withLock { s -> HAPAccessoryReply in
            if first { s.pairSetup = HAPPairSetupServer(identity: shared.identity, pin: shared.pin) }
            return s.pairSetup.handle(r.body)
        }
        ok.body = result.message
        switch result.event {
        case .transient(let k):
            state.withLock { $0.secret = k }
            core.paired("transient")
            return AppleTVReply(response: ok, enableKeys: HAPChannel.airPlayControl.keys(sharedSecret: k, role: .accessory))
        case .paired(let controller):
            shared.controllers.withLock { list in
                list.removeAll { $0.identifier == controller.identifier }
                list.append(controller)
            }
            core.paired("PIN")
        case .failed(let e):
            core.pairingFailed("pair-setup: \(e)")
        default:
            break
        }
        return AppleTVReply(response: ok)
    }

    private func legacyStep(_ r: RTSPRequest, path: String) -> AppleTVReply {
        guard let reply = shared.legacy.withLock({ $0?.handle(path: path, body: r.body) }) else {
            return AppleTVReply(response: response(500, for: r))
        }
        var out = response(reply.status, for: r)
        if let t = reply.contentType { out.headers.set("Content-Type", t) }
        out.body = reply.body
        switch reply.event {
        case .paired: core.paired("legacy PIN")
        case .verified:
            state.withLock { $0.legacyVerified = true }
            core.paired("legacy verified")
        case .failed(let e): core.pairingFailed("legacy \(path): \(e)")
        default: break
        }
        return AppleTVReply(response: out)
    }

    private func pairVerify(_ r: RTSPRequest, _ ok: RTSPResponse) -> AppleTVReply {
        var ok = ok
        let first = (try? TLV8.decode(r.body))?.byte(.state) == 1
        let controllers = shared.controllers.withLock { $0 }
        let result = state.withLock { s -> HAPAccessoryReply in
            if first || s.pairVerify == nil { s.pairVerify = HAPPairVerifyServer(identity: shared.identity, controllers: controllers) }
            return s.pairVerify!.handle(r.body)
        }
        ok.body = result.message
        switch result.event {
        case .verified(_, let secret):
            state.withLock { $0.secret = secret }
            core.paired("verified")
            return AppleTVReply(response: ok, enableKeys: HAPChannel.airPlayControl.keys(sharedSecret: secret, role: .accessory))
        case .failed(let e):
            core.pairingFailed("pair-verify: \(e)")
        default:
            break
        }
        return AppleTVReply(response: ok)
    }

    /// Session SETUP: an event channel (Events keys) → `{eventPort, timingPort}`.
    private func setup(_ r: RTSPRequest, _ ok: RTSPResponse) async -> AppleTVReply {
        guard let body = try? BinaryPlistParser.parse(r.body), case .dict(let dict) = body else {
            return AppleTVReply(response: response(400, for: r))
        }
        guard let secret = state.withLock({ $0.secret }) else {
            return AppleTVReply(response: response(470, for: r, reason: "Connection Authorization Required"))
        }
        if let streams = dict["streams"] {
            guard case .array(let list) = streams, case .dict(let s)? = list.first, s["type"]?.double == 130, let mrp = core.mrp,
                  state.withLock({ $0.eventServer }) != nil else {
                return AppleTVReply(response: response(501, for: r, reason: "Stream Type Not Implemented"))
            }
            return await setupRemoteControl(s, r, ok, secret: secret, mrp: mrp)
        }
        let keys = HAPChannel.airPlayEvents.keys(sharedSecret: secret, role: .accessory)
        let host = channel.localAddress?.ipAddress ?? core.configuration.host
        let existing = state.withLock { $0.eventServer }
        let server: Channel
        if let existing {
            server = existing
        } else {
            do {
                server = try await EncryptedListener.bind(group: channel.eventLoop, host: host, keys: keys) { [core] _, pipeline in
                    try pipeline.addHandler(AppleTVEventHandler(core: core))
                }.get()
            } catch {
                return AppleTVReply(response: response(500, for: r))
            }
            let closed = state.withLock { s -> Bool in
                s.eventServer = server
                return s.closed
            }
            if closed { server.close(promise: nil) }
        }
        core.report.withLock { $0.sessionSetups += 1; $0.timingProtocol = dict["timingProtocol"]?.string }
        if dict["timingProtocol"]?.string == "NTP", let p = dict["timingPort"]?.double.map({ Int($0) }), p > 0, p < 65536,
           let ip = channel.remoteAddress?.ipAddress {
            await askTime(ip: ip, port: p, host: host)
        }
        var out = ok
        out.headers.set("Content-Type", "application/x-apple-binary-plist")
        out.body = BinaryPlist.encode(.dict(["eventPort": .int(Int64(server.localAddress?.port ?? 0)), "timingPort": .int(0)]))
        return AppleTVReply(response: out)
    }

    /// Stream SETUP type 130 (the MRP tunnel): a data channel carrying MRP to the same
    /// device the direct MRP port serves (state, commands and pushes are shared).
    private func setupRemoteControl(_ s: [String: PlistValue], _ r: RTSPRequest, _ ok: RTSPResponse,
                                    secret: [UInt8], mrp: VirtualMRP) async -> AppleTVReply {
        guard let keys = MRPTunnelListener.keys(stream: s, secret: secret) else { return AppleTVReply(response: response(400, for: r)) }
        let host = channel.localAddress?.ipAddress ?? core.configuration.host
        state.withLock { s -> Channel? in
            defer { s.dataServer = nil }
            return s.dataServer
        }?.close(promise: nil)
        let core = self.core
        let server: Channel
        do {
            server = try await MRPTunnelListener.bind(group: channel.eventLoop, host: host, keys: keys, device: mrp) { [weak self] ch in
                guard let self else { throw ATVError.invalidState("the connection closed") }
                let ok = self.state.withLock { s -> Bool in
                    guard !s.closed else { return false }
                    s.dataConnections.append(ch)
                    return true
                }
                guard ok else { throw ATVError.invalidState("the connection closed") }
                return [AppleTVDataChannelWatcher(core: core)]
            }.get()
        } catch {
            core.log("remote-control stream SETUP failed: \(error)")
            return AppleTVReply(response: response(500, for: r))
        }
        let closed = state.withLock { st -> Bool in
            st.dataServer = server
            return st.closed
        }
        if closed { server.close(promise: nil) }
        let id = core.report.withLock { $0.remoteControlStreams += 1; return $0.remoteControlStreams }
        let port = server.localAddress?.port ?? 0
        core.log("remote-control stream (MRP tunnel) on data port \(port)")
        var out = ok
        out.headers.set("Content-Type", "application/x-apple-binary-plist")
        out.body = MRPTunnelListener.setupAnswer(dataPort: port, streamID: id)
        return AppleTVReply(response: out)
    }

    /// One NTP timing request to the sender's timing port (a real receiver keeps asking); the
    /// answer is counted in `timingReplies`.
    private func askTime(ip: String, port: Int, host: String) async {
        let core = self.core
        guard let dest = try? SocketAddress(ipAddress: ip, port: port),
              let endpoint = try? await UDPEndpoint.bind(host: host, on: channel.eventLoop, onPacket: { bytes, _, _ in
                  if let p = try? RAOPTimingPacket(decoding: bytes), p.isReply {
                      core.report.withLock { $0.timingReplies += 1 }
                  }
              }) else { return }
        let closed = state.withLock { s -> Bool in
            s.timing = endpoint.channel
            return s.closed
        }
        if closed { endpoint.closeNow(); return }
        endpoint.send(RAOPTimingPacket(isReply: false, sendTime: NTPTime.now()).bytes, to: dest)
    }

    func closed() {
        let open = state.withLock { s -> [Channel] in
            s.closed = true
            return [s.eventServer, s.timing, s.dataServer].compactMap { $0 } + s.dataConnections
        }
        for ch in open { ch.close(promise: nil) }
        shared.unregister(channel)
        core.connectionClosed(id)
    }
}

/// The receiver's end of the event channel: counts the sender's connection, ignores what it says.
final class AppleTVEventHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let core: AppleTVCore
    init(core: AppleTVCore) { self.core = core }
    func channelActive(context: ChannelHandlerContext) {
        core.report.withLock { $0.eventConnections += 1 }
        core.log("event channel connected")
        context.fireChannelActive()
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Counts and announces the MRP tunnel's data channels (the MRP handler above it does the work).
final class AppleTVDataChannelWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let core: AppleTVCore
    init(core: AppleTVCore) { self.core = core }
    func channelActive(context: ChannelHandlerContext) {
        core.report.withLock { $0.dataChannelConnections += 1 }
        core.log("remote-control data channel opened")
        context.fireChannelActive()
    }
    func channelInactive(context: ChannelHandlerContext) {
        core.log("remote-control data channel closed")
        context.fireChannelInactive()
    }
}

extension VirtualAppleTV {
    static let sourceVersion = "690.7.1"

    /// Starts the raw HTTP/RTSP listener used with pairing or AirPlay 2.
    static func startAirPlay2Server(core: AppleTVCore, shared: AppleTVPairingShared) async throws -> Channel {
        let c = core.configuration
        return try await TCPListener.bind(host: c.host, port: c.port) { channel, pipeline in
            let crypto = HAPEncryptionHandler()
            let connection = AppleTVAirPlay2Connection(channel: channel, core: core, shared: shared)
            try pipeline.addHandler(crypto)
            try pipeline.addHandler(connection.serverHandler(crypto: crypto))
        }
    }
}
