// The buffered (type 103) AirPlay 2 stream's shell (docs/PTP-AND-BUFFERED-AUDIO.md §4, §6.3): the
// one encoder (`RAOPClient.produce`: the same ALAC payloads as the realtime path, or AAC-LC units
// where the receiver takes only AAC, `BufferedFormatChoice`) → the
// `BufferedSendWindow` (what may be written now: at most `audioBufferSize` bytes and 3 s ahead of
// the receiver's playhead) → one sealed frame per packet (`BufferedAudioPacket`) → the TCP data
// connection, whose writes complete when the kernel takes them (TCP's back-pressure; no UDP
// pacing). The first anchor (SETRATEANCHORTIME) goes once about 0.5 s is buffered, naming a
// start at least 0.2 s ahead and late enough for the receiver to trust our clock
// (`firstAnchorEarliest`: shairport-sync 1.5 s after it joined our PTP master, others 0.25 s; §4.6),
// again with a fresh anchor while the receiver answers 400; pause is `{rate: 0}`, resume a new
// anchor; a seek (`RAOPClient.seek`) is an immediate FLUSHBUFFERED, the source opened again at the
// position (`reopen`) and a new anchor once its first 0.5 s is written; stop is FLUSHBUFFERED, then
// TEARDOWN (as Apple's senders stop, docs/PTP-AND-BUFFERED-AUDIO.md §3.7). The stream ends once the
// receiver's playhead passed the last packet (by the anchor). Progress is the source position at
// the receiver's playhead (by the anchor), published about once a second.
import ATVAirPlayCore
import ATVAudio
import ATVCore
import Logging
import NIOCore
import NIOPosix

/// The data connection to the receiver's `dataPort`.
final class BufferedDataConnection: Sendable {
    private let channel: any Channel
    private let endpoint: String

    private init(channel: any Channel, endpoint: String) {
        self.channel = channel
        self.endpoint = endpoint
    }

    /// SO_SNDBUF (Linux doubles it): the kernel then holds about a second of audio for a receiver
    /// that stopped reading, so our writes (and the write deadline) notice soon, not after the
    /// megabytes autotuning allows; 128 KiB per round trip is still many times the ~180 KB/s of
    /// ALAC 44.1 kHz/16 on any LAN.
    static let defaultSendBuffer = 65_536

    /// `sendBuffer`: SO_SNDBUF (nil: `defaultSendBuffer`; tests use less, so back-pressure reaches us sooner).
    static func connect(host: String, port: Int, timeout: Duration, sendBuffer: Int? = nil) async throws -> BufferedDataConnection {
        let c = timeout.components
        let ms = max(1, c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
        let endpoint = "the receiver's buffered audio port \(host):\(port)"
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(ms))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer ?? defaultSendBuffer))
                .connect(host: host, port: port).get()
            return BufferedDataConnection(channel: channel, endpoint: endpoint)
        } catch {
            throw ATVError.connecting(endpoint, error, timeout: timeout)
        }
    }

    /// Writes one frame; returns once the kernel took it.
    func write(_ frame: [UInt8]) async throws {
        do {
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: frame))
        } catch {
            throw ATVError.connection(endpoint, error, during: "buffered audio")
        }
    }

    /// Writes one frame, failing when the kernel has not taken it within `limit` (the receiver
    /// stopped reading: `BufferedSendWindow.writeLimit`); `queued` is the audio the receiver had
    /// left to play when the write began (for the message).
    func write(_ frame: [UInt8], within limit: Duration, queued: Duration) async throws {
        let endpoint = self.endpoint
        try await withDeadline(limit, {
            .timeout("\(endpoint) stopped taking audio: nothing accepted for \(RAOPClient.describe(limit)) "
                     + "with \(RAOPClient.describe(queued)) of audio left to play")
        }) { try await self.write(frame) }
    }

    func close() async {
        try? await channel.close()
    }
}

extension RAOPClient {
    /// How much audio is written before the first anchor, and how far ahead of now it plays at
    /// least (the anchor's round trip; what it names is already written).
    static let bufferedPrefillFrames: UInt64 = 22_050
    static let bufferedStartDelay: UInt64 = 200_000_000

