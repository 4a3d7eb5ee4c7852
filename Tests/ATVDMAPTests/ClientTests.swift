import ATV
import ATVCore
import Synchronization
import Testing
@testable import ATVDMAP
@testable import ATVSimulator

let guid = "0x1234ABCDE56789FF"

/// Collects events from a stream in the background.
final class Collector<T: Sendable>: Sendable {
    final class Store: Sendable { let m = Mutex<[T]>([]) }
    let store = Store()
    var snapshot: [T] { store.m.withLock { $0 } }
    let task: Task<Void, Never>
    init(_ stream: AsyncStream<T>) {
        let store = self.store
        task = Task { for await x in stream { store.m.withLock { $0.append(x) } } }
    }
    func wait(_ what: String, timeout: Duration = .seconds(10), _ predicate: ([T]) -> Bool) async throws -> [T] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let now = snapshot
            if predicate(now) { return now }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ATVError.timeout("\(what); got \(snapshot)")
    }
}

/// Our DMAP client against the virtual Apple TV 3.
@Suite(.serialized) struct DMAPClientTests {
    func start(_ config: VirtualAppleTV3.Configuration = .init(pairingGUID: guid)) async throws -> (VirtualAppleTV3, DMAPClient) {
        let device = try await VirtualAppleTV3.start(config)
        return (device, try DMAPClient(host: "127.0.0.1", port: device.port, credentials: guid, timeout: .seconds(5)))
    }

    @Test func loginAndPlaying() async throws {
        let (device, client) = try await start()
        defer { Task { await device.stop() } }
        let info = try await client.serverInfo()
        #expect(info.first("msrv", "minm")?.string == "swift-atv Apple TV 3")
        let p = try await client.playing()
        let item = VirtualAppleTV3.defaultItems[0]
        #expect(p.title == item.title && p.artist == item.artist && p.album == item.album && p.genre == item.genre)
        #expect(p.deviceState == .playing && p.mediaType == .music && p.totalTime == 215)
        #expect(p.shuffle == .off && p.repeat == .off)
        let r = device.report()
        #expect(r.logins == [guid])
        #expect(r.requestsWithoutRemoteHeaders.isEmpty)
        #expect(r.requests.contains { $0.hasPrefix("GET /login?pairing-guid=\(guid)&hasFP=1") })
        await client.close()
    }

