// AirPlay 2 realtime audio, the steps HomePods require in this order: on an
// `AirPlay2Connection`, the session SETUP with NTP timing, RECORD, the audio stream SETUP (`type 96`,
// ALAC `ct 2` / `audioFormat 0x40000` or PCM `ct 1` / `0x800`, `shk`), then RTP through the RAOP
// pacer with every packet sealed by `AirPlay2AudioCipher`, sync packets, the NTP responder,
// retransmits of the sealed packets from the backlog, volume (again once audio flows),
// metadata/artwork/progress, `/feedback`, and TEARDOWN in every case.
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

/// The RTSP side of one AirPlay 2 audio stream.
final class AirPlay2AudioSession: Sendable {
    let connection: AirPlay2Connection
    let live: RAOPLiveState
    private let logger: Logger
    /// The last timing or retransmit request from the receiver (a sign of life when present).
    private let lastUDPContact = Mutex<ContinuousClock.Instant?>(nil)
    private let warningList = Mutex<[String]>([])

    init(connection: AirPlay2Connection, live: RAOPLiveState, logger: Logger) {
        self.connection = connection
        self.live = live
        self.logger = logger
    }

    var warnings: [String] { warningList.withLock { $0 } }

    /// The receiver sent a timing or retransmit request.
    func noteContact() { lastUDPContact.withLock { $0 = .now } }

    var lastContact: ContinuousClock.Instant? { lastUDPContact.withLock { $0 } }

    private func warn(_ text: String) {
        logger.info("AirPlay 2: \(text)")
        warningList.withLock { $0.append(text) }
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

    private func setParameter(_ what: String, contentType: String, body: [UInt8], rtpInfo: Bool) async {
        var h = RTSPHeaders()
        h.add("Content-Type", contentType)
        if rtpInfo {
            let (seq, rtp) = live.inner.withLock { ($0.streamer.nextSequence, $0.streamer.nextRTPTime) }
            h.add("RTP-Info", "seq=\(seq);rtptime=\(rtp)")
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
                           body: Array(RAOPVolume.parameterBody(dB: dB).utf8), rtpInfo: false)
    }

    /// DMAP text, artwork and (with `start`) progress, as RAOP sends them.
    func sendMetadata(_ metadata: MediaMetadata, start: UInt32?) async {
        let info = RAOPTrackInfo(metadata)
        if info.title != nil || info.artist != nil || info.album != nil {
            await setParameter("SET_PARAMETER metadata", contentType: "application/x-dmap-tagged", body: info.dmapBytes, rtpInfo: true)
        }
        if let artwork = metadata.artwork, !artwork.isEmpty {
            let type = artwork.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "image/png" : "image/jpeg"
            await setParameter("SET_PARAMETER artwork", contentType: type, body: artwork, rtpInfo: true)
        }
        if let start, let duration = metadata.duration, duration > 0 {
            let end = start &+ UInt32(truncatingIfNeeded: Int64(duration * 44_100))
            await setParameter("SET_PARAMETER progress", contentType: "text/parameters",
                               body: Array(RAOPProgress(start: start, current: start, end: end).parameterBody.utf8), rtpInfo: false)
        }
    }

    func flush(sequence: UInt16, rtpTime: UInt32) async {
        var h = RTSPHeaders()
        h.add("Range", "npt=0-")
        h.add("RTP-Info", "seq=\(sequence);rtptime=\(rtpTime)")
        do {
            let r = try await connection.request("FLUSH", headers: h)
            if !r.isSuccess { warn("the receiver rejected FLUSH (\(r.status) \(r.reason))") }
        } catch {
            warn("FLUSH failed: \(error)")
        }
    }
}

extension RAOPClient {
    func runAirPlay2<S: AsyncSequence & Sendable>(_ packets: S, options: RAOPOptions) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        let clock = ContinuousClock()
        let t0 = clock.now
        publish(.connecting, live: nil, options: options)
        let format = RAOPAudioFormat(codec: options.codec)
        let connectionOptions = AirPlay2ConnectionOptions(
            userAgent: options.userAgent, connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout,
            credentials: options.hapCredentials, requestInfo: options.requestInfo)
        let connection = try await AirPlay2Connection.connect(host: host, port: port, options: connectionOptions, logger: logger)
        let wakeup = self.wakeup
        connection.onFailure { _ in wakeup.signal() }
        // Each request starts a stall clock: the coordinator must look at it.
        connection.onRequestSent { wakeup.signal() }