    /// One buffered PTP stream on `session` (already connected and with a PTP master): set up,
    /// connect the data port, send, tear down.
    func runBufferedSession<S: AsyncSequence & Sendable>(_ packets: S, reopen: (@Sendable (UInt64) async throws -> S)?,
                                                         options: RAOPOptions, session: AirPlay2AudioSession,
                                                         started: ContinuousClock.Instant) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        let clock = ContinuousClock()
        let sequence = UInt32(options.initialSequence ?? UInt16.random(in: 0...UInt16.max))
        let rtpBase = options.initialRTPTime ?? UInt32.random(in: 0...UInt32.max)
        let first = RTPPosition(sequence: UInt16(truncatingIfNeeded: sequence), rtpTime: rtpBase)
        var report = RAOPStreamReport(
            codec: options.codec, packetsSent: 0, sourceFrames: 0, silencePackets: 0, retransmitRequests: 0,
            retransmittedPackets: 0, retransmitMisses: 0, syncPackets: 0, timingReplies: 0, bytesOnWire: 0,
            firstPacketDelay: nil, sendIntervals: RAOPIntervalStats(), lateness: RAOPIntervalStats(), latePackets: 0,
            duration: .zero, stopped: false, warnings: [], serverPorts: nil, localPorts: (0, 0, 0))
        report.route = session.audioRoute

        var streamError: Error?
        var data: BufferedDataConnection?
        do {
            guard var cipher = try session.makeAudioCipher(), let timeline = session.ptpTimeline else {
                throw ATVError.protocolError("buffered audio needs the stream key and a PTP clock")
            }
            // No UDP control socket: shairport-sync ignores the stream SETUP's controlPort for type 103.
            report.serverPorts = try await session.setUp(controlPort: 0, timingPort: 0, next: first, options: options)
            guard let reply = session.bufferedReply else {
                throw ATVError.protocolError("the buffered stream SETUP was not answered")
            }
            data = try await BufferedDataConnection.connect(host: session.remoteIP, port: reply.dataPort,
                                                            timeout: options.connectTimeout, sendBuffer: options.bufferedSendBuffer)
            controls.withLock {
                $0.route = session
                $0.bufferedNext = first
                $0.seekable = reopen != nil
            }
            try await session.begin(volume: controls.withLock { $0.options.volume }, metadata: options.metadata, next: first)
            if let data {
                let format = session.bufferedFormat ?? .alac44100x16Stereo
                // AAC: the first unit is the encoder's priming (`AACEncoder.delay` frames, muted by
                // shairport-sync as the first of a sequence); numbering starts that much earlier
                // so that source frame 0 still has RTP time `rtpBase`, as with ALAC.
                let priming = format.isAAC ? UInt32(try AACEncoder().delay) : 0
                let window = BufferedSendWindow(
                    configuration: .init(format: format, audioBufferSize: reply.effectiveAudioBufferSize,
                                         clockID: timeline.clockID),
                    rtpBase: rtpBase &- priming, firstSequence: sequence)
                try await streamBuffered(packets, reopen: reopen, options: options, session: session, data: data, window: window,
                                         cipher: &cipher, timeline: timeline, started: started, report: &report)
            }
        } catch {
            streamError = error
        }

