import ATVCore
import ATVTestSupport
import Foundation
import Testing

/// Inputs the coverage-guided fuzzer (`scripts/fuzz`, target `plist`) found crashing the decoders.
enum CraftedPlists {
    /// A trailer: offset size, reference size, object count, top object, offset-table position.
    static func trailer(offsetSize: UInt8, refSize: UInt8, count: UInt64, top: UInt64, table: UInt64) -> [UInt8] {
        [UInt8](repeating: 0, count: 6) + [offsetSize, refSize] + be(count) + be(top) + be(table)
    }

    static func be(_ v: UInt64) -> [UInt8] { (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    /// One array whose single 8-byte object reference is 2^63 (no Int can hold it).
    static let hugeReference = Array("bplist00".utf8) + [0xA1] + be(1 << 63) + [8]
        + trailer(offsetSize: 1, refSize: 8, count: 1, top: 0, table: 17)
    /// One object whose 8-byte offset-table entry is 2^63.
    static let hugeOffset = Array("bplist00".utf8) + [0x09] + be(1 << 63)
        + trailer(offsetSize: 8, refSize: 1, count: 1, top: 0, table: 9)
}

@Suite struct BinaryPlistParserTests {
    @Test func referencesAndOffsetsBeyondIntAreErrorsNotTraps() throws {
        #expect(throws: (any Error).self) { try BinaryPlistParser.parse(CraftedPlists.hugeReference) }
        #expect(throws: (any Error).self) { try BinaryPlistParser.parse(CraftedPlists.hugeOffset) }
        // The same shape with a valid reference parses.
        let valid = Array("bplist00".utf8) + [0xA1] + CraftedPlists.be(1) + [0x09] + [8, 17]
            + CraftedPlists.trailer(offsetSize: 1, refSize: 8, count: 2, top: 0, table: 18)
        #expect(try BinaryPlistParser.parse(valid) == .array([.bool(true)]))
    }
}

/// The one bplist00 codec (ATVCore's `BinaryPlist`): bytes written by Python's plistlib (what pyatv
/// sends; an encoder we did not write) decode to the expected value and are what we encode, and
/// Foundation's writer and reader agree with ours.
@Suite struct BinaryPlistTests {
    /// plistlib.dumps({"s": "héllo ✓", "a": "ascii", "i": 42, "w": 300, "x": 70000, "big": 1 << 40,
    /// "neg": -7, "d": 0.25, "t": True, "f": False, "data": bytes(range(20)),
    /// "arr": [1, "two", [3.5], "ascii"], "nested": {"k": {"deep": "v"}}, "long": "x" * 20,
    /// "uid": UID(300), "u1": UID(7), "date": datetime(2001, 1, 2)}, fmt=FMT_BINARY)
    static let plistlibVector = hex("""
        62706c6973743030df10110102030405060708090a0b0c0d0e0f1011121318191a1b1c1d1e1f2025262728292a5161536172725362696751645464\
        617461546461746551665169546c6f6e67536e6567566e6573746564517351745275315375696451775178556173636969a41415161210015374776f\
        a11723400c000000000000130000010000000000233fd00000000000004f1014000102030405060708090a0b0c0d0e0f101112133340f51800000000\
        0008102a5f1014787878787878787878787878787878787878787813fffffffffffffff9d12122516bd123245464656570517667006800e9006c006c00\
        6f0020271309800781012c11012c12000111700008002d002f003300370039003e004300450047004c005000570059005b005e00620064006600\
        6c00710073007700790082008b009400ab00b400b500b700ce00d700da00dc00df00e400e600f500f600f800fb00fe00000000000002010000000000\
        00002b00000000000000000000000000000103
        """)
    static let plistlibValue = PlistValue.dict([
        "s": .string("héllo ✓"), "a": .string("ascii"), "i": .int(42), "w": .int(300), "x": .int(70000), "big": .int(1 << 40),
        "neg": .int(-7), "d": .real(0.25), "t": .bool(true), "f": .bool(false), "data": .data(Array(0 ..< 20)),
        "arr": .array([.int(1), .string("two"), .array([.real(3.5)]), .string("ascii")]),
        "nested": .dict(["k": .dict(["deep": .string("v")])]), "long": .string(String(repeating: "x", count: 20)),
        "uid": .uid(300), "u1": .uid(7), "date": .date(86400),
    ])

    @Test func plistlibBytesDecodeAndEncodeIdentically() throws {
        #expect(try BinaryPlist.decode(Self.plistlibVector) == Self.plistlibValue)
        #expect(BinaryPlist.encode(Self.plistlibValue) == Self.plistlibVector)
        // plistlib.dumps({"a": None}, fmt=FMT_BINARY)
        let none = hex("62706c6973743030d10102516100080b0d000000000000010100000000000000030000000000000000000000000000000e")
        #expect(try BinaryPlist.decode(none) == .dict(["a": .null]))
        #expect(BinaryPlist.encode(.dict(["a": .null])) == none)
    }

    @Test func roundTripsEveryKindAndWidth() throws {
        let v = PlistValue.dict([
            "ints": .array([.int(0), .int(255), .int(256), .int(65535), .int(65536), .int(1 << 32), .int(.max), .int(.min), .int(-1)]),
            "uids": .array([.uid(0), .uid(255), .uid(256), .uid(70000), .uid(1 << 33)]),
            "strings": .array([.string(""), .string("x"), .string(String(repeating: "é", count: 300)), .string("héllo ✓")]),
            "data": .array([.data([]), .data(Array(repeating: 7, count: 70000))]),
            "reals": .array([.real(-0.5), .real(1e300), .real(.infinity)]), "date": .date(-1.5), "null": .null,
            "empty": .dict([:]), "emptyArray": .array([]),
        ])
        let bytes = BinaryPlist.encode(v)
        #expect(try BinaryPlist.decode(bytes) == v)
        // Equal strings are written once: "héllo ✓" appears in the UTF-16 form once.
        let utf16 = Array("héllo ✓".utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        let twice = BinaryPlist.encode(.array([.string("héllo ✓"), .string("héllo ✓")]))
        #expect(twice.count == BinaryPlist.encode(.array([.string("héllo ✓")])).count + 1)
        #expect(twice.windows(utf16.count).filter { Array($0) == utf16 }.count == 1)
    }

    /// Our decoder reads what Foundation writes, every type Foundation writes; Foundation reads what we write.
    @Test func agreesWithFoundation() throws {
        let value: [String: Any] = [
            "s": "héllo ✓", "a": "ascii", "i": 42, "neg": -7, "big": Int64(1) << 40, "d": 0.25, "t": true, "f": false,
            "data": Data([1, 2, 3]), "arr": [1, "two", [3.5]], "nested": ["k": ["deep": "v"]],
            "long": String(repeating: "x", count: 300),
        ]
        let foundation = try PropertyListSerialization.data(fromPropertyList: value, format: .binary, options: 0)
        let expected = PlistValue.dict([
            "s": .string("héllo ✓"), "a": .string("ascii"), "i": .int(42), "neg": .int(-7), "big": .int(1 << 40), "d": .real(0.25),
            "t": .bool(true), "f": .bool(false), "data": .data([1, 2, 3]),
            "arr": .array([.int(1), .string("two"), .array([.real(3.5)])]), "nested": .dict(["k": .dict(["deep": .string("v")])]),
            "long": .string(String(repeating: "x", count: 300)),
        ])
        #expect(try BinaryPlist.decode([UInt8](foundation)) == expected)
        // Foundation reads ours; what it read, written again by Foundation, is the same value.
        let back = try PropertyListSerialization.propertyList(from: Data(BinaryPlist.encode(expected)), format: nil)
        let rewritten = try PropertyListSerialization.data(fromPropertyList: back, format: .binary, options: 0)
        #expect(try BinaryPlist.decode([UInt8](rewritten)) == expected)
    }

    @Test func handMadeVectorsAndLimits() throws {
        // {"a": 1} written by hand: objects at 8 (dict), 11 ("a"), 13 (int 1); offset table at 15.
        let hand: [UInt8] = Array("bplist00".utf8) + [0xD1, 0x01, 0x02, 0x51, 0x61, 0x10, 0x01, 0x08, 0x0B, 0x0D]
            + [0, 0, 0, 0, 0, 0, 1, 1] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 15]
        #expect(try BinaryPlistParser.parse(hand) == .dict(["a": .int(1)]))
        #expect(BinaryPlist.encode(.dict(["a": .int(1)])) == hand)
        // A self-referencing array is cut by the depth limit, not a crash.
        let loop: [UInt8] = Array("bplist00".utf8) + [0xA1, 0x00, 0x08]
            + [0, 0, 0, 0, 0, 0, 1, 1] + [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 10]
        #expect(throws: BinaryPlistParser.Failure.tooDeep) { try BinaryPlistParser.parse(loop) }
        #expect(throws: BinaryPlistParser.Failure.notBinaryPlist) { try BinaryPlistParser.parse(Array("<?xml version".utf8)) }
    }

    @Test func malformedInputIsAnATVError() {
        #expect(throws: ATVError.self) { try BinaryPlist.decode(Array("<?xml version".utf8)) }
        #expect(throws: ATVError.self) { try BinaryPlist.decode(Array(Self.plistlibVector.dropLast())) }
        for n in 0 ..< Self.plistlibVector.count { _ = try? BinaryPlist.decode(Array(Self.plistlibVector.prefix(n))) }
    }

    /// Seeded mutations of a real plist: each either fails with an error or decodes to a value whose
    /// encoding decodes back to it and re-encodes to the same bytes.
    @Test func whateverDecodesReencodesStably() throws {
        var state: UInt64 = 0x5EED_1234
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var decoded = 0
        for _ in 0 ..< 3000 {
            var b = Self.plistlibVector
            for _ in 0 ..< 1 + Int(next() % 4) { b[Int(next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: next()) }
            guard let value = try? BinaryPlist.decode(b) else { continue }
            decoded += 1
            let once = BinaryPlist.encode(value)
            let again = try BinaryPlist.decode(once)
            #expect(BinaryPlist.encode(again) == once)
        }
        #expect(decoded > 100)  // the mutations reach the encoder, not only the error paths
    }
}

extension Array where Element == UInt8 {
    func windows(_ n: Int) -> [ArraySlice<UInt8>] {
        count < n ? [] : (0 ... count - n).map { self[$0 ..< $0 + n] }
    }
}
