import ATVAirPlayCore
import ATVCore
import ATVHTTP

// MARK: - RTP header

/// A fixed 12-byte RTP header (no CSRC list).
package struct RTPHeader: Sendable, Hashable {
    package static let size = 12

    package var padding: Bool
    package var hasExtension: Bool
    package var marker: Bool
    package var payloadType: UInt8
    package var sequenceNumber: UInt16
    package var timestamp: UInt32
    package var ssrc: UInt32

    package init(payloadType: UInt8, marker: Bool = false, sequenceNumber: UInt16 = 0, timestamp: UInt32 = 0,
                ssrc: UInt32 = 0, padding: Bool = false, hasExtension: Bool = false) {
        self.payloadType = payloadType & 0x7F
        self.marker = marker
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.padding = padding
        self.hasExtension = hasExtension
    }

    package var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.size) { out, count in
            write(to: UnsafeMutableRawBufferPointer(out))
            count = Self.size
        }
    }

    /// Writes the 12 header bytes at the start of `raw`, which must hold at least that many (no
    /// allocation: the packetizer builds each audio packet around it).
    package func write(to raw: UnsafeMutableRawBufferPointer) {
        precondition(raw.count >= Self.size)
        raw[0] = 0x80 | (padding ? 0x20 : 0) | (hasExtension ? 0x10 : 0)
        raw[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        raw.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: 2, as: UInt16.self)
        raw.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Decodes the first 12 bytes; throws on short input or an RTP version other than 2.
    package init(decoding bytes: some Collection<UInt8>) throws {
        let r = ByteReader(Array(bytes.prefix(Self.size)))
        let b0 = try r.u8(0)
        guard b0 >> 6 == 2 else { throw ATVError.protocolError("not an RTP packet (version \(b0 >> 6))") }
        let b1 = try r.u8(1)
        padding = b0 & 0x20 != 0
        hasExtension = b0 & 0x10 != 0
        marker = b1 & 0x80 != 0
        payloadType = b1 & 0x7F
        sequenceNumber = try r.u16(2)
        timestamp = try r.u32(4)
        ssrc = try r.u32(8)
    }
}

// MARK: - Audio

/// A RAOP audio packet (payload type 0x60; 0xE0 with the marker on the first packet of a stream).
package struct RAOPAudioPacket: Sendable, Hashable {
    package static let payloadType: UInt8 = 0x60

    package var header: RTPHeader
    package var payload: [UInt8]

    package init(sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32, marker: Bool = false, payload: [UInt8]) {
        header = RTPHeader(payloadType: Self.payloadType, marker: marker, sequenceNumber: sequenceNumber,
                           timestamp: timestamp, ssrc: ssrc)
        self.payload = payload
    }

    package var sequenceNumber: UInt16 { header.sequenceNumber }
    package var timestamp: UInt32 { header.timestamp }
    package var marker: Bool { header.marker }

    /// Header ‖ payload, in one allocation.
    package var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: RTPHeader.size + payload.count) { out, count in
            let raw = UnsafeMutableRawBufferPointer(out)
            header.write(to: raw)
            payload.withUnsafeBytes { p in
                if p.count > 0 { UnsafeMutableRawBufferPointer(rebasing: raw[RTPHeader.size...]).copyMemory(from: p) }
            }
            count = RTPHeader.size + payload.count
        }
    }

    package init(decoding bytes: some Collection<UInt8>) throws {
        let array = Array(bytes)
        let header = try RTPHeader(decoding: array)
        guard header.payloadType == Self.payloadType else {
            throw ATVError.protocolError("not a RAOP audio packet (payload type 0x\(hex2(header.payloadType)))")
        }
        self.header = header
        payload = Array(array.dropFirst(RTPHeader.size))
    }
}

// MARK: - Control channel

/// Sync packet (control channel, sender → receiver, every second): at NTP time `ntpTime` the
/// frame `rtpTimeLessLatency` is being played; `rtpTime` is the stream's current RTP time
/// (so `rtpTime − rtpTimeLessLatency` is the latency).
package struct RAOPSyncPacket: Sendable, Hashable {
    package static let payloadType: UInt8 = 0x54
    package static let size = 20

    package var isFirst: Bool
    package var rtpTimeLessLatency: UInt32
    package var ntpTime: NTPTime
    package var rtpTime: UInt32

    package init(isFirst: Bool, rtpTimeLessLatency: UInt32, ntpTime: NTPTime, rtpTime: UInt32) {
        self.isFirst = isFirst
        self.rtpTimeLessLatency = rtpTimeLessLatency
        self.ntpTime = ntpTime
        self.rtpTime = rtpTime
    }

    package var bytes: [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u8(isFirst ? 0x90 : 0x80)
        w.u8(0x80 | Self.payloadType)
        w.u16(0x0007)
        w.u32(rtpTimeLessLatency)
        w.ntp(ntpTime)
        w.u32(rtpTime)
        return w.bytes
    }

    package init(decoding bytes: some Collection<UInt8>) throws {
        let r = ByteReader(Array(bytes))
        guard bytes.count >= Self.size else { throw ATVError.protocolError("sync packet of \(bytes.count) bytes, expected 20") }
        guard try r.u8(1) & 0x7F == Self.payloadType else { throw ATVError.protocolError("not a sync packet") }
        isFirst = try r.u8(0) & 0x10 != 0
        rtpTimeLessLatency = try r.u32(4)
        ntpTime = try r.ntp(8)
        rtpTime = try r.u32(16)
    }
}

