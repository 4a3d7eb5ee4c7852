import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// How to stream to a RAOP (AirPlay 1) receiver.
public struct RAOPOptions: Sendable {
    /// Payload codec (ALAC by default; `.l16` = raw big-endian PCM).
    public var codec: RAOPCodec
    /// Receiver-side buffering in frames (default 2 s). Audio is sent in real time and played this much later.
    public var latencyFrames: Int
    /// Volume in percent (0…100) to set before playback; nil leaves the receiver's volume.
    public var volume: Double?
    /// Title/artist/album (sent as DMAP), artwork and duration (for progress).
    public var metadata: MediaMetadata?
    public var username: String
    public var password: String?
    public var connectTimeout: Duration
    /// Each RTSP request must be answered within this time.
    public var requestTimeout: Duration
    /// `POST /feedback` keep-alive period (also detects a receiver that vanished).
    public var feedbackInterval: Duration
    public var syncInterval: Duration
    /// The pacer sends, in one burst, every packet due within this time of its wake-up (never later
    /// than due): it wakes about once per `sendAhead` instead of once per 8 ms packet, which is most
    /// of what streaming costs in CPU. Zero sends each packet on its own wake-up (the smoothest
    /// arrival). The receiver's buffer (`latencyFrames`) must be much longer. nil: each route's
    /// default (AirPlay 1: 24 ms, bursts of at most 4 packets, but one packet per wake-up to HomePods:
    /// `RAOPBurstRule`; AirPlay 2: 40 ms bursts).
    public var sendAhead: Duration?
    /// AirPlay 1 bursts: at most 4 packets back to back (packets due at 0, 8, 16 and 24 ms), what
    /// every RAOP receiver already takes from pyatv, whose pacer sends a packet and up to 3 more at
    /// once when it is behind (AirPort Express, Apple TV, HomePod, shairport-sync, third-party
    /// speakers). Far below any receiver's socket buffer (about 5.6 KB of ALAC); bursts of a
    /// whole send window at once (~99 packets) are what overran receivers' buffers.
    public static let raopDefaultSendAhead: Duration = .milliseconds(24)
    public static let airPlay2DefaultSendAhead: Duration = .milliseconds(40)
    /// After the source ends, send `latencyFrames` of silence so the receiver plays everything
    /// before TEARDOWN.
    public var padWithSilence: Bool
    /// Packets of silence sent before the source. shairport-sync 3.3.8 replaces the first 9
    /// packets of every session with silence; the lead-in makes it play all of the source.
    public var leadInPackets: Int
    /// Send `GET /info` first.
    public var requestInfo: Bool
    /// First RTP sequence number / timestamp; nil = random.
    public var initialSequence: UInt16?
    public var initialRTPTime: UInt32?
    /// Retransmit backlog (packets; rounded up to a power of two ≥ 1024).
    public var backlogPackets: Int
    /// AirPlay 1 (RAOP) or AirPlay 2 (HAP-paired, encrypted realtime audio). The facade picks it
    /// from the receiver's `features` unless told otherwise.
    public var airPlayVersion: AirPlayMajorVersion
    /// The features are not known (no TXT, e.g. an address without mDNS): each stream first asks
    /// `GET /info` (within `infoTimeout`) and takes the route its `features` give
    /// (`AirPlayRoute.fromInfo`); `airPlayVersion` is what an unanswered /info falls back to.
    public var routeFromInfo: Bool
    public var infoTimeout: Duration
    /// AirPlay 2: stored HAP credentials for pair-verify; nil = transient pairing (PIN 3939).
    public var hapCredentials: HAPCredentials?
    /// AirPlay 2: the stream fails as "no progress" when the receiver leaves an RTSP request (the
    /// `/feedback` keep-alive every `feedbackInterval`, SET_PARAMETER, FLUSH) unanswered this long
    /// with no other sign of life (`AirPlay2StallRule`). Timing requests are not required.
    public var progressTimeout: Duration
    /// AirPlay 2: User-Agent (HomePod 27 refuses `GET /info` from anything un-Apple-like).
    public var userAgent: String
    /// AirPlay 2 timing (`--timing`): auto follows the receiver (`AirPlayAudioRouteChoice.choose`).
    public var timing: AirPlayTimingPreference
    /// AirPlay 2 buffered audio (`--buffered`).
    public var buffered: AirPlayBufferedPreference
    /// Buffered AirPlay 2 streams (`--codec alac|aac`): the type-103 codec; nil takes what the
    /// receiver's `/info` lists (`BufferedFormatChoice`). AAC on any other route is an error.
    public var bufferedCodec: AirPlayBufferedCodec?
    /// What the receiver's TXT records say (features, model, manufacturer), for the route rule;
    /// the session adds what its `GET /info` says.
    package var receiverTraits: AirPlayReceiverTraits
    /// AirPlay 2: the local address of the control connection (nil: the system's choice; tests).
    package var localAddress: String?
    /// Buffered AirPlay 2: SO_SNDBUF of the data connection (nil: `BufferedDataConnection.defaultSendBuffer`; tests).
    package var bufferedSendBuffer: Int?
    /// `timing`/`buffered` apply only if the receiver speaks AirPlay 2; an AirPlay 1 receiver
    /// streams AirPlay 1 with a warning instead of an error (a group's members).
    package var airPlay2ChoicesOnly = false

