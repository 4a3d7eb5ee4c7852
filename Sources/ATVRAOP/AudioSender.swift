// The one audio sender, for AirPlay 1 (RAOP) and AirPlay 2 alike:
//
//   decode (the caller's PCM source) → encode (`RAOPClient.produce`, ahead of time, into the
//   `RAOPPayloadPipe`) → packetize, seal and pace (`RAOPPacedSender`, on the UDP loop, by the
//   injected `SenderClock`) → UDP → retransmits from the backlog and sync packets (control socket),
//   NTP replies (timing socket) → progress; `coordinate` reacts to pause/resume/stop and failures.
//
// What differs per route sits behind `AudioRouteSession`: AirPlay 1 drives the pure
// `RAOPSessionStateMachine` through `RAOPRTSPDriver` (`RAOPRouteSession`); AirPlay 2 drives the
// pure `AirPlay2AudioSessionStateMachine` over an `AirPlay2Connection` and seals every packet with
// ChaCha20-Poly1305 (`AirPlay2AudioSession`). The route owns its RTSP side; the shell owns the sockets, the RTP
// streamer and the pacer.
import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore
import NIOPosix

/// The RTSP side of one audio stream to one receiver: what AirPlay 1 and AirPlay 2 do differently.
/// The sender loop calls these in this order: `setUp` (the UDP sockets are open), `begin` (the
/// live state is registered), then `keepAlive`/`check`/`flush`/`setVolume`/`sendMetadata` while
/// audio flows, and `teardown` in every case once `setUp` was called (`close` before that).
protocol AudioRouteSession: AnyObject, Sendable {
    /// Addresses of the RTSP connection: the UDP sockets bind on `localIP`, packets go to `remoteIP`.
    var localIP: String { get }
    var remoteIP: String { get }
    /// The RTP SSRC of the audio packets.
    var ssrc: UInt32 { get }
    /// AirPlay 2: seals each audio packet (the stream's key); nil: packets go in the clear.
    func makeAudioCipher() throws -> AirPlay2AudioCipher?
    /// The pacer's burst length when `RAOPOptions.sendAhead` is nil.
    var defaultSendAhead: Duration { get }
    /// The route this session took and why.
    var audioRoute: AirPlayAudioRouteChoice { get }
    /// PTP timing: the master's timeline the sync packets (0xD7) speak; nil: NTP sync packets.
    var ptpTimeline: PTPTimeline? { get }
    /// Volume calls during setup go to the session right away (AirPlay 1's state machine orders
    /// them); else they wait for `begin`.
    var takesVolumeDuringSetup: Bool { get }
    /// When the stream ended with an error and the session failed too, report the session's failure
    /// (a lost connection explains a failed request better than the request's own error).
    var sessionFailureExplainsErrors: Bool { get }

    /// Sets the session up (the receiver's UDP ports in the answer) once our UDP sockets are open;
    /// `next` is the first packet's sequence number and RTP time.
    func setUp(controlPort: Int, timingPort: Int, next: RTPPosition, options: RAOPOptions) async throws -> RAOPServerPorts
    /// Everything after setup and before the first packet (volume, metadata).
    func begin(volume: Double?, metadata: MediaMetadata?, next: RTPPosition) async throws
    /// Runs the keep-alive until cancelled (or returns at once when the connection keeps itself alive).
    func keepAlive(interval: Duration) async throws
    /// The session's failure, if it failed.
    func failure() async -> ATVError?
    /// The route's rules, checked by the coordinator whenever it wakes: throws when the stream must
    /// end; returns when to check again (nil: only on a signal).
    func check(now: ContinuousClock.Instant, volume: Double?) throws -> ContinuousClock.Instant?
    /// Audio started flowing at `now`.
    func audioStarted(now: ContinuousClock.Instant)
    /// The receiver sent a timing or retransmit request (a sign of life).
    func noteContact()
    func flush(next: RTPPosition) async
    func setVolume(dB: Double) async
    func sendMetadata(_ metadata: MediaMetadata, start: UInt32?, next: RTPPosition) async
    /// TEARDOWN (waits briefly for the answer after a failure) and closes the connection; returns
    /// the failure to report.
    func teardown(failed: Bool) async -> ATVError?
    /// Closes the connection without TEARDOWN (setup never got that far).
    func close() async
    var warnings: [String] { get async }
}

