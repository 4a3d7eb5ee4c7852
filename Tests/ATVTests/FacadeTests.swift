import ATV
import ATVCore
import ATVTestSupport
import Synchronization
import Testing

/// Records which protocol served which call.
final class CallLog: Sendable {
    private let calls = Mutex<[String]>([])
    func add(_ s: String) { calls.withLock { $0.append(s) } }
    var all: [String] { calls.withLock { $0 } }
}

/// A remote control that implements only some members.
struct PartialRemote: RemoteControl {
    let proto: ATVProtocol
    let log: CallLog
    let implements: Set<String>
    private func call(_ name: String, _ feature: FeatureName) throws {
        guard implements.contains(name) else { throw ATVError.notSupported(feature) }
        log.add("\(proto.key).\(name)")
    }
    func up(_ action: InputAction) async throws { try call("up", .up) }
    func down(_ action: InputAction) async throws { try call("down", .down) }
    func play() async throws { try call("play", .play) }
    func pause() async throws { try call("pause", .pause) }
    func stop() async throws { try call("stop", .stop) }
}

struct TestPower: Power {
    let proto: ATVProtocol
    let log: CallLog
    func turnOn(awaitNewState: Bool) async throws { log.add("\(proto.key).turnOn") }
    func powerState() async throws -> PowerState { log.add("\(proto.key).powerState"); return .on }
}

final class TestAudio: Audio {
    let proto: ATVProtocol
    let log: CallLog
    let level: Mutex<Double>
    init(proto: ATVProtocol, log: CallLog, level: Double) {
        self.proto = proto
        self.log = log
        self.level = Mutex(level)
    }
    func volume() async throws -> Double { level.withLock { $0 } }
    func setVolume(_ v: Double, outputDevice: String?) async throws {
        log.add("\(proto.key).setVolume(\(v))")
        level.withLock { $0 = v }
    }
}

final class TestPush: PushUpdater {
    let broadcaster = Broadcaster<DeviceUpdate>()
    func updates() -> AsyncStream<DeviceUpdate> { broadcaster.subscribe() }
}

func makeDevice() -> AppleTV {
    AppleTV(config: DeviceConfig(name: "Test", address: "127.0.0.1", services: [
        ServiceConfig(protocol: .mrp, identifier: "mrp-id", port: 1),
        ServiceConfig(protocol: .companion, identifier: "comp-id", port: 2),
        ServiceConfig(protocol: .raop, identifier: "raop-id", port: 3),
    ]))
}

@Suite struct RelayerTests {
    @Test func defaultPriorityPicksMRPOverCompanionAndRAOP() async throws {
        let log = CallLog()
        let r = Relayer<any RemoteControl>()
        r.register(PartialRemote(proto: .raop, log: log, implements: ["up", "play"]), for: .raop)
        r.register(PartialRemote(proto: .companion, log: log, implements: ["up", "play"]), for: .companion)
        r.register(PartialRemote(proto: .mrp, log: log, implements: ["up", "play"]), for: .mrp)
        try await r.relay(.up) { try await $0.up(.singleTap) }
        #expect(log.all == ["mrp.up"])
        #expect(r.ordered().map(\.0) == [.mrp, .companion, .raop])
    }

    @Test func missingMemberFallsThroughToNextProtocol() async throws {
        let log = CallLog()
        let r = Relayer<any RemoteControl>()
        r.register(PartialRemote(proto: .mrp, log: log, implements: ["up"]), for: .mrp)
        r.register(PartialRemote(proto: .dmap, log: log, implements: ["pause"]), for: .dmap)
        r.register(PartialRemote(proto: .raop, log: log, implements: ["pause", "stop"]), for: .raop)
        try await r.relay(.pause) { try await $0.pause() }
        try await r.relay(.stop) { try await $0.stop() }
        try await r.relay(.up) { try await $0.up(.singleTap) }
        #expect(log.all == ["dmap.pause", "raop.stop", "mrp.up"])
    }

    @Test func noImplementerThrowsNotSupportedNamingTheFeature() async throws {
        let log = CallLog()
        let r = Relayer<any RemoteControl>()
        r.register(PartialRemote(proto: .mrp, log: log, implements: ["up"]), for: .mrp)
        await #expect(throws: ATVError.notSupported(.guide)) { try await r.relay(.guide) { try await $0.guide() } }
        #expect(ATVError.notSupported(.guide).description.hasPrefix("Guide is not supported"))
        #expect(FeatureName.playURL.description == "PlayUrl" && FeatureName.controlCenter.description == "ControlCenter")
        #expect(FeatureName.iTunesStoreIdentifier.description == "iTunesStoreIdentifier")
        #expect(log.all.isEmpty)
    }

