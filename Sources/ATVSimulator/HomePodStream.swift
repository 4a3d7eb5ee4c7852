import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVPTP
import ATVRAOP
import NIOCore
import NIOPosix

/// One AirPlay 2 real-time audio stream (type 96) of a `VirtualHomePod`: the UDP data and control
/// sockets and per-packet decryption with `shk`; ordering, retransmit requests, decoding and the
/// WAV file are the `AudioPlayout` both receivers share.
///
/// Confined to its event loop (`@unchecked Sendable` like `SpeakerSession`).
final class HomePodStream: @unchecked Sendable {
    let loop: EventLoop
    let shared: HomePodShared
    let key: [UInt8]
    private let playout: AudioPlayout
    private var data: UDPEndpoint?
    private var control: UDPEndpoint?
    private var packetIndex = 0
    private(set) var finished = false
    /// The WAV file (complete once the stream finished).
    private(set) var wavPath: String?
    private var config: VirtualHomePod.Configuration { shared.configuration }
    /// PTP: the follower and its rules, the anchor in force (from 0xD7 time announces or
    /// SETRATEANCHORTIME); each buffered packet's RTP time and local arrival.
    private let clock: (follower: PTPFollower, rules: PTPClockRules)?
    private var anchor: PTPAnchor?
    /// NTP sessions: the latest sync packet and each packet's arrival (`NTPPlacement`).
    private var ntp: NTPPlacement
    private var arrivals: [UInt16: (rtp: UInt32, at: UInt64)] = [:]
    private var sampleRate: Int

    var dataPort: Int { data?.localPort ?? 0 }
    var controlPort: Int { control?.localPort ?? 0 }

    private init(loop: EventLoop, shared: HomePodShared, format: RAOPAudioFormat, key: [UInt8],
                 senderControl: SocketAddress?, wavPath: String?, clock: (PTPFollower, PTPClockRules)?) throws {
        self.loop = loop
        self.clock = clock.map { (follower: $0.0, rules: $0.1) }
        self.sampleRate = format.sampleRate
        self.ntp = NTPPlacement(sampleRate: format.sampleRate)
        self.shared = shared
        self.key = key
        self.wavPath = wavPath
        playout = AudioPlayout(jitter: shared.configuration.jitter) { body in shared.reception(body) }
        playout.senderControl = senderControl
        playout.wavPath = wavPath
        try playout.setFormat(format)
        if self.clock != nil {
            playout.gate = { [unowned self] seq, frames in self.place(seq: seq, frames: frames) }
        } else {
            playout.gate = { [unowned self] seq, frames in self.placeOnSenderClock(seq: seq, frames: frames) }
        }
    }

    /// Binds the data and control sockets and starts the jitter buffer's clock.
    static func make(loop: EventLoop, host: String, shared: HomePodShared, format: RAOPAudioFormat, key: [UInt8],
                     senderControl: SocketAddress?, wavPath: String?,
                     clock: (PTPFollower, PTPClockRules)? = nil) -> EventLoopFuture<HomePodStream> {
        let stream: HomePodStream
        do {
            stream = try HomePodStream(loop: loop, shared: shared, format: format, key: key,
                                       senderControl: senderControl, wavPath: wavPath, clock: clock)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let data = AudioReceiverSocket.bind(host: host, port: shared.configuration.audioPort, on: loop) { [stream] b in stream.dataDatagram(b) }
        let control = AudioReceiverSocket.bind(host: host, port: 0, on: loop) { [stream] b in stream.controlDatagram(b) }
        return data.and(control).map { d, c in
            stream.data = d
            stream.control = c
            stream.playout.control = c
            stream.playout.startClock(on: loop)
            return stream
        }
    }

    /// `RTP-Info: seq=N;rtptime=T` names the next packet, so a lost first packet counts as a gap.
    func expectFirstPacket(_ rtpInfo: String?) { playout.expectFirstPacket(rtpInfo) }

    func flush() { playout.flush() }

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
        // Each packet's RTP time and arrival, for its play instant (PTP anchor or NTP sync packet).
        let rtp = UInt32(bytes[4]) << 24 | UInt32(bytes[5]) << 16 | UInt32(bytes[6]) << 8 | UInt32(bytes[7])
        if clock != nil { arrivals[seq] = (rtp, PTPMaster.monotonicNow()) } else { ntp.arrived(seq: seq, rtp: rtp, at: PTPMaster.monotonicNow()) }
        playout.insert(seq: seq, payload: payload)
    }

    // MARK: PTP

    /// A new anchor (nil: paused, or flushed). Set by SETRATEANCHORTIME or a 0xD7 time announce.
    func setAnchor(_ anchor: PTPAnchor?) {
        self.anchor = anchor
        shared.update { r in
            r.ptp.anchorFrame = anchor?.frame
            r.ptp.anchorTime = anchor?.time
        }
    }

