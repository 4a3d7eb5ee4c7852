// What the two virtual audio receivers (`VirtualSpeaker`, AirPlay 1; `VirtualHomePod`, AirPlay 2)
// share: the device state (report, events, open connections, session numbering), the counts of
// what arrived, the playout (jitter buffer → ALAC/L16 decode → WAV), the NTP timing port and the
// SET_PARAMETER reader. Only what differs stays in each device: the RTSP/pairing front and the
// packet format on the wire (plain RTP vs. ChaCha20-sealed).
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
import Synchronization

/// What a virtual receiver counted of the sessions and audio it was sent; `SpeakerReport` and
/// `HomePodReport` carry one and expose its fields as their own.
package struct AudioReception: Sendable, Equatable {
    /// Sessions (speaker: connections that sent ANNOUNCE or SETUP; HomePod: session SETUPs), and
    /// those that ended (TEARDOWN or connection closed).
    package var sessions = 0
    package var sessionsEnded = 0
    /// Every request in order (speaker: "METHOD uri"; HomePod: see `HomePodReport`).
    package var requests: [String] = []
    /// "L16/44100/2" or "AppleLossless/44100/2".
    package var codec: String?
    /// Audio datagrams received on the audio port (duplicates and garbage included), and their bytes.
    package var packetsReceived = 0
    package var audioBytesReceived = 0
    /// When the first audio packet arrived (for launch-to-first-packet benchmarks).
    package var firstAudioPacketAt: ContinuousClock.Instant?
    /// Bytes of RTSP/HTTP received on control connections (after decryption).
    package var rtspBytesReceived = 0
    /// Retransmit requests sent to the sender's control port, and packets asked for in total.
    package var retransmitRequestsSent = 0
    package var packetsRequested = 0
    /// Retransmit responses (0x56) received on the control port.
    package var retransmitResponsesReceived = 0
    /// Packets that were missing and then arrived (retransmitted or late) in time to be played.
    package var packetsRecovered = 0
    /// Packets never received: silence was written for them.
    package var unrecoveredPackets = 0
    /// Duplicates and packets that arrived after their slot had been played.
    package var latePackets = 0
    /// Packets that could not be decoded (silence written instead).
    package var decodeErrors = 0
    /// Sync packets (0x54) on the control port; NTP timing requests sent, replies received.
    package var syncPacketsReceived = 0
    package var timingRequestsSent = 0
    package var timingRepliesReceived = 0
    /// The sender's NTP clock minus our CLOCK_REALTIME (ns), from the timing reply with the
    /// shortest round trip so far (`senderClockRoundTrip`, ns); nil before the first reply.
    package var senderClockOffset: Int64?
    package var senderClockRoundTrip: Int64?
    /// NTP-timed real-time sessions (AirPlay 1, AirPlay 2 realtime NTP): each packet's play
    /// instant by the sender's clock.
    package var ntp = NTPReception()
    /// PCM frames (44.1 kHz stereo s16) written to the WAV file(s), and the silence among them.
    package var framesWritten = 0
    package var silenceFramesWritten = 0
    /// Last text metadata (DMAP `mlit`), artwork (`image/*`: bytes and type), volume in dB and
    /// `progress: start/now/end` received.
    package var metadata: MediaMetadata?
    package var artworkBytes = 0
    package var artworkType: String?
    package var volume: Double?
    package var progress: String?
    /// WAV files written, one per session.
    package var wavFiles: [String] = []
    /// Problems on the receiver's side (e.g. the WAV file could not be written).
    package var errors: [String] = []

    package init() {}
}

/// A report that carries an `AudioReception`.
package protocol AudioReceiverReport: Sendable {
    var reception: AudioReception { get set }
}

/// The configuration both receivers have.
package protocol AudioReceiverConfiguration: Sendable {
    /// WAV file of the first session; session n > 1 writes `<stem>-n.wav`. nil: no file.
    var outputPath: String? { get }
    var jitter: JitterBuffer.Configuration { get }
    /// Interval between NTP timing requests to the sender.
    var timingInterval: Duration { get }
    /// After TEARDOWN (or a closed connection) wait this long for in-flight UDP before finishing.
    var endGrace: Duration { get }
    /// Test hook to simulate loss: true drops the n-th audio datagram (0-based) on arrival.
    var dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)? { get }
}

