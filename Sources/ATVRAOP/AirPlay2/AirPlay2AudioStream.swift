// AirPlay 2 realtime audio, the steps HomePods require in this order: on an
// `AirPlay2Connection`, the session SETUP with NTP timing, RECORD, the audio stream SETUP (`type 96`,
// ALAC `ct 2` / `audioFormat 0x40000` or PCM `ct 1` / `0x800`, `shk`), then RTP through the RAOP
// pacer with every packet sealed by `AirPlay2AudioCipher`, sync packets, the NTP responder,
// retransmits of the sealed packets from the backlog, volume (again once audio flows),
// metadata/artwork/progress, `/feedback`, and TEARDOWN in every case. The order and the requests
// are `AirPlay2AudioSessionStateMachine`'s (pure); this file is its driver, AirPlay 2's
// `AudioRouteSession`. The sockets, packets and pacing are the one sender's (`AudioSender.swift`).
//
// "No progress" rule (`AirPlay2StallRule`): the stream fails with `playbackError` when the receiver
// leaves an RTSP request (the `/feedback` keep-alive, SET_PARAMETER, FLUSH) unanswered for
// `progressTimeout` with no other sign of life (another answer, an event-channel request, a timing
// or retransmit request). Timing and retransmit requests count when they come, but a receiver need
// not send any: one that plays by its own clock never asks for timing.
//
// PTP timing (route `realtimePTP`, docs/PTP-AND-BUFFERED-AUDIO.md §3): the session takes a
// reference to the process's PTP master (`PTPMaster.shared`, bound to the connection's local
// address), announces its clock in the session SETUP, adds the receiver to the master's peers at
// SETPEERS, removes it and gives the reference back on teardown (SETPEERS names the clock group:
// a group member's `GroupClockMembership`, or this receiver alone); the sync packets are 0xD7 time
// announces on the master's timeline (`ptpTimeline`). When UDP 319/320 cannot be bound the stream
// fails with `PTPPorts`' one line, or, where the route allows (`ntpFallback`), goes on with NTP
// after a warning.
import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import ATVPTP
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The RTSP side of one AirPlay 2 audio stream: AirPlay 2's `AudioRouteSession`, a thin driver
/// that performs `AirPlay2AudioSessionStateMachine`'s actions over an `AirPlay2Connection` (each
/// request's answer is fed back before the next action, so requests go one after the other).
final class AirPlay2AudioSession: AudioRouteSession {
    let connection: AirPlay2Connection
    private let host: String
    private let port: Int
    private let feedbackInterval: Duration
    private let logger: Logger
    private let machine: Mutex<AirPlay2AudioSessionStateMachine>
    let audioRoute: AirPlayAudioRouteChoice
    /// The PTP master this session holds a reference to (PTP routes), until `releaseMaster`.
    private let master: Mutex<PTPMaster?>
    let ptpTimeline: PTPTimeline?
    /// The last timing or retransmit request from the receiver (a sign of life when present).
    private let lastUDPContact = Mutex<ContinuousClock.Instant?>(nil)
    private let warningList = Mutex<[String]>([])
    /// When the receiver joined the PTP master's peers (audio waits `ptpClockSettle` after it).
    private let ptpJoinedAt = Mutex<ContinuousClock.Instant?>(nil)
    /// Buffered: the last SETRATEANCHORTIME's outcome (`.retryRateAnchor`'s delay; nil: taken).
    private let anchorRetry = Mutex<Duration?>(nil)
    /// What TXT and `/info` say about the receiver: shairport-sync and Samsung need a later first
    /// anchor than others (`firstAnchorEarliest`).
    private let receiverTraits: AirPlayReceiverTraits
    /// A group member's clock group (SETPEERS lists every member); nil: a single stream.
    private let clockGroup: GroupClockMembership?

