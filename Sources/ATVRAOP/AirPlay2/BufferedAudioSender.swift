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
import Synchronization

/// The data connection to the receiver's `dataPort`.
///
/// Writes go in batches (`write(_:)`: every packet the window allows, handed to the event loop at
/// once and flushed once, one `writev` for the lot) and the write deadline is one watchdog per
/// connection (`BufferedWriteWatchdog`: one timer at the earliest deadline of the packets the
/// kernel has not taken yet), not a timer task per write.
final class BufferedDataConnection: Sendable {
    private let channel: any Channel
    private let endpoint: String
    private struct Watch {
        var watchdog = BufferedWriteWatchdog()
        /// Set when a deadline passed (the channel is then closed): what every write throws.
        var expired: ATVError?
    }
    private let watch = Mutex(Watch())

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

    /// One frame to write: its bytes and, when it has one, its write deadline (`BufferedSendWindow.writeLimit`,
    /// counted from when the batch is handed over) with the audio the receiver had left to play then.
    struct Outgoing: Sendable {
        var frame: [UInt8]
        var limit: Duration?
        var queued: Duration = .zero
    }

    /// Writes one frame; returns once the kernel took it.
    func write(_ frame: [UInt8]) async throws {
        try await write([Outgoing(frame: frame)])
    }

    /// Writes one frame, failing when the kernel has not taken it within `limit` (the receiver
    /// stopped reading: `BufferedSendWindow.writeLimit`); `queued` is the audio the receiver had
    /// left to play when the write began (for the message).
    func write(_ frame: [UInt8], within limit: Duration, queued: Duration) async throws {
        try await write([Outgoing(frame: frame, limit: limit, queued: queued)])
    }

    /// Writes `batch` in order, one flush for all; returns once the kernel took the last frame.
    /// Fails with one line naming the port once a frame's deadline passed before the kernel took
    /// it (the connection is then closed), or when the connection fails.
    func write(_ batch: [Outgoing]) async throws {
        guard !batch.isEmpty else { return }
        if let expired = watch.withLock({ $0.expired }) { throw expired }
        do {
            try await channel.eventLoop.flatSubmit { self.writeOnLoop(batch) }.get()
        } catch {
            if let expired = watch.withLock({ $0.expired }) { throw expired }
            throw ATVError.connection(endpoint, error, during: "buffered audio")
        }
    }

    /// On the event loop: registers the deadlines, writes every frame, flushes once.
    private func writeOnLoop(_ batch: [Outgoing]) -> EventLoopFuture<Void> {
        let loop = channel.eventLoop
        let now = NIODeadline.now().uptimeNanoseconds
        var arm: UInt64?
        var last = loop.makeSucceededVoidFuture()
        for item in batch {
            let promise = loop.makePromise(of: Void.self)
            if let limit = item.limit {
                let write = BufferedWriteWatchdog.Write(deadline: now &+ Self.nanoseconds(limit), limit: Self.nanoseconds(limit),
                                                        queued: Self.nanoseconds(item.queued))
                if let at = watch.withLock({ $0.watchdog.written(write) }) { arm = at }
                promise.futureResult.whenComplete { _ in self.watch.withLock { $0.watchdog.accepted() } }
            }
            channel.write(channel.allocator.buffer(bytes: item.frame), promise: promise)
            last = promise.futureResult
        }
        channel.flush()
        if let arm { schedule(at: arm) }
        return last
    }

