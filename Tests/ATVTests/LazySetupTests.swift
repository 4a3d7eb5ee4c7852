import ATV
import ATVAudio
import ATVCore
import ATVRAOP
import ATVSimulator
import ATVTestSupport
import Foundation
import Testing

/// The facade sets each protocol up on its first use: a call never waits for, nor fails because
/// of, a protocol it does not use.
@Suite(.serialized) struct LazySetupTests {
    @Test func eachProtocolIsSetUpOnFirstUseOnce() async throws {
        let log = CallLog()
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .mrp,
                                  interfaces: InterfaceSet(remoteControl: PartialRemote(proto: .mrp, log: log, implements: ["up"])),
                                  features: StaticFeatures([:]),
                                  connect: { log.add("connect.mrp"); throw ATVError.connectionFailed("the tunnel was refused") }))
        try atv.add(ProtocolSetup(protocol: .companion, interfaces: InterfaceSet(power: TestPower(proto: .companion, log: log)),
                                  features: StaticFeatures([:]),
                                  connect: { try await Task.sleep(for: .milliseconds(50)); log.add("connect.companion") }))
        try atv.add(ProtocolSetup(protocol: .raop, interfaces: InterfaceSet(), features: StaticFeatures([:]),
                                  connect: { log.add("connect.raop") }))
        try await atv.connect()
        #expect(log.all.isEmpty)
        #expect(atv.protocols == [.mrp, .companion, .raop] && atv.protocolsSetUp.isEmpty)

        // Two calls at once through Companion share its one setup; nothing else is connected.
        async let on: Void = atv.power.turnOn()
        async let state = atv.power.powerState()
        _ = try await (on, state)
        #expect(log.all.filter { $0.hasPrefix("connect.") } == ["connect.companion"])
        #expect(log.all.contains("companion.turnOn") && log.all.contains("companion.powerState"))
        #expect(atv.protocolsSetUp == [.companion])

        // A call that needs MRP gets MRP's failure; it is remembered, not retried.
        await #expect(throws: ATVError.connectionFailed("the tunnel was refused")) { try await atv.remoteControl.up() }
        await #expect(throws: ATVError.connectionFailed("the tunnel was refused")) { try await atv.remoteControl.up() }
        #expect(log.all.filter { $0 == "connect.mrp" }.count == 1)
        #expect(!log.all.contains("mrp.up"))
        // ... and the device stays usable through the protocols that work.
        #expect(try await atv.power.powerState() == .on)
        #expect(!atv.isClosed)
        // Setting everything up reports the failure too.
        await #expect(throws: ATVError.connectionFailed("the tunnel was refused")) { try await atv.setUp() }
        try await atv.setUp([.raop])
        #expect(atv.protocolsSetUp == [.companion, .raop])
        await atv.close()
        await #expect(throws: ATVError.blocked) { try await atv.power.powerState() }
    }

    /// A setup that hangs ends at the device's setup deadline, with one line saying so.
    @Test func aStuckSetupEndsAtTheDeadline() async throws {
        let atv = AppleTV(config: DeviceConfig(name: "Stuck", address: "127.0.0.1", services: []), setUpDeadline: .milliseconds(300))
        try atv.add(ProtocolSetup(protocol: .companion, interfaces: InterfaceSet(power: TestPower(proto: .companion, log: CallLog())),
                                  features: StaticFeatures([:]), connect: { try await Task.sleep(for: .seconds(30)) }))
        try await atv.connect()
        let start = ContinuousClock.now
        do {
            _ = try await atv.power.powerState()
            Issue.record("a stuck setup succeeded")
        } catch let error as ATVError {
            guard case .timeout(let text) = error else { Issue.record("expected a timeout, got \(error)"); return }
            #expect(text.contains("Stuck") && text.lowercased().contains("companion") && !text.contains("\n"), "\(text)")
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        await atv.close()
    }

    /// A HomePod (model AudioAccessory: the facade offers MRP through the AirPlay 2 tunnel) whose
    /// tunnel is refused still gets the whole stream, bit-exact, and sees no remote-control SETUP
    /// at all, before the first audio packet or after. Remote control then fails with one clear line.
    @Test func streamToAHomePodOpensNoTunnel() async throws {
        let dir = try makeTempDir("lazy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let received = dir.appendingPathComponent("pod.wav").path
        var podConfig = VirtualHomePod.Configuration(outputPath: received)
        podConfig.remoteControlTunnel = false
        let pod = try await VirtualHomePod.start(podConfig)
        defer { Task { await pod.stop() } }

        // 1.5 s of a tone that starts with a non-zero sample, as a WAV file.
        let source = dir.appendingPathComponent("tone.wav").path
        var pcm: [UInt8] = []
        for f in 0..<(44_100 * 3 / 2) {
            let v = Int16(6000 * sin(Double(f) * 2 * .pi * 523 / 44_100) + 100)
            let u = UInt16(bitPattern: v)
            pcm += [UInt8(u & 0xFF), UInt8(u >> 8), UInt8(u & 0xFF), UInt8(u >> 8)]
        }
        var writer = try WAVWriter(path: source)
        try writer.write(bytes: pcm)
        try writer.close()

        let services = pod.mdnsServices()
        let config = DeviceConfig(name: "Pod", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .airplay, identifier: "AA:BB:CC:DD:EE:F0", port: pod.port, properties: services[0].txt),
            ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:F0", port: pod.port, properties: services[1].txt),
        ])
        let atv = try await connect(config, options: ConnectOptions(raop: RAOPOptions(latencyFrames: 11_025)))
        #expect(Set(atv.protocols) == [.airplay, .raop, .mrp])   // MRP is offered (tunnel), not set up

        // Progress and state come through the facade's stream interface.
        let progress = atv.stream.progress()
        let seen = Task {
            var states: [StreamProgress] = []
            for await p in progress {
                states.append(p)
                if p.state == .finished || p.state == .failed { break }
            }
            return states
        }
        try await atv.stream.streamFile(.file(source), metadata: nil)
        let states = await seen.value
        #expect(states.last?.state == .finished, "\(states.suffix(3))")
        #expect(states.contains { $0.state == .playing && $0.position > 0.5 && $0.volume != nil }, "\(states.suffix(3))")
        #expect(states.allSatisfy { $0.duration.map { abs($0 - 1.5) < 0.05 } ?? true }, "\(states.suffix(3))")
        let report = try await pod.waitForSessionEnd(timeout: .seconds(15))
        #expect(report.beforeFirstAudio?.remoteControlSetups == 0, "\(report)")
        #expect(report.remoteControlSessions == 0 && report.remoteControlStreams == 0 && report.remoteControlRefused == 0, "\(report)")
        #expect(report.decryptFailures == 0 && report.unrecoveredPackets == 0, "\(report)")
        #expect(!atv.protocolsSetUp.contains(.mrp))

        // Bit-exact: the source at one place, only silence around it.
        let captured = try WAVFile(path: received).data
        let offset = try #require(Self.find(Array(pcm.prefix(4096)), in: captured), "the source is not in the capture")
        #expect(captured.count >= offset + pcm.count)
        #expect(captured[..<offset].allSatisfy { $0 == 0 })
        #expect(captured[offset..<min(captured.count, offset + pcm.count)].elementsEqual(pcm), "capture differs from the source")
        #expect(captured[min(captured.count, offset + pcm.count)...].allSatisfy { $0 == 0 })

        // Now something that needs MRP: the refused tunnel is its error, in one line.
        do {
            _ = try await atv.metadata.playing()
            Issue.record("now playing without a tunnel")
        } catch let error as ATVError {
            let text = error.description
            #expect(text.contains("remote control through the AirPlay 2 tunnel") && text.contains("501") && !text.contains("\n"), "\(text)")
        }
        let after = pod.report()
        #expect(after.remoteControlRefused == 1, "\(after)")
        #expect(!atv.isClosed)
        await atv.close()
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 4
        }
        return nil
    }
}
