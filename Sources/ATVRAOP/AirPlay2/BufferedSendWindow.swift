// How far ahead a buffered (type 103) stream may run, and what pause, resume and seek send
// (docs/PTP-AND-BUFFERED-AUDIO.md §3.6, §3.7, §4.5, §4.6). Pure: the shell asks how many packets
// it may write now, numbers each packet it writes here, and sends the SETRATEANCHORTIME /
// FLUSHBUFFERED values this returns. Times are PTP master time in nanoseconds, passed in.
//
// Positions are stream frames counted from the first packet (64-bit, never wrapping); a packet's
// RTP timestamp is `rtpBase + position` (mod 2^32) and its sequence number counts packets (mod 2^23).
// RTP time only moves forward: a seek continues the numbering after the last packet written (a
// receiver drops blocks earlier than the previous one, same doc §4.5), and a separate map says
// which source frame (position in the programme) each stream position carries.
//
// Back-pressure: packets may be written while (1) their first frame is less than `maximumLead`
// ahead of the receiver's playhead (by the anchor; before the first anchor and while paused the
// playhead stays on the first frame not yet played), and (2) the bytes written and not yet played,
// plus `maximumPacketBytes` for each packet allowed, stay within the receiver's `audioBufferSize`
// (counted until played, which over-estimates what the receiver holds: it decodes blocks shortly
// before their time). Packets are counted at their largest possible size because codec frames
// vary (silence compresses to a few bytes).
import ATVCore

