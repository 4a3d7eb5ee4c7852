import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVHTTP
import ATVRAOP
import Foundation
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
    private var wavPath: String?
    private var wav: WAVWriter?
    private var wavFailed = false
    private var format: RAOPAudioFormat?
    private var alac: ALACDecoder?
    private var jitter: JitterBuffer
    private var audioChannel: Channel?
    private var controlChannel: Channel?
    private var timingChannel: Channel?
    private var senderControl: SocketAddress?
    private var senderTiming: SocketAddress?
    private var tickTask: RepeatedTask?
    private var timingTask: RepeatedTask?
    private var retransmitCounter: UInt16 = 0
    private var audioPacketIndex = 0
    private var published = JitterBuffer.Statistics()
    private var ending = false
    private var ended = false
    private let sessionID = UInt32.random(in: 1...UInt32.max)

    init(channel: Channel, shared: SpeakerShared) {
        self.channel = channel
        self.loop = channel.eventLoop
        self.shared = shared
        self.jitter = JitterBuffer(configuration: shared.configuration.jitter)
        shared.register(channel)
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
            expectFirstPacket(request)
        case ("FLUSH", _):
            process(jitter.finish())
            expectFirstPacket(request)
        case ("SET_PARAMETER", _):
            response = setParameter(request, response)
        case ("GET_PARAMETER", _):
            if request.bodyText.contains("volume") {
                response.headers.set("Content-Type", "text/parameters")
                let v = shared.report.withLock { $0.volume } ?? -20.0
                response.body = Array("volume: \(v)\r\n".utf8)
            }
        case ("TEARDOWN", _):
            response.headers.set("Connection", "close")
            scheduleEnd()
        default:
            response = status(501, for: request)
        }
        return loop.makeSucceededFuture(response)
    }

    /// `RTP-Info: seq=N;rtptime=T` names the next packet: a lost first packet then counts as a gap.
    private func expectFirstPacket(_ request: RTSPRequest) {
        guard let info = request.headers["RTP-Info"] else { return }
        for part in info.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == "seq",
               let seq = UInt16(kv[1].trimmingCharacters(in: .whitespaces)) {
                jitter.expect(firstSeq: seq)
            }
        }
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
            "model": .string("AudioAccessory1,1"),
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
        wavPath = path
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
        if fmt.codec == .alac {
            do {
                // The cookie from the fmtp line as announced (history mult, rice limit, ...).
                let fmtp = request.bodyText.split(whereSeparator: \.isNewline)
                    .first { $0.hasPrefix("a=fmtp:") }.map { String($0.dropFirst("a=fmtp:".count)) }
                let cookie = fmtp.flatMap { ALACMagicCookie.make(fmtp: $0) }
                    ?? ALACMagicCookie.make(frameLength: fmt.framesPerPacket, channels: fmt.channels, sampleRate: fmt.sampleRate)
                alac = try ALACDecoder(framesPerPacket: fmt.framesPerPacket, magicCookie: cookie)
            } catch {
                return status(500, for: request)
            }
        }
        beginIfNeeded()
        format = fmt
        let codec = "\(fmt.codec == .alac ? "AppleLossless" : "L16")/\(fmt.sampleRate)/\(fmt.channels)"
        shared.update { $0.codec = codec }
        shared.emit(.announced(codec: codec))
        return ok
    }

    private func setup(_ request: RTSPRequest, _ ok: RTSPResponse) -> EventLoopFuture<RTSPResponse> {
        beginIfNeeded()
        let transport = Self.parseTransport(request.headers["Transport"] ?? "")
        if let ip = peerIP {
            if let p = transport["control_port"].flatMap(Int.init), p > 0, p < 65536 {
                senderControl = try? SocketAddress(ipAddress: ip, port: p)
            }
            if let p = transport["timing_port"].flatMap(Int.init), p > 0, p < 65536 {
                senderTiming = try? SocketAddress(ipAddress: ip, port: p)
            }
        }
        if audioChannel != nil {  // repeated SETUP: reuse the sockets
            return loop.makeSucceededFuture(setupResponse(ok))
        }
        let host = channel.localAddress?.ipAddress ?? config.host
        let audio = bindUDP(host: host) { [self] bytes in audioDatagram(bytes) }
        let control = bindUDP(host: host) { [self] bytes in controlDatagram(bytes) }
        let timing = bindUDP(host: host) { [self] bytes in timingDatagram(bytes) }
        return audio.and(control).and(timing).map { [self] pair, t in
            audioChannel = pair.0
            controlChannel = pair.1
            timingChannel = t
            startTimers()
            return setupResponse(ok)
        }.flatMapErrorThrowing { [self] _ in
            status(500, for: request)
        }
    }

    private func setupResponse(_ ok: RTSPResponse) -> RTSPResponse {
        var r = ok
        let a = audioChannel?.localAddress?.port ?? 0
        let c = controlChannel?.localAddress?.port ?? 0
        let t = timingChannel?.localAddress?.port ?? 0
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
            let key = name.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            out[key] = kv.count > 1 ? kv[1].trimmingCharacters(in: .whitespacesAndNewlines) : ""
        }
        return out
    }

    private func setParameter(_ request: RTSPRequest, _ ok: RTSPResponse) -> RTSPResponse {
        let type = (request.headers["Content-Type"] ?? "").lowercased()
        if type.hasPrefix("text/parameters") {
            for line in request.bodyText.split(whereSeparator: \.isNewline) {
                let kv = line.split(separator: ":", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let key = kv[0].trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                let value = kv[1].trimmingCharacters(in: .whitespacesAndNewlines)
                switch key {
                case "volume":
                    if let v = Double(value) {
                        shared.update { $0.volume = v }
                        shared.emit(.volume(v))
                    }
                case "progress":
                    shared.update { $0.progress = value }
                    shared.emit(.progress(value))
                default: break
                }
            }
        } else if type.hasPrefix("application/x-dmap-tagged") {
            guard let info = try? RAOPTrackInfo(dmap: request.body) else { return status(400, for: request) }
            let m = MediaMetadata(title: info.title, artist: info.artist, album: info.album)
            shared.update { $0.metadata = m }
            shared.emit(.metadata(m))
        } else if type.hasPrefix("image/") {
            let n = request.body.count
            shared.update { $0.artworkBytes = n; $0.artworkType = type }
            shared.emit(.artwork(type: type, bytes: n))
        }
        return ok
    }

    // MARK: UDP

    private func bindUDP(host: String, _ onDatagram: @escaping @Sendable ([UInt8]) -> Void) -> EventLoopFuture<Channel> {
        DatagramHandler.bind(loop: loop, host: host, port: 0, onDatagram)
    }

    private func startTimers() {
        tickTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { [self] _ in
            process(jitter.tick(now: NIODeadline.now().uptimeNanoseconds))
        }
        timingTask = loop.scheduleRepeatedTask(initialDelay: .zero, delay: config.timingInterval.timeAmount) { [self] _ in
            sendTimingRequest()
        }
    }

    private func sendTimingRequest() {
        guard let ch = timingChannel, let dest = senderTiming else { return }
        let packet = RAOPTimingPacket(isReply: false, sendTime: NTPTime.now())
        send(packet.bytes, on: ch, to: dest)
        shared.update { $0.timingRequestsSent += 1 }
    }

    private func send(_ bytes: [UInt8], on ch: Channel, to dest: SocketAddress) {
        let buffer = ch.allocator.buffer(bytes: bytes)
        ch.writeAndFlush(AddressedEnvelope(remoteAddress: dest, data: buffer), promise: nil)
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
        process(jitter.insert(seq: packet.sequenceNumber, payload: packet.payload,
                              now: NIODeadline.now().uptimeNanoseconds))
    }

    func countRTSPBytes(_ n: Int) {
        shared.update { $0.rtspBytesReceived += n }
    }

    private func controlDatagram(_ bytes: [UInt8]) {
        guard !ended, let packet = try? RAOPControlPacket(decoding: bytes) else { return }
        shared.update { $0.controlBytesReceived += bytes.count }
        switch packet {
        case .sync:
            shared.update { $0.syncPacketsReceived += 1 }
        case .retransmitResponse(let r):
            shared.update { $0.retransmitResponsesReceived += 1 }
            process(jitter.insert(seq: r.packet.sequenceNumber, payload: r.packet.payload, isRetransmission: true,
                                  now: NIODeadline.now().uptimeNanoseconds))
        case .retransmitRequest:
            break
        }
    }

    private func timingDatagram(_ bytes: [UInt8]) {
        guard let packet = try? RAOPTimingPacket(decoding: bytes) else { return }
        if packet.isReply {
            shared.update { $0.timingRepliesReceived += 1 }
        } else if let ch = timingChannel, let dest = senderTiming {
            // Answer a sender's request too (some senders ask).
            let now = NTPTime.now()
            send(RAOPTimingPacket.reply(to: packet, receivedAt: now, sentAt: now).bytes, on: ch, to: dest)
        }
    }

    // MARK: Playback

    private func process(_ outputs: [JitterBuffer.Output]) {
        for output in outputs {
            switch output {
            case .play(_, let payload, _):
                write(decode(payload))
            case .lost(_, let count):
                let frames = count * (format?.framesPerPacket ?? 352)
                write([UInt8](repeating: 0, count: frames * 4))
                shared.update { $0.silenceFramesWritten += frames }
            case .requestRetransmit(let first, let count):
                guard let ch = controlChannel, let dest = senderControl else { continue }
                retransmitCounter &+= 1
                let req = RAOPRetransmitRequest(sequenceNumber: retransmitCounter, firstSequence: first, count: count)
                send(req.bytes, on: ch, to: dest)
            }
        }
        publishStatistics()
    }

    /// Adds what the jitter buffer counted since the last call to the shared report.
    private func publishStatistics() {
        let st = jitter.statistics
        let old = published
        guard st != old else { return }
        published = st
        shared.update { r in
            r.retransmitRequestsSent += st.requests - old.requests
            r.packetsRequested += st.requestedPackets - old.requestedPackets
            r.packetsRecovered += st.recovered - old.recovered
            r.unrecoveredPackets += st.lost - old.lost
            r.packetsDiscarded += st.discarded - old.discarded
        }
    }

    /// Turns one packet payload into s16le stereo PCM.
    private func decode(_ payload: [UInt8]) -> [UInt8] {
        let fmt = format ?? RAOPAudioFormat(codec: .l16)
        if fmt.codec == .alac {
            guard let alac, let pcm = try? alac.decode(payload) else {
                shared.update { $0.decodeErrors += 1 }
                return [UInt8](repeating: 0, count: fmt.framesPerPacket * 4)
            }
            return pcm.bytes  // the decoder always gives stereo
        }
        return Self.littleEndianStereo(fromL16BigEndian: payload, channels: fmt.channels)
    }

    /// Big-endian L16 (whole frames only) → s16le stereo; shared with the virtual HomePod.
    static func littleEndianStereo(fromL16BigEndian payload: [UInt8], channels: Int) -> [UInt8] {
        let frameSize = channels * 2
        let usable = payload.count - payload.count % frameSize
        var out = [UInt8](repeating: 0, count: usable)
        var i = 0
        while i + 1 < usable {
            out[i] = payload[i + 1]
            out[i + 1] = payload[i]
            i += 2
        }
        return channels == 2 ? out : monoToStereo(out)
    }

    static func monoToStereo(_ pcm: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(pcm.count * 2)
        var i = 0
        while i + 1 < pcm.count {
            out += [pcm[i], pcm[i + 1], pcm[i], pcm[i + 1]]
            i += 2
        }
        return out
    }

    private func write(_ pcm: [UInt8]) {
        guard !pcm.isEmpty else { return }
        if wav == nil, !wavFailed, let path = wavPath {
            do {
                wav = try WAVWriter(path: path)
                shared.update { $0.wavFiles.append(path) }
            } catch {
                wavFailed = true
                shared.update { $0.errors.append("\(error)") }
            }
        }
        do {
            try wav?.write(bytes: pcm)
        } catch {
            shared.update { $0.errors.append("\(error)") }
            try? wav?.close()
            wav = nil
            wavFailed = true
        }
        shared.update { $0.framesWritten += pcm.count / 4 }
    }

    // MARK: End

    private func scheduleEnd() {
        guard !ending else { return }
        ending = true
        loop.scheduleTask(in: config.endGrace.timeAmount) { [self] in finishSession() }
    }

    func connectionClosed() {
        loop.preconditionInEventLoop()
        shared.unregister(channel)
        scheduleEnd()
    }

    private func finishSession() {
        guard !ended else { return }
        process(jitter.finish())
        ended = true
        tickTask?.cancel()
        timingTask?.cancel()
        for ch in [audioChannel, controlChannel, timingChannel].compactMap({ $0 }) { ch.close(promise: nil) }
        try? wav?.close()
        guard number != nil else { return }  // a connection that never announced/set up is no session
        let report = shared.report.withLock { r -> SpeakerReport in
            r.sessionsEnded += 1
            return r
        }
        shared.emit(.sessionEnded(wavPath: wav?.path, report: report))
    }
}