    public init(codec: RAOPCodec = .alac, latencyFrames: Int = 88_200, volume: Double? = nil,
                metadata: MediaMetadata? = nil, username: String = "swift-atv", password: String? = nil,
                connectTimeout: Duration = .seconds(5), requestTimeout: Duration = .seconds(4),
                feedbackInterval: Duration = .seconds(2), syncInterval: Duration = .seconds(1),
                padWithSilence: Bool = true, leadInPackets: Int = 9, requestInfo: Bool = true, initialSequence: UInt16? = nil,
                initialRTPTime: UInt32? = nil, backlogPackets: Int = 1024) {
        self.codec = codec
        self.latencyFrames = latencyFrames
        self.volume = volume
        self.metadata = metadata
        self.username = username
        self.password = password
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.feedbackInterval = feedbackInterval
        self.syncInterval = syncInterval
        sendAhead = nil
        self.padWithSilence = padWithSilence
        self.leadInPackets = max(0, leadInPackets)
        self.requestInfo = requestInfo
        self.initialSequence = initialSequence
        self.initialRTPTime = initialRTPTime
        self.backlogPackets = backlogPackets
        airPlayVersion = .v1
        routeFromInfo = false
        infoTimeout = .seconds(2)
        hapCredentials = nil
        progressTimeout = .seconds(10)
        userAgent = "AirPlay/550.10"
        timing = .auto
        buffered = .auto
        bufferedCodec = nil
        receiverTraits = AirPlayReceiverTraits()
    }
}

/// Summary statistics of a series of durations, in seconds.
public struct RAOPIntervalStats: Sendable, Equatable {
    public var count: Int = 0
    public var mean: Double = 0
    public var standardDeviation: Double = 0
    public var min: Double = 0
    public var max: Double = 0

    public init() {}

    private var m2: Double = 0

    mutating func add(_ x: Double) {
        count += 1
        if count == 1 {
            min = x
            max = x
        } else {
            min = Swift.min(min, x)
            max = Swift.max(max, x)
        }
        let delta = x - mean
        mean += delta / Double(count)
        m2 += delta * (x - mean)
        standardDeviation = count > 1 ? (m2 / Double(count - 1)).squareRoot() : 0
    }
}

/// What a finished stream did.
public struct RAOPStreamReport: Sendable, Equatable {
    public var codec: RAOPCodec
    /// Audio packets sent (source + silence padding), not counting retransmits.
    public var packetsSent: Int
    /// Frames that came from the source.
    public var sourceFrames: Int64
    /// Silence packets sent (lead-in + end padding).
    public var silencePackets: Int
    public var retransmitRequests: Int
    public var retransmittedPackets: Int
    /// Requested packets that were no longer in the backlog.
    public var retransmitMisses: Int
    public var syncPackets: Int
    public var timingReplies: Int
    /// UDP payload bytes we sent (audio, retransmits, sync, timing replies).
    public var bytesOnWire: Int
    /// From the call to the first audio packet on the wire.
    public var firstPacketDelay: Duration?
    /// Intervals between consecutive audio packets (pauses excluded).
    public var sendIntervals: RAOPIntervalStats
    /// How late packets were sent relative to their absolute schedule.
    public var lateness: RAOPIntervalStats
    /// Packets sent more than 5 ms after their due time.
    public var latePackets: Int
    public var duration: Duration
    /// True if `stop()` ended the stream early.
    public var stopped: Bool
    public var warnings: [String]
    public var serverPorts: RAOPServerPorts?
    /// The route the stream took and why (`AirPlayAudioRouteChoice`).
    public var route: AirPlayAudioRouteChoice = AirPlayAudioRouteChoice(route: .airPlay1, reason: "")
    /// Buffered AirPlay 2: the longest a write to the data connection waited for the kernel (TCP back-pressure).
    package var longestDataWriteWait: Duration = .zero
    /// Local UDP ports (control, timing, audio source).
    public var localPorts: (control: Int, timing: Int, audio: Int)

