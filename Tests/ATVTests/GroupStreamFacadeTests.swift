// The facade's group stream: two virtual AirPlay 1 speakers at 127.0.0.104/105 (this suite's own).
import ATV
import ATVAudio
import ATVCore
import ATVRAOP
import ATVSimulator
import Testing

@Suite struct GroupStreamFacadeTests {
    @Test func streamGroupChoosesEachRouteAndPlaysToEveryDevice() async throws {
        let s1 = try await VirtualSpeaker.start(.init(host: "127.0.0.104", name: "Kitchen"))
        let s2 = try await VirtualSpeaker.start(.init(host: "127.0.0.105", name: "Bedroom"))
        defer { Task { await s1.stop(); await s2.stop() } }
        func config(_ name: String, _ address: String, _ port: Int) -> DeviceConfig {
            DeviceConfig(name: name, address: address,
                         services: [ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:0\(port % 10)", port: port)])
        }
        let devices = [(name: "Kitchen", config: config("Kitchen", "127.0.0.104", s1.port), offsetMilliseconds: 0.0),
                       (name: "Bedroom", config: config("Bedroom", "127.0.0.105", s2.port), offsetMilliseconds: 10.0)]
        #expect(throws: ATVError.self) { _ = try streamGroup([devices[0], devices[0]]) }
        let group = try streamGroup(devices, options: ConnectOptions(raop: RAOPOptions(latencyFrames: 11_025), airPlayVersion: .v1))
        let report = try await group.stream(RAOPFacadeTests.Tone(packets: 250))
        #expect(report.anyPlayedWhole)
        for m in report.members {
            #expect(m.playedWhole, "\(m.name): \(m.state) \(m.error ?? "")")
            #expect(m.route == .airPlay1)
            #expect((m.report?.packetsSent ?? 0) >= 250)
        }
        #expect(s1.report().packetsReceived >= 250 && s2.report().packetsReceived >= 250)
    }
}
