import ATVTestSupport
import ATVAuth
import ATVCore
@testable import ATVCompanion
import Testing

@Suite struct CompanionFrameTests {
    @Test func pairSetupM1FrameMatchesTheReference() throws {
        var enc = CompanionFrameEncoder(key: nil)
        let tlv = TLV8([.init(.method, [0]), .init(.state, [1])]).encoded()
        let frame = try enc.encode(CompanionFrame(type: CompanionFrameType.pairSetupStart.rawValue,
                                                  payload: CompanionAuth.pairSetupPayload(tlv)))
        #expect(frame == hex("03000013e2435f706476000100060101455f7077547909"))
        var dec = CompanionFrameDecoder(key: nil)
        let frames = try dec.decode(frame)
        #expect(frames.count == 1 && frames[0].type == 3)
        #expect(try CompanionAuth.tlv(from: frames[0].payload) == tlv)
    }

    @Test func incrementalDecodingAcrossArbitrarySplits() throws {
        let key = [UInt8](repeating: 3, count: 32)
        var enc = CompanionFrameEncoder(key: key)
        var stream: [UInt8] = []
        var sent: [CompanionMessage] = []
        for x in 0 ..< 20 {
            let m = CompanionMessage.request("_launchApp", .dict(["_bundleID": .string("com.example.\(x)")]), xid: Int64(x))
            sent.append(m)
            stream += try enc.encode(CompanionFrame(type: CompanionFrameType.encryptedOPACK.rawValue, payload: m.encoded()))
        }
        var dec = CompanionFrameDecoder(key: key)
        var got: [CompanionMessage] = []
        var i = 0
        var chunk = 1
        while i < stream.count {
            let end = min(stream.count, i + chunk)
            for f in try dec.decode(Array(stream[i ..< end])) { got.append(try CompanionMessage(decoding: f.payload)) }
            i = end
            chunk = chunk % 37 + 1
        }
        #expect(got == sent)
        #expect(dec.bufferedByteCount == 0)
    }

    @Test func replayedOrReorderedEncryptedFramesAreRejected() throws {
        let key = [UInt8](repeating: 9, count: 32)
        var enc = CompanionFrameEncoder(key: key)
        let f0 = try enc.encode(CompanionFrame(type: 8, payload: CompanionMessage.request("a", xid: 1).encoded()))
        let f1 = try enc.encode(CompanionFrame(type: 8, payload: CompanionMessage.request("b", xid: 2).encoded()))
        var replay = CompanionFrameDecoder(key: key)
        #expect(try replay.decode(f0).count == 1)
        #expect(throws: ATVError.self) { try replay.decode(f0) }
        var reorder = CompanionFrameDecoder(key: key)
        #expect(throws: ATVError.self) { try reorder.decode(f1) }
        // A tampered header (it is the AAD) fails too.
        var tampered = CompanionFrameDecoder(key: key)
        #expect(throws: ATVError.self) { try tampered.decode([0x07] + f0.dropFirst()) }
    }

    @Test func launchTargetsWithASchemeAreURLs() {
        #expect(CompanionClient.hasURLScheme("https://example.com/x"))
        #expect(CompanionClient.hasURLScheme("netflix:"))
        #expect(!CompanionClient.hasURLScheme("com.netflix.Netflix"))
        #expect(!CompanionClient.hasURLScheme(":nothing"))
        #expect(!CompanionClient.hasURLScheme("1abc:x"))
    }

    @Test func messageEnvelope() throws {
        let r = CompanionMessage.noHandler(for: 7)
        let back = try CompanionMessage(decoding: r.encoded())
        #expect(back == r && back.errorCode == 58822)
        #expect(throws: ATVError.self) { try CompanionMessage(decoding: OPACK.dict(["_t": .int(2)]).encoded()) }
        #expect(throws: ATVError.self) { try CompanionMessage(decoding: OPACK.array([]).encoded()) }
        #expect(throws: ATVError.self) { try CompanionAuth.tlv(from: OPACK.dict(["_pwTy": .int(1)]).encoded()) }
    }

