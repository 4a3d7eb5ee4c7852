// Legacy AirPlay pairing ("device authentication"), both sides, sans-I/O.
//
// Controller: POST /pair-pin-start (the device shows a PIN), then three POST /pair-setup-pin with
// binary plists: (1) {method: "pin", user: CLIENTID} → {pk: B, salt}; (2) SRP-6a over the RFC 5054
// 2048-bit group with SHA-1 and K = H(S‖00000000)‖H(S‖00000001): {pk: A, proof: M1} → {proof: M2};
// (3) our Ed25519 public key under AES-128-GCM → the device's Ed25519 public key under AES-128-GCM.
// Verification: POST /pair-verify twice with X25519 + Ed25519 + AES-128-CTR.
//
// Fail closed (unlike pyatv): the device's SRP proof M2 is checked; the device's public key from
// step 3 is decrypted and its GCM tag checked; in verification the device's signature over
// (device X25519 ‖ our X25519) is checked whenever its public key is known.
import ATVCore
import COpenSSL
import Crypto

/// An HTTP request a pairing state machine wants sent (the caller adds Host and Content-Length).
public struct PairingHTTPRequest: Sendable, Equatable {
    package var method: String
    package var path: String
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(method: String = "POST", path: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.method == b.method && a.path == b.path && a.body == b.body
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }
}

/// What legacy pairing produces and stores: a 32-byte seed (Ed25519 seed and X25519 private key)
/// and an 8-byte client id. pyatv prints it as `:<seed>::<client id>`.
public struct LegacyCredentials: Sendable, Equatable {
    public var seed: [UInt8]
    public var clientID: [UInt8]

    public init(seed: [UInt8], clientID: [UInt8]) throws(ATVError) {
        guard seed.count == 32 else { throw ATVError.invalidCredentials("a legacy AirPlay seed must be 32 bytes (got \(seed.count))") }
        guard !clientID.isEmpty else { throw ATVError.invalidCredentials("a legacy AirPlay client id must not be empty") }
        self.seed = seed
        self.clientID = clientID
    }

    /// Fresh random credentials (32-byte seed, 8-byte client id), as pyatv's `new_credentials`.
    public static func generate() -> LegacyCredentials {
        // Sizes are right by construction.
        try! LegacyCredentials(seed: randomBytes(32), clientID: randomBytes(8))
    }

    /// The SRP user name and plist `user`: the client id in upper-case hex.
    public var userName: String { Hex.encode(clientID, uppercase: true) }

    var signingKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: seed) }
    var agreementKey: Curve25519.KeyAgreement.PrivateKey { try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: seed) }
    public var publicKey: [UInt8] { Array(signingKey.publicKey.rawRepresentation) }
}

enum LegacyCrypto {
    static let userAgent = "AirPlay/320.20"

    static func sha512(_ label: String, _ data: [UInt8]) -> [UInt8] {
        var h = SHA512()
        h.update(data: Array(label.utf8))
        h.update(data: data)
        return Array(h.finalize())
    }

    /// Pair-setup AES-GCM key and IV; the controller's message uses IV+1, the device's IV+2
    /// (last byte, wrapping — as observed in a recorded device session).
    static func setupKey(_ K: [UInt8], ivIncrement: UInt8) -> (SymmetricKey, [UInt8]) {
        let key = SymmetricKey(data: Array(sha512("Pair-Setup-AES-Key", K).prefix(16)))
        var iv = Array(sha512("Pair-Setup-AES-IV", K).prefix(16))
        iv[15] &+= ivIncrement
        return (key, iv)
    }

    static func gcmSeal(_ plaintext: [UInt8], key: SymmetricKey, iv: [UInt8]) -> (ciphertext: [UInt8], tag: [UInt8]) {
        let box = try! AES.GCM.seal(plaintext, using: key, nonce: try! AES.GCM.Nonce(data: iv))
        return (Array(box.ciphertext), Array(box.tag))
    }