/// Receives datagrams and hands their bytes to a closure (on the channel's event loop).
final class DatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onDatagram: @Sendable ([UInt8]) -> Void
    init(onDatagram: @escaping @Sendable ([UInt8]) -> Void) { self.onDatagram = onDatagram }

    /// A UDP socket of a virtual receiver, with a 4 MB receive buffer as real receivers have, so a
    /// burst from a sender is not dropped while the event loop is busy.
    static func bind(loop: EventLoop, host: String, port: Int,
                     _ onDatagram: @escaping @Sendable ([UInt8]) -> Void) -> EventLoopFuture<Channel> {
        DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 * 1024 * 1024)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(DatagramHandler(onDatagram: onDatagram))
                }
            }
            .bind(host: host, port: port)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        onDatagram(Array(envelope.data.readableBytesView))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like: keep the socket open.
    }
}

/// RTSP over TCP: incremental parsing, one response per request, in order.
final class RTSPServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let session: SpeakerSession
    private var parser = RTSPParser()
    private var pending: EventLoopFuture<Void>?

    init(session: SpeakerSession) { self.session = session }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        session.countRTSPBytes(buffer.readableBytes)
        parser.append(buffer.readableBytesView)
        let channel = context.channel
        while true {
            let request: RTSPRequest?
            do {
                request = try parser.nextRequest()
            } catch {
                var bad = RTSPResponse(status: 400)
                bad.headers.set("Connection", "close")
                let bytes = bad.serialized
                enqueue(on: channel) { channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)) }
                    .whenComplete { _ in channel.close(promise: nil) }
                return
            }
            guard let request else { return }
            let session = self.session
            enqueue(on: channel) {
                session.handle(request).flatMap { response in
                    channel.writeAndFlush(channel.allocator.buffer(bytes: response.serialized))
                }
            }
        }
    }

    /// Chains `work` after the previous response so responses keep the request order.
    @discardableResult
    private func enqueue(on channel: Channel, _ work: @escaping @Sendable () -> EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let previous = pending ?? channel.eventLoop.makeSucceededVoidFuture()
        let next = previous.flatMapError { _ in channel.eventLoop.makeSucceededVoidFuture() }.flatMap(work)
        pending = next
        return next
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.connectionClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
