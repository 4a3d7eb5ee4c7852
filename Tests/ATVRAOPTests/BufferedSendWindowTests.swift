import ATVCore
@testable import ATVRAOP
import ATVTestSupport
import Testing

/// The send-ahead window of a buffered stream: back-pressure by lead time and by the receiver's
/// `audioBufferSize`, and the SETRATEANCHORTIME / FLUSHBUFFERED of start, pause, resume and seek
/// (docs/PTP-AND-BUFFERED-AUDIO.md §3.6, §3.7, §4.5, §4.6). 44.1 kHz, 352 frames
/// per packet, 3 s lead, 0.3 s restart delay; times in PTP nanoseconds.
@Suite("AirPlay 2 buffered send-ahead window")
struct BufferedSendWindowTests {
    static let clockID: UInt64 = 0x0242_ACFF_FE11_0002
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 10 * second
    /// Each packet: a 1000-byte codec frame = 1038 bytes on the connection.
    static let payload = 1000

    static func window(bufferSize: Int = 8_388_608, maximumPacketBytes: Int = 16_384) -> BufferedSendWindow {
        BufferedSendWindow(configuration: .init(audioBufferSize: bufferSize, clockID: clockID, maximumPacketBytes: maximumPacketBytes),
                           rtpBase: 1000, firstSequence: 7)
    }

    static func write(_ n: Int, into w: inout BufferedSendWindow) {
        for _ in 0 ..< n { _ = w.write(payloadBytes: payload) }
    }

    @Test("before the first anchor: up to 3 s ahead (376 packets), then nothing")
    func prebuffer() {
        var w = Self.window()
        // ceil(132300 / 352) = 376 packets start within 3 s of the playhead (8 MiB holds 512 of 16 KiB).
        #expect(w.packetsAllowed(now: 0) == 376)
        let first = w.write(payloadBytes: Self.payload)
        #expect(first.sequenceNumber == 7 && first.timestamp == 1000)
        #expect(w.packetsAllowed(now: 0) == 375)
        Self.write(375, into: &w)
        #expect(w.nextPosition == 376 * 352)
        #expect(w.nextSequence == 7 + 376 && w.nextTimestamp == 1000 + 376 * 352)
        #expect(w.packetsAllowed(now: 5 * Self.second) == 0)  // no anchor: the playhead does not move
        #expect(w.nextOpening(now: 5 * Self.second) == nil)
        #expect(w.bytesAhead == 376 * 1038)
    }

    @Test("playing: the playhead follows the anchor; packets open as it moves, at the exact nanosecond")
    func playing() throws {
        var w = Self.window()
        Self.write(376, into: &w)
        let anchor = w.start(at: Self.t0)
        #expect(anchor == .play(rtpTime: 1000, networkTime: AirPlay2NetworkTime(seconds: 10, fraction: 0), timelineID: Self.clockID))
        #expect(anchor.body["networkTimeTimelineID"] == .int(0x0242_ACFF_FE11_0002))
        // 1 s later the playhead is at 44100: 125 packets played, ceil((176400 − 132352) / 352) = 126 may go.
        #expect(w.playhead(now: Self.t0 + Self.second) == 44100)
        #expect(w.packetsAllowed(now: Self.t0 + Self.second) == 126)
        #expect(w.bytesAhead == 251 * 1038)
        #expect(w.nextOpening(now: Self.t0 + Self.second) == Self.t0 + Self.second)
        Self.write(126, into: &w)
        #expect(w.packetsAllowed(now: Self.t0 + Self.second) == 0)
        // The next packet (position 176704) opens when the playhead reaches 176704 − 132300 + 1 = 44405:
        // ceil(44405 / 44100 s) = 1.0069161 s after the anchor.
        let next = w.nextOpening(now: Self.t0 + Self.second)
        let opening = try #require(next)
        #expect(opening == Self.t0 + 1_006_916_100)
        #expect(w.packetsAllowed(now: opening - 1) == 0)
        #expect(w.packetsAllowed(now: opening) == 1)
        // Before the anchor's time nothing has played.
        #expect(w.playhead(now: Self.t0 - Self.second) == 0)
    }

