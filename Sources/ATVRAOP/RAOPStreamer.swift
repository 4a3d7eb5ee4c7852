import ATVAirPlayCore
import ATVCore
import NIOCore

/// Sent packets kept for retransmission: a ring keyed by sequence number (the capacity divides
/// 65536, so slots stay consistent across sequence wrap). It holds the very arrays that were sent,
/// each of its packet's size (a power-of-two buffer would hold up to twice the audio for the ~8 s
/// of packets each receiver's backlog covers: issue 17, memory per group member).
package struct RAOPBacklog: Sendable {
    package let capacity: Int
    private var slots: [(sequence: UInt16, bytes: [UInt8])?]

    /// `minimumCapacity` is rounded up to a power of two (≥ 1024, ≤ 32768).
    package init(minimumCapacity: Int = 1024) {
        var c = 1024
        while c < min(minimumCapacity, 32768) { c <<= 1 }
        capacity = c
        slots = Array(repeating: nil, count: c)
    }

    package mutating func store(sequence: UInt16, bytes: [UInt8]) {
        slots[Int(sequence) & (capacity - 1)] = (sequence, bytes)
    }

    /// The serialized packet with this sequence number, if still held.
    package func packet(sequence: UInt16) -> [UInt8]? {
        guard let slot = slots[Int(sequence) & (capacity - 1)], slot.sequence == sequence else { return nil }
        return slot.bytes
    }

    /// Whether the packet with this sequence number is still held.
    package func contains(sequence: UInt16) -> Bool {
        slots[Int(sequence) & (capacity - 1)]?.sequence == sequence
    }

    package mutating func removeAll() {
        slots = Array(repeating: nil, count: capacity)
    }
}

/// The RTP side of a sender, without I/O: packetizer (sequence/timestamp/marker), backlog for
/// retransmits, sync packets and their timing rule.
package struct RAOPStreamer: Sendable {
    package let format: RAOPAudioFormat
    package let ssrc: UInt32
    package let latencyFrames: Int

    package private(set) var nextSequence: UInt16
    package private(set) var nextRTPTime: UInt32
    /// Packets and frames packetized so far (not counting retransmits).
    package private(set) var packetsSent = 0
    package private(set) var framesSent: Int64 = 0
    package private(set) var retransmittedPackets = 0
    package private(set) var retransmitRequests = 0
    /// Requested packets no longer (or never) in the backlog.
    package private(set) var retransmitMisses = 0
    package private(set) var backlog: RAOPBacklog

    /// AirPlay 2: seals each packet's payload (ChaCha20-Poly1305 with the stream's `shk`).
    package var audioCipher: AirPlay2AudioCipher?

    private var markNext = true
    /// When syncs are "first" ones and when one is repeated (`SyncPolicy`).
    private var sync: SyncPolicy

    package init(format: RAOPAudioFormat = RAOPAudioFormat(), ssrc: UInt32, initialSequence: UInt16,
                initialRTPTime: UInt32, latencyFrames: Int = 88_200, backlogCapacity: Int = 1024) {
        self.format = format
        self.ssrc = ssrc
        self.latencyFrames = latencyFrames
        nextSequence = initialSequence
        nextRTPTime = initialRTPTime
        backlog = RAOPBacklog(minimumCapacity: backlogCapacity)
        sync = SyncPolicy(latencyFrames: latencyFrames)
    }

    /// Makes the next audio packet from an already-encoded payload covering `frames` frames, stores
    /// it in the backlog and returns its bytes: the RTP header, then the payload (AirPlay 1) or the
    /// sealed payload, tag and nonce tail (AirPlay 2, sealed in place), written once into an array of
    /// exactly the packet's size that the backlog keeps as it is (no copy: a retransmit resends the
    /// very packet that was lost, as pyatv does) and the sender hands to its socket. The first
    /// packet (and the first after a flush) carries the marker bit. Several receivers can be fed
    /// from one encoded payload: each streamer seals its own packet from it. AirPlay 2: a payload
    /// that can't be sealed is an error and nothing is stored or sent in its place (never a
    /// plaintext packet).
    package mutating func packetize(payload: [UInt8], frames: Int) throws(ATVError) -> [UInt8] {
        let header = RTPHeader(payloadType: RAOPAudioPacket.payloadType, marker: markNext, sequenceNumber: nextSequence,
                               timestamp: nextRTPTime, ssrc: ssrc)
        let total = RTPHeader.size + payload.count + (audioCipher != nil ? AirPlay2AudioCipher.overhead : 0)
        var failure: ATVError?
        let packet = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            let packet = UnsafeMutableRawBufferPointer(out)
            packet.initializeMemory(as: UInt8.self, repeating: 0)
            header.write(to: packet)
            payload.withUnsafeBytes { p in
                if audioCipher != nil {
                    do throws(ATVError) {
                        try audioCipher!.sealPacket(in: packet, payload: p)
                    } catch {
                        failure = error
                    }
                } else if p.count > 0 {
                    UnsafeMutableRawBufferPointer(rebasing: packet[RTPHeader.size...]).copyMemory(from: p)
                }
            }
            initialized = total
        }
        if let failure { throw failure }
        backlog.store(sequence: nextSequence, bytes: packet)
        markNext = false
        nextSequence &+= 1
        nextRTPTime &+= UInt32(truncatingIfNeeded: frames)
        packetsSent += 1
        framesSent += Int64(frames)
        return packet
    }

    /// The 0x56 responses for a retransmit request (only packets still in the backlog: `RetransmitPolicy`).
    package mutating func retransmissions(for request: RAOPRetransmitRequest) -> [[UInt8]] {
        retransmitRequests += 1
        let backlog = self.backlog
        let plan = RetransmitPolicy.plan(request, capacity: backlog.capacity) { backlog.contains(sequence: $0) }
        retransmitMisses += plan.missing.count
        let out = plan.resend.compactMap { seq in
            backlog.packet(sequence: seq).map { RAOPRetransmitResponse.wrap(packetBytes: $0, sequenceNumber: seq) }
        }
        retransmittedPackets += out.count
        return out
    }

    /// A sync packet saying: at `ntpTime` the stream is at `rtpTime` (the frame due now), so frame
    /// `rtpTime − latency` is playing. The first after start/flush has the 0x90 flag (`SyncPolicy`).
    package mutating func syncPacket(rtpTime: UInt32, ntpTime: NTPTime) -> [UInt8] {
        sync.packet(rtpTime: rtpTime, ntpTime: ntpTime).bytes
    }

    /// The PTP form of the sync packet (0xD7, `SyncPolicy.timeAnnounce`): at `networkTime` the
    /// stream is at `rtpTime`, so frame `rtpTime − latency` is audible then.
    package mutating func timeAnnouncePacket(rtpTime: UInt32, networkTime: UInt64, clockID: UInt64) -> [UInt8] {
        sync.timeAnnounce(rtpTime: rtpTime, networkTime: networkTime, clockID: clockID).bytes
    }

    /// Record that a timing reply was sent. Returns true when a sync should be sent right away:
    /// receivers such as shairport-sync ignore syncs that arrive before their first timing
    /// exchange, so a sync sent before it is repeated at once.
    package mutating func timingReplySent() -> Bool { sync.timingReplySent() }

    /// After a FLUSH: the next packet carries the marker again and the next sync is a "first" one.
    package mutating func flushed() {
        markNext = true
        sync.restarted()
    }
}

