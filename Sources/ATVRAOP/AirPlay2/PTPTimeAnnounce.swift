// The PTP form of the realtime (type 96) sync packet: the 28-byte 0xD7 "time announce", sent
// unencrypted to the receiver's controlPort (docs/PTP-AND-BUFFERED-AUDIO.md §3.8):
//
//   0x90 (first packet of a stream) / 0x80 | 0xD7 | 0x0006 | frame_1 (4) | PTP time ns (8) |
//   frame_2 (4) | clock id (8)
//
// frame_1 is the RTP time audible 11035 frames (shairport-sync; OwnTone uses 11025) after the PTP
// time; frame_2 = frame_1 + 77175 in Apple's traffic. The clock id must be the grandmaster's, as
// the receiver publishes it (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 9). Sans-I/O: time and clock
// id are passed in.
import ATVCore

/// The 0xD7 time-announce packet.
package struct PTPTimeAnnouncePacket: Sendable, Hashable {
    package static let size = 28
    package static let payloadType: UInt8 = 0xD7
    /// shairport-sync: frame `frame_1 − 11035` plays at the stated time
    /// (docs/PTP-AND-BUFFERED-AUDIO.md §3.8).
    package static let shairportLatencyFrames: UInt32 = 11_035
    /// OwnTone's offset (11025 frames: 227 µs later than shairport-sync expects at 44.1 kHz).
    package static let ownToneLatencyFrames: UInt32 = 11_025
    /// frame_2 − frame_1 in Apple's traffic (shairport-sync logs a note otherwise; it only logs frame_2).
    package static let appleFrame2Offset: UInt32 = 77_175

    /// The 0x90 sentinel: the first packet of a stream (0x80 afterwards).
    package var isFirst: Bool
    /// `frame_1`: the RTP time that becomes audible `latency` frames after `networkTime`.
    package var rtpTime: UInt32
    /// PTP master time in nanoseconds.
    package var networkTime: UInt64
    /// `frame_2`.
    package var rtpTimeAtSend: UInt32
    /// The PTP clock id of the timeline (the grandmaster identity, big endian).
    package var clockID: UInt64

    package init(isFirst: Bool, rtpTime: UInt32, networkTime: UInt64, rtpTimeAtSend: UInt32, clockID: UInt64) {
        self.isFirst = isFirst
        self.rtpTime = rtpTime
        self.networkTime = networkTime
        self.rtpTimeAtSend = rtpTimeAtSend
        self.clockID = clockID
    }

    /// "Frame `frame` is audible at `networkTime`": frame_1 = frame + `latency`, frame_2 = frame_1 +
    /// 77175, as Apple's senders and shairport-sync expect them.
    package init(isFirst: Bool, frame: UInt32, audibleAt networkTime: UInt64, clockID: UInt64,
                latency: UInt32 = shairportLatencyFrames) {
        let frame1 = frame &+ latency
        self.init(isFirst: isFirst, rtpTime: frame1, networkTime: networkTime,
                  rtpTimeAtSend: frame1 &+ Self.appleFrame2Offset, clockID: clockID)
    }

    /// The frame audible at `networkTime` under a receiver's `latency` convention.
    package func audibleFrame(latency: UInt32 = shairportLatencyFrames) -> UInt32 { rtpTime &- latency }

    package var bytes: [UInt8] {
        var out: [UInt8] = [isFirst ? 0x90 : 0x80, Self.payloadType, 0x00, 0x06]
        out.reserveCapacity(Self.size)
        out += Self.be(UInt64(rtpTime), 4)
        out += Self.be(networkTime, 8)
        out += Self.be(UInt64(rtpTimeAtSend), 4)
        out += Self.be(clockID, 8)
        return out
    }

    /// Decodes one control datagram: exactly 28 bytes, RTP version 2, payload type 0xD7, length
    /// field 6. Anything else is an error, never a trap.
    package init(decoding bytes: some Collection<UInt8>) throws(ATVError) {
        let b = Array(bytes)
        guard b.count == Self.size else {
            throw ATVError.protocolError("PTP time-announce packet must be \(Self.size) bytes, got \(b.count)")
        }
        guard b[0] >> 6 == 2, b[1] == Self.payloadType, b[2] == 0, b[3] == 6 else {
            throw ATVError.protocolError("not a PTP time-announce packet (0xD7, length 6)")
        }
        func be(_ at: Int, _ n: Int) -> UInt64 { b[at ..< at + n].reduce(0) { $0 << 8 | UInt64($1) } }
        isFirst = b[0] & 0x10 != 0
        rtpTime = UInt32(be(4, 4))
        networkTime = be(8, 8)
        rtpTimeAtSend = UInt32(be(16, 4))
        clockID = be(20, 8)
    }

    private static func be(_ v: UInt64, _ n: Int) -> [UInt8] {
        (0 ..< n).reversed().map { UInt8(truncatingIfNeeded: v >> (UInt64($0) * 8)) }
    }
}
