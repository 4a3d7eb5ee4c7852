import ATV
import ATVCore
import Foundation
import Synchronization
import Testing
@testable import ATVSimulator

/// AirPlay through the facade: `connect`, `stream.playURL`, and the takeover of RemoteControl,
/// Metadata and push updates while a URL plays.
@Suite(.serialized) struct AirPlayFacadeTests {
    func config(port: Int, txt: [String: String] = [:]) -> DeviceConfig {
        DeviceConfig(name: "Virtual", address: "127.0.0.1",
                     services: [ServiceConfig(protocol: .airplay, identifier: "AA:BB:CC:DD:EE:01", port: port, properties: txt)])
    }

    @Test func playURLFeatureFollowsTheFeaturesBits() async throws {
        let manual = try await connect(config(port: 7000))
        #expect(manual.features.feature(.playURL).state == .available) // no TXT: assume it can
        #expect(manual.features.feature(.pause).state == .unsupported) // nothing plays
        await manual.close()
        let video = try await connect(config(port: 7000, txt: ["features": "0x5A7FFFF7,0xE", "model": "AppleTV3,2"]))
        #expect(video.features.feature(.playURL).state == .available)
        #expect(video.deviceInfo.model == .gen3 && video.deviceInfo.mac == nil)
        await video.close()
        let audioOnly = try await connect(config(port: 7000, txt: ["features": "0x200", "deviceid": "AA:BB:CC:DD:EE:01"]))
        #expect(audioOnly.features.feature(.playURL).state == .unsupported)
        #expect(audioOnly.deviceInfo.mac == "AA:BB:CC:DD:EE:01")
        await #expect(throws: ATVError.notSupported(.playURL)) { try await audioOnly.stream.playURL("http://127.0.0.1:1/x", position: 0) }
        await audioOnly.close()
    }

    @Test func controlsMetadataAndUpdatesWhileAURLPlays() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let atvSim = try await VirtualAppleTV.start(.init(defaultDuration: 30, probeDuration: false))
        let device = try await connect(config(port: atvSim.port))
        let updates = device.updates()
        let seen = Mutex<[Playing]>([])
        let collector = Task { for await u in updates { if case .playing(let p) = u { seen.withLock { $0.append(p) } } } }

        let play = Task { try await device.stream.playURL(media.path, position: 2) }
        try await Support.eventually("playing") { seen.withLock { $0.contains { $0.deviceState == .playing } } }
        #expect(device.features.feature(.pause).state == .available)
        #expect(device.features.feature(.totalTime).state == .available)
        let now = try await device.metadata.playing()
        #expect(now.mediaType == .video && now.deviceState == .playing && now.totalTime == 30)
        #expect((now.position ?? -1) >= 2)

        try await device.remoteControl.pause()
        #expect(atvSim.playbackInfo().rate == 0)
        #expect(try await device.metadata.playing().deviceState == .paused)
        try await device.remoteControl.setPosition(20)
        #expect(abs((atvSim.playbackInfo().position ?? 0) - 20) < 0.05)
        try await device.remoteControl.play()
        #expect(atvSim.playbackInfo().rate == 1)
        // A second play while one runs is refused.
        await #expect(throws: ATVError.self) { try await device.stream.playURL("http://127.0.0.1:1/x", position: 0) }
        try await device.remoteControl.stop()
        try await play.value

        #expect(atvSim.report().stops == 1 && atvSim.report().rates == [0, 1] && atvSim.report().scrubs == [20])
        #expect(atvSim.report().plays.first?.startPosition == 2)
        try await Support.eventually("idle update") { seen.withLock { $0.last?.deviceState == .idle } }
        #expect(seen.withLock { $0.contains { $0.deviceState == .paused } })
        // Released: nothing plays, so AirPlay no longer claims pause.
        await #expect(throws: ATVError.notSupported(.pause)) { try await device.remoteControl.pause() }
        #expect(device.features.feature(.pause).state == .unsupported)
        collector.cancel()
        await device.close()
        await atvSim.stop()
    }
}