    static func gcmOpen(_ ciphertext: [UInt8], tag: [UInt8], key: SymmetricKey, iv: [UInt8]) -> [UInt8]? {
        guard tag.count == 16, let nonce = try? AES.GCM.Nonce(data: iv),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag),
              let pt = try? AES.GCM.open(box, using: key) else { return nil }
        return Array(pt)
    }

    /// AES-128-CTR keystream applied to `data` from stream position 0 (key and IV from the X25519 secret).
    static func verifyCTR(_ data: [UInt8], shared: [UInt8]) -> [UInt8] {
        let key = SymmetricKey(data: Array(sha512("Pair-Verify-AES-Key", shared).prefix(16)))
        let iv = Array(sha512("Pair-Verify-AES-IV", shared).prefix(16))
        return aes128CTR(data, key: key.withUnsafeBytes { Array($0) }, iv: iv)
    }

    /// AES-128-CTR (`data` XOR the keystream of the 16-byte `key` from the 16-byte counter block
    /// `iv`), through OpenSSL's EVP interface (swift-crypto has it only in _CryptoExtras, whose
    /// dependencies cost more to compile than this whole module).
    static func aes128CTR(_ data: [UInt8], key: [UInt8], iv: [UInt8]) -> [UInt8] {
        precondition(key.count == 16 && iv.count == 16, "AES-128-CTR needs a 16-byte key and IV")
        guard !data.isEmpty else { return [] }
        guard let ctx = EVP_CIPHER_CTX_new() else { fatalError("cannot allocate a cipher context") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: data.count)
        let ok = out.withUnsafeMutableBufferPointer { o -> Bool in
            var written: Int32 = 0
            var final: Int32 = 0
            guard let base = o.baseAddress,
                  EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nil, key, iv) == 1,
                  EVP_EncryptUpdate(ctx, base, &written, data, Int32(data.count)) == 1,
                  EVP_EncryptFinal_ex(ctx, base + Int(written), &final) == 1 else { return false }
            return Int(written + final) == data.count
        }
        precondition(ok, "OpenSSL AES-128-CTR failed")
        return out
    }

    static func plistRequest(_ value: PlistValue) -> PairingHTTPRequest {
        PairingHTTPRequest(path: "/pair-setup-pin", headers: [
            ("User-Agent", userAgent), ("Connection", "keep-alive"),
            ("Content-Type", "application/x-apple-binary-plist"),
        ], body: BinaryPlist.encode(value))
    }

    static func verifyRequest(_ body: [UInt8]) -> PairingHTTPRequest {
        PairingHTTPRequest(path: "/pair-verify", headers: [
            ("User-Agent", userAgent), ("Connection", "keep-alive"), ("Content-Type", "application/octet-stream"),
        ], body: body)
    }

    static func decodeDict(_ body: [UInt8], step: String) throws(ATVError) -> [String: PlistValue] {
        guard case .dict(let d) = try BinaryPlist.decode(body) else {
            throw ATVError.protocolError("legacy pairing \(step): the device's answer is not a dictionary")
        }
        return d
    }

    static func checkStatus(_ status: Int, step: String) throws(ATVError) {
        guard status == 200 else {
            if status == 470 || status == 401 || status == 403 || status == 500 {
                throw ATVError.pairingFailed("the device rejected \(step) (HTTP \(status)); check the PIN and try again")
            }
            throw ATVError.httpError(status: status, "legacy pairing \(step)")
        }
    }
}

/// The result of legacy pair-setup.
package struct LegacyPairingResult: Sendable, Equatable {
    package var credentials: LegacyCredentials
    /// The device's Ed25519 public key (from step 3), if it sent one; verification checks the
    /// device's signature with it.
    package var deviceLTPK: [UInt8]?
}

/// Controller side of legacy pair-setup. Usage: send `pinStartRequest`, read the PIN from the user,
/// then `start()` and feed each HTTP answer (status, body) to `handle` until `.paired`.
package struct LegacyPairSetupClient: Sendable {
    package enum Output: Sendable, Equatable {
        case send(PairingHTTPRequest)
        case paired(LegacyPairingResult)
    }

    enum State: Sendable { case initial, awaitingStep1, awaitingStep2(SRPClientSession), awaitingStep3([UInt8]), done, failed }

    /// POST /pair-pin-start: asks the device to show its PIN.
    package static let pinStartRequest = PairingHTTPRequest(path: "/pair-pin-start", headers: [
        ("User-Agent", LegacyCrypto.userAgent), ("Connection", "keep-alive"),
    ], body: [])

    package let credentials: LegacyCredentials
    let pin: String
    var state = State.initial

    package init(pin: String, credentials: LegacyCredentials = .generate()) {
        self.pin = pin.trimmingWhitespace()
        self.credentials = credentials
    }

    /// Step 1 request.
    package mutating func start() throws(ATVError) -> PairingHTTPRequest {
        guard case .initial = state else { throw ATVError.invalidState("legacy pair-setup already started") }
        state = .awaitingStep1
        return LegacyCrypto.plistRequest(.dict(["method": .string("pin"), "user": .string(credentials.userName)]))
    }

    package mutating func handle(status: Int, body: [UInt8]) throws(ATVError) -> Output {
        let current = state
        state = .failed
        switch current {
        case .awaitingStep1:
            try LegacyCrypto.checkStatus(status, step: "pair-setup step 1")
            let d = try LegacyCrypto.decodeDict(body, step: "step 1")
            guard let B = d["pk"]?.data, let salt = d["salt"]?.data else {
                throw ATVError.protocolError("legacy pairing step 1: the device's answer lacks pk or salt")
            }
            let srp = SRPClient(parameters: .legacyAirPlay, username: credentials.userName, password: pin, secret: credentials.seed)
            let session = try srp.respond(salt: salt, serverPublicKey: B)
            state = .awaitingStep2(session)
            return .send(LegacyCrypto.plistRequest(.dict(["pk": .data(session.publicKey), "proof": .data(session.proof)])))
        case .awaitingStep2(let session):
            try LegacyCrypto.checkStatus(status, step: "the PIN")
            let d = try LegacyCrypto.decodeDict(body, step: "step 2")
            guard let m2 = d["proof"]?.data else {
                throw ATVError.protocolError("legacy pairing step 2: the device's answer lacks its proof")
            }
            let K = try session.verifyServer(proof: m2)
            let (key, iv) = LegacyCrypto.setupKey(K, ivIncrement: 1)
            let (epk, tag) = LegacyCrypto.gcmSeal(credentials.publicKey, key: key, iv: iv)
            state = .awaitingStep3(K)
            return .send(LegacyCrypto.plistRequest(.dict(["epk": .data(epk), "authTag": .data(tag)])))
        case .awaitingStep3(let K):
            try LegacyCrypto.checkStatus(status, step: "pair-setup step 3")
            var deviceKey: [UInt8]? = nil
            if !body.isEmpty {
                let d = try LegacyCrypto.decodeDict(body, step: "step 3")
                guard let epk = d["epk"]?.data, let tag = d["authTag"]?.data else {
                    throw ATVError.protocolError("legacy pairing step 3: the device's answer lacks epk or authTag")
                }
                let (key, iv) = LegacyCrypto.setupKey(K, ivIncrement: 2)
                guard let pk = LegacyCrypto.gcmOpen(epk, tag: tag, key: key, iv: iv), pk.count == 32 else {
                    throw ATVError.authenticationFailed("the device's public key in pair-setup step 3 does not decrypt (tampered exchange)")
                }
                deviceKey = pk
            }
            state = .done
            return .paired(LegacyPairingResult(credentials: credentials, deviceLTPK: deviceKey))
        case .initial, .done, .failed:
            throw ATVError.invalidState("legacy pair-setup: unexpected message")
        }
    }
}

