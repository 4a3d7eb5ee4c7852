// HAP pair-setup, controller side: M1–M6 with a PIN, or transient M1–M4.
// Sans-I/O: feed the device's TLV bytes to `handle`, send what it returns. Fails closed: the
// device's SRP proof (M4) and Ed25519 signature (M6) are verified; any mismatch is an error and
// the state machine refuses further input. Nothing is returned to store unless M6 verified.
import ATVCore
import Crypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

package struct HAPPairSetupClient: Sendable {
    package enum Output: Sendable, Equatable {
        /// Send these TLV bytes to the device (M3, M5).
        case send([UInt8])
        /// PIN pairing finished (after M6): store these.
        case paired(HAPCredentials)
        /// Transient pairing finished (after M4): the 64-byte SRP session key K, the input of the
        /// channel key derivation (`HAPChannel.keys(sharedSecret:)`). Never stored.
        case transient(sessionKey: [UInt8])
    }

    enum State: Sendable {
        case initial
        case awaitingM2
        case awaitingM4(SRPClientSession)
        case awaitingM6(sessionKey: [UInt8])
        case finished
        case failed
    }

    package let isTransient: Bool
    let pin: String
    let identity: HAPIdentity
    let m5Extras: [TLV8.Item]
    let srp: SRPClient
    var state: State = .initial

    /// `X-Apple-HKP` header value an AirPlay carrier sends: 4 for transient pairing, 3 otherwise.
    package var hkpHeaderValue: Int { isTransient ? 4 : 3 }

    /// PIN pair-setup. `identity` is our long-term key and pairing id (a fresh one by default: a
    /// random Ed25519 key and a lower-case UUID, as pyatv). `m5Extras` are added to the encrypted M5
    /// TLV (Companion puts its OPACK `Name` item there).
    package init(pin: String, identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString.lowercased()),
                m5Extras: [TLV8.Item] = [], srpSecret: [UInt8] = randomBytes(32)) {
        self.init(pin: pin, transient: false, identity: identity, m5Extras: m5Extras, srpSecret: srpSecret)
    }

    /// Transient pair-setup (HomePods): M1 carries Flags=0x10, the PIN is 3939, it stops after M4.
    package static func transient(pin: String = "3939", srpSecret: [UInt8] = randomBytes(32)) -> HAPPairSetupClient {
        HAPPairSetupClient(pin: pin, transient: true, identity: HAPIdentity(identifier: UUID().uuidString.lowercased()),
                           m5Extras: [], srpSecret: srpSecret)
    }

    init(pin: String, transient: Bool, identity: HAPIdentity, m5Extras: [TLV8.Item], srpSecret: [UInt8]) {
        // The handlers in pyatv zero-pad numeric PINs to 4 digits.
        let digits = pin.allSatisfy(\.isASCII) && pin.allSatisfy(\.isNumber)
        self.pin = digits && pin.count < 4 ? String(repeating: "0", count: 4 - pin.count) + pin : pin
        isTransient = transient
        self.identity = identity
        self.m5Extras = m5Extras
        srp = SRPClient(parameters: .hap, username: "Pair-Setup", password: self.pin, secret: srpSecret)
    }

    /// M1.
    package mutating func start() throws(ATVError) -> [UInt8] {
        guard case .initial = state else { throw ATVError.invalidState("pair-setup already started") }
        state = .awaitingM2
        var m1 = TLV8([.init(.method, [TLV8.Method.pairSetup.rawValue]), .init(.state, [1])])
        if isTransient { m1.append(.flags, [TLV8.transientFlag]) }
        return m1.encoded()
    }

    /// Handle M2, M4 or M6 from the device.
    package mutating func handle(_ message: [UInt8]) throws(ATVError) -> Output {
        let current = state
        state = .failed  // until this step succeeds
        switch current {
        case .awaitingM2:
            let tlv = try HAPPairSetupClient.check(message, state: 2)
            guard let salt = tlv[.salt], let B = tlv[.publicKey] else {
                throw ATVError.protocolError("pair-setup M2 lacks salt or public key")
            }
            let session = try srp.respond(salt: salt, serverPublicKey: B)
            state = .awaitingM4(session)
            return .send(TLV8([.init(.state, [3]), .init(.publicKey, session.publicKey), .init(.proof, session.proof)]).encoded())

        case .awaitingM4(let session):
            let tlv = try HAPPairSetupClient.check(message, state: 4)
            guard let proof = tlv[.proof] else { throw ATVError.protocolError("pair-setup M4 lacks the device's proof") }
            let K = try session.verifyServer(proof: proof)
            if isTransient {
                state = .finished
                return .transient(sessionKey: K)
            }
            state = .awaitingM6(sessionKey: K)
            return .send(try m5(K: K))

        case .awaitingM6(let K):
            let tlv = try HAPPairSetupClient.check(message, state: 6)
            guard let sealed = tlv[.encryptedData] else { throw ATVError.protocolError("pair-setup M6 lacks encrypted data") }
            let encKey = HAPKeys.hkdf(salt: "Pair-Setup-Encrypt-Salt", info: "Pair-Setup-Encrypt-Info", secret: K)
            let inner = try TLV8.decode(HAPKeys.open(sealed, key: encKey, label: "PS-Msg06", what: "pair-setup M6"))
            guard let deviceID = inner[.identifier], let ltpk = inner[.publicKey], let sig = inner[.signature] else {
                throw ATVError.protocolError("pair-setup M6 lacks identifier, public key or signature")
            }
            let x = HAPKeys.hkdf(salt: "Pair-Setup-Accessory-Sign-Salt", info: "Pair-Setup-Accessory-Sign-Info", secret: K)
            try verifySignature(sig, of: x + deviceID + ltpk, publicKey: ltpk, what: "pair-setup M6")
            state = .finished
            return .paired(HAPCredentials(deviceLTPK: ltpk, clientLTSK: identity.seed, deviceID: deviceID,
                                          clientID: identity.identifier))

        case .initial:
            throw ATVError.invalidState("pair-setup: call start() before handling a response")
        case .finished:
            state = .finished
            throw ATVError.invalidState("pair-setup is already finished")
        case .failed:
            throw ATVError.invalidState("pair-setup failed earlier; start a new one")
        }
    }

    func m5(K: [UInt8]) throws(ATVError) -> [UInt8] {
        let x = HAPKeys.hkdf(salt: "Pair-Setup-Controller-Sign-Salt", info: "Pair-Setup-Controller-Sign-Info", secret: K)
        let sig: [UInt8]
        do {
            sig = Array(try identity.signingKey.signature(for: x + identity.identifier + identity.publicKey))
        } catch {
            throw ATVError.pairingFailed("could not sign M5: \(error)")
        }
        var inner = TLV8([.init(.identifier, identity.identifier), .init(.publicKey, identity.publicKey),
                          .init(.signature, sig)])
        for e in m5Extras { inner.append(e.tag, e.value) }
        let encKey = HAPKeys.hkdf(salt: "Pair-Setup-Encrypt-Salt", info: "Pair-Setup-Encrypt-Info", secret: K)
        let sealed = try HAPKeys.seal(inner.encoded(), key: encKey, label: "PS-Msg05")
        return TLV8([.init(.state, [5]), .init(.encryptedData, sealed)]).encoded()
    }

    /// Decode a device message, check its state number and error item.
    static func check(_ message: [UInt8], state expected: UInt8, flow: String = "pair-setup") throws(ATVError) -> TLV8 {
        let tlv = try TLV8.decode(message)
        if let e = tlv[.error] {
            let code = e.first.flatMap(TLV8.ErrorCode.init(rawValue:))
            let name = code?.name ?? "error \(e.first.map { String($0) } ?? "?")"
            if code == .authentication {
                throw ATVError.authenticationFailed("\(flow) M\(expected): the device answered \(name)")
            }
            if code == .backOff, let b = tlv[.backOff] {
                let secs = b.reversed().reduce(0) { $0 << 8 | Int($1) }
                throw ATVError.pairingFailed("\(flow) M\(expected): the device answered \(name); retry in \(secs) s")
            }
            throw ATVError.pairingFailed("\(flow) M\(expected): the device answered \(name)")
        }
        guard let s = tlv.byte(.state) else { throw ATVError.protocolError("\(flow): response has no state item (expected M\(expected))") }
        guard s == expected else { throw ATVError.protocolError("\(flow): expected M\(expected), got M\(s)") }
        return tlv
    }
}

func verifySignature(_ signature: [UInt8], of data: [UInt8], publicKey: [UInt8], what: String) throws(ATVError) {
    guard publicKey.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else {
        throw ATVError.authenticationFailed("\(what): the Ed25519 public key is malformed (\(publicKey.count) bytes)")
    }
    guard signature.count == 64, key.isValidSignature(signature, for: data) else {
        throw ATVError.authenticationFailed("\(what): the device's Ed25519 signature is invalid")
    }
}
