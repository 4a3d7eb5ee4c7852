// HAP pair-setup and pair-verify, accessory (device) side: for our virtual devices and tests.
// Every input yields a reply to send (an Error TLV when the controller fails) and maybe an event.
import ATVCore
import Crypto

/// A controller the accessory has paired with.
package struct HAPPairedController: Sendable, Equatable {
    package var identifier: [UInt8]
    package var publicKey: [UInt8]
    package init(identifier: [UInt8], publicKey: [UInt8]) { self.identifier = identifier; self.publicKey = publicKey }
}

package struct HAPAccessoryReply: Sendable, Equatable {
    package enum Event: Sendable, Equatable {
        /// PIN pair-setup finished (after M5/M6): remember this controller.
        case paired(HAPPairedController)
        /// Transient pair-setup finished (after M3/M4): the SRP session key K.
        case transient(sessionKey: [UInt8])
        /// Pair-verify finished: the controller and the X25519 shared secret.
        case verified(HAPPairedController, sharedSecret: [UInt8])
        /// The controller failed; the reply carries an Error item.
        case failed(ATVError)
    }
    package var message: [UInt8]
    package var event: Event?
}

package struct HAPPairSetupServer: Sendable {
    enum State: Sendable { case awaitingM1, awaitingM3(SRPServer, transient: Bool), awaitingM5(sessionKey: [UInt8]), done }

    let identity: HAPIdentity
    let pin: String
    let transientPIN: String
    let srpSalt: [UInt8]?
    let srpSecret: [UInt8]?
    var state: State = .awaitingM1

    /// `srpSalt` / `srpSecret` fix the otherwise random SRP values (tests only).
    package init(identity: HAPIdentity, pin: String, transientPIN: String = "3939",
                srpSalt: [UInt8]? = nil, srpSecret: [UInt8]? = nil) {
        self.identity = identity
        self.pin = pin
        self.transientPIN = transientPIN
        self.srpSalt = srpSalt
        self.srpSecret = srpSecret
    }

    static func error(_ state: UInt8, _ code: TLV8.ErrorCode, _ err: ATVError) -> HAPAccessoryReply {
        HAPAccessoryReply(message: TLV8([.init(.state, [state]), .init(.error, [code.rawValue])]).encoded(), event: .failed(err))
    }

    package mutating func handle(_ message: [UInt8]) -> HAPAccessoryReply {
        let current = state
        state = .done
        guard let tlv = try? TLV8.decode(message), let seq = tlv.byte(.state) else {
            return Self.error(2, .unknown, .protocolError("pair-setup: malformed TLV from the controller"))
        }
        switch (current, seq) {
        case (.awaitingM1, 1):
            let transient = (tlv.byte(.flags) ?? 0) & TLV8.transientFlag != 0
            let srp = SRPServer(parameters: .hap, username: "Pair-Setup", password: transient ? transientPIN : pin,
                                salt: srpSalt ?? randomBytes(16), secret: srpSecret ?? randomBytes(32))
            state = .awaitingM3(srp, transient: transient)
            return HAPAccessoryReply(message: TLV8([.init(.state, [2]), .init(.salt, srp.salt),
                                                    .init(.publicKey, srp.publicKey)]).encoded(), event: nil)

        case (.awaitingM3(let srp, let transient), 3):
            guard let A = tlv[.publicKey], let proof = tlv[.proof] else {
                return Self.error(4, .unknown, .protocolError("pair-setup M3 lacks public key or proof"))
            }
            do {
                let (m2, K) = try srp.verifyClient(publicKey: A, proof: proof)
                let reply = TLV8([.init(.state, [4]), .init(.proof, m2)]).encoded()
                if transient { return HAPAccessoryReply(message: reply, event: .transient(sessionKey: K)) }
                state = .awaitingM5(sessionKey: K)
                return HAPAccessoryReply(message: reply, event: nil)
            } catch {
                return Self.error(4, .authentication, error)
            }

        case (.awaitingM5(let K), 5):
            do throws(ATVError) {
                guard let sealed = tlv[.encryptedData] else { throw ATVError.protocolError("pair-setup M5 lacks encrypted data") }
                let encKey = HAPKeys.hkdf(salt: "Pair-Setup-Encrypt-Salt", info: "Pair-Setup-Encrypt-Info", secret: K)
                let inner = try TLV8.decode(HAPKeys.open(sealed, key: encKey, label: "PS-Msg05", what: "pair-setup M5"))
                guard let id = inner[.identifier], let ltpk = inner[.publicKey], let sig = inner[.signature] else {
                    throw ATVError.protocolError("pair-setup M5 lacks identifier, public key or signature")
                }
                let x = HAPKeys.hkdf(salt: "Pair-Setup-Controller-Sign-Salt", info: "Pair-Setup-Controller-Sign-Info", secret: K)
                try verifySignature(sig, of: x + id + ltpk, publicKey: ltpk, what: "pair-setup M5")

                let ax = HAPKeys.hkdf(salt: "Pair-Setup-Accessory-Sign-Salt", info: "Pair-Setup-Accessory-Sign-Info", secret: K)
                let ourSig: [UInt8]
                do { ourSig = Array(try identity.signingKey.signature(for: ax + identity.identifier + identity.publicKey)) } catch {
                    throw ATVError.pairingFailed("could not sign M6")
                }
                let inner6 = TLV8([.init(.identifier, identity.identifier), .init(.publicKey, identity.publicKey),
                                   .init(.signature, ourSig)]).encoded()
                let sealed6 = try HAPKeys.seal(inner6, key: encKey, label: "PS-Msg06")
                return HAPAccessoryReply(message: TLV8([.init(.state, [6]), .init(.encryptedData, sealed6)]).encoded(),
                                         event: .paired(HAPPairedController(identifier: id, publicKey: ltpk)))
            } catch {
                return Self.error(6, .authentication, error)
            }

        default:
            return Self.error(seq &+ 1, .unknown, .protocolError("pair-setup: unexpected M\(seq)"))
        }
    }
}

