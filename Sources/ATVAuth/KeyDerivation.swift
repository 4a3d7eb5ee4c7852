// HKDF-SHA512 key derivation (the salts and info strings per channel below) and the one-shot
// ChaCha20-Poly1305 used inside pair-setup / pair-verify messages (nonce = 4 zero bytes ‖ 8-byte
// ASCII label such as "PS-Msg05").
import ATVCore
import Crypto

package enum HAPKeys {
    /// HKDF-SHA512(salt, info, secret) → `length` bytes (32 by default).
    package static func hkdf(salt: String, info: String, secret: [UInt8], length: Int = 32) -> [UInt8] {
        hkdf(salt: Array(salt.utf8), info: Array(info.utf8), secret: secret, length: length)
    }

    package static func hkdf(salt: [UInt8], info: [UInt8], secret: [UInt8], length: Int = 32) -> [UInt8] {
        let key = HKDF<SHA512>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret), salt: salt, info: info,
                                         outputByteCount: length)
        return key.withUnsafeBytes { Array($0) }
    }

    /// Seal with a label nonce ("PS-Msg05", "PV-Msg03", …): returns ciphertext ‖ 16-byte tag.
    static func seal(_ plaintext: [UInt8], key: [UInt8], label: String) throws(ATVError) -> [UInt8] {
        do {
            let box = try ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: labelNonce(label))
            return Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw ATVError.protocolError("encryption failed: \(error)")
        }
    }

    /// Open ciphertext ‖ tag sealed with a label nonce; a bad tag is an authentication failure.
    static func open(_ sealed: [UInt8], key: [UInt8], label: String, what: String) throws(ATVError) -> [UInt8] {
        guard sealed.count >= 16 else { throw ATVError.protocolError("\(what): encrypted data too short (\(sealed.count) bytes)") }
        do {
            let box = try ChaChaPoly.SealedBox(nonce: labelNonce(label), ciphertext: sealed.dropLast(16), tag: sealed.suffix(16))
            return Array(try ChaChaPoly.open(box, using: SymmetricKey(data: key)))
        } catch {
            throw ATVError.authenticationFailed("\(what): decryption failed (wrong key or tampered data)")
        }
    }

    static func labelNonce(_ label: String) throws -> ChaChaPoly.Nonce {
        let l = Array(label.utf8)
        precondition(l.count == 8, "nonce labels are 8 ASCII bytes")
        return try ChaChaPoly.Nonce(data: [0, 0, 0, 0] + l)
    }
}

/// A pair of 32-byte keys for one encrypted channel: `output` encrypts what we send,
/// `input` decrypts what we receive.
public struct ChannelKeys: Sendable, Equatable {
    package var output: [UInt8]
    package var input: [UInt8]
    package init(output: [UInt8], input: [UInt8]) { self.output = output; self.input = input }
    /// The same channel seen from the other end.
    package var swapped: ChannelKeys { ChannelKeys(output: input, input: output) }
}

/// Channels whose keys are derived from a pair-verify shared secret (or, for transient pairing,
/// from the SRP session key K).
package enum HAPChannel: Sendable, Hashable {
    case mrp
    case companion
    /// AirPlay 2 RTSP/HTTP control connection.
    case airPlayControl
    /// AirPlay 2 event channel (the device connects to us; pyatv's labels are swapped on purpose).
    case airPlayEvents
    /// AirPlay 2 data stream (MRP tunnel); `seed` is the stream's seed as sent in SETUP.
    case airPlayDataStream(seed: UInt64)

    /// (salt, write info, read info) from the controller's point of view.
    package var labels: (salt: String, write: String, read: String) {
        switch self {
        case .mrp: ("MediaRemote-Salt", "MediaRemote-Write-Encryption-Key", "MediaRemote-Read-Encryption-Key")
        case .companion: ("", "ClientEncrypt-main", "ServerEncrypt-main")
        case .airPlayControl: ("Control-Salt", "Control-Write-Encryption-Key", "Control-Read-Encryption-Key")
        case .airPlayEvents: ("Events-Salt", "Events-Read-Encryption-Key", "Events-Write-Encryption-Key")
        case .airPlayDataStream(let seed):
            ("DataStream-Salt\(seed)", "DataStream-Output-Encryption-Key", "DataStream-Input-Encryption-Key")
        }
    }

    package enum Role: Sendable { case controller, accessory }

    /// Keys for this channel. The accessory's output is the controller's input and vice versa.
    package func keys(sharedSecret: [UInt8], role: Role = .controller) -> ChannelKeys {
        let l = labels
        let k = ChannelKeys(output: HAPKeys.hkdf(salt: l.salt, info: l.write, secret: sharedSecret),
                            input: HAPKeys.hkdf(salt: l.salt, info: l.read, secret: sharedSecret))
        return role == .controller ? k : k.swapped
    }

    /// The AirPlay 2 audio key `shk` as pyatv makes it: HKDF("Events-Salt", "Events-Write-Encryption-Key"), 32 bytes.
    package static func airPlayAudioKey(sharedSecret: [UInt8]) -> [UInt8] {
        HAPKeys.hkdf(salt: "Events-Salt", info: "Events-Write-Encryption-Key", secret: sharedSecret)
    }
}
