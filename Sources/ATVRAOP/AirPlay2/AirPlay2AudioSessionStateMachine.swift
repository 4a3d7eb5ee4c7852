// The RTSP side of an AirPlay 2 audio stream, without I/O (as `RAOPSessionStateMachine` is for
// AirPlay 1): inputs are the connection's outcome, responses and request failures (timeouts, a
// lost connection), the streamer's commands and the time; outputs are actions for the driver
// (`AirPlay2AudioSession`, over an `AirPlay2Connection`).
//
// connect (GET /info?, pair-verify or transient pair-setup: `AirPlay2Connection.connect`) →
// session SETUP (timing NTP, our `timingPort`, identity) → event channel → `/feedback` →
// RECORD → audio stream SETUP (`type 96`) → FLUSH (RTP-Info of the first packet) → ready →
// begin (volume, metadata, artwork, progress) → streaming (SET_PARAMETER, FLUSH; the stall rule and
// the volume re-sent 1 s after audio starts, on `check`) → TEARDOWN (only once a session exists).
//
// Setup is a plan of steps (`AirPlay2AudioSetupStep`) built from the configuration; each step's
// completion starts the next one. PTP timing (docs/PTP-AND-BUFFERED-AUDIO.md §3.1): the session
// SETUP says `timingProtocol PTP` with our `timingPeerInfo`, RECORD still comes before the stream
// SETUP, SETPEERS (every clock-group member's addresses, newest first, ours last: the driver
// answers `.joinClockGroup` with the group's members, or with this receiver alone for a single
// stream; re-sent when a member joins or leaves) follows RECORD, and once the stream SETUP is
// answered the driver adds the receiver to the PTP master's peers (`addPTPPeer`; `removePTPPeer`
// on teardown). Buffered audio (`stream` `.buffered`, PTP only, docs/PTP-AND-BUFFERED-AUDIO.md §6.3):
// the same plan with the stream SETUP of `type 103` (no latencyMin/Max) and no FLUSH; once ready
// the driver connects the reply's `dataPort` and anchors playback with SETRATEANCHORTIME
// (`setRateAnchor`), retried while the receiver answers 400 (it has not measured our clock yet);
// pause is `{rate: 0}`, resume a new anchor, seek FLUSHBUFFERED and a new anchor.
import ATVAirPlayCore
import ATVCore
import ATVHTTP

/// How the audio stream is timed.
enum AirPlay2AudioTimingMode: Sendable, Equatable {
    /// Our NTP responder on the `timingPort` given to `setUp`.
    case ntp
    /// Our PTP master (docs/PTP-AND-BUFFERED-AUDIO.md §3): its clock id and the addresses the
    /// receiver reaches us on (`timingPeerInfo`, and last in SETPEERS).
    case ptp(clockID: UInt64, addresses: [String])

    var isPTP: Bool { if case .ptp = self { true } else { false } }
}

/// How audio travels.
enum AirPlay2AudioStreamKind: Sendable, Equatable {
    /// RTP over UDP, stream `type 96`.
    case realtime
    /// Buffered audio, stream `type 103` over TCP in `format` (PTP timing only).
    case buffered(BufferedAudioFormat)

    var isBuffered: Bool { if case .buffered = self { true } else { false } }
}

/// What the machine needs to know up front (everything that varies is injected, so the requests
/// are the same bytes for the same inputs).
struct AirPlay2AudioSessionConfiguration: Sendable, Equatable {
    var identity: AirPlay2SenderIdentity
    /// The session SETUP's `sessionUUID`.
    var sessionUUID: String
    var codec: RAOPCodec
    var latencyFrames: Int
    var timing: AirPlay2AudioTimingMode = .ntp
    var stream: AirPlay2AudioStreamKind = .realtime
    /// The connection's request timeout (TEARDOWN after a failure waits at most 1 s of it).
    var requestTimeout: Duration
    /// tvOS 26.6 plays silence until the volume is sent again once audio flows: this long after.
    var volumeResendDelay: Duration = .seconds(1)
    /// The no-progress rule's timeout.
    var progressTimeout: Duration

    var format: RAOPAudioFormat { RAOPAudioFormat(codec: codec) }
}

/// The requests this session sends (the names in errors and warnings).
enum AirPlay2AudioRequestKind: String, Sendable, Equatable {
    case sessionSetup = "session SETUP"
    case record = "RECORD"
    case streamSetup = "audio stream SETUP"
    case setPeers = "SETPEERS"
    /// SETPEERS again, after a member joined or left the clock group.
    case peersUpdate = "SETPEERS (the group changed)"
    case volume = "SET_PARAMETER volume"
    case metadata = "SET_PARAMETER metadata"
    case artwork = "SET_PARAMETER artwork"
    case progress = "SET_PARAMETER progress"
    case flush = "FLUSH"
    case rateAnchor = "SETRATEANCHORTIME"
    case pauseAnchor = "SETRATEANCHORTIME rate 0"
    case flushBuffered = "FLUSHBUFFERED"
    case teardown = "TEARDOWN"