package struct BufferedSendWindow: Sendable {
    package struct Configuration: Sendable, Equatable {
        package var sampleRate: Int
        package var framesPerPacket: Int
        /// The receiver's `audioBufferSize` (stream SETUP reply).
        package var audioBufferSize: Int
        /// How far ahead of the playhead packets may run, in nanoseconds.
        package var maximumLead: UInt64
        /// How far in the future a resume or seek anchor goes, in nanoseconds (the request's trip
        /// and, for a seek, the new content's first packets).
        package var restartDelay: UInt64
        /// Our grandmaster clock id (`networkTimeTimelineID`).
        package var clockID: UInt64
        /// The largest frame one packet can make on the connection (`BufferedAudioFormat.maximumFrameBytes`).
        package var maximumPacketBytes: Int

        package init(sampleRate: Int = 44_100, framesPerPacket: Int = 352,
                    audioBufferSize: Int = BufferedAudioStreamReply.defaultAudioBufferSize,
                    maximumLead: UInt64 = 3_000_000_000, restartDelay: UInt64 = 300_000_000, clockID: UInt64,
                    maximumPacketBytes: Int = BufferedAudioPacket.maximumFrameSize) {
            self.sampleRate = max(1, sampleRate)
            self.framesPerPacket = max(1, framesPerPacket)
            self.audioBufferSize = max(1, audioBufferSize)
            self.maximumLead = maximumLead
            self.restartDelay = restartDelay
            self.clockID = clockID
            self.maximumPacketBytes = max(1, maximumPacketBytes)
        }

        /// The window for a format: its rate, frames per packet and largest packet.
        package init(format: BufferedAudioFormat, audioBufferSize: Int = BufferedAudioStreamReply.defaultAudioBufferSize,
                    maximumLead: UInt64 = 3_000_000_000, restartDelay: UInt64 = 300_000_000, clockID: UInt64) {
            self.init(sampleRate: format.sampleRate, framesPerPacket: format.framesPerPacket, audioBufferSize: audioBufferSize,
                      maximumLead: maximumLead, restartDelay: restartDelay, clockID: clockID,
                      maximumPacketBytes: format.maximumFrameBytes)
        }
    }

    /// Where the receiver's playhead is.
    package enum Playback: Sendable, Equatable {
        /// No anchor yet: nothing plays; the playhead waits at `position`.
        case waiting(position: UInt64)
        /// Stream position `position` is audible at `networkTime`, and the playhead moves.
        case playing(position: UInt64, networkTime: UInt64)
        /// Paused (`rate` 0): the playhead stopped at `position`, the first frame not played.
        case paused(position: UInt64)
    }

    /// What a seek sends: the flush (immediate: the receiver discards everything before the first
    /// packet of the new content) and, when playing, the anchor for the new content. The shell
    /// drops any packet it numbered before the seek and not yet written, and decodes from
    /// `sourceFrame`.
    package struct Seek: Sendable, Equatable {
        package var flush: BufferedFlush
        package var anchor: BufferedRateAnchor?
        package var sourceFrame: UInt64
    }

    package let configuration: Configuration
    package let rtpBase: UInt32
    package private(set) var playback: Playback
    /// Stream position of the next packet to write.
    package private(set) var nextPosition: UInt64 = 0
    /// Sequence number of the next packet to write (23 bits).
    package private(set) var nextSequence: UInt32

    /// Packets written and not yet played: (end position, bytes).
    private var inFlight: [(end: UInt64, bytes: Int)] = []
    private var inFlightHead = 0
    private var bytesInFlight = 0
    /// Source frame at `segmentStart` (the last start or seek).
    private var segmentStart: UInt64 = 0
    private var segmentSource: UInt64 = 0

    /// `rtpBase` and `firstSequence` are the stream's first RTP timestamp and sequence number
    /// (random, or offset per process as airplay-cli does so two streams from one host differ);
    /// `sourceFrame` is the programme position of the first packet (e.g. `--start`).
    package init(configuration: Configuration, rtpBase: UInt32 = 0, firstSequence: UInt32 = 0, sourceFrame: UInt64 = 0) {
        self.configuration = configuration
        self.rtpBase = rtpBase
        nextSequence = firstSequence & BufferedAudioPacket.sequenceMask
        segmentSource = sourceFrame
        playback = .waiting(position: 0)
    }

    // MARK: Numbering

    /// The RTP timestamp of a stream position.
    package func timestamp(at position: UInt64) -> UInt32 { rtpBase &+ UInt32(truncatingIfNeeded: position) }

    /// The RTP timestamp of the next packet to write.
    package var nextTimestamp: UInt32 { timestamp(at: nextPosition) }

    /// The programme frame a stream position carries (after the last seek).
    package func sourceFrame(at position: UInt64) -> UInt64 {
        position >= segmentStart ? segmentSource + (position - segmentStart) : segmentSource
    }

    /// The programme frame of the next packet to write (what the decoder should deliver next).
    package var nextSourceFrame: UInt64 { sourceFrame(at: nextPosition) }

    /// Registers one packet about to be written (`payloadBytes` = its codec frame) and returns its
    /// sequence number and RTP timestamp.
    package mutating func write(payloadBytes: Int) -> (sequenceNumber: UInt32, timestamp: UInt32) {
        let numbers = (nextSequence, nextTimestamp)
        let bytes = BufferedAudioPacket.prefixSize + BufferedAudioPacket.minimumSealedSize + max(0, payloadBytes)
        nextPosition += UInt64(configuration.framesPerPacket)
        nextSequence = (nextSequence &+ 1) & BufferedAudioPacket.sequenceMask
        inFlight.append((nextPosition, bytes))
        bytesInFlight += bytes
        return numbers
    }

    // MARK: Back-pressure

    /// The first stream frame the receiver has not yet played at `now`.
    package func playhead(now: UInt64) -> UInt64 {
        switch playback {
        case .waiting(let p), .paused(let p): return p
        case .playing(let p, let t): return now <= t ? p : p + frames(in: now - t)
        }
    }

    /// How many packets may be written now.
    package mutating func packetsAllowed(now: UInt64) -> Int {
        let head = playhead(now: now)
        drain(through: head)
        let limit = head + frames(in: configuration.maximumLead)
        let spf = UInt64(configuration.framesPerPacket)
        let byTime = nextPosition < limit ? (limit - nextPosition + spf - 1) / spf : 0
        // A buffer smaller than one packet still takes one at a time.
        let room = configuration.audioBufferSize - bytesInFlight
        let byBytes = max(room > 0 ? room / configuration.maximumPacketBytes : 0, bytesInFlight == 0 ? 1 : 0)
        return Int(min(byTime, UInt64(byBytes)))
    }

    /// Bytes written and not yet played at the last `packetsAllowed`.
    package var bytesAhead: Int { bytesInFlight }

    /// When the next packet may be written, if nothing is allowed now: nil while waiting or paused
    /// (only an anchor moves the playhead), otherwise the network time at which the playhead has
    /// moved far enough for both limits.
    ///
    /// `packets`: when that many may be written at once (a refill in one write instead of one
    /// wake-up per packet); capped by what the receiver's buffer can ever take at once.
    package mutating func nextOpening(now: UInt64, packets: Int = 1) -> UInt64? {
        let n = min(max(1, packets), max(1, configuration.audioBufferSize / configuration.maximumPacketBytes))
        if packetsAllowed(now: now) >= n { return now }
        guard case .playing(let p0, let t0) = playback else { return packetsAllowed(now: now) > 0 ? now : nil }
        // Time: the playhead must pass nextPosition + (n − 1) packets − lead.
        let lead = frames(in: configuration.maximumLead)
        let last = nextPosition + UInt64(n - 1) * UInt64(configuration.framesPerPacket)
        var needed = last >= lead ? last - lead + 1 : 0
        // Bytes: enough in-flight packets must have played for n more frames to fit.
        // (Draining every packet in flight always opens: see `packetsAllowed`.)
        var freed = configuration.audioBufferSize - bytesInFlight
        var i = inFlightHead
        while freed < n * configuration.maximumPacketBytes, i < inFlight.count {
            freed += inFlight[i].bytes
            needed = max(needed, inFlight[i].end)
            i += 1
        }
        guard needed > p0 else { return max(now, t0) }
        return max(now, t0 + nanoseconds(for: needed - p0))
    }

    // MARK: Anchors

    /// The first anchor: the playhead's frame is audible at `networkTime` (choose it late enough
    /// for the receiver to have measured our clock: shairport-sync ≥ ~1.5 s after the stream SETUP).
    package mutating func start(at networkTime: UInt64) -> BufferedRateAnchor {
        let position = playhead(now: networkTime)
        playback = .playing(position: position, networkTime: networkTime)
        return anchor(position: position, at: networkTime)
    }

    /// A first anchor on a timeline chosen elsewhere (a group member): stream position 0 plays at
    /// `origin` (master time), and the anchor names the first packet boundary whose play instant is
    /// at or after `earliest` (`origin` itself when that is late enough). Packets before the named
    /// one, already written, come before the anchor's frame (a receiver drops them); the playhead
    /// starts there, so the window counts them as played. Also after a refused anchor.
    package mutating func start(origin: UInt64, earliest: UInt64) -> BufferedRateAnchor {
        var position = playhead(now: origin)
        let spf = UInt64(configuration.framesPerPacket)
        if earliest > origin {
            let packets = (frames(in: earliest - origin) + spf - 1) / spf
            position = max(position, packets * spf)
            // `frames(in:)` floors: the packet's instant may still be a nanosecond early.
            while origin + nanoseconds(for: position) < earliest { position += spf }
        }
        let at = origin + nanoseconds(for: position)
        playback = .playing(position: position, networkTime: at)
        return anchor(position: position, at: at)
    }

    /// The receiver refused the last anchor (a strict receiver answers 400 until it has measured
    /// our clock): nothing played, so the playhead goes back to where that anchor put it and waits
    /// for the next `start`.
    package mutating func anchorRefused() {
        if case .playing(let position, _) = playback { playback = .waiting(position: position) }
    }

    /// Pause: `{rate: 0}`; the receiver stops at once and keeps what it has buffered. The playhead
    /// stops at the first frame of the packet due at `now` (never beyond what was written), to be
    /// called before the request goes: the receiver stops when it arrives, later, so it has played
    /// at least up to there. The resume anchor names that packet's first frame: a receiver that
    /// played part or all of the packet meanwhile has consumed those frames and plays the rest from
    /// where it stopped (a silence as long as the request's trip, nothing lost or repeated); one
    /// that had not started it plays it whole. Naming a frame inside a packet instead loses the
    /// packet on receivers that play whole packets and had not started it (they drop blocks before
    /// the anchor's frame).
    package mutating func pause(now: UInt64) -> BufferedRateAnchor {
        let position = min(playhead(now: now), nextPosition)
        let spf = UInt64(configuration.framesPerPacket)
        playback = .paused(position: position - (position >= segmentStart ? (position - segmentStart) % spf : 0))
        return .pause
    }

    /// Resume: the first frame not played becomes audible `restartDelay` after `now` (anything
    /// before it the receiver drops as late). Also starts a stream that was never anchored.
    package mutating func resume(now: UInt64) -> BufferedRateAnchor {
        start(at: now + configuration.restartDelay)
    }

    /// Seek to programme frame `sourceFrame`: flush everything written (immediate FLUSHBUFFERED up to
    /// the next packet), continue the RTP numbering with the new content, and when playing anchor
    /// it `restartDelay` after `now`. Paused or waiting, the new content waits for `resume`/`start`.
    package mutating func seek(toSourceFrame sourceFrame: UInt64, now: UInt64) -> Seek {
        let flush = BufferedFlush(untilSequence: nextSequence, untilTimestamp: nextTimestamp)
        segmentStart = nextPosition
        segmentSource = sourceFrame
        inFlight.removeAll()
        inFlightHead = 0
        bytesInFlight = 0
        var anchor: BufferedRateAnchor?
        switch playback {
        case .playing:
            let at = now + configuration.restartDelay
            playback = .playing(position: nextPosition, networkTime: at)
            anchor = self.anchor(position: nextPosition, at: at)
        case .paused:
            playback = .paused(position: nextPosition)
        case .waiting:
            playback = .waiting(position: nextPosition)
        }
        return Seek(flush: flush, anchor: anchor, sourceFrame: sourceFrame)
    }

    /// The programme frame audible at `now` (for progress).
    package func playheadSourceFrame(now: UInt64) -> UInt64 { sourceFrame(at: playhead(now: now)) }

    // MARK: Helpers

    private func anchor(position: UInt64, at networkTime: UInt64) -> BufferedRateAnchor {
        .play(rtpTime: timestamp(at: position), networkTimeNanoseconds: networkTime, timelineID: configuration.clockID)
    }

    private mutating func drain(through head: UInt64) {
        while inFlightHead < inFlight.count, inFlight[inFlightHead].end <= head {
            bytesInFlight -= inFlight[inFlightHead].bytes
            inFlightHead += 1
        }
        if inFlightHead > 64, inFlightHead * 2 > inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
    }

    /// Whole frames in `ns` nanoseconds (floor), without overflow.
    private func frames(in ns: UInt64) -> UInt64 {
        let p = ns.multipliedFullWidth(by: UInt64(configuration.sampleRate))
        guard p.high < 1_000_000_000 else { return UInt64.max / 2 }
        return UInt64(1_000_000_000).dividingFullWidth(p).quotient
    }

    /// Nanoseconds until `frames` frames have played (ceiling), without overflow.
    private func nanoseconds(for frames: UInt64) -> UInt64 {
        let rate = UInt64(configuration.sampleRate)
        let p = frames.multipliedFullWidth(by: 1_000_000_000)
        guard p.high < rate else { return UInt64.max / 2 }
        let (q, r) = rate.dividingFullWidth(p)
        return r == 0 ? q : q + 1
    }
}