        let sequence = options.initialSequence ?? UInt16.random(in: 0...UInt16.max)
        let rtpBase = options.initialRTPTime ?? UInt32.random(in: 0...UInt32.max)
        let audioKey = HAPChannel.airPlayAudioKey(sharedSecret: connection.sharedSecret)
        var streamer = RAOPStreamer(format: format, ssrc: connection.sessionID, initialSequence: sequence, initialRTPTime: rtpBase,
                                    latencyFrames: options.latencyFrames, backlogCapacity: options.backlogPackets)
        streamer.audioCipher = try AirPlay2AudioCipher(key: audioKey)
        let live = RAOPLiveState(streamer: streamer,
                                 pacer: RAOPPacer(framesPerPacket: format.framesPerPacket, sampleRate: format.sampleRate))
        let session = AirPlay2AudioSession(connection: connection, live: live, logger: logger)

        var endpoints: [UDPEndpoint] = []
        var timingResponder: NTPTimingResponder?
        func closeEndpoints() async {
            for e in endpoints { await e.close() }
            await timingResponder?.closeAndWait()
        }
        let control: UDPEndpoint
        let timing: NTPTimingResponder
        let audio: UDPEndpoint
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        do {
            control = try await UDPEndpoint.bind(host: connection.localIP, on: loop) { bytes, _, reply in
                guard case .retransmitRequest(let request)? = try? RAOPControlPacket(decoding: bytes) else { return }
                session.noteContact()
                let answers = live.inner.withLock { s -> [[UInt8]] in
                    let a = s.streamer.retransmissions(for: request)
                    s.bytesOnWire += a.reduce(0) { $0 + $1.count }
                    return a
                }
                for a in answers { reply(a) }
            }
            endpoints.append(control)
            timing = try await NTPTimingResponder.start(host: connection.localIP, on: loop) { replyBytes in
                session.noteContact()
                let sync = live.inner.withLock { s -> (bytes: [UInt8], to: SocketAddress)? in
                    s.timingReplies += 1
                    s.bytesOnWire += replyBytes
                    guard s.streamer.timingReplySent() else { return nil }
                    return RAOPLiveState.makeSync(&s, pacer: live.pacer)
                }
                if let sync { control.send(sync.bytes, to: sync.to) }
            }
            timingResponder = timing
            audio = try await UDPEndpoint.bind(host: connection.localIP, on: loop)
            endpoints.append(audio)
        } catch {
            await closeEndpoints()
            await connection.close()
            throw error
        }

        var report = RAOPStreamReport(
            codec: options.codec, packetsSent: 0, sourceFrames: 0, silencePackets: 0, retransmitRequests: 0,
            retransmittedPackets: 0, retransmitMisses: 0, syncPackets: 0, timingReplies: 0, bytesOnWire: 0,
            firstPacketDelay: nil, sendIntervals: RAOPIntervalStats(), lateness: RAOPIntervalStats(), latePackets: 0,
            duration: .zero, stopped: false, warnings: [], serverPorts: nil,
            localPorts: (control.localPort, timing.port, audio.localPort))

