import ATVTestSupport
@testable import ATVAuth
import ATVCore
import Testing

/// pyatv tests/fake_device/airplay.py: a session recorded from a real device (client id
/// 75FBEEC773CFC563, seed 8F06…1493, PIN 2271). Requests are pyatv's, responses the device's.
enum Recorded {
    static let clientID = "75FBEEC773CFC563"
    static let seed = "8F06696F2542D70DF59286C761695C485F815BE3D152849E1361282D46AB1493"
    static let step1 = "62706c6973743030d201020304566d6574686f6454757365725370696e5f101037354642454543373733434643353633080d14191d0000000000000101000000000000000500000000000000000000000000000030"
    static let step1Resp = "62706c6973743030d20102030452706b5473616c744f1101008817e16146c7d12b45e810b0bf190a4ccb25d9a20a8d0504d874daa8db5574c51c8b33703a95c00bdbe99c8c3745d1ef1b38e538edfd98e09ec029effe6f28b3b54a1bd41c28d8f33da6f5ac9327bfce9a66869dae645b5cbd2c6b8fbe14a30ad4f8598154f2ef7f4f52cee3e3042a69780463c26bbb764870eb1995b26a2a4ade05564836d788baf07469a143c410ea9d07a068eb790b2b0aa5b86c990636814e3fa1a899ceba1af45b211ca4bd3b5b66ffaf16051a4f851e120476054258f257b8521a068907ad5e9c7220d5cef9aa072dec9edb7ebf633cad4d52d105cf58440f17e236332b0b26539851a879e9ac8d3c2da4c590785468e590296d39d7374f1010fca6dcb6b83a7c716a692f806e9159540008000d001000150119000000000000020100000000000000050000000000000000000000000000012c"
    static let step2 = "62706c6973743030d20102030452706b5570726f6f664f1101000819b6ba7feead4753809314e2b4c5db9109f737a0fc70b758342b6bbf536fae4e40cf94607588abb17c2076030cc00c2c1fa5fc3b3dfe8aa1ec2f23f74d917c0792fbf02f131377dfb8ae2a1656ceaa0a36bb3ab752586e1af17e1d5ef24ce083f3f9298d0be761f26c0d48af86510bf9aac7940cf90bff6bd214cf34b5536856c80f076cfbe06fd69af9d6a07a6d3ac580dfffc8a40b9730575a16c5046cd73321a944880dcf9fac952afc7ffd2d135e57ec208b11cef22b734f331ad4d8c9a737b588f7b30bd5210c65cae2ba0226f69ce7b505771faa63af89ed2f9e8325d7d5f3a2da7412f9d837860632d7f81b7fa5e09dd85e1539184070c0fa8433c24f1014fc6286910833d3e7ae0631d47ddbb0f492ef85b80008000d00100016011a0000000000000201000000000000000500000000000000000000000000000131"
    static let step2Resp = "62706c6973743030d101025570726f6f664f101484a88548b12bce122ad1cea6caff312630edcf27080b110000000000000101000000000000000300000000000000000000000000000028"
    static let step3 = "62706c6973743030d20102030457617574685461675365706b4f101052a92f8712c6ea417f3adb3d03d8e5634f1020ff07fc8520d10728e6f2ab0a0245dfa20709b5d1ae5f9a19328b0663ba9414f2080d15192c000000000000010100000000000000050000000000000000000000000000004f"
    static let step3Resp = "62706c6973743030d2010203045365706b57617574685461674f10206285b20afad4cefe1fce40cee685ab072c75240cb47fb71bc3b3d03dca52dc5d4f1010893eb8e5ae418b245e9b1bf7cba9116b080d11193c000000000000010100000000000000050000000000000000000000000000004f"
    static let verify1 = "01000000891bae9f581f68f9c9933c4f713fbb5b9de639ec7df5d0a4fd4f342f1c21aa6a5e9d1e843302d6265b8c48dd169e273460e567916b0b36280ac071001118f6b2"
    static let verify1Resp = "3221371da9f00d035955caa912455fd2acee68117b557f25e39168746af4b631cfab7b2c6d0b58e96cc10af884f5a4cdef8063858a9d9c04e866743cf4b77b4be50de1352ab4ff2691a1a7afd8c1341475b4170ac50455973b7fcf3c24324fa9"
    static let verify2 = "00000000a1f91acf64aacb185684080b817103b423816ad63b7f5e001f62337b4cc4b3b92c1474959930b7c2a59d0004814300580459d06fc6cc6441bd82bac72a5c5cc7"
    /// The device's Ed25519 key, decrypted from step3Resp (GCM tag verifies); it signs verify1Resp.
    static let deviceLTPK = "3853c0e2ce3844727ca0cb1b86a3e3875e66924d2648d8f8caf71f8118793d98"

    static var credentials: LegacyCredentials { try! LegacyCredentials(seed: hex(seed), clientID: hex(clientID)) }
}

@Suite struct LegacyPairingTests {
    func sendBody(_ o: LegacyPairSetupClient.Output) -> [UInt8]? { if case .send(let r) = o { return r.body }; return nil }