    private func schedule(at instant: UInt64) {
        channel.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(instant)) { self.watchdogFired() }
    }

    /// The one timer: a frame past its deadline ends the connection; otherwise it looks again at
    /// the next deadline pending.
    private func watchdogFired() {
        let now = NIODeadline.now().uptimeNanoseconds
        let endpoint = self.endpoint
        let (failure, rearm) = watch.withLock { w -> (ATVError?, UInt64?) in
            let (expired, rearm) = w.watchdog.fired(now: now)
            guard let expired else { return (nil, rearm) }
            let error = ATVError.timeout(
                "\(endpoint) stopped taking audio: nothing accepted for \(RAOPClient.describe(.nanoseconds(Int64(clamping: expired.limit)))) "
                    + "with \(RAOPClient.describe(.nanoseconds(Int64(clamping: expired.queued)))) of audio left to play")
            if w.expired == nil { w.expired = error }
            return (error, nil)
        }
        if failure != nil { channel.close(promise: nil) }
        if let rearm { schedule(at: rearm) }
    }

    private static func nanoseconds(_ d: Duration) -> UInt64 {
        let c = d.components
        guard c.seconds >= 0 else { return 0 }
        guard c.seconds < 1 << 32 else { return UInt64(1) << 62 }
        return UInt64(c.seconds) * 1_000_000_000 + UInt64(max(0, c.attoseconds) / 1_000_000_000)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Where the buffered sender's encoded packets come from.
enum BufferedFeed: Sendable {
    /// A single stream: the sender runs the encoder (`RAOPClient.produce`) into a pipe of its own,
    /// `nil` for the first run, a source frame for each seek's (which starts another pipe).
    case produce(@Sendable (_ into: RAOPPayloadPipe, _ seek: UInt64?) async -> Void, seekable: Bool)
    /// A group member: the shared encoded stream through this member's cursor (no seek).
    case source(any EncodedPayloadSource)
    /// A group member that asks the group for its cursor and schedule once it is set up.
    case group(GroupMemberHooks)
}

extension RAOPClient {
    /// How much audio is written before the first anchor, and how far ahead of now it plays at
    /// least (the anchor's round trip; what it names is already written).
    static let bufferedPrefillFrames: UInt64 = 22_050
    static let bufferedStartDelay: UInt64 = 200_000_000
    /// Steady state: the sender waits until this much audio may be written, then writes it in one
    /// batch (4 refills a second instead of one per 8 ms packet); the window still runs 2.75–3 s ahead.
    static let bufferedRefill: UInt64 = 250_000_000

    /// What the setup requests of a buffered member (stream SETUP, data connection, RECORD,
    /// SETPEERS) are given on a LAN, in the minimum lead below.
    static let bufferedSetupAllowance: Duration = .milliseconds(500)

    /// A buffered group member (`runBufferedGroupMember`): how far ahead of the call its
    /// `schedule.firstPlayInstant` must lie for the first packet to be heard then: the setup
    /// requests (`bufferedSetupAllowance`), then the later of the receiver's first-anchor delay
    /// after it joined our PTP master (`firstAnchorDelay`: 0.25 s; shairport-sync 1.5 s; Samsung
    /// 3.4 s) and the prefill (0.5 s of audio written, at most `bufferedStartDelay` before the
    /// instant it names). HomePod/Apple TV 1 s, shairport-sync 2 s, Samsung 3.9 s. A member that
    /// misses it still plays in step, from the first packet it can still reach.
    static func bufferedMinimumLead(for traits: AirPlayReceiverTraits) -> Duration {
        let prefill = Duration.nanoseconds(Int64(bufferedPrefillFrames) * 1_000_000_000 / 44_100 + Int64(bufferedStartDelay))
        return bufferedSetupAllowance + max(AirPlay2AudioSessionStateMachine.firstAnchorDelay(for: traits), prefill)
    }

    /// One buffered PTP stream on `session` (already connected and with a PTP master): set up,
    /// connect the data port, send, tear down.
    func runBufferedSession<S: AsyncSequence & Sendable>(_ packets: S, reopen: (@Sendable (UInt64) async throws -> S)?,
                                                         options: RAOPOptions, session: AirPlay2AudioSession,
                                                         started: ContinuousClock.Instant) async throws -> RAOPStreamReport
        where S.Element == PCMPacket {
        let format = session.bufferedFormat ?? .alac44100x16Stereo
        let fpp = format.framesPerPacket
        let codec = options.codec
        let feed = BufferedFeed.produce({ pipe, seek in
            guard let seek else {
                await Self.produce(packets, into: pipe, codec: codec, framesPerPacket: fpp, leadIn: 0, padding: 0, aac: format.isAAC)
                return
            }
            do {
                guard let reopen else { return }
                let source = try await reopen(seek)
                // AAC: a fresh encoder, so the new run starts with its own priming unit.
                await Self.produce(source, into: pipe, codec: codec, framesPerPacket: fpp, leadIn: 0, padding: 0, aac: format.isAAC)
            } catch {
                _ = await pipe.push(.failure(error))
            }
        }, seekable: reopen != nil)
        return try await runBuffered(feed, schedule: nil, options: options, session: session, started: started)
    }

    /// One member of a group stream on the buffered PTP route, on `session` (already connected,
    /// with the process's PTP master): set up, connect the data port, write the packets `source`
    /// gives (the shared encoded stream from the member's first packet on, in the session's
    /// `bufferedFormat`: ALAC 352 frames, or AAC units where the receiver takes only AAC) and tear
    /// down once the source ended and the receiver played it, or on `stop()`.
    ///
    /// The first anchor names, for the first packet `source` gives (RTP time `options.initialRTPTime`,
    /// sequence `options.initialSequence`, random when nil), the master time of
    /// `schedule.firstPlayInstant` (`PTPTimeline.networkTime(at:)`), not "now + a start delay",
    /// so every member plays the same programme frame at the same instant. That instant should lie
    /// `bufferedMinimumLead(for:)` after the call; if, when the anchor goes, it is closer than the
    /// receiver allows (`firstAnchorEarliest`, or `bufferedStartDelay` from now), the anchor names
    /// the first later packet whose instant on the same line is far enough (the member joins a
    /// little later, still in step; the packets before it come before the anchor and are dropped
    /// by the receiver) and the report carries a warning saying so. Pause/resume and stop act as
    /// on a single stream (a resume anchors `restartDelay` from then, off the group's line); there
    /// is no seek.
    func runBufferedGroupMember(session: AirPlay2AudioSession, source: any EncodedPayloadSource, schedule: GroupMemberSchedule,
                                options: RAOPOptions, started: ContinuousClock.Instant = .now) async throws -> RAOPStreamReport {
        try await runBuffered(.source(source), schedule: schedule, options: options, session: session, started: started)
    }

    /// Set-up, the send loop (`streamBuffered`) and teardown, for a single stream or a group member.
    func runBuffered(_ given: BufferedFeed, schedule givenSchedule: GroupMemberSchedule?, options: RAOPOptions,
                             session: AirPlay2AudioSession, started: ContinuousClock.Instant) async throws -> RAOPStreamReport {
        let clock = ContinuousClock()
        var feed = given
        var schedule = givenSchedule
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
        var warnings: [String] = []
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
            let seekable: Bool
            if case .produce(_, let s) = feed { seekable = s } else { seekable = false }
            controls.withLock {
                $0.route = session
                $0.bufferedNext = first
                $0.seekable = seekable
            }
            try await session.begin(volume: controls.withLock { $0.options.volume }, metadata: options.metadata, next: first)
            if case .group(let hooks) = feed {
                // Set up: the group answers with this member's cursor and place once its start is
                // chosen; the first play instant must leave the receiver its first-anchor delay
                // and the prefill (the setup is done).
                let format = session.bufferedFormat ?? .alac44100x16Stereo
                guard !format.isAAC else {
                    throw ATVError.invalidValue(
                        "this receiver takes buffered audio as AAC only; a group stream encodes ALAC once for every member (use --buffered off for it)")
                }
                let lead = Self.bufferedMinimumLead(for: options.receiverTraits) - Self.bufferedSetupAllowance
                let (source, memberSchedule) = try await hooks.ready(session.audioRoute, lead)
                feed = .source(source)
                schedule = memberSchedule
                hooks.started(GroupMemberStart(schedule: memberSchedule, first: first, framesPerPacket: format.framesPerPacket,
                                               anchor: memberSchedule.firstPlayInstant,
                                               clock: SenderClock.system.with(ptp: timeline)))
            }
            if let data {
                let format = session.bufferedFormat ?? .alac44100x16Stereo
                // AAC from our own encoder: the first unit is its priming (`AACEncoder.delay`
                // frames, muted by shairport-sync as the first of a sequence); numbering starts that
                // much earlier so that source frame 0 still has RTP time `rtpBase`, as with ALAC.
                // A group member's first packet is the one its schedule names: no shift.
                let priming: UInt32
                if case .produce = feed, format.isAAC { priming = UInt32(try AACEncoder().delay) } else { priming = 0 }
                let window = BufferedSendWindow(
                    configuration: .init(format: format, audioBufferSize: reply.effectiveAudioBufferSize,
                                         clockID: timeline.clockID),
                    rtpBase: rtpBase &- priming, firstSequence: sequence)
                let origin = schedule.map { timeline.networkTime(at: $0.firstPlayInstant) }
                try await streamBuffered(feed, origin: origin, options: options, session: session, data: data, window: window,
                                         cipher: &cipher, timeline: timeline, started: started, report: &report, warnings: &warnings)
            }
        } catch {
            streamError = error
        }

        // Progress ends where the receiver's playhead was last seen.
        let last = controls.withLock { $0.bufferedProgress }
        publish(.finishing, position: last.position, sent: last.sent, packets: report.packetsSent, options: options)
        await data?.close()
        let failure = await session.teardown(failed: streamError != nil)
        report.warnings = session.warnings + warnings
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

    /// The send loop. `origin`: a group member's timeline (master time at which stream position 0
    /// plays; the first anchor keeps to it); nil: a single stream (the first anchor names a start
    /// `bufferedStartDelay` from then, or later for receivers that need it).
    private func streamBuffered(
        _ feed: BufferedFeed, origin: UInt64?, options: RAOPOptions, session: AirPlay2AudioSession, data: BufferedDataConnection,
        window initial: BufferedSendWindow, cipher: inout AirPlay2AudioCipher, timeline: PTPTimeline,
        started: ContinuousClock.Instant, report: inout RAOPStreamReport, warnings: inout [String]
    ) async throws {
        let clock = ContinuousClock()
        let format = session.bufferedFormat ?? .alac44100x16Stereo
        let fpp = format.framesPerPacket
        let perSecond = format.sampleRate / fpp
        let refillPackets = max(1, Int(Self.bufferedRefill * UInt64(format.sampleRate) / 1_000_000_000) / fpp)
        let wakeup = self.wakeup
        /// One pipe per run of the source (a seek starts another).
        func makePipe() -> RAOPPayloadPipe {
            let pipe = RAOPPayloadPipe(highWater: 2 * perSecond, lowWater: perSecond / 2)
            pipe.setOnAvailable { wakeup.signal() }
            return pipe
        }
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
            var pipe: any EncodedPayloadSource
            /// Starts the source again at a seek's position (nil: no seek).
            var producer: (@Sendable (RAOPPayloadPipe, UInt64?) async -> Void)?
            switch feed {
            case .produce(let run, let seekable):
                let first = makePipe()
                if seekable { producer = run }
                group.addTask { await run(first, nil) }
                pipe = first
            case .source(let source):
                source.setOnAvailable { wakeup.signal() }
                pipe = source
            case .group:
                // `runBuffered` turns it into `.source` once the group answered.
                throw ATVError.invalidState("a buffered group member started without its place in the group")
            }
            defer {
                pipe.close()
                group.cancelAll()
            }
            var ended = false
            var anchored = false
            var everAnchored = false
            var retryAt: ContinuousClock.Instant?
            var batch: [BufferedDataConnection.Outgoing] = []
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
                if let seek, let producer {
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
                    let refill = makePipe()
                    pipe = refill
                    group.addTask { await producer(refill, seek) }
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

                // Write what the window allows, in one batch (one flush, one writev).
                var full = false
                var failure: (any Error)?
                var sourceFrames: Int64 = 0
                var silences = 0
                var bytes = 0
                let now = networkNow()
                var allowed = 0
                while !ended {
                    if allowed == 0 {
                        allowed = window.packetsAllowed(now: now)
                        guard allowed > 0 else {
                            full = true
                            break
                        }
                    }
                    guard let item = pipe.pop() else { break }
                    switch item {
                    case .end:
                        ended = true
                    case .failure(let error):
                        failure = error
                    case .packet(let payload, let frames, let silence):
                        let position = window.nextPosition
                        let n = window.write(payloadBytes: payload.count)
                        let frame = try BufferedAudioPacket(sequenceNumber: n.sequenceNumber, timestamp: n.timestamp,
                                                            format: format, payload: payload).frame(sealingWith: &cipher)
                        // A receiver that stopped reading ends the stream (`writeLimit`); back-pressure does not.
                        let limit = window.writeLimit(packetAt: position, now: now)
                        batch.append(.init(frame: frame, limit: .nanoseconds(Int64(clamping: limit)),
                                           queued: .nanoseconds(Int64(clamping: limit - BufferedSendWindow.writeMargin))))
                        allowed -= 1
                        sourceFrames += Int64(frames)
                        if silence { silences += 1 }
                        bytes += frame.count
                    }
                    if failure != nil { break }
                }
                if !batch.isEmpty {
                    let began = clock.now
                    try await data.write(batch)
                    report.longestDataWriteWait = max(report.longestDataWriteWait, clock.now - began)
                    if report.firstPacketDelay == nil { report.firstPacketDelay = clock.now - started }
                    report.packetsSent += batch.count
                    report.sourceFrames += sourceFrames
                    report.silencePackets += silences
                    report.bytesOnWire += bytes
                    batch.removeAll(keepingCapacity: true)
                }
                if let failure { throw failure }
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
                    let anchor: BufferedRateAnchor
                    if !everAnchored, let origin {
                        // A group member: the group's line, from the first packet it can still reach.
                        anchor = window.start(origin: origin, earliest: networkNow() + delay)
                    } else {
                        anchor = window.start(at: networkNow() + delay)
                    }
                    if let retry = try await session.sendRateAnchor(anchor) {
                        window.anchorRefused()
                        retryAt = clock.now + retry
                    } else {
                        if !everAnchored, origin != nil, case .playing(let position, let at) = window.playback {
                            logger.debug("buffered group member: RTP \(window.timestamp(at: position)) plays at PTP \(at) ns (clock \(timeline.clockID))")
                            if position > 0 {
                                let ms = Double(position) * 1000 / rate
                                warnings.append("joined \(Int(ms.rounded())) ms after the scheduled start: the first play instant was too close "
                                                + "for the receiver's first anchor")
                            }
                        }
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
                    } else if full, let opening = window.nextOpening(now: networkNow(), packets: refillPackets) {
                        // One refill per `bufferedRefill`, not one wake-up per packet.
                        due(instant(opening))
                    }
                }
                await wakeup.wait(since: generation, until: next.map { $0 + .milliseconds(1) })
            }
        }
    }
}
