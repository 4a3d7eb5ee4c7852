// SRP-6a (RFC 5054 / RFC 2945), parametric in group, hash and session-key derivation.
//
// Conventions are those of srptools 1.0.1, which pyatv and its fake devices use, so we are
// bit-compatible with them:
//   k = H(N ‖ PAD(g))            x = H(salt ‖ H(I ‖ ":" ‖ P))        u = H(PAD(A) ‖ PAD(B))
//   client S = (B − k·gˣ)^(a + u·x) mod N,  server S = (A·vᵘ)^b mod N
//   K = H(S) (or, for legacy AirPlay, H(S ‖ 00000000) ‖ H(S ‖ 00000001))
//   M1 = H(H(N) xor H(g) ‖ H(I) ‖ salt ‖ A ‖ B ‖ K),  M2 = H(A ‖ M1 ‖ K)
// Integers are hashed in minimal big-endian form (leading zero bytes dropped), except inside k
// and u where they are padded to the size of N; the salt is used as raw bytes.
import ATVCore
import Crypto

package enum SRPHash: Sendable {
    case sha1, sha512

    package var digestLength: Int { self == .sha1 ? 20 : 64 }

    func hash(_ parts: [UInt8]...) -> [UInt8] { hash(parts) }

    func hash(_ parts: [[UInt8]]) -> [UInt8] {
        switch self {
        case .sha1:
            var h = Insecure.SHA1()
            for p in parts { h.update(data: p) }
            return Array(h.finalize())
        case .sha512:
            var h = SHA512()
            for p in parts { h.update(data: p) }
            return Array(h.finalize())
        }
    }
}

/// How the session key K is made from the premaster secret S.
package enum SRPSessionKeyDerivation: Sendable {
    /// K = H(S) (HAP, RFC 2945).
    case hash
    /// K = H(S ‖ 00000000) ‖ H(S ‖ 00000001) (legacy AirPlay device authentication, 40 bytes with SHA-1).
    case appleLegacy
}

/// Group, hash and session-key derivation.
package struct SRPParameters: Sendable {
    package var modulus: [UInt8]   // N, big-endian
    package var generator: [UInt8] // g, big-endian
    package var hash: SRPHash
    package var sessionKey: SRPSessionKeyDerivation

    package init(modulus: [UInt8], generator: [UInt8], hash: SRPHash, sessionKey: SRPSessionKeyDerivation = .hash) {
        self.modulus = stripLeadingZeros(modulus)
        self.generator = stripLeadingZeros(generator)
        self.hash = hash
        self.sessionKey = sessionKey
    }

    package var modulusLength: Int { modulus.count }

    /// RFC 5054 3072-bit group, g = 5, SHA-512: HAP pair-setup.
    package static let hap = SRPParameters(modulus: SRPGroups.n3072, generator: [5], hash: .sha512)
    /// RFC 5054 2048-bit group, g = 2, SHA-1, K = H(S‖0)‖H(S‖1): legacy AirPlay pairing.
    package static let legacyAirPlay = SRPParameters(modulus: SRPGroups.n2048, generator: [2], hash: .sha1,
                                                    sessionKey: .appleLegacy)
    /// RFC 5054 1024-bit group, g = 2, SHA-1: the group of the RFC 5054 Appendix B test vectors.
    package static let rfc5054Test1024 = SRPParameters(modulus: SRPGroups.n1024, generator: [2], hash: .sha1)
}

enum SRPGroups {
    static let n1024 = Hex.decode("""
        EEAF0AB9ADB38DD69C33F80AFA8FC5E86072618775FF3C0B9EA2314C9C256576D674DF7496EA81D3383B4813D692C6E0
        E0D5D8E250B98BE48E495C1D6089DAD15DC7D7B46154D6B6CE8EF4AD69B15D4982559B297BCF1885C529F566660E57EC
        68EDBC3C05726CC02FD4CBF4976EAA9AFD5138FE8376435B9FC61D2FC0EB06E3
        """)!
    static let n2048 = Hex.decode("""
        AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050A37329CBB4A099ED8193E0757767A13D
        D52312AB4B03310DCD7F48A9DA04FD50E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B8
        55F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773BCA97B43A23FB801676BD207A436C6481
        F1D2B9078717461A5B9D32E688F87748544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6
        AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB694B5C803D89F7AE435DE236D525F5475
        9B65E372FCD68EF20FA7111F9E4AFF73
        """)!
    static let n3072 = Hex.decode("""
        FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD
        EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED
        EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F
        83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B
        E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510
        15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7
        ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C
        BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF
        """)!
}