    /// A refusal or failure of these ends the session; the others are warnings.
    var isCritical: Bool {
        switch self {
        case .sessionSetup, .record, .streamSetup, .rateAnchor: true
        default: false
        }
    }
}

/// One request for `AirPlay2Connection.request` (which adds CSeq, User-Agent, DACP-ID,
/// Active-Remote and Client-Instance; `uri` nil is the session URI).
struct AirPlay2AudioRequest: Sendable, Equatable {
    var method: String
    var uri: String?
    var headers: RTSPHeaders
    var body: [UInt8]
    /// nil: the connection's request timeout.
    var timeout: Duration?

    init(_ method: String, uri: String? = nil, headers: RTSPHeaders = RTSPHeaders(), body: [UInt8] = [],
         timeout: Duration? = nil) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    /// A binary-plist body, as `AirPlay2Connection.request(_:plist:)` sends it.
    init(_ method: String, plist: PlistValue) {
        var h = RTSPHeaders()
        h.set("Content-Type", "application/x-apple-binary-plist")
        self.init(method, headers: h, body: BinaryPlist.encode(plist))
    }
}

/// The setup steps, in order (`AirPlay2AudioSessionStateMachine.plan`).
enum AirPlay2AudioSetupStep: Sendable, Equatable {
    case sessionSetup, eventChannel, feedback, record, setPeers, streamSetup, flush
}

/// What the driver must do.
enum AirPlay2AudioSessionAction: Sendable, Equatable {
    /// Connect, GET /info (when asked), pair and encrypt.
    case connect
    /// Send this request; answer with `response(id:_:)` or `requestFailed(id:_:)`.
    case send(AirPlay2AudioRequest, id: Int, AirPlay2AudioRequestKind)
    /// The session SETUP succeeded: TEARDOWN is owed from now on.
    case sessionEstablished
    /// Open the event channel on `port`; answer with `eventChannelOpened()` / `eventChannelFailed(_:)`.
    case openEventChannel(port: Int)
    /// Start `POST /feedback` on the connection (its misses are judged by the stall rule).
    case startFeedback
    /// PTP: the master sends to this receiver (the RTSP peer's address, which is what
    /// shairport-sync's nqptp follows: docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 3) from now on.
    case addPTPPeer(String)
    /// PTP: the master stops sending to it (teardown).
    case removePTPPeer(String)
    /// PTP, at SETPEERS: join the clock group with the addresses this receiver is known by; answer
    /// with `clockGroupJoined(members:)` (a single stream: these addresses alone).
    case joinClockGroup([String])
    /// The audio stream SETUP's answer: where audio and control packets go.
    case serverPorts(RAOPServerPorts)
    /// Buffered: the type-103 stream SETUP's answer (the TCP `dataPort`, `audioBufferSize`).
    case bufferedStream(BufferedAudioStreamReply)
    /// Buffered: the receiver took the anchor (SETRATEANCHORTIME rate 1 answered 200).
    case anchored
    /// Buffered: the receiver answered 400 to SETRATEANCHORTIME (it has not measured our clock
    /// yet): make a fresh anchor and call `setRateAnchor` again after `after`.
    case retryRateAnchor(after: Duration)
    /// Setup is complete: the UDP side may start.
    case ready
    /// Stop `/feedback` (teardown).
    case stopFeedback
    /// The next request is the TEARDOWN: the connection may close without that being a failure.
    case markTearingDown
    /// Record `error` as the connection's failure (the stall rule fired).
    case failConnection(ATVError)
    /// Close the connection (after TEARDOWN, or when no session was set up).
    case close
    /// A non-fatal problem.
    case warning(String)
    /// The session cannot continue.
    case failed(ATVError)
}

/// AirPlay 2 audio session state machine (pure; the time is passed in).
struct AirPlay2AudioSessionStateMachine: Sendable {
    /// PTP: how long after the receiver joins the master's peers audio may start. shairport-sync
    /// trusts our clock 400 ms after its first Follow_Up (which follows the new peer's Announce
    /// within 125 ms) and refuses anchors (0xD7) before that, dropping the frames that arrive
    /// meanwhile (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 rows 8-10): the first time announce must
    /// come later than this.
    static let ptpClockSettle: Duration = .milliseconds(600)
    /// Buffered: how often a SETRATEANCHORTIME answered 400 is retried, and how many times in all
    /// (Sonos and WiiM answer 400 until they have measured our clock; airplay-cli retries every
    /// 500 ms: docs/PTP-AND-BUFFERED-AUDIO.md §3.6). Each retry names a fresh start, so the
    /// interval is what play may start after the receiver's 200 could have come. 50 × 100 ms = 5 s.
    static let anchorRetryInterval: Duration = .milliseconds(100)
    static let anchorAttempts = 50

