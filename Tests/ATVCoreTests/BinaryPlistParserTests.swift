import Testing
import ATVCore

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