    @Test func commandsChangeTheDevice() async throws {
        let (device, client) = try await start()
        defer { Task { await device.stop() } }
        try await client.command(.pause)
        #expect(device.nowPlaying().playState == 3)
        #expect(try await client.playing().deviceState == .paused)
        try await client.command(.playPause)
        #expect(device.nowPlaying().playState == 4)
        try await client.command(.next)
        #expect(device.nowPlaying().index == 1)
        #expect(try await client.playing().title == VirtualAppleTV3.defaultItems[1].title)
        try await client.command(.previous)
        #expect(device.nowPlaying().index == 0)
        try await client.command(.pause)
        try await client.setPosition(42)
        #expect(device.nowPlaying().positionMs == 42_000)
        #expect(try await client.playing().position == 42)
        try await client.skip(by: 0, forward: true)  // pyatv's 10 s default
        #expect(device.nowPlaying().positionMs == 52_000)
        try await client.skip(by: 30, forward: false)
        #expect(device.nowPlaying().positionMs == 22_000)
        try await client.setShuffle(.songs)
        try await client.setRepeat(.track)
        let p = try await client.playing()
        #expect(p.shuffle == .songs && p.repeat == .track)
        try await client.command(.volumeUp)
        #expect(device.nowPlaying().volume == 55)
        try await client.command(.volumeDown)
        try await client.command(.volumeDown)
        #expect(device.nowPlaying().volume == 45)
        try await client.command(.stop)
        #expect(try await client.playing().deviceState == .stopped)
        try await client.controlPrompt("select")
        try await client.controlPrompt("menu")
        try await client.controlPrompt("topmenu")
        try await client.arrow(.up)
        try await client.arrow(.right)
        let r = device.report()
        #expect(r.commands == ["pause", "playpause", "nextitem", "previtem", "pause", "volumeup", "volumedown", "volumedown", "stop"])
        #expect(r.properties == ["dacp.playingtime=42000", "dacp.playingtime=52000", "dacp.playingtime=22000",
                                 "dacp.shufflestate=1", "dacp.repeatstate=1"])
        #expect(Array(r.prompts.prefix(3)) == ["select", "menu", "topmenu"])
        #expect(r.prompts.count == 3 + 14)
        #expect(r.prompts[3] == "touchDown&time=0&point=20,275" && r.prompts[9] == "touchUp&time=6&point=20,250")
        #expect(r.prompts.last == "touchUp&time=7&point=75,100")
        #expect(r.logins.count == 1)  // one session for everything
        await client.close()
    }

    @Test func artwork() async throws {
        let (device, client) = try await start()
        defer { Task { await device.stop() } }
        #expect(try await client.artwork(width: 512, height: nil) == VirtualAppleTV3.samplePNG)
        #expect(device.report().requests.contains { $0.hasPrefix("GET /ctrl-int/1/nowplayingartwork?mw=512&mh=0&session-id=") })
        await client.close()
        let (idle, idleClient) = try await start(.init(pairingGUID: guid, startPlaying: false))
        defer { Task { await idle.stop() } }
        #expect(try await idleClient.artwork(width: nil, height: nil) == nil)
        #expect(try await idleClient.playing().deviceState == .idle)
        await idleClient.close()
    }

    @Test func wrongCredentialsAreRefusedAfterOneRetry() async throws {
        let device = try await VirtualAppleTV3.start(.init(pairingGUID: guid))
        defer { Task { await device.stop() } }
        let client = try DMAPClient(host: "127.0.0.1", port: device.port, credentials: "0x0000000000000BAD")
        await #expect {
            try await client.playing()
        } throws: { e in
            guard case ATVError.authenticationFailed(let m) = e else { return false }
            return m.contains("503")
        }
        #expect(device.report().refusedLogins == ["0x0000000000000BAD", "0x0000000000000BAD"])
        #expect(throws: ATVError.self) { try DMAPClient(host: "127.0.0.1", port: 1, credentials: "nonsense") }
    }

    @Test func homeSharingLogin() async throws {
        let hs = "12345678-6789-1111-2222-012345678911"
        let device = try await VirtualAppleTV3.start(.init(pairingGUID: guid, homeSharingID: hs))
        defer { Task { await device.stop() } }
        let client = try DMAPClient(host: "127.0.0.1", port: device.port, credentials: hs)
        #expect(try await client.playing().deviceState == .playing)
        #expect(device.report().requests.first { $0.contains("/login") }?.contains("hsgid=\(hs)&hasFP=1") == true)
        #expect(device.report().logins == [hs])
        await client.close()
        await #expect(throws: ATVError.self) { try await client.playing() }
    }

    @Test func anExpiredSessionLogsInAgain() async throws {
        let (device, client) = try await start()
        defer { Task { await device.stop() } }
        _ = try await client.playing()
        let first = await client.sessionID
        device.expireSessions()
        try await client.command(.pause)
        #expect(device.report().logins.count == 2)
        #expect(await client.sessionID != first)
        #expect(device.nowPlaying().playState == 3)
        await client.close()
    }

    @Test func pushUpdatesFollowTheScriptAndCommands() async throws {
        let (device, client) = try await start(.init(pairingGUID: guid, advanceEvery: .milliseconds(700)))
        defer { Task { await device.stop() } }
        let events = Collector(client.pushUpdates())
        let titles = { (e: [DMAPPushEvent]) -> [String] in
            e.compactMap { if case .update(let s) = $0 { s.title } else { nil } }
        }
        let seen = try await events.wait("three scripted items") { Set(titles($0)).count >= 3 }
        let items = VirtualAppleTV3.defaultItems.map(\.title)
        #expect(Array(titles(seen).prefix(3)) == Array(items.prefix(3)))
        // Revisions go up one change at a time: the poll waited for each.
        let revisions = seen.compactMap { if case .update(let s) = $0 { s.revision } else { nil } }
        #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count)
        #expect(device.report().longPolls >= 2)
        events.task.cancel()
        await client.close()
    }

    @Test func aCommandWakesTheLongPoll() async throws {
        let (device, client) = try await start()
        defer { Task { await device.stop() } }
        let events = Collector(client.pushUpdates())
        _ = try await events.wait("the first status") { $0.count == 1 }
        _ = try await device.waitForReport("a waiting long poll") { $0.longPolls == 1 }
        try await client.command(.pause)
        let e = try await events.wait("the paused status") { $0.count == 2 }
        guard case .update(let s) = e[1] else { Issue.record("not an update: \(e)"); return }
        #expect(s.playing.deviceState == .paused)
        events.task.cancel()
        await client.close()
    }

    @Test func theDeviceClosingMidPollEndsTheStreamWithAnError() async throws {
        let (device, client) = try await start()
        let events = Collector(client.pushUpdates())
        _ = try await events.wait("the first status") { $0.count == 1 }
        _ = try await device.waitForReport("a waiting long poll") { $0.longPolls == 1 }
        await device.stop()
        let e = try await events.wait("connection lost") { $0.count == 2 }
        guard case .connectionLost(let error) = e[1] else { Issue.record("not connectionLost: \(e)"); return }
        #expect("\(error)".contains("closed the connection"))
        await events.task.value  // the stream ended
        await #expect {
            try await client.playing()
        } throws: { e in
            guard case ATVError.connectionLost(let m) = e else { return false }
            return m.contains("127.0.0.1:\(device.port)")
        }
    }
}

