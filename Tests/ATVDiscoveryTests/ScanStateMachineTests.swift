import ATVTestSupport
@testable import ATVDiscovery
import ATVCore
import Testing

/// The scan logic against a responder that behaves like avahi: it answers legacy unicast queries
/// only when it has records, and cuts answers at 512 bytes without the TC bit.
@Suite struct ScanStateMachineTests {
    let speaker = ResponderStateMachine(services: MDNSService.airPlay1Speaker(
        name: "Kitchen", deviceID: "AA:BB:CC:DD:EE:01", port: 5000, hostName: "kitchen.local", address: "127.0.0.2"))

    /// Answers like avahi: nothing for questions without records; at most 512 bytes.
    func avahiLike(_ query: [UInt8]) -> [UInt8]? { avahiLike(speaker, query) }

    func avahiLike(_ responder: ResponderStateMachine, _ query: [UInt8]) -> [UInt8]? {
        guard let out = responder.received(query, from: "127.0.0.1", port: 40000).first,
              let msg = try? DNSParser.parse(out.bytes), !msg.answers.isEmpty else { return nil }
        var cut = msg
        cut.answers = []
        cut.additionals = []
        for r in msg.answers + msg.additionals {
            var trial = cut
            trial.answers.append(r)
            if DNSSerializer.serialize(trial).count <= 512 { cut = trial }
        }
        return DNSSerializer.serialize(cut)
    }

    func sent(_ actions: [ScanStateMachine.Action]) -> [[UInt8]] {
        actions.compactMap { if case .send(let b, _) = $0 { return b } else { return nil } }
    }

    func found(_ actions: [ScanStateMachine.Action]) -> [DeviceConfig] {
        actions.compactMap { if case .found(let d) = $0 { return d } else { return nil } }
    }