    /// Buffered: how long after the receiver joined the PTP master's peers (it got an Announce and
    /// a Sync with its Follow_Up at once) the first anchor may start (docs/PTP-AND-BUFFERED-AUDIO.md
    /// §4.6), per receiver as the reference describes them:
    /// - shairport-sync (`model=ShairportSync`) answers SETRATEANCHORTIME 200 whatever its clock's
    ///   state, and nqptp never talks back; it trusts our clock 400 ms after its first Follow_Up,
    ///   about 1.5 s after the stream SETUP at worst (§5.1): 1.5 s.
    /// - Samsung (manufacturer) is not reported to answer 400, and is reported ready about 3.4 s
    ///   after connect (it starts measuring ~1.08 s after SETPEERS, then ~2.3 s; §5.4, unverified): 3.4 s.
    /// - Any other receiver: two Sync intervals (250 ms), when a follower that locks on its first
    ///   Follow_Up has had one with a slot to spare; one that needs longer (Sonos and WiiM measure
    ///   our clock for 1.3–2.3 s, §5.4) answers 400 until it has, and each retry names a fresh start.
    static func firstAnchorDelay(for receiver: AirPlayReceiverTraits) -> Duration {
        if receiver.isShairportSync { return .milliseconds(1500) }
        if (receiver.manufacturer ?? "").lowercased().contains("samsung") { return .milliseconds(3400) }
        return .milliseconds(250)
    }

    enum State: Sendable, Equatable {
        case idle, connecting
        /// Connected and paired: waiting for our UDP ports (`setUp`).
        case connected
        case settingUp(AirPlay2AudioSetupStep)
        /// Set up: waiting for `begin`.
        case ready
        case streaming, tearingDown, closed, failed
    }

    let configuration: AirPlay2AudioSessionConfiguration
    private(set) var state: State = .idle
    private(set) var failure: ATVError?
    private(set) var serverPorts: RAOPServerPorts?
    /// Buffered: the stream SETUP's answer.
    private(set) var bufferedReply: BufferedAudioStreamReply?
    /// Buffered: SETRATEANCHORTIME (rate 1) requests answered 400 in a row.
    private(set) var anchorRefusals = 0
    /// Buffered: the receiver holds a play anchor (rate 1 answered 200, not paused since).
    private(set) var anchored = false
    /// Requests sent and not yet answered, by id.
    private(set) var pending: [Int: AirPlay2AudioRequestKind] = [:]
    /// True once the session SETUP succeeded (TEARDOWN is owed).
    private(set) var hasSession = false

    private var nextID = 0
    private var sessionID: UInt32 = 0
    /// The receiver's address (the RTSP peer's): SETPEERS and the PTP master's peer.
    private var receiverAddress = ""
    /// The addresses the receiver's session SETUP reply gives in its `timingPeerInfo`.
    private var receiverTimingAddresses: [String] = []
    /// The addresses the PTP master sends to for this receiver.
    private(set) var ptpPeers: [String] = []
    /// The addresses this receiver is known by in the clock group (`clockGroupAddresses`).
    private(set) var clockGroupAddresses: [String] = []
    /// The last SETPEERS list sent (nil: none yet).
    private(set) var peersSent: [String]?
    /// They are the master's peers (from the stream SETUP's answer on; removed on teardown).
    private(set) var ptpPeerAdded = false
    private var audioKey: [UInt8] = []
    private var controlPort = 0
    private var timingPort = 0
    private var first = RTPPosition(sequence: 0, rtpTime: 0)
    private var volumeResendAt: ContinuousClock.Instant?

    init(configuration: AirPlay2AudioSessionConfiguration) {
        self.configuration = configuration
    }

    /// The setup steps for this configuration, after `setUp`.
    var plan: [AirPlay2AudioSetupStep] {
        switch (configuration.timing, configuration.stream) {
        case (.ntp, .realtime): [.sessionSetup, .eventChannel, .feedback, .record, .streamSetup, .flush]
        // RECORD before the stream SETUP (Samsung, Sonos), then SETPEERS (docs/PTP-AND-BUFFERED-AUDIO.md §3.1).
        case (.ptp, .realtime): [.sessionSetup, .eventChannel, .feedback, .record, .setPeers, .streamSetup, .flush]
        // Type 103: no FLUSH (nothing was sent yet; SETRATEANCHORTIME starts play, §3.1 step 6).
        case (.ptp, .buffered): [.sessionSetup, .eventChannel, .feedback, .record, .setPeers, .streamSetup]
        // Buffered audio needs PTP (the anchor names our PTP clock): `setUp` refuses it.
        case (.ntp, .buffered): []
        }
    }