    @Test func pairSetupReproducesRecordedSessionByteForByte() throws {
        var client = LegacyPairSetupClient(pin: "2271", credentials: Recorded.credentials)
        let r1 = try client.start()
        #expect(r1.path == "/pair-setup-pin")
        #expect(r1.headers.first { $0.name == "Content-Type" }?.value == "application/x-apple-binary-plist")
        #expect(Hex.encode(r1.body) == Recorded.step1)
        let o2 = try client.handle(status: 200, body: hex(Recorded.step1Resp))
        #expect(sendBody(o2).map { Hex.encode($0) } == Recorded.step2)
        let o3 = try client.handle(status: 200, body: hex(Recorded.step2Resp))
        #expect(sendBody(o3).map { Hex.encode($0) } == Recorded.step3)
        let done = try client.handle(status: 200, body: hex(Recorded.step3Resp))
        #expect(done == .paired(LegacyPairingResult(credentials: Recorded.credentials, deviceLTPK: hex(Recorded.deviceLTPK))))
    }

    @Test func pairVerifyReproducesRecordedSessionAndChecksDeviceSignature() throws {
        var v = LegacyPairVerifyClient(credentials: Recorded.credentials, deviceLTPK: hex(Recorded.deviceLTPK))
        let r1 = try v.start()
        #expect(r1.path == "/pair-verify")
        #expect(Hex.encode(r1.body) == Recorded.verify1)
        guard case .send(let r2) = try v.handle(status: 200, body: hex(Recorded.verify1Resp)) else { Issue.record("no step 2"); return }
        #expect(Hex.encode(r2.body) == Recorded.verify2)
        #expect(try v.handle(status: 200, body: []) == .verified)
    }

    @Test func verifyWithAnotherDeviceKeyFailsClosed() throws {
        var v = LegacyPairVerifyClient(credentials: Recorded.credentials, deviceLTPK: LegacyCredentials.generate().publicKey)
        _ = try v.start()
        #expect(throws: ATVError.self) { try v.handle(status: 200, body: hex(Recorded.verify1Resp)) }
    }

    @Test func wrongPINFailsOnTheDeviceProof() throws {
        var client = LegacyPairSetupClient(pin: "2272", credentials: Recorded.credentials)
        _ = try client.start()
        let o2 = try client.handle(status: 200, body: hex(Recorded.step1Resp))
        #expect(sendBody(o2).map { Hex.encode($0) } != Recorded.step2)
        // The recorded device proof belongs to PIN 2271: ours must not accept it.
        #expect(throws: ATVError.self) { try client.handle(status: 200, body: hex(Recorded.step2Resp)) }
        // And the machine refuses to go on.
        #expect(throws: ATVError.self) { try client.handle(status: 200, body: hex(Recorded.step3Resp)) }
    }

    @Test func tamperedStep3AnswerIsRejected() throws {
        var client = LegacyPairSetupClient(pin: "2271", credentials: Recorded.credentials)
        _ = try client.start()
        _ = try client.handle(status: 200, body: hex(Recorded.step1Resp))
        _ = try client.handle(status: 200, body: hex(Recorded.step2Resp))
        var bad = hex(Recorded.step3Resp)
        bad[40] ^= 1  // inside the encrypted device key
        #expect(throws: ATVError.self) { try client.handle(status: 200, body: bad) }
        // An answer that is not the expected dictionary (a key name altered) is refused too.
        var again = LegacyPairSetupClient(pin: "2271", credentials: Recorded.credentials)
        _ = try again.start()
        _ = try again.handle(status: 200, body: hex(Recorded.step1Resp))
        _ = try again.handle(status: 200, body: hex(Recorded.step2Resp))
        var renamed = hex(Recorded.step3Resp)
        renamed[20] ^= 1  // inside the key "authTag"
        #expect(throws: ATVError.self) { try again.handle(status: 200, body: renamed) }
    }

