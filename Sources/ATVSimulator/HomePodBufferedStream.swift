import ATVAudio
import ATVCore
import ATVPTP
import ATVRAOP
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// One buffered audio stream (type 103, docs/PTP-AND-BUFFERED-AUDIO.md §4) of a `VirtualHomePod`:
/// a TCP data listener whose connection carries length-prefixed packets sealed with `shk`,
/// deframed by `BufferedAudioDeframer`; packets with an SSRC that is no known format code are
/// dropped (as shairport-sync drops them); the rest wait until SETRATEANCHORTIME gives an anchor
/// and are played when their time comes by the master's clock (frame F at
/// `networkTime + (F − rtpTime)/rate`), each recorded with its play instant. `rate` 0 pauses
/// (buffered packets stay), FLUSHBUFFERED discards. ALAC 44.1 kHz/16 (SSRC 0xFACE) and AAC-LC
/// 44.1 kHz stereo (SSRC 0x16000000: raw units, decoded with the AudioSpecificConfig the format
/// implies, as shairport-sync decodes them with the ADTS header it prepends) are decoded to the WAV
/// file; as shairport-sync, the first AAC block of a sequence (the stream's first, the first after
/// a flush or a timestamp gap) plays muted: it decodes to the encoder's priming. Other formats
/// are counted, not decoded.
///
/// Confined to its event loop (the data connection is accepted on it), hence `@unchecked Sendable`.
final class HomePodBufferedStream: @unchecked Sendable {
    let loop: EventLoop
    let shared: HomePodShared
    let key: [UInt8]
    let format: BufferedAudioFormat
    private let clock: (follower: PTPFollower, rules: PTPClockRules)
    private var listener: Channel?
    private var connections: [Channel] = []
    private var deframer = BufferedAudioDeframer()
    private var packetsAccepted = 0
    /// Packets waiting to be played, in arrival (= RTP) order.
    private var queue: [(seq: UInt32, rtp: UInt32, payload: [UInt8], at: UInt64)] = []
    private var anchor: PTPAnchor?
    /// An immediate FLUSHBUFFERED: packets before this sequence number are discarded.
    private var flushUntil: UInt32?
    private var alac: ALACDecoder?
    private var aac: AACDecoder?
    /// AAC: the RTP time the next block continues at (nil: the next block starts a sequence).
    private var aacNext: UInt32?
    private var wav: WAVWriter?
    private var wavFailed = false
    private let wavPath: String?
    private var tickTask: RepeatedTask?
    private(set) var finished = false

    var dataPort: Int { listener?.localAddress?.port ?? 0 }

    private init(loop: EventLoop, shared: HomePodShared, format: BufferedAudioFormat, key: [UInt8], wavPath: String?,
                 clock: (PTPFollower, PTPClockRules)) throws {
        self.loop = loop
        self.shared = shared
        self.format = format
        self.key = key
        self.wavPath = wavPath
        self.clock = (follower: clock.0, rules: clock.1)
        if format == .alac44100x16Stereo {
            alac = try ALACDecoder(framesPerPacket: 352,
                                   magicCookie: ALACMagicCookie.make(frameLength: 352, channels: 2, sampleRate: 44_100))
        } else if format == .aacLC44100Stereo {
            aac = try AACDecoder(sampleRate: 44_100, channels: 2)
        }
    }

