// AirPlay 2 real-time audio packet sealing:
//   packet = RTP header (12 B) ‖ ChaCha20-Poly1305(payload) ‖ tag (16 B) ‖ nonce tail (8 B)
// key = the stream's `shk`, nonce = 4 zero bytes ‖ counter (8 B, little-endian) — the tail on the
// wire is that counter — and AAD = RTP header bytes 4..<12 (timestamp ‖ SSRC).
// Sans I/O: a sender owns one `seal` counter; a receiver opens each packet with the tail it carries.
import ATVAuth
import ATVCore
import Crypto

package struct AirPlay2AudioCipher: Sendable {
    package static let headerSize = 12
    package static let tagSize = 16
    package static let nonceTailSize = 8
    /// Bytes an encrypted packet adds to header + payload.
    package static let overhead = tagSize + nonceTailSize

    /// Seals with the key set up once (OpenSSL EVP; byte-identical to swift-crypto's ChaChaPoly).
    private let sealer: ChaChaPolySealer
    /// The counter the next `seal` uses (and writes as the nonce tail).
    package private(set) var counter: UInt64

    package init(key: [UInt8], counter: UInt64 = 0) throws(ATVError) {
        guard key.count == 32 else { throw ATVError.badInput("AirPlay 2 audio key must be 32 bytes, got \(key.count)") }
        sealer = try ChaChaPolySealer(key: key)
        self.counter = counter
    }

    /// Encrypt one packet: `rtpHeader` (12 bytes) stays clear, `payload` is sealed.
    package mutating func seal(rtpHeader: [UInt8], payload: [UInt8]) throws(ATVError) -> [UInt8] {
        guard rtpHeader.count == Self.headerSize else {
            throw ATVError.badInput("RTP header must be 12 bytes, got \(rtpHeader.count)")
        }
        let result = rtpHeader.withUnsafeBytes { h in
            payload.withUnsafeBytes { p in Result { () throws(ATVError) in try seal(header: h, payload: p) } }
        }
        return try result.get()
    }

    /// Encrypt one packet from raw memory, in a single allocation: header (12 bytes) ‖ ciphertext ‖
    /// tag ‖ nonce tail.
    package mutating func seal(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) throws(ATVError) -> [UInt8] {
        guard header.count == Self.headerSize else {
            throw ATVError.badInput("RTP header must be 12 bytes, got \(header.count)")
        }
        let total = Self.headerSize + payload.count + Self.overhead
        var failure: ATVError?
        let out = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.copyMemory(from: header)
            do throws(ATVError) {
                try sealPacket(in: UnsafeMutableRawBufferPointer(rebasing: raw[0 ..< total]), payload: payload)
            } catch {
                failure = error
            }
            count = total
        }
        if let failure { throw failure }
        return out
    }

    /// Seals in place, into the memory the packet is sent from: `packet` holds the RTP header in its
    /// first 12 bytes and has room for exactly `payload` plus `overhead`; the ciphertext, tag and
    /// nonce tail are written after the header (the payload is read once, never copied).
    package mutating func sealPacket(in packet: UnsafeMutableRawBufferPointer,
                                    payload: UnsafeRawBufferPointer) throws(ATVError) {
        guard packet.count == Self.headerSize + payload.count + Self.overhead else {
            throw ATVError.badInput("sealed packet needs \(Self.headerSize + payload.count + Self.overhead) bytes, got \(packet.count)")
        }
        // A counter that wrapped would repeat a nonce under the same key: refuse instead.
        guard self.counter < UInt64.max else {
            throw ATVError.protocolError("audio encryption stopped: the stream's nonce counter is exhausted")
        }
        let counter = self.counter
        self.counter += 1
        let raw = packet
        let tagAt = Self.headerSize + payload.count
        // The tail is the counter, little-endian; the nonce is 4 zero bytes ‖ tail.
        raw.storeBytes(of: counter.littleEndian, toByteOffset: tagAt + Self.tagSize, as: UInt64.self)
        var ok = false
        var nonce: (UInt64, UInt32) = (0, 0)
        withUnsafeMutableBytes(of: &nonce) { n in
            n.storeBytes(of: 0, toByteOffset: 0, as: UInt32.self)
            n.storeBytes(of: counter.littleEndian, toByteOffset: 4, as: UInt64.self)
            ok = sealer.seal(nonce: UnsafeRawBufferPointer(rebasing: n[0 ..< 12]),
                             aad: UnsafeRawBufferPointer(rebasing: raw[4 ..< 12]), plaintext: payload,
                             ciphertext: UnsafeMutableRawBufferPointer(rebasing: raw[Self.headerSize ..< tagAt]),
                             tag: UnsafeMutableRawBufferPointer(rebasing: raw[tagAt ..< tagAt + Self.tagSize]))
        }
        guard ok else { throw ATVError.protocolError("audio encryption failed (the cipher refused to seal a packet)") }
    }

    /// Decrypt a received packet: returns RTP header ‖ plaintext payload. A packet that is too short
    /// or fails authentication (wrong key, tampered bytes) is an error; it never traps.
    package static func open(_ packet: [UInt8], key: [UInt8]) throws(ATVError) -> [UInt8] {
        guard key.count == 32 else { throw ATVError.badInput("AirPlay 2 audio key must be 32 bytes, got \(key.count)") }
        guard packet.count >= headerSize + overhead else {
            throw ATVError.protocolError("encrypted audio packet too short (\(packet.count) bytes)")
        }
        let header = Array(packet[0 ..< headerSize])
        let tail = Array(packet[(packet.count - nonceTailSize)...])
        let tagStart = packet.count - nonceTailSize - tagSize
        do {
            let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: [0, 0, 0, 0] + tail),
                                               ciphertext: packet[headerSize ..< tagStart],
                                               tag: packet[tagStart ..< packet.count - nonceTailSize])
            let plain = try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: header[4 ..< 12])
            return header + plain
        } catch {
            throw ATVError.authenticationFailed("encrypted audio packet failed authentication (wrong key or tampered data)")
        }
    }

    static func tail(_ counter: UInt64) -> [UInt8] {
        (0 ..< 8).map { UInt8(truncatingIfNeeded: counter >> (8 * UInt64($0))) }
    }
}