    /// A 0xD7 time announce (docs/PTP-AND-BUFFERED-AUDIO.md §3.8): frame `rtpTime − 11035`
    /// plays at the master time it carries, on its clock. Kept as the anchor even when it is not
    /// usable yet (clock not valid, or (strict) not the grandmaster followed; counted in
    /// `anchorsRejected`): as shairport-sync, validity is checked when a frame is played.
    private func timeAnnounce(_ bytes: [UInt8]) {
        guard let clock, let packet = try? PTPTimeAnnouncePacket(decoding: bytes) else {
            shared.update { $0.malformedPackets += 1 }
            return
        }
        let status = clock.follower.status
        shared.update { r in
            r.ptp.timeAnnounces += 1
            r.ptp.update(status)
        }
        if clock.rules.refusal(clock: packet.clockID, status, now: PTPMaster.monotonicNow()) != nil {
            shared.update { $0.ptp.anchorsRejected += 1 }
        }
        setAnchor(PTPAnchor(frame: packet.audibleFrame(), time: Int64(clamping: packet.networkTime), clock: packet.clockID))
    }

    /// The play instant of a packet about to be written: recorded by the master's clock when an
    /// anchor and a measured clock exist. Without them the strict profile plays nothing (false);
    /// a HomePod plays it anyway.
    private func place(seq: UInt16, frames: Int) -> Bool {
        guard let clock else { return true }
        let arrival = arrivals.removeValue(forKey: seq)
        let status = clock.follower.status
        let now = PTPMaster.monotonicNow()
        guard let anchor, let arrival, clock.rules.refusal(clock: anchor.clock, status, now: now) == nil else {
            shared.update { r in
                r.ptp.update(status)
                if clock.rules.strict { r.ptp.framesDroppedWithoutClock += frames } else { r.ptp.framesWithoutAnchor += frames }
            }
            return !clock.rules.strict
        }
        let master = anchor.masterTime(of: arrival.rtp, sampleRate: sampleRate)
        let local = status.offset.map { master - $0 }
        let late = local.map { Int64(clamping: arrival.at) > $0 } ?? false
        shared.update { r in
            r.ptp.update(status)
            r.ptp.playInstants.append(.init(rtpTime: arrival.rtp, frames: frames, masterTime: master, localTime: local, late: late,
                                            framesBefore: r.framesWritten, arrivedAt: Int64(clamping: arrival.at)))
        }
        return true
    }

    /// NTP sessions: the play instant of a packet about to be written, by the sender's clock (the
    /// latest sync packet) and, through the timing port's offset, on our CLOCK_MONOTONIC. Every
    /// packet plays (true); those before a sync packet and a timing reply are counted unplaced.
    private func placeOnSenderClock(seq: UInt16, frames: Int) -> Bool {
        shared.update { r in ntp.record(seq: seq, frames: frames, in: &r.reception) }
        return true
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
            if clock == nil, let sync = try? RAOPSyncPacket(decoding: bytes) {
                ntp.sync(sync)
                shared.update { $0.ntp.syncAnchors += 1 }
            }
        case PTPTimeAnnouncePacket.payloadType & 0x7F:
            timeAnnounce(bytes)
        case RAOPRetransmitResponse.payloadType:
            // 0x80 0xD6 ‖ seq ‖ the original encrypted packet.
            shared.update { $0.retransmitResponsesReceived += 1 }
            let packet = Array(bytes[4...])
            guard packet.count >= AirPlay2AudioCipher.headerSize + AirPlay2AudioCipher.overhead,
                  !config.noProgress, let payload = open(packet) else { return }
            let seq = UInt16(packet[2]) << 8 | UInt16(packet[3])
            // A repaired packet is placed on the timeline like any other (its arrival: now).
            let rtp = UInt32(packet[4]) << 24 | UInt32(packet[5]) << 16 | UInt32(packet[6]) << 8 | UInt32(packet[7])
            if clock != nil { arrivals[seq] = (rtp, PTPMaster.monotonicNow()) } else { ntp.arrived(seq: seq, rtp: rtp, at: PTPMaster.monotonicNow()) }
            playout.insert(seq: seq, payload: payload, isRetransmission: true)
        default:
            break
        }
    }

    /// Plays out what is buffered, closes the sockets and the WAV file. Idempotent.
    func finish() {
        guard !finished else { return }
        playout.finish()
        finished = true
        if let clock {
            let status = clock.follower.status
            shared.update { $0.ptp.update(status) }
        }
        data?.closeNow()
        control?.closeNow()
    }
}