package struct HAPPairVerifyServer: Sendable {
    enum State: Sendable { case awaitingM1, awaitingM3(shared: [UInt8], key: [UInt8], clientPub: [UInt8], ourPub: [UInt8]), done }

    let identity: HAPIdentity
    let controllers: [HAPPairedController]
    let ephemeral: Curve25519.KeyAgreement.PrivateKey
    var state: State = .awaitingM1

    package init(identity: HAPIdentity, controllers: [HAPPairedController],
                ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.identity = identity
        self.controllers = controllers
        self.ephemeral = ephemeral
    }

    package mutating func handle(_ message: [UInt8]) -> HAPAccessoryReply {
        let current = state
        state = .done
        guard let tlv = try? TLV8.decode(message), let seq = tlv.byte(.state) else {
            return HAPPairSetupServer.error(2, .unknown, .protocolError("pair-verify: malformed TLV from the controller"))
        }
        switch (current, seq) {
        case (.awaitingM1, 1):
            guard let clientPub = tlv[.publicKey], let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: clientPub),
                  let secret = try? ephemeral.sharedSecretFromKeyAgreement(with: peer) else {
                return HAPPairSetupServer.error(2, .authentication, .protocolError("pair-verify M1: bad X25519 public key"))
            }
            let shared = secret.withUnsafeBytes { Array($0) }
            let ourPub = Array(ephemeral.publicKey.rawRepresentation)
            let key = HAPKeys.hkdf(salt: "Pair-Verify-Encrypt-Salt", info: "Pair-Verify-Encrypt-Info", secret: shared)
            guard let sig = try? identity.signingKey.signature(for: ourPub + identity.identifier + clientPub),
                  let sealed = try? HAPKeys.seal(TLV8([.init(.identifier, identity.identifier), .init(.signature, Array(sig))]).encoded(),
                                                 key: key, label: "PV-Msg02") else {
                return HAPPairSetupServer.error(2, .unknown, .protocolError("pair-verify: signing failed"))
            }
            state = .awaitingM3(shared: shared, key: key, clientPub: clientPub, ourPub: ourPub)
            return HAPAccessoryReply(message: TLV8([.init(.state, [2]), .init(.publicKey, ourPub),
                                                    .init(.encryptedData, sealed)]).encoded(), event: nil)

        case (.awaitingM3(let shared, let key, let clientPub, let ourPub), 3):
            do throws(ATVError) {
                guard let sealed = tlv[.encryptedData] else { throw ATVError.protocolError("pair-verify M3 lacks encrypted data") }
                let inner = try TLV8.decode(HAPKeys.open(sealed, key: key, label: "PV-Msg03", what: "pair-verify M3"))
                guard let id = inner[.identifier], let sig = inner[.signature] else {
                    throw ATVError.protocolError("pair-verify M3 lacks identifier or signature")
                }
                guard let controller = controllers.first(where: { $0.identifier == id }) else {
                    throw ATVError.authenticationFailed("pair-verify: unknown controller \(String(decoding: id, as: UTF8.self))")
                }
                try verifySignature(sig, of: clientPub + id + ourPub, publicKey: controller.publicKey, what: "pair-verify M3")
                return HAPAccessoryReply(message: TLV8([.init(.state, [4])]).encoded(),
                                         event: .verified(controller, sharedSecret: shared))
            } catch {
                return HAPPairSetupServer.error(4, .authentication, error)
            }

        default:
            return HAPPairSetupServer.error(seq &+ 1, .unknown, .protocolError("pair-verify: unexpected M\(seq)"))
        }
    }
}
