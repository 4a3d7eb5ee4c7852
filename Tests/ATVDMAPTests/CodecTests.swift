import ATVTestSupport
import ATVCore
import Testing
@testable import ATVDMAP

func tag(_ name: String, _ value: [UInt8]) -> [UInt8] {
    let n = UInt32(value.count)
    return Array(name.utf8) + [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + value
}

@Suite struct DMAPCodecTests {
    @Test func referenceVectors() throws {
        // pyatv's DMAP test vectors: uint8_tag("cmcc", 0) and the play-status example.
        #expect(DMAPSerializer.serialize(.uint8("cmcc", 0)) == hex("636d6363 00000001 00"))
        let ps = hex("636d7374 00000018 6d737474 00000004 000000c8 636d7372 00000004 00000019")
        let parsed = try DMAPParser.parse(ps)
        #expect(parsed == [.container("cmst", [.uint32("mstt", 200), .uint32("cmsr", 25)])])
        #expect(parsed.first("cmst", "mstt")?.uint == 200)
        #expect(parsed.first("cmst", "cmsr")?.uint == 25)
        #expect(DMAPSerializer.serialize(parsed) == ps)
    }

    @Test func typedValuesFromHandBuiltBytes() throws {
        let body = tag("cmst",
                       tag("caps", [4]) + tag("cash", [0, 1]) + tag("cast", [0, 3, 0x47, 0x68])
                       + tag("asai", [0, 0, 0, 0, 0, 0, 1, 2]) + tag("cmpg", [0, 0x12, 0x34, 0xAB, 0xCD, 0xE5, 0x67, 0x89, 0xFF])
                       + tag("mstm", [1, 0, 0, 0, 0, 0, 0, 0, 0])
                       + tag("cavc", [1]) + tag("cafe", [2]) + tag("cann", Array("Här".utf8))
                       + tag("canp", [1, 2, 3]) + tag("zzzz", [9, 9]) + tag("cmcv", [7]) + tag("cann", Array("second".utf8))
                       + tag("cmmk", []))
        let e = try DMAPParser.parse(body)
        #expect(e.first("cmst", "caps") == .uint(4, width: 1))
        #expect(e.first("cmst", "cash") == .uint(1, width: 2))
        #expect(e.first("cmst", "cast")?.uint == 0x0003_4768)
        #expect(e.first("cmst", "asai") == .uint(258, width: 8))
        // 9 bytes with a zero lead still fit; 9 significant bytes stay raw.
        #expect(e.first("cmst", "cmpg") == .uint(0x1234_ABCD_E567_89FF, width: 9))
        #expect(e.first("cmst", "mstm") == .raw([1, 0, 0, 0, 0, 0, 0, 0, 0]))
        #expect(e.first("cmst", "cavc") == .bool(true))
        #expect(e.first("cmst", "cafe") == .bool(false))  // only 1 is true
        #expect(e.first("cmst", "cann")?.string == "Här")  // first of repeated tags
        #expect(e.first("cmst")?.container?.all("cann").count == 2)
        #expect(e.first("cmst", "canp") == .raw([1, 2, 3]))
        #expect(e.first("cmst", "zzzz") == .raw([9, 9]))  // unknown: kept raw
        #expect(e.first("cmst", "cmcv") == .ignored)
        #expect(e.first("cmst", "cmmk") == .uint(0, width: 0))
        #expect(e.first("cmst", "nope") == nil)
        #expect(e.first("caps") == nil)
        #expect(e.first("cmst", "caps", "deeper") == nil)
        // Serializing the parsed tree gives the same bytes back (the raw mstm and ignored cmcv aside).
        let again = try DMAPParser.parse(DMAPSerializer.serialize(e))
        #expect(again.first("cmst", "cmpg") == e.first("cmst", "cmpg"))
        #expect(again.first("cmst", "cann") == e.first("cmst", "cann"))
    }

    @Test func bplistValue() throws {
        // A binary plist holding the string "hi": header, object 0x52 'h' 'i', offset table, trailer.
        var plist = Array("bplist00".utf8) + [0x52, 0x68, 0x69] + [8]
        plist += [0, 0, 0, 0, 0, 0, 1, 1] + [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 11]
        let e = try DMAPParser.parse(tag("ceSD", plist) + tag("ceSD", [1, 2]))
        #expect(e[0].value.plist == .string("hi"))
        #expect(e[1].value.plist == nil)  // not a plist: no crash, no value
        #expect(e[1].value.bytes == [1, 2])
    }

    @Test func garbageIsAnErrorNotACrash() throws {
        #expect(throws: DMAPParseError.truncatedHeader(offset: 0)) { try DMAPParser.parse([0x63, 0x6d]) }
        #expect(throws: DMAPParseError.truncatedValue(tag: "cann", offset: 0, length: 5, available: 2)) {
            try DMAPParser.parse(tag("cann", [1, 2, 3, 4, 5]).dropLast(3).map { $0 })
        }
        // A length field near 2^32 must not overflow.
        #expect(throws: (any Error).self) { try DMAPParser.parse(Array("cmst".utf8) + [0xFF, 0xFF, 0xFF, 0xFF, 1]) }
        // A child that overruns its container is caught inside the container.
        #expect(throws: (any Error).self) { try DMAPParser.parse(tag("cmst", Array("caps".utf8) + [0, 0, 0, 9, 1])) }
        var deep = tag("caps", [1])
        for _ in 0...DMAPParser.maxDepth + 1 { deep = tag("cmst", deep) }
        #expect(throws: DMAPParseError.tooDeep) { try DMAPParser.parse(deep) }
        #expect(try DMAPParser.parse([]) == [])
    }

    /// Tags as they came off the wire: 4 bytes of valid UTF-8 (invalid bytes are decoded lossily
    /// to U+FFFD, which the serializer cannot put back in 4 bytes; see the report of issue 15).
    static func tagsIntact(_ es: [DMAPElement]) -> Bool {
        es.allSatisfy { e in
            guard e.tag.utf8.count == 4, !e.tag.contains("\u{FFFD}") else { return false }
            if case .container(let c) = e.value { return tagsIntact(c) }
            return true
        }
    }

    /// Whatever parses serializes to bytes that parse to the same elements (when its tags are
    /// valid UTF-8), and a canonical message (the valid one) serializes back byte for byte; the
    /// rest is a `DMAPParseError` (typed throws). Not byte for byte in general: a bool byte other
    /// than 0 or 1 reads as false (as pyatv's read_bool) and invalid UTF-8 in a string as U+FFFD.
    @Test func fuzzNeverCrashes() {
        let seed = TestSeed.value(default: 0xD3A9)
        var rng = SplitMix64(seed: seed)
        let valid = DMAPSerializer.serialize([.container("cmst", [
            .uint32("mstt", 200), .uint32("cmsr", 7), .uint8("caps", 4), .string("cann", "Title"),
            .container("mlit", [.string("minm", "x"), .raw("ceSD", Array("bplist00".utf8))]), .bool("cavc", true),
        ])])
        var parsed = 0, rejected = 0, exact = 0
        for round in 0..<3000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = valid
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] = UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))) }
            }
            do {
                let e = try DMAPParser.parse(bytes)
                parsed += 1
                if Self.tagsIntact(e) {
                    #expect((try? DMAPParser.parse(DMAPSerializer.serialize(e))) == e, "seed \(seed) round \(round): \(hexString(bytes))")
                    exact += 1
                }
                _ = e.first("cmst", "caps")
                _ = DMAPPlayStatus(e).playing
                _ = e.pretty()
            } catch {
                rejected += 1
            }
        }
        #expect(exact > 0 && rejected > 0, "seed \(seed): parsed \(parsed) (\(exact) round-tripped) rejected \(rejected)")
        #expect(DMAPSerializer.serialize(try! DMAPParser.parse(valid)) == valid)
    }
}

