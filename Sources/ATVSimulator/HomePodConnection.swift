import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVHTTP
import ATVPTP
import ATVRAOP
import NIOCore
import NIOPosix

/// What to do after a response went out (plaintext): switch the connection to HAP encryption.
struct HomePodReply {
    var response: RTSPResponse
    var enableKeys: ChannelKeys?
    var close = false
    /// Write nothing (a stuck receiver).
    var silent = false
}

/// One control connection of a `VirtualHomePod`: pairing, then RTSP over HAP encryption, and at
/// most one session (event channel, timing socket, one audio stream).
///
/// Confined to the event loop of its channel (every socket it opens is bound to the same loop),
/// hence `@unchecked Sendable`.
final class HomePodConnection: @unchecked Sendable {
    let loop: EventLoop
    let channel: Channel
    let shared: HomePodShared
    let crypto: HAPEncryptionHandler
    private var config: VirtualHomePod.Configuration { shared.configuration }

    private var pairSetup: HAPPairSetupServer
    private var pairVerify: HAPPairVerifyServer?
    /// The secret the channel keys derive from (SRP K for transient, X25519 shared for verify).
    private var secret: [UInt8]?
    private var encrypted: Bool { crypto.isEnabled }

    // Session
    private var number: Int?
    private var hasSession = false
    private var wavPath: String?
    private var eventServer: Channel?
    private var eventConnection: Channel?
    private var eventReplyTimer: Scheduled<Void>?
    private var eventDropTimer: Scheduled<Void>?
    private var timing: ReceiverTimingPort?
    private var timingTask: RepeatedTask?
    private var stream: HomePodStream?
    private var dataServer: Channel?
    private var dataConnections: [Channel] = []
    private var end = SessionEnd()
    private var ended = false
    /// PTP session: the follower (shared by the device) and the RTP-Info of a RECORD that came
    /// before the stream SETUP.
    private var follower: PTPFollower?
    private var buffered: HomePodBufferedStream?
    private var pendingRTPInfo: String?
    private var clockRules: PTPClockRules { PTPClockRules(strict: config.profile == .shairportAP2) }

    init(channel: Channel, shared: HomePodShared, crypto: HAPEncryptionHandler) {
        self.channel = channel
        self.loop = channel.eventLoop
        self.shared = shared
        self.crypto = crypto
        let c = shared.configuration
        pairSetup = HAPPairSetupServer(identity: c.identity, pin: c.pin, transientPIN: c.transientPIN)
        shared.register(channel)
        shared.update { $0.connections += 1 }
    }

    private var peerIP: String? { channel.remoteAddress?.ipAddress }
    private var server: String { "AirTunes/\(config.sourceVersion)" }

    /// The HTTP/RTSP server end of this control connection: answers in request order, and
    /// encryption switched on right after the pairing answer that completes a handshake (which
    /// itself goes out in plaintext).
    func serverHandler() -> RTSPServerHandler {
        let respond: RTSPServerHandler.Respond = { [self] request in
            handle(request).map { [self] (reply: HomePodReply) -> RTSPServerReply in
                var afterWrite: (@Sendable () -> Void)?
                if let keys = reply.enableKeys { afterWrite = { [self] in crypto.enable(keys: keys) } }
                return RTSPServerReply(reply.response, afterWrite: afterWrite, close: reply.close, silent: reply.silent)
            }
        }
        return RTSPServerHandler(parser: RTSPParser(maxBodyBytes: 4 * 1024 * 1024), onBytes: { [self] n in countBytes(n) },
                                 onClose: { [self] in connectionClosed() }, respond: respond)
    }

    func countBytes(_ n: Int) { shared.update { $0.rtspBytesReceived += n } }

    // MARK: Requests