/// Sequence number and RTP time of the next audio packet (what RTP-Info names).
struct RTPPosition: Sendable, Equatable {
    var sequence: UInt16
    var rtpTime: UInt32
}

extension RAOPLiveState {
    var next: RTPPosition {
        inner.withLock { RTPPosition(sequence: $0.streamer.nextSequence, rtpTime: $0.streamer.nextRTPTime) }
    }
}

extension RAOPClient {
    /// Connects the route's RTSP side.
    /// `clockGroup`: a group member's clock group (AirPlay 2 PTP: SETPEERS lists every member).
    func openRoute(_ options: RAOPOptions, clockGroup: GroupClockMembership? = nil) async throws -> any AudioRouteSession {
        if options.airPlayVersion == .v2 {
            return try await AirPlay2AudioSession.open(host: host, port: port, options: options, wakeup: wakeup,
                                                       clockGroup: clockGroup, logger: logger)
        }
        // --timing ptp / --buffered on to an AirPlay 1 receiver: one clear error (a group member
        // plays AirPlay 1 on the group's clock instead).
        do {
            _ = try AirPlayAudioRouteChoice.choose(version: .v1, traits: options.receiverTraits, timing: options.timing,
                                                   buffered: options.buffered)
            if options.bufferedCodec == .aac {
                throw ATVError.invalidValue("--codec aac needs buffered AirPlay 2 audio; this receiver speaks AirPlay 1 (RAOP) only")
            }
        } catch let error as ATVError where options.airPlay2ChoicesOnly {
            logger.warning("\(host):\(port) speaks AirPlay 1 (RAOP) only: streaming AirPlay 1 to it (\(error))")
        }
        return try await RAOPRouteSession.open(host: host, port: port, options: options, wakeup: wakeup, logger: logger)
    }

    /// One stream on either route: connect, open the UDP sockets, set up, send, tear down.
    /// `member`: the session is one member of a group stream (`RAOPGroupStream`): it reads the
    /// group's encoded packets and starts on the group's timeline instead of encoding `packets`.
    func runSession<S: AsyncSequence & Sendable>(_ packets: S, reopen: (@Sendable (UInt64) async throws -> S)?,
                                                 options: RAOPOptions,
                                                 member: GroupMemberHooks? = nil) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        let clock = ContinuousClock()
        let t0 = clock.now
        let t0Deadline = SenderClock.system.now()
        publish(.connecting, live: nil, options: options)
        let format = RAOPAudioFormat(codec: options.codec)
        let route = try await openRoute(options, clockGroup: member?.clockGroup)
        if route.audioRoute.route == .bufferedPTP, let session = route as? AirPlay2AudioSession {
            if let member {
                return try await runBufferedGroupMember(options: options, session: session, member: member, started: t0)
            }
            return try await runBufferedSession(packets, reopen: reopen, options: options, session: session, started: t0)
        }

        let sequence = options.initialSequence ?? UInt16.random(in: 0...UInt16.max)
        let rtpBase = options.initialRTPTime ?? UInt32.random(in: 0...UInt32.max)
        var streamer = RAOPStreamer(format: format, ssrc: route.ssrc, initialSequence: sequence, initialRTPTime: rtpBase,
                                    latencyFrames: options.latencyFrames, backlogCapacity: options.backlogPackets)
        do {
            streamer.audioCipher = try route.makeAudioCipher()
        } catch {
            await route.close()
            throw error
        }
        // PTP timing: the sync packets become 0xD7 time announces on the master's timeline.
        let live = RAOPLiveState(streamer: streamer,
                                 pacer: RAOPPacer(framesPerPacket: format.framesPerPacket, sampleRate: format.sampleRate),
                                 clock: SenderClock.system.with(ptp: route.ptpTimeline))

