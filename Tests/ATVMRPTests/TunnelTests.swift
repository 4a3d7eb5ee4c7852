import ATVTestSupport
import ATV
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVSimulator
import Foundation
import Testing
@testable import ATVMRP

/// MRP over the AirPlay 2 remote-control channel (stream SETUP type 130) against the virtual HomePod.
@Suite(.serialized) struct TunnelTests {
    func startPod() async throws -> VirtualHomePod {
        var c = VirtualHomePod.Configuration()
        c.remoteControl = VirtualMRP.Configuration(advanceInterval: nil)
        return try await VirtualHomePod.start(c)
    }

    /// What a scan of a HomePod yields: an AirPlay service with its model in the TXT record.
    func homePodConfig(_ pod: VirtualHomePod, model: String = "AudioAccessory5,1") -> DeviceConfig {
        DeviceConfig(name: "pod", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .airplay, identifier: pod.configuration.deviceID, port: pod.port,
                          properties: ["model": model, "osvers": pod.configuration.osVersion]),
        ])
    }

    @Test func tunnelRule() throws {
        func rule(_ props: [String: String], creds: String? = nil, mrp: Bool = false, mode: MRPTunnel = .auto) throws -> HAPCredentials?? {
            var services = [ServiceConfig(protocol: .airplay, identifier: "x", port: 7000, credentials: creds, properties: props)]
            if mrp { services.append(ServiceConfig(protocol: .mrp, identifier: "x", port: 49152)) }
            let config = DeviceConfig(name: "d", address: "127.0.0.1", services: services)
            return try MRPService.tunnelCredentials(airplay: config.services[0], in: config, mode: mode)
        }
        let hap = HAPCredentials(deviceLTPK: [UInt8](repeating: 1, count: 32), clientLTSK: [UInt8](repeating: 2, count: 32),
                                 deviceID: Array("dev".utf8), clientID: Array("client".utf8))
        let hapText = hap.stringValue
        // HomePod: transient pairing when nothing is stored.
        #expect(try rule(["model": "AudioAccessory5,1"]).map { $0 == nil } == true)
        // Apple TV: tvOS ≥ 15 and HAP credentials only.
        #expect(try rule(["model": "AppleTV11,1", "osvers": "17.2"]) == nil)
        #expect(try rule(["model": "AppleTV11,1", "osvers": "17.2"], creds: hapText)??.clientID == Array("client".utf8))
        #expect(try rule(["model": "AppleTV6,2", "osvers": "14.7"], creds: hapText) == nil)
        // A direct MRP service wins; disable and force.
        #expect(try rule(["model": "AudioAccessory5,1"], mrp: true) == nil)
        #expect(try rule(["model": "AudioAccessory5,1"], mode: .disable) == nil)
        #expect(try rule([:], mode: .force).map { $0 == nil } == true)
        // Stored credentials that can't be read fail closed: an error, not transient pairing.
        #expect(throws: ATVError.self) { try rule(["model": "AudioAccessory5,1"], creds: "not-credentials") }
    }

    /// The facade picks the tunnel for a HomePod by itself: what plays, a command that changes the
    /// device's state, push updates, and the device dropping the data channel ends them with an error.
    @Test func facadeOverTheTunnel() async throws {
        let pod = try await startPod()
        defer { Task { await pod.stop() } }
        let atv = try await connect(homePodConfig(pod))
        #expect(atv.protocols.contains(.mrp))
        let p = try await atv.metadata.playing()
        #expect(p.title == "First Light" && p.artist == "The Virtuals" && p.deviceState == .playing)
        let report = pod.report()
        #expect(report.pairings == [.transient])
        #expect(report.remoteControlStreams == 1 && report.dataChannelConnections == 1)
        #expect(report.requests.contains("enc RECORD"))
        #expect(pod.remoteControl.report.clientNames == ["swift-atv"])
        // No MRP pair-verify inside the tunnel.
        #expect(pod.remoteControl.report.verifications.isEmpty)

        let updates = atv.updates()
        try await atv.remoteControl.pause()
        #expect(pod.remoteControl.nowPlaying.playing == false)
        #expect(pod.remoteControl.report.commands.contains("pause"))
        #expect(try await atv.metadata.playing().deviceState == .paused)
        try await atv.remoteControl.next()
        var sawSecond = false
        var last: DeviceUpdate?
        var dropped = false
        for await u in updates {
            last = u
            if case .playing(let q) = u, q.title == "Second Wind", !dropped {
                sawSecond = true
                dropped = true
                pod.remoteControl.dropConnections()
            }
        }
        #expect(sawSecond)
        guard case .connectionLost? = last else {
            Issue.record("updates ended with \(String(describing: last))")
            return
        }
        await atv.close()
        // Closing tears the AirPlay session down; it was no audio session.
        #expect(pod.report().requests.contains("enc TEARDOWN"))
        #expect(pod.report().remoteControlSessions == 1 && pod.report().sessions == 0)
    }

    @Test func feedbackKeepsTheSessionAndCloseEndsIt() async throws {
        let pod = try await startPod()
        defer { Task { await pod.stop() } }
        let service = MRPService.tunnelledForTests(port: pod.port)
        try await service.connect()
        #expect(service.isTunnelled)
        // The keep-alive /feedback comes every 2 s: wait for it with a deadline.
        #expect(await poll(timeout: .seconds(10)) { pod.report().feedbacks >= 1 }, "\(pod.report().requests)")
        #expect(try await service.playing().title == "First Light")
        #expect(pod.remoteControl.connectionCount == 1)
        await service.close()
        #expect(pod.report().requests.last == "enc TEARDOWN")
        // The data channel closes after the TEARDOWN: a deadline, not a fixed number of naps.
        #expect(await poll(timeout: .seconds(10)) { pod.remoteControl.connectionCount == 0 },
                "\(pod.remoteControl.connectionCount) data-channel connections still open")
    }
}