        var streamError: Error?
        do {
            try await connection.setupSession(timing: .ntp(timingPort: timing.port))
            // Unanswered keep-alives are judged by the stall rule (progressTimeout), not by a count.
            connection.startFeedback(interval: options.feedbackInterval, failAfterMisses: nil)
            try await session.record()
            let request = AirPlay2AudioStreamRequest(
                codec: options.codec, controlPort: control.localPort, sharedKey: audioKey,
                framesPerPacket: format.framesPerPacket, sampleRate: format.sampleRate,
                latencyMin: 11_025, latencyMax: max(88_200, options.latencyFrames), streamConnectionID: connection.sessionID)
            let reply = try await session.setupStream(request)
            logger.debug("AirPlay 2: audio stream SETUP → dataPort \(reply.dataPort), controlPort \(reply.controlPort)")
            guard let audioAddress = try? SocketAddress(ipAddress: connection.remoteIP, port: reply.dataPort),
                  let controlAddress = try? SocketAddress(ipAddress: connection.remoteIP, port: reply.controlPort) else {
                throw ATVError.protocolError("cannot address the receiver's UDP ports")
            }
            report.serverPorts = RAOPServerPorts(audioPort: reply.dataPort, controlPort: reply.controlPort,
                                                 timingPort: 0, session: String(connection.sessionID))
            live.inner.withLock { $0.controlDestination = controlAddress }
            // As pyatv: FLUSH with RTP-Info names the first packet, so a receiver can ask for it
            // again when it is lost.
            await session.flush(sequence: sequence, rtpTime: rtpBase)
            controls.withLock {
                $0.live = live
                $0.ap2 = session
            }
            if let volume = controls.withLock({ $0.options.volume }) {
                await session.setVolume(dB: RAOPVolume.dB(fromPercent: volume))
            }
            if let metadata = options.metadata { await session.sendMetadata(metadata, start: rtpBase) }
            if let failure = connection.failure { throw failure }
            try await streamAudioAP2(packets, options: options, format: format, live: live, session: session,
                                     audio: audio, audioAddress: audioAddress, control: control, t0: t0, report: &report)
        } catch {
            streamError = error
        }

        publish(.finishing, live: live, options: options)
        let failure = connection.failure
        await connection.teardown()
        await closeEndpoints()

        live.inner.withLock { s in
            report.packetsSent = s.streamer.packetsSent
            report.retransmitRequests = s.streamer.retransmitRequests
            report.retransmittedPackets = s.streamer.retransmittedPackets
            report.retransmitMisses = s.streamer.retransmitMisses
            report.syncPackets = s.syncPackets
            report.timingReplies = s.timingReplies
            report.bytesOnWire += s.bytesOnWire
        }
        report.warnings = session.warnings
        report.duration = clock.now - t0
        // A lost connection explains a failed request better than the request's own error.
        if let failure, streamError != nil { throw failure }
        if let streamError {
            if let atv = streamError as? ATVError { throw atv }
            if streamError is CancellationError { throw streamError }
            throw ATVError.playbackError("\(streamError)")
        }
        if let failure { throw failure }
        publish(.finished, live: live, options: options)
        return report
    }

    private func streamAudioAP2<S: AsyncSequence & Sendable>(
        _ packets: S, options: RAOPOptions, format: RAOPAudioFormat, live: RAOPLiveState, session: AirPlay2AudioSession,
        audio: UDPEndpoint, audioAddress: SocketAddress, control: UDPEndpoint, t0: ContinuousClock.Instant,
        report: inout RAOPStreamReport
    ) async throws where S.Element == PCMPacket {
        publish(.streaming, live: live, options: options)
        let fpp = format.framesPerPacket
        let perSecond = max(4, format.sampleRate / fpp)
        let pipe = RAOPPayloadPipe(highWater: 2 * perSecond, lowWater: perSecond / 2)
        let wakeup = self.wakeup
        let pacer = RAOPPacedSender(
            audio: audio.channel, audioAddress: audioAddress, control: control.channel, live: live, pipe: pipe,
            framesPerPacket: fpp, syncInterval: options.syncInterval, sendAhead: options.sendAhead ?? RAOPOptions.airPlay2DefaultSendAhead, t0: t0,
            onOutcome: { wakeup.signal() },
            onProgress: { [self] in publish(.streaming, live: live, options: options) })
        let padding = options.padWithSilence ? (options.latencyFrames + fpp - 1) / fpp + 1 : 0
        let stats = try await withThrowingTaskGroup(of: Void.self) { group -> SenderStats in
            group.addTask {
                await Self.produce(packets, into: pipe, codec: options.codec, framesPerPacket: fpp,
                                   leadIn: options.leadInPackets, padding: padding)
            }
            defer {
                pipe.close()
                group.cancelAll()
            }
            do {
                return try await coordinateAP2(pacer, session: session, live: live, options: options)
            } catch {
                _ = await pacer.halt()
                throw error
            }
        }
        if let failure = session.connection.failure { throw failure }
        report.sendIntervals = stats.intervals
        report.lateness = stats.lateness
        report.latePackets = stats.late
        report.bytesOnWire += stats.bytes
        report.firstPacketDelay = stats.first
        report.sourceFrames = stats.sourceFrames
        report.silencePackets = stats.silence
        report.stopped = stats.stopped
    }