    func handle(_ request: RTSPRequest) -> EventLoopFuture<HomePodReply> {
        loop.preconditionInEventLoop()
        let path = request.uri.split(separator: "?").first.map(String.init) ?? request.uri
        let name = path.hasPrefix("/") ? "\(request.method) \(path)" : request.method
        let line = (encrypted ? "enc " : "") + name
        shared.update { r in
            r.requests.append(line)
            if self.encrypted { r.encryptedRequests += 1 }
        }
        shared.emit(.request(line))
        var ok = response(200, for: request)
        // A stuck receiver (`noProgress`): once audio arrived, requests are read but never answered.
        if config.noProgress, shared.report.withLock({ $0.firstAudioPacketAt != nil }) {
            shared.update { $0.requestsUnanswered += 1 }
            return loop.makeSucceededFuture(HomePodReply(response: ok, silent: true))
        }

        switch (request.method, path) {
        case ("GET", "/info"):
            if config.requireUserAgent, !(request.headers["User-Agent"] ?? "").hasPrefix("AirPlay/") {
                shared.update { $0.infoRejected += 1 }
                return reply(response(403, for: request))
            }
            ok.headers.set("Content-Type", "application/x-apple-binary-plist")
            ok.body = infoPlist()
            return reply(ok)
        case ("POST", "/pair-pin-start"):
            return reply(ok)
        case ("POST", "/pair-setup"):
            return loop.makeSucceededFuture(pairSetupStep(request, ok))
        case ("POST", "/pair-verify"):
            return loop.makeSucceededFuture(pairVerifyStep(request, ok))
        case ("OPTIONS", _):
            ok.headers.set("Public", "ANNOUNCE, SETUP, RECORD, PAUSE, FLUSH, FLUSHBUFFERED, TEARDOWN, OPTIONS, POST, GET, PUT, GET_PARAMETER, SET_PARAMETER, SETPEERS, SETRATEANCHORTIME")
            return reply(ok)
        default:
            break
        }

        // Everything else belongs to a session: pairing first.
        if config.requirePairing && !encrypted {
            shared.update { $0.refusedUnauthenticated += 1 }
            return reply(response(470, for: request, reason: "Connection Authorization Required"))
        }
        switch (request.method, path) {
        case ("SETUP", _):
            return setup(request, ok)
        case ("RECORD", _):
            ok.headers.set("Audio-Latency", follower == nil ? "11025" : "0")
            if let stream {
                stream.expectFirstPacket(request.headers["RTP-Info"])
            } else {
                pendingRTPInfo = request.headers["RTP-Info"]
            }
        case ("FLUSHBUFFERED", _) where buffered != nil:
            guard let flush = try? BufferedFlush(parsing: BinaryPlist.decode(request.body)) else {
                return reply(response(400, for: request))
            }
            buffered?.flush(flush)
        case ("FLUSH", _), ("FLUSHBUFFERED", _):
            stream?.flush()
            stream?.expectFirstPacket(request.headers["RTP-Info"])
        case ("SET_PARAMETER", _):
            return reply(setParameter(request, ok))
        case ("GET_PARAMETER", _):
            ReceiverParameters.answer(request, volume: shared.report.withLock { $0.volume }, to: &ok)
        case ("POST", "/feedback"):
            shared.update { $0.feedbacks += 1 }
        case ("SETPEERS", _), ("SETPEERSX", _):
            return reply(setPeers(request, ok))
        case ("SETRATEANCHORTIME", _):
            return reply(setRateAnchor(request, ok))
        case ("POST", "/command"), ("POST", "/audioMode"), ("PUT", _):
            break
        case ("TEARDOWN", _):
            if let streams = (try? BinaryPlistParser.parse(request.body))?["streams"], case .array(let list) = streams, !list.isEmpty {
                stream?.finish()  // only the stream; the session stays
                buffered?.finish()
            } else {
                scheduleEnd()
            }
        default:
            return reply(response(501, for: request))
        }
        return reply(ok)
    }

    private func reply(_ r: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        loop.makeSucceededFuture(HomePodReply(response: r))
    }

    private func response(_ status: Int, for request: RTSPRequest, reason: String? = nil) -> RTSPResponse {
        var r = RTSPResponse(version: request.version.hasPrefix("HTTP/") ? request.version : "RTSP/1.0", status: status, reason: reason)
        if let cseq = request.headers["CSeq"] { r.headers.set("CSeq", cseq) }
        r.headers.set("Server", server)
        return r
    }

