// Accessory (device) side of legacy AirPlay pairing and verification, sans-I/O:
// feed each POST's path and body to `handle`, send back the reply. Used by virtual devices and tests.
import ATVCore
import Crypto

package struct LegacyAccessoryReply: Sendable, Equatable {
    package enum Event: Sendable, Equatable {
        /// /pair-pin-start: show the PIN now.
        case pinRequested
        /// Pair-setup finished: this controller (its Ed25519 public key) is now paired.
        case paired(controllerKey: [UInt8])
        /// A paired controller passed verification.
        case verified(controllerKey: [UInt8])
        /// Something failed (wrong PIN, bad signature, malformed body); the reply is an error status.
        case failed(ATVError)
    }

    package var status: Int
    package var contentType: String?
    package var body: [UInt8]
    package var event: Event?
}

package struct LegacyPairingAccessory: Sendable {
    enum SetupState: Sendable { case idle, step1Done(SRPServer), step2Done([UInt8]) }
    enum VerifyState: Sendable { case idle, step1Done(controllerKey: [UInt8], controllerX: [UInt8], ourX: [UInt8], shared: [UInt8]) }

    package var pin: String
    /// Ed25519 public keys of paired controllers.
    package private(set) var controllers: [[UInt8]]
    let signingKey: Curve25519.Signing.PrivateKey
    var setup = SetupState.idle
    var verify = VerifyState.idle
    /// Status a real device uses for authentication failures is not recorded; 470 ("Connection
    /// Authorization Required") is what AirPlay receivers send for missing authorization.
    package static let authFailureStatus = 470

    package init(seed: [UInt8] = randomBytes(32), pin: String, controllers: [[UInt8]] = []) throws(ATVError) {
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw ATVError.invalidCredentials("an Ed25519 seed must be 32 bytes (got \(seed.count))")
        }
        signingKey = key
        self.pin = pin
        self.controllers = controllers
    }

    package var publicKey: [UInt8] { Array(signingKey.publicKey.rawRepresentation) }

    package mutating func handle(path: String, body: [UInt8]) -> LegacyAccessoryReply {
        do {
            switch path {
            case "/pair-pin-start":
                setup = .idle
                return LegacyAccessoryReply(status: 200, body: [], event: .pinRequested)
            case "/pair-setup-pin":
                return try handleSetup(body)
            case "/pair-verify":
                return try handleVerify(body)
            default:
                return LegacyAccessoryReply(status: 404, body: [], event: nil)
            }
        } catch {
            setup = .idle
            verify = .idle
            let status: Int
            switch error {
            case .authenticationFailed, .pairingFailed: status = Self.authFailureStatus
            default: status = 400
            }
            return LegacyAccessoryReply(status: status, body: [], event: .failed(error))
        }
    }

    static func plist(_ d: [String: PlistValue]) -> LegacyAccessoryReply {
        LegacyAccessoryReply(status: 200, contentType: "application/x-apple-binary-plist", body: BinaryPlist.encode(.dict(d)), event: nil)
    }

    mutating func handleSetup(_ body: [UInt8]) throws(ATVError) -> LegacyAccessoryReply {
        let d = try LegacyCrypto.decodeDict(body, step: "pair-setup-pin")
        if d["method"]?.string == "pin", let user = d["user"]?.string {
            let srp = SRPServer(parameters: .legacyAirPlay, username: user, password: pin)
            setup = .step1Done(srp)
            return Self.plist(["pk": .data(srp.publicKey), "salt": .data(srp.salt)])
        }
        switch setup {
        case .step1Done(let srp):
            guard let A = d["pk"]?.data, let proof = d["proof"]?.data else {
                throw ATVError.protocolError("pair-setup-pin step 2 lacks pk or proof")
            }
            let (m2, K) = try srp.verifyClient(publicKey: A, proof: proof)
            setup = .step2Done(K)
            return Self.plist(["proof": .data(m2)])
        case .step2Done(let K):
            guard let epk = d["epk"]?.data, let tag = d["authTag"]?.data else {
                throw ATVError.protocolError("pair-setup-pin step 3 lacks epk or authTag")
            }
            let (key, iv) = LegacyCrypto.setupKey(K, ivIncrement: 1)
            guard let controllerKey = LegacyCrypto.gcmOpen(epk, tag: tag, key: key, iv: iv), controllerKey.count == 32 else {
                throw ATVError.authenticationFailed("pair-setup-pin step 3: the controller's key does not decrypt")
            }
            let (key2, iv2) = LegacyCrypto.setupKey(K, ivIncrement: 2)
            let (ours, ourTag) = LegacyCrypto.gcmSeal(publicKey, key: key2, iv: iv2)
            setup = .idle
            if !controllers.contains(controllerKey) { controllers.append(controllerKey) }
            var reply = Self.plist(["epk": .data(ours), "authTag": .data(ourTag)])
            reply.event = .paired(controllerKey: controllerKey)
            return reply
        case .idle:
            throw ATVError.protocolError("pair-setup-pin out of order")
        }
    }

    mutating func handleVerify(_ body: [UInt8]) throws(ATVError) -> LegacyAccessoryReply {
        if body.count == 68, body[0] == 1 {
            let cx = Array(body[4 ..< 36]), ced = Array(body[36 ..< 68])
            guard controllers.contains(ced) else {
                throw ATVError.authenticationFailed("pair-verify from a controller that is not paired")
            }
            let eph = Curve25519.KeyAgreement.PrivateKey()
            guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: cx),
                  let secret = try? eph.sharedSecretFromKeyAgreement(with: peer) else {
                throw ATVError.authenticationFailed("pair-verify: bad X25519 key")
            }
            let shared = secret.withUnsafeBytes { Array($0) }
            let ourX = Array(eph.publicKey.rawRepresentation)
            let sig = try signEd25519(signingKey, ourX + cx)
            verify = .step1Done(controllerKey: ced, controllerX: cx, ourX: ourX, shared: shared)
            return LegacyAccessoryReply(status: 200, contentType: "application/octet-stream",
                                        body: ourX + LegacyCrypto.verifyCTR(sig, shared: shared), event: nil)
        }
        guard case .step1Done(let ced, let cx, let ourX, let shared) = verify, body.count == 68, body[0] == 0 else {
            throw ATVError.protocolError("pair-verify: unexpected message (\(body.count) bytes)")
        }
        verify = .idle
        let stream = LegacyCrypto.verifyCTR([UInt8](repeating: 0, count: 64) + body[4...], shared: shared)
        try verifySignature(Array(stream[64...]), of: cx + ourX, publicKey: ced, what: "legacy pair-verify")
        return LegacyAccessoryReply(status: 200, body: [], event: .verified(controllerKey: ced))
    }
}
