import ATVTestSupport
@testable import ATVDiscovery
import Testing

@Suite struct DNSCodecTests {
    func nameBytes(_ name: String) -> [UInt8] {
        // Serialize a one-question message and cut the header and question trailer off.
        let b = DNSSerializer.serialize(DNSMessage(questions: [DNSQuestion(name: name, type: .ptr)]))
        return Array(b[12..<(b.count - 4)])
    }

    @Test func rootNameIsOneZeroByte() {
        #expect(nameBytes("") == [0])
    }

    @Test func utf8LabelsAreWrittenAsIs() {
        #expect(nameBytes("Bücher.example") == [7, 0x42, 0xC3, 0xBC, 0x63, 0x68, 0x65, 0x72, 7] + Array("example".utf8) + [0])
    }

    @Test func instanceNameWithDotsStaysOneLabel() throws {
        let name = "Dot.Within._http._tcp.example.local"
        let bytes = nameBytes(name)
        #expect(bytes.first == 10)  // "Dot.Within"
        let msg = try DNSParser.parse(DNSSerializer.serialize(DNSMessage(questions: [DNSQuestion(name: name, type: .any)])))
        #expect(msg.questions.first?.name == name)
    }

    @Test func longLabelIsCutOnACharacterBoundary() {
        let label = String(repeating: "a", count: 62) + "ü"   // 64 bytes: the ü must go whole
        let bytes = nameBytes(label + ".local")
        #expect(bytes.first == 62)
    }

    @Test func compressedAndDoublyCompressedNamesDecode() throws {
        // header, then name "_airplay._tcp.local" at 12, then a question whose name is
        // "Kitchen" + pointer to 12, then a question that points at the second name.
        var b: [UInt8] = [0, 0, 0x84, 0, 0, 3, 0, 0, 0, 0, 0, 0]
        b += [8] + Array("_airplay".utf8) + [4] + Array("_tcp".utf8) + [5] + Array("local".utf8) + [0, 0, 12, 0, 1]
        let second = b.count
        b += [7] + Array("Kitchen".utf8) + [0xC0, 12, 0, 33, 0, 1]
        b += [0xC0, UInt8(second), 0, 16, 0, 1]
        let msg = try DNSParser.parse(b)
        #expect(msg.questions.map(\.name) == ["_airplay._tcp.local", "Kitchen._airplay._tcp.local", "Kitchen._airplay._tcp.local"])
        #expect(msg.isResponse)
    }

    @Test func roundTripOfEveryRecordType() throws {
        let msg = DNSMessage(id: 0x35FF, flags: 0x8400, questions: [DNSQuestion(name: "_raop._tcp.local", type: .ptr, unicastResponse: true)],
            answers: [
                DNSRecord(name: "_raop._tcp.local", type: .ptr, data: .ptr("AABBCCDDEEFF@Kitchen._raop._tcp.local")),
                DNSRecord(name: "AABBCCDDEEFF@Kitchen._raop._tcp.local", type: .srv, cacheFlush: true,
                          data: .srv(priority: 0, weight: 0, port: 7000, target: "Kitchen.local")),
                DNSRecord(name: "AABBCCDDEEFF@Kitchen._raop._tcp.local", type: .txt, data: .txt([Array("am=AudioAccessory5,1".utf8), Array("et=0,4".utf8)])),
            ],
            additionals: [
                DNSRecord(name: "Kitchen.local", type: .a, data: .a("127.0.0.1")),
                DNSRecord(name: "Kitchen.local", type: .aaaa, data: .aaaa(Array(repeating: 0, count: 15) + [1])),
                DNSRecord(name: "Kitchen.local", type: .nsec, data: .nsec(next: "Kitchen.local", types: [1, 28])),
            ])
        let bytes = DNSSerializer.serialize(msg)
        #expect(try DNSParser.parse(bytes) == msg)
        // Compression happened: the service type is written once in full.
        let needle = Array("_raop".utf8)
        let count = (0...(bytes.count - needle.count)).filter { Array(bytes[$0..<($0 + needle.count)]) == needle }.count
        #expect(count == 1)
    }

    @Test func txtPropertiesDecodeLikePyatv() {
        let props = TXTProperties.decode([
            Array("Name=Living\u{00A0}Room".utf8),     // non-breaking space becomes a space
            Array("flag".utf8),                        // no '=' → empty value
            Array("=empty-key".utf8),                  // skipped
            [0xC3, 0xA9, 0x3D, 0x31],                  // "é=1": non-ASCII key skipped
            Array("pk=".utf8) + [0xFF, 0x00, 0x41],    // binary value survives as replacement chars
        ])
        #expect(props["Name"] == "Living Room")
        #expect(props["flag"] == "")
        #expect(props.count == 3)
    }

    @Test func truncatedMessageKeepsCompleteRecords() throws {
        let msg = DNSMessage(id: 1, flags: 0x8400 | 0x0200, answers: [
            DNSRecord(name: "a._raop._tcp.local", type: .txt, data: .txt([Array("x=1".utf8)])),
            DNSRecord(name: "b._raop._tcp.local", type: .txt, data: .txt([Array("y=2".utf8)])),
        ])
        let bytes = DNSSerializer.serialize(msg)
        let parsed = try DNSParser.parse(Array(bytes.dropLast(3)))
        #expect(parsed.isTruncated)
        #expect(parsed.answers.count == 1)
    }

    @Test func malformedInputIsAnErrorNotACrash() {
        #expect(throws: DNSParser.Error.self) { try DNSParser.parse([0, 1, 2]) }
        // A compression pointer to itself.
        #expect(throws: DNSParser.Error.self) { try DNSParser.parse([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]) }
        // A forward pointer.
        #expect(throws: DNSParser.Error.self) { try DNSParser.parse([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 40, 0, 1, 0, 1]) }
        // Reserved label type 0x40.
        #expect(throws: DNSParser.Error.self) { try DNSParser.parse([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 1, 0, 1]) }
    }

    /// Every packet either parses to a message whose serialization is stable (serialize → parse →
    /// serialize gives the same bytes) or fails with `DNSParser.Error`.
    @Test func fuzzRandomAndMutatedPacketsNeverCrash() throws {
        let seed = TestSeed.value(default: 0xA7F0_0001)
        var rng = SplitMix64(seed: seed)
        let valid = DNSSerializer.serialize(DNSMessage(flags: 0x8400, answers: [
            DNSRecord(name: "x._airplay._tcp.local", type: .srv, data: .srv(priority: 0, weight: 0, port: 7000, target: "x.local")),
            DNSRecord(name: "x._airplay._tcp.local", type: .txt, data: .txt([Array("deviceid=AA:BB".utf8)])),
        ]))
        #expect(DNSSerializer.serialize(try DNSParser.parse(valid)) == valid)
        var parsed = 0, rejected = 0
        for i in 0..<20_000 {
            var b: [UInt8]
            if i % 2 == 0 {
                b = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                b = valid
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 3 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }
            }
            do {
                let m = try DNSParser.parse(b)
                parsed += 1
                let once = DNSSerializer.serialize(m)
                #expect(DNSSerializer.serialize(try DNSParser.parse(once)) == once, "seed \(seed) case \(i): \(hexString(b))")
            } catch {
                rejected += 1
                #expect(error is DNSParser.Error, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(parsed > 0 && rejected > 0, "seed \(seed): parsed \(parsed) rejected \(rejected)")
    }
}