/// Absolute-schedule pacing: packet `n` is due at `start + n·framesPerPacket/sampleRate`; nothing
/// is accumulated, so there is no drift.
package struct RAOPPacer: Sendable, Equatable {
    package let framesPerPacket: Int
    package let sampleRate: Int

    package init(framesPerPacket: Int = 352, sampleRate: Int = 44_100) {
        self.framesPerPacket = max(1, framesPerPacket)
        self.sampleRate = max(1, sampleRate)
    }

    /// Offset of packet `n` from the start, exact to the nanosecond (floor).
    package func offset(ofPacket n: Int64) -> Duration {
        offset(ofFrame: n * Int64(framesPerPacket))
    }

    /// Offset of packet `n` from the start in nanoseconds (floor), as `offset(ofPacket:)`.
    package func nanoseconds(ofPacket n: Int64) -> Int64 {
        let (q, r) = (n * Int64(framesPerPacket)).quotientAndRemainder(dividingBy: Int64(sampleRate))
        return q * 1_000_000_000 + (r * 1_000_000_000) / Int64(sampleRate)
    }

    /// A duration in whole nanoseconds.
    package static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    /// Offset of frame `f` from the start.
    package func offset(ofFrame f: Int64) -> Duration {
        let (q, r) = f.quotientAndRemainder(dividingBy: Int64(sampleRate))
        let ns = (r * 1_000_000_000) / Int64(sampleRate)
        return .seconds(q) + .nanoseconds(ns)
    }

    /// Frames that should have been played `elapsed` after the start.
    package func frames(at elapsed: Duration) -> Int64 {
        let (s, atto) = elapsed.components
        guard s >= 0 else { return 0 }
        return s * Int64(sampleRate) + Int64((Double(atto) / 1e18) * Double(sampleRate))
    }
}

/// PCM → RTP payload.
enum RAOPPayload {
    /// s16le interleaved → big-endian L16 (byte swap), padded with zeros to `frames` frames.
    static func l16(_ bytes: [UInt8], paddedToFrames frames: Int) -> [UInt8] {
        let want = frames * 4
        var out = [UInt8](repeating: 0, count: max(want, bytes.count & ~1))
        var i = 0
        let n = min(bytes.count & ~1, out.count)
        while i < n {
            out[i] = bytes[i + 1]
            out[i + 1] = bytes[i]
            i += 2
        }
        return out
    }
}
