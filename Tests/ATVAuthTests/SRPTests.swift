import ATVTestSupport
import Testing
@testable import ATVAuth
import ATVCore

/// RFC 5054 Appendix B (1024-bit group, SHA-1).
enum RFC5054 {
    static let I = "alice", P = "password123"
    static let s = hex("BEB25379 D1A8581E B5A72767 3A2441EE")
    static let k = hex("7556AA04 5AEF2CDD 07ABAF0F 665C3E81 8913186F")
    static let x = hex("94B7555A ABE9127C C58CCF49 93DB6CF8 4D16C124")
    static let v = hex("""
        7E273DE8 696FFC4F 4E337D05 B4B375BE B0DDE156 9E8FA00A 9886D812 9BADA1F1 822223CA 1A605B53 0E379BA4 729FDC59
        F105B478 7E5186F5 C671085A 1447B52A 48CF1970 B4FB6F84 00BBF4CE BFBB1681 52E08AB5 EA53D15C 1AFF87B2 B9DA6E04
        E058AD51 CC72BFC9 033B564E 26480D78 E955A5E2 9E7AB245 DB2BE315 E2099AFB
        """)
    static let a = hex("60975527 035CF2AD 1989806F 0407210B C81EDC04 E2762A56 AFD529DD DA2D4393")
    static let b = hex("E487CB59 D31AC550 471E81F0 0F6928E0 1DDA08E9 74A004F4 9E61F5D1 05284D20")
    static let A = hex("""
        61D5E490 F6F1B795 47B0704C 436F523D D0E560F0 C64115BB 72557EC4 4352E890 3211C046 92272D8B 2D1A5358 A2CF1B6E
        0BFCF99F 921530EC 8E393561 79EAE45E 42BA92AE ACED8251 71E1E8B9 AF6D9C03 E1327F44 BE087EF0 6530E69F 66615261
        EEF54073 CA11CF58 58F0EDFD FE15EFEA B349EF5D 76988A36 72FAC47B 0769447B
        """)
    static let B = hex("""
        BD0C6151 2C692C0C B6D041FA 01BB152D 4916A1E7 7AF46AE1 05393011 BAF38964 DC46A067 0DD125B9 5A981652 236F99D9
        B681CBF8 7837EC99 6C6DA044 53728610 D0C6DDB5 8B318885 D7D82C7F 8DEB75CE 7BD4FBAA 37089E6F 9C6059F3 88838E7A
        00030B33 1EB76840 910440B1 B27AAEAE EB4012B7 D7665238 A8E3FB00 4B117B58
        """)
    static let u = hex("CE38B959 3487DA98 554ED47D 70A7AE5F 462EF019")
    static let S = hex("""
        B0DC82BA BCF30674 AE450C02 87745E79 90A3381F 63B387AA F271A10D 233861E3 59B48220 F7C4693C 9AE12B0A 6F67809F
        0876E2D0 13800D6C 41BB59B6 D5979B5C 00A172B4 A2A5903A 0BDCAF8A 709585EB 2AFAFA8F 3499B200 210DCC1F 10EB3394
        3CD67FC8 8A2F39A4 BE5BEC4E C0A3212D C346D7E4 74B29EDE 8A469FFE CA686E5A
        """)
}

@Suite struct SRPTests {
    @Test func rfc5054AppendixBIntermediates() {
        let m = SRPMath(.rfc5054Test1024)
        #expect(m.k == RFC5054.k)
        let x = m.x(salt: RFC5054.s, username: RFC5054.I, password: RFC5054.P)
        #expect(x == RFC5054.x)
        let v = m.verifier(x: x)
        #expect(v.bytes == RFC5054.v)
        #expect(m.clientPublic(a: RFC5054.a) == RFC5054.A)
        #expect(m.serverPublic(b: RFC5054.b, verifier: v) == RFC5054.B)
        let u = m.u(A: RFC5054.A, B: RFC5054.B)
        #expect(u == RFC5054.u)
        #expect(m.clientPremaster(a: RFC5054.a, B: RFC5054.B, x: x, u: u) == RFC5054.S)
        #expect(m.serverPremaster(b: RFC5054.b, A: RFC5054.A, verifier: v, u: u) == RFC5054.S)
    }