    /// The host really lacks most service types (a speaker: no MRP, Companion, DMAP...): it does
    /// not answer those questions, they are asked again twice, and the device is reported 0.4 s
    /// after the host's answers (UnicastCLITests bounds the first result of a real scan at 1 s).
    @Test func unicastAsksOneTypePerQueryAndEndsSoonAfterTheHostAnswered() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
        let queries = sent(m.start(now: 0))
        #expect(queries.count == ServiceType.scanned.count)
        #expect(try queries.allSatisfy { try DNSParser.parse($0).questions.count == 1 })
        var actions: [ScanStateMachine.Action] = []
        for q in queries {
            if let answer = avahiLike(q) { actions += m.received(answer, from: "127.0.0.1", now: 0.01) }
        }
        let unanswered = queries.filter { avahiLike($0) == nil }
        #expect(unanswered.count == ServiceType.scanned.count - 2)   // all but _raop and _airplay
        // Most types are not answered at all; the scan must not wait for its timeout, but asks
        // those again (the same queries) after 0.1 s of quiet, and again 0.1 s later.
        #expect(!m.isFinished)
        #expect(m.tick(now: 0.05).isEmpty)
        #expect(m.tick(now: 0.1).isEmpty)
        #expect(sent(m.tick(now: 0.12)) == unanswered)
        #expect(m.tick(now: 0.21).isEmpty)
        #expect(sent(m.tick(now: 0.23)) == unanswered)
        // Quiet 0.2 s after the second re-ask: they count as "not there".
        #expect(m.tick(now: 0.42).isEmpty)
        #expect(!m.isFinished)
        actions += m.tick(now: 0.44)
        #expect(m.isFinished)
        #expect(actions.last == .finished)
        let devices = found(actions)
        #expect(devices.count == 1)
        #expect(devices.first?.name == "Kitchen")
        #expect(devices.first?.address == "127.0.0.2")
        #expect(Set(devices.first?.services.map(\.protocol) ?? []) == [.raop, .airplay])
    }

    @Test func unicastHostThatNeverAnswersRunsToTheTimeoutWithResends() {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.9"], timeout: 2))
        let first = sent(m.start(now: 0))
        #expect(sent(m.tick(now: 0.5)).isEmpty)
        #expect(sent(m.tick(now: 1.0)).count == first.count)   // resent each second
        #expect(!m.isFinished)
        #expect(m.tick(now: 2.0).last == .finished)
    }

    @Test func instancesWithoutTXTAreAskedForDirectly() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
        let queries = sent(m.start(now: 0))
        let raopQuery = try #require(queries.first { (try? DNSParser.parse($0))?.questions.first?.name == ServiceType.raop })
        var answer = try DNSParser.parse(try #require(avahiLike(raopQuery)))
        answer.answers.removeAll { $0.type == .txt }           // as if cut off
        answer.additionals.removeAll { $0.type == .txt }
        let followUps = sent(m.received(DNSSerializer.serialize(answer), from: "127.0.0.1", now: 0.01))
        let asked = try followUps.map { try DNSParser.parse($0).questions[0] }
        #expect(asked.contains { $0.type == .txt && $0.name == "AABBCCDDEE01@Kitchen._raop._tcp.local" })
    }

    @Test func countStopsTheScanAtTheNthDevice() throws {
        var m = ScanStateMachine(.init(identifiers: [], timeout: 3, count: 1))
        let queries = sent(m.start(now: 0))
        var actions: [ScanStateMachine.Action] = []
        for q in queries {
            if let a = avahiLike(q) { actions += m.received(a, from: "127.0.0.2", now: 0.01) }
        }
        actions += m.tick(now: 0.2)    // quiet for `settle`
        #expect(found(actions).count == 1)
        #expect(m.isFinished)
    }

    @Test func randomDatagramsNeverCrashOrFinishTheScan() {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
        _ = m.start(now: 0)
        let seed = TestSeed.value(default: 0x5CA4)
        var rng = SplitMix64(seed: seed)
        for i in 0..<2000 {
            let bytes = randomBytes(Int.random(in: 0...120, using: &rng), using: &rng)
            let actions = m.received(bytes, from: i % 2 == 0 ? "127.0.0.1" : "127.0.0.9", now: 0.001 * Double(i))
            #expect(found(actions).isEmpty, "seed \(seed) case \(i): a device from random bytes")
        }
        #expect(!m.isFinished, "seed \(seed)")
    }

    // MARK: Completeness: devices are reported as soon as their records are complete

    let den = ResponderStateMachine(services: MDNSService.airPlay1Speaker(
        name: "Den", deviceID: "AA:BB:CC:DD:EE:02", port: 6000, hostName: "den.local", address: "127.0.0.3"))

    /// Every answer `responder` gives to the first round of `queries` (legacy unicast, TTL ≤ 10).
    func answers(_ responder: ResponderStateMachine, _ queries: [[UInt8]]) -> [[UInt8]] {
        queries.compactMap { q in
            guard let out = responder.received(q, from: "127.0.0.1", port: 40000).first,
                  let m = try? DNSParser.parse(out.bytes), !m.answers.isEmpty else { return nil }
            return out.bytes
        }
    }

    func records(_ responder: ResponderStateMachine, dropping types: Set<DNSType> = []) -> [DNSRecord] {
        responder.records.filter { !types.contains($0.type) }
    }

    @Test func incompleteInstancesAreThoseWithoutSRVOrTXT() {
        #expect(ScanStateMachine.incompleteInstances(records(speaker)).isEmpty)
        let noTXT = ScanStateMachine.incompleteInstances(records(speaker, dropping: [.txt]))
        #expect(Set(noTXT) == ["AABBCCDDEE01@Kitchen._raop._tcp.local", "Kitchen._airplay._tcp.local"])
        let onlyPTR = ScanStateMachine.incompleteInstances(records(speaker, dropping: [.txt, .srv, .a]))
        #expect(onlyPTR.count == 2)
        // A sleep proxy instance is never waited for.
        let proxy = DNSRecord(name: ServiceType.sleepProxy, type: .ptr, data: .ptr("70-35-60-63.1 Kitchen." + ServiceType.sleepProxy))
        #expect(ScanStateMachine.incompleteInstances(records(speaker) + [proxy]).isEmpty)
    }

    @Test func multicastReportsEachResponderOnceItsRecordsAreCompleteNotAtTheTimeout() throws {
        var m = ScanStateMachine(.init(timeout: 5))
        let queries = sent(m.start(now: 0))
        var actions: [ScanStateMachine.Action] = []
        for a in answers(speaker, queries) { actions += m.received(a, from: "127.0.0.2", now: 0.01) }
        #expect(found(actions).isEmpty)                     // the responder may still be answering
        #expect(found(m.tick(now: 0.1)).isEmpty)
        let first = found(m.tick(now: 0.17))                // quiet for `settle`: complete
        #expect(first.map(\.name) == ["Kitchen"])
        #expect(Set(first.first?.services.map(\.protocol) ?? []) == [.raop, .airplay])
        // A second responder answering later is reported on its own, again long before the timeout.
        actions = []
        for a in answers(den, queries) { actions += m.received(a, from: "127.0.0.3", now: 0.6) }
        #expect(found(actions).isEmpty)
        #expect(found(m.tick(now: 0.8)).map(\.name) == ["Den"])
        #expect(!m.isFinished)
        #expect(m.tick(now: 5).last == .finished)
        #expect(m.devices.map(\.name) == ["Kitchen", "Den"])
    }

    @Test func aRecordSentAgainWithAnotherTTLIsNotNews() throws {
        var m = ScanStateMachine(.init(timeout: 5))
        let queries = sent(m.start(now: 0))
        for a in answers(speaker, queries) { _ = m.received(a, from: "127.0.0.2", now: 0.01) }
        // The same records as a multicast announcement (TTL 4500/120 instead of 10, cache-flush) at 0.1 s.
        let announcement = speaker.announcement()
        #expect(try DNSParser.parse(announcement).answers.contains { $0.cacheFlush && $0.ttl > 10 })
        #expect(found(m.received(announcement, from: "127.0.0.2", now: 0.1)).isEmpty)
        #expect(found(m.tick(now: 0.17)).map(\.name) == ["Kitchen"])
    }

    @Test func anIncompleteInstanceHoldsItsResponderUntilAnswered() throws {
        var m = ScanStateMachine(.init(timeout: 5))
        _ = m.start(now: 0)
        let partial = DNSSerializer.serialize(DNSMessage(id: 0, flags: 0x8400, answers: records(speaker, dropping: [.txt])))
        let followUps = try sent(m.received(partial, from: "127.0.0.2", now: 0.01)).map { try DNSParser.parse($0) }
        #expect(followUps.count == 4)                       // SRV and TXT of each of the two instances
        #expect(found(m.tick(now: 0.5)).isEmpty)            // quiet, but not complete
        var actions: [ScanStateMachine.Action] = []
        for q in followUps {
            guard let out = speaker.received(DNSSerializer.serialize(q), from: "127.0.0.1", port: 40000).first else { continue }
            actions += m.received(out.bytes, from: "127.0.0.2", now: 0.6)
        }
        #expect(found(actions).isEmpty)
        let devices = found(m.tick(now: 0.76))
        #expect(devices.map(\.name) == ["Kitchen"])
        #expect(devices.first?.service(.raop)?.properties["am"] != nil)   // the TXT arrived
    }

    @Test func aFollowUpNobodyAnswersIsGivenUpOn() throws {
        var m = ScanStateMachine(.init(timeout: 5, followUpGiveUp: 1.5))
        _ = m.start(now: 0)
        let partial = DNSSerializer.serialize(DNSMessage(id: 0, flags: 0x8400, answers: records(speaker, dropping: [.txt])))
        let followUps = sent(m.received(partial, from: "127.0.0.2", now: 0.01))
        #expect(found(m.tick(now: 1.0)).isEmpty)
        #expect(sent(m.tick(now: 1.02)).count == followUps.count)   // asked again once
        #expect(found(m.tick(now: 1.4)).isEmpty)
        let devices = found(m.tick(now: 1.52))                     // given up: reported with what is known
        #expect(devices.map(\.name) == ["Kitchen"])
        #expect(!m.isFinished)
    }

    @Test func unicastReportsEachHostWhenItIsDoneAndNamesTheSilentOnes() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.2", "127.0.0.9"], timeout: 3))
        let start = m.start(now: 0)
        let toKitchen = start.compactMap { a -> [UInt8]? in
            if case .send(let b, .host("127.0.0.2")) = a { return b } else { return nil }
        }
        var actions: [ScanStateMachine.Action] = []
        for q in toKitchen { if let a = avahiLike(q) { actions += m.received(a, from: "127.0.0.2", now: 0.02) } }
        for t in stride(from: 0.05, through: 0.6, by: 0.05) { actions += m.tick(now: t) }
        #expect(found(actions).map(\.name) == ["Kitchen"])  // not held back by the silent host
        #expect(!m.isFinished)
        #expect(m.silentHosts == ["127.0.0.9"])
        #expect(m.tick(now: 3).last == .finished)
        #expect(m.silentHosts == ["127.0.0.9"])
    }

    @Test func unicastFindEndsAtTheNamedDeviceWithoutWaitingForOtherHosts() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.2", "127.0.0.9"], identifiers: ["AA:BB:CC:DD:EE:01"], timeout: 3))
        let start = m.start(now: 0)
        var actions: [ScanStateMachine.Action] = []
        for case .send(let q, .host("127.0.0.2")) in start {
            if let a = avahiLike(q) { actions += m.received(a, from: "127.0.0.2", now: 0.02) }
        }
        for t in stride(from: 0.05, through: 0.6, by: 0.05) { actions += m.tick(now: t) }
        #expect(found(actions).map(\.name) == ["Kitchen"])
        #expect(m.isFinished)
        #expect(actions.last == .finished)
    }

    // MARK: Unicast: a lost datagram does not lose a service

    /// An Apple TV: AirPlay and RAOP, and MRP under the same address.
    let livingRoom = ResponderStateMachine(services: MDNSService.airPlay1Speaker(
        name: "Living Room", deviceID: "AA:BB:CC:DD:EE:04", port: 7000, hostName: "living-room.local", address: "127.0.0.4")
        + [MDNSService(instance: "Living Room", type: ServiceType.mrp, port: 49152,
                       txt: ["Name": "Living Room", "UniqueIdentifier": "6D797FD3-3538-427E-A47B-A32FC6CF3A69", "macAddress": "AA:BB:CC:DD:EE:04"],
                       hostName: "living-room.local", address: "127.0.0.4")])

    func question(_ query: [UInt8]) -> String? { (try? DNSParser.parse(query))?.questions.first?.name }

    /// A unicast scan of the Apple TV (ticks every 25 ms, as the scanner does) where the answer
    /// to the `_mediaremotetv._tcp` question is lost `lost` times: the first answer, and then the
    /// answers to the re-asks. The devices reported, how often MRP was asked, the end time.
    func scanLosingTheMRPAnswer(_ lost: Int, reasks: Int = 2) throws -> (devices: [DeviceConfig], mrpAsked: Int, end: Double) {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.4"], timeout: 3, unicastReasks: reasks))
        let queries = sent(m.start(now: 0))
        let mrpQuery = try #require(queries.first { question($0) == ServiceType.mrp })
        #expect(avahiLike(livingRoom, mrpQuery) != nil)
        var actions: [ScanStateMachine.Action] = []
        var mrpAsked = 0
        func deliver(_ queries: [[UInt8]], now: Double) {
            for q in queries {
                if q == mrpQuery {
                    mrpAsked += 1
                    if mrpAsked <= lost { continue }
                }
                if let a = avahiLike(livingRoom, q) { actions += m.received(a, from: "127.0.0.4", now: now + 0.002) }
            }
        }
        deliver(queries, now: 0.008)
        var now = 0.0
        while !m.isFinished && now < 3 {
            now += 0.025
            let out = m.tick(now: now)
            actions += out
            deliver(sent(out), now: now)
        }
        #expect(m.isFinished)
        return (found(actions), mrpAsked, now)
    }

    /// The answer to the `_mediaremotetv._tcp` question is lost once or twice: the host answered
    /// everything else and then went quiet, which alone would mean "no MRP". The question is
    /// asked again and the device is reported with its MRP service, long before the 1 s resend.
    @Test(arguments: [1, 2])
    func unicastAsksAgainWhatAHostLeftUnansweredSoALostAnswerDoesNotLoseTheService(lost: Int) throws {
        let scan = try scanLosingTheMRPAnswer(lost)
        #expect(scan.mrpAsked == lost + 1)
        #expect(scan.devices.map(\.name) == ["Living Room"])
        #expect(Set(scan.devices.last?.services.map(\.protocol) ?? []) == [.mrp, .airplay, .raop])
        #expect(scan.devices.last?.service(.mrp)?.port == 49152)
        #expect(scan.end <= 0.5, "finished at \(scan.end) s")   // two re-asks, 0.1 s and then 0.2 s of quiet
    }

    /// The same loss without re-asks (the rule before): the host is done 0.1 s after its answers
    /// and Living Room is reported without MRP, as an interop scan under a flood of garbage
    /// datagrams once did. And a third lost answer (two re-asks) loses it too: a host that stays
    /// silent about a type after three askings is taken not to have it.
    @Test(arguments: [(1, 0), (3, 2)])
    func withoutAnAnswerToAnyAskingTheServiceIsTakenAsAbsent(lost: Int, reasks: Int) throws {
        let scan = try scanLosingTheMRPAnswer(lost, reasks: reasks)
        #expect(scan.mrpAsked == reasks + 1)
        #expect(scan.devices.map(\.name) == ["Living Room"])
        #expect(Set(scan.devices.last?.services.map(\.protocol) ?? []) == [.airplay, .raop])
    }

    /// The waits after a re-ask grow with the host's round trip: a host whose answers took 0.3 s
    /// gets 0.6 s to answer the first re-ask and 1.2 s the second (still inside the timeout).
    @Test func unicastReaskWaitsFollowTheHostsRoundTrip() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
        let queries = sent(m.start(now: 0))
        for q in queries { if let a = avahiLike(q) { _ = m.received(a, from: "127.0.0.1", now: 0.3) } }
        let unanswered = queries.filter { avahiLike($0) == nil }
        #expect(m.tick(now: 0.39).isEmpty)
        #expect(sent(m.tick(now: 0.41)) == unanswered)            // 0.1 s quiet
        #expect(m.tick(now: 0.99).isEmpty)
        #expect(sent(m.tick(now: 1.02)) == unanswered)            // 0.6 s after the first re-ask
        #expect(m.tick(now: 2.0).isEmpty)
        #expect(Set(sent(m.tick(now: 2.03))) == Set(unanswered))  // the usual 1 s resend
        #expect(found(m.tick(now: 2.2)).isEmpty)
        let last = m.tick(now: 2.23)                               // 1.2 s after the second: not there
        #expect(found(last).map(\.name) == ["Kitchen"])
        #expect(m.isFinished)
    }

    /// A follow-up nobody answers (an instance whose TXT never comes) does not hold up the
    /// re-asks of the unanswered first-round questions: those run their course meanwhile, and the
    /// host is done when the follow-up is given up on (1.5 s), not later.
    @Test func unicastReasksRunWhileAFollowUpIsPending() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3, followUpGiveUp: 1.5))
        let queries = sent(m.start(now: 0))
        var followUps: [[UInt8]] = []
        for q in queries {
            guard let a = avahiLike(q) else { continue }
            var answer = try DNSParser.parse(a)
            answer.answers.removeAll { $0.type == .txt }
            answer.additionals.removeAll { $0.type == .txt }
            followUps += sent(m.received(DNSSerializer.serialize(answer), from: "127.0.0.1", now: 0.01))
        }
        #expect(!followUps.isEmpty && followUps.allSatisfy { question($0)?.contains("Kitchen") == true })
        let unanswered = queries.filter { avahiLike($0) == nil }
        #expect(sent(m.tick(now: 0.12)) == unanswered)
        #expect(sent(m.tick(now: 0.23)) == unanswered)
        #expect(m.tick(now: 0.44).isEmpty)                        // not there; the follow-ups still run
        #expect(Set(sent(m.tick(now: 1.02))) == Set(followUps))     // their 1 s resend
        #expect(found(m.tick(now: 1.5)).isEmpty)
        let end = m.tick(now: 1.52)
        #expect(found(end).map(\.name) == ["Kitchen"])
        #expect(end.last == .finished)
    }
}
