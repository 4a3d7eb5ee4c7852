import ATVTestSupport
import ATV
import ATVAuth
import ATVCore
import ATVMRP
import ATVSimulator
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Our MRP client (connection, pairing, MRPService, the facade) against our virtual MRP device,
/// whose behaviour pyatv proves in CLITests/MRPCLITests.
@Suite(.serialized) struct MRPClientTests {
    func pair(_ device: VirtualMRP, pin: String = "1111") async throws -> HAPCredentials {
        let conn = try await MRPConnection.connect(host: "127.0.0.1", port: device.port)
        defer { Task { await conn.close() } }
        return try await conn.pairSetup(pin: pin)
    }

    func config(_ device: VirtualMRP, _ creds: HAPCredentials?) -> DeviceConfig {
        DeviceConfig(name: "virtual", address: "127.0.0.1",
                     services: [ServiceConfig(protocol: .mrp, identifier: device.configuration.deviceID, port: device.port,
                                              credentials: creds.map { ATVCredentials.hap($0).stringValue },
                                              properties: device.mdnsServices().first?.txt ?? [:])])
    }


    @Test func pairSetupReturnsCredentialsTheDeviceKnows() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        #expect(creds.deviceID == device.configuration.identity.identifier)
        #expect(creds.deviceLTPK == device.configuration.identity.publicKey)
        #expect(device.pairedControllers.map(\.identifier) == [creds.clientID])
        // pyatv's string form round-trips.
        #expect(try HAPCredentials(parsing: creds.stringValue) == creds)
    }

    @Test func wrongPINFailsAndTheDeviceStoresNothing() async throws {
        let device = try await VirtualMRP.start(.init(pin: "4321", advanceInterval: nil))
        defer { Task { await device.stop() } }
        await #expect(throws: ATVError.self) { _ = try await pair(device, pin: "1111") }
        do { _ = try await pair(device, pin: "1111") } catch let e as ATVError {
            guard case .authenticationFailed = e else { Issue.record("expected authenticationFailed, got \(e)"); return }
        }
        #expect(device.pairedControllers.isEmpty)
        #expect(!device.report.authFailures.isEmpty)
    }

    @Test func unknownCredentialsFailPairVerify() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        // Credentials for this device's identity, but a controller it never paired with.
        let stranger = HAPCredentials(deviceLTPK: device.configuration.identity.publicKey, clientLTSK: HAPIdentity(identifier: "x").seed,
                                      deviceID: device.configuration.identity.identifier, clientID: Array("stranger".utf8))
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: stranger)
        await #expect(throws: ATVError.self) { try await service.connect() }
        #expect(device.report.verifications.isEmpty)
    }

    @Test func facadePlayingCommandsButtonsVolumeArtwork() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let atv = try await connect(config(device, creds))
        defer { Task { await atv.close() } }
        #expect(atv.protocols == [.mrp])
        #expect(device.report.verifications.isEmpty)   // set up on first use, not by connect
        try await atv.setUp()
        // From the TXT record the device advertises.
        #expect(atv.deviceInfo.version == "14.7" && atv.deviceInfo.buildNumber == VirtualMRP.systemBuild)
        #expect(atv.deviceInfo.operatingSystem == .tvOS)
        #expect(device.report.verifications == [String(decoding: creds.clientID, as: UTF8.self)])

        let p = try await atv.metadata.playing()
        #expect(p.title == "First Light" && p.artist == "The Virtuals" && p.album == "Loopback Sessions")
        #expect(p.genre == "Ambient" && p.totalTime == 201 && p.mediaType == .music && p.deviceState == .playing)
        #expect(p.contentIdentifier == "swift-atv-content-0")
        #expect(try await atv.metadata.app() == App(name: "Music", identifier: "com.apple.TVMusic"))
        #expect(atv.features.feature(.pause).state == .available)
        #expect(atv.features.feature(.title).state == .available)

        try await atv.remoteControl.pause()
        #expect(device.nowPlaying.playing == false)
        #expect(try await atv.metadata.playing().deviceState == .paused)
        try await atv.remoteControl.playPause()  // TogglePlayPause is enabled
        #expect(device.nowPlaying.playing == true)
        try await atv.remoteControl.next()
        #expect(try await atv.metadata.playing().title == "Second Wind")
        try await atv.remoteControl.previous()
        try await atv.remoteControl.setPosition(42)
        #expect(abs(device.nowPlaying.positionNow() - 42) < 5)
        try await atv.remoteControl.setRepeat(.all)
        #expect(try await atv.metadata.playing().repeat == .all)
        #expect(device.report.commands == ["pause", "togglePlayPause", "nextTrack", "previousTrack", "seekToPlaybackPosition", "changeRepeatMode"])

        try await atv.remoteControl.select(.singleTap)
        try await atv.remoteControl.menu(.doubleTap)
        #expect(device.report.buttons == ["select down", "select up", "menu down", "menu up", "menu down", "menu up"])

        #expect(try await atv.audio.volume() == 50)
        try await atv.audio.setVolume(30, outputDevice: nil)
        #expect(device.volume == 30)
        #expect(try await atv.audio.volume() == 30)
        try await atv.audio.volumeUp()  // relative + absolute: HID key, then waits for VOLUME_DID_CHANGE
        #expect(try await atv.audio.volume() == 35)

        // Output devices: this device leads its group; others join and leave it.
        #expect(try await atv.audio.outputDevices().map(\.identifier) == [device.configuration.deviceID])
        try await atv.audio.addOutputDevices(["SPK-1", "SPK-2"])
        #expect(device.groupedDevices == ["SPK-1", "SPK-2"])
        #expect(try await atv.audio.outputDevices().map(\.identifier) == [device.configuration.deviceID, "SPK-1", "SPK-2"])
        try await atv.audio.removeOutputDevices(["SPK-1"])
        try await atv.audio.setOutputDevices(["SPK-3"])
        #expect(try await atv.audio.outputDevices().map(\.name) == ["swift-atv Apple TV", "Speaker SPK-3"])
        #expect(device.report.outputGroups == [["SPK-1", "SPK-2"], ["SPK-2"], ["SPK-3"]])

        let art = try #require(try await atv.metadata.artwork(width: 512, height: nil))
        #expect(art.bytes == VirtualMRP.samplePNG && art.mimeType == "image/png")
        #expect(try await atv.metadata.artworkID() == "swift-atv-artwork-0")
    }

    @Test func artworkOverHTTPIsTriedFirst() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil, artworkOverHTTP: true))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: creds)
        try await service.connect()
        defer { Task { await service.close() } }
        let art = try #require(try await service.artwork(width: 300, height: 300))
        #expect(art.bytes == VirtualMRP.samplePNG && art.mimeType == "image/png")
        #expect(device.httpArtworkRequests == ["/artwork/0.png"])
        #expect(!device.report.messages.contains("playbackQueueRequest"))
        try await service.next()
        _ = try await service.artwork(width: nil, height: nil)
        #expect(device.httpArtworkRequests == ["/artwork/0.png", "/artwork/1.png"])
    }

    @Test func powerThroughTheFacade() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let atv = try await connect(config(device, creds))
        defer { Task { await atv.close() } }
        try await atv.setUp()   // connected first: the initial power state is not an update
        let updates = atv.updates()
        #expect(try await atv.power.powerState() == .on)
        try await atv.power.turnOff(awaitNewState: true)  // Home hold (1 s), Select
        #expect(device.isOn == false)
        #expect(try await atv.power.powerState() == .off)
        try await atv.power.turnOn(awaitNewState: true)
        #expect(device.isOn && device.report.power == ["off", "on"])
        var powers: [PowerState] = []
        for await u in updates { if case .powerState(let p) = u { powers.append(p); if powers.count == 2 { break } } }
        #expect(powers == [.off, .on])
        try await atv.remoteControl.stop()
        #expect(try await atv.metadata.playing().deviceState == .stopped)
    }

    @Test func pushUpdatesFollowTheScript() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: 0.3))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: creds)
        try await service.connect()
        defer { Task { await service.close() } }
        var titles: [String] = []
        for await u in service.updates() {
            if case .playing(let p) = u, let t = p.title, titles.last != t { titles.append(t) }
            if titles.count >= 3 { break }
        }
        #expect(titles.count == 3)
        let all = VirtualMRP.defaultTracks.map(\.title)
        #expect(titles.allSatisfy(all.contains))
        #expect(Set(titles).count >= 2)
    }

    @Test func deviceClosingMidSessionEndsUpdatesWithAnErrorAndCallsFail() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: creds)
        try await service.connect()
        let updates = service.updates()
        try await service.pause()
        device.dropConnections()
        var last: DeviceUpdate?
        for await u in updates { last = u }  // ends
        guard case .connectionLost(let why)? = last else { Issue.record("last update was \(String(describing: last))"); return }
        #expect(why.contains("closed"))
        do {
            try await service.play()
            Issue.record("play after the device closed succeeded")
        } catch let e as ATVError {
            guard case .connectionLost = e else { Issue.record("expected connectionLost, got \(e)"); return }
        }
        await #expect(throws: ATVError.self) { _ = try await service.playing() }
        await service.close()

        // Through the facade: the update stream reports the loss and ends; later calls are blocked.
        let atv = try await connect(config(device, creds))
        let facadeUpdates = atv.updates()
        try await atv.remoteControl.play()
        device.dropConnections()
        var sawLost = false
        for await u in facadeUpdates { if case .connectionLost = u { sawLost = true } }
        #expect(sawLost)
        await #expect(throws: ATVError.self) { try await atv.remoteControl.pause() }
    }

    /// The bare connection: handshake with credentials (encrypted), a command and its reply by
    /// identifier, and the pushed SET_STATE on the message stream, which ends on close.
    @Test func connectionHandshakeCorrelationAndMessageStream() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let conn = try await MRPConnection.connect(host: "127.0.0.1", port: device.port)
        let messages = conn.messages()
        let info = try await conn.start(client: .init(pairingID: "ignored", name: "tester", osBuild: "18M60"), credentials: creds)
        #expect(info.name == device.configuration.name && info.deviceUid == device.configuration.deviceID)
        #expect(await conn.isEncrypted)
        // DEVICE_INFO carried our stored client id, not the one passed in.
        #expect(device.report.clientNames == ["swift-atv", "tester"])
        // Pair-setup (M1, M3, M5), then the handshake: DEVICE_INFO, pair-verify (M1, M3), the rest encrypted.
        #expect(device.report.messages.prefix(10) == ["deviceInfo", "cryptoPairing", "cryptoPairing", "cryptoPairing",
                                                       "deviceInfo", "cryptoPairing", "cryptoPairing", "setConnectionState",
                                                       "clientUpdatesConfig", "getKeyboardSession"])
        let reply = try await conn.sendAndReceive(MRPMessages.sendCommand(.pause))
        #expect(reply.type == .sendCommandResult && reply.MRPsendCommandResultMessage.sendError == 0)
        await conn.close()
        var types: [MRPMessageType] = []
        for await m in messages { types.append(m.type) }
        // Before the CLIENT_UPDATES_CONFIG reply: volume, client, state; then the pause's new state.
        #expect(types == [.volumeControlAvailability, .volumeDidChange, .setNowPlayingClient, .setState, .setState])
        await #expect(throws: ATVError.self) { try await conn.send(MRPMessages.generic()) }
    }

    @Test func heartbeatIsAnswered() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: creds,
                                 options: .init(heartbeat: .milliseconds(100)))
        try await service.connect()
        defer { Task { await service.close() } }
        try await eventually("three heartbeats") { device.report.messages.filter { $0 == "generic" }.count >= 3 }
        #expect(try await service.playing().title == "First Light")
    }

    @Test func aDeviceThatStopsAnsweringHeartbeatsIsDisconnected() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        let creds = try await pair(device)
        let service = MRPService(host: "127.0.0.1", port: device.port, credentials: creds,
                                 options: .init(replyTimeout: .milliseconds(300), heartbeat: .milliseconds(100)))
        try await service.connect()
        defer { Task { await service.close() } }
        await #expect(throws: ATVError.self) { try await service.connect() }  // once only
        let updates = service.updates()
        device.setMuted(true)
        var last: DeviceUpdate?
        for await u in updates { last = u }
        guard case .connectionLost(let why)? = last else { Issue.record("last update was \(String(describing: last))"); return }
        #expect(why.contains("heartbeat"))
        await #expect(throws: ATVError.self) { try await service.select(.singleTap) }
    }

    @Test func connectingToAClosedPortIsAClearError() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        let port = device.port
        await device.stop()
        do {
            _ = try await MRPConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            Issue.record("connected to a closed port")
        } catch {
            guard case .connectionFailed = error else { Issue.record("expected connectionFailed, got \(error)"); return }
        }
    }

    /// Garbage into the virtual device closes that connection only; garbage from a "device" fails
    /// our client's waiting request with an ATVError instead of crashing.
    @Test func fuzzedFramesOverTCPNeverCrash() async throws {
        let device = try await VirtualMRP.start(.init(advanceInterval: nil))
        defer { Task { await device.stop() } }
        var rng = SplitMix64(seed: 0x4D52_5001)
        for _ in 0..<20 {
            let raw = try await MRPConnection.connect(host: "127.0.0.1", port: device.port)
            // Bypass the codec: write garbage straight to the socket.
            await raw.writeRaw(randomBytes(Int.random(in: 1...300, using: &rng), using: &rng))
            await raw.close()
        }
        // Still serves a well-behaved controller.
        _ = try await pair(device)

        // A fake device that answers anything with garbage.
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(GarbageResponder()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        for _ in 0..<5 {
            let service = MRPService(host: "127.0.0.1", port: server.localAddress?.port ?? 0, credentials: nil,
                                     options: .init(replyTimeout: .milliseconds(500), heartbeat: nil))
            await #expect(throws: ATVError.self) { try await service.connect() }
            await service.close()
        }
    }
}

/// Answers every read with random bytes (a broken device).
final class GarbageResponder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let rng = Mutex(SplitMix64(seed: TestSeed.value(default: 0x6A5B)))
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A plausible length prefix followed by junk that is not a ProtocolMessage, or pure noise.
        var bytes = rng.withLock { r in randomBytes(Int.random(in: 1...200, using: &r), using: &r) }
        if rng.withLock({ Bool.random(using: &$0) }) { bytes = [UInt8(bytes.count)] + bytes }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }
}