    private init(connection: AirPlay2Connection, machine: AirPlay2AudioSessionStateMachine, host: String, port: Int,
                 feedbackInterval: Duration, route: AirPlayAudioRouteChoice, master: PTPMaster?, warnings: [String],
                 receiverTraits: AirPlayReceiverTraits, clockGroup: GroupClockMembership?, logger: Logger) {
        self.connection = connection
        self.clockGroup = clockGroup
        self.receiverTraits = receiverTraits
        self.machine = Mutex(machine)
        self.audioRoute = route
        self.master = Mutex(master)
        ptpTimeline = master.map { PTPTimeline(clockID: $0.clockIdentity.value, timescaleOffset: $0.timescaleOffset) }
        warningList.withLock { $0 = warnings }
        self.host = host
        self.port = port
        self.feedbackInterval = feedbackInterval
        self.logger = logger
    }

    /// Connects, pairs and encrypts (`AirPlay2Connection`); a lost connection or a request sent
    /// (each starts a stall clock) wakes the coordinator.
    static func open(host: String, port: Int, options: RAOPOptions, wakeup: RAOPWakeup,
                     clockGroup: GroupClockMembership? = nil, logger: Logger) async throws -> AirPlay2AudioSession {
        var connectionOptions = AirPlay2ConnectionOptions(
            userAgent: options.userAgent, connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout,
            credentials: options.hapCredentials, requestInfo: options.requestInfo)
        connectionOptions.localAddress = options.localAddress
        // `.connect`: the machine's first action (its configuration, the timing, depends on the route).
        let connection = try await AirPlay2Connection.connect(host: host, port: port, options: connectionOptions, logger: logger)
        let (chosen, master, warnings): (AirPlayAudioRouteChoice, PTPMaster?, [String])
        let traits = Self.traits(options: options, connection: connection)
        do {
            (chosen, master, warnings) = try await chooseRoute(options: options, traits: traits, connection: connection, logger: logger)
        } catch {
            await connection.close()
            throw error
        }
        var route = chosen
        logger.info("audio streaming to \(host):\(port): \(route)")
        // Buffered PTP: type 103 in the format the receiver's /info lists (ALAC 44.1 kHz/16-bit, the
        // realtime path's payload, else AAC-LC 44.1 kHz; docs/PTP-AND-BUFFERED-AUDIO.md §3.5, §4.4).
        let stream: AirPlay2AudioStreamKind
        do {
            stream = try bufferedFormat(route: &route, options: options, connection: connection, logger: logger)
        } catch {
            await connection.close()
            await master?.release()
            throw error
        }
        let timing: AirPlay2AudioTimingMode = master.map {
            .ptp(clockID: $0.clockIdentity.value, addresses: [connection.localIP])
        } ?? .ntp
        var machine = AirPlay2AudioSessionStateMachine(configuration: AirPlay2AudioSessionConfiguration(
            identity: connectionOptions.identity, sessionUUID: randomUUID(), codec: options.codec,
            latencyFrames: options.latencyFrames, timing: timing, stream: stream, requestTimeout: options.requestTimeout,
            progressTimeout: options.progressTimeout))
        _ = machine.start()
        _ = machine.connected(sessionID: connection.sessionID,
                              audioKey: HAPChannel.airPlayAudioKey(sharedSecret: connection.sharedSecret),
                              receiverAddress: connection.remoteIP)
        let session = AirPlay2AudioSession(connection: connection, machine: machine, host: host, port: port,
                                           feedbackInterval: options.feedbackInterval, route: route, master: master,
                                           warnings: warnings, receiverTraits: traits, clockGroup: clockGroup, logger: logger)
        connection.onFailure { [weak session] error in
            session?.connectionLost(error)
            wakeup.signal()
        }
        connection.onRequestSent { wakeup.signal() }
        return session
    }

    /// The route from TXT and `/info` (`AirPlayAudioRouteChoice.choose`) and, for PTP, a reference
    /// to the process's master; PTP ports that cannot be bound fail the stream (one line, with
    /// `PTPPorts`' advice) unless the route allows NTP instead.
    private static func chooseRoute(options: RAOPOptions, traits: AirPlayReceiverTraits, connection: AirPlay2Connection,
                                    logger: Logger) async throws -> (AirPlayAudioRouteChoice, PTPMaster?, [String]) {
        let route = try AirPlayAudioRouteChoice.choose(version: .v2, traits: traits, timing: options.timing,
                                                       buffered: options.buffered)
        guard route.route.usesPTP else { return (route, nil, []) }
        do {
            return (route, try await PTPMaster.shared(bindAddress: connection.localIP), [])
        } catch {
            guard let (ntp, warning) = route.fallingBack(after: asATVError(error)) else { throw error }
            logger.warning("\(warning)")
            return (ntp, nil, [warning])
        }
    }