/// State shared by all connections of one virtual receiver: the report, the event stream, the
/// open connections (closed on stop) and session numbering. `Extra` holds what only one kind of
/// device keeps (the HomePod's controllers and MRP device).
package final class ReceiverShared<Configuration: AudioReceiverConfiguration, Report: AudioReceiverReport, Event: Sendable,
                                   Extra: Sendable>: Sendable {
    package let configuration: Configuration
    package let report: Mutex<Report>
    package let events = Broadcaster<Event>(bufferingPolicy: .unbounded)
    package let extra: Extra
    private let openChannels = Mutex<[ObjectIdentifier: Channel]>([:])

    package init(configuration: Configuration, report: Report, extra: Extra) {
        self.configuration = configuration
        self.report = Mutex(report)
        self.extra = extra
    }

    package func update(_ body: (inout Report) -> Void) { report.withLock { body(&$0) } }
    package func reception(_ body: (inout AudioReception) -> Void) { report.withLock { body(&$0.reception) } }
    package func emit(_ event: Event) { events.yield(event) }

    /// Starts a session: returns its number (1-based) and the WAV path it should write.
    package func beginSession() -> (Int, String?) {
        let n = report.withLock { r in r.reception.sessions += 1; return r.reception.sessions }
        guard let path = configuration.outputPath else { return (n, nil) }
        if n == 1 { return (n, path) }
        let stem = path.hasSuffix(".wav") ? String(path.dropLast(4)) : path
        return (n, "\(stem)-\(n).wav")
    }

    /// Counts a finished session and returns the report as it is then.
    package func endSession() -> Report {
        report.withLock { r in
            r.reception.sessionsEnded += 1
            return r
        }
    }

    package func register(_ channel: Channel) { openChannels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    package func unregister(_ channel: Channel) { _ = openChannels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    package func closeAll() {
        for c in openChannels.withLock({ Array($0.values) }) { c.close(promise: nil) }
    }

    /// Waits until `sessions` sessions have ended (`ended` picks the report out of a session-end
    /// event) and returns the report; otherwise `ATVError.timeout` ("no `what` within …").
    package func waitForSessionEnd(sessions: Int, timeout: Duration, what: String,
                                   ended: @escaping @Sendable (Event) -> Report?) async throws -> Report {
        let stream = events.subscribe()
        let current = { self.report.withLock { $0 } }
        if current().reception.sessionsEnded >= sessions { return current() }
        return try await withThrowingTaskGroup(of: Report?.self) { group in
            group.addTask {
                for await event in stream {
                    if let r = ended(event), r.reception.sessionsEnded >= sessions { return r }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let r = first { return r }
            if current().reception.sessionsEnded >= sessions { return current() }
            throw ATVError.timeout("no \(what) within \(timeout)")
        }
    }
}

/// The playing end of a receiver: payloads (already decrypted) in, the jitter buffer puts them in
/// order and asks for retransmits on the control port, ALAC or L16 is decoded to s16le stereo and
/// written to the WAV file, silence for what never came; all counted in the `AudioReception`.
///
/// Confined to one event loop, hence `@unchecked Sendable`: every method runs on it.
final class AudioPlayout: @unchecked Sendable {
    /// The announced format (nil until known: L16 stereo, 352 frames, is assumed).
    private(set) var format: RAOPAudioFormat?
    private var alac: ALACDecoder?
    private var jitter: JitterBuffer
    private let record: @Sendable ((inout AudioReception) -> Void) -> Void
    /// Where retransmit requests go: our control socket and the sender's control port.
    var control: UDPEndpoint?
    var senderControl: SocketAddress?
    /// The WAV file to write (opened at the first frame).
    var wavPath: String?
    private var wav: WAVWriter?
    private var wavFailed = false
    private var retransmitCounter: UInt16 = 0
    private var published = JitterBuffer.Statistics()
    private var tickTask: RepeatedTask?
    /// Asked before a packet's frames are written (sequence number, frames): false drops them (a
    /// receiver with no valid clock plays nothing). nil: everything plays.
    var gate: ((UInt16, Int) -> Bool)?

    init(jitter: JitterBuffer.Configuration, record: @escaping @Sendable ((inout AudioReception) -> Void) -> Void) {
        self.jitter = JitterBuffer(configuration: jitter)
        self.record = record
    }

    /// Sets the format (an ALAC decoder with `cookie`, or the one of the format's parameters) and
    /// records the codec.
    func setFormat(_ format: RAOPAudioFormat, cookie: [UInt8]? = nil) throws {
        if format.codec == .alac {
            alac = try ALACDecoder(framesPerPacket: format.framesPerPacket,
                                   magicCookie: cookie ?? ALACMagicCookie.make(frameLength: format.framesPerPacket,
                                                                                channels: format.channels, sampleRate: format.sampleRate))
        } else {
            alac = nil
        }
        self.format = format
        let codec = Self.codecName(format)
        record { $0.codec = codec }
    }

    static func codecName(_ format: RAOPAudioFormat) -> String {
        "\(format.codec == .alac ? "AppleLossless" : "L16")/\(format.sampleRate)/\(format.channels)"
    }

    /// Starts the jitter buffer's clock (every 20 ms on `loop`).
    func startClock(on loop: any EventLoop) {
        tickTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { [self] _ in
            process(jitter.tick(now: NIODeadline.now().uptimeNanoseconds))
        }
    }

    func insert(seq: UInt16, payload: [UInt8], isRetransmission: Bool = false) {
        process(jitter.insert(seq: seq, payload: payload, isRetransmission: isRetransmission, now: NIODeadline.now().uptimeNanoseconds))
    }

    /// `RTP-Info: seq=N;rtptime=T` names the next packet, so a lost first packet counts as a gap.
    func expectFirstPacket(_ rtpInfo: String?) {
        guard let rtpInfo else { return }
        for part in rtpInfo.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingWhitespace() == "seq",
               let seq = UInt16(kv[1].trimmingWhitespace()) {
                jitter.expect(firstSeq: seq)
            }
        }
    }

    /// Plays out what is buffered (FLUSH, or the end).
    func flush() { process(jitter.finish()) }

    /// Plays out what is buffered, stops the clock and closes the WAV file; returns its path.
    @discardableResult
    func finish() -> String? {
        flush()
        tickTask?.cancel()
        try? wav?.close()
        return wav?.path
    }

    private func process(_ outputs: [JitterBuffer.Output]) {
        for output in outputs {
            switch output {
            case .play(let seq, let payload, _):
                let pcm = decode(payload)
                if let gate, !gate(seq, pcm.count / 4) { continue }
                write(pcm)
            case .lost(_, let count):
                let frames = count * (format?.framesPerPacket ?? 352)
                write([UInt8](repeating: 0, count: frames * 4))
                record { $0.silenceFramesWritten += frames }
            case .requestRetransmit(let first, let count):
                guard let control, let senderControl else { continue }
                retransmitCounter &+= 1
                let request = RAOPRetransmitRequest(sequenceNumber: retransmitCounter, firstSequence: first, count: count)
                control.send(request.bytes, to: senderControl)
            }
        }
        let st = jitter.statistics
        let old = published
        guard st != old else { return }
        published = st
        record { r in
            r.retransmitRequestsSent += st.requests - old.requests
            r.packetsRequested += st.requestedPackets - old.requestedPackets
            r.packetsRecovered += st.recovered - old.recovered
            r.unrecoveredPackets += st.lost - old.lost
            r.latePackets += st.discarded - old.discarded
        }
    }

    /// One packet payload as s16le stereo PCM.
    private func decode(_ payload: [UInt8]) -> [UInt8] {
        let fmt = format ?? RAOPAudioFormat(codec: .l16)
        if fmt.codec == .alac {
            guard let alac, let pcm = try? alac.decode(payload) else {
                record { $0.decodeErrors += 1 }
                return [UInt8](repeating: 0, count: fmt.framesPerPacket * 4)
            }
            return pcm.bytes  // the decoder always gives stereo
        }
        return Self.littleEndianStereo(fromL16BigEndian: payload, channels: fmt.channels)
    }

    /// Big-endian L16 (whole frames only) → s16le stereo.
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
                record { $0.wavFiles.append(path) }
            } catch {
                wavFailed = true
                record { $0.errors.append("\(error)") }
            }
        }
        do {
            try wav?.write(bytes: pcm)
        } catch {
            record { $0.errors.append("\(error)") }
            try? wav?.close()
            wav = nil
            wavFailed = true
        }
        record { $0.framesWritten += pcm.count / 4 }
    }
}