    private func infoPlist() -> [UInt8] {
        let c = config
        var info: [String: PlistValue] = [
            "name": .string(c.name),
            "deviceID": .string(c.deviceID.uppercased()),
            "macAddress": .string(c.deviceID.uppercased()),
            "model": .string(c.model),
            "manufacturer": .string("Apple Inc."),
            "sourceVersion": .string(c.sourceVersion),
            "osVersion": .string(c.osVersion),
            "protocolVersion": .string("1.1"),
            "features": .int(Int64(bitPattern: c.features)),
            "statusFlags": .int(4),
            "pk": .data(c.identity.publicKey),
            "pi": .string(String(decoding: c.identity.identifier, as: UTF8.self).lowercased()),
            "keepAliveLowPower": .bool(true),
            "keepAliveSendStatsAsBody": .bool(true),
            "initialVolume": .real(-20.0),
            "audioLatencies": .array([.dict(["inputLatencyMicros": .int(0), "outputLatencyMicros": .int(0),
                                             "type": .int(100), "audioType": .string("default")])]),
            "audioFormats": .array([.dict(["type": .int(96), "audioInputFormats": .int(0x4_0800),
                                           "audioOutputFormats": .int(0x4_0800)])]),
        ]
        if let formats = c.bufferedFormats {
            let bits = formats.reduce(Int64(0)) { $0 | ($1.audioFormat ?? 0) }
            info["supportedFormats"] = .dict(["audioStream": .int(0x4_0800), "bufferStream": .int(bits)])
        }
        return BinaryPlist.encode(.dict(info))
    }

    // MARK: Pairing

    private func pairSetupStep(_ request: RTSPRequest, _ ok: RTSPResponse) -> HomePodReply {
        var ok = ok
        ok.headers.set("Content-Type", "application/octet-stream")
        let tlv = try? TLV8.decode(request.body)
        let isTransientM1 = tlv?.byte(.state) == 1 && (tlv?.byte(.flags) ?? 0) & TLV8.transientFlag != 0
        if config.transientError, isTransientM1 || request.headers["X-Apple-HKP"] == "4" {
            // 200 with an in-band TLV8 error (kTLVError), as some receivers answer transient M1.
            let seq = (tlv?.byte(.state) ?? 1) &+ 1
            ok.body = TLV8([.init(.state, [seq]), .init(.error, [TLV8.ErrorCode.authentication.rawValue])]).encoded()
            shared.update { $0.pairingFailures.append("transient pair-setup refused (transient-error mode)") }
            return HomePodReply(response: ok)
        }
        if tlv?.byte(.state) == 1 {  // a new attempt restarts the state machine
            pairSetup = HAPPairSetupServer(identity: config.identity, pin: config.pin, transientPIN: config.transientPIN)
        }
        let result = pairSetup.handle(request.body)
        ok.body = result.message
        switch result.event {
        case .transient(let K):
            secret = K
            record(.transient)
            return HomePodReply(response: ok, enableKeys: HAPChannel.airPlayControl.keys(sharedSecret: K, role: .accessory))
        case .paired(let controller):
            shared.addController(controller)
            record(.pinSetup)
        case .failed(let error):
            shared.update { $0.pairingFailures.append("pair-setup: \(error)") }
        case .verified, nil:
            break
        }
        return HomePodReply(response: ok)
    }

    private func pairVerifyStep(_ request: RTSPRequest, _ ok: RTSPResponse) -> HomePodReply {
        var ok = ok
        ok.headers.set("Content-Type", "application/octet-stream")
        if (try? TLV8.decode(request.body))?.byte(.state) == 1 || pairVerify == nil {
            pairVerify = HAPPairVerifyServer(identity: config.identity, controllers: shared.extra.controllers.withLock { $0 })
        }
        let result = pairVerify!.handle(request.body)
        ok.body = result.message
        switch result.event {
        case .verified(_, let shared):
            secret = shared
            record(.verify)
            return HomePodReply(response: ok, enableKeys: HAPChannel.airPlayControl.keys(sharedSecret: shared, role: .accessory))
        case .failed(let error):
            self.shared.update { $0.pairingFailures.append("pair-verify: \(error)") }
        default:
            break
        }
        return HomePodReply(response: ok)
    }

    private func record(_ mode: HomePodReport.PairingMode) {
        shared.update { $0.pairings.append(mode) }
        shared.emit(.paired(mode))
    }

    // MARK: SETUP

    private func setup(_ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard let body = try? BinaryPlistParser.parse(request.body), case .dict(let dict) = body else {
            return reply(response(400, for: request))
        }
        if case .array(let streams)? = dict["streams"] {
            return setupStreams(streams, request, ok)
        }
        return setupSession(dict, request, ok)
    }