    /// What TXT and `/info` say about the receiver.
    private static func traits(options: RAOPOptions, connection: AirPlay2Connection) -> AirPlayReceiverTraits {
        options.receiverTraits.merged(with: connection.info.map(AirPlayReceiverTraits.init(info:)) ?? AirPlayReceiverTraits())
    }

    /// The stream kind: realtime, or buffered in the format `BufferedFormatChoice` picks (written
    /// into `route` for the report, and logged). PCM, or AAC on a realtime route, is an error.
    private static func bufferedFormat(route: inout AirPlayAudioRouteChoice, options: RAOPOptions, connection: AirPlay2Connection,
                                       logger: Logger) throws -> AirPlay2AudioStreamKind {
        guard route.route == .bufferedPTP else {
            if options.bufferedCodec == .aac {
                throw ATVError.invalidValue("--codec aac needs buffered AirPlay 2 audio (--buffered on); this stream is \(route.route)")
            }
            return .realtime
        }
        guard options.codec == .alac else {
            throw ATVError.invalidValue("buffered AirPlay 2 audio is sent as ALAC or AAC-LC; use --codec alac or aac")
        }
        let bits = traits(options: options, connection: connection).bufferStreamFormats
        let choice = try BufferedFormatChoice.choose(bufferStream: bits, codec: options.bufferedCodec)
        let listed = bits.map { "; /info bufferStream 0x" + String($0, radix: 16, uppercase: true) + ": " + BufferedFormatChoice.describe($0) } ?? ""
        logger.info("buffered audio format: \(choice.format), SSRC 0x\(String(choice.format.ssrc, radix: 16, uppercase: true)) (\(choice.reason)\(listed))")
        route.bufferedCodec = choice.format.isAAC ? .aac : .alac
        route.bufferedFormat = choice.format.description
        return .buffered(choice.format)
    }

    /// Gives the PTP master reference back (once).
    private func releaseMaster() async {
        let m = master.withLock { m -> PTPMaster? in
            defer { m = nil }
            return m
        }
        await m?.release()
    }

    var localIP: String { connection.localIP }
    var remoteIP: String { connection.remoteIP }
    var ssrc: UInt32 { connection.sessionID }
    func makeAudioCipher() throws -> AirPlay2AudioCipher? {
        try AirPlay2AudioCipher(key: HAPChannel.airPlayAudioKey(sharedSecret: connection.sharedSecret))
    }
    var defaultSendAhead: Duration { RAOPOptions.airPlay2DefaultSendAhead }
    var takesVolumeDuringSetup: Bool { false }
    var sessionFailureExplainsErrors: Bool { true }

    var warnings: [String] { warningList.withLock { $0 } }

    /// The receiver sent a timing or retransmit request.
    func noteContact() { lastUDPContact.withLock { $0 = .now } }

    var lastContact: ContinuousClock.Instant? { lastUDPContact.withLock { $0 } }

    /// The machine's state (tests, logs).
    var state: AirPlay2AudioSessionStateMachine.State { machine.withLock { $0.state } }

    private func connectionLost(_ error: ATVError) {
        _ = machine.withLock { $0.connectionLost(error) }
    }

    private func warn(_ text: String) {
        logger.info("AirPlay 2: \(text)")
        warningList.withLock { $0.append(text) }
    }

