import ATVTestSupport
import ATVAuth
import ATVCore
@testable import ATVCompanion
import Testing

@Suite struct OPACKVectorTests {
    // Vectors from pyatv's tests/support/test_opack.py.
    @Test func scalarVectors() throws {
        #expect(OPACK.int(0x28).encoded() == hex("3028"))
        #expect(OPACK.int(0x1FF).encoded() == hex("31ff01"))
        #expect(OPACK.double(1.0).encoded() == hex("36000000000000f03f"))
        #expect(OPACK.string("a").encoded() == hex("4161"))
        #expect(OPACK.string(String(repeating: "a", count: 33)).encoded() == hex("6121") + [UInt8](repeating: 0x61, count: 33))
        #expect(OPACK.string(String(repeating: "a", count: 256)).encoded() == hex("620001") + [UInt8](repeating: 0x61, count: 256))
        #expect(OPACK.data([0xAC]).encoded() == hex("71ac"))
        #expect(OPACK.data([UInt8](repeating: 0x61, count: 65536)).encoded() == hex("9300000100") + [UInt8](repeating: 0x61, count: 65536))
        #expect(OPACK.null.encoded() == [0x04])
        #expect(OPACK.bool(true).encoded() == [0x01] && OPACK.bool(false).encoded() == [0x02])
        #expect(OPACK.int(-1).encoded() == [0x07])
        #expect(OPACK.int(0).encoded() == [0x08] && OPACK.int(39).encoded() == [0x2F])
        #expect(OPACK.int(0x1_0000).encoded() == hex("3200000100"))
        #expect(OPACK.int(0x1_0000_0000).encoded() == hex("330000000001000000"))
    }

    @Test func collectionVectors() throws {
        #expect(OPACK.array([.int(1), .string("test"), .bool(false)]).encoded() == hex("d3 09 4474657374 02"))
        #expect(OPACK.dictionary([.init(.string("a"), .int(12)), .init(.bool(false), .null)]).encoded() == hex("e2 4161 14 02 04"))
        #expect(OPACK.array(Array(repeating: .string("a"), count: 15)).encoded()
                == hex("df 4161") + [UInt8](repeating: 0xA0, count: 14) + [0x03])
        #expect(OPACK.array([.string("foo"), .string("bar"), .string("foo"), .string("bar")]).encoded()
                == hex("d4 43666f6f 43626172 a0 a1"))
        let nested = OPACK.dict(["a": .string("b"), "c": .dict(["d": .string("a")]), "d": .bool(true)])
        #expect(nested.encoded() == hex("e3 4161 4162 4163 e1 4164 a0 a3 01"))
        let hid = OPACK.dict(["_i": .string("_hidC"), "_t": .int(2), "_c": .dict(["_hBtS": .int(1), "_hidC": .int(6)]), "_x": .int(100)])
        #expect(hid.encoded() == hex("e4 425f69 455f68696443 425f74 0a 425f63 e2 455f68427453 09 a1 0e 425f78 3064"))
        #expect(try OPACK.decode(hid.encoded()) == hid)
    }

    @Test func decodeVectors() throws {
        for tail in ["c101", "c20100", "c3010000", "c401000000"] {
            let v = try OPACK.decode(hex("df 3001 3002 " + tail + " 03"))
            #expect(v.arrayValue?.compactMap(\.intValue) == [1, 2, 2], "\(tail)")
        }
        #expect(try OPACK.decode(hex("07")) == .int(-1))
        #expect(try OPACK.decode(hex("6f 616263 00")) == .string("abc"))
        #expect(try OPACK.decode(hex("35 0000803f")) == .float(1.0))
        #expect(try OPACK.decode(hex("3080")).intValue == 128)  // pyatv's _clFl: unsigned
        #expect(try OPACK.decode(hex("05 00112233445566778899aabbccddeeff")) == .uuid(hex("00112233445566778899aabbccddeeff")))
        #expect(try OPACK.decode(hex("06 0100000000000000")) == .absoluteTime(1))
        #expect(try OPACK.decode(hex("ef 4161 09 4162 0a 03")) == .dict(["a": .int(1), "b": .int(2)]))
        // Strings and data with every length form.
        #expect(try OPACK.decode(hex("6303000061 6263")) == .string("abc"))
        #expect(try OPACK.decode(hex("640300000061 6263")) == .string("abc"))
        #expect(try OPACK.decode(hex("9102 abcd")) == .data([0xAB, 0xCD]))
        #expect(try OPACK.decode(hex("920200 abcd")) == .data([0xAB, 0xCD]))
        #expect(try OPACK.decode(hex("940200000000000000 abcd")) == .data([0xAB, 0xCD]))
        // The Companion PS M1 payload from the reference.
        let m1 = try OPACK.decode(hex("e2435f706476000100060101455f7077547909"))
        #expect(m1["_pd"] == .data(hex("000100060101")) && m1["_pwTy"]?.intValue == 1)
    }

    @Test func widthsAndNegativesRoundTrip() throws {
        for w in [1, 2, 4, 8] {
            let v = OPACK.sizedInt(5, width: w)
            #expect(try OPACK.decode(v.encoded()) == v)
            #expect(v.encoded().count == 1 + w)
        }
        for n: Int64 in [-2, -1000, .min, .max, 40, 255, 256, 65535, 65536] {
            #expect(try OPACK.decode(OPACK.int(n).encoded()).intValue == n, "\(n)")
        }
    }

    @Test func backReferencesFollowTheDecodersTable() throws {
        // Repeated wide numbers, data and UUIDs are referenced; small ints and -1 are not.
        let u = OPACK.uuid([UInt8](repeating: 7, count: 16))
        let v = OPACK.array([.int(1000), .data([1, 2]), u, .int(3), .int(1000), .data([1, 2]), u, .int(3), .int(-1), .int(-1)])
        let e = v.encoded()
        #expect(Array(e.suffix(6)) == hex("a0 a1 a2 0b 07 07"))
        #expect(try OPACK.decode(e) == v)
        // A float equal to an earlier integer is not a new table entry (as pyatv's decoder), so it
        // is written in full and later references keep their indices.
        let mixed = OPACK.array([.int(300), .double(300), .string("x"), .string("x")])
        let m = mixed.encoded()
        #expect(m.suffix(1) == [0xA1])
        #expect(try OPACK.decode(m) == mixed)
        // More than 33 distinct strings: references with an explicit index.
        let many = (0 ..< 300).map { OPACK.string("s\($0)") }
        let all = OPACK.array(many + many)
        #expect(try OPACK.decode(all.encoded()) == all)
        #expect(all.encoded().contains(0xC2))
    }

    @Test func rejectsMalformedInput() {
        for bad in ["", "d2 09", "41", "61 05 6162", "9405000000000000ff aa", "a0", "c1 05", "df 09", "ef 4161", "f0", "34 00",
                    "41 ff", "e1 4161", "6f 6162", "0909"] {
            #expect(throws: ATVError.self, "\(bad)") { try OPACK.decode(hex(bad)) }
        }
        // Nesting is bounded.
        #expect(throws: ATVError.self) { try OPACK.decode([UInt8](repeating: 0xD1, count: 10_000) + [0x08]) }
    }
}

