import ATVTestSupport
import Testing
@testable import ATVAuth
import ATVCore
import Crypto

@Suite struct KeyDerivationTests {
    // Expected values computed with pyatv 0.18's hkdf_expand (python `cryptography`), secret = 00 01 … 1f.
    let secret = (0 ..< 32).map { UInt8($0) }

    @Test func hkdfMatchesPyatv() {
        #expect(HAPChannel.mrp.keys(sharedSecret: secret).output
                == hex("e6e2dcf8283a5c51a12284e90dff6073226384331dbf87dfc0e2959fdeee31dc"))
        #expect(HAPChannel.companion.keys(sharedSecret: secret).output
                == hex("9f8aa265911271e6d6e90daf564d82b5913d4b760373afbd6c03e675af681f8d"))
        #expect(HAPChannel.airPlayControl.keys(sharedSecret: secret).input
                == hex("c09403ef8aa6c5045cbd8cf9bf3e665b2caed623af2be0e87c8f80f519914d3d"))
        #expect(HAPChannel.airPlayDataStream(seed: 1_234_567_890).keys(sharedSecret: secret).output
                == hex("2bc3008242da3b6d1967fa946d34ebcf1b559bb4a95445ffb07cf8221e48576d"))
    }

    @Test func accessoryRoleSwapsKeysAndEventsLabelsAreSwapped() {
        for ch in [HAPChannel.mrp, .companion, .airPlayControl, .airPlayEvents, .airPlayDataStream(seed: 7)] {
            let c = ch.keys(sharedSecret: secret, role: .controller)
            let a = ch.keys(sharedSecret: secret, role: .accessory)
            #expect(c.output == a.input && c.input == a.output)
            #expect(c.output != c.input)
        }
        // pyatv: the event channel's output key uses the "Read" label.
        #expect(HAPChannel.airPlayEvents.keys(sharedSecret: secret).output
                == HAPKeys.hkdf(salt: "Events-Salt", info: "Events-Read-Encryption-Key", secret: secret))
        #expect(HAPChannel.airPlayAudioKey(sharedSecret: secret) == HAPChannel.airPlayEvents.keys(sharedSecret: secret).input)
    }

    @Test func pyatvFakeDeviceIdentity() throws {
        // pyatv's test vector: seed aa×32.
        let id = HAPIdentity.pyatvFakeDevice
        #expect(id.publicKey == hex("e734ea6c2b6257de72355e472aa05a4c487e6b463c029ed306df2f01b5636b58"))
        let x = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 0xAA, count: 32))
        #expect(Array(x.publicKey.rawRepresentation) == hex("14ca9e4d387bccf35746e0407daaacc6b28a4f8445ef5a5158894db983e24070"))
    }

    @Test func credentialsStringRoundTripAndPyatvFormat() throws {
        let s = "E734EA6C2B6257DE72355E472AA05A4C487E6B463C029ED306DF2F01B5636B58:"
            + "80FD8265B0748DA90BC5C5294DABE394D3D47199994AE96AC73EE45C783537B1:"
            + "35443739374644332D333533382D343237452D413437422D413332464336434633413641:"
            + "34443739374644332D333533382D343237452D413437422D413332464336434633413641"
        let c = try HAPCredentials(parsing: s)
        #expect(String(decoding: c.deviceID, as: UTF8.self) == "5D797FD3-3538-427E-A47B-A32FC6CF3A6A")
        #expect(String(decoding: c.clientID, as: UTF8.self) == "4D797FD3-3538-427E-A47B-A32FC6CF3A6A")
        #expect(c.stringValue == s.lowercased())
        #expect(try HAPCredentials(parsing: c.stringValue) == c)
        #expect(!c.description.contains(Hex.encode(c.clientLTSK)))
        #expect(throws: ATVError.self) { try HAPCredentials(parsing: "aa:bb") }
        #expect(throws: ATVError.self) { try HAPCredentials(parsing: "zz:bb:cc:dd") }
        #expect(throws: ATVError.self) { try HAPCredentials(parsing: "aa:bb:cc:dd") }  // keys not 32 bytes
    }
}

@Suite struct FramingTests {
    let key = (0 ..< 32).map { UInt8($0) }

    @Test func noncesAndCiphertextMatchPyatv() throws {
        #expect(NonceLayout.hap.nonce(1) == hex("00000000 0100000000000000"))
        #expect(NonceLayout.companion.nonce(1) == hex("0100000000000000 00000000"))
        #expect(NonceLayout.hap.nonce(0x0102030405060708) == hex("00000000 0807060504030201"))
        // pyatv Chacha20Cipher8byteNonce / Chacha20Cipher(nonce_length=12), second message (counter 1).
        var h = ChaChaCounterCipher(key: key, layout: .hap, counter: 1)
        #expect(try h.seal(Array("hello".utf8), aad: [5, 0]) == hex("f7329f33da84a765025f4581d5427773bb71668a71"))
        var c = ChaChaCounterCipher(key: key, layout: .companion, counter: 1)
        #expect(try c.seal(Array("hello".utf8), aad: [8, 0, 0, 0x15]) == hex("fc5a1782ab4f76f7086d0677f8d4c20013f1b5ede2"))
    }

    @Test func hapFramesSplitAt1024AndDecodeIncrementally() throws {
        var enc = HAPFrameEncoder(key: key)
        var dec = HAPFrameDecoder(key: key)
        let msg = (0 ..< 2500).map { UInt8($0 % 251) }
        let wire = try enc.encode(msg)
        #expect(wire.count == 2500 + 3 * 18)
        #expect(Array(wire.prefix(2)) == [0x00, 0x04])  // 1024 LE
        // Feed in awkward pieces: partial length fields, partial tags.
        var out: [UInt8] = []
        var i = 0
        var g = SplitMix64(seed: 42)
        while i < wire.count {
            let n = min(wire.count - i, Int.random(in: 1 ... 300, using: &g))
            out += try dec.decode(Array(wire[i ..< i + n]))
            i += n
        }
        #expect(out == msg)
        #expect(dec.bufferedByteCount == 0)
        #expect(try enc.encode([]) == [])
    }

