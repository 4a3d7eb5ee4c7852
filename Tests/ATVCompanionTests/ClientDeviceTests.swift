import ATVTestSupport
import ATVAuth
import ATVCore
import ATVCompanion
import ATVSimulator
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Our CompanionClient against our VirtualCompanion over TCP on loopback.
@Suite(.timeLimit(.minutes(1))) struct CompanionClientDeviceTests {
    func pairedClient(_ device: VirtualCompanion) async throws -> (CompanionClient, HAPCredentials) {
        let c1 = try await CompanionClient.connect(host: "127.0.0.1", port: device.port)
        let creds = try await c1.pair(pin: "1111", name: "tests")
        await c1.close()
        let c2 = try await CompanionClient.connect(host: "127.0.0.1", port: device.port)
        try await c2.verify(creds)
        return (c2, creds)
    }

    @Test func pairVerifySessionAppsLaunchAccountsPower() async throws {
        let device = try await VirtualCompanion.start()
        defer { Task { await device.stop() } }
        let (client, creds) = try await pairedClient(device)
        #expect(creds.deviceID == device.configuration.identity.identifier)
        #expect(creds.deviceLTPK == device.configuration.identity.publicKey)
        #expect(device.pairedControllers.map(\.identifier) == [creds.clientID])

        try await client.startSession(name: "tests")
        #expect(await client.sessionID != nil)
        let apps = try await client.appList()
        #expect(apps.map(\.bundleID) == VirtualCompanion.defaultApps.map(\.bundleID))
        #expect(apps.map(\.name) == VirtualCompanion.defaultApps.map(\.name))
        try await client.launchApp("com.apple.TVMusic")
        try await client.launchApp("https://example.com/watch")
        await #expect(throws: ATVError.self) { try await client.launchApp("com.example.missing") }
        #expect(device.report.launched == ["com.apple.TVMusic", "https://example.com/watch"])

        #expect(try await client.accounts().map(\.name) == ["Alice", "Bob"])
        try await client.switchAccount("D4E5F6")
        #expect(device.report.account == "D4E5F6")

        #expect(try await client.systemStatus() == .awake)
        var events = client.events.makeAsyncIterator()
        // startSession subscribed to _iMC: the device announced its controls at once.
        let first = await events.next()
        #expect(first?.identifier == "_iMC" && first?.content["_mcF"]?.intValue == VirtualCompanion.mediaControlFlags)
        try await client.setPower(on: false)
        let event = await events.next()
        #expect(event?.identifier == "SystemStatus" && event?.content["state"]?.intValue == 1)
        #expect(await events.next()?.identifier == "TVSystemStatus")
        #expect(try await client.systemStatus() == .asleep)
        #expect(device.power == .asleep)

        _ = try await client.mediaControl(.setVolume, [("_vol", .double(0.25))])
        // A volume change is announced with _iMC.
        let change = await events.next()
        #expect(change?.identifier == "_iMC" && change?.content["_mcF"]?.intValue == VirtualCompanion.mediaControlFlags)
        #expect(try await client.mediaControl(.getVolume)["_vol"]?.doubleValue == 0.25)
        await #expect(throws: ATVError.self) { try await client.request("NoSuchThing") }
        #expect(device.report.clientNames == ["tests"])
        await client.close()
    }

    @Test func textInputGetSetAppendClear() async throws {
        let device = try await VirtualCompanion.start(.init(initialText: "abc"))
        defer { Task { await device.stop() } }
        let (client, _) = try await pairedClient(device)
        #expect(try await client.textGet() == "abc")
        #expect(try await client.textSet("hello") == "hello")
        #expect(try await client.textAppend(" world") == "hello world")
        #expect(try await client.textGet() == "hello world")
        #expect(device.text == "hello world")
        #expect(try await client.textClear() == "")
        #expect(try await client.textGet() == "")  // a round trip: the clear event was handled
        #expect(device.text == "")
        #expect(device.report.textOperations == ["assert:", "insert:hello", "insert: world", "assert:"])
        await client.stopSession()
        await client.close()

        let unfocused = try await VirtualCompanion.start(.init(keyboardFocused: false))
        defer { Task { await unfocused.stop() } }
        let (c2, _) = try await pairedClient(unfocused)
        #expect(try await c2.textGet() == nil)
        #expect(try await c2.textSet("x") == nil)
        #expect(unfocused.text == "")
        await c2.close()
    }

    @Test func verifyWithUnknownCredentialsFails() async throws {
        let device = try await VirtualCompanion.start()
        defer { Task { await device.stop() } }
        let other = HAPIdentity(identifier: "not-paired")
        let bogus = HAPCredentials(deviceLTPK: device.configuration.identity.publicKey, clientLTSK: other.seed,
                                   deviceID: device.configuration.identity.identifier, clientID: other.identifier)
        let c = try await CompanionClient.connect(host: "127.0.0.1", port: device.port)
        await #expect(throws: ATVError.self) { try await c.verify(bogus) }
        await #expect(throws: ATVError.self) { try await c.request("FetchLaunchableApplicationsEvent") }
        await c.close()
        #expect(device.report.verifications.isEmpty)
    }

    @Test func wrongPINIsAnAuthenticationError() async throws {
        let device = try await VirtualCompanion.start(.init(pin: "9876"))
        defer { Task { await device.stop() } }
        let c = try await CompanionClient.connect(host: "127.0.0.1", port: device.port)
        do {
            _ = try await c.pair(pin: "1111")
            Issue.record("pairing with the wrong PIN succeeded")
        } catch let e as ATVError {
            #expect("\(e)".lowercased().contains("authentication"), "\(e)")
        }
        await c.close()
        #expect(device.pairedControllers.isEmpty)
    }

    @Test func deviceClosingEndsPendingRequestsWithAnError() async throws {
        let device = try await VirtualCompanion.start()
        let (client, _) = try await pairedClient(device)
        try await client.startSession()
        await device.stop()
        // Events end, and the next call fails with a clear error instead of hanging.
        for await _ in client.events {}
        await #expect(throws: ATVError.self) { try await client.appList() }
    }

    @Test func garbageFromAClientDoesNotHurtTheDevice() async throws {
        let device = try await VirtualCompanion.start()
        defer { Task { await device.stop() } }
        let ch = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: device.port).get()
        var r = SplitMix64(seed: TestSeed.value(default: 0xC11E))
        for _ in 0 ..< 20 {
            let junk = randomBytes(64, using: &r)
            try? await ch.writeAndFlush(ch.allocator.buffer(bytes: junk)).get()
        }
        try? await ch.close()
        // A well-behaved client still pairs afterwards.
        let (client, _) = try await pairedClient(device)
        #expect(try await client.appList().count == VirtualCompanion.defaultApps.count)
        await client.close()
    }
}
