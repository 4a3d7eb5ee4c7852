// ChaCha20-Poly1305 session framing (nonce layouts below). Per-direction counters that can never
// repeat: the last nonce value is used once, then the cipher refuses. A frame that fails
// authentication (tampered, replayed, reordered, wrong key) poisons the decoder for good.
import ATVCore
import Crypto

/// How a 64-bit message counter becomes a 12-byte nonce.
package enum NonceLayout: Sendable {
    /// 4 zero bytes ‖ counter (8 bytes LE): HAP sessions (AirPlay 2), MRP.
    case hap
    /// counter as a 12-byte little-endian number, i.e. counter (8 bytes LE) ‖ 4 zero bytes: Companion.
    case companion

    func nonce(_ counter: UInt64) -> [UInt8] {
        var n = [UInt8](repeating: 0, count: 12)
        let base = self == .hap ? 4 : 0
        for i in 0 ..< 8 { n[base + i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        return n
    }
}

/// One direction of an encrypted channel: a key and a counter.
package struct ChaChaCounterCipher: Sendable {
    let key: SymmetricKey
    package let layout: NonceLayout
    /// The counter the next message will use.
    package private(set) var counter: UInt64
    var exhausted = false
    var poisoned = false

    package init(key: [UInt8], layout: NonceLayout, counter: UInt64 = 0) {
        self.key = SymmetricKey(data: key)
        self.layout = layout
        self.counter = counter
    }

    mutating func nextNonce() throws(ATVError) -> ChaChaPoly.Nonce {
        guard !exhausted else {
            throw ATVError.invalidState("encrypted channel used up its 2^64 nonces; reconnect")
        }
        let n = layout.nonce(counter)
        if counter == .max { exhausted = true } else { counter += 1 }
        do { return try ChaChaPoly.Nonce(data: n) } catch { throw ATVError.protocolError("bad nonce") }
    }

    /// Encrypt: ciphertext ‖ 16-byte tag.
    package mutating func seal(_ plaintext: [UInt8], aad: [UInt8] = []) throws(ATVError) -> [UInt8] {
        let nonce = try nextNonce()
        do {
            let box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
            return Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw ATVError.protocolError("encryption failed: \(error)")
        }
    }

    /// Decrypt ciphertext ‖ tag with the next counter value.
    package mutating func open(_ sealed: [UInt8], aad: [UInt8] = []) throws(ATVError) -> [UInt8] {
        guard !poisoned else { throw ATVError.connectionLost("encrypted channel already failed authentication; reconnect") }
        guard sealed.count >= 16 else {
            poisoned = true
            throw ATVError.protocolError("encrypted frame shorter than its 16-byte tag")
        }
        let at = counter
        let nonce = try nextNonce()
        do {
            let box = try ChaChaPoly.SealedBox(nonce: nonce, ciphertext: sealed.dropLast(16), tag: sealed.suffix(16))
            return Array(try ChaChaPoly.open(box, using: key, authenticating: aad))
        } catch {
            poisoned = true
            throw ATVError.authenticationFailed("encrypted frame #\(at) failed authentication (tampered, replayed, out of order or wrong key); the connection must be closed")
        }
    }
}

// MARK: - HAP framing: len(2, LE) ‖ ciphertext ‖ tag(16), ≤ 1024 plaintext bytes per block, AAD = len.

package struct HAPFrameEncoder: Sendable {
    package static let maxBlock = 1024
    var cipher: ChaChaCounterCipher
    package init(key: [UInt8], counter: UInt64 = 0) { cipher = ChaChaCounterCipher(key: key, layout: .hap, counter: counter) }

    /// Encrypt `plaintext` as one or more blocks (nothing for empty input).
    package mutating func encode(_ plaintext: [UInt8]) throws(ATVError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + (plaintext.count / Self.maxBlock + 1) * 18)
        var i = 0
        while i < plaintext.count {
            let n = min(Self.maxBlock, plaintext.count - i)
            let len: [UInt8] = [UInt8(n & 0xFF), UInt8(n >> 8)]
            out += len
            out += try cipher.seal(Array(plaintext[i ..< i + n]), aad: len)
            i += n
        }
        return out
    }
}

/// Incremental: feed bytes as they arrive, get the plaintext of every complete block.
package struct HAPFrameDecoder: Sendable {
    var cipher: ChaChaCounterCipher
    var buffer: [UInt8] = []
    package init(key: [UInt8], counter: UInt64 = 0) { cipher = ChaChaCounterCipher(key: key, layout: .hap, counter: counter) }

    /// Bytes received but not yet a complete block.
    package var bufferedByteCount: Int { buffer.count }

    package mutating func decode(_ bytes: [UInt8]) throws(ATVError) -> [UInt8] {
        buffer += bytes
        var out: [UInt8] = []
        var start = 0
        while buffer.count - start >= 2 {
            let n = Int(buffer[start]) | Int(buffer[start + 1]) << 8
            guard n <= HAPFrameEncoder.maxBlock else {
                cipher.poisoned = true
                throw ATVError.protocolError("encrypted block announces \(n) bytes (limit 1024)")
            }
            guard buffer.count - start >= 2 + n + 16 else { break }
            let aad = Array(buffer[start ..< start + 2])
            out += try cipher.open(Array(buffer[start + 2 ..< start + 2 + n + 16]), aad: aad)
            start += 2 + n + 16
        }
        buffer.removeFirst(start)
        return out
    }
}

/// Both directions of a HAP-framed channel.
package struct HAPSession: Sendable {
    package var encoder: HAPFrameEncoder
    package var decoder: HAPFrameDecoder
    package init(keys: ChannelKeys) {
        encoder = HAPFrameEncoder(key: keys.output)
        decoder = HAPFrameDecoder(key: keys.input)
    }
    package mutating func encrypt(_ plaintext: [UInt8]) throws(ATVError) -> [UInt8] { try encoder.encode(plaintext) }
    package mutating func decrypt(_ bytes: [UInt8]) throws(ATVError) -> [UInt8] { try decoder.decode(bytes) }
}

// MARK: - Companion framing: type(1) ‖ len(3, BE, includes the tag) ‖ ciphertext ‖ tag, AAD = the
// 4-byte header; zero-length payloads are sent unencrypted; nonce = 12-byte LE counter.

package struct CompanionFrame: Sendable, Equatable {
    package var type: UInt8
    package var payload: [UInt8]
    package init(type: UInt8, payload: [UInt8]) { self.type = type; self.payload = payload }
}

package struct CompanionFrameEncoder: Sendable {
    var cipher: ChaChaCounterCipher?
    /// `key` nil: plaintext framing (before pair-verify).
    package init(key: [UInt8]?, counter: UInt64 = 0) {
        cipher = key.map { ChaChaCounterCipher(key: $0, layout: .companion, counter: counter) }
    }
    package mutating func enableEncryption(key: [UInt8]) { cipher = ChaChaCounterCipher(key: key, layout: .companion) }

    package mutating func encode(_ frame: CompanionFrame) throws(ATVError) -> [UInt8] {
        let encrypted = cipher != nil && !frame.payload.isEmpty
        let len = frame.payload.count + (encrypted ? 16 : 0)
        guard len <= 0xFF_FFFF else { throw ATVError.invalidValue("Companion frame of \(frame.payload.count) bytes is too large") }
        let header: [UInt8] = [frame.type, UInt8(len >> 16), UInt8((len >> 8) & 0xFF), UInt8(len & 0xFF)]
        guard encrypted, var c = cipher else { return header + frame.payload }
        defer { cipher = c }
        return header + (try c.seal(frame.payload, aad: header))
    }
}

package struct CompanionFrameDecoder: Sendable {
    var cipher: ChaChaCounterCipher?
    var buffer: [UInt8] = []
    package init(key: [UInt8]?, counter: UInt64 = 0) {
        cipher = key.map { ChaChaCounterCipher(key: $0, layout: .companion, counter: counter) }
    }
    package mutating func enableEncryption(key: [UInt8]) { cipher = ChaChaCounterCipher(key: key, layout: .companion) }
    package var bufferedByteCount: Int { buffer.count }
    /// The type byte of the frame being received, once its first byte arrived.
    package var pendingFrameType: UInt8? { buffer.first }

    package mutating func decode(_ bytes: [UInt8]) throws(ATVError) -> [CompanionFrame] {
        buffer += bytes
        var frames: [CompanionFrame] = []
        var start = 0
        while buffer.count - start >= 4 {
            let len = Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
            guard buffer.count - start >= 4 + len else { break }
            let header = Array(buffer[start ..< start + 4])
            var payload = Array(buffer[start + 4 ..< start + 4 + len])
            if len > 0, var c = cipher {
                defer { cipher = c }
                payload = try c.open(payload, aad: header)
            }
            frames.append(CompanionFrame(type: header[0], payload: payload))
            start += 4 + len
        }
        buffer.removeFirst(start)
        return frames
    }
}
