import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVHTTP
import ATVPTP
import ATVRAOP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// One RTSP connection of a `VirtualSpeaker`: answers requests, owns the UDP sockets, the jitter
/// buffer, the decoder and the WAV file.
///
/// Confined to the event loop of its RTSP channel (the UDP channels are bound to the same loop),
/// hence `@unchecked Sendable`: every method runs on `loop`.
final class SpeakerSession: @unchecked Sendable {
    let loop: EventLoop
    let channel: Channel
    let shared: SpeakerShared
    private var config: VirtualSpeaker.Configuration { shared.configuration }

    private var number: Int?
    private let playout: AudioPlayout
    private var audio: UDPEndpoint?
    private var control: UDPEndpoint?
    private var timing: ReceiverTimingPort?
    private var timingTask: RepeatedTask?
    private var audioPacketIndex = 0
    /// The sync packet in force and each packet's arrival: when each frame plays by the sender's clock.
    private var ntp = NTPPlacement()
    private var end = SessionEnd()
    private var ended = false
    private let sessionID = UInt32.random(in: 1...UInt32.max)

    init(channel: Channel, shared: SpeakerShared) {
        self.channel = channel
        self.loop = channel.eventLoop
        self.shared = shared
        self.playout = AudioPlayout(jitter: shared.configuration.jitter) { body in shared.reception(body) }
        shared.register(channel)
        playout.gate = { [unowned self] seq, frames in
            shared.reception { r in ntp.record(seq: seq, frames: frames, in: &r) }
            return true
        }
    }

    /// The RTSP server end of this session's connection.
    func serverHandler() -> RTSPServerHandler {
        RTSPServerHandler(onBytes: { [self] n in countRTSPBytes(n) }, onClose: { [self] in connectionClosed() }) { [self] request in
            handle(request).map { RTSPServerReply($0) }
        }
    }

    private var peerIP: String? { channel.remoteAddress?.ipAddress }

    // MARK: RTSP

    func handle(_ request: RTSPRequest) -> EventLoopFuture<RTSPResponse> {
        loop.preconditionInEventLoop()
        let line = "\(request.method) \(request.uri)"
        shared.update { $0.requests.append(line) }
        shared.emit(.request(line))
        var response = RTSPResponse(status: 200)
        if let cseq = request.headers["CSeq"] { response.headers.set("CSeq", cseq) }
        response.headers.set("Server", "AirTunes/366.0")
        let path = request.uri.split(separator: "?").first.map(String.init) ?? request.uri

        switch (request.method, path) {
        case ("OPTIONS", _):
            response.headers.set("Public", "ANNOUNCE, SETUP, RECORD, PAUSE, FLUSH, TEARDOWN, OPTIONS, GET_PARAMETER, SET_PARAMETER, POST, GET")
        case ("GET", "/info"):
            response.headers.set("Content-Type", "application/x-apple-binary-plist")
            response.body = infoPlist()
        case ("POST", "/auth-setup"), ("POST", "/feedback"):
            break
        case ("ANNOUNCE", _):
            response = announce(request, response)
        case ("SETUP", _):
            return setup(request, response)
        case ("RECORD", _):
            response.headers.set("Audio-Latency", "11025")
            playout.expectFirstPacket(request.headers["RTP-Info"])
        case ("FLUSH", _):
            playout.flush()
            playout.expectFirstPacket(request.headers["RTP-Info"])
        case ("SET_PARAMETER", _):
            response = setParameter(request, response)
        case ("GET_PARAMETER", _):
            ReceiverParameters.answer(request, volume: shared.report.withLock { $0.volume }, to: &response)
        case ("TEARDOWN", _):
            response.headers.set("Connection", "close")
            scheduleEnd()
        default:
            response = status(501, for: request)
        }
        return loop.makeSucceededFuture(response)
    }

    private func status(_ code: Int, for request: RTSPRequest) -> RTSPResponse {
        var r = RTSPResponse(status: code)
        if let cseq = request.headers["CSeq"] { r.headers.set("CSeq", cseq) }
        r.headers.set("Server", "AirTunes/366.0")
        return r
    }

    private func infoPlist() -> [UInt8] {
        BinaryPlist.encode(.dict([
            "name": .string(config.name),
            "deviceID": .string(config.deviceID),
            "macAddress": .string(config.deviceID),
            // An AirPlay 1 speaker's model (AirPort Express 2nd gen), not a HomePod's: a HomePod
            // speaks AirPlay 2, and the sender paces AirPlay 1 to HomePods one packet at a time.
            "model": .string("AirPort10,115"),
            "manufacturer": .string("swift-atv"),
            "sourceVersion": .string("366.0"),
            "statusFlags": .int(4),
            "audioLatencies": .array([.dict(["inputLatencyMicros": .int(0), "outputLatencyMicros": .int(0), "type": .int(100)])]),
        ]))
    }

    private func beginIfNeeded() {
        guard number == nil else { return }
        let (n, path) = shared.beginSession()
        number = n
        playout.wavPath = path
    }

    private func announce(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        let description: SDPDescription
        do {
            description = try SDP.parse(request.bodyText)
        } catch {
            return status(400, for: request)
        }
        guard !description.encrypted else { return status(501, for: request) }
        let fmt = description.format
        guard fmt.bitDepth == 16, (1...2).contains(fmt.channels), fmt.framesPerPacket > 0 else {
            return status(415, for: request)
        }
        do {
            // The ALAC cookie from the fmtp line as announced (history mult, rice limit, ...).
            let fmtp = request.bodyText.split(whereSeparator: \.isNewline)
                .first { $0.hasPrefix("a=fmtp:") }.map { String($0.dropFirst("a=fmtp:".count)) }
            try playout.setFormat(fmt, cookie: fmt.codec == .alac ? fmtp.flatMap { ALACMagicCookie.make(fmtp: $0) } : nil)
            ntp.sampleRate = fmt.sampleRate
        } catch {
            return status(500, for: request)
        }
        beginIfNeeded()
        let codec = AudioPlayout.codecName(fmt)
        shared.emit(.announced(codec: codec))
        return ok
    }