@Suite struct DMAPPlayStatusTests {
    func status(_ fields: [DMAPElement]) -> DMAPPlayStatus { DMAPPlayStatus([.container("cmst", fields)]) }

    @Test func mediaKindTable() {
        for k: UInt64 in [1, 32770] { #expect(DMAPPlayStatus.mediaType(kind: k) == .unknown) }
        for k: UInt64 in [3, 7, 11, 12, 13, 18, 32] { #expect(DMAPPlayStatus.mediaType(kind: k) == .video) }
        for k: UInt64 in [2, 4, 10, 14, 17, 21, 36] { #expect(DMAPPlayStatus.mediaType(kind: k) == .music) }
        for k: UInt64 in [8, 64] { #expect(DMAPPlayStatus.mediaType(kind: k) == .tv) }
        #expect(DMAPPlayStatus.mediaType(kind: 999) == .unknown)
    }

    @Test func playStates() {
        let expected: [UInt64?: DeviceState] = [nil: .idle, 0: .idle, 1: .loading, 2: .stopped, 3: .paused, 4: .playing,
                                                5: .seeking, 6: .seeking]
        for (caps, state) in expected { #expect(DMAPPlayStatus.deviceState(caps) == state) }
    }

    @Test func fullMusicStatus() {
        let p = status([.uint8("caps", 4), .uint32("cmmk", 2), .string("cann", "Song"), .string("cana", "Artist"),
                        .string("canl", "Album"), .string("cang", "Pop"), .uint32("cast", 215_000), .uint32("cant", 200_000),
                        .uint8("cash", 1), .uint8("carp", 2), .uint32("cmsr", 9)]).playing
        #expect(p == Playing(mediaType: .music, deviceState: .playing, title: "Song", artist: "Artist", album: "Album",
                             genre: "Pop", totalTime: 215, position: 15, shuffle: .songs, repeat: .all))
        #expect(status([.uint32("cmsr", 9)]).revision == 9)
    }

    @Test func positionAndTimes() {
        // Rounding half to even, as Python's round.
        #expect(DMAPPlayStatus.seconds(ms: 2500) == 2)
        #expect(DMAPPlayStatus.seconds(ms: 3500) == 4)
        #expect(DMAPPlayStatus.seconds(ms: 0xFFFF_FFFF) == 0)
        #expect(DMAPPlayStatus.seconds(ms: 0x1_0000_0000) == 0)
        // Unknown total → 0 and no position.
        let unknown = status([.uint8("caps", 4), .uint32("cast", 0xFFFF_FFFF), .uint32("cant", 1000)]).playing
        #expect(unknown.totalTime == 0 && unknown.position == nil)
        // Remaining 0 → no position (pyatv); missing fields → nil.
        #expect(status([.uint8("caps", 4), .uint32("cast", 10_000), .uint32("cant", 0)]).playing.position == nil)
        let bare = status([.uint8("caps", 3)]).playing
        #expect(bare.totalTime == nil && bare.position == nil && bare.shuffle == .off && bare.repeat == .off)
    }

    @Test func mediaTypeFallbacks() {
        #expect(status([.uint8("caps", 4), .string("cana", "A")]).playing.mediaType == .music)
        #expect(status([.uint8("caps", 4), .string("cann", "Movie")]).playing.mediaType == .video)
        #expect(status([.uint8("caps", 0), .uint32("cmmk", 2)]).playing.mediaType == .unknown)
        #expect(status([]).playing == Playing(mediaType: .unknown, deviceState: .idle, shuffle: .off, repeat: .off))
        #expect(status([.uint8("caps", 4), .uint8("carp", 7)]).playing.repeat == .off)
    }
}

@Suite struct DMAPRequestTests {
    @Test func loginIDs() throws {
        #expect(try DMAPLoginID(credentials: "0x1234ABCDE56789FF") == .pairingGUID("0x1234ABCDE56789FF"))
        #expect(try DMAPLoginID(credentials: "12345678-1234-1234-1234-123456789ABC") == .homeSharing("12345678-1234-1234-1234-123456789ABC"))
        for bad in ["", "1234ABCDE56789FF", "0x1234", "0xZZ34ABCDE56789FF", "12345678-1234-1234-123456789ABC"] {
            #expect(throws: ATVError.self) { try DMAPLoginID(credentials: bad) }
        }
        #expect(DMAPRequests.login(.pairingGUID("0x0000000000000001")).uri == "/login?pairing-guid=0x0000000000000001&hasFP=1")
        #expect(DMAPRequests.login(.homeSharing("a-b")).uri == "/login?hsgid=a-b&hasFP=1")
    }

    @Test func uris() {
        #expect(DMAPRequests.playStatusUpdate(session: 5, revision: 0).uri == "/ctrl-int/1/playstatusupdate?session-id=5&revision-number=0")
        #expect(DMAPRequests.artwork(session: 5, width: 512, height: nil).uri == "/ctrl-int/1/nowplayingartwork?mw=512&mh=0&session-id=5")
        let pause = DMAPRequests.command(.pause, session: 5)
        #expect(pause.method == "POST" && pause.uri == "/ctrl-int/1/pause?session-id=5&prompt-id=0")
        #expect(DMAPRequests.command(.next, session: 1).uri.hasPrefix("/ctrl-int/1/nextitem?"))
        #expect(DMAPRequests.command(.previous, session: 1).uri.hasPrefix("/ctrl-int/1/previtem?"))
        #expect(DMAPRequests.setProperty(.playingTime, 10_000, session: 5).uri == "/ctrl-int/1/setproperty?dacp.playingtime=10000&session-id=5")
        #expect(pause.headers.first { $0.0 == "Content-Type" }?.1 == "application/x-www-form-urlencoded")
        let get = DMAPRequests.playStatusUpdate(session: 1, revision: 1)
        #expect(get.headers.map(\.0) == ["Accept", "Accept-Encoding", "Client-DAAP-Version", "Client-ATV-Sharing-Version",
                                         "Client-iTunes-Sharing-Version", "User-Agent", "Viewer-Only-Client"])
        #expect(get.headers.first { $0.0 == "User-Agent" }?.1 == "Remote/1021")
    }

    @Test func controlPromptBodies() throws {
        let select = DMAPRequests.controlPrompt("select", session: 3)
        #expect(select.uri == "/ctrl-int/1/controlpromptentry?session-id=3&prompt-id=0")
        #expect(select.body == hex("636d6265 00000006") + Array("select".utf8) + hex("636d6363 00000001 00"))
        let up = DMAPRequests.arrowBodies(.up).map { try? DMAPParser.parse($0).first("cmbe")?.string }
        #expect(up == ["touchDown&time=0&point=20,275", "touchMove&time=1&point=20,270", "touchMove&time=2&point=20,265",
                       "touchMove&time=3&point=20,260", "touchMove&time=4&point=20,255", "touchMove&time=5&point=20,250",
                       "touchUp&time=6&point=20,250"])
        let left = DMAPRequests.arrowBodies(.left).map { try? DMAPParser.parse($0).first("cmbe")?.string }
        #expect(left == ["touchDown&time=0&point=75,100", "touchMove&time=1&point=70,100", "touchMove&time=3&point=65,100",
                         "touchMove&time=4&point=60,100", "touchMove&time=5&point=55,100", "touchMove&time=6&point=50,100",
                         "touchUp&time=7&point=50,100"])
        let down = DMAPRequests.arrowBodies(.down).compactMap { try? DMAPParser.parse($0).first("cmbe")?.string }
        #expect(down.first == "touchDown&time=0&point=20,250" && down.last == "touchUp&time=6&point=20,275")
        let right = DMAPRequests.arrowBodies(.right).compactMap { try? DMAPParser.parse($0).first("cmbe")?.string }
        #expect(right.first == "touchDown&time=0&point=50,100" && right.last == "touchUp&time=7&point=75,100")
        // Touch bodies put cmcc (0x30) first.
        #expect(Array(DMAPRequests.arrowBodies(.up)[0].prefix(9)) == hex("636d6363 00000001 30"))
    }
}
