import ATVCore
import NIOCore
import Synchronization

/// How the paced sender ended by itself.
enum RAOPPacerOutcome: Sendable {
    /// The queue delivered `.end`: everything was sent.
    case finished
    /// The producer failed; everything queued before the failure was sent.
    case failed(any Error)
}

/// What the sender did.
struct SenderStats: Sendable {
    var intervals = RAOPIntervalStats()
    var lateness = RAOPIntervalStats()
    var late = 0
    var bytes = 0
    var first: Duration?
    var sourceFrames: Int64 = 0
    var silence = 0
    var stopped = false
}

/// Where a pacer's audio packets go: queued one by one, sent at `flush`. Production: a
/// `UDPBatchSender` (one `sendmmsg` per loop iteration for every pacer sharing it: a group's
/// members); tests: a channel.
protocol AudioPacketOutput: Sendable {
    func enqueue(_ packet: [UInt8])
    func flush()
}

/// The pacer's output in production: the shared batch sender and this receiver's audio port.
struct BatchedAudioOutput: AudioPacketOutput {
    let sender: UDPBatchSender
    let destination: UDPBatchSender.Destination

    init(sender: UDPBatchSender, to address: SocketAddress) {
        self.sender = sender
        destination = UDPBatchSender.Destination(address)
    }

    func enqueue(_ packet: [UInt8]) { sender.enqueue(packet, to: destination) }
    /// Sent once every pacer of the loop iteration has queued its burst.
    func flush() { sender.flushSoon() }
}

/// A channel as the pacer's output (`write` each, `flush`), e.g. an `EmbeddedChannel` in tests.
struct ChannelAudioOutput: AudioPacketOutput {
    let channel: Channel
    let address: SocketAddress

    func enqueue(_ packet: [UInt8]) {
        channel.write(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: packet)), promise: nil)
    }

    func flush() { channel.flush() }
}

/// Sends queued audio payloads on the absolute schedule `anchor + n·framesPerPacket/sampleRate`,
/// entirely on one event loop (the control channel's, where the audio output sends), so no thread
/// hop happens per packet. It wakes when the first unsent packet is due and queues, in one burst
/// (one `flush`: one `sendmmsg`, shared with the other pacers on the loop),
/// every packet due within `sendAhead` from then: no packet leaves later than its due time, none
/// more than `sendAhead` early, and the loop wakes about once per `sendAhead` + one packet instead of
/// once per packet (~125 times a second). Receivers buffer the stream's latency (2 s by default), so
/// early packets only wait there a little longer; RTP timestamps and sync packets follow the
/// schedule, not the send time. `sendAhead` zero sends each packet on its own wake-up. Sync packets
/// are sent from a repeated task on the same loop. All mutable state is touched on `eventLoop` only.
/// Time comes from the injected `SenderClock` (whose `now` is the loop's time base), so on an
/// `EmbeddedEventLoop` the whole schedule runs on manual time (`startOnLoop()` etc.).
///
/// Each packet is written once, into an array of its size (RTP header, then the payload copied or
/// sealed in place) that the backlog keeps for retransmits; the output copies it into its batch.
final class RAOPPacedSender: @unchecked Sendable {
    let eventLoop: EventLoop
    private let audio: any AudioPacketOutput
    private let control: Channel
    private let live: RAOPLiveState
    private let pipe: any EncodedPayloadSource
    private let framesPerPacket: Int
    private let syncInterval: TimeAmount
    /// Which packets go out at each wake-up, and when the next one is (pure).
    private let pacing: PacingPolicy
    private let t0: NIODeadline
    /// A group member's schedule: the first packet is due at this instant (not when `start` is called).
    private let startAt: NIODeadline?
    private let clock: SenderClock
    /// Called (on the loop) once the outcome is set.
    private let onOutcome: @Sendable () -> Void
    /// Called (on the loop) about every 500 ms while sending.
    private let onProgress: @Sendable () -> Void