    private func setup(_ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<RTSPResponse> {
        beginIfNeeded()
        let transport = Self.parseTransport(request.headers["Transport"] ?? "")
        func address(_ key: String) -> SocketAddress? {
            guard let ip = peerIP, let p = transport[key].flatMap(Int.init), p > 0, p < 65536 else { return nil }
            return try? SocketAddress(ipAddress: ip, port: p)
        }
        if let control = address("control_port") { playout.senderControl = control }
        let senderTiming = address("timing_port")
        if let timing {  // repeated SETUP: reuse the sockets
            timing.sender = senderTiming ?? timing.sender
            return loop.makeSucceededFuture(setupResponse(ok))
        }
        let host = channel.localAddress?.ipAddress ?? config.host
        let audio = AudioReceiverSocket.bind(host: host, port: 0, on: loop) { [self] bytes in audioDatagram(bytes) }
        let control = AudioReceiverSocket.bind(host: host, port: 0, on: loop) { [self] bytes in controlDatagram(bytes) }
        let timingPort = ReceiverTimingPort.bind(host: host, on: loop) { [shared] body in shared.reception(body) }
        return audio.and(control).and(timingPort).map { [self] pair, t in
            self.audio = pair.0
            self.control = pair.1
            playout.control = pair.1
            t.sender = senderTiming
            timing = t
            startTimers()
            return setupResponse(ok)
        }.flatMapErrorThrowing { [self] _ in
            status(500, for: request)
        }
    }

    private func setupResponse(_ ok: RTSPResponse) -> RTSPResponse {
        var r = ok
        let a = audio?.localPort ?? 0
        let c = control?.localPort ?? 0
        let t = timing?.port ?? 0
        r.headers.set("Transport", "RTP/AVP/UDP;unicast;mode=record;server_port=\(a);control_port=\(c);timing_port=\(t)")
        r.headers.set("Session", String(sessionID))
        r.headers.set("Audio-Jack-Status", "connected; type=analog")
        return r
    }

    static func parseTransport(_ value: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in value.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = kv.first else { continue }
            let key = name.trimmingWhitespaceAndNewlines().lowercased()
            out[key] = kv.count > 1 ? kv[1].trimmingWhitespaceAndNewlines() : ""
        }
        return out
    }

    private func setParameter(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        guard let changes = ReceiverParameters.read(request) else { return status(400, for: request) }
        shared.reception { ReceiverParameters.apply(changes, to: &$0) }
        for change in changes {
            switch change {
            case .volume(let v): shared.emit(.volume(v))
            case .progress(let p): shared.emit(.progress(p))
            case .metadata(let m): shared.emit(.metadata(m))
            case .artwork(let type, let bytes): shared.emit(.artwork(type: type, bytes: bytes))
            }
        }
        return ok
    }

    // MARK: UDP

    private func startTimers() {
        playout.startClock(on: loop)
        timingTask = timing?.scheduleRequests(on: loop, every: config.timingInterval)
    }

    private func audioDatagram(_ bytes: [UInt8]) {
        guard !ended, bytes.count >= 2, bytes[1] & 0x7F == RAOPAudioPacket.payloadType,
              let packet = try? RAOPAudioPacket(decoding: bytes) else { return }
        let index = audioPacketIndex
        audioPacketIndex += 1
        let arrival = ContinuousClock.now
        shared.update { r in
            r.packetsReceived += 1
            r.audioBytesReceived += bytes.count
            if r.firstAudioPacketAt == nil || index == 0 { r.firstAudioPacketAt = arrival }
            if let last = r.lastAudioArrival, index > 0 {
                let d = arrival - last
                r.arrivalIntervals.add(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            }
            r.lastAudioArrival = arrival
        }
        if let drop = config.dropAudioPacket, drop(index, packet.sequenceNumber) { return }
        ntp.arrived(seq: packet.sequenceNumber, rtp: packet.timestamp, at: PTPMaster.monotonicNow())
        playout.insert(seq: packet.sequenceNumber, payload: packet.payload)
    }

    func countRTSPBytes(_ n: Int) {
        shared.update { $0.rtspBytesReceived += n }
    }

    private func controlDatagram(_ bytes: [UInt8]) {
        guard !ended, let packet = try? RAOPControlPacket(decoding: bytes) else { return }
        shared.update { $0.controlBytesReceived += bytes.count }
        switch packet {
        case .sync(let sync):
            ntp.sync(sync)
            shared.update { r in
                r.syncPacketsReceived += 1
                r.ntp.syncAnchors += 1
            }
        case .retransmitResponse(let r):
            shared.update { $0.retransmitResponsesReceived += 1 }
            ntp.arrived(seq: r.packet.sequenceNumber, rtp: r.packet.timestamp, at: PTPMaster.monotonicNow())
            playout.insert(seq: r.packet.sequenceNumber, payload: r.packet.payload, isRetransmission: true)
        case .retransmitRequest:
            break
        }
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
        let wavPath = playout.finish()
        ended = true
        timingTask?.cancel()
        audio?.closeNow()
        control?.closeNow()
        timing?.close()
        guard number != nil else { return }  // a connection that never announced/set up is no session
        shared.emit(.sessionEnded(wavPath: wavPath, report: shared.endSession()))
    }
}