@Suite struct OPACKFuzzTests {
    static func randomValue(_ r: inout SplitMix64, depth: Int = 0) -> OPACK {
        let pick = Int.random(in: 0 ..< (depth > 3 ? 11 : 13), using: &r)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &r))
        case 2: return .int(Int64.random(in: -5 ... 50, using: &r))
        case 3: return .int(Int64.random(in: .min ... .max, using: &r))
        case 4: return .sizedInt(UInt64.random(in: 0 ... 39, using: &r), width: [1, 2, 4, 8].randomElement(using: &r)!)
        case 5: return .double(Double(Int.random(in: -1000 ... 1000, using: &r)) / 8)
        case 6: return .float(Float(Int.random(in: -1000 ... 1000, using: &r)) / 4)
        case 7: return .string(["a", "_i", "com.apple.TVMusic", String(repeating: "é", count: Int.random(in: 0 ... 300, using: &r))].randomElement(using: &r)!)
        case 8: return .data((0 ..< Int.random(in: 0 ... 70, using: &r)).map { _ in UInt8.random(in: 0 ... 3, using: &r) })
        case 9: return .uuid((0 ..< 16).map { _ in UInt8.random(in: 0 ... 1, using: &r) })
        case 10: return .absoluteTime(UInt64.random(in: 0 ... 3, using: &r))
        case 11: return .array((0 ..< Int.random(in: 0 ... 17, using: &r)).map { _ in randomValue(&r, depth: depth + 1) })
        default:
            return .dictionary((0 ..< Int.random(in: 0 ... 17, using: &r)).map { _ in
                .init(randomValue(&r, depth: depth + 1), randomValue(&r, depth: depth + 1))
            })
        }
    }

    @Test func randomValuesRoundTrip() throws {
        let seed = TestSeed.value(default: 42)
        var r = SplitMix64(seed: seed)
        for _ in 0 ..< 2000 {
            let v = Self.randomValue(&r)
            #expect(try OPACK.decode(v.encoded()) == v, "seed \(seed): \(v)")
        }
    }

    /// Every input decodes to a value whose encoding is stable (encode → decode → encode gives the
    /// same bytes) or fails with an input error.
    @Test func garbageNeverCrashes() {
        let seed = TestSeed.value(default: 7)
        var r = SplitMix64(seed: seed)
        var decoded = 0, rejected = 0
        for i in 0 ..< 20_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0 ..< Int.random(in: 0 ... 40, using: &r)).map { _ in UInt8.random(in: 0 ... 255, using: &r) }
            } else {
                // Mutations of valid encodings.
                bytes = Self.randomValue(&r).encoded()
                for _ in 0 ..< Int.random(in: 1 ... 4, using: &r) where !bytes.isEmpty {
                    bytes[Int.random(in: 0 ..< bytes.count, using: &r)] = UInt8.random(in: 0 ... 255, using: &r)
                }
                if Bool.random(using: &r) { bytes = Array(bytes.prefix(Int.random(in: 0 ... bytes.count, using: &r))) }
            }
            do {
                let v = try OPACK.decode(bytes)
                decoded += 1
                let once = v.encoded()
                #expect(try OPACK.decode(once).encoded() == once, "seed \(seed) case \(i): \(hexString(bytes))")
            } catch {
                rejected += 1
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(decoded > 0 && rejected > 0, "seed \(seed): decoded \(decoded) rejected \(rejected)")
    }
}