    public static func == (a: RAOPStreamReport, b: RAOPStreamReport) -> Bool {
        a.packetsSent == b.packetsSent && a.sourceFrames == b.sourceFrames && a.bytesOnWire == b.bytesOnWire
            && a.duration == b.duration && a.warnings == b.warnings && a.stopped == b.stopped
    }
}

/// Streaming progress, published while a stream runs.
public struct RAOPStreamProgress: Sendable, Equatable {
    public enum State: String, Sendable, Equatable { case connecting, streaming, paused, finishing, finished, failed }
    public var state: State
    /// Seconds of source audio the receiver has played (sent minus latency).
    public var position: Double
    /// Seconds of source audio sent.
    public var sent: Double
    public var duration: Double?
    public var packetsSent: Int
}

/// A lock-protected value in a class (Mutex itself cannot be captured by escaping closures).
final class MutexBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&$0) }
    }
}

/// Shared between the pacer (on the UDP event loop), the UDP handlers (same loop) and the shell.
final class RAOPLiveState: Sendable {
    struct Inner {
        var streamer: RAOPStreamer
        var anchor: NIODeadline?
        var anchorRTP: UInt32 = 0
        var paused = false
        var controlDestination: SocketAddress?
        var syncPackets = 0
        var timingReplies = 0
        var bytesOnWire = 0
    }

    let inner: Mutex<Inner>
    let pacer: RAOPPacer
    /// The time the pacer schedules by and the sync packets carry.
    let clock: SenderClock

    init(streamer: RAOPStreamer, pacer: RAOPPacer, clock: SenderClock = .system) {
        inner = Mutex(Inner(streamer: streamer))
        self.pacer = pacer
        self.clock = clock
    }

    /// The sync packet for now (nil before streaming or while paused).
    func makeSync(clock: SenderClock? = nil) -> (bytes: [UInt8], to: SocketAddress)? {
        let clock = clock ?? self.clock
        return inner.withLock { s in Self.makeSync(&s, pacer: pacer, clock: clock) }
    }

    /// At the clock's now the stream is at the RTP time of the frame due now on the pacer's
    /// schedule (anchor + elapsed frames), so the receiver plays that frame `latency` later. NTP
    /// timing: a 0x54 sync packet; PTP timing (`clock.ptp`): a 0xD7 time announce.
    static func makeSync(_ s: inout Inner, pacer: RAOPPacer, clock: SenderClock) -> (bytes: [UInt8], to: SocketAddress)? {
        guard let anchor = s.anchor, !s.paused, let to = s.controlDestination else { return nil }
        let now = clock.now()
        let rtpNow = SyncPolicy.rtpTime(now: now, anchor: anchor, anchorRTP: s.anchorRTP, pacer: pacer)
        let bytes: [UInt8]
        if let ptp = clock.ptp {
            // PTP timing: the 0xD7 time announce on the master's timeline, same schedule.
            bytes = s.streamer.timeAnnouncePacket(rtpTime: rtpNow, networkTime: ptp.networkTime(at: now), clockID: ptp.clockID)
        } else {
            bytes = s.streamer.syncPacket(rtpTime: rtpNow, ntpTime: clock.networkTime(now))
        }
        s.syncPackets += 1
        s.bytesOnWire += bytes.count
        return (bytes, to)
    }
}

/// Streams PCM to one RAOP (AirPlay 1) receiver: RTSP session, RTP audio paced on an absolute
/// schedule, sync packets, timing replies and retransmits. One stream per device at a time.
public final class RAOPClient: Sendable {
    public let host: String
    public let port: Int