    @Test func tamperedReplayedAndReorderedHAPFramesFail() throws {
        var enc = HAPFrameEncoder(key: key)
        let f1 = try enc.encode(Array("one".utf8))
        let f2 = try enc.encode(Array("two".utf8))

        var d1 = HAPFrameDecoder(key: key)
        var bad = f1
        bad[3] ^= 0x01
        #expect(throws: ATVError.self) { try d1.decode(bad) }
        // Poisoned: even the genuine frame is refused afterwards.
        #expect(throws: ATVError.self) { try d1.decode(f1) }

        var d2 = HAPFrameDecoder(key: key)
        #expect(try d2.decode(f1) == Array("one".utf8))
        #expect(throws: ATVError.self) { try d2.decode(f1) }  // replay

        var d3 = HAPFrameDecoder(key: key)
        #expect(throws: ATVError.self) { try d3.decode(f2) }  // out of order

        var d4 = HAPFrameDecoder(key: key)
        var lenTampered = f1
        lenTampered[0] = 2  // AAD covers the length
        #expect(throws: ATVError.self) { try d4.decode(lenTampered + [0]) }

        var d5 = HAPFrameDecoder(key: key)
        #expect(throws: ATVError.self) { try d5.decode([0x01, 0x08]) }  // 2049 > 1024
    }

    @Test func counterNeverRepeats() throws {
        var c = ChaChaCounterCipher(key: key, layout: .hap, counter: .max - 1)
        _ = try c.seal([1])
        _ = try c.seal([2])  // uses UInt64.max
        #expect(throws: ATVError.self) { try c.seal([3]) }
        #expect(throws: ATVError.self) { try c.seal([3]) }
        var d = ChaChaCounterCipher(key: key, layout: .companion, counter: .max)
        var e = ChaChaCounterCipher(key: key, layout: .companion, counter: .max)
        #expect(try d.open(try e.seal([9])) == [9])
        #expect(throws: ATVError.self) { try e.seal([9]) }
    }

    @Test func companionFrames() throws {
        var enc = CompanionFrameEncoder(key: key)
        var dec = CompanionFrameDecoder(key: key)
        let a = try enc.encode(CompanionFrame(type: 8, payload: Array("hello".utf8)))
        #expect(Array(a.prefix(4)) == [8, 0, 0, 21])
        let empty = try enc.encode(CompanionFrame(type: 8, payload: []))
        #expect(empty == [8, 0, 0, 0])  // sent unencrypted, no counter used
        let b = try enc.encode(CompanionFrame(type: 9, payload: [UInt8](repeating: 7, count: 70_000)))
        let wire = a + empty + b
        var frames: [CompanionFrame] = []
        for chunk in stride(from: 0, to: wire.count, by: 999) {
            frames += try dec.decode(Array(wire[chunk ..< min(wire.count, chunk + 999)]))
        }
        #expect(frames == [CompanionFrame(type: 8, payload: Array("hello".utf8)), CompanionFrame(type: 8, payload: []),
                           CompanionFrame(type: 9, payload: [UInt8](repeating: 7, count: 70_000))])
        var replay = CompanionFrameDecoder(key: key)
        _ = try replay.decode(a)
        #expect(throws: ATVError.self) { try replay.decode(a) }
        var header = CompanionFrameDecoder(key: key)
        var t = a
        t[0] = 9  // the header is authenticated
        #expect(throws: ATVError.self) { try header.decode(t) }
        var plain = CompanionFrameEncoder(key: nil)
        #expect(try plain.encode(CompanionFrame(type: 3, payload: [1, 2])) == [3, 0, 0, 2, 1, 2])
    }

    /// Random bytes never authenticate: a keyed HAP decoder yields no plaintext from them (it waits
    /// for more or fails with an input error, and stays failed: a valid block afterwards is refused),
    /// a keyed Companion decoder yields only empty frames (sent in the clear). Plain Companion frames
    /// re-encode to exactly the bytes they came from.
    @Test func decodersFuzzNeverCrash() throws {
        let seed = TestSeed.value(default: 99)
        var g = SplitMix64(seed: seed)
        var hapRejected = 0
        for i in 0 ..< 3000 {
            let junk = randomBytes(Int.random(in: 0 ... 3000, using: &g), using: &g)
            var h = HAPFrameDecoder(key: key)
            do {
                #expect(try h.decode(junk).isEmpty, "seed \(seed) case \(i): random bytes authenticated")
            } catch {
                hapRejected += 1
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
                var e = HAPFrameEncoder(key: key)
                #expect(throws: ATVError.self, "seed \(seed) case \(i): a failed decoder accepted a block") {
                    try h.decode(try e.encode([1, 2, 3]))
                }
            }
            var c = CompanionFrameDecoder(key: key)
            do {
                #expect(try c.decode(junk).allSatisfy(\.payload.isEmpty), "seed \(seed) case \(i): random bytes authenticated")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            var p = CompanionFrameDecoder(key: nil)
            let frames = try p.decode(junk)
            var enc = CompanionFrameEncoder(key: nil)
            let reframed = try frames.flatMap { f throws(ATVError) in try enc.encode(f) }
            #expect(reframed.count + p.bufferedByteCount == junk.count && junk.starts(with: reframed), "seed \(seed) case \(i)")
        }
        #expect(hapRejected > 0, "seed \(seed)")
    }
}