    @Test func deviceRejectionStatusIsAPairingError() throws {
        var client = LegacyPairSetupClient(pin: "2271", credentials: Recorded.credentials)
        _ = try client.start()
        _ = try client.handle(status: 200, body: hex(Recorded.step1Resp))
        #expect { try client.handle(status: 470, body: []) } throws: { e in
            guard case ATVError.pairingFailed(let m) = e else { return false }
            return m.contains("470") && m.contains("PIN")
        }
    }

    /// Our client against our accessory: pair, then verify both ways; wrong PIN; unknown controller.
    @Test func clientAndAccessoryRoundTrip() throws {
        var device = try LegacyPairingAccessory(pin: "4321")
        #expect(device.handle(path: "/pair-pin-start", body: []).event == .pinRequested)
        var client = LegacyPairSetupClient(pin: "4321")
        var req = try client.start()
        var result: LegacyPairingResult?
        while result == nil {
            let reply = device.handle(path: req.path, body: req.body)
            switch try client.handle(status: reply.status, body: reply.body) {
            case .send(let r): req = r
            case .paired(let r): result = r; #expect(reply.event == .paired(controllerKey: client.credentials.publicKey))
            }
        }
        #expect(result?.deviceLTPK == device.publicKey)
        var v = LegacyPairVerifyClient(credentials: client.credentials, deviceLTPK: result?.deviceLTPK)
        let v1 = try v.start()
        let a1 = device.handle(path: v1.path, body: v1.body)
        guard case .send(let v2) = try v.handle(status: a1.status, body: a1.body) else { Issue.record("no step 2"); return }
        let a2 = device.handle(path: v2.path, body: v2.body)
        #expect(a2.event == .verified(controllerKey: client.credentials.publicKey))
        #expect(try v.handle(status: a2.status, body: a2.body) == .verified)

        // Wrong PIN: the accessory refuses step 2 with 470; the client reports a pairing failure.
        var wrong = LegacyPairSetupClient(pin: "0000")
        let w1 = try wrong.start()
        let b1 = device.handle(path: w1.path, body: w1.body)
        guard case .send(let w2) = try wrong.handle(status: b1.status, body: b1.body) else { Issue.record("no step 2"); return }
        let b2 = device.handle(path: w2.path, body: w2.body)
        #expect(b2.status == 470)
        #expect(throws: ATVError.self) { try wrong.handle(status: b2.status, body: b2.body) }

        // A controller that never paired is refused at verification.
        var stranger = LegacyPairVerifyClient(credentials: .generate())
        let s1 = try stranger.start()
        #expect(device.handle(path: s1.path, body: s1.body).status == 470)
    }

    @Test func accessoryAndParsersSurviveGarbage() throws {
        let seed = TestSeed.value(default: 5)
        var g = SplitMix64(seed: seed)
        var device = try! LegacyPairingAccessory(pin: "1111")
        for i in 0 ..< 3000 {
            var b = randomBytes(Int.random(in: 0 ... 120, using: &g), using: &g)
            if i % 3 == 0 { b = hex(Recorded.step1Resp); b[Int.random(in: 0 ..< b.count, using: &g)] = UInt8.random(in: 0 ... 255, using: &g) }
            if i % 3 == 1, b.count > 8 { b = Array("bplist00".utf8) + b }
            do {
                // Whatever decodes re-encodes stably (encode → decode → encode gives the same bytes).
                let once = try BinaryPlist.encode(BinaryPlist.decode(b))
                #expect(try BinaryPlist.encode(BinaryPlist.decode(once)) == once, "seed \(seed) case \(i)")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            // Random bodies are refused with an HTTP error status.
            let reply = device.handle(path: ["/pair-setup-pin", "/pair-verify"][i % 2], body: b)
            if i % 3 != 0 { #expect(reply.status >= 400, "seed \(seed) case \(i): \(reply.status)") }
            var c = LegacyPairSetupClient(pin: "1111")
            _ = try c.start()
            do { _ = try c.handle(status: 200, body: b) } catch {
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
    }
}

@Suite struct BinaryPlistTests {
    @Test func decodesRecordedBodies() throws {
        let d = try BinaryPlist.decode(hex(Recorded.step1Resp))
        #expect(d["pk"]?.data?.count == 256)
        #expect(d["salt"]?.data == hex("fca6dcb6b83a7c716a692f806e915954"))
        #expect(try BinaryPlist.decode(hex(Recorded.step1)) == .dict(["method": .string("pin"), "user": .string(Recorded.clientID)]))
    }

    @Test func roundTripsEveryKind() throws {
        let v = PlistValue.dict([
            "a": .array([.int(1), .int(300), .int(70000), .int(1 << 40), .int(-5), .bool(true), .bool(false)]),
            "s": .string("héllo ✓"), "t": .string(String(repeating: "x", count: 40)),
            "d": .data(Array(0 ... 255) + Array(0 ... 255)), "r": .real(1.5), "same": .string("héllo ✓"),
        ])
        #expect(try BinaryPlist.decode(BinaryPlist.encode(v)) == v)
    }

    @Test func truncatedInputIsAnErrorNotACrash() {
        let full = hex(Recorded.step2)
        // Every proper prefix is refused with an input error.
        for n in 0 ..< full.count {
            do {
                _ = try BinaryPlist.decode(Array(full.prefix(n)))
                Issue.record("a \(n)-byte prefix of a \(full.count)-byte plist decoded")
            } catch { #expect(error.isMalformedInput, "prefix \(n): \(error)") }
        }
    }
}

@Suite struct LegacyAESCTRTests {
    /// NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt): all four blocks, then a prefix that ends inside
    /// a block (CTR is a stream: the ciphertext is as long as the plaintext), then decryption.
    @Test func aes128CTRMatchesNISTVector() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c"), iv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
        let cipher = hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee")
        #expect(LegacyCrypto.aes128CTR(plain, key: key, iv: iv) == cipher)
        #expect(LegacyCrypto.aes128CTR(Array(plain.prefix(21)), key: key, iv: iv) == Array(cipher.prefix(21)))
        #expect(LegacyCrypto.aes128CTR(cipher, key: key, iv: iv) == plain)
        #expect(LegacyCrypto.aes128CTR([], key: key, iv: iv) == [])
    }
}