    var isFinished: Bool { state == .closed || state == .failed }

    // MARK: Inputs: connection

    mutating func start() -> [AirPlay2AudioSessionAction] {
        guard state == .idle else { return [.warning("session already started")] }
        state = .connecting
        return [.connect]
    }

    /// Connected and paired: the session id (SSRC, `streamConnectionID`), the audio key (`shk`)
    /// and the receiver's address as the connection sees it (PTP: SETPEERS and the master's peer).
    mutating func connected(sessionID: UInt32, audioKey: [UInt8], receiverAddress: String = "") -> [AirPlay2AudioSessionAction] {
        guard state == .connecting else { return [] }
        self.sessionID = sessionID
        self.audioKey = audioKey
        self.receiverAddress = receiverAddress
        state = .connected
        return []
    }

    mutating func connectFailed(_ error: ATVError) -> [AirPlay2AudioSessionAction] {
        guard state == .connecting else { return [] }
        return fail(error)
    }

    /// The connection failed under us (lost, event channel closed).
    mutating func connectionLost(_ error: ATVError) -> [AirPlay2AudioSessionAction] {
        if isFinished || state == .tearingDown { return [] }
        return fail(error)
    }

    // MARK: Inputs: setup

    /// Our UDP sockets are open: set the session up. `first` is the first packet (FLUSH's RTP-Info).
    mutating func setUp(controlPort: Int, timingPort: Int, first: RTPPosition) -> [AirPlay2AudioSessionAction] {
        guard state == .connected else { return [.warning("setUp in state \(state)")] }
        self.controlPort = controlPort
        self.timingPort = timingPort
        self.first = first
        guard let step = plan.first else {
            return fail(.badInput("buffered AirPlay 2 audio needs PTP timing (use --timing ptp or auto)"))
        }
        return run(step)
    }

    mutating func response(id: Int, _ r: RTSPResponse) -> [AirPlay2AudioSessionAction] {
        // Ids are ours: an unknown one belongs to a session that already failed.
        guard let kind = pending.removeValue(forKey: id), !isFinished else { return [] }
        switch kind {
        case .sessionSetup:
            guard state == .settingUp(.sessionSetup) else { return [] }
            do throws(ATVError) {
                try AirPlay2Connection.check(r, kind.rawValue)
            } catch {
                return fail(error)
            }
            hasSession = true
            do throws(ATVError) {
                let reply = try AirPlay2SessionReply(parsing: r.body)
                if configuration.timing.isPTP {
                    // Read leniently: only where the PTP master sends depends on it.
                    receiverTimingAddresses = (try? AirPlay2PTPSessionReply(parsing: r.body))?.timingPeer?.addresses ?? []
                }
                return [.sessionEstablished] + advance(from: .sessionSetup, eventPort: reply.eventPort)
            } catch {
                return [.sessionEstablished] + fail(error)
            }
        case .record:
            guard state == .settingUp(.record) else { return [] }
            do throws(ATVError) {
                try AirPlay2Connection.check(r, kind.rawValue)
            } catch {
                return fail(error)
            }
            return advance(from: .record)
        case .streamSetup:
            guard state == .settingUp(.streamSetup) else { return [] }
            do throws(ATVError) {
                try AirPlay2Connection.check(r, kind.rawValue)
                let ports: RAOPServerPorts
                var buffered: [AirPlay2AudioSessionAction] = []
                if configuration.stream.isBuffered {
                    let reply = try BufferedAudioStreamReply(parsing: r.body)
                    bufferedReply = reply
                    buffered = [.bufferedStream(reply)]
                    ports = RAOPServerPorts(audioPort: reply.dataPort, controlPort: reply.controlPort ?? 0,
                                            timingPort: 0, session: String(sessionID))
                } else {
                    let reply = try AirPlay2AudioStreamReply(parsing: r.body)
                    ports = RAOPServerPorts(audioPort: reply.dataPort, controlPort: reply.controlPort,
                                            timingPort: 0, session: String(sessionID))
                }
                serverPorts = ports
                // PTP: the master sends to the receiver from now on. shairport-sync's nqptp starts
                // following us only at the stream SETUP, so the Announce a new peer gets at once
                // arrives while it listens, and its clock is valid about 0.5 s later
                // (docs/PTP-AND-BUFFERED-AUDIO.md §5.1).
                var join: [AirPlay2AudioSessionAction] = []
                if configuration.timing.isPTP, !ptpPeers.isEmpty {
                    ptpPeerAdded = true
                    join = ptpPeers.map(AirPlay2AudioSessionAction.addPTPPeer)
                }
                return [.serverPorts(ports)] + buffered + join + advance(from: .streamSetup)
            } catch {
                return fail(error)
            }
        case .flush:
            let warning: [AirPlay2AudioSessionAction] = r.isSuccess ? [] : [rejected(kind, r)]
            if state == .settingUp(.flush) { return warning + advance(from: .flush) }
            return warning
        case .setPeers:
            // shairport-sync answers 200 and ignores it; a refusal only warns (the master already
            // sends to the receiver's address, which is what it follows).
            let warning: [AirPlay2AudioSessionAction] = r.isSuccess ? [] : [rejected(kind, r)]
            if state == .settingUp(.setPeers) { return warning + advance(from: .setPeers) }
            return warning
        case .volume, .metadata, .artwork, .progress, .pauseAnchor, .flushBuffered, .peersUpdate:
            return r.isSuccess ? [] : [rejected(kind, r)]
        case .rateAnchor:
            if r.isSuccess {
                anchorRefusals = 0
                anchored = true
                return [.anchored]
            }
            guard r.status == 400 else {
                return fail(.playbackError("the receiver rejected SETRATEANCHORTIME (\(r.status) \(r.reason))"))
            }
            anchorRefusals += 1
            guard anchorRefusals < Self.anchorAttempts else {
                let waited = Self.anchorRetryInterval * (Self.anchorAttempts - 1)
                return fail(.playbackError(
                    "the receiver refused to start buffered playback (SETRATEANCHORTIME answered 400 \(anchorRefusals) times over \(RAOPClient.describe(waited))): it did not lock onto our PTP clock"))
            }
            return [.retryRateAnchor(after: Self.anchorRetryInterval)]
        case .teardown:
            return closed()
        }
    }

