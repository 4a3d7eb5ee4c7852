import ATVCore
import ATVTestSupport
import Testing

/// The one DMAP tag codec (ATVCore), on the bytes its three users send: RAOP track metadata, the
/// DMAP pairing answer, DACP play status.
@Suite struct DMAPCodecTests {
    @Test func raopMetadataBytes() throws {
        // mlit { minm "T", asal "Al", asar "Ar" }, as pyatv's RAOP metadata.
        let bytes = hex("6d6c6974 0000001d 6d696e6d 00000001 54 6173616c 00000002 416c 61736172 00000002 4172")
        let elements: [DMAPElement] = [.container("mlit", [.string("minm", "T"), .string("asal", "Al"), .string("asar", "Ar")])]
        #expect(DMAPSerializer.serialize(elements) == bytes)
        #expect(try DMAPParser.parse(bytes) == elements)
    }

    @Test func pairingAnswerBytes() throws {
        // cmpa { cmpg (u64 GUID), cmnm, cmty }, what the DMAP pairing server answers.
        let elements: [DMAPElement] = [.container("cmpa", [.uint64("cmpg", 1), .string("cmnm", "n"), .string("cmty", "iPhone")])]
        let bytes = Array("cmpa".utf8) + [0, 0, 0, 0x27] + Array("cmpg".utf8) + [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
            + Array("cmnm".utf8) + [0, 0, 0, 1] + Array("n".utf8) + Array("cmty".utf8) + [0, 0, 0, 6] + Array("iPhone".utf8)
        #expect(DMAPSerializer.serialize(elements) == bytes)
        #expect(try DMAPParser.parse(bytes) == elements)
    }

    @Test func truncationAndDepthAreErrors() {
        #expect(throws: DMAPParseError.truncatedValue(tag: "mlit", offset: 0, length: 255, available: 1)) {
            try DMAPParser.parse(hex("6d6c6974 000000ff 00"))
        }
        #expect(throws: DMAPParseError.truncatedHeader(offset: 0)) { try DMAPParser.parse([0x6d, 0x6c]) }
        var nested: [UInt8] = []
        for _ in 0 ... DMAPParser.maxDepth + 1 { nested = DMAPSerializer.serialize(DMAPElement("mlit", .raw(nested))) }
        #expect(throws: DMAPParseError.tooDeep) { try DMAPParser.parse(nested) }
    }
}