    /// Session SETUP: timing and event channel → `{eventPort, timingPort}`.
    private func setupSession(_ body: [String: PlistValue], _ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard let secret else { return reply(response(470, for: request, reason: "Connection Authorization Required")) }
        if body["isRemoteControlOnly"]?.bool == true, !config.remoteControlTunnel {
            shared.update { $0.remoteControlRefused += 1 }
            return reply(response(501, for: request, reason: "Not Implemented"))
        }
        let timingProtocol = body["timingProtocol"]?.string
        var ptpTiming: AirPlay2PTPTiming?
        if timingProtocol == "NTP", !config.acceptsNTP {
            // shairport-sync: "ntp stream handling is not implemented", the answer stays 501.
            shared.update { $0.ptp.sessionsRefused.append(501) }
            return reply(response(501, for: request, reason: "Not Implemented"))
        }
        if timingProtocol == "PTP" {
            guard config.acceptsPTP else {
                shared.update { $0.ptp.sessionsRefused.append(501) }
                return reply(response(501, for: request, reason: "Not Implemented"))
            }
            do {
                ptpTiming = try AirPlay2PTPTiming(sessionSetup: .dict(body))
            } catch {
                // No timingPeerInfo: shairport-sync leaves the answer at 501.
                let status = config.profile == .shairportAP2 ? 501 : 400
                shared.update { r in
                    r.ptp.sessionsRefused.append(status)
                    r.errors.append("session SETUP: \(error)")
                }
                return reply(response(status, for: request))
            }
        } else if config.profile == .shairportAP2 {
            shared.update { $0.ptp.sessionsRefused.append(501) }
            return reply(response(501, for: request, reason: "Not Implemented"))
        }
        if let ptpTiming {
            return setupPTPSession(ptpTiming, body, request, ok)
        }
        hasSession = true
        // A remote-control-only session (the MRP tunnel) is no audio session: no number, no WAV file.
        if body["isRemoteControlOnly"]?.bool == true {
            shared.update { $0.remoteControlSessions += 1 }
        } else if number == nil {
            let (n, path) = shared.beginSession()
            number = n
            wavPath = path
        }
        let timingPort = body["timingPort"]?.double.map { Int($0) }
        shared.update { r in
            r.timingProtocol = timingProtocol
            r.senderTimingPort = timingPort
        }
        let senderTiming: SocketAddress? = peerIP.flatMap { ip in
            timingPort.flatMap { p in p > 0 && p < 65536 ? try? SocketAddress(ipAddress: ip, port: p) : nil }
        }
        let host = channel.localAddress?.ipAddress ?? config.host
        let eventKeys = HAPChannel.airPlayEvents.keys(sharedSecret: secret, role: .accessory)
        let events: EventLoopFuture<Channel> = eventServer.map { loop.makeSucceededFuture($0) } ?? bindEventServer(host: host, keys: eventKeys)
        let timingSocket: EventLoopFuture<ReceiverTimingPort> = timing.map { loop.makeSucceededFuture($0) }
            ?? ReceiverTimingPort.bind(host: host, on: loop) { [shared] body in shared.reception(body) }
        return events.and(timingSocket).map { [self] ev, tm in
            if let senderTiming { tm.sender = senderTiming }
            if eventServer == nil {
                eventServer = ev
                shared.update { $0.eventPort = ev.localAddress?.port }
                setEventState(.listening)
            }
            if timing == nil {
                timing = tm
                if timingProtocol == "NTP", config.timingRequests {
                    if config.noProgress {
                        // A receiver that is not playing: one clock exchange at SETUP, then silence.
                        loop.execute { tm.sendRequest() }
                    } else {
                        timingTask = tm.scheduleRequests(on: loop, every: config.timingInterval)
                    }
                }
            }
            var r = ok
            r.headers.set("Content-Type", "application/x-apple-binary-plist")
            r.body = BinaryPlist.encode(.dict([
                "eventPort": .int(Int64(ev.localAddress?.port ?? 0)),
                "timingPort": .int(Int64(tm.port)),
            ]))
            return HomePodReply(response: r)
        }.flatMapErrorThrowing { [self] error in
            shared.update { $0.errors.append("session SETUP: \(error)") }
            return HomePodReply(response: response(500, for: request))
        }
    }