    /// A request was not answered (timeout) or could not be sent (the connection is gone).
    mutating func requestFailed(id: Int, _ error: ATVError) -> [AirPlay2AudioSessionAction] {
        guard let kind = pending.removeValue(forKey: id) else { return [] }
        if kind == .teardown { return state == .tearingDown ? closed() : [] }
        if isFinished { return [] }
        if kind.isCritical { return fail(error) }
        let warning = AirPlay2AudioSessionAction.warning("\(kind.rawValue) failed: \(error)")
        if kind == .flush, state == .settingUp(.flush) { return [warning] + advance(from: .flush) }
        if kind == .setPeers, state == .settingUp(.setPeers) { return [warning] + advance(from: .setPeers) }
        return [warning]
    }

    mutating func eventChannelOpened() -> [AirPlay2AudioSessionAction] {
        guard state == .settingUp(.eventChannel) else { return [] }
        return advance(from: .eventChannel)
    }

    mutating func eventChannelFailed(_ error: ATVError) -> [AirPlay2AudioSessionAction] {
        guard state == .settingUp(.eventChannel) else { return [] }
        return fail(error)
    }

    /// The answer to `.joinClockGroup`: every clock-group member's addresses, newest first (this
    /// receiver's among them): SETPEERS lists them, then ours (an iPhone's order; each address
    /// once, docs/PTP-AND-BUFFERED-AUDIO.md §3.3).
    mutating func clockGroupJoined(members: [[String]]) -> [AirPlay2AudioSessionAction] {
        guard state == .settingUp(.setPeers), peersSent == nil, case .ptp(_, let ours) = configuration.timing else { return [] }
        let list = AirPlay2Peers.addressList(members: members, sender: ours)
        peersSent = list
        let request = AirPlay2Peers.setPeers(list, uri: "")
        return [send(.setPeers, AirPlay2AudioRequest("SETPEERS", headers: request.headers, body: request.body))]
    }

    /// A member joined or left the clock group: SETPEERS again with the new list (as an iPhone
    /// re-sends it to every member), once this receiver had its first one and until teardown; the
    /// same list again sends nothing.
    mutating func clockGroupChanged(members: [[String]]) -> [AirPlay2AudioSessionAction] {
        guard let sent = peersSent, !isFinished, state != .tearingDown, case .ptp(_, let ours) = configuration.timing else { return [] }
        let list = AirPlay2Peers.addressList(members: members, sender: ours)
        guard list != sent else { return [] }
        peersSent = list
        let request = AirPlay2Peers.setPeers(list, uri: "")
        return [send(.peersUpdate, AirPlay2AudioRequest("SETPEERS", headers: request.headers, body: request.body))]
    }

    // MARK: Inputs: streaming

