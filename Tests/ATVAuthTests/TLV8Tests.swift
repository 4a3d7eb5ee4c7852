import ATVTestSupport
import Testing
@testable import ATVAuth
import ATVCore

@Suite struct TLV8Tests {
    // Vectors: pyatv tests/auth/test_hap_tlv8.py.
    @Test func singleItem() throws {
        let t = TLV8([.init(TLV8.Tag(10), Array("123".utf8))])
        #expect(t.encoded() == hex("0a03313233"))
        #expect(try TLV8.decode(hex("0a03313233")) == t)
    }

    @Test func twoItems() throws {
        let bytes = hex("0103313131 0403323232")
        let t = try TLV8.decode(bytes)
        #expect(t[.identifier] == Array("111".utf8))
        #expect(t[.proof] == Array("222".utf8))
        #expect(t.encoded() == bytes)
    }

    @Test func valueOver255BytesIsFragmented() throws {
        let value = [UInt8](repeating: 0x31, count: 256)
        let t = TLV8([.init(.salt, value)])
        let expected = [0x02, 0xFF] + [UInt8](repeating: 0x31, count: 255) + [0x02, 0x01, 0x31]
        #expect(t.encoded() == expected)
        let back = try TLV8.decode(expected)
        #expect(back.items.count == 1)
        #expect(back[.salt] == value)
    }

    @Test func largeValuesRoundTrip() throws {
        // A 384-byte SRP public key next to a 64-byte proof, and an exact multiple of 255.
        let pk = (0 ..< 384).map { UInt8($0 & 0xFF) }
        let exact = [UInt8](repeating: 7, count: 510)
        let t = TLV8([.init(.state, [3]), .init(.publicKey, pk), .init(.proof, [UInt8](repeating: 9, count: 64)),
                      .init(.encryptedData, exact)])
        let back = try TLV8.decode(t.encoded())
        #expect(back == t)
        #expect(back.byte(.state) == 3)
    }

    @Test func transientM1() {
        let m1 = TLV8([.init(.method, [0]), .init(.state, [1]), .init(.flags, [TLV8.transientFlag])])
        #expect(m1.encoded() == hex("000100 060101 130110"))
    }

    @Test func emptyValueAndSeparator() throws {
        let t = TLV8([.init(.identifier, Array("a".utf8)), .init(.separator, []), .init(.identifier, Array("b".utf8))])
        let back = try TLV8.decode(t.encoded())
        #expect(back.items.count == 3)
        #expect(back == t)
    }

    @Test func truncatedInputThrows() {
        #expect(throws: ATVError.self) { try TLV8.decode(hex("0a")) }
        #expect(throws: ATVError.self) { try TLV8.decode(hex("0a05313233")) }
    }

    @Test func fuzzNeverCrashes() {
        var g = SplitMix64(seed: 0x7157_8)
        var decoded = 0
        for i in 0 ..< 20_000 {
            let n = Int.random(in: 0 ... 600, using: &g)
            var bytes = randomBytes(n, using: &g)
            if i % 2 == 0, n > 4 {
                // Mutate a valid encoding so the parser goes deep, not only fails at once.
                let valid = TLV8([.init(.publicKey, Array(bytes.prefix(n / 2))), .init(.state, [2])]).encoded()
                bytes = valid
                bytes[Int.random(in: 0 ..< bytes.count, using: &g)] ^= UInt8.random(in: 1 ... 255, using: &g)
                if Bool.random(using: &g) { bytes.removeLast(Int.random(in: 0 ... min(3, bytes.count), using: &g)) }
            }
            if let t = try? TLV8.decode(bytes) {
                decoded += 1
                // Whatever decodes re-encodes to something that decodes to the same value.
                #expect((try? TLV8.decode(t.encoded())) == t)
            }
        }
        #expect(decoded > 100)
    }
}
