// HAP pair-verify, controller side (M1–M4), from stored credentials. Fails closed:
// the accessory's identifier must match and its Ed25519 signature in M2 must verify against the
// stored LTPK; an Error item in M4 is an error.
import ATVCore
import Crypto

package struct HAPPairVerifyClient: Sendable {
    package enum Output: Sendable, Equatable {
        /// Send these TLV bytes (M3).
        case send([UInt8])
        /// Verified (after M4): the X25519 shared secret, input of `HAPChannel.keys(sharedSecret:)`.
        case verified(sharedSecret: [UInt8])
    }

    enum State: Sendable { case initial, awaitingM2, awaitingM4(shared: [UInt8]), finished, failed }

    let credentials: HAPCredentials
    let ephemeral: Curve25519.KeyAgreement.PrivateKey
    var state: State = .initial

    package init(credentials: HAPCredentials, ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.credentials = credentials
        self.ephemeral = ephemeral
    }

    /// M1.
    package mutating func start() throws(ATVError) -> [UInt8] {
        guard case .initial = state else { throw ATVError.invalidState("pair-verify already started") }
        state = .awaitingM2
        return TLV8([.init(.state, [1]), .init(.publicKey, Array(ephemeral.publicKey.rawRepresentation))]).encoded()
    }

    package mutating func handle(_ message: [UInt8]) throws(ATVError) -> Output {
        let current = state
        state = .failed
        switch current {
        case .awaitingM2:
            let tlv = try HAPPairSetupClient.check(message, state: 2, flow: "pair-verify")
            guard let devicePub = tlv[.publicKey], let sealed = tlv[.encryptedData] else {
                throw ATVError.protocolError("pair-verify M2 lacks public key or encrypted data")
            }
            guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: devicePub),
                  let secret = try? ephemeral.sharedSecretFromKeyAgreement(with: peer) else {
                throw ATVError.authenticationFailed("pair-verify M2: the device's X25519 key is malformed")
            }
            let shared = secret.withUnsafeBytes { Array($0) }
            let key = HAPKeys.hkdf(salt: "Pair-Verify-Encrypt-Salt", info: "Pair-Verify-Encrypt-Info", secret: shared)
            let inner = try TLV8.decode(HAPKeys.open(sealed, key: key, label: "PV-Msg02", what: "pair-verify M2"))
            guard let id = inner[.identifier], let sig = inner[.signature] else {
                throw ATVError.protocolError("pair-verify M2 lacks identifier or signature")
            }
            guard id == credentials.deviceID else {
                throw ATVError.authenticationFailed("pair-verify: the device identifies as \(String(decoding: id, as: UTF8.self)), not the paired \(String(decoding: credentials.deviceID, as: UTF8.self)); pair again")
            }
            let ourPub = Array(ephemeral.publicKey.rawRepresentation)
            try verifySignature(sig, of: devicePub + id + ourPub, publicKey: credentials.deviceLTPK, what: "pair-verify M2")

            let signer: Curve25519.Signing.PrivateKey
            do { signer = try Curve25519.Signing.PrivateKey(rawRepresentation: credentials.clientLTSK) } catch {
                throw ATVError.invalidCredentials("our Ed25519 seed must be 32 bytes")
            }
            let ourSig: [UInt8]
            do { ourSig = Array(try signer.signature(for: ourPub + credentials.clientID + devicePub)) } catch {
                throw ATVError.authenticationFailed("could not sign pair-verify M3: \(error)")
            }
            let inner3 = TLV8([.init(.identifier, credentials.clientID), .init(.signature, ourSig)]).encoded()
            let sealed3 = try HAPKeys.seal(inner3, key: key, label: "PV-Msg03")
            state = .awaitingM4(shared: shared)
            return .send(TLV8([.init(.state, [3]), .init(.encryptedData, sealed3)]).encoded())

        case .awaitingM4(let shared):
            _ = try HAPPairSetupClient.check(message, state: 4, flow: "pair-verify")
            state = .finished
            return .verified(sharedSecret: shared)

        case .initial:
            throw ATVError.invalidState("pair-verify: call start() before handling a response")
        case .finished:
            state = .finished
            throw ATVError.invalidState("pair-verify is already finished")
        case .failed:
            throw ATVError.invalidState("pair-verify failed earlier; start a new one")
        }
    }
}