    /// Session SETUP with PTP timing (docs/PTP-AND-BUFFERED-AUDIO.md §3.2): the follower bound on
    /// `ptpAddress`, following the RTSP peer (a HomePod from now on; the strict profile, as
    /// nqptp, from the stream SETUP on) → `{eventPort, timingPort 0, timingPeerInfo}`.
    private func setupPTPSession(_ timing: AirPlay2PTPTiming, _ body: [String: PlistValue], _ request: RTSPRequest,
                                 _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard let secret else { return reply(response(470, for: request, reason: "Connection Authorization Required")) }
        hasSession = true
        if number == nil {
            let (n, path) = shared.beginSession()
            number = n
            wavPath = path
        }
        shared.update { r in
            r.timingProtocol = "PTP"
            r.senderTimingPort = nil
            r.ptp.timingPeerAddresses = timing.peerInfo.addresses
        }
        let host = channel.localAddress?.ipAddress ?? config.host
        let ptpAddress = config.ptpAddress ?? host
        let eventKeys = HAPChannel.airPlayEvents.keys(sharedSecret: secret, role: .accessory)
        let events: EventLoopFuture<Channel> = eventServer.map { loop.makeSucceededFuture($0) } ?? bindEventServer(host: host, keys: eventKeys)
        let promise = loop.makePromise(of: PTPFollower.self)
        let slot = shared.extra.ptp
        promise.completeWithTask { try await slot.follower(address: ptpAddress) }
        let peer = peerIP
        let strict = config.profile == .shairportAP2
        // A HomePod whose follower cannot bind (another program holds 319/320 on that address)
        // still takes the session and plays by its own clock, as before PTP; the strict profile,
        // like shairport-sync without nqptp, cannot.
        let bound: EventLoopFuture<PTPFollower?> = promise.futureResult.map { Optional($0) }.flatMapError { [self, shared] error in
            guard !strict else { return loop.makeFailedFuture(error) }
            shared.update { $0.ptp.followerError = "\(error)" }
            return loop.makeSucceededFuture(nil)
        }
        return events.and(bound).map { [self] ev, follower in
            self.follower = follower
            if !strict { follow(peer) }
            if eventServer == nil {
                eventServer = ev
                shared.update { $0.eventPort = ev.localAddress?.port }
                setEventState(.listening)
            }
            var r = ok
            r.headers.set("Content-Type", "application/x-apple-binary-plist")
            let own = AirPlay2TimingPeer(id: ptpAddress, addresses: [ptpAddress], clockID: nil, deviceType: nil)
            r.body = BinaryPlist.encode(AirPlay2PTPSessionReply(eventPort: ev.localAddress?.port ?? 0, timingPort: 0, timingPeer: own).body)
            return HomePodReply(response: r)
        }.flatMapErrorThrowing { [self] error in
            shared.update { $0.errors.append("session SETUP: \(error)") }
            return HomePodReply(response: response(500, for: request))
        }
    }

    /// Follows `host` (the RTSP peer) and records it.
    private func follow(_ host: String?) {
        guard let follower, let host else { return }
        follower.follow(host)
        shared.update { $0.ptp.master = host }
    }

    /// SETPEERS (address strings) and SETPEERSX (peer dictionaries): recorded; 400 if malformed.
    /// Both profiles keep following the RTSP peer (shairport-sync ignores both; a HomePod's master
    /// is the sender, which lists itself).
    private func setPeers(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        do {
            let addresses = request.method == "SETPEERSX"
                ? try AirPlay2Peers.peers(fromSetPeersX: request.body).flatMap(\.addresses)
                : try AirPlay2Peers.addresses(fromSetPeers: request.body)
            shared.update { $0.ptp.setPeers.append(addresses) }
            return ok
        } catch {
            shared.update { $0.errors.append("\(request.method): \(error)") }
            return response(400, for: request)
        }
    }