    /// Everything after setup and before the first packet: volume, then the metadata.
    mutating func begin(volumeDB: Double?, metadata: MediaMetadata?) -> [AirPlay2AudioSessionAction] {
        guard state == .ready else { return [] }
        state = .streaming
        var actions: [AirPlay2AudioSessionAction] = []
        if let volumeDB { actions += setVolume(dB: volumeDB) }
        if let metadata { actions += sendMetadata(metadata, start: first.rtpTime, next: first) }
        return actions
    }

    private var takesCommands: Bool { state == .ready || state == .streaming }

    mutating func setVolume(dB: Double) -> [AirPlay2AudioSessionAction] {
        guard takesCommands else { return [] }
        return [setParameter(.volume, contentType: "text/parameters", body: Array(RAOPVolume.parameterBody(dB: dB).utf8))]
    }

    /// DMAP text, artwork and (with `start`) progress, as RAOP sends them.
    mutating func sendMetadata(_ metadata: MediaMetadata, start: UInt32?, next: RTPPosition) -> [AirPlay2AudioSessionAction] {
        guard takesCommands else { return [] }
        var actions: [AirPlay2AudioSessionAction] = []
        let info = RAOPTrackInfo(metadata)
        if info.title != nil || info.artist != nil || info.album != nil {
            actions.append(setParameter(.metadata, contentType: "application/x-dmap-tagged", body: info.dmapBytes, rtpInfo: next))
        }
        if let artwork = metadata.artwork, !artwork.isEmpty {
            let type = artwork.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "image/png" : "image/jpeg"
            actions.append(setParameter(.artwork, contentType: type, body: artwork, rtpInfo: next))
        }
        if let start, let duration = metadata.duration, duration > 0 {
            let end = start &+ UInt32(truncatingIfNeeded: Int64(duration * 44_100))
            actions.append(setParameter(.progress, contentType: "text/parameters",
                                        body: Array(RAOPProgress(start: start, current: start, end: end).parameterBody.utf8)))
        }
        return actions
    }

    /// `progress: start/current/end` alone (buffered: after a seek, the programme moved on the RTP
    /// timeline).
    mutating func sendProgress(_ progress: RAOPProgress) -> [AirPlay2AudioSessionAction] {
        guard takesCommands else { return [] }
        return [setParameter(.progress, contentType: "text/parameters", body: Array(progress.parameterBody.utf8))]
    }

    /// Buffered: play by `anchor` (`BufferedSendWindow.start`/`resume`/`seek`); a pause anchor
    /// (`{rate: 0}`) pauses. The answer to a play anchor is `.anchored`, `.retryRateAnchor` (400,
    /// a bounded number of times) or the session's failure.
    mutating func setRateAnchor(_ anchor: BufferedRateAnchor) -> [AirPlay2AudioSessionAction] {
        guard takesCommands, configuration.stream.isBuffered else { return [] }
        let request = AirPlay2AudioRequest(BufferedRateAnchor.method, plist: anchor.body)
        if anchor == .pause {
            anchored = false
            return [send(.pauseAnchor, request)]
        }
        return [send(.rateAnchor, request)]
    }

    /// Buffered: FLUSHBUFFERED (`BufferedSendWindow.seek`'s flush); the receiver stops until the
    /// next anchor.
    mutating func flushBuffered(_ flush: BufferedFlush) -> [AirPlay2AudioSessionAction] {
        guard takesCommands, configuration.stream.isBuffered else { return [] }
        anchored = false
        return [send(.flushBuffered, AirPlay2AudioRequest(BufferedFlush.method, plist: flush.body))]
    }

    /// FLUSH up to (not including) `next`.
    mutating func flush(next: RTPPosition) -> [AirPlay2AudioSessionAction] {
        guard takesCommands else { return [] }
        return [flushRequest(next)]
    }

    /// Audio started flowing at `now`: the volume goes again `volumeResendDelay` later.
    mutating func audioStarted(now: ContinuousClock.Instant) {
        volumeResendAt = now + configuration.volumeResendDelay
    }