/// When a real-time receiver on NTP timing plays each packet, by the sender's clock: the latest
/// sync packet (0x54) says that frame `rtpTimeLessLatency` plays at its NTP time on the sender's
/// clock (so frame `rtpTime` plays `latency` frames later); the timing exchange measures the
/// sender's clock against our CLOCK_REALTIME (`AudioReception.senderClockOffset`, sender − ours),
/// and our CLOCK_REALTIME − CLOCK_MONOTONIC (`NTPTime.monotonicOffset`, measured so that a
/// preemption between two clock reads does not move it) carries that instant to our
/// CLOCK_MONOTONIC. Both virtual receivers (AirPlay 1 speaker, AirPlay 2 realtime NTP) use it;
/// time is passed in.
struct NTPPlacement: Sendable {
    /// The sync packet in force.
    private(set) var anchor: RAOPSyncPacket?
    /// Each received packet's RTP time and arrival (local monotonic ns), until it is played.
    private var arrivals: [UInt16: (rtp: UInt32, at: UInt64)] = [:]
    var sampleRate: Int

    init(sampleRate: Int = 44_100) { self.sampleRate = sampleRate }

    mutating func sync(_ packet: RAOPSyncPacket) { anchor = packet }

    /// A packet arrived (or was repaired by a retransmission).
    mutating func arrived(seq: UInt16, rtp: UInt32, at: UInt64) { arrivals[seq] = (rtp, at) }