extension TunnelTests {
    /// An Apple TV with tvOS ≥ 15 and stored HAP AirPlay credentials: the tunnel pair-verifies.
    @Test func appleTVWithStoredCredentialsPairVerifies() async throws {
        let pod = try await startPod()
        defer { Task { await pod.stop() } }
        let creds = try await pairAirPlay2(host: "127.0.0.1", port: pod.port, pin: pod.configuration.pin)
        let config = DeviceConfig(name: "tv", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .airplay, identifier: "tv", port: pod.port, credentials: creds.stringValue,
                          properties: ["model": "AppleTV14,1", "osvers": "17.0"]),
        ])
        let atv = try await connect(config)
        #expect(try await atv.metadata.playing().title == "First Light")
        #expect(pod.report().pairings.last == .verify)
        await atv.close()
        // Without credentials the same Apple TV gets no tunnel (and so no MRP).
        let bare = DeviceConfig(name: "tv", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .airplay, identifier: "tv", port: pod.port, properties: ["model": "AppleTV14,1", "osvers": "17.0"]),
        ])
        let plain = try await connect(bare)
        #expect(!plain.protocols.contains(.mrp))
        await plain.close()
    }

    /// Garbage frames on the data channel (encrypted correctly, so they reach the frame parser):
    /// the device closes that data channel and keeps serving new ones.
    @Test func garbageOnTheDataChannelClosesItOnly() async throws {
        let pod = try await startPod()
        defer { Task { await pod.stop() } }
        for garbage: [UInt8] in [[0, 0, 0, 4] + [UInt8](repeating: 0x41, count: 28),
                                 MRPDataStreamFrame.sync(command: [1, 2, 3, 4], seqno: 1, payload: [0xFF, 0xFE, 0x01]).encoded()] {
            let tunnel = try await MRPService.openAirPlayTunnel(host: "127.0.0.1", port: pod.port, options: .init())
            let (ended, cont) = AsyncStream<ATVError?>.makeStream()
            let conn = try await MRPConnection.connect(host: tunnel.host, port: tunnel.port, transport: .airPlayDataStream,
                                                       configure: tunnel.configure,
                                                       listener: .init(closed: { e in cont.yield(e); cont.finish() }))
            await conn.writeRaw(garbage)
            var it = ended.makeAsyncIterator()
            let why = await it.next()
            #expect(why != nil, "the device should close the data channel")
            await tunnel.close()
        }
        #expect(pod.remoteControl.report.authFailures.count == 2)
        let service = MRPService.tunnelledForTests(port: pod.port)
        try await service.connect()
        #expect(try await service.playing().title == "First Light")
        await service.close()
    }

    /// The control connection going away (the HomePod stops) ends MRP too: updates end with
    /// connectionLost and later calls fail.
    @Test func losingTheAirPlaySessionEndsMRP() async throws {
        let pod = try await startPod()
        let service = MRPService.tunnelledForTests(port: pod.port)
        try await service.connect()
        let updates = service.updates()
        await pod.stop()
        var last: DeviceUpdate?
        for await u in updates { last = u }
        guard case .connectionLost? = last else {
            Issue.record("updates ended with \(String(describing: last))")
            return
        }
        await #expect(throws: ATVError.self) { try await service.pause() }
        await service.close()
    }
}

extension MRPService {
    static func tunnelledForTests(port: Int) -> MRPService {
        MRPService(host: "127.0.0.1", port: port, credentials: nil) {
            try await MRPService.openAirPlayTunnel(host: "127.0.0.1", port: port, options: .init())
        }
    }
}