/// DMAP through the facade (`connect` with a DMAP service that has credentials).
@Suite(.serialized) struct DMAPFacadeTests {
    func config(port: Int, credentials: String? = guid) -> DeviceConfig {
        DeviceConfig(name: "ATV3", address: "127.0.0.1",
                     services: [ServiceConfig(protocol: .dmap, identifier: "DMAPID", port: port, credentials: credentials)])
    }

    @Test func playingCommandsArtworkFeaturesAndUpdates() async throws {
        let device = try await VirtualAppleTV3.start(.init(pairingGUID: guid))
        defer { Task { await device.stop() } }
        let atv = try await connect(config(port: device.port))
        #expect(atv.protocols == [.dmap])
        let updates = Collector(atv.updates())
        let p = try await atv.metadata.playing()
        #expect(p.title == VirtualAppleTV3.defaultItems[0].title && p.deviceState == .playing)
        #expect(atv.deviceInfo.operatingSystem == .legacy)
        let f = atv.features
        #expect(f.feature(.up).state == .available && f.feature(.select).state == .available)
        #expect(f.feature(.title).state == .available && f.feature(.artist).state == .available)
        #expect(f.feature(.play).state == .unknown && f.feature(.setPosition).state == .unknown)
        #expect(f.feature(.volumeUp).state == .available && f.feature(.pushUpdates).state == .available)
        #expect(f.feature(.playURL).state == .unsupported && f.feature(.volume).state == .unsupported)

        _ = try await device.waitForReport("a waiting long poll") { $0.longPolls >= 1 }
        try await atv.remoteControl.pause()
        try await atv.remoteControl.next()
        try await atv.remoteControl.setPosition(30)
        try await atv.remoteControl.setShuffle(.songs)
        try await atv.remoteControl.setRepeat(.all)
        try await atv.remoteControl.select()
        try await atv.remoteControl.left()
        try await atv.audio.volumeUp()
        await #expect(throws: ATVError.notSupported(.volume)) { try await atv.audio.volume() }
        let n = device.nowPlaying()
        #expect(n.playState == 3 && n.index == 1 && n.positionMs == 30_000 && n.shuffle == 1 && n.repeatMode == 2 && n.volume == 55)
        let now = try await atv.metadata.playing()
        #expect(now.title == VirtualAppleTV3.defaultItems[1].title && now.position == 30 && now.shuffle == .songs && now.repeat == .all)

        let art = try #require(try await atv.metadata.artwork(width: 512, height: nil))
        #expect(art.bytes == VirtualAppleTV3.samplePNG && art.mimeType == "image/png")
        _ = try await atv.metadata.artwork(width: 512, height: nil)
        #expect(device.report().artworkRequests == 1)  // cached by the playing hash
        #expect(try await atv.metadata.artworkID() == now.hash)

        // Push updates: the paused state and the next item reached the facade.
        let seen = try await updates.wait("the paused next item") { list in
            list.contains { if case .playing(let p) = $0 { p.title == VirtualAppleTV3.defaultItems[1].title && p.position == 30 } else { false } }
        }
        let states = seen.compactMap { if case .playing(let p) = $0 { p.deviceState } else { nil } }
        #expect(states.contains(.paused))
        await atv.close()
        #expect(device.report().logins.count == 1)
    }

    @Test func theDeviceGoingAwayReachesTheFacade() async throws {
        let device = try await VirtualAppleTV3.start(.init(pairingGUID: guid))
        let atv = try await connect(config(port: device.port))
        let updates = Collector(atv.updates())
        _ = try await device.waitForReport("a waiting long poll") { $0.longPolls >= 1 }
        await device.stop()
        _ = try await updates.wait("connection lost") { $0.contains { if case .connectionLost = $0 { true } else { false } } }
        // The facade closes itself on a lost connection.
        let deadline = ContinuousClock.now + .seconds(10)
        while !atv.isClosed && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await #expect(throws: ATVError.blocked) { try await atv.metadata.playing() }
    }

    @Test func withoutCredentialsDMAPIsSkippedAndWrongOnesFailConnect() async throws {
        let device = try await VirtualAppleTV3.start(.init(pairingGUID: guid))
        defer { Task { await device.stop() } }
        await #expect(throws: ATVError.self) { try await connect(config(port: device.port, credentials: nil)) }
        // DMAP logs in when first used (here: set up explicitly), not in `connect`.
        await #expect {
            let atv = try await connect(config(port: device.port, credentials: "0x00000000000000AA"))
            defer { Task { await atv.close() } }
            try await atv.setUp()
        } throws: { e in
            if case ATVError.authenticationFailed = e { true } else { false }
        }
    }
}