    /// Plain frames re-encode to exactly the bytes they came from; random bytes never authenticate
    /// (a keyed decoder yields only empty frames, which are sent unencrypted); messages that decode
    /// re-encode stably; every rejection is an input error.
    @Test func garbageFramesNeverCrash() throws {
        let seed = TestSeed.value(default: 99)
        var r = SplitMix64(seed: seed)
        for round in 0 ..< 3000 {
            let bytes = randomBytes(Int.random(in: 0 ... 64, using: &r), using: &r)
            var plain = CompanionFrameDecoder(key: nil)
            let frames = try plain.decode(bytes)  // plain framing accepts any bytes
            var encoder = CompanionFrameEncoder(key: nil)
            let reframed = try frames.flatMap { f throws(ATVError) in try encoder.encode(f) }
            #expect(reframed.count + plain.bufferedByteCount == bytes.count && bytes.starts(with: reframed),
                    "seed \(seed) round \(round)")
            for f in frames {
                do {
                    let m = try CompanionMessage(decoding: f.payload)
                    #expect(try CompanionMessage(decoding: m.encoded()).encoded() == m.encoded(), "seed \(seed) round \(round)")
                } catch { #expect(error.isMalformedInput, "seed \(seed) round \(round): \(error)") }
                do { _ = try CompanionAuth.tlv(from: f.payload) } catch {
                    #expect(error.isMalformedInput, "seed \(seed) round \(round): \(error)")
                }
            }
            var sealed = CompanionFrameDecoder(key: [UInt8](repeating: UInt8(round & 0xFF), count: 32))
            do {
                let opened = try sealed.decode(bytes)
                #expect(opened.allSatisfy { $0.payload.isEmpty }, "seed \(seed) round \(round): random bytes authenticated")
            } catch { #expect(error.isMalformedInput, "seed \(seed) round \(round): \(error)") }
            // The accessory state machine too: random frames before and after a pairing start.
            var acc = CompanionAccessoryConnection(identity: .pyatvFakeDevice, pin: "1111")
            do { _ = try acc.receive(hex("03000013e2435f706476000100060101455f7077547909") + bytes, controllers: []) } catch {
                #expect(error.isMalformedInput, "seed \(seed) round \(round): \(error)")
            }
        }
    }

    /// Our controller-side state machines against our accessory side, through frames in memory.
    @Test func pairSetupThenVerifyThenEncryptedMessages() throws {
        var acc = CompanionAccessoryConnection(identity: .pyatvFakeDevice, pin: "1111")
        var controllers: [HAPPairedController] = []
        var cEnc = CompanionFrameEncoder(key: nil), cDec = CompanionFrameDecoder(key: nil)

        func exchange(_ type: CompanionFrameType, _ payload: [UInt8]) throws -> (tlv: [UInt8], outputs: [CompanionAccessoryConnection.Output]) {
            let outs = try acc.receive(try cEnc.encode(CompanionFrame(type: type.rawValue, payload: payload)), controllers: controllers)
            var tlv: [UInt8] = []
            for case .send(let b) in outs {
                for f in try cDec.decode(b) { tlv = try CompanionAuth.tlv(from: f.payload) }
            }
            return (tlv, outs)
        }

        var setup = HAPPairSetupClient(pin: "1111")
        var (tlv, _) = try exchange(.pairSetupStart, CompanionAuth.pairSetupPayload(try setup.start()))
        var creds: HAPCredentials?
        while creds == nil {
            switch try setup.handle(tlv) {
            case .send(let next):
                let r = try exchange(.pairSetupNext, CompanionAuth.pairSetupPayload(next))
                tlv = r.tlv
                for case .paired(let c) in r.outputs { controllers.append(c) }
            case .paired(let c): creds = c
            case .transient: Issue.record("unexpected transient")
            }
        }
        #expect(controllers.count == 1)
        #expect(creds?.deviceID == HAPIdentity.pyatvFakeDevice.identifier)

        var verify = HAPPairVerifyClient(credentials: creds!)
        var r = try exchange(.pairVerifyStart, CompanionAuth.pairVerifyPayload(try verify.start(), first: true))
        guard case .send(let m3) = try verify.handle(r.tlv) else { Issue.record("no M3"); return }
        r = try exchange(.pairVerifyNext, CompanionAuth.pairVerifyPayload(m3, first: false))
        guard case .verified(let shared) = try verify.handle(r.tlv) else { Issue.record("not verified"); return }
        #expect(acc.isEncrypted)
        let keys = HAPChannel.companion.keys(sharedSecret: shared)
        cEnc.enableEncryption(key: keys.output)
        cDec.enableEncryption(key: keys.input)

        let req = CompanionMessage.request("FetchLaunchableApplicationsEvent", xid: 5)
        let outs = try acc.receive(try cEnc.encode(CompanionFrame(type: 8, payload: req.encoded())), controllers: controllers)
        #expect(outs == [.message(req)])
        let reply = try acc.encode(.response(to: 5, .dict(["com.example": .string("Example")])))
        let frames = try cDec.decode(reply)
        #expect(try CompanionMessage(decoding: frames[0].payload).content["com.example"] == .string("Example"))

        // A wrong PIN: the accessory answers with an error and reports the failure.
        var acc2 = CompanionAccessoryConnection(identity: .pyatvFakeDevice, pin: "2222")
        acc = acc2
        cEnc = CompanionFrameEncoder(key: nil); cDec = CompanionFrameDecoder(key: nil)
        var bad = HAPPairSetupClient(pin: "1111")
        (tlv, _) = try exchange(.pairSetupStart, CompanionAuth.pairSetupPayload(try bad.start()))
        guard case .send(let m3bad) = try bad.handle(tlv) else { Issue.record("no M3"); return }
        let failed = try exchange(.pairSetupNext, CompanionAuth.pairSetupPayload(m3bad))
        #expect(failed.outputs.contains { if case .authFailed = $0 { true } else { false } })
        #expect(throws: ATVError.self) { _ = try bad.handle(failed.tlv) }
        acc2 = acc
    }
}