    @Test func rfc5054ThroughPublicAPIWithProofsFromSrptools() throws {
        // RFC 5054 defines no K/M1/M2; these three come from srptools 1.0.1 (the SRP library
        // pyatv uses) run on the Appendix B inputs.
        let client = SRPClient(parameters: .rfc5054Test1024, username: RFC5054.I, password: RFC5054.P, secret: RFC5054.a)
        let server = SRPServer(parameters: .rfc5054Test1024, username: RFC5054.I, password: RFC5054.P,
                               salt: RFC5054.s, secret: RFC5054.b)
        #expect(client.publicKey == RFC5054.A)
        #expect(server.publicKey == RFC5054.B)
        let session = try client.respond(salt: RFC5054.s, serverPublicKey: server.publicKey)
        #expect(session.proof == hex("3f3bc67169ea71302599cf1b0f5d408b7b65d347"))
        let (m2, serverK) = try server.verifyClient(publicKey: session.publicKey, proof: session.proof)
        #expect(m2 == hex("9cab3c575a11de37d3ac1421a9f009236a48eb55"))
        let k = try session.verifyServer(proof: m2)
        #expect(k == hex("017eefa1cefc5c2e626e21598987f31e0f1b11bb"))
        #expect(k == serverK)
    }

    @Test func hap3072SHA512MatchesSrptools() throws {
        // Generated with srptools 1.0.1 (PRIME_3072, g=5, sha512), I="Pair-Setup", P="1111",
        // salt 0102…10, a = aa×32, b = bb×32.
        let salt = hex("0102030405060708090a0b0c0d0e0f10")
        let client = SRPClient(parameters: .hap, username: "Pair-Setup", password: "1111",
                               secret: [UInt8](repeating: 0xAA, count: 32))
        let server = SRPServer(parameters: .hap, username: "Pair-Setup", password: "1111",
                               salt: salt, secret: [UInt8](repeating: 0xBB, count: 32))
        #expect(client.publicKey.count == 384)
        #expect(Array(client.publicKey.prefix(8)) == hex("527b274487f59bd8"))
        #expect(Array(server.publicKey.prefix(8)) == hex("d3bde2bfe79d0f87"))
        let s = try client.respond(salt: salt, serverPublicKey: server.publicKey)
        #expect(s.proof == hex("""
            5cdcd88c9833a27599cf3bd6bed6cf6004b597001290666f20e47fe4005c3f031f89cdf513f98b781ed6edd2d68faef635714db9d55b62fd7e4a1b4acf1450aa
            """))
        let (m2, _) = try server.verifyClient(publicKey: s.publicKey, proof: s.proof)
        #expect(m2 == hex("""
            b0716716ecbebe76730895f78f8f80ca6baac73fc492d4adcf14d71b81887ca7d479b8f43bb6824541d092881ad7231ba8010046e35f5b4547906d5e5c7dbb39
            """))
        let k = try s.verifyServer(proof: m2)
        #expect(k == hex("""
            fd95feb192a1b4c0d4f5d0381109b63d6c8b80775cb6ae9bc046dabd4dc6b4988b9cc37c8d75fcb6c4a8d65f1367eec81e2eb0db150748832212fb8b6df5dbaa
            """))
    }

    @Test(arguments: [SRPParameters.hap, .legacyAirPlay])
    func randomRoundTrip(params: SRPParameters) throws {
        let client = SRPClient(parameters: params, username: "user", password: "2271")
        let server = SRPServer(parameters: params, username: "user", password: "2271")
        let s = try client.respond(salt: server.salt, serverPublicKey: server.publicKey)
        let (m2, kS) = try server.verifyClient(publicKey: s.publicKey, proof: s.proof)
        let kC = try s.verifyServer(proof: m2)
        #expect(kC == kS)
        #expect(kC.count == (params.hash == .sha1 ? 40 : 64))
    }

    @Test func wrongPasswordIsRejectedByServer() throws {
        let client = SRPClient(parameters: .hap, username: "Pair-Setup", password: "1112")
        let server = SRPServer(parameters: .hap, username: "Pair-Setup", password: "1111")
        let s = try client.respond(salt: server.salt, serverPublicKey: server.publicKey)
        #expect(throws: ATVError.self) { try server.verifyClient(publicKey: s.publicKey, proof: s.proof) }
    }

    @Test func tamperedServerProofIsRejectedByClient() throws {
        let client = SRPClient(parameters: .hap, username: "Pair-Setup", password: "1111")
        let server = SRPServer(parameters: .hap, username: "Pair-Setup", password: "1111")
        let s = try client.respond(salt: server.salt, serverPublicKey: server.publicKey)
        var (m2, _) = try server.verifyClient(publicKey: s.publicKey, proof: s.proof)
        m2[5] ^= 1
        #expect(throws: ATVError.self) { try s.verifyServer(proof: m2) }
        #expect(throws: ATVError.self) { try s.verifyServer(proof: []) }
    }

    @Test func zeroOrModulusPublicKeyIsRejected() {
        let client = SRPClient(parameters: .hap, username: "Pair-Setup", password: "1111")
        #expect(throws: ATVError.self) { try client.respond(salt: [1], serverPublicKey: [0]) }
        #expect(throws: ATVError.self) { try client.respond(salt: [1], serverPublicKey: SRPParameters.hap.modulus) }
        #expect(throws: ATVError.self) { try client.respond(salt: [1], serverPublicKey: []) }
    }

    @Test func legacyAirPlay2048SHA1MatchesRecordedDeviceSession() throws {
        // pyatv tests/fake_device/airplay.py: a recorded /pair-setup-pin session with a device
        // (client id 75FBEEC773CFC563, seed 8F06…1493, PIN 2271), bplists decoded to their fields.
        let client = SRPClient(parameters: .legacyAirPlay, username: "75FBEEC773CFC563", password: "2271",
                               secret: hex("8F06696F2542D70DF59286C761695C485F815BE3D152849E1361282D46AB1493"))
        #expect(client.publicKey == hex("""
            0819b6ba7feead4753809314e2b4c5db9109f737a0fc70b758342b6bbf536fae4e40cf94607588abb17c2076030cc00c2c1fa5fc3b3dfe8a
            a1ec2f23f74d917c0792fbf02f131377dfb8ae2a1656ceaa0a36bb3ab752586e1af17e1d5ef24ce083f3f9298d0be761f26c0d48af86510b
            f9aac7940cf90bff6bd214cf34b5536856c80f076cfbe06fd69af9d6a07a6d3ac580dfffc8a40b9730575a16c5046cd73321a944880dcf9f
            ac952afc7ffd2d135e57ec208b11cef22b734f331ad4d8c9a737b588f7b30bd5210c65cae2ba0226f69ce7b505771faa63af89ed2f9e8325
            d7d5f3a2da7412f9d837860632d7f81b7fa5e09dd85e1539184070c0fa8433c2
            """))
        let B = hex("""
            8817e16146c7d12b45e810b0bf190a4ccb25d9a20a8d0504d874daa8db5574c51c8b33703a95c00bdbe99c8c3745d1ef1b38e538edfd98e0
            9ec029effe6f28b3b54a1bd41c28d8f33da6f5ac9327bfce9a66869dae645b5cbd2c6b8fbe14a30ad4f8598154f2ef7f4f52cee3e3042a69
            780463c26bbb764870eb1995b26a2a4ade05564836d788baf07469a143c410ea9d07a068eb790b2b0aa5b86c990636814e3fa1a899ceba1a
            f45b211ca4bd3b5b66ffaf16051a4f851e120476054258f257b8521a068907ad5e9c7220d5cef9aa072dec9edb7ebf633cad4d52d105cf58
            440f17e236332b0b26539851a879e9ac8d3c2da4c590785468e590296d39d737
            """)
        let s = try client.respond(salt: hex("fca6dcb6b83a7c716a692f806e915954"), serverPublicKey: B)
        #expect(s.proof == hex("fc6286910833d3e7ae0631d47ddbb0f492ef85b8"))
        // The device's own proof verifies: our legacy K derivation matches the device's.
        let k = try s.verifyServer(proof: hex("84a88548b12bce122ad1cea6caff312630edcf27"))
        #expect(k.count == 40)
    }
}
