import ATVTestSupport
import ATV
import ATVAuth
import ATVCompanion
import ATVCore
import ATVSimulator
import Foundation
import Testing

/// Companion through `connect()` and the facade, against an in-process virtual Companion device.
@Suite(.serialized) struct CompanionFacadeTests {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// A virtual device and credentials paired with it.
    static func pairedDevice(_ config: VirtualCompanion.Configuration = .init()) async throws -> (VirtualCompanion, String) {
        let device = try await VirtualCompanion.start(config)
        let client = try await CompanionClient.connect(host: "127.0.0.1", port: device.port)
        let creds = try await client.pair(pin: config.pin)
        await client.close()
        return (device, creds.stringValue)
    }

    static func config(port: Int, credentials: String?, extra: [ServiceConfig] = []) -> DeviceConfig {
        DeviceConfig(name: "Virtual", address: "127.0.0.1",
                     services: [ServiceConfig(protocol: .companion, identifier: "AA:BB:CC:DD:EE:01", port: port, credentials: credentials,
                                              properties: ["rpMd": "AppleTV6,2", "rpBA": "AA:BB:CC:DD:EE:01"])] + extra)
    }

    @Test func appsPowerKeyboardAccountsAndFeatures() async throws {
        let (device, creds) = try await Self.pairedDevice()
        defer { Task { await device.stop() } }
        let atv = try await connect(Self.config(port: device.port, credentials: creds))
        #expect(atv.protocols == [.companion])
        #expect(atv.deviceInfo.model == .gen4K)

        #expect(try await atv.apps.appList().map(\.identifier) == ["com.apple.TVMusic", "com.netflix.Netflix", "com.apple.TVSettings", "com.google.ios.youtube"])
        try await atv.apps.launchApp("com.netflix.Netflix")
        #expect(device.report.launched == ["com.netflix.Netflix"])

        let updates = atv.updates()
        #expect(try await atv.power.powerState() == .on)
        try await atv.power.turnOff(awaitNewState: true)
        #expect(device.power == .asleep)
        #expect(try await atv.power.powerState() == .off)
        // The change arrived as a push update too.
        var sawOff = false
        for await u in updates where u == .powerState(.off) { sawOff = true; break }
        #expect(sawOff)
        try await atv.power.turnOn(awaitNewState: true)
        #expect(device.power == .awake)

        try await atv.keyboard.textSet("abc")
        try await atv.keyboard.textAppend("def")
        #expect(try await atv.keyboard.textGet() == "abcdef")
        #expect(device.text == "abcdef")
        #expect(try await atv.keyboard.textFocusState() == .focused)
        try await atv.keyboard.textClear()
        // _tiC is an event (no reply): the device applies it a moment later.
        try await eventually("text cleared") { device.text == "" }

        #expect(try await atv.userAccounts.accountList() == [UserAccount(name: "Alice", identifier: "A1B2C3"), UserAccount(name: "Bob", identifier: "D4E5F6")])
        try await atv.userAccounts.switchAccount("A1B2C3")
        #expect(device.report.account == "A1B2C3")

        // Features: what Companion claims, by its state rules.
        let f = atv.features
        for name in [FeatureName.appList, .launchApp, .turnOn, .turnOff, .powerState, .textSet, .accountList, .up, .select, .home,
                     .playPause, .volumeUp, .channelUp, .swipe] {
            #expect(f.feature(name).state == .available, "\(name)")
        }
        try await eventually("media-control flags") { f.feature(.play).state == .available }
        for name in [FeatureName.title, .artwork, .stop, .topMenu, .playURL, .streamFile, .homeHold] {
            #expect(f.feature(name).state == .unsupported, "\(name)")
        }
        // What Companion lacks falls through to nobody: the error names the feature.
        await #expect(throws: ATVError.notSupported(.title)) { try await atv.metadata.playing() }
        await #expect(throws: ATVError.notSupported(.stop)) { try await atv.remoteControl.stop() }
        await atv.close()
        await #expect(throws: ATVError.blocked) { try await atv.apps.appList() }
    }