    /// Binds the data listener on `host` and starts the playout clock (every 10 ms).
    static func make(loop: EventLoop, host: String, shared: HomePodShared, format: BufferedAudioFormat, key: [UInt8],
                     wavPath: String?, clock: (PTPFollower, PTPClockRules)) -> EventLoopFuture<HomePodBufferedStream> {
        let stream: HomePodBufferedStream
        do {
            stream = try HomePodBufferedStream(loop: loop, shared: shared, format: format, key: key, wavPath: wavPath, clock: clock)
        } catch {
            return loop.makeFailedFuture(error)
        }
        shared.reception { $0.codec = format.description }
        let receiveBuffer = shared.configuration.dataReceiveBuffer
        return TCPListener.bind(host: host, port: 0, on: loop) { channel, pipeline in
            try pipeline.addHandler(BufferedDataHandler(stream: stream))
            stream.connections.append(channel)
        }.flatMap { listener in
            // A small receive buffer, set on the listener so the connection starts with it; and
            // an Ethernet-sized MSS, without which loopback's 64 KiB segments never fit the small
            // window again and the sender waits for TCP's backed-off zero-window probes.
            guard let receiveBuffer else { return loop.makeSucceededFuture(listener) }
            return listener.setOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
                .flatMap { listener.setOption(.tcpOption(NIOBSDSocket.Option(rawValue: CInt(TCP_MAXSEG))), value: 1448) }
                .map { listener }
        }.map { listener in
            stream.listener = listener
            stream.tickTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in stream.tick() }
            return stream
        }
    }

    // MARK: Data connection

    fileprivate func received(_ bytes: [UInt8], on channel: Channel) {
        guard !finished else { return }
        shared.update { $0.audioBytesReceived += bytes.count }
        deframer.append(bytes)
        do {
            while let packet = try deframer.next() {
                try accept(packet)
                packetsAccepted += 1
                if let stall = shared.configuration.dataStall, packetsAccepted == stall.afterPackets {
                    stopReading(channel, for: stall.duration)
                }
            }
        } catch {
            // A bad length or a packet that does not open ends the stream's connection (fails closed).
            shared.update { $0.errors.append("buffered data: \(error)") }
            channel.close(promise: nil)
        }
    }

    /// The stall hook (`Configuration.dataStall`): no more reads from the socket (what was read
    /// is still queued and played), until `duration` has passed.
    private func stopReading(_ channel: Channel, for duration: Duration?) {
        channel.setOption(.autoRead, value: false).whenSuccess { [self] in
            shared.update { $0.ptp.dataStalls += 1 }
        }
        guard let duration else { return }
        let stallStart = PTPMaster.monotonicNow()
        loop.scheduleTask(in: .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000
                                           + duration.components.attoseconds / 1_000_000_000)) { [self] in
            guard !finished else { return }
            shared.update { $0.ptp.dataStalledNanoseconds += Int64(PTPMaster.monotonicNow() - stallStart) }
            channel.setOption(.autoRead, value: true).whenSuccess { channel.read() }
        }
    }

    private func accept(_ packet: [UInt8]) throws(ATVError) {
        let now = PTPMaster.monotonicNow()
        shared.update { r in
            r.packetsReceived += 1
            if r.firstAudioPacketAt == nil { r.firstAudioPacketAt = .now }
        }
        let header = try BufferedAudioHeader(decoding: packet)
        guard BufferedAudioFormat(ssrc: header.ssrc) != nil else {
            // shairport-sync: "Unrecognised or invalid ssrc", the packet is dropped.
            shared.update { $0.ptp.packetsDroppedForSSRC += 1 }
            return
        }
        let opened: BufferedAudioPacket
        do {
            opened = try BufferedAudioPacket(opening: packet, key: key)
        } catch {
            shared.update { $0.decryptFailures += 1 }
            throw error
        }
        shared.update { r in
            r.packetsDecrypted += 1
            r.ptp.packetsBySSRC[header.ssrc, default: 0] += 1
        }
        if let until = flushUntil {
            guard Self.sequence(opened.sequenceNumber, isAtOrAfter: until) else {
                shared.update { $0.ptp.packetsFlushed += 1 }
                return
            }
            flushUntil = nil
        }
        queue.append((opened.sequenceNumber, opened.timestamp, opened.payload, now))
    }

    /// 23-bit sequence comparison (wrapping).
    static func sequence(_ a: UInt32, isAtOrAfter b: UInt32) -> Bool {
        (a &- b) & BufferedAudioPacket.sequenceMask < 0x40_0000
    }

    // MARK: Anchors and flushes

    /// SETRATEANCHORTIME with rate 1: play from the anchor; nil (rate 0): pause, keeping what is
    /// buffered. What was due by the previous anchor before the request arrived has played (a
    /// receiver's output runs continuously; our clock ticks every 10 ms).
    func setAnchor(_ anchor: PTPAnchor?) {
        tick()
        replaceAnchor(anchor)
    }

    /// The anchor in force from now on, nothing played first.
    private func replaceAnchor(_ anchor: PTPAnchor?) {
        self.anchor = anchor
        shared.update { r in
            r.ptp.anchorFrame = anchor?.frame
            r.ptp.anchorTime = anchor?.time
        }
    }

    /// FLUSHBUFFERED: immediate (no `from`): stop, clear the anchor, discard everything before
    /// `untilSequence`; deferred: drop the packets from `from` up to, not including, `until`.
    func flush(_ flush: BufferedFlush) {
        tick()
        let now = Int64(clamping: PTPMaster.monotonicNow())
        shared.update { r in
            r.ptp.flushes += 1
            r.ptp.flushRequests.append(.init(untilSequence: flush.untilSequence, untilTimestamp: flush.untilTimestamp,
                                             fromSequence: flush.fromSequence, arrivedAt: now,
                                             packetsPlayedBefore: r.ptp.playInstants.count))
        }
        if let from = flush.fromSequence {
            let before = queue.count
            queue.removeAll { Self.sequence($0.seq, isAtOrAfter: from) && !Self.sequence($0.seq, isAtOrAfter: flush.untilSequence) }
            let dropped = before - queue.count
            shared.update { $0.ptp.packetsFlushed += dropped }
            return
        }
        // Not setAnchor(nil): its tick could play one more packet that fell due since the one
        // above, after the request recorded what had played before it.
        replaceAnchor(nil)
        aacNext = nil
        let before = queue.count
        queue.removeAll { !Self.sequence($0.seq, isAtOrAfter: flush.untilSequence) }
        let dropped = before - queue.count
        shared.update { $0.ptp.packetsFlushed += dropped }
        if queue.isEmpty { flushUntil = flush.untilSequence & BufferedAudioPacket.sequenceMask }
    }

    // MARK: Playout

    /// Plays every packet whose time has come by the anchor and the follower's offset. Packets
    /// before the anchor's frame are dropped (earlier content); none play without an anchor or
    /// a measured clock.
    private func tick() {
        guard !finished, let anchor, !queue.isEmpty else { return }
        let status = clock.follower.status
        let now = PTPMaster.monotonicNow()
        guard clock.rules.refusal(clock: anchor.clock, status, now: now) == nil, let offset = status.offset else { return }
        while let first = queue.first {
            let master = anchor.masterTime(of: first.rtp, sampleRate: format.sampleRate)
            let local = master - offset
            if Int32(bitPattern: first.rtp &- anchor.frame) < 0 {
                queue.removeFirst()
                shared.update { $0.ptp.packetsBeforeAnchor += 1 }
                continue
            }
            guard local <= Int64(clamping: now) else { break }
            queue.removeFirst()
            let pcm = decode(first.payload, rtp: first.rtp)
            let late = Int64(clamping: first.at) > local
            shared.update { r in
                r.ptp.update(status)
                r.ptp.playInstants.append(.init(rtpTime: first.rtp, frames: format.framesPerPacket, masterTime: master,
                                                localTime: local, late: late, framesBefore: r.framesWritten))
            }
            write(pcm)
        }
    }

    private func decode(_ payload: [UInt8], rtp: UInt32) -> [UInt8]? {
        if let aac {
            let continues = aacNext == rtp
            aacNext = rtp &+ 1024
            guard let pcm = try? aac.decode(payload), pcm.frames == 1024 else {
                shared.reception { $0.decodeErrors += 1 }
                return [UInt8](repeating: 0, count: 1024 * 4)
            }
            guard continues else {
                shared.update { $0.ptp.blocksMuted += 1 }
                return [UInt8](repeating: 0, count: 1024 * 4)
            }
            return pcm.bytes
        }
        guard let alac else {
            shared.update { $0.ptp.packetsNotDecoded += 1 }
            return nil
        }
        guard let pcm = try? alac.decode(payload) else {
            shared.reception { $0.decodeErrors += 1 }
            return [UInt8](repeating: 0, count: 352 * 4)
        }
        return pcm.bytes
    }

    private func write(_ pcm: [UInt8]?) {
        guard let pcm, !pcm.isEmpty else { return }
        if wav == nil, !wavFailed, let wavPath {
            do {
                wav = try WAVWriter(path: wavPath)
                shared.reception { $0.wavFiles.append(wavPath) }
            } catch {
                wavFailed = true
                shared.update { $0.errors.append("\(error)") }
            }
        }
        try? wav?.write(bytes: pcm)
        shared.reception { $0.framesWritten += pcm.count / 4 }
    }

    /// Closes the listener and connections and the WAV file; what was not yet due is not played.
    func finish() {
        guard !finished else { return }
        tick()
        finished = true
        tickTask?.cancel()
        try? wav?.close()
        let left = queue.count
        queue = []
        let status = clock.follower.status
        shared.update { r in
            r.ptp.packetsNotPlayed += left
            r.ptp.update(status)
        }
        listener?.close(promise: nil)
        for c in connections { c.close(promise: nil) }
    }
}

/// The data connection's bytes to the stream.
private final class BufferedDataHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let stream: HomePodBufferedStream

    init(stream: HomePodBufferedStream) { self.stream = stream }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        stream.received(buffer.readBytes(length: buffer.readableBytes) ?? [], on: context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