    /// SETRATEANCHORTIME: `rate` read only as an integer (a real is refused: shairport-sync reads
    /// nothing from it); 400 until the master's clock is measured; a play anchor on another clock
    /// than the grandmaster is refused by the strict profile. The anchor goes to the stream.
    private func setRateAnchor(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        let refuse = { [self] (why: String) -> RTSPResponse in
            shared.update { $0.ptp.rateAnchorsRefused.append(why) }
            return response(400, for: request)
        }
        let anchor: BufferedRateAnchor
        do {
            anchor = try BufferedRateAnchor(parsing: BinaryPlist.decode(request.body))
        } catch {
            return refuse("\(error)")
        }
        guard let follower else { return refuse("no PTP session") }
        let status = follower.status
        let now = PTPMaster.monotonicNow()
        guard clockRules.measured(status, now: now) else {
            return refuse("the master's clock is not measured yet (\(status.state.rawValue))")
        }
        switch anchor {
        case .pause:
            stream?.setAnchor(nil)
            buffered?.setAnchor(nil)
            // After what was due has played: nothing plays from this instant on.
            let stopped = Int64(clamping: PTPMaster.monotonicNow())
            shared.update { r in
                r.ptp.rateAnchors.append("pause")
                r.ptp.anchorEvents.append(.init(rtpTime: nil, masterTime: nil, arrivedAt: stopped))
            }
        case .play(let rtp, let time, let clock):
            if let why = clockRules.refusal(clock: clock, status, now: now) { return refuse(why) }
            let a = PTPAnchor(frame: rtp, time: Int64(clamping: time.nanoseconds), clock: clock)
            stream?.setAnchor(a)
            buffered?.setAnchor(a)
            shared.update { r in
                r.ptp.rateAnchors.append("play")
                r.ptp.anchorEvents.append(.init(rtpTime: rtp, masterTime: a.time, arrivedAt: Int64(clamping: now)))
            }
        }
        return ok
    }

    /// Stream SETUP: type 96 (real-time) with `ct` 1 (PCM) or 2 (ALAC) → `{streams: [{type, dataPort, controlPort}]}`.
    private func setupStreams(_ streams: [PlistValue], _ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard hasSession, let first = streams.first, case .dict(let s) = first else {
            return reply(response(455, for: request, reason: "Method Not Valid in This State"))
        }
        let type = s["type"]?.double.map { Int($0) } ?? -1
        let ct = s["ct"]?.double.map { Int($0) } ?? -1
        let audioFormat = s["audioFormat"]?.double.map { Int($0) }
        let spf = s["spf"]?.double.map { Int($0) } ?? 352
        let sampleRate = s["sr"]?.double.map { Int($0) } ?? 44100
        shared.update { r in
            r.streamType = type
            r.compressionType = ct
            r.audioFormat = audioFormat
            r.framesPerPacket = spf
        }
        if type == 130 {
            guard config.remoteControlTunnel else {
                shared.update { $0.remoteControlRefused += 1 }
                return reply(response(501, for: request, reason: "Not Implemented"))
            }
            return setupRemoteControl(s, request, ok)
        }
        if type == BufferedAudioStreamRequest.bufferedType {
            return setupBuffered(streams, request, ok)
        }
        guard type == 96 else { return reply(response(501, for: request, reason: "Stream Type Not Implemented")) }
        guard case .data(let shk)? = s["shk"], shk.count == 32 else { return reply(response(400, for: request)) }
        guard (1...4096).contains(spf), sampleRate == 44100 else { return reply(response(415, for: request)) }
        let format: RAOPAudioFormat
        switch ct {
        case 1: format = RAOPAudioFormat(codec: .l16, framesPerPacket: spf)
        case 2: format = RAOPAudioFormat(codec: .alac, framesPerPacket: spf)
        default: return reply(response(415, for: request, reason: "Unsupported Media Type"))
        }
        var senderControl: SocketAddress?
        if let ip = peerIP, let p = s["controlPort"]?.double.map({ Int($0) }), p > 0, p < 65536 {
            senderControl = try? SocketAddress(ipAddress: ip, port: p)
        }
        stream?.finish()
        // nqptp is told to follow the RTSP peer at the stream SETUP (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 3).
        if config.profile == .shairportAP2 { follow(peerIP) }
        let host = channel.localAddress?.ipAddress ?? config.host
        let made = HomePodStream.make(loop: loop, host: host, shared: shared, format: format, key: shk,
                                      senderControl: senderControl, wavPath: wavPath,
                                      clock: follower.map { ($0, clockRules) })
        return made.map { [self] stream in
            self.stream = stream
            if let info = pendingRTPInfo {
                stream.expectFirstPacket(info)
                pendingRTPInfo = nil
            }
            shared.update { r in
                r.dataPort = stream.dataPort
                r.controlPort = stream.controlPort
            }
            var r = ok
            r.headers.set("Content-Type", "application/x-apple-binary-plist")
            let dataPort = config.advertisedAudioPort ?? stream.dataPort
            r.body = BinaryPlist.encode(.dict(["streams": .array([.dict([
                "type": .int(96), "dataPort": .int(Int64(dataPort)), "controlPort": .int(Int64(stream.controlPort)),
                "streamID": .int(1), "audioBufferSize": .int(8_388_608),
            ])])]))
            return HomePodReply(response: r)
        }.flatMapErrorThrowing { [self] error in
            shared.update { $0.errors.append("stream SETUP: \(error)") }
            return HomePodReply(response: response(500, for: request))
        }
    }