    /// The sender-clock instant (ns since 1900) at which frame `rtp` plays by `sync` (RTP time
    /// wraps: the signed 32-bit difference).
    static func senderTime(of rtp: UInt32, sync: RAOPSyncPacket, sampleRate: Int) -> Int64 {
        sync.ntpTime.nanoseconds + Int64(Int32(bitPattern: rtp &- sync.rtpTimeLessLatency)) * 1_000_000_000 / Int64(sampleRate)
    }

    /// A sender-clock instant on our CLOCK_MONOTONIC: − `offset` gives our CLOCK_REALTIME (NTP
    /// nanoseconds), − `monotonicOffset` (NTP ns − CLOCK_MONOTONIC ns) the monotonic clock.
    static func localTime(senderTime: Int64, offset: Int64, monotonicOffset: Int64) -> Int64 {
        senderTime - offset - monotonicOffset
    }

    /// Sender-clock ns − our monotonic ns as playback applies it: the measured relation
    /// (`offset` + `monotonicOffset`) when the first packet is placed; after that it follows the
    /// measurement by at most one frame per packet, as a receiver that corrects its sync error by
    /// inserting or dropping single frames does (shairport-sync's default), and jumps only when
    /// the error exceeds `resyncThreshold` (its resync threshold, 50 ms). So a better timing
    /// exchange arriving during playback (a shorter round trip, a truer offset) moves the play
    /// instants gradually, as such a receiver's output moves, not by the whole correction at once.
    private var applied: Int64?
    static let resyncThreshold: Int64 = 50_000_000

    /// The next applied relation: `target` when there is none or it is `resyncThreshold` or more
    /// away; otherwise one step of at most `maxStep` toward it.
    static func follow(_ applied: Int64?, toward target: Int64, maxStep: Int64) -> Int64 {
        guard let applied, abs(target - applied) < resyncThreshold else { return target }
        return applied + min(max(target - applied, -maxStep), maxStep)
    }

    /// The play instant of packet `seq` about to be written (`frames` frames, after
    /// `framesBefore` frames of the WAV file); nil when no sync packet, no timing reply
    /// (`offset`) or no arrival of that packet is known (the packet is then unplaced).
    mutating func place(seq: UInt16, frames: Int, framesBefore: Int, offset: Int64?,
                        monotonicOffset: Int64) -> PTPReception.PlayInstant? {
        let arrival = arrivals.removeValue(forKey: seq)
        guard let arrival, let anchor, let offset else { return nil }
        let sender = Self.senderTime(of: arrival.rtp, sync: anchor, sampleRate: sampleRate)
        let relation = Self.follow(applied, toward: offset + monotonicOffset, maxStep: 1_000_000_000 / Int64(max(1, sampleRate)))
        applied = relation
        let local = Self.localTime(senderTime: sender, offset: relation, monotonicOffset: 0)
        return .init(rtpTime: arrival.rtp, frames: frames, masterTime: sender, localTime: local,
                     late: Int64(clamping: arrival.at) > local, framesBefore: framesBefore, arrivedAt: Int64(clamping: arrival.at))
    }