    /// Performs the machine's actions in order; a request's answer (or failure) goes back to the
    /// machine, and its actions are performed, before the next action.
    private func perform(_ actions: [AirPlay2AudioSessionAction]) async {
        for action in actions {
            switch action {
            case .connect, .ready, .failed:
                break  // connecting is `open`'s; the outcome is read from the machine
            case .send(let request, let id, let kind):
                let next: [AirPlay2AudioSessionAction]
                do {
                    let r = try await connection.request(request.method, uri: request.uri, headers: request.headers,
                                                         body: request.body, timeout: request.timeout)
                    if kind == .teardown { logger.debug("AirPlay 2: TEARDOWN → \(r.status)") }
                    next = machine.withLock { $0.response(id: id, r) }
                } catch {
                    if kind == .teardown { logger.debug("AirPlay 2: TEARDOWN not answered: \(error)") }
                    next = machine.withLock { $0.requestFailed(id: id, asATVError(error)) }
                }
                await perform(next)
            case .sessionEstablished:
                connection.sessionEstablished()
            case .openEventChannel(let port):
                logger.debug("AirPlay 2: session SETUP → eventPort \(port)")
                let next: [AirPlay2AudioSessionAction]
                do {
                    try await connection.openEventChannel(port: port)
                    next = machine.withLock { $0.eventChannelOpened() }
                } catch {
                    next = machine.withLock { $0.eventChannelFailed(asATVError(error)) }
                }
                await perform(next)
            case .startFeedback:
                // Unanswered keep-alives are judged by the stall rule (progressTimeout), not by a count.
                connection.startFeedback(interval: feedbackInterval, failAfterMisses: nil)
            case .addPTPPeer(let host):
                logger.debug("AirPlay 2: PTP master \(master.withLock { $0?.clockIdentity.description } ?? "-") sends to \(host)")
                master.withLock { $0 }?.addPeer(host)
                ptpJoinedAt.withLock { $0 = $0 ?? .now }
            case .removePTPPeer(let host):
                master.withLock { $0 }?.removePeer(host)
            case .joinClockGroup(let addresses):
                let members = clockGroup?.join(addresses) { [weak self] members in self?.clockGroupChanged(members) }
                    ?? [addresses]
                await perform(machine.withLock { $0.clockGroupJoined(members: members) })
            case .bufferedStream(let reply):
                logger.debug("AirPlay 2: buffered stream SETUP → dataPort \(reply.dataPort), audioBufferSize \(reply.effectiveAudioBufferSize)")
            case .anchored:
                anchorRetry.withLock { $0 = nil }
            case .retryRateAnchor(let after):
                logger.info("AirPlay 2: SETRATEANCHORTIME answered 400 (the receiver has not measured our clock yet); again in \(after)")
                anchorRetry.withLock { $0 = after }
            case .serverPorts(let ports):
                logger.debug("AirPlay 2: audio stream SETUP → dataPort \(ports.audioPort), controlPort \(ports.controlPort)")
            case .stopFeedback:
                connection.stopFeedback()
            case .markTearingDown:
                connection.markTearingDown()
            case .failConnection(let error):
                connection.fail(error)
            case .close:
                await connection.close()
            case .warning(let text):
                warn(text)
            }
        }
    }

    func setUp(controlPort: Int, timingPort: Int, next: RTPPosition, options: RAOPOptions) async throws -> RAOPServerPorts {
        await perform(machine.withLock { $0.setUp(controlPort: controlPort, timingPort: timingPort, first: next) })
        try Task.checkCancellation()
        let (state, failure, ports) = machine.withLock { ($0.state, $0.failure, $0.serverPorts) }
        if let failure { throw failure }
        guard state == .ready, let ports else {
            throw ATVError.protocolError("the AirPlay 2 session at \(host):\(port) did not finish its setup")
        }
        return ports
    }

    func begin(volume: Double?, metadata: MediaMetadata?, next: RTPPosition) async throws {
        await perform(machine.withLock {
            $0.begin(volumeDB: volume.map { RAOPVolume.dB(fromPercent: $0) }, metadata: metadata)
        })
        if let failure = connection.failure { throw failure }
        // PTP: the first time announce goes when the receiver can trust our clock. (Buffered: the
        // first anchor's time is chosen late enough instead, `firstAnchorEarliest`.)
        if !isBuffered, let joined = ptpJoinedAt.withLock({ $0 }) {
            let wait = joined + AirPlay2AudioSessionStateMachine.ptpClockSettle - .now
            if wait > .zero { try await Task.sleep(for: wait) }
        }
    }

    /// `/feedback` runs on the connection (started during setup).
    func keepAlive(interval: Duration) async throws {}

    func failure() async -> ATVError? { connection.failure }

    func audioStarted(now: ContinuousClock.Instant) {
        machine.withLock { $0.audioStarted(now: now) }
    }