    @Test("a refill of n packets opens when n may go at once, by time and by bytes (capped at what the buffer can ever take)")
    func refillOpening() throws {
        var w = Self.window()
        Self.write(376, into: &w)
        _ = w.start(at: Self.t0)
        // Full at t0: 31 more go once the playhead passes 132352 + 30·352 − 132300 = 10612 frames:
        // ceil(10613 / 44100 s) = 240657597 ns after the anchor.
        #expect(w.packetsAllowed(now: Self.t0) == 0)
        let next31 = w.nextOpening(now: Self.t0, packets: 31)
        let opening = try #require(next31)
        #expect(opening == Self.t0 + 240_657_597)
        #expect(w.packetsAllowed(now: opening - 1) == 30)
        #expect(w.packetsAllowed(now: opening) == 31)
        // One packet: as before.
        let one = w.nextOpening(now: Self.t0, packets: 1), plain = w.nextOpening(now: Self.t0)
        #expect(one == plain)
        // By bytes: 4 packets of at most 1038 bytes need 4152 free of 10000.
        var b = Self.window(bufferSize: 10_000, maximumPacketBytes: 1038)
        Self.write(9, into: &b)
        _ = b.start(at: Self.t0)
        let next4 = b.nextOpening(now: Self.t0, packets: 4)
        let four = try #require(next4)
        #expect(b.packetsAllowed(now: four - 1) < 4 && b.packetsAllowed(now: four) >= 4)
        // More than the buffer ever holds at once: capped at 9 (every packet in flight played).
        let next50 = b.nextOpening(now: Self.t0, packets: 50)
        let all = try #require(next50)
        #expect(b.packetsAllowed(now: all - 1) < 9 && b.packetsAllowed(now: all) == 9)  // (in time order: it drains)
        // Waiting (no anchor) and full: nothing opens.
        var waiting = Self.window()
        Self.write(376, into: &waiting)
        let none = waiting.nextOpening(now: Self.t0, packets: 31)
        #expect(none == nil)
    }

