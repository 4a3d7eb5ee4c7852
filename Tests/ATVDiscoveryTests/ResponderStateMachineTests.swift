import ATVTestSupport
@testable import ATVDiscovery
import ATVAirPlayCore
import ATVCore
import Testing

@Suite struct ResponderStateMachineTests {
    let services = MDNSService.airPlay1Speaker(name: "Küche", deviceID: "aa:bb:cc:dd:ee:01", port: 5000,
                                               hostName: "kueche.local", address: "127.0.0.1")
    var machine: ResponderStateMachine { ResponderStateMachine(services: services) }

    func query(_ questions: [DNSQuestion], id: UInt16 = 0, answers: [DNSRecord] = []) -> [UInt8] {
        DNSSerializer.serialize(DNSMessage(id: id, flags: 0, questions: questions, answers: answers))
    }

    func parse(_ o: ResponderStateMachine.Outgoing) throws -> DNSMessage { try DNSParser.parse(o.bytes) }

    @Test func speakerServicesLookLikeAnAirPlay1Receiver() {
        let raop = services[0], airplay = services[1]
        #expect(raop.fullName == "AABBCCDDEE01@Küche._raop._tcp.local")
        #expect(raop.txt["am"] != nil && raop.txt["ch"] == "2" && raop.txt["cn"] == "0,1" && raop.txt["et"] == "0")
        #expect(raop.txt["md"] == "0,1,2" && raop.txt["sr"] == "44100" && raop.txt["ss"] == "16" && raop.txt["tp"] == "UDP")
        #expect(raop.txt["vn"] == "65537" && raop.txt["txtvers"] == "1" && raop.txt["vs"] != nil)
        #expect(airplay.fullName == "Küche._airplay._tcp.local")
        #expect(airplay.txt["deviceid"] == "AA:BB:CC:DD:EE:01")
        #expect(AirPlayFeatureFlags(parsing: airplay.txt["features"] ?? "")?.isAirPlay2 == false)
    }

    @Test func legacyUnicastPTRQueryGetsOneReplyWithIDQuestionsAndAdditionals() throws {
        let q = query([DNSQuestion(name: "_raop._tcp.local", type: .ptr, unicastResponse: true),
                       DNSQuestion(name: "_mediaremotetv._tcp.local", type: .ptr, unicastResponse: true)], id: 0x35FF)
        let out = machine.received(q, from: "127.0.0.1", port: 40000)
        #expect(out.count == 1)
        #expect(out[0].destination == .unicast(host: "127.0.0.1", port: 40000))
        let m = try parse(out[0])
        #expect(m.id == 0x35FF && m.isResponse && m.flags & 0x0400 != 0)
        #expect(m.questions.map(\.name) == ["_raop._tcp.local", "_mediaremotetv._tcp.local"])
        #expect(m.answers.map(\.type) == [.ptr])
        #expect(m.answers.first?.data == .ptr("AABBCCDDEE01@Küche._raop._tcp.local"))
        #expect(Set(m.additionals.map(\.type)) == [.srv, .txt, .a])
        // Legacy replies carry no cache-flush bit and short TTLs.
        #expect(m.allRecords.allSatisfy { !$0.cacheFlush && $0.ttl <= 10 })
        // What the scanner makes of it.
        let found = DeviceBuilder.devices(from: DeviceBuilder.serviceRecords(from: m.allRecords, sourceAddress: "127.0.0.1"))
        #expect(found.count == 1)
        #expect(found.first?.name == "Küche")
        #expect(found.first?.service(.raop)?.port == 5000)
        #expect(found.first?.service(.raop)?.identifier == "AABBCCDDEE01")
    }

    @Test func legacyQueryWithoutMatchStillGetsAnEmptyReply() throws {
        let q = query([DNSQuestion(name: "_hscp._tcp.local", type: .ptr, unicastResponse: true)], id: 7)
        let out = machine.received(q, from: "127.0.0.1", port: 40000)
        #expect(out.count == 1)
        let m = try parse(out[0])
        #expect(m.id == 7 && m.answers.isEmpty && m.questions.count == 1)
    }

    @Test func multicastQueryFromPort5353IsAnsweredByMulticast() throws {
        let q = query([DNSQuestion(name: "_airplay._tcp.local", type: .ptr)], id: 0)
        let out = machine.received(q, from: "127.0.0.9", port: 5353)
        #expect(out.count == 1)
        #expect(out[0].destination == .multicast)
        let m = try parse(out[0])
        #expect(m.id == 0 && m.questions.isEmpty)
        #expect(m.answers.first?.data == .ptr("Küche._airplay._tcp.local"))
        #expect(m.additionals.contains { $0.type == .srv && $0.cacheFlush })
    }

    @Test func quQuestionFrom5353IsAnsweredByUnicast() throws {
        let q = query([DNSQuestion(name: "Küche._airplay._tcp.local", type: .srv, unicastResponse: true)])
        let out = machine.received(q, from: "127.0.0.9", port: 5353)
        #expect(out.map(\.destination) == [.unicast(host: "127.0.0.9", port: 5353)])
        let m = try parse(out[0])
        #expect(m.answers.count == 1)
        #expect(m.answers.first?.data == .srv(priority: 0, weight: 0, port: 5000, target: "kueche.local"))
        #expect(m.additionals.map(\.data) == [.a("127.0.0.1")])
    }

