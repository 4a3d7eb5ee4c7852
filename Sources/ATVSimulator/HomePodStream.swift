import ATVAudio
import ATVCore
import ATVRAOP
import NIOCore
import NIOPosix

/// One AirPlay 2 real-time audio stream (type 96) of a `VirtualHomePod`: the UDP data and control
/// sockets, per-packet decryption with `shk`, the jitter buffer (retransmit requests to the
/// sender's control port), PCM/ALAC decoding and the WAV file.
///
/// Confined to its event loop (`@unchecked Sendable` like `SpeakerSession`).
final class HomePodStream: @unchecked Sendable {
    let loop: EventLoop
    let shared: HomePodShared
    let format: RAOPAudioFormat
    let key: [UInt8]
    let wavPath: String?
    private let senderControl: SocketAddress?
    private var dataChannel: Channel?
    private var controlChannel: Channel?
    private var alac: ALACDecoder?
    private var jitter: JitterBuffer
    private var wav: WAVWriter?
    private var wavFailed = false
    private var tickTask: RepeatedTask?
    private var retransmitCounter: UInt16 = 0
    private var packetIndex = 0
    private var published = JitterBuffer.Statistics()
    private(set) var finished = false
    private var config: VirtualHomePod.Configuration { shared.configuration }

    var dataPort: Int { dataChannel?.localAddress?.port ?? 0 }
    var controlPort: Int { controlChannel?.localAddress?.port ?? 0 }

    private init(loop: EventLoop, shared: HomePodShared, format: RAOPAudioFormat, key: [UInt8],
                 senderControl: SocketAddress?, wavPath: String?) throws {
        self.loop = loop
        self.shared = shared
        self.format = format
        self.key = key
        self.senderControl = senderControl
        self.wavPath = wavPath
        jitter = JitterBuffer(configuration: shared.configuration.jitter)
        if format.codec == .alac {
            alac = try ALACDecoder(framesPerPacket: format.framesPerPacket,
                                   magicCookie: ALACMagicCookie.make(frameLength: format.framesPerPacket, channels: format.channels,
                                                                     sampleRate: format.sampleRate))
        }
        let codec = "\(format.codec == .alac ? "AppleLossless" : "L16")/\(format.sampleRate)/\(format.channels)"
        shared.update { $0.codec = codec }
    }

    /// Binds the data and control sockets and starts the jitter buffer's clock.
    static func make(loop: EventLoop, host: String, shared: HomePodShared, format: RAOPAudioFormat, key: [UInt8],
                     senderControl: SocketAddress?, wavPath: String?) -> EventLoopFuture<HomePodStream> {
        let stream: HomePodStream
        do {
            stream = try HomePodStream(loop: loop, shared: shared, format: format, key: key,
                                       senderControl: senderControl, wavPath: wavPath)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let data = DatagramHandler.bind(loop: loop, host: host, port: shared.configuration.audioPort) { [stream] b in stream.dataDatagram(b) }
        let control = DatagramHandler.bind(loop: loop, host: host, port: 0) { [stream] b in stream.controlDatagram(b) }
        return data.and(control).map { d, c in
            stream.dataChannel = d
            stream.controlChannel = c
            stream.tickTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { [stream] _ in
                stream.process(stream.jitter.tick(now: NIODeadline.now().uptimeNanoseconds))
            }
            return stream
        }
    }


    /// `RTP-Info: seq=N;rtptime=T` names the next packet, so a lost first packet counts as a gap.
    func expectFirstPacket(_ rtpInfo: String?) {
        guard let rtpInfo else { return }
        for part in rtpInfo.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == "seq",
               let seq = UInt16(kv[1].trimmingCharacters(in: .whitespaces)) {
                jitter.expect(firstSeq: seq)
            }
        }
    }

    func flush() { process(jitter.finish()) }

    // MARK: Datagrams