/// Controller side of legacy device verification (/pair-verify twice). No session keys result.
package struct LegacyPairVerifyClient: Sendable {
    package enum Output: Sendable, Equatable {
        case send(PairingHTTPRequest)
        case verified
    }

    enum State: Sendable { case initial, awaitingStep1, awaitingStep2, done, failed }

    package let credentials: LegacyCredentials
    let deviceLTPK: [UInt8]?
    var state = State.initial

    /// With `deviceLTPK` (from pair-setup step 3) the device's signature is verified.
    package init(credentials: LegacyCredentials, deviceLTPK: [UInt8]? = nil) {
        self.credentials = credentials
        self.deviceLTPK = deviceLTPK
    }

    var ourAgreementPublic: [UInt8] { Array(credentials.agreementKey.publicKey.rawRepresentation) }

    package mutating func start() throws(ATVError) -> PairingHTTPRequest {
        guard case .initial = state else { throw ATVError.invalidState("legacy pair-verify already started") }
        state = .awaitingStep1
        return LegacyCrypto.verifyRequest([1, 0, 0, 0] + ourAgreementPublic + credentials.publicKey)
    }

    package mutating func handle(status: Int, body: [UInt8]) throws(ATVError) -> Output {
        let current = state
        state = .failed
        switch current {
        case .awaitingStep1:
            try LegacyCrypto.checkStatus(status, step: "verification step 1")
            guard body.count >= 32 else { throw ATVError.protocolError("legacy pair-verify: answer of \(body.count) bytes, expected ≥ 32") }
            let devicePub = Array(body[0 ..< 32]), data = Array(body[32...])
            guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: devicePub),
                  let secret = try? credentials.agreementKey.sharedSecretFromKeyAgreement(with: peer) else {
                throw ATVError.authenticationFailed("the device's X25519 key is invalid")
            }
            let shared = secret.withUnsafeBytes { Array($0) }
            let ourPub = ourAgreementPublic
            if let ltpk = deviceLTPK {
                let sig = LegacyCrypto.verifyCTR(data, shared: shared)
                guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: ltpk),
                      key.isValidSignature(sig, for: devicePub + ourPub) else {
                    throw ATVError.authenticationFailed("the device's verification signature is wrong (not the device we paired with)")
                }
            }
            let signature = try signEd25519(credentials.signingKey, ourPub + devicePub)
            // The CTR stream first runs over the device's data, then encrypts our signature.
            let stream = LegacyCrypto.verifyCTR(data + signature, shared: shared)
            state = .awaitingStep2
            return .send(LegacyCrypto.verifyRequest([0, 0, 0, 0] + stream[data.count...]))
        case .awaitingStep2:
            try LegacyCrypto.checkStatus(status, step: "verification (are the credentials still paired?)")
            state = .done
            return .verified
        case .initial, .done, .failed:
            throw ATVError.invalidState("legacy pair-verify: unexpected message")
        }
    }
}

func signEd25519(_ key: Curve25519.Signing.PrivateKey, _ message: [UInt8]) throws(ATVError) -> [UInt8] {
    do { return Array(try key.signature(for: message)) } catch {
        throw ATVError.authenticationFailed("Ed25519 signing failed")
    }
}
