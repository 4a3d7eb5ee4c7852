import ATVTestSupport
import Testing
@testable import ATVAuth
import ATVCore
import Crypto

/// Our controller against our accessory: PIN pair-setup, pair-verify, transient, and failures.
@Suite struct PairingTests {
    let accessory = HAPIdentity.pyatvFakeDevice

    /// Run pair-setup to the end; returns the client's outcome and the accessory's event.
    func pairSetup(client: inout HAPPairSetupClient, server: inout HAPPairSetupServer,
                   tamper: ((Int, inout [UInt8]) -> Void)? = nil) throws(ATVError) -> (HAPPairSetupClient.Output, HAPAccessoryReply.Event?) {
        var msg = try client.start()
        var step = 0
        while true {
            let reply = server.handle(msg)
            var bytes = reply.message
            tamper?(step, &bytes)
            step += 1
            let out = try client.handle(bytes)
            switch out {
            case .send(let m): msg = m
            default: return (out, reply.event)
            }
        }
    }

    func pairVerify(client: inout HAPPairVerifyClient, server: inout HAPPairVerifyServer,
                    tamper: ((Int, inout [UInt8]) -> Void)? = nil) throws(ATVError) -> ([UInt8], HAPAccessoryReply.Event?) {
        var msg = try client.start()
        var step = 0
        while true {
            let reply = server.handle(msg)
            var bytes = reply.message
            tamper?(step, &bytes)
            step += 1
            switch try client.handle(bytes) {
            case .send(let m): msg = m
            case .verified(let shared): return (shared, reply.event)
            }
        }
    }

    @Test func pinPairSetupThenPairVerifyThenEncryptedExchange() throws {
        var client = HAPPairSetupClient(pin: "1111")
        #expect(client.hkpHeaderValue == 3)
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        let (out, event) = try pairSetup(client: &client, server: &server)
        guard case .paired(let creds) = out, case .paired(let controller) = event else {
            Issue.record("expected paired, got \(out) / \(String(describing: event))"); return
        }
        #expect(creds.deviceLTPK == accessory.publicKey)
        #expect(creds.deviceID == accessory.identifier)
        #expect(controller.identifier == creds.clientID)
        #expect(try HAPCredentials(parsing: creds.stringValue) == creds)

        var vc = HAPPairVerifyClient(credentials: creds)
        var vs = HAPPairVerifyServer(identity: accessory, controllers: [controller])
        let (shared, vEvent) = try pairVerify(client: &vc, server: &vs)
        guard case .verified(let who, let serverShared) = vEvent else { Issue.record("server did not verify"); return }
        #expect(who == controller)
        #expect(shared == serverShared)

        var mine = HAPSession(keys: HAPChannel.airPlayControl.keys(sharedSecret: shared))
        var theirs = HAPSession(keys: HAPChannel.airPlayControl.keys(sharedSecret: serverShared, role: .accessory))
        let req = Array("GET /info RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8)
        #expect(try theirs.decrypt(try mine.encrypt(req)) == req)
        let resp = [UInt8](repeating: 0x42, count: 3000)
        #expect(try mine.decrypt(try theirs.encrypt(resp)) == resp)
    }

    @Test func transientPairSetupYieldsSameSessionKeyBothSides() throws {
        var client = HAPPairSetupClient.transient()
        #expect(client.hkpHeaderValue == 4)
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")  // transient uses 3939, not this
        let m1 = try client.start()
        #expect(m1 == hex("000100 060101 130110"))
        let (out, event) = try {
            var c = client, s = server
            defer { client = c; server = s }
            let r2 = s.handle(m1)
            guard case .send(let m3) = try c.handle(r2.message) else { throw ATVError.protocolError("no M3") }
            let r4 = s.handle(m3)
            return (try c.handle(r4.message), r4.event)
        }()
        guard case .transient(let k) = out, case .transient(let sk) = event else { Issue.record("not transient: \(out)"); return }
        #expect(k.count == 64)
        #expect(k == sk)
        // Further input is refused: nothing after M4.
        #expect(throws: ATVError.self) { try client.handle([]) }
    }

    @Test func wrongPINFailsAtM4AndNothingIsProduced() throws {
        var client = HAPPairSetupClient(pin: "1112")
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        do {
            _ = try pairSetup(client: &client, server: &server)
            Issue.record("pairing with a wrong PIN succeeded")
        } catch {
            guard case .authenticationFailed(let m) = error else { Issue.record("wrong error \(error)"); return }
            #expect(m.contains("M4"))
        }
        #expect(throws: ATVError.self) { try client.handle([]) }  // state machine is dead
    }

    @Test func tamperedServerProofFailsClosed() throws {
        var client = HAPPairSetupClient(pin: "1111")
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        #expect(throws: ATVError.authenticationFailed("the device's SRP proof is wrong (it does not know the PIN, or the exchange was tampered with)")) {
            _ = try pairSetup(client: &client, server: &server) { step, bytes in
                if step == 1 { bytes[bytes.count - 1] ^= 0x01 }  // last byte of the M4 proof
            }
        }
    }

