import ATVTestSupport
import ATVAuth
import ATVCore
@testable import ATVCompanion
import Testing

@Suite struct KeyedArchiveTests {
    // pyatv 0.18's get_rti_input_text_payload(bytes(range(16)), "hi") and get_rti_clear_text_payload(bytes(range(16))),
    // written by Python's plistlib (an encoder we did not write).
    static let pyatvInsert = hex("62706c6973743030d4010203040506070a582476657273696f6e592461726368697665725424746f7058246f626a6563747312000186a05f10105254494b657965644172636869766572d108095e746578744f7065726174696f6e738001a80b0c1317181e222555246e756c6cd30d0e0f1011125e6b6579626f6172644f75747075745624636c6173735f101174617267657453657373696f6e55554944800280078005d2140e15165d696e73657274696f6e5465787480038004526869d2191a1b1c5a24636c6173736e616d655824636c61737365735f101054494b6579626f6172644f7574707574a21b1d584e534f626a656374d21f0e20215c4e532e7575696462797465734f1010000102030405060708090a0b0c0d0e0f8006d2191a2324564e5355554944a2231dd2191a26275f1011525449546578744f7065726174696f6e73a2261d00080011001a0024002900320037004a004d005c005e0067006d00740083008a009e00a000a200a400a900b700b900bb00be00c300ce00d700ea00ed00f600fb0108011b011d01220129012c013101450000000000000201000000000000002800000000000000000000000000000148")
    static let pyatvClear = hex("62706c6973743030d4010203040506070a582476657273696f6e592461726368697665725424746f7058246f626a6563747312000186a05f10105254494b657965644172636869766572d108095e746578744f7065726174696f6e738001a80b0c15171d1e222555246e756c6cd40d0e0f10111213145624636c6173735f101174617267657453657373696f6e555549445e6b6579626f6172644f75747075745c74657874546f4173736572748007800580028004d10d168003d218191a1b5a24636c6173736e616d655824636c61737365735f101054494b6579626f6172644f7574707574a21a1c584e534f626a65637450d21f0d20215c4e532e7575696462797465734f1010000102030405060708090a0b0c0d0e0f8006d218192324564e5355554944a2231cd2181926275f1011525449546578744f7065726174696f6e73a2261c00080011001a0024002900320037004a004d005c005e0067006d0076007d009100a000ad00af00b100b300b500b800ba00bf00ca00d300e600e900f200f300f801050118011a011f01260129012e01420000000000000201000000000000002800000000000000000000000000000145")

    @Test func readsPyatvsTextOperations() {
        let session = Array(UInt8(0) ..< 16)
        #expect(RTIArchive.operation(Self.pyatvInsert) == .init(session: session, insertionText: "hi", textToAssert: nil))
        #expect(RTIArchive.operation(Self.pyatvClear) == .init(session: session, insertionText: nil, textToAssert: ""))
    }

    @Test func ourArchivesDecodeAsPyatvsDo() throws {
        let session = Array(UInt8(0) ..< 16)
        // Same object graph as pyatv's. The bytes differ only in key order: pyatv writes these with
        // plistlib's sort_keys=False, we sort keys (as plistlib does by default).
        #expect(try BinaryPlist.decode(RTIArchive.insert(session: session, text: "hi")) == BinaryPlist.decode(Self.pyatvInsert))
        #expect(try BinaryPlist.decode(RTIArchive.clear(session: session)) == BinaryPlist.decode(Self.pyatvClear))
        #expect(RTIArchive.insert(session: session, text: "hi").count == Self.pyatvInsert.count)
        #expect(RTIArchive.clear(session: session).count == Self.pyatvClear.count)
        let s = RTIArchive.session(uuid: session, text: "Grüße")
        #expect(RTIArchive.property(s, ["sessionUUID"]) == .data(session))
        #expect(RTIArchive.property(s, ["documentState", "docSt", "contextBeforeInput"]) == .string("Grüße"))
        #expect(RTIArchive.property(s, ["missing"]) == nil)
    }

    /// Inputs the coverage-guided fuzzer (target `plist`) found trapping the decoder: an 8-byte
    /// offset-table entry or object reference of 2^63, which no Int holds.
    @Test func offsetsAndReferencesBeyondIntAreErrorsNotTraps() {
        func be(_ v: UInt64) -> [UInt8] { (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
        func trailer(_ offsetSize: UInt8, _ refSize: UInt8, table: UInt64) -> [UInt8] {
            [UInt8](repeating: 0, count: 6) + [offsetSize, refSize] + be(1) + be(0) + be(table)
        }
        let hugeOffset = Array("bplist00".utf8) + [0x09] + be(1 << 63) + trailer(8, 1, table: 9)
        let hugeReference = Array("bplist00".utf8) + [0xA1] + be(1 << 63) + [8] + trailer(1, 8, table: 17)
        #expect(throws: ATVError.self) { try BinaryPlist.decode(hugeOffset) }
        #expect(throws: ATVError.self) { try BinaryPlist.decode(hugeReference) }
        #expect(RTIArchive.operation(hugeOffset) == nil)
    }

    /// Found by the fuzzer as a hang: 40 arrays each holding the next one twice make 2^40 visits
    /// unless shared references are bounded.
    @Test func sharedReferencesCannotBlowUpTheWork() {
        var body = Array("bplist00".utf8)
        var offsets: [UInt8] = []
        for i in 0 ..< 40 { offsets.append(UInt8(body.count)); body += [0xA2, UInt8(i + 1), UInt8(i + 1)] }
        offsets.append(UInt8(body.count)); body.append(0x09)
        let table = UInt64(body.count)
        body += offsets + [UInt8](repeating: 0, count: 6) + [1, 1]
        for v in [UInt64(41), 0, table] { body += (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
        let start = ContinuousClock.now
        #expect(throws: ATVError.self) { try BinaryPlist.decode(body) }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func plistRoundTripAndGarbage() throws {
        let v = PlistValue.dict(["a": .array([.int(-5), .int(70000), .real(1.5), .bool(true), .null, .uid(300)]),
                                 "b": .string(String(repeating: "x", count: 40)), "c": .data([1, 2, 3])])
        #expect(try BinaryPlist.decode(BinaryPlist.encode(v)) == v)
        #expect(BinaryPlist.encode(try BinaryPlist.decode(Self.pyatvInsert)).count > 0)
        let seed = TestSeed.value(default: 5)
        var r = SplitMix64(seed: seed)
        var decoded = 0, rejected = 0
        func check(_ b: [UInt8], _ i: Int) {
            do {
                let v = try BinaryPlist.decode(b)
                decoded += 1
                // Whatever decodes re-encodes to a plist that decodes to the same bytes again.
                let once = BinaryPlist.encode(v)
                #expect(BinaryPlist.encode(try BinaryPlist.decode(once)) == once, "seed \(seed) case \(i)")
            } catch {
                rejected += 1
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
        for i in 0 ..< 5000 {
            var b = Self.pyatvInsert
            for _ in 0 ..< Int.random(in: 1 ... 6, using: &r) { b[Int.random(in: 0 ..< b.count, using: &r)] = UInt8.random(in: 0 ... 255, using: &r) }
            check(b, i)
            _ = RTIArchive.operation(b)
            check(Array(b.prefix(Int.random(in: 0 ... b.count, using: &r))), i)
        }
        #expect(decoded > 0 && rejected > 0, "seed \(seed): decoded \(decoded) rejected \(rejected)")
    }
}