    /// Runs the pacer; reacts to pause/resume/stop, a lost connection and the no-progress rule
    /// (`AirPlay2StallRule`); re-sends the volume once audio flows.
    private func coordinateAP2(_ pacer: RAOPPacedSender, session: AirPlay2AudioSession, live: RAOPLiveState,
                               options: RAOPOptions) async throws -> SenderStats {
        let clock = ContinuousClock()
        await pacer.start()
        var volumeResendAt: ContinuousClock.Instant? = clock.now + .seconds(1)
        var paused = false
        let rule = AirPlay2StallRule(timeout: options.progressTimeout)
        while true {
            let generation = wakeup.generation
            try Task.checkCancellation()
            if let failure = session.connection.failure { throw failure }
            let (wantPause, stop) = controls.withLock { ($0.paused, $0.stopRequested) }
            if let outcome = pacer.outcome {
                let stats = await pacer.halt()
                if case .failed(let error) = outcome { throw error }
                return stats
            }
            if stop {
                var stats = await pacer.halt()
                stats.stopped = true
                return stats
            }
            if wantPause != paused {
                paused = wantPause
                if paused {
                    let next = await pacer.pause()
                    await session.flush(sequence: next.sequence, rtpTime: next.rtpTime)
                    publish(.paused, live: live, options: options)
                } else {
                    await pacer.resume()
                    publish(.streaming, live: live, options: options)
                }
                continue
            }
            let now = clock.now
            // Sleep until the next thing to check is due (or a signal): no polling, since every
            // wake-up of an idle process costs more CPU than the check itself.
            var next: ContinuousClock.Instant?
            func due(_ t: ContinuousClock.Instant) { next = next.map { min($0, t) } ?? t }
            switch rule.verdict(now: now, liveness: session.connection.liveness, otherSigns: session.lastContact) {
            case .stuck(let what, let waited):
                let error = ATVError.playbackError(
                    "\(host):\(port) makes no progress: it left \(what) unanswered for \(Self.describe(waited))")
                // Recorded as the connection's failure: TEARDOWN then waits only briefly.
                session.connection.fail(error)
                throw error
            case .alive(let recheckAt):
                if let recheckAt { due(recheckAt) }
            }
            if let at = volumeResendAt {
                if now >= at {
                    volumeResendAt = nil
                    if let volume = controls.withLock({ $0.options.volume }) {
                        // tvOS 26.6 plays silence until the volume is sent again after audio started.
                        Task { await session.setVolume(dB: RAOPVolume.dB(fromPercent: volume)) }
                    }
                } else {
                    due(at)
                }
            }
            // A millisecond past the deadline, so the comparisons above hold when it is checked.
            await wakeup.wait(since: generation, until: next.map { $0 + .milliseconds(1) })
        }
    }

    /// "1 s", "2.5 s".
    static func describe(_ d: Duration) -> String {
        let s = (seconds(d) * 10).rounded() / 10
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}