/// The SRP formulas. Internal so tests can check each intermediate against RFC 5054 Appendix B.
struct SRPMath {
    let p: SRPParameters
    let ctx = BigNumContext()
    let N: BigNum
    let g: BigNum

    init(_ p: SRPParameters) {
        self.p = p
        N = BigNum(p.modulus)
        g = BigNum(p.generator)
    }

    func pad(_ b: [UInt8]) -> [UInt8] {
        b.count >= p.modulusLength ? b : [UInt8](repeating: 0, count: p.modulusLength - b.count) + b
    }

    var k: [UInt8] { p.hash.hash(p.modulus, pad(p.generator)) }

    func x(salt: [UInt8], username: String, password: String) -> [UInt8] {
        p.hash.hash(salt, p.hash.hash(Array("\(username):\(password)".utf8)))
    }

    func verifier(x: [UInt8]) -> BigNum { ctx.modExp(g, BigNum(x), N, secret: true) }

    func u(A: [UInt8], B: [UInt8]) -> [UInt8] { p.hash.hash(pad(A), pad(B)) }

    /// A = g^a mod N (minimal encoding).
    func clientPublic(a: [UInt8]) -> [UInt8] { ctx.modExp(g, BigNum(a), N, secret: true).bytes }

    /// B = (k·v + g^b) mod N.
    func serverPublic(b: [UInt8], verifier v: BigNum) -> [UInt8] {
        let kv = ctx.modMul(BigNum(k), v, N)
        return ctx.modAdd(kv, ctx.modExp(g, BigNum(b), N, secret: true), N).bytes
    }

    /// S = (B − k·g^x)^(a + u·x) mod N.
    func clientPremaster(a: [UInt8], B: [UInt8], x: [UInt8], u: [UInt8]) -> [UInt8] {
        let xb = BigNum(x)
        let kgx = ctx.modMul(BigNum(k), ctx.modExp(g, xb, N, secret: true), N)
        let base = ctx.modSub(ctx.mod(BigNum(B), N), kgx, N)
        let exp = ctx.add(BigNum(a), ctx.mul(BigNum(u), xb))
        return ctx.modExp(base, exp, N, secret: true).bytes
    }

    /// S = (A·v^u)^b mod N.
    func serverPremaster(b: [UInt8], A: [UInt8], verifier v: BigNum, u: [UInt8]) -> [UInt8] {
        let base = ctx.modMul(ctx.mod(BigNum(A), N), ctx.modExp(v, BigNum(u), N, secret: true), N)
        return ctx.modExp(base, BigNum(b), N, secret: true).bytes
    }

    func sessionKey(S: [UInt8]) -> [UInt8] {
        switch p.sessionKey {
        case .hash: p.hash.hash(S)
        case .appleLegacy: p.hash.hash(S, [0, 0, 0, 0]) + p.hash.hash(S, [0, 0, 0, 1])
        }
    }

    func clientProof(username: String, salt: [UInt8], A: [UInt8], B: [UInt8], K: [UInt8]) -> [UInt8] {
        let hN = p.hash.hash(p.modulus)
        let hg = p.hash.hash(p.generator)
        let xor = zip(hN, hg).map { $0 ^ $1 }
        let hI = p.hash.hash(Array(username.utf8))
        return p.hash.hash(stripLeadingZeros(xor), stripLeadingZeros(hI), salt,
                           stripLeadingZeros(A), stripLeadingZeros(B), K)
    }

    func serverProof(A: [UInt8], M1: [UInt8], K: [UInt8]) -> [UInt8] {
        p.hash.hash(stripLeadingZeros(A), M1, K)
    }

    /// True if value mod N is zero (an illegal public key).
    func isZeroModN(_ value: [UInt8]) -> Bool { ctx.mod(BigNum(value), N).isZero }
}