    @Test func badM6SignatureFailsClosed() throws {
        // An accessory that signs M6 with a key other than the one it presents.
        var client = HAPPairSetupClient(pin: "1111")
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        var m = try client.start()
        for _ in 0 ..< 2 {
            guard case .send(let next) = try client.handle(server.handle(m).message) else { Issue.record("early end"); return }
            m = next
        }
        // m is M5. Rebuild M6 ourselves with a forged signature, using the session key the server derived.
        let genuine = server.handle(m)
        guard case .awaitingM6(let K) = client.state else { Issue.record("client not awaiting M6"); return }
        let encKey = HAPKeys.hkdf(salt: "Pair-Setup-Encrypt-Salt", info: "Pair-Setup-Encrypt-Info", secret: K)
        let inner = try TLV8.decode(HAPKeys.open(try TLV8.decode(genuine.message)[.encryptedData]!, key: encKey,
                                                 label: "PS-Msg06", what: "test"))
        let impostor = Curve25519.Signing.PrivateKey()
        let x = HAPKeys.hkdf(salt: "Pair-Setup-Accessory-Sign-Salt", info: "Pair-Setup-Accessory-Sign-Info", secret: K)
        let forged = Array(try impostor.signature(for: x + inner[.identifier]! + inner[.publicKey]!))
        let sealed = try HAPKeys.seal(TLV8([.init(.identifier, inner[.identifier]!), .init(.publicKey, inner[.publicKey]!),
                                            .init(.signature, forged)]).encoded(), key: encKey, label: "PS-Msg06")
        var copy = client
        #expect(throws: ATVError.self) {
            _ = try copy.handle(TLV8([.init(.state, [6]), .init(.encryptedData, sealed)]).encoded())
        }
        // The genuine M6 is accepted by an untouched copy of the client: the forgery alone failed.
        guard case .paired = try client.handle(genuine.message) else { Issue.record("genuine M6 rejected"); return }
    }

    @Test func pairVerifyRejectsBadSignatureWrongDeviceAndUnknownController() throws {
        var client = HAPPairSetupClient(pin: "1111")
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        guard case (.paired(let creds), .paired(let controller)?) = try pairSetup(client: &client, server: &server) else {
            Issue.record("setup failed"); return
        }
        // 1. Stored LTPK belongs to someone else: the accessory's M2 signature does not verify.
        var wrongKey = creds
        wrongKey.deviceLTPK = HAPIdentity(identifier: "x").publicKey
        var vc1 = HAPPairVerifyClient(credentials: wrongKey)
        var vs1 = HAPPairVerifyServer(identity: accessory, controllers: [controller])
        #expect(throws: ATVError.self) { _ = try pairVerify(client: &vc1, server: &vs1) }

        // 2. An accessory with a different identifier.
        let other = try HAPIdentity(identifier: "OTHER-DEVICE", seed: accessory.seed)
        var vc2 = HAPPairVerifyClient(credentials: creds)
        var vs2 = HAPPairVerifyServer(identity: other, controllers: [controller])
        #expect(throws: ATVError.self) { _ = try pairVerify(client: &vc2, server: &vs2) }

        // 3. The accessory does not know us: error in M4, reported by the client.
        var vc3 = HAPPairVerifyClient(credentials: creds)
        var vs3 = HAPPairVerifyServer(identity: accessory, controllers: [])
        do {
            _ = try pairVerify(client: &vc3, server: &vs3)
            Issue.record("verify with an unknown controller succeeded")
        } catch {
            #expect(error == .authenticationFailed("pair-verify M4: the device answered authentication error (wrong PIN or bad proof)"))
        }

        // 4. Tampered M2 ciphertext.
        var vc4 = HAPPairVerifyClient(credentials: creds)
        var vs4 = HAPPairVerifyServer(identity: accessory, controllers: [controller])
        #expect(throws: ATVError.self) {
            _ = try pairVerify(client: &vc4, server: &vs4) { step, b in if step == 0 { b[b.count - 3] ^= 0x80 } }
        }
    }

    @Test func deviceErrorCodesAreReported() throws {
        var c = HAPPairSetupClient(pin: "1111")
        _ = try c.start()
        #expect(throws: ATVError.pairingFailed("pair-setup M2: the device answered back off (too many attempts, retry later); retry in 300 s")) {
            try c.handle(TLV8([.init(.state, [2]), .init(.error, [3]), .init(.backOff, [0x2c, 0x01])]).encoded())
        }
    }

    @Test func stateMachinesFuzzNeverCrash() throws {
        let seed = TestSeed.value(default: 5)
        var g = SplitMix64(seed: seed)
        for i in 0 ..< 400 {
            var c = HAPPairSetupClient.transient(srpSecret: [UInt8](repeating: 1, count: 32))
            _ = try c.start()
            var junk = randomBytes(Int.random(in: 0 ... 500, using: &g), using: &g)
            if i % 2 == 0 { junk = TLV8([.init(.state, [2]), .init(.salt, Array(junk.prefix(16))), .init(.publicKey, junk)]).encoded() }
            do { _ = try c.handle(junk) } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            var v = HAPPairVerifyClient(credentials: HAPCredentials(deviceLTPK: accessory.publicKey, clientLTSK: accessory.seed,
                                                                    deviceID: accessory.identifier, clientID: [1]))
            _ = try v.start()
            // A random M2 never passes verification: the device's signature cannot check out.
            do {
                _ = try v.handle(i % 2 == 0 ? TLV8([.init(.state, [2]), .init(.publicKey, Array(junk.prefix(32))),
                                                    .init(.encryptedData, junk)]).encoded() : junk)
                Issue.record("seed \(seed) case \(i): a random pair-verify M2 was accepted")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            var s = HAPPairSetupServer(identity: accessory, pin: "1111", srpSecret: [UInt8](repeating: 2, count: 32))
            _ = s.handle(junk)
            var vs = HAPPairVerifyServer(identity: accessory, controllers: [])
            _ = vs.handle(junk)
        }
    }
}