    @Test func mixedQuestionsAreSplitBetweenUnicastAndMulticast() throws {
        let q = query([DNSQuestion(name: "kueche.local", type: .a, unicastResponse: true),
                       DNSQuestion(name: "AABBCCDDEE01@Küche._raop._tcp.local", type: .txt)])
        let out = machine.received(q, from: "127.0.0.9", port: 5353)
        #expect(out.map(\.destination) == [.unicast(host: "127.0.0.9", port: 5353), .multicast])
        #expect(try parse(out[0]).answers.map(\.type) == [.a])
        let txt = try parse(out[1]).answers
        #expect(txt.map(\.type) == [.txt])
        if case .txt(let strings)? = txt.first?.data {
            #expect(TXTProperties.decode(strings)["sr"] == "44100")
        } else {
            Issue.record("no TXT answer")
        }
    }

    @Test func anyQuestionsAndCaseInsensitiveNames() throws {
        let out = machine.received(query([DNSQuestion(name: "KÜCHE._AIRPLAY._TCP.LOCAL", type: .any)]), from: "127.0.0.9", port: 5353)
        let m = try parse(out[0])
        #expect(Set(m.answers.map(\.type)) == [.srv, .txt])
        let host = machine.received(query([DNSQuestion(name: "Kueche.Local", type: .any)]), from: "127.0.0.9", port: 5353)
        #expect(try parse(host[0]).answers.map(\.data) == [.a("127.0.0.1")])
    }

    @Test func serviceEnumerationListsTypes() throws {
        let out = machine.received(query([DNSQuestion(name: "_services._dns-sd._udp.local", type: .ptr)]), from: "127.0.0.9", port: 5353)
        let targets = try parse(out[0]).answers.map(\.data)
        #expect(targets == [.ptr("_raop._tcp.local"), .ptr("_airplay._tcp.local")])
    }

    @Test func unrelatedQueriesResponsesAndGarbageGetNothing() {
        #expect(machine.received(query([DNSQuestion(name: "_http._tcp.local", type: .ptr)]), from: "127.0.0.9", port: 5353).isEmpty)
        let response = DNSSerializer.serialize(DNSMessage(flags: 0x8400, questions: [DNSQuestion(name: "_raop._tcp.local", type: .ptr)]))
        #expect(machine.received(response, from: "127.0.0.9", port: 40000).isEmpty)
        #expect(machine.received([1, 2, 3], from: "127.0.0.9", port: 40000).isEmpty)
        #expect(machine.received([], from: "127.0.0.9", port: 5353).isEmpty)
    }

    @Test func knownAnswersAreSuppressed() throws {
        let ptr = DNSRecord(name: "_raop._tcp.local", type: .ptr, ttl: 4500, data: .ptr("AABBCCDDEE01@Küche._raop._tcp.local"))
        let q = query([DNSQuestion(name: "_raop._tcp.local", type: .ptr)], answers: [ptr])
        #expect(machine.received(q, from: "127.0.0.9", port: 5353).isEmpty)
        // A known answer with less than half its TTL left does not suppress.
        var stale = ptr
        stale.ttl = 100
        let q2 = query([DNSQuestion(name: "_raop._tcp.local", type: .ptr)], answers: [stale])
        #expect(machine.received(q2, from: "127.0.0.9", port: 5353).count == 1)
    }

    @Test func announcesTwiceASecondApartThenSaysGoodbye() throws {
        var m = machine
        let first = m.start(now: 10)
        #expect(first.map(\.destination) == [.multicast])
        let announced = try DNSParser.parse(first[0].bytes)
        #expect(announced.isResponse && announced.answers.count == 2 * 3 + 1)   // PTR+SRV+TXT per service, one A
        #expect(m.nextDeadline == 11)
        #expect(m.tick(now: 10.5).isEmpty)
        #expect(m.tick(now: 11.0).count == 1)
        #expect(m.nextDeadline == nil)
        #expect(m.tick(now: 20).isEmpty)
        let bye = m.stop()
        let goodbye = try DNSParser.parse(bye[0].bytes)
        #expect(goodbye.answers.count == announced.answers.count && goodbye.answers.allSatisfy { $0.ttl == 0 })
        #expect(m.stop().isEmpty)
        #expect(m.received(query([DNSQuestion(name: "_raop._tcp.local", type: .ptr)]), from: "127.0.0.9", port: 40000).isEmpty)
    }

    @Test func randomAndMutatedInputNeverCrashes() {
        let seed = TestSeed.value(default: 0x3E5D)
        var rng = SplitMix64(seed: seed)
        let m = machine
        let valid = query([DNSQuestion(name: "_raop._tcp.local", type: .ptr, unicastResponse: true),
                           DNSQuestion(name: "Küche._airplay._tcp.local", type: .any)], id: 9)
        for i in 0..<3000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = Array(valid.prefix(Int.random(in: 0...valid.count, using: &rng)))
                for _ in 0..<Int.random(in: 0...3, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            for o in m.received(bytes, from: "127.0.0.9", port: i % 3 == 0 ? 5353 : 40000) {
                #expect((try? DNSParser.parse(o.bytes)) != nil, "seed \(seed) case \(i)")
            }
        }
    }
}