    /// The no-progress rule (`AirPlay2StallRule`) and the volume re-sent once audio flows.
    func check(now: ContinuousClock.Instant, volume: Double?) throws -> ContinuousClock.Instant? {
        let liveness = connection.liveness
        let otherSigns = lastContact
        let endpoint = "\(host):\(port)"
        let (actions, next) = machine.withLock {
            $0.check(now: now, liveness: liveness, otherSigns: otherSigns,
                     volumeDB: volume.map { RAOPVolume.dB(fromPercent: $0) }, endpoint: endpoint)
        }
        for case .failed(let error) in actions {
            // Recorded as the connection's failure: TEARDOWN then waits only briefly.
            connection.fail(error)
            throw error
        }
        if !actions.isEmpty {
            // tvOS 26.6 plays silence until the volume is sent again after audio started.
            Task { await self.perform(actions) }
        }
        return next
    }

    var isBuffered: Bool { machine.withLock { $0.configuration.stream.isBuffered } }

    /// Buffered: the type-103 format (`BufferedFormatChoice`).
    var bufferedFormat: BufferedAudioFormat? {
        machine.withLock { if case .buffered(let f) = $0.configuration.stream { f } else { nil } }
    }

    /// Buffered: the earliest instant the first anchor may name, `firstAnchorDelay` after the
    /// receiver joined the master's peers (docs/PTP-AND-BUFFERED-AUDIO.md §4.6).
    var firstAnchorEarliest: ContinuousClock.Instant? {
        ptpJoinedAt.withLock { $0 }.map {
            $0 + AirPlay2AudioSessionStateMachine.firstAnchorDelay(for: receiverTraits)
        }
    }

    /// Buffered: the type-103 stream SETUP's answer (after `setUp`).
    var bufferedReply: BufferedAudioStreamReply? { machine.withLock { $0.bufferedReply } }

    /// Buffered: sends SETRATEANCHORTIME. Returns nil when the receiver took it (or for a pause),
    /// or how long to wait before sending a fresh anchor (it answered 400); throws when the
    /// session cannot go on (another refusal, too many 400s, the connection lost).
    func sendRateAnchor(_ anchor: BufferedRateAnchor) async throws -> Duration? {
        anchorRetry.withLock { $0 = nil }
        await perform(machine.withLock { $0.setRateAnchor(anchor) })
        if let failure = machine.withLock({ $0.failure }) { throw failure }
        if let failure = connection.failure { throw failure }
        return anchorRetry.withLock { $0 }
    }

    /// Buffered: FLUSHBUFFERED (a refusal only warns).
    func flushBuffered(_ flush: BufferedFlush) async {
        await perform(machine.withLock { $0.flushBuffered(flush) })
    }

    /// SET_PARAMETER progress (a refusal only warns).
    func sendProgress(_ progress: RAOPProgress) async {
        await perform(machine.withLock { $0.sendProgress(progress) })
    }

    /// The clock group changed (a member joined or left): SETPEERS again, in the background.
    private func clockGroupChanged(_ members: [[String]]) {
        let actions = machine.withLock { $0.clockGroupChanged(members: members) }
        if !actions.isEmpty { Task { await self.perform(actions) } }
    }

    func flush(next: RTPPosition) async {
        await perform(machine.withLock { $0.flush(next: next) })
    }

    func setVolume(dB: Double) async {
        await perform(machine.withLock { $0.setVolume(dB: dB) })
    }

    func sendMetadata(_ metadata: MediaMetadata, start: UInt32?, next: RTPPosition) async {
        await perform(machine.withLock { $0.sendMetadata(metadata, start: start, next: next) })
    }

    /// TEARDOWN when a session exists (briefly after a failure), then close; returns the
    /// connection's failure.
    func teardown(failed: Bool) async -> ATVError? {
        let failure = connection.failure
        let open = connection.isOpen
        await perform(machine.withLock { $0.teardown(connectionOpen: open, connectionFailed: failure != nil) })
        await releaseMaster()
        return failure
    }

    func close() async {
        await connection.close()
        await releaseMaster()
    }
}

extension RAOPClient {
    /// "1 s", "2.5 s".
    static func describe(_ d: Duration) -> String {
        let s = (seconds(d) * 10).rounded() / 10
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}