    /// Stream SETUP type 103 (buffered, docs/PTP-AND-BUFFERED-AUDIO.md §3.5, §4) on a PTP session:
    /// a TCP data listener → `{streams: [{type 103, dataPort, controlPort, audioBufferSize, streamID}]}`.
    private func setupBuffered(_ streams: [PlistValue], _ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard let follower else { return reply(response(400, for: request, reason: "Buffered Audio Needs PTP")) }
        let setup: BufferedAudioStreamRequest
        do {
            setup = try BufferedAudioStreamRequest(parsing: .dict(["streams": .array(streams)]))
        } catch {
            shared.update { $0.errors.append("stream SETUP: \(error)") }
            return reply(response(400, for: request))
        }
        if let formats = config.bufferedFormats, !formats.contains(setup.format) {
            shared.update { $0.errors.append("stream SETUP: \(setup.format) is not one of the buffered formats listed") }
            return reply(response(400, for: request, reason: "Unsupported Audio Format"))
        }
        if config.profile == .shairportAP2 { follow(peerIP) }
        stream?.finish()
        stream = nil
        buffered?.finish()
        let host = channel.localAddress?.ipAddress ?? config.host
        return HomePodBufferedStream.make(loop: loop, host: host, shared: shared, format: setup.format, key: setup.sharedKey,
                                          wavPath: wavPath, clock: (follower, clockRules)).map { [self] stream in
            buffered = stream
            shared.update { $0.dataPort = stream.dataPort }
            var r = ok
            r.headers.set("Content-Type", "application/x-apple-binary-plist")
            r.body = BinaryPlist.encode(.dict(["streams": .array([.dict([
                "type": .int(103), "dataPort": .int(Int64(stream.dataPort)), "controlPort": .int(0),
                "audioBufferSize": .int(Int64(BufferedAudioStreamReply.defaultAudioBufferSize)), "streamID": .int(1),
            ])])]))
            return HomePodReply(response: r)
        }.flatMapErrorThrowing { [self] error in
            shared.update { $0.errors.append("stream SETUP: \(error)") }
            return HomePodReply(response: response(500, for: request))
        }
    }