    @Test func perCallPriorityOverride() async throws {
        let log = CallLog()
        let r = Relayer<any RemoteControl>()
        r.register(PartialRemote(proto: .mrp, log: log, implements: ["play"]), for: .mrp)
        r.register(PartialRemote(proto: .companion, log: log, implements: ["play"]), for: .companion)
        try await r.relay(.play, priority: [.companion]) { try await $0.play() }
        try await r.relay(.play) { try await $0.play() }
        #expect(log.all == ["companion.play", "mrp.play"])
    }

    @Test func takeoverComesFirstAndSecondTakeoverFails() async throws {
        let log = CallLog()
        let r = Relayer<any RemoteControl>()
        r.register(PartialRemote(proto: .mrp, log: log, implements: ["stop"]), for: .mrp)
        r.register(PartialRemote(proto: .raop, log: log, implements: ["stop"]), for: .raop)
        try r.takeover(by: .raop)
        #expect(throws: ATVError.self) { try r.takeover(by: .mrp) }
        try await r.relay(.stop) { try await $0.stop() }
        r.release(by: .raop)
        try await r.relay(.stop) { try await $0.stop() }
        #expect(log.all == ["raop.stop", "mrp.stop"])
    }
}

@Suite struct FacadeTests {
    @Test func powerPrefersCompanionThenMRP() async throws {
        let log = CallLog()
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(power: TestPower(proto: .mrp, log: log)),
                                  features: StaticFeatures(available: [.turnOn, .powerState])))
        try atv.add(ProtocolSetup(protocol: .companion, interfaces: InterfaceSet(power: TestPower(proto: .companion, log: log)),
                                  features: StaticFeatures(available: [.turnOn])))
        try await atv.connect()
        try await atv.power.turnOn()
        #expect(log.all == ["companion.turnOn"])
    }

    @Test func volumeIsGuardedBothWays() async throws {
        let log = CallLog()
        let atv = makeDevice()
        let audio = TestAudio(proto: .raop, log: log, level: 150)
        try atv.add(ProtocolSetup(protocol: .raop, interfaces: InterfaceSet(audio: audio),
                                  features: StaticFeatures(available: [.volume, .setVolume])))
        try await atv.connect()
        // Outgoing: never sent.
        await #expect(throws: ATVError.self) { try await atv.audio.setVolume(101) }
        await #expect(throws: ATVError.self) { try await atv.audio.setVolume(-0.5) }
        await #expect(throws: ATVError.self) { try await atv.audio.setVolume(.nan) }
        #expect(log.all.isEmpty)
        // Incoming: a protocol reporting 150 is an error, not a wrong number.
        await #expect(throws: ATVError.self) { _ = try await atv.audio.volume() }
        try await atv.audio.setVolume(42)
        #expect(log.all == ["raop.setVolume(42.0)"])
        #expect(try await atv.audio.volume() == 42)
    }

    @Test func featuresComeFromTheHighestPriorityClaimingProtocol() async throws {
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .raop, interfaces: InterfaceSet(pushUpdater: TestPush()),
                                  features: StaticFeatures([.title: .available, .streamFile: .available, .pause: .available])))
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(),
                                  features: StaticFeatures([.title: FeatureInfo(.unavailable), .up: .available])))
        try await atv.connect()
        let f = atv.features
        #expect(f.feature(.title).state == .unavailable)      // MRP outranks RAOP
        #expect(f.feature(.streamFile).state == .available)   // only RAOP claims it
        #expect(f.feature(.up).state == .available)
        #expect(f.feature(.appList).state == .unsupported)    // nobody claims it
        #expect(f.feature(.pushUpdates).state == .available)  // a push updater exists
        #expect(f.inState([.available], .up, .streamFile))
        #expect(!f.inState([.available], .up, .title))
        let all = f.allFeatures()
        #expect(all[.appList] == nil && all[.up] != nil)
        #expect(f.allFeatures(includeUnsupported: true).count == FeatureName.allCases.count)
    }

    @Test func pushUpdatesUnsupportedWithoutUpdaters() async throws {
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(), features: StaticFeatures([:])))
        try await atv.connect()
        #expect(atv.features.feature(.pushUpdates).state == .unsupported)
    }

    @Test func closeClosesEveryProtocolOnceAndBlocksCalls() async throws {
        let log = CallLog()
        let atv = makeDevice()
        for p in [ATVProtocol.mrp, .companion, .raop] {
            try atv.add(ProtocolSetup(protocol: p,
                                      interfaces: InterfaceSet(remoteControl: PartialRemote(proto: p, log: log, implements: ["up"])),
                                      features: StaticFeatures([:]),
                                      connect: { log.add("connect.\(p.key)") },
                                      close: { log.add("close.\(p.key)") }))
        }
        try await atv.connect()
        #expect(log.all.isEmpty)   // nothing is connected until used or set up
        try await atv.setUp()
        async let a: Void = atv.close()
        async let b: Void = atv.close()
        _ = await (a, b)
        await atv.close()
        let closes = log.all.filter { $0.hasPrefix("close.") }
        #expect(closes.sorted() == ["close.companion", "close.mrp", "close.raop"])
        #expect(log.all.prefix(3) == ["connect.mrp", "connect.companion", "connect.raop"])
        await #expect(throws: ATVError.blocked) { try await atv.remoteControl.up() }
    }

    @Test func firstSetupForAProtocolWinsAndAddingAfterConnectFails() async throws {
        let log = CallLog()
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(remoteControl: PartialRemote(proto: .mrp, log: log, implements: ["up"])),
                                  features: StaticFeatures([:]), connect: { log.add("tunnel") }))
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(), features: StaticFeatures([:]),
                                  connect: { log.add("native") }))
        try await atv.connect()
        try await atv.setUp()
        #expect(log.all == ["tunnel"])
        #expect(throws: ATVError.self) {
            try atv.add(ProtocolSetup(protocol: .raop, interfaces: InterfaceSet(), features: StaticFeatures([:])))
        }
        await #expect(throws: ATVError.self) { try await atv.connect() }
    }

    @Test func pushUpdatesAreAggregatedAndDeduplicated() async throws {
        let mrp = TestPush(), raop = TestPush()
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .mrp, interfaces: InterfaceSet(pushUpdater: mrp), features: StaticFeatures([:])))
        try atv.add(ProtocolSetup(protocol: .raop, interfaces: InterfaceSet(pushUpdater: raop), features: StaticFeatures([:])))
        let updates = atv.updates()
        try await atv.connect()
        try await atv.setUp()
        // Wait until the facade has subscribed to both updaters (a deadline; it must happen).
        #expect(await poll(timeout: .seconds(10)) {
            mrp.broadcaster.subscriberCount > 0 && raop.broadcaster.subscriberCount > 0
        })
        let song = Playing(mediaType: .music, deviceState: .playing, title: "Song")
        raop.broadcaster.yield(.playing(Playing(title: "ignored: RAOP is not the main updater")))
        mrp.broadcaster.yield(.playing(song))
        mrp.broadcaster.yield(.playing(song))           // unchanged: dropped
        mrp.broadcaster.yield(.volume(30))
        mrp.broadcaster.yield(.volume(30))              // unchanged: dropped
        var iterator = updates.makeAsyncIterator()
        var got: [DeviceUpdate] = []
        while got.count < 2, let u = await iterator.next() { got.append(u) }
        raop.broadcaster.yield(.volume(20))             // any protocol may report volume
        if let u = await iterator.next() { got.append(u) }
        mrp.broadcaster.yield(.connectionClosed)        // closes the facade
        while let u = await iterator.next() { got.append(u) }
        #expect(got == [.playing(song), .volume(30), .volume(20), .connectionClosed])
        #expect(atv.isClosed)
    }

    @Test func streamPlayURLNeedsTheFeature() async throws {
        struct URLPlayer: StreamInterface {
            func playURL(_ url: String, position: Double) async throws {}
        }
        let atv = makeDevice()
        try atv.add(ProtocolSetup(protocol: .airplay, interfaces: InterfaceSet(stream: URLPlayer()),
                                  features: StaticFeatures([.playURL: FeatureInfo(.unavailable)])))
        try await atv.connect()
        await #expect(throws: ATVError.notSupported(.playURL)) { try await atv.stream.playURL("http://x/y.mp4") }
    }
}