    private func dataDatagram(_ bytes: [UInt8]) {
        guard !finished else { return }
        let index = packetIndex
        packetIndex += 1
        let arrival = ContinuousClock.now
        shared.update { r in
            r.packetsReceived += 1
            r.audioBytesReceived += bytes.count
            if r.firstAudioPacketAt == nil {
                r.firstAudioPacketAt = arrival
                r.beforeFirstAudio = .init(connections: r.connections,
                                           remoteControlSetups: r.remoteControlSessions + r.remoteControlStreams + r.remoteControlRefused)
            }
        }
        guard bytes.count >= AirPlay2AudioCipher.headerSize + AirPlay2AudioCipher.overhead,
              bytes[0] & 0xC0 == 0x80, bytes[1] & 0x7F == RAOPAudioPacket.payloadType else {
            shared.update { $0.malformedPackets += 1 }
            return
        }
        if config.noProgress {
            shared.update { $0.packetsDiscarded += 1 }
            return
        }
        let seq = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        if let drop = config.dropAudioPacket, drop(index, seq) { return }
        guard let payload = open(bytes) else { return }
        process(jitter.insert(seq: seq, payload: payload, now: NIODeadline.now().uptimeNanoseconds))
    }

    /// Decrypts a packet; nil (and counted) when it does not authenticate.
    private func open(_ packet: [UInt8]) -> [UInt8]? {
        do {
            let plain = try AirPlay2AudioCipher.open(packet, key: key)
            shared.update { $0.packetsDecrypted += 1 }
            return Array(plain[RTPHeader.size...])
        } catch {
            shared.update { $0.decryptFailures += 1 }
            return nil
        }
    }

    private func controlDatagram(_ bytes: [UInt8]) {
        guard !finished, bytes.count >= 4, bytes[0] & 0xC0 == 0x80 else { return }
        switch bytes[1] & 0x7F {
        case RAOPSyncPacket.payloadType:
            shared.update { $0.syncPacketsReceived += 1 }
        case RAOPRetransmitResponse.payloadType:
            // 0x80 0xD6 ‖ seq ‖ the original encrypted packet.
            shared.update { $0.retransmitResponsesReceived += 1 }
            let packet = Array(bytes[4...])
            guard packet.count >= AirPlay2AudioCipher.headerSize + AirPlay2AudioCipher.overhead,
                  !config.noProgress, let payload = open(packet) else { return }
            let seq = UInt16(packet[2]) << 8 | UInt16(packet[3])
            process(jitter.insert(seq: seq, payload: payload, isRetransmission: true, now: NIODeadline.now().uptimeNanoseconds))
        default:
            break
        }
    }

    // MARK: Playback

    private func process(_ outputs: [JitterBuffer.Output]) {
        for output in outputs {
            switch output {
            case .play(_, let payload, _):
                write(decode(payload))
            case .lost(_, let count):
                let frames = count * format.framesPerPacket
                write([UInt8](repeating: 0, count: frames * 4))
                shared.update { $0.silenceFramesWritten += frames }
            case .requestRetransmit(let first, let count):
                guard let ch = controlChannel, let dest = senderControl else { continue }
                retransmitCounter &+= 1
                let req = RAOPRetransmitRequest(sequenceNumber: retransmitCounter, firstSequence: first, count: count)
                ch.writeAndFlush(AddressedEnvelope(remoteAddress: dest, data: ch.allocator.buffer(bytes: req.bytes)), promise: nil)
            }
        }
        let st = jitter.statistics
        let old = published
        guard st != old else { return }
        published = st
        shared.update { r in
            r.retransmitRequestsSent += st.requests - old.requests
            r.packetsRequested += st.requestedPackets - old.requestedPackets
            r.packetsRecovered += st.recovered - old.recovered
            r.unrecoveredPackets += st.lost - old.lost
            r.latePackets += st.discarded - old.discarded
        }
    }

    private func decode(_ payload: [UInt8]) -> [UInt8] {
        if format.codec == .alac {
            guard let alac, let pcm = try? alac.decode(payload) else {
                shared.update { $0.decodeErrors += 1 }
                return [UInt8](repeating: 0, count: format.framesPerPacket * 4)
            }
            return pcm.bytes
        }
        return SpeakerSession.littleEndianStereo(fromL16BigEndian: payload, channels: format.channels)
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

    /// Plays out what is buffered, closes the sockets and the WAV file. Idempotent.
    func finish() {
        guard !finished else { return }
        process(jitter.finish())
        finished = true
        tickTask?.cancel()
        dataChannel?.close(promise: nil)
        controlChannel?.close(promise: nil)
        try? wav?.close()
    }
}