/// Retransmit request (control channel, receiver → sender): resend `count` packets from `firstSequence`.
package struct RAOPRetransmitRequest: Sendable, Hashable {
    package static let payloadType: UInt8 = 0x55
    package static let size = 8

    package var sequenceNumber: UInt16
    package var firstSequence: UInt16
    package var count: UInt16

    package init(sequenceNumber: UInt16 = 1, firstSequence: UInt16, count: UInt16) {
        self.sequenceNumber = sequenceNumber
        self.firstSequence = firstSequence
        self.count = count
    }

    /// The requested sequence numbers, in order (wrapping at 65535).
    package var sequenceNumbers: [UInt16] { (0..<Int(count)).map { firstSequence &+ UInt16(truncatingIfNeeded: $0) } }

    package var bytes: [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u8(0x80)
        w.u8(0x80 | Self.payloadType)
        w.u16(sequenceNumber)
        w.u16(firstSequence)
        w.u16(count)
        return w.bytes
    }

    package init(decoding bytes: some Collection<UInt8>) throws {
        let r = ByteReader(Array(bytes))
        guard bytes.count >= Self.size else { throw ATVError.protocolError("retransmit request of \(bytes.count) bytes, expected 8") }
        guard try r.u8(1) & 0x7F == Self.payloadType else { throw ATVError.protocolError("not a retransmit request") }
        sequenceNumber = try r.u16(2)
        firstSequence = try r.u16(4)
        count = try r.u16(6)
    }
}

/// Retransmit response (control channel, sender → receiver): `0x80 0xD6 ‖ seq ‖ original packet`.
package struct RAOPRetransmitResponse: Sendable, Hashable {
    package static let payloadType: UInt8 = 0x56

    package var packet: RAOPAudioPacket

    package init(packet: RAOPAudioPacket) { self.packet = packet }

    package var bytes: [UInt8] { Self.wrap(packetBytes: packet.bytes, sequenceNumber: packet.sequenceNumber) }

    /// Wraps an already-serialized audio packet (avoids re-encoding from the backlog).
    package static func wrap(packetBytes: some Collection<UInt8>, sequenceNumber: UInt16) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + packetBytes.count)
        w.u8(0x80)
        w.u8(0x80 | payloadType)
        w.u16(sequenceNumber)
        w.append(packetBytes)
        return w.bytes
    }

    package init(decoding bytes: some Collection<UInt8>) throws {
        let array = Array(bytes)
        let r = ByteReader(array)
        guard try r.u8(1) & 0x7F == Self.payloadType else { throw ATVError.protocolError("not a retransmit response") }
        guard array.count >= 4 + RTPHeader.size else { throw ATVError.protocolError("retransmit response too short") }
        packet = try RAOPAudioPacket(decoding: array[4...])
    }
}

/// Any packet of the control channel.
package enum RAOPControlPacket: Sendable, Hashable {
    case sync(RAOPSyncPacket)
    case retransmitRequest(RAOPRetransmitRequest)
    case retransmitResponse(RAOPRetransmitResponse)

    package var bytes: [UInt8] {
        switch self {
        case .sync(let p): p.bytes
        case .retransmitRequest(let p): p.bytes
        case .retransmitResponse(let p): p.bytes
        }
    }

    package init(decoding bytes: some Collection<UInt8>) throws {
        let array = Array(bytes)
        guard array.count >= 2 else { throw ATVError.protocolError("control packet of \(array.count) bytes") }
        switch array[1] & 0x7F {
        case RAOPSyncPacket.payloadType: self = .sync(try RAOPSyncPacket(decoding: array))
        case RAOPRetransmitRequest.payloadType: self = .retransmitRequest(try RAOPRetransmitRequest(decoding: array))
        case RAOPRetransmitResponse.payloadType: self = .retransmitResponse(try RAOPRetransmitResponse(decoding: array))
        case let t: throw ATVError.protocolError("unknown control packet type 0x\(hex2(t))")
        }
    }
}
