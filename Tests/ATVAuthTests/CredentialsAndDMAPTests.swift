import ATVAirPlayCore
@testable import ATVAuth
import ATVCore
import ATVHTTP
import ATVTestSupport
import Testing

@Suite struct CredentialsFormatTests {
    static let hapString = "e734ea6c2b6257de72355e472aa05a4c487e6b463c029ed306df2f01b5636b58:80fd8265b0748da90bc5c5294dabe394d3d47199994ae96ac73ee45c783537b1:35443739374644332d333533382d343237452d413437422d413332464336434633413641:34443739374644332d333533382d343237452d413437422d413332464336434633413641"

    @Test func detectsEveryKindAndRoundTrips() throws {
        let cases: [(String, ATVCredentials.Kind, String)] = [
            (Self.hapString, .hap, Self.hapString),
            (Self.hapString.uppercased(), .hap, Self.hapString),
            (":" + Recorded.seed + "::" + Recorded.clientID, .legacy, ":" + Recorded.seed.lowercased() + "::" + Recorded.clientID.lowercased()),
            (Recorded.clientID + ":" + Recorded.seed, .legacy, ":" + Recorded.seed.lowercased() + "::" + Recorded.clientID.lowercased()),
            ("7472616e7369656e74:::", .transient, "7472616e7369656e74:::"),
            (":::", .null, ":::"),
            ("0x1234ABCDE56789ff", .dmapPairingGUID, "0x1234ABCDE56789FF"),
            ("12345678-6789-1111-2222-012345678911", .dmapHomeSharing, "12345678-6789-1111-2222-012345678911"),
        ]
        for (input, kind, printed) in cases {
            let c = try ATVCredentials(parsing: input)
            #expect(c.kind == kind, "\(input)")
            #expect(c.stringValue == printed)
            #expect(try ATVCredentials(parsing: c.stringValue) == c)
        }
    }