        var endpoints: [UDPEndpoint] = []
        var timingResponder: NTPTimingResponder?
        var ownAudio: UDPBatchSender?
        func closeEndpoints() async {
            for e in endpoints { await e.close() }
            await timingResponder?.closeAndWait()
            if let ownAudio { try? await ownAudio.eventLoop.submit { ownAudio.close() }.get() }
        }
        let control: UDPEndpoint
        let timing: NTPTimingResponder
        let audio: UDPBatchSender
        // One loop for audio, control (retransmits, syncs) and timing: the pacer writes without hops.
        // A group's members share one (their bursts fall due together: one wake-up for all) and
        // one audio socket (every member's burst leaves in one `sendmmsg`).
        let loop = member?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        do {
            control = try await UDPEndpoint.bind(host: route.localIP, on: loop) { bytes, _, reply in
                guard case .retransmitRequest(let request)? = try? RAOPControlPacket(decoding: bytes) else { return }
                route.noteContact()
                let answers = live.inner.withLock { s -> [[UInt8]] in
                    let a = s.streamer.retransmissions(for: request)
                    s.bytesOnWire += a.reduce(0) { $0 + $1.count }
                    return a
                }
                for a in answers { reply(a) }
            }
            endpoints.append(control)
            timing = try await NTPTimingResponder.start(host: route.localIP, on: loop) { replyBytes in
                route.noteContact()
                let sync = live.inner.withLock { s -> (bytes: [UInt8], to: SocketAddress)? in
                    s.timingReplies += 1
                    s.bytesOnWire += replyBytes
                    guard s.streamer.timingReplySent() else { return nil }
                    return RAOPLiveState.makeSync(&s, pacer: live.pacer, clock: live.clock)
                }
                if let sync { control.send(sync.bytes, to: sync.to) }
            }
            timingResponder = timing
            if let shared = member?.audioSender {
                audio = try shared(route.localIP)
            } else {
                audio = try UDPBatchSender.bind(host: route.localIP, on: loop)
                ownAudio = audio
            }
        } catch {
            await closeEndpoints()
            await route.close()
            throw error
        }
        if route.takesVolumeDuringSetup { controls.withLock { $0.route = route } }

        var report = RAOPStreamReport(
            codec: options.codec, packetsSent: 0, sourceFrames: 0, silencePackets: 0, retransmitRequests: 0,
            retransmittedPackets: 0, retransmitMisses: 0, syncPackets: 0, timingReplies: 0, bytesOnWire: 0,
            firstPacketDelay: nil, sendIntervals: RAOPIntervalStats(), lateness: RAOPIntervalStats(), latePackets: 0,
            duration: .zero, stopped: false, warnings: [], serverPorts: nil,
            localPorts: (control.localPort, timing.port, audio.localPort))
        report.route = route.audioRoute

        var streamError: Error?
        do {
            let first = RTPPosition(sequence: sequence, rtpTime: rtpBase)
            let ports = try await route.setUp(controlPort: control.localPort, timingPort: timing.port, next: first,
                                              options: options)
            guard let audioAddress = try? SocketAddress(ipAddress: route.remoteIP, port: ports.audioPort),
                  let controlAddress = try? SocketAddress(ipAddress: route.remoteIP, port: ports.controlPort) else {
                throw ATVError.protocolError("cannot address the receiver's UDP ports")
            }
            report.serverPorts = ports
            live.inner.withLock { $0.controlDestination = controlAddress }
            controls.withLock {
                $0.live = live
                $0.route = route
            }
            try await route.begin(volume: controls.withLock { $0.options.volume }, metadata: options.metadata, next: first)
            try await streamAudio(packets, options: options, format: format, live: live, route: route,
                                  audio: audio, audioAddress: audioAddress, control: control,
                                  t0: t0Deadline, member: member, first: first, report: &report)
        } catch {
            streamError = error
        }