    @Test func buttonsMediaControlAndVolume() async throws {
        let (device, creds) = try await Self.pairedDevice()
        defer { Task { await device.stop() } }
        let atv = try await connect(Self.config(port: device.port, credentials: creds))
        defer { Task { await atv.close() } }
        let r = atv.remoteControl
        try await r.select(.singleTap)
        try await r.up(.doubleTap)
        try await r.playPause()
        try await r.play()
        try await r.skipBackward(0)
        try await r.controlCenter()
        let b: (CompanionHIDButton) -> [[Int64]] = { [[1, $0.rawValue], [2, $0.rawValue]] }
        #expect(device.report.buttons == b(.select) + b(.up) + b(.up) + b(.playPause) + b(.pageDown))
        #expect(device.report.mediaCommands == ["play", "skipBy:-10"])

        #expect(try await atv.audio.volume() == 50)
        try await atv.audio.setVolume(20)
        #expect(device.volume == 0.2)
        #expect(try await atv.audio.volume() == 20)
        try await atv.audio.volumeUp()
        #expect(try await atv.audio.volume() == 25)
        try await atv.audio.volumeDown()
        try await atv.audio.volumeDown()
        #expect(try await atv.audio.volume() == 15)
        await #expect(throws: ATVError.invalidValue("volume 101.0 is outside 0...100")) { try await atv.audio.setVolume(101) }
    }

    /// Power prefers Companion over MRP; other calls prefer MRP (pyatv's facade priority lists).
    @Test func powerRelayerPrefersCompanion() {
        #expect(ATVProtocol.powerPriority.first == .companion)
        #expect(ATVProtocol.defaultPriority.firstIndex(of: .mrp)! < ATVProtocol.defaultPriority.firstIndex(of: .companion)!)
    }

    @Test func noCredentialsBadCredentialsAndForeignCredentials() async throws {
        let (device, _) = try await Self.pairedDevice()
        defer { Task { await device.stop() } }
        await #expect(throws: ATVError.noCredentials(.companion)) { try await connect(Self.config(port: device.port, credentials: nil)) }
        await #expect(throws: ATVError.self) { try await connect(Self.config(port: device.port, credentials: "zz:zz")) }
        // With another protocol next to it, Companion is left out and its calls are unsupported.
        let withAirPlay = try await connect(Self.config(port: device.port, credentials: nil,
                                                        extra: [ServiceConfig(protocol: .airplay, identifier: "x", port: 1)]))
        #expect(withAirPlay.protocols == [.airplay])
        await #expect(throws: ATVError.notSupported(.appList)) { try await withAirPlay.apps.appList() }
        await withAirPlay.close()

        let (other, foreign) = try await Self.pairedDevice()
        defer { Task { await other.stop() } }
        // Companion is verified when first used (here: set up explicitly), not by `connect`.
        let atv = try await connect(Self.config(port: device.port, credentials: foreign))
        defer { Task { await atv.close() } }
        do {
            try await atv.setUp()
            Issue.record("connected with another device's credentials")
        } catch let e as ATVError {
            guard case .authenticationFailed(let why) = e else { Issue.record("unexpected \(e)"); return }
            #expect(why.contains("pair again"))
        }
    }

    @Test func deviceGoingAwayClosesTheFacadeWithConnectionLost() async throws {
        let (device, creds) = try await Self.pairedDevice()
        let atv = try await connect(Self.config(port: device.port, credentials: creds))
        let updates = atv.updates()
        try await atv.setUp()
        await device.stop()
        var lost = false
        for await u in updates { if case .connectionLost = u { lost = true } }
        #expect(lost)
        try await eventually("facade closed") { atv.isClosed }
        await #expect(throws: ATVError.blocked) { try await atv.power.powerState() }
    }
}