    struct Controls {
        var options: RAOPOptions
        var running = false
        var paused = false
        var stopRequested = false
        var live: RAOPLiveState?
        /// The route's session (AirPlay 1 or 2) while one streams.
        var route: (any AudioRouteSession)?
        /// The running stream can move in its source (`seek`): its source can be opened again at
        /// a position, and its route takes a seek (buffered AirPlay 2).
        var seekable = false
        /// A seek asked for and not yet done: the source frame to continue from.
        var seekTarget: UInt64?
        /// Buffered AirPlay 2: the next packet's sequence number and RTP time (metadata's RTP-Info),
        /// and the last progress published (seconds of the source played and sent).
        var bufferedNext: RTPPosition?
        var bufferedProgress: (position: Double, sent: Double) = (0, 0)
    }

    let controls: Mutex<Controls>
    /// Signalled by pause/resume/stop, the RTSP driver and the pacer; the shell waits on it.
    let wakeup = RAOPWakeup()
    private let progressBroadcaster = Broadcaster<RAOPStreamProgress>(bufferingPolicy: .bufferingNewest(64))
    let logger: Logger

    /// Device keys ("host:port") with a stream running in this process.
    private static let activeDevices = Mutex<Set<String>>([])

    public init(host: String, port: Int, options: RAOPOptions = RAOPOptions(), logger: Logger = Logger(label: "atv.raop")) {
        self.host = host
        self.port = port
        self.logger = logger
        controls = Mutex(Controls(options: options))
    }

    public var options: RAOPOptions { controls.withLock { $0.options } }

    /// Progress of the current (and later) streams.
    public func progressUpdates() -> AsyncStream<RAOPStreamProgress> { progressBroadcaster.subscribe() }

    public var isStreaming: Bool { controls.withLock { $0.running } }

    /// The running stream can seek (`seek(toSeconds:)`).
    public var canSeek: Bool { controls.withLock { $0.running && $0.seekable } }

    /// Pauses: stops sending audio and FLUSHes the receiver; `resume()` continues.
    public func pause() {
        controls.withLock { $0.paused = true }
        wakeup.signal()
    }

    public func resume() {
        controls.withLock { $0.paused = false }
        wakeup.signal()
    }

    /// Moves the running stream to `seconds` into its source (pyatv's `set_position`), without a new
    /// session: on the buffered AirPlay 2 route the receiver drops what it holds (FLUSHBUFFERED),
    /// the source is opened again at the position and played from a new anchor; paused, it stays
    /// paused there. Only a source that can be opened again (a file) can seek, and only on the
    /// buffered route; otherwise this throws one clear `ATVError` and the stream goes on.
    public func seek(toSeconds seconds: Double) throws {
        guard seconds.isFinite, seconds >= 0 else { throw ATVError.invalidValue("position \(seconds) s: must be 0 or more") }
        let frame = UInt64((seconds * Double(PCMFormat.sampleRate)).rounded())
        try controls.withLock { c in
            guard c.running else { throw ATVError.invalidState("no audio stream is running to seek in") }
            guard c.seekable else {
                throw ATVError.invalidState(
                    "seeking is not supported for this stream: it needs a file as the source (not standard input, a pipe or a PCM sequence) and the buffered AirPlay 2 route")
            }
            c.seekTarget = frame
        }
        wakeup.signal()
    }

    /// Ends the running stream (TEARDOWN follows); the `stream` call returns with `stopped = true`.
    public func stop() {
        controls.withLock { if $0.running { $0.stopRequested = true } }
        wakeup.signal()
    }

    /// Volume in percent; applied now if streaming, else at the next stream.
    public func setVolume(_ percent: Double) async throws {
        guard (0...100).contains(percent) else { throw ATVError.invalidValue("volume \(percent) is outside 0…100") }
        let route = controls.withLock { c -> (any AudioRouteSession)? in
            c.options.volume = percent
            return c.running ? c.route : nil
        }
        await route?.setVolume(dB: RAOPVolume.dB(fromPercent: percent))
    }

    /// Title/artist/album/artwork; sent now if streaming, else with the next stream.
    public func setMetadata(_ metadata: MediaMetadata) async throws {
        let (route, next) = controls.withLock { c -> ((any AudioRouteSession)?, RTPPosition?) in
            c.options.metadata = metadata
            return c.running ? (c.route, c.live?.next ?? c.bufferedNext) : (nil, nil)
        }
        guard let route, let next else { return }
        await route.sendMetadata(metadata, start: nil, next: next)
    }

    /// Streams `packets` (s16le stereo 44.1 kHz) until the source ends (plus latency padding), or
    /// `stop()`. Throws `ATVError` when the receiver refuses, vanishes or answers garbage.
    public func stream<S: AsyncSequence & Sendable>(_ packets: S) async throws -> RAOPStreamReport where S.Element == PCMPacket {
        try await stream(packets, reopen: nil)
    }