        // Always release the receiver when we can.
        publish(.finishing, live: live, options: options)
        let failure = await route.teardown(failed: streamError != nil)
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
        report.warnings = await route.warnings
        report.duration = clock.now - t0
        if let failure, streamError != nil, route.sessionFailureExplainsErrors { throw failure }
        if let streamError {
            if let atv = streamError as? ATVError { throw atv }
            if streamError is CancellationError { throw streamError }
            throw ATVError.playbackError("\(streamError)")
        }
        if let failure { throw failure }
        publish(.finished, live: live, options: options)
        return report
    }

    private func streamAudio<S: AsyncSequence & Sendable>(
        _ packets: S, options: RAOPOptions, format: RAOPAudioFormat, live: RAOPLiveState, route: any AudioRouteSession,
        audio: UDPBatchSender, audioAddress: SocketAddress, control: UDPEndpoint, t0: NIODeadline,
        member: GroupMemberHooks? = nil, first: RTPPosition, report: inout RAOPStreamReport
    ) async throws where S.Element == PCMPacket {
        publish(.streaming, live: live, options: options)
        let fpp = format.framesPerPacket
        let wakeup = self.wakeup
        let feedbackInterval = options.feedbackInterval
        func makePacer(_ source: any EncodedPayloadSource, startAt: NIODeadline?) -> RAOPPacedSender {
            RAOPPacedSender(
                audio: BatchedAudioOutput(sender: audio, to: audioAddress), control: control.channel, live: live, pipe: source,
                framesPerPacket: fpp, syncInterval: options.syncInterval, sendAhead: options.sendAhead ?? route.defaultSendAhead,
                t0: t0, startAt: startAt, clock: live.clock,
                onOutcome: { wakeup.signal() },
                onProgress: { [self] in publish(.streaming, live: live, options: options) })
        }
        let stats = try await withThrowingTaskGroup(of: Void.self) { group -> SenderStats in
            group.addTask { try await route.keepAlive(interval: feedbackInterval) }
            let pipe: any EncodedPayloadSource
            let pacer: RAOPPacedSender
            if let member {
                // A group member: the group's packets, from the group's start instant.
                let latency = RAOPPacer(framesPerPacket: fpp, sampleRate: format.sampleRate).offset(ofFrame: Int64(options.latencyFrames))
                let source: any EncodedPayloadSource, schedule: GroupMemberSchedule
                do {
                    (source, schedule) = try await member.ready(route.audioRoute, latency)
                } catch {
                    group.cancelAll()
                    throw error
                }
                let anchor = schedule.firstPlayInstant - .nanoseconds(RAOPPacer.nanoseconds(latency))
                member.started(GroupMemberStart(schedule: schedule, first: first, framesPerPacket: fpp, anchor: anchor,
                                                clock: live.clock))
                pipe = source
                pacer = makePacer(source, startAt: anchor)
            } else {
                // Encode about 2 s ahead; the producer is woken when it is down to 0.5 s (a wake-up per 1.5 s).
                let perSecond = max(4, format.sampleRate / fpp)
                let ownPipe = RAOPPayloadPipe(highWater: 2 * perSecond, lowWater: perSecond / 2)
                let padding = options.padWithSilence ? (options.latencyFrames + fpp - 1) / fpp + 1 : 0
                // Source → PCM packets → encoded payloads, ahead of the pacer.
                group.addTask {
                    await Self.produce(packets, into: ownPipe, codec: options.codec, framesPerPacket: fpp,
                                       leadIn: options.leadInPackets, padding: padding)
                }
                pipe = ownPipe
                pacer = makePacer(ownPipe, startAt: nil)
            }
            defer {
                pipe.close()
                group.cancelAll()
            }
            do {
                return try await coordinate(pacer, route: route, live: live, options: options)
            } catch {
                _ = await pacer.halt()
                throw error
            }
        }
        // A failure that raced with the end of the source still counts.
        if let failure = await route.failure() { throw failure }
        report.sendIntervals = stats.intervals
        report.lateness = stats.lateness
        report.latePackets = stats.late
        report.bytesOnWire += stats.bytes
        report.firstPacketDelay = stats.first
        report.sourceFrames = stats.sourceFrames
        report.silencePackets = stats.silence
        report.stopped = stats.stopped
    }

    /// Starts the pacer and reacts to pause/resume/stop, the session's failure, the route's rules
    /// and the end of the queue; sleeps on `wakeup` in between (no polling: every wake-up of an
    /// idle process costs more CPU than the checks themselves).
    private func coordinate(_ pacer: RAOPPacedSender, route: any AudioRouteSession, live: RAOPLiveState,
                            options: RAOPOptions) async throws -> SenderStats {
        let clock = ContinuousClock()
        await pacer.start()
        route.audioStarted(now: clock.now)
        var paused = false
        while true {
            let generation = wakeup.generation
            try Task.checkCancellation()
            if let failure = await route.failure() { throw failure }
            let (wantPause, stop, volume) = controls.withLock { ($0.paused, $0.stopRequested, $0.options.volume) }
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
                    // Pause: FLUSH what the receiver holds, stop syncs, wait.
                    let next = await pacer.pause()
                    await route.flush(next: RTPPosition(sequence: next.sequence, rtpTime: next.rtpTime))
                    publish(.paused, live: live, options: options)
                } else {
                    await pacer.resume()
                    publish(.streaming, live: live, options: options)
                }
                continue
            }
            let next = try route.check(now: clock.now, volume: volume)
            // A millisecond past the deadline, so the route's comparisons hold when it is checked.
            await wakeup.wait(since: generation, until: next.map { $0 + .milliseconds(1) })
        }
    }
}
