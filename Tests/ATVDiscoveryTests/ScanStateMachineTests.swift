@testable import ATVDiscovery
import ATVCore
import Testing

/// The scan logic against a responder that behaves like avahi: it answers legacy unicast queries
/// only when it has records, and cuts answers at 512 bytes without the TC bit.
@Suite struct ScanStateMachineTests {
    let speaker = ResponderStateMachine(services: MDNSService.airPlay1Speaker(
        name: "Kitchen", deviceID: "AA:BB:CC:DD:EE:01", port: 5000, hostName: "kitchen.local", address: "127.0.0.2"))

    /// Answers like avahi: nothing for questions without records; at most 512 bytes.
    func avahiLike(_ query: [UInt8]) -> [UInt8]? {
        guard let out = speaker.received(query, from: "127.0.0.1", port: 40000).first,
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

    @Test func unicastAsksOneTypePerQueryAndEndsSoonAfterTheHostAnswered() throws {
        var m = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
        let queries = sent(m.start(now: 0))
        #expect(queries.count == ServiceType.scanned.count)
        #expect(try queries.allSatisfy { try DNSParser.parse($0).questions.count == 1 })
        var actions: [ScanStateMachine.Action] = []
        for q in queries {
            if let answer = avahiLike(q) { actions += m.received(answer, from: "127.0.0.1", now: 0.01) }
        }
        // Most types are not answered at all; the scan must not wait for its timeout.
        #expect(!m.isFinished)
        #expect(m.tick(now: 0.05).isEmpty)
        actions += m.tick(now: 0.12)
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
        var rng = SystemRandomNumberGenerator()
        for i in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = m.received(bytes, from: i % 2 == 0 ? "127.0.0.1" : "127.0.0.9", now: 0.001 * Double(i))
        }
        #expect(!m.isFinished)
    }
}
