import ATV
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVDMAP
import ATVHTTP
import ATVSimulator
import Testing

/// `pair(config, protocol:)` (pyatv's `pyatv.pair`) driven as a library user would: begin → PIN →
/// finish → close, against in-process virtual devices (proven against pyatv in CLITests).
@Suite(.serialized) struct PairFacadeTests {
    static func mrpConfig(_ device: VirtualMRP, credentials: String? = nil) -> DeviceConfig {
        DeviceConfig(name: "virtual", address: "127.0.0.1",
                     services: [ServiceConfig(protocol: .mrp, identifier: device.configuration.deviceID, port: device.port,
                                              credentials: credentials, properties: device.mdnsServices().first?.txt ?? [:])])
    }

    @Test func mrpPairingReturnsCredentialsThatConnect() async throws {
        let device = try await VirtualMRP.start(.init(pin: "4321", advanceInterval: nil))
        defer { Task { await device.stop() } }
        let handler = try pair(Self.mrpConfig(device), protocol: .mrp, options: PairingOptions(timeout: .seconds(10)))
        #expect(handler.pairingProtocol == .mrp && handler.deviceProvidesPIN)
        try await handler.begin()
        try await handler.pin("4321")
        let credentials = try await handler.finish()
        await handler.close()
        #expect(await handler.hasPaired)
        guard case .hap = credentials else { Issue.record("expected HAP credentials, got \(credentials.masked)"); return }
        let atv = try await connect(Self.mrpConfig(device, credentials: credentials.stringValue))
        #expect(atv.protocols.contains(.mrp))
        await atv.close()
    }

    @Test func wrongPINFailsAndHasNotPaired() async throws {
        let device = try await VirtualMRP.start(.init(pin: "4321", advanceInterval: nil))
        defer { Task { await device.stop() } }
        let handler = try pair(Self.mrpConfig(device), protocol: .mrp, options: PairingOptions(timeout: .seconds(10)))
        try await handler.begin()
        try await handler.pin("1111")
        await #expect(throws: ATVError.self) { _ = try await handler.finish() }
        await handler.close()
        #expect(await !handler.hasPaired)
    }

    @Test func companionPairingThroughTheFacade() async throws {
        let device = try await VirtualCompanion.start(.init())
        defer { Task { await device.stop() } }
        let config = CompanionFacadeTests.config(port: device.port, credentials: nil)
        let handler = try pair(config, protocol: .companion, options: PairingOptions(name: "tests", timeout: .seconds(10)))
        try await handler.begin()
        try await handler.pin(device.configuration.pin)
        let credentials = try await handler.finish()
        await handler.close()
        let atv = try await connect(CompanionFacadeTests.config(port: device.port, credentials: credentials.stringValue))
        #expect(atv.protocols == [.companion])
        await atv.close()
    }

    @Test func aProtocolTheDeviceLacksIsNoService() throws {
        let config = DeviceConfig(name: "x", address: "127.0.0.1", services: [])
        #expect(throws: ATVError.noService(.companion)) { _ = try pair(config, protocol: .companion) }
    }

    /// DMAP: we choose the PIN; the Apple TV's `GET /pair` with the matching code completes it and
    /// the credential is our GUID; a wrong code is refused.
    @Test func dmapPairingWaitsForTheDevicesRequest() async throws {
        let config = DeviceConfig(name: "x", address: "127.0.0.1", services: [])
        let handler = try pair(config, protocol: .dmap,
                               options: PairingOptions(name: "tests", timeout: .seconds(10), guid: "0123456789ABCDEF", publish: false))
        #expect(!handler.deviceProvidesPIN)
        try await handler.pin("1234")
        try await handler.begin()
        #expect(await handler.pinToEnter == "1234")
        let port = try #require(await (handler as? DMAPPairingServer)?.port)
        let http = try await HTTPClientConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
        let wrong = try await http.send(PairingHTTPRequest(method: "GET", path: "/pair?pairingcode=00&servicename=Den", headers: [], body: []), timeout: .seconds(5))
        #expect(wrong.status == 500)
        let code = DMAPPairing.pairingCode(guid: "0123456789ABCDEF", pin: "1234")
        let right = try await http.send(PairingHTTPRequest(method: "GET", path: "/pair?pairingcode=\(code)&servicename=Den", headers: [], body: []), timeout: .seconds(5))
        #expect(right.status == 200)
        http.close()
        let credentials = try await handler.finish()
        await handler.close()
        #expect(credentials == .dmapPairingGUID("0x0123456789ABCDEF"))
        #expect(await handler.pairedDeviceName == "Den")
    }

    /// `finish()` already waiting when the Apple TV's request comes (as `atv pair` does): the
    /// server stops only after the answer is on the wire, so the Apple TV always reads it. Before
    /// this, stopping raced the write and the device sometimes read nothing (CI saw it once).
    @Test func dmapAnswerReachesTheDeviceBeforeTheServerStops() async throws {
        let config = DeviceConfig(name: "x", address: "127.0.0.1", services: [])
        let code = DMAPPairing.pairingCode(guid: "0123456789ABCDEF", pin: "1234")
        for _ in 0 ..< 25 {
            let handler = try pair(config, protocol: .dmap,
                                   options: PairingOptions(name: "tests", timeout: .seconds(10), guid: "0123456789ABCDEF", publish: false))
            try await handler.pin("1234")
            try await handler.begin()
            let port = try #require(await (handler as? DMAPPairingServer)?.port)
            async let credentials = handler.finish()
            let http = try await HTTPClientConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            let right = try await http.send(PairingHTTPRequest(method: "GET", path: "/pair?pairingcode=\(code)&servicename=Den", headers: [], body: []),
                                            timeout: .seconds(5))
            http.close()
            #expect(right.status == 200)
            #expect(right.body == DMAPPairing.responseBody(guid: "0123456789ABCDEF", name: "tests"))
            #expect(try await credentials == .dmapPairingGUID("0x0123456789ABCDEF"))
            await handler.close()
        }
    }
}
