import ATVPTP
import ATVTestSupport
import Testing

/// The PTP codec against constructed byte vectors (docs/PTP-AND-BUFFERED-AUDIO.md Appendix A),
/// linuxptp's management message, and garbage.
@Suite struct PTPMessageTests {
    static let clock = PTPClockIdentity(0x0242_ACFF_FE11_0002)
    static let port = PTPPortIdentity(clock: clock, port: 0x8005)

    static let syncHex = """
        10 02 00 2c 00 00 06 08 00 00 00 00 00 00 00 00
        00 00 00 00 02 42 ac ff fe 11 00 02 80 05 01 23
        00 fd 00 00 00 00 00 00 00 00 00 00
        """
    static let followUpHex = """
        18 02 00 60 00 00 04 08 00 00 00 00 00 00 00 00
        00 00 00 00 02 42 ac ff fe 11 00 02 80 05 01 23
        02 fd 00 00 00 12 d6 87 35 0e 34 c0 00 03 00 1c
        00 80 c2 00 00 01 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 03 00 10
        00 0d 93 00 00 04 02 42 ac ff fe 11 00 02 00 00
        """
    static let announceHex = """
        1b 02 00 4c 00 00 04 08 00 00 00 00 00 00 00 00
        00 00 00 00 02 42 ac ff fe 11 00 02 80 05 00 42
        05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 80
        06 21 43 6a 80 02 42 ac ff fe 11 00 02 00 00 20
        00 08 00 08 02 42 ac ff fe 11 00 02
        """

    @Test func syncMatchesTheReferenceBytes() throws {
        let m = PTPMessage(header: PTPHeader(type: .sync, source: Self.port, sequenceId: 0x0123,
                                             flags: [.twoStep, .unicast, .ptpTimescale], logMessageInterval: -3),
                           body: .sync(origin: .zero))
        #expect(hexString(m.encoded()) == hexString(hex(Self.syncHex)))
        let parsed = try PTPMessage(parsing: hex(Self.syncHex))
        #expect(parsed.header.majorSdoId == 1)
        #expect(parsed.header.messageLength == 44)
        #expect(parsed.header.flags == [.twoStep, .unicast, .ptpTimescale])
        #expect(parsed.header.controlField == 0)
        #expect(parsed.header.logMessageInterval == -3)
        #expect(parsed.header.source == Self.port)
        #expect(parsed.body == .sync(origin: .zero))
        #expect(parsed.encoded() == hex(Self.syncHex))
    }

    @Test func followUpMatchesTheReferenceBytes() throws {
        let origin = PTPTimestamp(seconds: 1_234_567, nanoseconds: 890_123_456)
        let m = PTPMessage(header: PTPHeader(type: .followUp, source: Self.port, sequenceId: 0x0123,
                                             flags: [.unicast, .ptpTimescale], logMessageInterval: -3),
                           body: .followUp(preciseOrigin: origin),
                           tlvs: [.followUpInformation, .appleClockIdentity(Self.clock)])
        #expect(hexString(m.encoded()) == hexString(hex(Self.followUpHex)))
        let parsed = try PTPMessage(parsing: hex(Self.followUpHex))
        #expect(parsed.body == .followUp(preciseOrigin: origin))
        #expect(parsed.header.controlField == 2)
        #expect(parsed.tlvs.count == 2)
        #expect(parsed.tlvs[1] == .appleClockIdentity(Self.clock))
        #expect(parsed == m)
        #expect(origin.totalNanoseconds == 1_234_567_890_123_456)
        #expect(PTPTimestamp(nanoseconds: 1_234_567_890_123_456) == origin)
        #expect(origin.description == "1234567.890123456")
    }

    @Test func announceMatchesTheReferenceBytes() throws {
        let body = PTPAnnounce(priority1: 128, clockClass: 6, clockAccuracy: 0x21, offsetScaledLogVariance: 0x436A,
                               priority2: 128, grandmasterIdentity: Self.clock, timeSource: 0x20)
        let m = PTPMessage(header: PTPHeader(type: .announce, source: Self.port, sequenceId: 0x0042,
                                             flags: [.unicast, .ptpTimescale], logMessageInterval: 0),
                           body: .announce(body), tlvs: [.pathTrace(Self.clock)])
        #expect(hexString(m.encoded()) == hexString(hex(Self.announceHex)))
        let parsed = try PTPMessage(parsing: hex(Self.announceHex))
        guard case .announce(let a) = parsed.body else { Issue.record("not an Announce"); return }
        #expect(a == body)
        #expect(a.grandmasterIdentity.description == "0242ac.fffe.110002")
        #expect(parsed.header.controlField == 5)
        #expect(parsed == m)
    }

    @Test func delayRequestAndResponseRoundTrip() throws {
        let requester = PTPPortIdentity(clock: PTPClockIdentity(0x1122_33FF_FE44_5566), port: 1)
        let req = PTPMessage(header: PTPHeader(type: .delayReq, source: requester, sequenceId: 7, flags: [],
                                               logMessageInterval: 0x7F, majorSdoId: 1),
                             body: .delayReq(origin: .zero))
        let bytes = req.encoded()
        #expect(bytes.count == 44)
        #expect(bytes[0] == 0x11 && bytes[32] == 1)
        #expect(try PTPMessage(parsing: bytes) == req)
        let resp = PTPMessage(header: PTPHeader(type: .delayResp, source: Self.port, sequenceId: 7,
                                                flags: [.twoStep, .unicast, .ptpTimescale], logMessageInterval: -3),
                              body: .delayResp(receive: PTPTimestamp(seconds: 5, nanoseconds: 6), requesting: requester))
        let rb = resp.encoded()
        #expect(rb.count == 54)
        #expect(Array(rb[44..<54]) == requester.clock.bytes + [0, 1])
        #expect(try PTPMessage(parsing: rb) == resp)
    }