    @Test("a group member's first anchor: position 0 at the group's instant, or the first packet far enough after it, on the same line")
    func scheduledStart() throws {
        var w = Self.window()
        Self.write(100, into: &w)
        // Far enough: frame 0 at the origin.
        #expect(w.start(origin: Self.t0, earliest: Self.t0 - Self.second)
                == .play(rtpTime: 1000, networkTimeNanoseconds: Self.t0, timelineID: Self.clockID))
        #expect(w.playhead(now: Self.t0) == 0)
        // Refused (400): back to waiting at 0; the next try must be 0.1 s later than the origin:
        // the first packet boundary at or after it is packet 13 (4576 frames, 103764173 ns).
        w.anchorRefused()
        let later = w.start(origin: Self.t0, earliest: Self.t0 + Self.second / 10)
        #expect(later == .play(rtpTime: 1000 + 13 * 352, networkTimeNanoseconds: Self.t0 + 103_764_173, timelineID: Self.clockID))
        #expect(w.playhead(now: Self.t0 + 103_764_173) == 13 * 352)
        // The packets before it count as played: the window opens by as many.
        #expect(w.packetsAllowed(now: Self.t0 + 103_764_173) == 376 - 100 + 13)
        // Exactly on a boundary: that packet.
        var x = Self.window()
        #expect(x.start(origin: Self.t0, earliest: Self.t0 + 7_981_860)
                == .play(rtpTime: 1000 + 352, networkTimeNanoseconds: Self.t0 + 7_981_860, timelineID: Self.clockID))
    }

    @Test("back-pressure by audioBufferSize: bytes written and not yet played stay within it, packets counted at their largest")
    func byteLimit() throws {
        var w = Self.window(bufferSize: 10_000, maximumPacketBytes: 1038)
        #expect(w.packetsAllowed(now: 0) == 9)  // 10000 / 1038
        Self.write(9, into: &w)
        #expect(w.packetsAllowed(now: 0) == 0)
        #expect(w.bytesAhead == 9342)
        _ = w.start(at: Self.t0)
        // One more fits once the first packet (352 frames) has played: ceil(352 / 44100 s) = 7981860 ns.
        let next = w.nextOpening(now: Self.t0)
        let opening = try #require(next)
        #expect(opening == Self.t0 + 7_981_860)
        #expect(w.packetsAllowed(now: opening - 1) == 0)
        #expect(w.packetsAllowed(now: opening) == 1)
        // A buffer smaller than one packet still takes one at a time.
        var tiny = Self.window(bufferSize: 100, maximumPacketBytes: 1038)
        #expect(tiny.packetsAllowed(now: 0) == 1)
        Self.write(1, into: &tiny)
        #expect(tiny.packetsAllowed(now: 0) == 0)
        _ = tiny.start(at: 0)
        #expect(tiny.packetsAllowed(now: 8_000_000) == 1)
    }

    @Test("pause sends {rate: 0} and stops the playhead on the first frame of the packet due; resume anchors it 0.3 s ahead")
    func pauseResume() {
        var w = Self.window()
        Self.write(502, into: &w)
        _ = w.start(at: Self.t0)
        // 2 s = frame 88200, inside packet 250 (frames 88000..<88352).
        #expect(w.pause(now: Self.t0 + 2 * Self.second) == .pause)
        #expect(w.playback == .paused(position: 88000))
        #expect(w.playheadSourceFrame(now: Self.t0 + 9 * Self.second) == 88000)
        // Paused, the window still fills up to 3 s past the paused frame: ceil((220300 − 176704) / 352) = 124.
        #expect(w.packetsAllowed(now: Self.t0 + 9 * Self.second) == 124)
        #expect(w.nextOpening(now: Self.t0 + 9 * Self.second) == Self.t0 + 9 * Self.second)
        let resume = w.resume(now: Self.t0 + 10 * Self.second)
        #expect(resume == .play(rtpTime: 1000 + 88000, networkTimeNanoseconds: 20_300_000_000, timelineID: Self.clockID))
        #expect(w.playback == .playing(position: 88000, networkTime: 20_300_000_000))
        #expect(w.playhead(now: 21_300_000_000) == 88000 + 44100)
    }

    @Test("pause after an underrun stops at the last frame written")
    func pauseAfterUnderrun() {
        var w = Self.window()
        Self.write(9, into: &w)
        _ = w.start(at: Self.t0)
        _ = w.pause(now: Self.t0 + Self.second)
        #expect(w.playback == .paused(position: 9 * 352))
    }

    @Test("seek while playing: immediate FLUSHBUFFERED up to the next packet, new anchor on it, RTP continues, source frame moves")
    func seekPlaying() {
        var w = Self.window()
        Self.write(502, into: &w)
        _ = w.start(at: Self.t0)
        let target: UInt64 = 90 * 44100  // --start 1:30
        let seek = w.seek(toSourceFrame: target, now: 21 * Self.second)
        #expect(seek.flush == BufferedFlush(untilSequence: 7 + 502, untilTimestamp: 1000 + 502 * 352))
        #expect(seek.flush.isImmediate)
        #expect(seek.anchor == .play(rtpTime: 1000 + 502 * 352, networkTimeNanoseconds: 21_300_000_000, timelineID: Self.clockID))
        #expect(seek.sourceFrame == target)
        #expect(w.bytesAhead == 0)
        #expect(w.nextSourceFrame == target)
        // The next packet carries the flush's sequence number and timestamp (kept by the receiver).
        let next = w.write(payloadBytes: Self.payload)
        #expect(next.sequenceNumber == seek.flush.untilSequence && next.timestamp == seek.flush.untilTimestamp)
        #expect(w.sourceFrame(at: 502 * 352 + 352) == target + 352)
        #expect(w.playheadSourceFrame(now: 22_300_000_000) == target + 44100)
        // Until the new anchor's time, a full window may be sent again.
        #expect(w.packetsAllowed(now: 21 * Self.second) == 375)
    }

    @Test("seek while paused: flush only; the new content is anchored by resume")
    func seekPaused() {
        var w = Self.window()
        Self.write(100, into: &w)
        _ = w.start(at: Self.t0)
        _ = w.pause(now: Self.t0 + Self.second / 2)
        let seek = w.seek(toSourceFrame: 441_000, now: Self.t0 + Self.second)
        #expect(seek.anchor == nil)
        #expect(seek.flush == BufferedFlush(untilSequence: 107, untilTimestamp: 1000 + 35200))
        #expect(w.playback == .paused(position: 35200))
        let resume = w.resume(now: Self.t0 + 2 * Self.second)
        #expect(resume == .play(rtpTime: 1000 + 35200, networkTimeNanoseconds: 12_300_000_000, timelineID: Self.clockID))
        #expect(w.playheadSourceFrame(now: 12_300_000_000) == 441_000)
    }

    @Test("numbering wraps: 23-bit sequence numbers and 32-bit RTP timestamps; 64-bit positions and a long stream do not overflow")
    func wrapping() {
        var w = BufferedSendWindow(configuration: .init(clockID: 1), rtpBase: 0xFFFF_FF00, firstSequence: 0x7F_FFFF)
        let a = w.write(payloadBytes: 10)
        let b = w.write(payloadBytes: 10)
        #expect(a.sequenceNumber == 0x7F_FFFF && a.timestamp == 0xFFFF_FF00)
        #expect(b.sequenceNumber == 0 && b.timestamp == 0xFFFF_FF00 &+ 352)
        _ = w.start(at: 0)
        let day: UInt64 = 86_400 * Self.second
        #expect(w.playhead(now: 400 * day) == 400 * 86_400 * 44_100)
    }

    @Test("a shell that writes what is allowed, with random pauses, resumes and seeks: never more than 3 s ahead, never more bytes than the buffer, flushes name the next packet")
    func randomShell() {
        let seed = TestSeed.value(default: 0x103)
        var rng = SplitMix64(seed: seed)
        let bufferSize = 60_000
        var w = Self.window(bufferSize: bufferSize, maximumPacketBytes: 1538)
        let lead: UInt64 = 132_300
        var now: UInt64 = Self.second
        var started = false
        var pendingFlush: BufferedFlush?
        for _ in 0 ..< 2000 {
            now += UInt64.random(in: 0 ... 50_000_000, using: &rng)
            switch UInt8.random(in: 0 ..< 40, using: &rng) {
            case 0: _ = w.pause(now: now)
            case 1: _ = w.resume(now: now); started = true
            case 2: pendingFlush = w.seek(toSourceFrame: UInt64.random(in: 0 ... 10_000_000, using: &rng), now: now).flush
            case 3 where !started: _ = w.start(at: now); started = true
            default: break
            }
            let n = w.packetsAllowed(now: now)
            for _ in 0 ..< n {
                let numbers = w.write(payloadBytes: Int.random(in: 0 ... 1500, using: &rng))
                if let flush = pendingFlush {
                    #expect(numbers.sequenceNumber == flush.untilSequence && numbers.timestamp == flush.untilTimestamp, "seed \(seed)")
                    pendingFlush = nil
                }
            }
            if n > 0 {
                #expect(w.nextPosition - 352 < w.playhead(now: now) + lead, "seed \(seed)")
                #expect(w.bytesAhead <= bufferSize, "seed \(seed)")
            }
            if let opening = w.nextOpening(now: now) {
                #expect(opening >= now, "seed \(seed)")
            }
        }
    }

    @Test("a format sets rate, frames per packet and the largest packet (AAC: 6144 bits per channel; ALAC: uncompressed + 16)")
    func formatConfiguration() {
        let alac = BufferedSendWindow.Configuration(format: .alac44100x16Stereo, clockID: 1)
        #expect(alac.sampleRate == 44_100 && alac.framesPerPacket == 352 && alac.maximumPacketBytes == 38 + 352 * 4 + 16)
        let aac = BufferedSendWindow.Configuration(format: .aacLC48000Stereo, clockID: 1)
        #expect(aac.sampleRate == 48_000 && aac.framesPerPacket == 1024 && aac.maximumPacketBytes == 38 + 1536)
        #expect(BufferedAudioFormat.alac48000x24Stereo.maximumFrameBytes == 38 + 352 * 6 + 16)
        #expect(BufferedAudioFormat.allCases.allSatisfy { $0.maximumFrameBytes <= BufferedAudioPacket.maximumFrameSize })
        // 3 s of AAC at 48 kHz: ceil(144000 / 1024) = 141 packets.
        var w = BufferedSendWindow(configuration: aac)
        #expect(w.packetsAllowed(now: 0) == 141)
    }
}
