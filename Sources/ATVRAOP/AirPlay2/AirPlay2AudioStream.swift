// AirPlay 2 realtime audio, the steps HomePods require in this order: on an
// `AirPlay2Connection`, the session SETUP with NTP timing, RECORD, the audio stream SETUP (`type 96`,
// ALAC `ct 2` / `audioFormat 0x40000` or PCM `ct 1` / `0x800`, `shk`), then RTP through the RAOP
// pacer with every packet sealed by `AirPlay2AudioCipher`, sync packets, the NTP responder,
// retransmits of the sealed packets from the backlog, volume (again once audio flows),
// metadata/artwork/progress, `/feedback`, and TEARDOWN in every case. The sockets, packets and
// pacing are the one sender's (`AudioSender.swift`); this file is AirPlay 2's `AudioRouteSession`.
//
// "No progress" rule (`AirPlay2StallRule`): the stream fails with `playbackError` when the receiver
// leaves an RTSP request (the `/feedback` keep-alive, SET_PARAMETER, FLUSH) unanswered for
// `progressTimeout` with no other sign of life (another answer, an event-channel request, a timing
// or retransmit request). Timing and retransmit requests count when they come, but a receiver need
// not send any: one that plays by its own clock never asks for timing.
import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The RTSP side of one AirPlay 2 audio stream: AirPlay 2's `AudioRouteSession`.
final class AirPlay2AudioSession: AudioRouteSession {
    let connection: AirPlay2Connection
    private let host: String
    private let port: Int
    private let logger: Logger
    /// The last timing or retransmit request from the receiver (a sign of life when present).
    private let lastUDPContact = Mutex<ContinuousClock.Instant?>(nil)
    private let warningList = Mutex<[String]>([])
    /// When to send the volume again once audio flows (tvOS 26.6 plays silence until then).
    private let volumeResendAt = Mutex<ContinuousClock.Instant?>(nil)
    private let rule: AirPlay2StallRule

    init(connection: AirPlay2Connection, host: String, port: Int, progressTimeout: Duration, logger: Logger) {
        self.connection = connection
        self.host = host
        self.port = port
        self.logger = logger
        rule = AirPlay2StallRule(timeout: progressTimeout)
    }

    /// Connects, pairs and encrypts (`AirPlay2Connection`); a lost connection or a request sent
    /// (each starts a stall clock) wakes the coordinator.
    static func open(host: String, port: Int, options: RAOPOptions, wakeup: RAOPWakeup,
                     logger: Logger) async throws -> AirPlay2AudioSession {
        let connectionOptions = AirPlay2ConnectionOptions(
            userAgent: options.userAgent, connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout,
            credentials: options.hapCredentials, requestInfo: options.requestInfo)
        let connection = try await AirPlay2Connection.connect(host: host, port: port, options: connectionOptions, logger: logger)
        connection.onFailure { _ in wakeup.signal() }
        connection.onRequestSent { wakeup.signal() }
        return AirPlay2AudioSession(connection: connection, host: host, port: port,
                                    progressTimeout: options.progressTimeout, logger: logger)
    }

    var localIP: String { connection.localIP }
    var remoteIP: String { connection.remoteIP }
    var ssrc: UInt32 { connection.sessionID }
    var audioKey: [UInt8] { HAPChannel.airPlayAudioKey(sharedSecret: connection.sharedSecret) }
    func makeAudioCipher() throws -> AirPlay2AudioCipher? { try AirPlay2AudioCipher(key: audioKey) }
    var defaultSendAhead: Duration { RAOPOptions.airPlay2DefaultSendAhead }
    var takesVolumeDuringSetup: Bool { false }
    var sessionFailureExplainsErrors: Bool { true }

    var warnings: [String] { warningList.withLock { $0 } }

    /// The receiver sent a timing or retransmit request.
    func noteContact() { lastUDPContact.withLock { $0 = .now } }

    var lastContact: ContinuousClock.Instant? { lastUDPContact.withLock { $0 } }

    private func warn(_ text: String) {
        logger.info("AirPlay 2: \(text)")
        warningList.withLock { $0.append(text) }
    }

    func setUp(controlPort: Int, timingPort: Int, next: RTPPosition, options: RAOPOptions) async throws -> RAOPServerPorts {
        try await connection.setupSession(timing: .ntp(timingPort: timingPort))
        // Unanswered keep-alives are judged by the stall rule (progressTimeout), not by a count.
        connection.startFeedback(interval: options.feedbackInterval, failAfterMisses: nil)
        try await record()
        let format = RAOPAudioFormat(codec: options.codec)
        let request = AirPlay2AudioStreamRequest(
            codec: options.codec, controlPort: controlPort, sharedKey: audioKey,
            framesPerPacket: format.framesPerPacket, sampleRate: format.sampleRate,
            latencyMin: 11_025, latencyMax: max(88_200, options.latencyFrames), streamConnectionID: connection.sessionID)
        let reply = try await setupStream(request)
        logger.debug("AirPlay 2: audio stream SETUP → dataPort \(reply.dataPort), controlPort \(reply.controlPort)")
        guard (try? SocketAddress(ipAddress: connection.remoteIP, port: reply.dataPort)) != nil,
              (try? SocketAddress(ipAddress: connection.remoteIP, port: reply.controlPort)) != nil else {
            throw ATVError.protocolError("cannot address the receiver's UDP ports")
        }
        // As pyatv: FLUSH with RTP-Info names the first packet, so a receiver can ask for it
        // again when it is lost.
        await flush(next: next)
        return RAOPServerPorts(audioPort: reply.dataPort, controlPort: reply.controlPort,
                               timingPort: 0, session: String(connection.sessionID))
    }