    /// The rules checked whenever the streamer wakes: the no-progress rule (`AirPlay2StallRule`)
    /// and the volume re-send. Returns the actions and when to check again (nil: on a signal only).
    mutating func check(now: ContinuousClock.Instant, liveness: AirPlay2Liveness, otherSigns: ContinuousClock.Instant?,
                        volumeDB: Double?, endpoint: String) -> (actions: [AirPlay2AudioSessionAction], recheckAt: ContinuousClock.Instant?) {
        guard !isFinished, state != .tearingDown else { return ([], nil) }
        var next: ContinuousClock.Instant?
        func due(_ t: ContinuousClock.Instant) { next = next.map { min($0, t) } ?? t }
        let rule = AirPlay2StallRule(timeout: configuration.progressTimeout)
        switch rule.verdict(now: now, liveness: liveness, otherSigns: otherSigns) {
        case .stuck(let what, let waited):
            let error = ATVError.playbackError(
                "\(endpoint) makes no progress: it left \(what) unanswered for \(RAOPClient.describe(waited))")
            // Recorded as the connection's failure: TEARDOWN then waits only briefly.
            return ([.failConnection(error)] + fail(error), nil)
        case .alive(let recheckAt):
            if let recheckAt { due(recheckAt) }
        }
        var actions: [AirPlay2AudioSessionAction] = []
        if let t = volumeResendAt {
            if now >= t {
                volumeResendAt = nil
                if let volumeDB { actions += setVolume(dB: volumeDB) }
            } else {
                due(t)
            }
        }
        return (actions, next)
    }

    // MARK: Teardown

    /// Ends the session from any state: TEARDOWN when a session exists and the connection is open
    /// (waiting at most 1 s for the answer once the connection failed), else closes at once.
    mutating func teardown(connectionOpen: Bool, connectionFailed: Bool) -> [AirPlay2AudioSessionAction] {
        switch state {
        case .tearingDown, .closed: return []
        default: break
        }
        volumeResendAt = nil
        let release = ptpPeerAdded ? ptpPeers.map(AirPlay2AudioSessionAction.removePTPPeer) : []
        ptpPeerAdded = false
        guard hasSession, connectionOpen else {
            if state != .failed { state = .closed }
            return release + [.stopFeedback, .close]
        }
        state = .tearingDown
        let wait = connectionFailed ? min(configuration.requestTimeout, .seconds(1)) : configuration.requestTimeout
        return release + [.stopFeedback, .markTearingDown, send(.teardown, AirPlay2AudioRequest("TEARDOWN", timeout: wait))]
    }

    // MARK: Internals

    private mutating func run(_ step: AirPlay2AudioSetupStep, eventPort: Int? = nil) -> [AirPlay2AudioSessionAction] {
        state = .settingUp(step)
        switch step {
        case .sessionSetup:
            let timing: AirPlay2Timing = switch configuration.timing {
            case .ntp: .ntp(timingPort: timingPort)
            // `timingPeerInfo` (shairport-sync requires it) and one copy as `timingPeerList`
            // (docs/PTP-AND-BUFFERED-AUDIO.md §3.2).
            case .ptp(let clockID, let addresses):
                .ptp(.sender(id: configuration.sessionUUID, addresses: addresses, clockID: clockID))
            }
            let body = AirPlay2SessionSetup.body(timing: timing, sessionUUID: configuration.sessionUUID,
                                                 identity: configuration.identity)
            return [send(.sessionSetup, AirPlay2AudioRequest("SETUP", plist: body))]
        case .eventChannel:
            return [.openEventChannel(port: eventPort ?? 0)]
        case .feedback:
            return [.startFeedback] + advance(from: .feedback)
        case .record:
            return [send(.record, AirPlay2AudioRequest("RECORD"))]
        case .setPeers:
            // SETPEERS names every clock-group member and us (docs/PTP-AND-BUFFERED-AUDIO.md §3.3),
            // once the driver says who they are (`clockGroupJoined`); the master sends to the
            // receiver once the stream SETUP is answered.
            guard case .ptp(_, let ours) = configuration.timing else { return advance(from: .setPeers) }
            ptpPeers = Self.ptpPeers(rtspPeer: receiverAddress, timingAddresses: receiverTimingAddresses, ours: ours)
            clockGroupAddresses = Self.clockGroupAddresses(ptpPeers: ptpPeers, timingAddresses: receiverTimingAddresses, ours: ours)
            return [.joinClockGroup(clockGroupAddresses)]
        case .streamSetup:
            if case .buffered(let format) = configuration.stream {
                // Type 103 without latencyMin/Max (docs/PTP-AND-BUFFERED-AUDIO.md §3.5).
                let request = BufferedAudioStreamRequest(format: format, controlPort: controlPort, sharedKey: audioKey,
                                                         streamConnectionID: sessionID)
                do throws(ATVError) {
                    return [send(.streamSetup, AirPlay2AudioRequest("SETUP", plist: try request.body()))]
                } catch {
                    return fail(error)
                }
            }
            let format = configuration.format
            let request = AirPlay2AudioStreamRequest(
                codec: configuration.codec, controlPort: controlPort, sharedKey: audioKey,
                framesPerPacket: format.framesPerPacket, sampleRate: format.sampleRate,
                latencyMin: 11_025, latencyMax: max(88_200, configuration.latencyFrames), streamConnectionID: sessionID)
            return [send(.streamSetup, AirPlay2AudioRequest("SETUP", plist: request.body))]
        case .flush:
            // As pyatv: FLUSH with RTP-Info names the first packet, so a receiver can ask for it
            // again when it is lost.
            return [flushRequest(first)]
        }
    }