    // Loop-confined state.
    private var anchor = NIODeadline.uptimeNanoseconds(0)
    private var n: Int64 = 0
    private var scheduled: NIOScheduledCallback?
    private var pendingStart: Scheduled<Void>?
    private var syncTask: RepeatedTask?
    private var running = false
    private var ended = false
    private var lastSend: NIODeadline?
    private var lastProgress = NIODeadline.uptimeNanoseconds(0)
    private var stats = SenderStats()

    private let outcomeBox = Mutex<RAOPPacerOutcome?>(nil)

    init(audio: any AudioPacketOutput, control: Channel, live: RAOPLiveState, pipe: any EncodedPayloadSource,
         framesPerPacket: Int, syncInterval: Duration, sendAhead: Duration = .zero, t0: NIODeadline? = nil,
         startAt: NIODeadline? = nil, clock: SenderClock = .system,
         onOutcome: @escaping @Sendable () -> Void, onProgress: @escaping @Sendable () -> Void) {
        eventLoop = control.eventLoop
        self.audio = audio
        self.control = control
        self.live = live
        self.pipe = pipe
        self.framesPerPacket = framesPerPacket
        self.syncInterval = SyncPolicy.interval(syncInterval)
        pacing = PacingPolicy(pacer: live.pacer, sendAhead: sendAhead)
        self.clock = clock
        self.t0 = t0 ?? clock.now()
        self.startAt = startAt
        self.onOutcome = onOutcome
        self.onProgress = onProgress
        pipe.setOnAvailable { [self] in
            eventLoop.execute { self.tick() }
        }
    }

    /// Set once the queue ended or failed.
    var outcome: RAOPPacerOutcome? { outcomeBox.withLock { $0 } }

    // MARK: control (from the shell)

    /// Anchors the schedule now (or at `startAt`: the first sync and packet wait for it), sends
    /// the first sync and starts sending.
    func start() async {
        try? await eventLoop.submit { self.startOnLoop() }.get()
    }

    /// Stops sending (the queue keeps filling up to its high-water mark) and returns the sequence
    /// number and RTP time of the next packet, for the FLUSH.
    func pause() async -> (sequence: UInt16, rtpTime: UInt32) {
        let result = try? await eventLoop.submit { () -> (UInt16, UInt32) in
            let next = self.pauseOnLoop()
            return (next.sequence, next.rtpTime)
        }.get()
        return result.map { (sequence: $0.0, rtpTime: $0.1) } ?? (0, 0)
    }

    /// Continues on a fresh schedule: the next packet carries the marker, the next sync is "first".
    func resume() async {
        try? await eventLoop.submit { self.resumeOnLoop() }.get()
    }

    /// Stops for good, drops the queue (ending the producer) and returns what was sent.
    func halt() async -> SenderStats {
        let stats = try? await eventLoop.submit { self.haltOnLoop() }.get()
        pipe.close()
        return stats ?? SenderStats()
    }

    // MARK: on the loop (the async calls above hop here; a test on an EmbeddedEventLoop calls these)

    func startOnLoop() {
        eventLoop.preconditionInEventLoop()
        guard let startAt else { return begin() }
        // A group member: its schedule is the group's. Syncs before the anchor would map the
        // wrong frame, so the first one goes with the first packet, as on a single stream.
        if startAt > clock.now() {
            pendingStart = eventLoop.scheduleTask(deadline: startAt) { [self] in
                pendingStart = nil
                begin(anchorAt: startAt)
            }
        } else {
            begin(anchorAt: startAt)
        }
    }

    func pauseOnLoop() -> (sequence: UInt16, rtpTime: UInt32) {
        eventLoop.preconditionInEventLoop()
        running = false
        cancelTimer()
        return live.inner.withLock { s in
            s.paused = true
            return (s.streamer.nextSequence, s.streamer.nextRTPTime)
        }
    }

    func resumeOnLoop() {
        eventLoop.preconditionInEventLoop()
        guard !ended else { return }
        live.inner.withLock { $0.streamer.flushed() }
        lastSend = nil
        begin()
    }

    func haltOnLoop() -> SenderStats {
        eventLoop.preconditionInEventLoop()
        running = false
        ended = true
        cancelTimer()
        pendingStart?.cancel()
        pendingStart = nil
        syncTask?.cancel()
        syncTask = nil
        pipe.close()
        return stats
    }

