import ATVCore
import Testing

/// A string tag whose bytes are not valid UTF-8 decodes and re-encodes to the same bytes.
@Suite struct DMAPStringBytesTests {
    @Test func invalidUTF8StringRoundTripsExactly() throws {
        // minm (a string tag) holding "A", a lone continuation byte, a truncated 3-byte sequence, "Z".
        let value: [UInt8] = [0x41, 0x80, 0xE2, 0x82, 0x5A]
        let bytes = Array("minm".utf8) + [0, 0, 0, UInt8(value.count)] + value
        let elements = try DMAPParser.parse(bytes)
        #expect(elements == [DMAPElement("minm", .invalidString(value))])
        #expect(DMAPSerializer.serialize(elements) == bytes)
        // Readers still get text, with the invalid sequences replaced.
        #expect(elements[0].value.string == "A\u{FFFD}\u{FFFD}Z")
        #expect(elements[0].value.bytes == value)
    }

    @Test func validUTF8StaysAString() throws {
        let text = "Café ☕️"
        let bytes = DMAPSerializer.serialize([.container("mlit", [.string("minm", text)])])
        let elements = try DMAPParser.parse(bytes)
        #expect(elements == [.container("mlit", [.string("minm", text)])])
        #expect(DMAPSerializer.serialize(elements) == bytes)
    }

    @Test func nestedInvalidStringRoundTrips() throws {
        let inner = Array("asar".utf8) + [0, 0, 0, 2, 0xFF, 0xFE]
        let bytes = Array("mlit".utf8) + [0, 0, 0, UInt8(inner.count)] + inner
        let elements = try DMAPParser.parse(bytes)
        #expect(elements == [.container("mlit", [DMAPElement("asar", .invalidString([0xFF, 0xFE]))])])
        #expect(DMAPSerializer.serialize(elements) == bytes)
    }
}