        // Progress ends where the receiver's playhead was last seen.
        let last = controls.withLock { $0.bufferedProgress }
        publish(.finishing, position: last.position, sent: last.sent, packets: report.packetsSent, options: options)
        await data?.close()
        let failure = await session.teardown(failed: streamError != nil)
        report.warnings = session.warnings
        report.duration = clock.now - started
        if let failure, streamError != nil { throw failure }
        if let streamError {
            if let atv = streamError as? ATVError { throw atv }
            if streamError is CancellationError { throw streamError }
            throw ATVError.playbackError("\(streamError)")
        }
        if let failure { throw failure }
        publish(.finished, position: last.position, sent: last.sent, packets: report.packetsSent, options: options)
        return report
    }

    private func streamBuffered<S: AsyncSequence & Sendable>(
        _ packets: S, reopen: (@Sendable (UInt64) async throws -> S)?, options: RAOPOptions, session: AirPlay2AudioSession, data: BufferedDataConnection,
        window initial: BufferedSendWindow, cipher: inout AirPlay2AudioCipher, timeline: PTPTimeline,
        started: ContinuousClock.Instant, report: inout RAOPStreamReport
    ) async throws where S.Element == PCMPacket {
        let clock = ContinuousClock()
        let format = session.bufferedFormat ?? .alac44100x16Stereo
        let fpp = format.framesPerPacket
        let perSecond = format.sampleRate / fpp
        let wakeup = self.wakeup
        /// One pipe per run of the source (a seek starts another).
        func makePipe() -> RAOPPayloadPipe {
            let pipe = RAOPPayloadPipe(highWater: 2 * perSecond, lowWater: perSecond / 2)
            pipe.setOnAvailable { wakeup.signal() }
            return pipe
        }
        var pipe = makePipe()
        var window = initial
        func networkNow() -> UInt64 { timeline.networkTime(at: .now()) }
        /// The local instant of master time `t`.
        func instant(_ t: UInt64) -> ContinuousClock.Instant {
            let now = networkNow()
            return t >= now ? clock.now + .nanoseconds(Int64(clamping: t - now)) : clock.now
        }
        let rate = Double(format.sampleRate)
        /// Progress: the source position at the receiver's playhead (by the anchor).
        func progress(_ state: RAOPStreamProgress.State) {
            let position = Double(window.playheadSourceFrame(now: networkNow())) / rate
            let sent = Double(window.nextSourceFrame) / rate
            controls.withLock { $0.bufferedProgress = (position, sent) }
            publish(state, position: position, sent: sent, packets: report.packetsSent, options: options)
        }
        progress(.streaming)
        var nextProgress = clock.now + .seconds(1)

        try await withThrowingTaskGroup(of: Void.self) { group in
            let firstPipe = pipe
            group.addTask {
                await Self.produce(packets, into: firstPipe, codec: options.codec, framesPerPacket: fpp, leadIn: 0, padding: 0,
                                   aac: format.isAAC)
            }
            defer {
                pipe.close()
                group.cancelAll()
            }
            let produceOptions = options
            var ended = false
            var anchored = false
            var everAnchored = false
            var retryAt: ContinuousClock.Instant?
            while true {
                let generation = wakeup.generation
                try Task.checkCancellation()
                if let failure = await session.failure() { throw failure }
                let (wantPause, stop, volume, seek) = controls.withLock { c in
                    defer { c.seekTarget = nil }
                    return (c.paused, c.stopRequested, c.options.volume, c.seekTarget)
                }
                if stop {
                    // Stop as Apple's senders do: FLUSHBUFFERED (the receiver stops at once and drops
                    // what it holds), then TEARDOWN (docs/PTP-AND-BUFFERED-AUDIO.md §3.7).
                    if everAnchored {
                        await session.flushBuffered(BufferedFlush(untilSequence: window.nextSequence, untilTimestamp: window.nextTimestamp))
                    }
                    report.stopped = true
                    return
                }
                if let seek, let reopen {
                    // Seek: the immediate FLUSHBUFFERED stops play and drops everything written
                    // (the window continues the numbering after it); the source starts again at the
                    // position; playing, a new anchor follows once its first 0.5 s is written.
                    if anchored { _ = window.pause(now: networkNow()) }
                    let moved = window.seek(toSourceFrame: seek, now: networkNow())
                    await session.flushBuffered(moved.flush)
                    if let failure = await session.failure() { throw failure }
                    anchored = false
                    ended = false
                    pipe.close()
                    pipe = makePipe()
                    let refill = pipe
                    group.addTask {
                        do {
                            let source = try await reopen(seek)
                            // AAC: a fresh encoder, so the new run starts with its own priming unit.
                            await Self.produce(source, into: refill, codec: produceOptions.codec, framesPerPacket: fpp, leadIn: 0, padding: 0,
                                               aac: format.isAAC)
                        } catch {
                            _ = await refill.push(.failure(error))
                        }
                    }
                    // The programme moved on the RTP timeline: progress names where it starts now.
                    if let duration = options.metadata?.duration, duration > 0 {
                        let current = window.nextTimestamp
                        let start = current &- UInt32(truncatingIfNeeded: seek)
                        await session.sendProgress(RAOPProgress(start: start, current: current,
                                                                end: start &+ UInt32(truncatingIfNeeded: Int64(duration * rate))))
                    }
                    progress(wantPause ? .paused : .streaming)
                    continue
                }
                if wantPause, anchored {
                    // Pause: `{rate: 0}`; the receiver keeps what it holds (§4.6).
                    _ = try await session.sendRateAnchor(window.pause(now: networkNow()))
                    anchored = false
                    progress(.paused)
                    continue
                }

                // Write what the window allows.
                var full = false
                while !ended {
                    guard window.packetsAllowed(now: networkNow()) > 0 else {
                        full = true
                        break
                    }
                    guard let item = pipe.pop() else { break }
                    switch item {
                    case .end:
                        ended = true
                    case .failure(let error):
                        throw error
                    case .packet(let payload, let sourceFrames, let silence):
                        let position = window.nextPosition
                        let n = window.write(payloadBytes: payload.count)
                        let frame = try BufferedAudioPacket(sequenceNumber: n.sequenceNumber, timestamp: n.timestamp,
                                                            format: format, payload: payload).frame(sealingWith: &cipher)
                        // A receiver that stopped reading ends the stream (`writeLimit`); back-pressure does not.
                        let now = networkNow()
                        let limit = window.writeLimit(packetAt: position, now: now)
                        let began = clock.now
                        try await data.write(frame, within: .nanoseconds(Int64(clamping: limit)),
                                             queued: .nanoseconds(Int64(clamping: limit - BufferedSendWindow.writeMargin)))
                        report.longestDataWriteWait = max(report.longestDataWriteWait, clock.now - began)
                        if report.firstPacketDelay == nil { report.firstPacketDelay = clock.now - started }
                        report.packetsSent += 1
                        report.sourceFrames += Int64(sourceFrames)
                        if silence { report.silencePackets += 1 }
                        report.bytesOnWire += frame.count
                    }
                }
                let upcoming = RTPPosition(sequence: UInt16(truncatingIfNeeded: window.nextSequence), rtpTime: window.nextTimestamp)
                controls.withLock { $0.bufferedNext = upcoming }

                // Anchor (first start or resume) once enough is buffered; again after a 400.
                if !anchored, !wantPause, retryAt.map({ clock.now >= $0 }) ?? true,
                   ended || full || window.nextPosition >= window.playhead(now: networkNow()) + Self.bufferedPrefillFrames {
                    var delay = everAnchored ? window.configuration.restartDelay : Self.bufferedStartDelay
                    if !everAnchored, let earliest = session.firstAnchorEarliest, earliest > clock.now {
                        let c = (earliest - clock.now).components
                        delay = max(delay, UInt64(c.seconds) * 1_000_000_000 + UInt64(c.attoseconds / 1_000_000_000))
                    }
                    if let retry = try await session.sendRateAnchor(window.start(at: networkNow() + delay)) {
                        window.anchorRefused()
                        retryAt = clock.now + retry
                    } else {
                        retryAt = nil
                        anchored = true
                        if !everAnchored { session.audioStarted(now: clock.now) }
                        everAnchored = true
                        progress(.streaming)
                    }
                    continue
                }

                var next = try session.check(now: clock.now, volume: volume)
                func due(_ t: ContinuousClock.Instant) { next = next.map { min($0, t) } ?? t }
                if let retryAt { due(retryAt) }
                if anchored {
                    if clock.now >= nextProgress {
                        progress(.streaming)
                        nextProgress = clock.now + .seconds(1)
                    }
                    due(nextProgress)
                    if ended {
                        // Done once the receiver's playhead passed the last packet.
                        let left = window.nextPosition - min(window.nextPosition, window.playhead(now: networkNow()))
                        if left == 0 {
                            progress(.streaming)
                            return
                        }
                        due(clock.now + .nanoseconds(Int64(left) * 1_000_000_000 / Int64(format.sampleRate)))
                    } else if full, let opening = window.nextOpening(now: networkNow()) {
                        due(instant(opening))
                    }
                }
                await wakeup.wait(since: generation, until: next.map { $0 + .milliseconds(1) })
            }
        }
    }
}