    /// Anchors the schedule at `anchorAt` (a group member's first packet) or now.
    private func begin(anchorAt: NIODeadline? = nil) {
        guard !ended else { return }
        let now = clock.now()
        anchor = anchorAt ?? now
        n = 0
        lastProgress = now
        live.inner.withLock { [anchor] s in
            s.paused = false
            s.anchor = anchor
            s.anchorRTP = s.streamer.nextRTPTime
        }
        sendSync()
        if syncTask == nil {
            syncTask = eventLoop.scheduleRepeatedTask(initialDelay: syncInterval, delay: syncInterval) { [self] _ in
                sendSync()
            }
        }
        running = true
        tick()
    }

    private func sendSync() {
        guard let sync = live.makeSync(clock: clock) else { return }
        var buffer = control.allocator.buffer(capacity: sync.bytes.count)
        buffer.writeBytes(sync.bytes)
        control.writeAndFlush(AddressedEnvelope(remoteAddress: sync.to, data: buffer), promise: nil)
    }

    private func cancelTimer() {
        scheduled?.cancel()
        scheduled = nil
    }

    /// The timer fired (on the loop).
    fileprivate func timerFired() {
        scheduled = nil
        tick()
    }

    /// Sends the packets `PacingPolicy` says are due, then arms the timer for the time the next
    /// one is due (or, when the queue is empty, waits for the producer's `onAvailable`).
    private func tick() {
        cancelTimer()
        guard running else { return }
        let now = clock.now()
        let decision = pacing.decide(now: now, anchor: anchor, next: n)
        var wrote = false
        sending: while true {
            guard n < decision.packets.upperBound else {
                // A scheduled callback allocates no promise or closure per packet.
                scheduled = try? eventLoop.scheduleCallback(at: decision.wakeAt, handler: PacerTimer(sender: self))
                break
            }
            let due = pacing.due(packet: n, anchor: anchor)
            guard let item = pipe.pop() else { break }  // starved: the next push calls tick()
            switch item {
            case .packet(let payload, let sourceFrames, let silence):
                do {
                    try send(payload, due: due, now: now, sourceFrames: sourceFrames, silence: silence)
                } catch {
                    // A packet that can't be sealed ends the stream: nothing is sent in its place.
                    if wrote { audio.flush() }
                    end(.failed(error))
                    return
                }
                wrote = true
            case .end:
                end(.finished)
                break sending
            case .failure(let error):
                end(.failed(error))
                break sending
            }
        }
        if wrote {
            audio.flush()
            if now - lastProgress >= .milliseconds(500) {
                lastProgress = now
                onProgress()
            }
        }
    }

    private func send(_ payload: [UInt8], due: NIODeadline, now: NIODeadline, sourceFrames: Int,
                      silence: Bool) throws(ATVError) {
        let packetized = live.inner.withLock { s in
            Result { () throws(ATVError) in
                try s.streamer.packetize(payload: payload, frames: framesPerPacket)
            }
        }
        let packet = try packetized.get()
        stats.bytes += packet.count
        audio.enqueue(packet)
        if stats.first == nil { stats.first = .nanoseconds(max(0, (clock.now() - t0).nanoseconds)) }
        let late = now - due
        stats.lateness.add(Double(late.nanoseconds) / 1e9)
        if PacingPolicy.isLate(sentAt: now, due: due) { stats.late += 1 }
        if let lastSend { stats.intervals.add(Double((now - lastSend).nanoseconds) / 1e9) }
        lastSend = now
        stats.sourceFrames += Int64(sourceFrames)
        if silence { stats.silence += 1 }
        n += 1
    }

    private func end(_ outcome: RAOPPacerOutcome) {
        running = false
        ended = true
        cancelTimer()
        syncTask?.cancel()
        syncTask = nil
        outcomeBox.withLock { $0 = outcome }
        onOutcome()
    }
}

/// The pacer's timer handler (a struct around the sender: nothing is allocated per schedule).
private struct PacerTimer: NIOScheduledCallbackHandler, Sendable {
    let sender: RAOPPacedSender
    func handleScheduledCallback(eventLoop: some EventLoop) { sender.timerFired() }
}