    /// Places a packet with the clocks related now and records it (or counts it unplaced) in `r`.
    mutating func record(seq: UInt16, frames: Int, in r: inout AudioReception) {
        let instant = place(seq: seq, frames: frames, framesBefore: r.framesWritten, offset: r.senderClockOffset,
                            monotonicOffset: NTPTime.monotonicOffset())
        if let instant { r.ntp.playInstants.append(instant) } else { r.ntp.packetsUnplaced += 1 }
    }
}

/// A receiver's NTP timing port: asks the sender for its time (`sendRequest`), counts the
/// replies and answers a sender that asks too. Confined to its event loop.
final class ReceiverTimingPort: @unchecked Sendable {
    private(set) var endpoint: UDPEndpoint?
    /// The sender's timing port (from SETUP).
    var sender: SocketAddress?
    private let record: @Sendable ((inout AudioReception) -> Void) -> Void

    private init(record: @escaping @Sendable ((inout AudioReception) -> Void) -> Void) { self.record = record }

    var port: Int { endpoint?.localPort ?? 0 }

    static func bind(host: String, on loop: any EventLoop,
                     record: @escaping @Sendable ((inout AudioReception) -> Void) -> Void) -> EventLoopFuture<ReceiverTimingPort> {
        let timing = ReceiverTimingPort(record: record)
        return AudioReceiverSocket.bind(host: host, port: 0, on: loop) { bytes in timing.received(bytes) }.map { endpoint in
            timing.endpoint = endpoint
            return timing
        }
    }

    /// Requests sent 100 ms apart when requests start, before the regular interval; more (up to
    /// `maxFastRequests`) while no exchange has had a round trip within `goodRoundTrip`.
    static let initialRequests = 8
    static let maxFastRequests = 100
    static let goodRoundTrip: Int64 = 1_000_000
    private var ticks = 0
    /// The least round trip of an exchange so far (the one the offset is from), ns.
    private var bestRoundTrip: Int64?

    /// Sends requests on `loop`: 100 ms apart at first (see `initialRequests`), then one every
    /// `interval`. The sender's clock is the exchange with the least round trip; on a loaded
    /// machine exchanges can take milliseconds, lopsidedly (the offset is off by up to half the
    /// round trip), and with one exchange per interval the first good one, and the step to it,
    /// came seconds into playback (measured: 2.3 and 10.8 ms steps). A measurement artefact of
    /// this virtual receiver.
    func scheduleRequests(on loop: any EventLoop, every interval: Duration) -> RepeatedTask {
        let tick: Int64 = 100_000_000
        let perInterval = max(1, Int((interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000) / tick))
        return loop.scheduleRepeatedTask(initialDelay: .zero, delay: .nanoseconds(tick)) { [self] _ in
            ticks += 1
            let measured = bestRoundTrip.map { $0 <= Self.goodRoundTrip } ?? false
            let fast = ticks <= Self.initialRequests || (!measured && ticks <= Self.maxFastRequests)
            if fast || ticks % perInterval == 0 { sendRequest() }
        }
    }

    func sendRequest() {
        guard let endpoint, let sender else { return }
        endpoint.send(RAOPTimingPacket(isReply: false, sendTime: NTPTime.now()).bytes, to: sender)
        record { $0.timingRequestsSent += 1 }
    }

    private func received(_ bytes: [UInt8]) {
        guard let packet = try? RAOPTimingPacket(decoding: bytes) else { return }
        if packet.isReply {
            // t1 our request's send time (echoed), t2/t3 the sender's receive/send times, t4 now.
            let t4 = NTPTime.now()
            let d21 = packet.receiveTime.nanosecondsSince(packet.referenceTime)
            let d34 = packet.sendTime.nanosecondsSince(t4)
            let rtt = t4.nanosecondsSince(packet.referenceTime) - packet.sendTime.nanosecondsSince(packet.receiveTime)
            if rtt >= 0, bestRoundTrip.map({ rtt < $0 }) ?? true { bestRoundTrip = rtt }
            record { r in
                r.timingRepliesReceived += 1
                if rtt >= 0, r.senderClockRoundTrip.map({ rtt < $0 }) ?? true {
                    r.senderClockOffset = (d21 + d34) / 2
                    r.senderClockRoundTrip = rtt
                }
            }
        } else if let endpoint, let sender {
            // Answer a sender's request too (some senders ask).
            let now = NTPTime.now()
            endpoint.send(RAOPTimingPacket.reply(to: packet, receivedAt: now, sentAt: now).bytes, to: sender)
        }
    }