    /// Where the PTP master sends for this receiver: the RTSP peer's address, which is what
    /// shairport-sync's nqptp follows (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 3; its reply lists
    /// that address among its own). When the reply's `timingPeerInfo.Addresses` do not include the
    /// RTSP peer, the receiver's clock lives at another address (OwnTone sends to those): those of
    /// the RTSP peer's family are added. Our own addresses are left out (sender and receiver on
    /// one host: the master never sends to itself). IPv6 addresses are served like IPv4 ones; a
    /// `%interface` suffix in the reply names the receiver's interface, not ours, and is dropped
    /// (the master sends to a link-local address on the interface of its own address).
    static func ptpPeers(rtspPeer: String, timingAddresses: [String], ours: [String]) -> [String] {
        var peers = rtspPeer.isEmpty || ours.contains(rtspPeer) ? [] : [rtspPeer]
        let addresses = timingAddresses.map { String($0.split(separator: "%", maxSplits: 1).first ?? "") }
        guard !addresses.contains(rtspPeer) else { return peers }
        let v6 = rtspPeer.contains(":")
        for a in addresses where a.contains(":") == v6 && !ours.contains(a) && !peers.contains(a) && !a.isEmpty {
            peers.append(a)
        }
        return peers
    }

    /// The addresses this receiver is known by in SETPEERS: where the master sends
    /// (`ptpPeers`), then every other address its session SETUP reply lists (an iPhone lists every
    /// address of every member; shairport-sync's reply lists all of its interfaces), without a
    /// `%interface` suffix (it names the receiver's interface, meaningless to the others) and
    /// never ours.
    static func clockGroupAddresses(ptpPeers: [String], timingAddresses: [String], ours: [String]) -> [String] {
        var out = ptpPeers
        for a in timingAddresses.map({ String($0.split(separator: "%", maxSplits: 1).first ?? "") })
        where !a.isEmpty && !ours.contains(a) && !out.contains(a) {
            out.append(a)
        }
        return out
    }

    /// `step` completed: the next one, or ready.
    private mutating func advance(from step: AirPlay2AudioSetupStep, eventPort: Int? = nil) -> [AirPlay2AudioSessionAction] {
        let steps = plan
        guard let i = steps.firstIndex(of: step), i + 1 < steps.count else {
            state = .ready
            return [.ready]
        }
        return run(steps[i + 1], eventPort: eventPort)
    }

    private mutating func flushRequest(_ next: RTPPosition) -> AirPlay2AudioSessionAction {
        var h = RTSPHeaders()
        h.add("Range", "npt=0-")
        h.add("RTP-Info", "seq=\(next.sequence);rtptime=\(next.rtpTime)")
        return send(.flush, AirPlay2AudioRequest("FLUSH", headers: h))
    }

    private mutating func setParameter(_ kind: AirPlay2AudioRequestKind, contentType: String, body: [UInt8],
                                       rtpInfo: RTPPosition? = nil) -> AirPlay2AudioSessionAction {
        var h = RTSPHeaders()
        h.add("Content-Type", contentType)
        if let rtpInfo { h.add("RTP-Info", "seq=\(rtpInfo.sequence);rtptime=\(rtpInfo.rtpTime)") }
        return send(kind, AirPlay2AudioRequest("SET_PARAMETER", headers: h, body: body))
    }

    private mutating func send(_ kind: AirPlay2AudioRequestKind, _ request: AirPlay2AudioRequest) -> AirPlay2AudioSessionAction {
        let id = nextID
        nextID += 1
        pending[id] = kind
        return .send(request, id: id, kind)
    }

    private func rejected(_ kind: AirPlay2AudioRequestKind, _ r: RTSPResponse) -> AirPlay2AudioSessionAction {
        .warning("the receiver rejected \(kind.rawValue) (\(r.status) \(r.reason))")
    }

    private mutating func closed() -> [AirPlay2AudioSessionAction] {
        guard state == .tearingDown else { return [] }
        state = .closed
        return [.close]
    }

    private mutating func fail(_ error: ATVError) -> [AirPlay2AudioSessionAction] {
        state = .failed
        failure = failure ?? error
        pending.removeAll()
        volumeResendAt = nil
        return [.failed(error)]
    }
}

/// `error` as an `ATVError` (another error becomes a playback error naming it).
func asATVError(_ error: any Error) -> ATVError {
    error as? ATVError ?? .playbackError("\(error)")
}