    /// `stream(_:)` of a source that `reopen` opens again at a source frame (`seek`).
    func stream<S: AsyncSequence & Sendable>(_ packets: S, reopen: (@Sendable (UInt64) async throws -> S)?,
                                             member: GroupMemberHooks? = nil) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        let key = "\(host):\(port)"
        let acquired = Self.activeDevices.withLock { $0.insert(key).inserted }
        guard acquired else {
            throw ATVError.invalidState("a stream to \(key) is already running; stop it first")
        }
        defer { _ = Self.activeDevices.withLock { $0.remove(key) } }
        var options = controls.withLock { c -> RAOPOptions in
            c.running = true
            c.paused = false
            c.stopRequested = false
            return c.options
        }
        defer {
            controls.withLock { c in
                c.running = false
                c.live = nil
                c.route = nil
                c.stopRequested = false
                c.paused = false
                c.seekable = false
                c.seekTarget = nil
                c.bufferedNext = nil
                c.bufferedProgress = (0, 0)
            }
        }
        do {
            if options.routeFromInfo {
                let (route, answered, info) = try await routeFromInfo(options)
                options.airPlayVersion = route.version
                // The session skips its own /info then: what this one said feeds the timing rule.
                if let info { options.receiverTraits = options.receiverTraits.merged(with: AirPlayReceiverTraits(info: info)) }
                // Not answered: the session's /info would not be either. Answered with AirPlay 2:
                // the session needs nothing from a second /info (the probe already had it).
                if !answered || route.version == .v2 { options.requestInfo = false }
                controls.withLock { $0.options.airPlayVersion = route.version }
            }
            return try await runSession(packets, reopen: reopen, options: options, member: member)
        } catch {
            publish(.failed, live: nil, options: options)
            throw error
        }
    }

    /// Asks `GET /info` for the route (the features are not known from TXT). A receiver that does
    /// not answer in time keeps `options.airPlayVersion`.
    private func routeFromInfo(_ options: RAOPOptions) async throws -> (AirPlayRoute, answered: Bool, info: PlistValue?) {
        publish(.connecting, live: nil, options: options)
        let (status, info) = try await AirPlay2Connection.fetchInfo(host: host, port: port, userAgent: options.userAgent,
                                                                    timeout: options.infoTimeout, logger: logger)
        if status == 403 {
            // Refused, not absent: AirPlay 1 would only be refused next (470 on ANNOUNCE).
            throw ATVError.authenticationFailed(
                "\(host):\(port) refused GET /info with 403 (it only talks to Apple AirPlay senders; User-Agent was \"\(options.userAgent)\")")
        }
        var route = AirPlayRoute.fromInfo(status: status, info: info)
        if status == nil { route.version = options.airPlayVersion }
        logger.info("audio streaming to \(host):\(port): \(route)")
        return (route, status != nil, info)
    }

    /// Reads the source, cuts it into full packets, encodes them and queues them for the pacer:
    /// lead-in silence, the source (the last packet padded with zeros), then the silence padding and
    /// `.end`; a failure is queued as `.failure`. Returns early when the pipe is closed.
    ///
    /// `aac` (buffered AirPlay 2, `fpp` 1024): AAC-LC units from `AACEncoder` instead of `codec`,
    /// the encoder's priming unit first and its last unit at the end (one unit more than packets
    /// in): unit k carries source frames from its `presentationFrame`, so the stream position of
    /// source frame 0 is the encoder's `delay` (the sender shifts its RTP numbering by it). No
    /// lead-in with AAC (the source-frame count assumes the source comes first).
    static func produce<S: AsyncSequence & Sendable>(
        _ packets: S, into pipe: some EncodedPayloadSink, codec: RAOPCodec, framesPerPacket fpp: Int, leadIn: Int, padding: Int,
        aac: Bool = false
    ) async where S.Element == PCMPacket {
        let packetBytes = fpp * PCMFormat.bytesPerFrame
        do {
            let encoder: ALACEncoder? = codec == .alac && !aac ? try ALACEncoder(framesPerPacket: fpp) : nil
            let aacEncoder: AACEncoder? = aac ? try AACEncoder() : nil
            /// Source frames given to the AAC encoder so far (padding excluded).
            var aacInput: Int64 = 0
            /// Encodes one packet (`sourceFrames` of it from the source) and queues what comes out.
            func push(_ pcm: [UInt8], sourceFrames: Int, silence: Bool) async throws -> Bool {
                guard let aacEncoder else {
                    let payload = try encoder.map { try $0.encode(PCMPacket(bytes: pcm, frames: fpp)) } ?? RAOPPayload.l16(pcm, paddedToFrames: fpp)
                    return await pipe.push(.packet(payload: payload, sourceFrames: sourceFrames, silence: silence))
                }
                aacInput += Int64(sourceFrames)
                return await pushAAC(try aacEncoder.encode(PCMPacket(bytes: pcm, frames: fpp)), silence: silence)
            }
            /// Each unit counts the source frames its decoded output carries.
            func pushAAC(_ units: [AACAccessUnit], silence: Bool) async -> Bool {
                for unit in units {
                    let start = max(0, unit.presentationFrame), end = min(unit.presentationFrame + Int64(fpp), aacInput)
                    guard await pipe.push(.packet(payload: unit.bytes, sourceFrames: Int(max(0, end - start)), silence: silence)) else { return false }
                }
                return true
            }
            // Every silent ALAC/PCM packet encodes to the same bytes: encode it once.
            var silent: [UInt8]?
            func silence() async throws -> Bool {
                let zeros = [UInt8](repeating: 0, count: packetBytes)
                if aacEncoder != nil { return try await push(zeros, sourceFrames: 0, silence: true) }
                if silent == nil { silent = try encoder.map { try $0.encode(PCMPacket(bytes: zeros, frames: fpp)) } ?? RAOPPayload.l16(zeros, paddedToFrames: fpp) }
                return await pipe.push(.packet(payload: silent ?? [], sourceFrames: 0, silence: true))
            }
            for _ in 0..<leadIn {
                guard try await silence() else { return }
            }
            var pending: [UInt8] = []
            for try await packet in packets {
                let count = min(packet.bytes.count, packet.frames * PCMFormat.bytesPerFrame)
                guard count > 0 else { continue }
                if pending.isEmpty, count == packetBytes {
                    // The usual case: the source already delivers whole packets.
                    let pcm = count == packet.bytes.count ? packet.bytes : Array(packet.bytes[0..<count])
                    guard try await push(pcm, sourceFrames: fpp, silence: false) else { return }
                    continue
                }
                pending.append(contentsOf: packet.bytes[0..<count])
                var start = 0
                while pending.count - start >= packetBytes {
                    let pcm = Array(pending[start..<(start + packetBytes)])
                    start += packetBytes
                    guard try await push(pcm, sourceFrames: fpp, silence: false) else { return }
                }
                pending.removeFirst(start)
            }
            if !pending.isEmpty {
                let frames = pending.count / PCMFormat.bytesPerFrame
                pending += [UInt8](repeating: 0, count: packetBytes - pending.count)
                guard try await push(pending, sourceFrames: frames, silence: false) else { return }
            }
            for _ in 0..<padding {
                guard try await silence() else { return }
            }
            if let aacEncoder {
                guard await pushAAC(try aacEncoder.flush(), silence: padding > 0) else { return }
            }
            _ = await pipe.push(.end)
        } catch {
            _ = await pipe.push(.failure(error))
        }
    }

    func publish(_ state: RAOPStreamProgress.State, live: RAOPLiveState?, options: RAOPOptions) {
        let (packets, frames) = live?.inner.withLock { ($0.streamer.packetsSent, $0.streamer.framesSent) } ?? (0, 0)
        let sent = Double(frames) / 44_100
        let position = max(0, Double(frames - Int64(options.latencyFrames)) / 44_100)
        publish(state, position: position, sent: sent, packets: packets, options: options)
    }

    /// Progress with the position (seconds of the source the receiver has played) and what was sent.
    func publish(_ state: RAOPStreamProgress.State, position: Double, sent: Double, packets: Int, options: RAOPOptions) {
        progressBroadcaster.yield(RAOPStreamProgress(state: state, position: position, sent: sent,
                                                     duration: options.metadata?.duration, packetsSent: packets))
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}

/// Streams `packets` to the RAOP receiver at `host:port` and returns what was sent.
public func streamRAOP<S: AsyncSequence & Sendable>(host: String, port: Int, packets: S,
                                                    options: RAOPOptions = RAOPOptions()) async throws -> RAOPStreamReport
    where S.Element == PCMPacket {
    try await RAOPClient(host: host, port: port, options: options).stream(packets)
}