    /// Stream SETUP type 130 (the MRP tunnel): a TCP data channel encrypted with the
    /// DataStream keys (salt includes the sender's `seed`), carrying MRP to the embedded device.
    private func setupRemoteControl(_ s: [String: PlistValue], _ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<HomePodReply> {
        guard let secret else { return reply(response(470, for: request, reason: "Connection Authorization Required")) }
        guard let keys = MRPTunnelListener.keys(stream: s, secret: secret) else { return reply(response(400, for: request)) }
        let host = channel.localAddress?.ipAddress ?? config.host
        let shared = self.shared
        dataServer?.close(promise: nil)
        dataServer = nil
        return bindDataServer(host: host, keys: keys, shared: shared).map { [self] ch in
            dataServer = ch
            let port = ch.localAddress?.port ?? 0
            shared.update { $0.remoteControlStreams += 1 }
            var r = ok
            r.headers.set("Content-Type", "application/x-apple-binary-plist")
            r.body = MRPTunnelListener.setupAnswer(dataPort: port, streamID: shared.report.withLock { $0.remoteControlStreams })
            return HomePodReply(response: r)
        }.flatMapErrorThrowing { [self] error in
            shared.update { $0.errors.append("remote-control stream SETUP: \(error)") }
            return HomePodReply(response: response(500, for: request))
        }
    }

    private func bindDataServer(host: String, keys: ChannelKeys, shared: HomePodShared) -> EventLoopFuture<Channel> {
        MRPTunnelListener.bind(group: loop, host: host, keys: keys, device: shared.mrp) { [self] ch in
            guard !ended else { throw ATVError.invalidState("the session ended") }
            dataConnections.append(ch)
            return [HomePodDataChannelWatcher(shared: shared)]
        }
    }

    // MARK: SET_PARAMETER

    private func setParameter(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        guard let changes = ReceiverParameters.read(request) else { return response(400, for: request) }
        shared.reception { ReceiverParameters.apply(changes, to: &$0) }
        return ok
    }

    // MARK: Event channel

    private func bindEventServer(host: String, keys: ChannelKeys) -> EventLoopFuture<Channel> {
        EncryptedListener.bind(group: loop, host: host, keys: keys) { [self] _, pipeline in
            try pipeline.addHandler(HomePodEventHandler(connection: self))
        }
    }

    func eventChannelOpened(_ ch: Channel) {
        loop.execute { [self] in
            guard !ended else { ch.close(promise: nil); return }
            eventConnection?.close(promise: nil)
            eventConnection = ch
            setEventState(.connected)
            let body = BinaryPlist.encode(.dict(["type": .string("updateInfo"), "value": .dict([
                "name": .string(config.name), "model": .string(config.model), "deviceID": .string(config.deviceID.uppercased()),
            ])]))
            var request = RTSPRequest(method: "POST", uri: "/command")
            request.headers.set("CSeq", "1")
            request.headers.set("Server", server)
            request.headers.set("Content-Type", "application/x-apple-binary-plist")
            request.body = body
            ch.writeAndFlush(ch.allocator.buffer(bytes: request.serialized), promise: nil)
            shared.update { $0.eventCommandsSent += 1 }
            eventReplyTimer = loop.scheduleTask(in: config.eventReplyTimeout.timeAmount) { [self] in
                shared.update { $0.errors.append("the sender did not answer POST /command on the event channel") }
                setEventState(.dropped)
                channel.close(promise: nil)
            }
            if let after = config.dropEventChannelAfter {
                eventDropTimer = loop.scheduleTask(in: after.timeAmount) { [self] in
                    setEventState(.dropped)
                    ch.close(promise: nil)
                }
            }
        }
    }

    func eventReplyReceived(_ r: RTSPResponse) {
        loop.execute { [self] in
            shared.update { $0.eventRepliesReceived += 1 }
            if r.status == 200 {
                eventReplyTimer?.cancel()
                eventReplyTimer = nil
                setEventState(.answered)
            }
        }
    }

    func eventChannelClosed(_ ch: Channel) {
        loop.execute { [self] in
            guard eventConnection === ch else { return }
            eventConnection = nil
            eventReplyTimer?.cancel()
            eventDropTimer?.cancel()
            if shared.report.withLock({ $0.eventChannel }) != .dropped { setEventState(.closed) }
        }
    }

    private func setEventState(_ s: HomePodReport.EventChannelState) {
        shared.update { $0.eventChannel = s }
        shared.emit(.eventChannel(s))
    }

    // MARK: End

    private func scheduleEnd() {
        end.schedule(on: loop, after: config.endGrace) { [self] in finishSession() }
    }

    func connectionClosed() {
        shared.unregister(channel)
        scheduleEnd()
    }

    private func finishSession() {
        guard !ended else { return }
        ended = true
        stream?.finish()
        buffered?.finish()
        timingTask?.cancel()
        eventReplyTimer?.cancel()
        eventDropTimer?.cancel()
        timing?.close()
        for ch in [eventConnection, eventServer, dataServer].compactMap({ $0 }) + dataConnections { ch.close(promise: nil) }
        guard number != nil else { return }  // no session SETUP: nothing to report
        shared.emit(.sessionEnded(wavPath: stream?.wavPath, report: shared.endSession()))
    }
}

/// The receiver's end of the event channel: reads the sender's answers to `POST /command`.
final class HomePodEventHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let connection: HomePodConnection
    private var parser = RTSPParser(maxBodyBytes: 1024 * 1024)

    init(connection: HomePodConnection) { self.connection = connection }

    func channelActive(context: ChannelHandlerContext) {
        connection.eventChannelOpened(context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        parser.append(buffer.readableBytesView)
        do {
            while let message = try parser.nextMessage() {
                if case .response(let r) = message { connection.eventReplyReceived(r) }
            }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.eventChannelClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Counts and announces the remote-control data channels (the MRP handler above it does the work).
final class HomePodDataChannelWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let shared: HomePodShared
    init(shared: HomePodShared) { self.shared = shared }

    func channelActive(context: ChannelHandlerContext) {
        shared.update { $0.dataChannelConnections += 1 }
        shared.emit(.dataChannel(open: true))
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        shared.emit(.dataChannel(open: false))
        context.fireChannelInactive()
    }
}