    @Test func invalidStringsGiveClearErrors() {
        let bad = ["", "abc", "zz:11", "0x123", "0xZZZZZZZZZZZZZZZZ", "aa:bb:cc", "aabb::cc:", ":aa::bb", "11:22:33:44:55",
                   "e734:80fd:3544:3444"]
        for s in bad {
            #expect(throws: ATVError.self, "\(s)") { try ATVCredentials(parsing: s) }
        }
        #expect { try ATVCredentials(parsing: "aabb::cc:") } throws: { e in
            (e as? ATVError)?.description.hasPrefix("invalid credentials: ") == true
        }
    }

    @Test func maskedFormHidesSecrets() throws {
        let legacy = try ATVCredentials(parsing: Recorded.clientID + ":" + Recorded.seed)
        #expect(!legacy.masked.lowercased().contains(Recorded.seed.lowercased().prefix(6)))
        let hap = try ATVCredentials(parsing: Self.hapString)
        #expect(!hap.masked.contains("80fd82"))
        #expect("\(hap)" == hap.masked)
    }

    @Test func parserSurvivesGarbage() {
        let seed = TestSeed.value(default: 9)
        var g = SplitMix64(seed: seed)
        let alphabet = Array("0123456789abcdefxX:- ")
        var rejected = 0
        for i in 0 ..< 5000 {
            let s = String((0 ..< Int.random(in: 0 ... 80, using: &g)).map { _ in alphabet[Int.random(in: 0 ..< alphabet.count, using: &g)] })
            do {
                // What parses prints a form that parses back to the same credentials.
                let c = try ATVCredentials(parsing: s)
                #expect(try ATVCredentials(parsing: c.stringValue).stringValue == c.stringValue, "seed \(seed) case \(i): \(s)")
            } catch {
                rejected += 1
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(rejected > 0, "seed \(seed)")
    }
}

@Suite struct DMAPPairingTests {
    @Test func pairingCodeVectors() {
        #expect(DMAPPairing.pairingCode(guid: "0000000000000001", pin: "1234") == "690E6FF61E0D7C747654A42AED17047D")
        #expect(DMAPPairing.pairingCode(guid: "1234ABCDE56789FF", pin: "5555") == "58AD1D195B6DAA58AA2EA29DC25B81C3")
        #expect(DMAPPairing.pairingCode(guid: "7D1324235F535AE7", pin: "0001") == "A34C3361C7D57D61CA41F62A8042F069")
    }

    @Test func handlerAnswersCmpaOnMatchAnd500OnMismatch() throws {
        let h = try DMAPPairingHandler(guid: "0000000000000001", pin: "1234", name: "swift-atv")
        let ok = h.handle(method: "GET", target: "/pair?pairingcode=690e6ff61e0d7c747654a42aed17047d&servicename=Living%20Room")
        #expect(ok.status == 200)
        #expect(ok.pairedWith == "Living Room")
        let expected = Array("cmpa".utf8) + [0, 0, 0, 0x2F] + Array("cmpg".utf8) + [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
            + Array("cmnm".utf8) + [0, 0, 0, 9] + Array("swift-atv".utf8) + Array("cmty".utf8) + [0, 0, 0, 6] + Array("iPhone".utf8)
        #expect(ok.body == expected)
        #expect(h.handle(method: "GET", target: "/pair?pairingcode=00000000000000000000000000000000&servicename=x").status == 500)
        #expect(h.handle(method: "GET", target: "/pair?servicename=x").status == 500)
        #expect(h.handle(method: "GET", target: "/other").status == 404)
        #expect(h.credentials.stringValue == "0x0000000000000001")
        // No PIN: any code is accepted (pyatv's behaviour).
        let any = try DMAPPairingHandler(guid: "0000000000000001", pin: nil, name: "n")
        #expect(any.handle(method: "GET", target: "/pair?pairingcode=abc&servicename=x").status == 200)
    }

    @Test func shortPINsAreZeroPaddedAndBadOnesRejected() throws {
        let h = try DMAPPairingHandler(guid: "7D1324235F535AE7", pin: "1", name: "n")
        #expect(h.handle(method: "GET", target: "/pair?pairingcode=A34C3361C7D57D61CA41F62A8042F069&servicename=x").status == 200)
        #expect(throws: ATVError.self) { try DMAPPairingHandler(pin: "12345", name: "n") }
        #expect(throws: ATVError.self) { try DMAPPairingHandler(pin: "12a", name: "n") }
    }

    @Test func serviceRecordFacts() {
        #expect(DMAPPairing.serviceInstanceName(ipv4: "10.0.0.1") == String(repeating: "0", count: 31) + "167772161")
        #expect(DMAPPairing.serviceInstanceName(ipv4: "10.0.0") == nil)
        let txt = DMAPPairing.txtRecord(name: "swift-atv", guid: "0000000000000001")
        #expect(txt["Pair"] == "0000000000000001" && txt["DvTy"] == "iPod" && txt["RemV"] == "10000")
        #expect(DMAPPairing.randomGUID().count == 16)
    }

    @Test func handlerServesOverLoopbackHTTP() async throws {
        let h = try DMAPPairingHandler(guid: "1234ABCDE56789FF", pin: "5555", name: "swift-atv")
        let server = try await HTTPServer.start(host: "127.0.0.1") { req in
            let r = h.handle(method: req.message.method, target: req.message.uri)
            return HTTPServerResponse(status: r.status, bytes: r.body)
        }
        defer { Task { await server.stop() } }
        let http = try await HTTPClientConnection.connect(host: "127.0.0.1", port: server.port, timeout: .seconds(5))
        defer { http.close() }
        let bad = try await http.send(PairingHTTPRequest(method: "GET", path: "/pair?pairingcode=00&servicename=ATV", headers: [], body: []),
                                      timeout: .seconds(5))
        #expect(bad.status == 500)
        let good = try await http.send(PairingHTTPRequest(method: "GET", path: "/pair?pairingcode=58AD1D195B6DAA58AA2EA29DC25B81C3&servicename=ATV", headers: [], body: []),
                                       timeout: .seconds(5))
        #expect(good.status == 200)
        #expect(good.body == DMAPPairing.responseBody(guid: "1234ABCDE56789FF", name: "swift-atv"))
    }

    @Test func queryParserSurvivesGarbage() {
        var g = SplitMix64(seed: 3)
        let alphabet = Array("/pair?=&%0aF+xyz")
        let h = try! DMAPPairingHandler(guid: "0000000000000001", pin: "1234", name: "n")
        for _ in 0 ..< 3000 {
            let s = String((0 ..< Int.random(in: 0 ... 60, using: &g)).map { _ in alphabet[Int.random(in: 0 ..< alphabet.count, using: &g)] })
            _ = h.handle(method: "GET", target: s)
        }
    }
}