/// SRP-6a client. `a` is the secret exponent (at least 32 random bytes).
package struct SRPClient: Sendable {
    package let parameters: SRPParameters
    package let username: String
    let password: String
    let a: [UInt8]
    /// A = g^a mod N, minimal big-endian (as srptools sends it).
    package let publicKey: [UInt8]

    package init(parameters: SRPParameters, username: String, password: String, secret a: [UInt8]) {
        self.parameters = parameters
        self.username = username
        self.password = password
        self.a = a
        publicKey = SRPMath(parameters).clientPublic(a: a)
    }

    package init(parameters: SRPParameters, username: String, password: String) {
        self.init(parameters: parameters, username: username, password: password, secret: randomBytes(32))
    }

    /// Process the server's salt and B; returns the proof to send and the expected server proof.
    package func respond(salt: [UInt8], serverPublicKey B: [UInt8]) throws(ATVError) -> SRPClientSession {
        let m = SRPMath(parameters)
        guard !B.isEmpty, B.count <= parameters.modulusLength, !m.isZeroModN(B) else {
            throw ATVError.authenticationFailed("the device sent an invalid SRP public key")
        }
        let u = m.u(A: publicKey, B: B)
        guard !stripLeadingZeros(u).isEmpty else {
            throw ATVError.authenticationFailed("the device sent an invalid SRP public key (u = 0)")
        }
        let x = m.x(salt: salt, username: username, password: password)
        let S = m.clientPremaster(a: a, B: B, x: x, u: u)
        let K = m.sessionKey(S: S)
        let M1 = m.clientProof(username: username, salt: salt, A: publicKey, B: B, K: K)
        let M2 = m.serverProof(A: publicKey, M1: M1, K: K)
        return SRPClientSession(publicKey: publicKey, proof: M1, expectedServerProof: M2, sessionKey: K)
    }
}

/// Client state after `respond`: send `publicKey` and `proof`, then check the server's proof.
package struct SRPClientSession: Sendable {
    package let publicKey: [UInt8]
    package let proof: [UInt8]
    let expectedServerProof: [UInt8]
    let key: [UInt8]

    init(publicKey: [UInt8], proof: [UInt8], expectedServerProof: [UInt8], sessionKey: [UInt8]) {
        self.publicKey = publicKey
        self.proof = proof
        self.expectedServerProof = expectedServerProof
        key = sessionKey
    }

    /// Verify the server's proof M2 (fail closed) and return the session key K.
    package func verifyServer(proof: [UInt8]) throws(ATVError) -> [UInt8] {
        guard constantTimeEqual(proof, expectedServerProof) else {
            throw ATVError.authenticationFailed("the device's SRP proof is wrong (it does not know the PIN, or the exchange was tampered with)")
        }
        return key
    }
}

/// SRP-6a server (accessory side). Holds the password verifier, never the password.
package struct SRPServer: Sendable {
    package let parameters: SRPParameters
    package let username: String
    package let salt: [UInt8]
    let verifier: [UInt8]
    let b: [UInt8]
    /// B = (k·v + g^b) mod N, minimal big-endian.
    package let publicKey: [UInt8]

    package init(parameters: SRPParameters, username: String, password: String,
                salt: [UInt8] = randomBytes(16), secret b: [UInt8] = randomBytes(32)) {
        let m = SRPMath(parameters)
        let v = m.verifier(x: m.x(salt: salt, username: username, password: password))
        self.parameters = parameters
        self.username = username
        self.salt = salt
        verifier = v.bytes
        self.b = b
        publicKey = m.serverPublic(b: b, verifier: v)
    }

    /// Check the client's A and proof M1; on success return the server proof M2 and the session key.
    package func verifyClient(publicKey A: [UInt8], proof: [UInt8]) throws(ATVError) -> (serverProof: [UInt8], sessionKey: [UInt8]) {
        let m = SRPMath(parameters)
        guard !A.isEmpty, A.count <= parameters.modulusLength, !m.isZeroModN(A) else {
            throw ATVError.authenticationFailed("the controller sent an invalid SRP public key")
        }
        let u = m.u(A: A, B: publicKey)
        let S = m.serverPremaster(b: b, A: A, verifier: BigNum(verifier), u: u)
        let K = m.sessionKey(S: S)
        let M1 = m.clientProof(username: username, salt: salt, A: A, B: publicKey, K: K)
        guard constantTimeEqual(proof, M1) else {
            throw ATVError.authenticationFailed("the controller's SRP proof is wrong (wrong PIN)")
        }
        return (m.serverProof(A: A, M1: M1, K: K), K)
    }
}

/// Cryptographically secure random bytes.
package func randomBytes(_ count: Int) -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    return (0 ..< count).map { _ in UInt8.random(in: 0 ... 255, using: &g) }
}
