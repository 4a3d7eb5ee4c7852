// Buffered AirPlay 2 audio (stream type 103), the data connection
// (docs/PTP-AND-BUFFERED-AUDIO.md §4.1-§4.4): each packet on the TCP connection is a 2-byte
// big-endian length that counts itself, then an RTP header (0x80, 23-bit sequence number in bytes
// 1..3, timestamp, SSRC = format code) and the payload sealed by `AirPlay2AudioCipher` (ciphertext ‖
// tag ‖ 8-byte nonce tail; AAD = header bytes 4..11). Sans-I/O: frames out, and an incremental
// deframer that never traps on garbage (fuzzed: Fuzz/Targets/Buffered.swift).
import ATVCore

/// One type-103 packet: header fields and the plaintext payload (one codec frame: a raw AAC access
/// unit or one ALAC frame).
package struct BufferedAudioPacket: Sendable, Equatable {
    package static let headerSize = 12
    /// Length prefix of each frame on the connection.
    package static let prefixSize = 2
    /// shairport-sync reads each packet into a 16 KiB buffer (docs/PTP-AND-BUFFERED-AUDIO.md §4.1):
    /// our frames stay within it.
    package static let maximumFrameSize = 16_384
    /// Sequence numbers are 23 bits (shairport-sync masks the top bit of byte 1).
    package static let sequenceMask: UInt32 = 0x7F_FFFF
    /// The smallest sealed packet: header, empty ciphertext, tag and nonce tail.
    package static let minimumSealedSize = headerSize + AirPlay2AudioCipher.overhead

    /// 23-bit sequence number.
    package var sequenceNumber: UInt32
    /// RTP timestamp: the first frame of the payload, at the format's rate.
    package var timestamp: UInt32
    /// The SSRC field (a `BufferedAudioFormat` code for every receiver we send to).
    package var ssrc: UInt32
    package var payload: [UInt8]

    package init(sequenceNumber: UInt32, timestamp: UInt32, ssrc: UInt32, payload: [UInt8]) {
        self.sequenceNumber = sequenceNumber & Self.sequenceMask
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
    }

    package init(sequenceNumber: UInt32, timestamp: UInt32, format: BufferedAudioFormat, payload: [UInt8]) {
        self.init(sequenceNumber: sequenceNumber, timestamp: timestamp, ssrc: format.ssrc, payload: payload)
    }

    /// The format the SSRC names, nil for an unknown code.
    package var format: BufferedAudioFormat? { BufferedAudioFormat(ssrc: ssrc) }

    /// The 12-byte header: `80 | seq (23 bits, 3 bytes) | timestamp | ssrc`.
    package var header: [UInt8] {
        let s = sequenceNumber & Self.sequenceMask
        return [0x80, UInt8(s >> 16), UInt8(truncatingIfNeeded: s >> 8), UInt8(truncatingIfNeeded: s),
                UInt8(timestamp >> 24), UInt8(truncatingIfNeeded: timestamp >> 16),
                UInt8(truncatingIfNeeded: timestamp >> 8), UInt8(truncatingIfNeeded: timestamp),
                UInt8(ssrc >> 24), UInt8(truncatingIfNeeded: ssrc >> 16),
                UInt8(truncatingIfNeeded: ssrc >> 8), UInt8(truncatingIfNeeded: ssrc)]
    }

    /// The frame written to the data connection: length prefix ‖ header ‖ sealed payload. The
    /// cipher's counter is the nonce (a fresh one per packet; it refuses to wrap). A frame larger
    /// than `maximumFrameSize` is refused.
    package func frame(sealingWith cipher: inout AirPlay2AudioCipher) throws(ATVError) -> [UInt8] {
        let total = Self.prefixSize + Self.headerSize + payload.count + AirPlay2AudioCipher.overhead
        guard total <= Self.maximumFrameSize else {
            throw ATVError.badInput("buffered audio packet of \(total) bytes exceeds the \(Self.maximumFrameSize)-byte limit")
        }
        let head = [UInt8(total >> 8), UInt8(truncatingIfNeeded: total)] + header
        var failure: ATVError?
        let out = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            head.withUnsafeBytes { raw.copyMemory(from: $0) }
            payload.withUnsafeBytes { p in
                do throws(ATVError) {
                    try cipher.sealPacket(in: UnsafeMutableRawBufferPointer(rebasing: raw[Self.prefixSize ..< total]), payload: p)
                } catch {
                    failure = error
                }
            }
            count = total
        }
        if let failure { throw failure }
        return out
    }

    /// Opens one packet as the deframer returns it (header ‖ ciphertext ‖ tag ‖ nonce tail). A
    /// packet that is too short or fails authentication is an error (the session must end).
    package init(opening packet: [UInt8], key: [UInt8]) throws(ATVError) {
        let plain = try AirPlay2AudioCipher.open(packet, key: key)
        let h = try BufferedAudioHeader(decoding: plain)
        self.init(sequenceNumber: h.sequenceNumber, timestamp: h.timestamp, ssrc: h.ssrc,
                  payload: Array(plain[Self.headerSize...]))
    }
}

/// The clear header of a type-103 packet, read without the key (sequence from bytes 1..3 with the
/// top bit masked, as shairport-sync reads it).
package struct BufferedAudioHeader: Sendable, Equatable {
    package var sequenceNumber: UInt32
    package var timestamp: UInt32
    package var ssrc: UInt32

    package init(decoding bytes: [UInt8]) throws(ATVError) {
        guard bytes.count >= BufferedAudioPacket.headerSize else {
            throw ATVError.protocolError("buffered audio packet too short for an RTP header (\(bytes.count) bytes)")
        }
        func be32(_ i: Int) -> UInt32 {
            UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
        }
        sequenceNumber = be32(0) & BufferedAudioPacket.sequenceMask
        timestamp = be32(4)
        ssrc = be32(8)
    }
}

/// Splits the bytes of a type-103 data connection into packets (the receiver's side, and tests).
/// Feed whatever arrived with `append`, then call `next()` until it returns nil. A length below the
/// smallest sealed packet or above `maximumFrameSize` is a protocol error; the connection cannot be
/// resynchronised after one, so the deframer stays failed. Memory is bounded by one frame plus
/// the bytes appended but not yet taken.
package struct BufferedAudioDeframer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: ATVError?
    package let maximumFrameSize: Int

    package init(maximumFrameSize: Int = BufferedAudioPacket.maximumFrameSize) {
        self.maximumFrameSize = min(max(maximumFrameSize, BufferedAudioPacket.prefixSize + BufferedAudioPacket.minimumSealedSize), 65_535)
    }

    /// Bytes received but not yet returned as a packet.
    package var pendingByteCount: Int { buffer.count - start }

    package mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole packet (without its length prefix), nil when more bytes are needed.
    package mutating func next() throws(ATVError) -> [UInt8]? {
        if let failure { throw failure }
        guard buffer.count - start >= BufferedAudioPacket.prefixSize else { return nil }
        let length = Int(buffer[start]) << 8 | Int(buffer[start + 1])
        guard length >= BufferedAudioPacket.prefixSize + BufferedAudioPacket.minimumSealedSize, length <= maximumFrameSize else {
            let error = ATVError.protocolError("buffered audio frame length \(length) is outside \(BufferedAudioPacket.prefixSize + BufferedAudioPacket.minimumSealedSize)...\(maximumFrameSize)")
            failure = error
            throw error
        }
        guard buffer.count - start >= length else { return nil }
        let packet = Array(buffer[(start + BufferedAudioPacket.prefixSize) ..< (start + length)])
        start += length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return packet
    }
}