    @Test func unicastNegotiationTLVs() throws {
        // A REQUEST for Sync (type 0) every 2^-3 s for 60 s, as linuxptp's unicast client sends it.
        let request = PTPUnicastTransmission(messageType: 0, logInterMessagePeriod: -3, duration: 60)
        #expect(request.requestTLV == PTPTLV(type: 4, value: hex("00 fd 00 00 00 3c")))
        let grant = PTPUnicastTransmission(messageType: 0xB, logInterMessagePeriod: 0, duration: 300, renewalInvited: true)
        #expect(grant.grantTLV == PTPTLV(type: 5, value: hex("b0 00 00 00 01 2c 00 01")))
        let m = PTPMessage(header: PTPHeader(type: .signaling, source: Self.port, sequenceId: 3, flags: [.unicast],
                                             logMessageInterval: 0x7F),
                           body: .signaling(target: .all), tlvs: [request.requestTLV, grant.grantTLV])
        let parsed = try PTPMessage(parsing: m.encoded())
        #expect(parsed.unicastRequests == [request])
        #expect(parsed.unicastGrants == [grant])
        #expect(m.encoded().count == 34 + 10 + 10 + 12)
    }

    /// What `pmc -4 -b 0 'GET PARENT_DATA_SET'` puts on the wire (transportSpecific 0).
    @Test func managementGetDecodes() throws {
        let bytes = hex("""
            0d 02 00 36 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 00 00 aa bb cc ff fe dd ee ff 44 31 00 05
            04 7f ff ff ff ff ff ff ff ff ff ff 00 00 00 00
            00 01 00 02 20 04
            """)
        let m = try PTPMessage(parsing: bytes)
        #expect(m.header.majorSdoId == 0)
        #expect(m.body == .management(target: .all, startingBoundaryHops: 0, boundaryHops: 0, action: 0))
        #expect(m.tlvs == [PTPTLV(type: PTPTLV.management, value: [0x20, 0x04])])
        #expect(m.encoded() == bytes)
    }

    @Test func malformedInputIsATypedError() {
        #expect(throws: PTPParseError.truncated(needed: 34, have: 3)) { try PTPMessage(parsing: [0x10, 0x02, 0x00]) }
        var wrongVersion = hex(Self.syncHex)
        wrongVersion[1] = 0x01
        #expect(throws: PTPParseError.unsupportedVersion(1)) { try PTPMessage(parsing: wrongVersion) }
        var reserved = hex(Self.syncHex)
        reserved[0] = 0x15
        #expect(throws: PTPParseError.unknownMessageType(5)) { try PTPMessage(parsing: reserved) }
        var short = hex(Self.announceHex)
        short[3] = 44  // an Announce needs 64
        #expect(throws: PTPParseError.badLength(44)) { try PTPMessage(parsing: short) }
        var long = hex(Self.syncHex)
        long[3] = 0x40
        #expect(throws: PTPParseError.truncated(needed: 64, have: 44)) { try PTPMessage(parsing: long) }
        var tlv = hex(Self.followUpHex)
        tlv[0x4F] = 0x20  // the Apple TLV claims 32 bytes; 16 follow
        #expect(throws: PTPParseError.truncatedTLV(offset: 0x4C)) { try PTPMessage(parsing: tlv) }
        // Padding after messageLength is ignored.
        #expect(throws: Never.self) { try PTPMessage(parsing: hex(Self.syncHex) + [0, 0, 0, 0]) }
    }

    @Test func everyTruncationAndRandomBytesParseWithoutTrapping() {
        var rng = SplitMix64(seed: TestSeed.value(default: 0x5054_5031))
        var parsed = 0
        for vector in [Self.syncHex, Self.followUpHex, Self.announceHex].map(hex) {
            for n in 0...vector.count {
                if (try? PTPMessage(parsing: Array(vector.prefix(n)))) != nil { parsed += 1 }
            }
            // Every byte flipped: whatever parses re-encodes to a message that parses the same.
            for i in vector.indices {
                var v = vector
                v[i] ^= UInt8.random(in: 1...255, using: &rng)
                if let m = try? PTPMessage(parsing: v) {
                    #expect((try? PTPMessage(parsing: m.encoded()))?.body == m.body)
                }
            }
        }
        #expect(parsed == 3)  // only the whole messages
        for _ in 0..<20_000 {
            var bytes = randomBytes(Int.random(in: 0...120, using: &rng), using: &rng)
            if bytes.count > 4, Bool.random(using: &rng) {
                bytes[1] = 2
                bytes[2] = 0
                bytes[3] = UInt8(min(bytes.count, 255))
            }
            _ = try? PTPMessage(parsing: bytes)
        }
    }

    @Test func clockIdentityForms() {
        let id = PTPClockIdentity(eui64FromMAC: [0x02, 0x42, 0xAC, 0x11, 0x00, 0x02])
        #expect(id == Self.clock)
        #expect(id?.bytes == [0x02, 0x42, 0xAC, 0xFF, 0xFE, 0x11, 0x00, 0x02])
        #expect(PTPClockIdentity(bytes: [1, 2, 3]) == nil)
        // An Apple sender's captured id (docs/PTP-AND-BUFFERED-AUDIO.md §2.6), as a plist integer:
        // negative.
        let apple = PTPClockIdentity(0xE089_7E14_4BB7_0008)
        #expect(apple.signedValue == -2_267_142_311_769_604_088)
        let t = PTPTimestamp(seconds: 1, nanoseconds: 500_000_000)
        #expect(t.secondsAndFraction.seconds == 1)
        #expect(t.secondsAndFraction.fraction == 1 << 63)
    }
}