    func close() { endpoint?.closeNow() }
}

/// The UDP sockets of the virtual receivers.
enum AudioReceiverSocket {
    /// A socket with a 4 MB receive buffer, as real receivers have, so that a burst from a sender
    /// is not dropped while the event loop is busy; datagrams go to `onDatagram` on `loop`.
    static func bind(host: String, port: Int, on loop: any EventLoop,
                     _ onDatagram: @escaping @Sendable ([UInt8]) -> Void) -> EventLoopFuture<UDPEndpoint> {
        UDPEndpoint.bindFuture(host: host, port: port, on: loop, options: .init(receiveBufferSize: 4 * 1024 * 1024)) { bytes, _, _ in
            onDatagram(bytes)
        }
    }
}

/// SET_PARAMETER as both receivers read it: `text/parameters` (volume, progress), DMAP track
/// metadata, artwork. Returns what changed, or nil when the body does not parse (400).
enum ReceiverParameters {
    enum Change: Equatable {
        case volume(Double)
        case progress(String)
        case metadata(MediaMetadata)
        case artwork(type: String, bytes: Int)
    }

    static func read(_ request: RTSPRequest) -> [Change]? {
        let type = (request.headers["Content-Type"] ?? "").lowercased()
        if type.hasPrefix("text/parameters") {
            var changes: [Change] = []
            for line in request.bodyText.split(whereSeparator: \.isNewline) {
                let kv = line.split(separator: ":", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let key = kv[0].trimmingWhitespaceAndNewlines().lowercased()
                let value = kv[1].trimmingWhitespaceAndNewlines()
                switch key {
                case "volume": if let v = Double(value) { changes.append(.volume(v)) }
                case "progress": changes.append(.progress(value))
                default: break
                }
            }
            return changes
        } else if type.hasPrefix("application/x-dmap-tagged") {
            guard let info = try? RAOPTrackInfo(dmap: request.body) else { return nil }
            return [.metadata(MediaMetadata(title: info.title, artist: info.artist, album: info.album))]
        } else if type.hasPrefix("image/") {
            return [.artwork(type: type, bytes: request.body.count)]
        }
        return []
    }

    /// Records the changes in the report.
    static func apply(_ changes: [Change], to r: inout AudioReception) {
        for change in changes {
            switch change {
            case .volume(let v): r.volume = v
            case .progress(let p): r.progress = p
            case .metadata(let m): r.metadata = m
            case .artwork(let type, let bytes): r.artworkBytes = bytes; r.artworkType = type
            }
        }
    }

    /// The `GET_PARAMETER` answer: the volume in dB when asked for.
    static func answer(_ request: RTSPRequest, volume: Double?, to response: inout RTSPResponse) {
        guard request.bodyText.contains("volume") else { return }
        response.headers.set("Content-Type", "text/parameters")
        response.body = Array("volume: \(volume ?? -20.0)\r\n".utf8)
    }
}

/// A receiver session ends once, `grace` after TEARDOWN or the closed connection (datagrams
/// still in flight are played). Used on the session's event loop.
struct SessionEnd {
    private var scheduled = false

    mutating func schedule(on loop: any EventLoop, after grace: Duration, _ finish: @escaping @Sendable () -> Void) {
        loop.preconditionInEventLoop()
        guard !scheduled else { return }
        scheduled = true
        loop.scheduleTask(in: grace.timeAmount, finish)
    }
}

extension NTPTime {
    /// `self − other` in nanoseconds (may be negative).
    func nanosecondsSince(_ other: NTPTime) -> Int64 {
        let d = Int64(bitPattern: raw &- other.raw)
        return d / 4_294_967_296 * 1_000_000_000 + (d % 4_294_967_296) * 1_000_000_000 / 4_294_967_296
    }

    /// Nanoseconds since the NTP epoch (1900).
    var nanoseconds: Int64 {
        Int64(seconds) * 1_000_000_000 + Int64((UInt64(fraction) * 1_000_000_000) >> 32)
    }
}