    func begin(volume: Double?, metadata: MediaMetadata?, next: RTPPosition) async throws {
        if let volume { await setVolume(dB: RAOPVolume.dB(fromPercent: volume)) }
        if let metadata { await sendMetadata(metadata, start: next.rtpTime, next: next) }
        if let failure = connection.failure { throw failure }
    }

    /// `/feedback` runs on the connection (started in `setUp`).
    func keepAlive(interval: Duration) async throws {}

    func failure() async -> ATVError? { connection.failure }

    func audioStarted(now: ContinuousClock.Instant) {
        volumeResendAt.withLock { $0 = now + .seconds(1) }
    }

    /// The no-progress rule (`AirPlay2StallRule`) and the volume re-sent once audio flows.
    func check(now: ContinuousClock.Instant, volume: Double?) throws -> ContinuousClock.Instant? {
        var next: ContinuousClock.Instant?
        func due(_ t: ContinuousClock.Instant) { next = next.map { min($0, t) } ?? t }
        switch rule.verdict(now: now, liveness: connection.liveness, otherSigns: lastContact) {
        case .stuck(let what, let waited):
            let error = ATVError.playbackError(
                "\(host):\(port) makes no progress: it left \(what) unanswered for \(RAOPClient.describe(waited))")
            // Recorded as the connection's failure: TEARDOWN then waits only briefly.
            connection.fail(error)
            throw error
        case .alive(let recheckAt):
            if let recheckAt { due(recheckAt) }
        }
        let resend = volumeResendAt.withLock { at -> Bool? in
            guard let t = at else { return nil }
            if now >= t {
                at = nil
                return true
            }
            due(t)
            return false
        }
        if resend == true, let volume {
            // tvOS 26.6 plays silence until the volume is sent again after audio started.
            Task { await self.setVolume(dB: RAOPVolume.dB(fromPercent: volume)) }
        }
        return next
    }

    func record() async throws {
        let r = try await connection.request("RECORD")
        try AirPlay2Connection.check(r, "RECORD")
    }

    func setupStream(_ request: AirPlay2AudioStreamRequest) async throws -> AirPlay2AudioStreamReply {
        let r = try await connection.request("SETUP", plist: request.body)
        try AirPlay2Connection.check(r, "audio stream SETUP")
        return try AirPlay2AudioStreamReply(parsing: r.body)
    }

    private func setParameter(_ what: String, contentType: String, body: [UInt8], rtpInfo: RTPPosition?) async {
        var h = RTSPHeaders()
        h.add("Content-Type", contentType)
        if let rtpInfo {
            h.add("RTP-Info", "seq=\(rtpInfo.sequence);rtptime=\(rtpInfo.rtpTime)")
        }
        do {
            let r = try await connection.request("SET_PARAMETER", headers: h, body: body)
            if !r.isSuccess { warn("the receiver rejected \(what) (\(r.status) \(r.reason))") }
        } catch {
            warn("\(what) failed: \(error)")
        }
    }

    func setVolume(dB: Double) async {
        await setParameter("SET_PARAMETER volume", contentType: "text/parameters",
                           body: Array(RAOPVolume.parameterBody(dB: dB).utf8), rtpInfo: nil)
    }

    /// DMAP text, artwork and (with `start`) progress, as RAOP sends them.
    func sendMetadata(_ metadata: MediaMetadata, start: UInt32?, next: RTPPosition) async {
        let info = RAOPTrackInfo(metadata)
        if info.title != nil || info.artist != nil || info.album != nil {
            await setParameter("SET_PARAMETER metadata", contentType: "application/x-dmap-tagged", body: info.dmapBytes, rtpInfo: next)
        }
        if let artwork = metadata.artwork, !artwork.isEmpty {
            let type = artwork.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "image/png" : "image/jpeg"
            await setParameter("SET_PARAMETER artwork", contentType: type, body: artwork, rtpInfo: next)
        }
        if let start, let duration = metadata.duration, duration > 0 {
            let end = start &+ UInt32(truncatingIfNeeded: Int64(duration * 44_100))
            await setParameter("SET_PARAMETER progress", contentType: "text/parameters",
                               body: Array(RAOPProgress(start: start, current: start, end: end).parameterBody.utf8), rtpInfo: nil)
        }
    }

    func flush(next: RTPPosition) async {
        var h = RTSPHeaders()
        h.add("Range", "npt=0-")
        h.add("RTP-Info", "seq=\(next.sequence);rtptime=\(next.rtpTime)")
        do {
            let r = try await connection.request("FLUSH", headers: h)
            if !r.isSuccess { warn("the receiver rejected FLUSH (\(r.status) \(r.reason))") }
        } catch {
            warn("FLUSH failed: \(error)")
        }
    }

    func teardown(failed: Bool) async -> ATVError? {
        let failure = connection.failure
        await connection.teardown()
        return failure
    }

    func close() async { await connection.close() }
}

extension RAOPClient {
    /// "1 s", "2.5 s".
    static func describe(_ d: Duration) -> String {
        let s = (seconds(d) * 10).rounded() / 10
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}
