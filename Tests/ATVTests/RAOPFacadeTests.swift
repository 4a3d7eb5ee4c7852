import ATV
import ATVAudio
import ATVCore
import ATVRAOP
import ATVSimulator
import Foundation
import Testing

/// RAOP through the facade, against an in-process virtual speaker.
@Suite(.serialized) struct RAOPFacadeTests {
    /// A finite source of 440 Hz tone packets.
    struct Tone: AsyncSequence, Sendable {
        typealias Element = PCMPacket
        let packets: Int
        struct AsyncIterator: AsyncIteratorProtocol {
            var n = 0
            let total: Int
            mutating func next() async throws -> PCMPacket? {
                guard n < total else { return nil }
                var bytes = [UInt8](repeating: 0, count: 352 * 4)
                for f in 0..<352 {
                    let v = Int16(8000 * sin(Double(n * 352 + f) * 2 * .pi * 440 / 44_100))
                    let u = UInt16(bitPattern: v)
                    bytes[f * 4] = UInt8(u & 0xFF); bytes[f * 4 + 1] = UInt8(u >> 8)
                    bytes[f * 4 + 2] = UInt8(u & 0xFF); bytes[f * 4 + 3] = UInt8(u >> 8)
                }
                n += 1
                return PCMPacket(bytes: bytes, frames: 352)
            }
        }
        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(total: packets) }
    }

    @Test func streamTakesOverPauseStopAndSecondStreamFails() async throws {
        let speaker = try await VirtualSpeaker.start(.init(port: 0))
        let config = DeviceConfig(name: "Virtual", address: "127.0.0.1",
                                  services: [ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:FF", port: speaker.port)])
        let atv = try await connect(config, options: ConnectOptions(raop: RAOPOptions(latencyFrames: 11_025, volume: 50)))
        let raop = try #require(atv.raop)
        #expect(atv.features.feature(.streamFile).state == .available)
        #expect(atv.features.feature(.pause).state == .unavailable)   // nothing streaming yet
        let updates = atv.updates()

        let progress = raop.client.progressUpdates()
        let streaming = Task {
            try await raop.stream(packets: Tone(packets: 1250), metadata: MediaMetadata(title: "Tone", artist: "Test"))
        }
        // Wait until it plays.
        var iterator = updates.makeAsyncIterator()
        var sawPlaying = false
        while let u = await iterator.next() {
            if case .playing(let p) = u, p.deviceState == .playing, p.title == "Tone" { sawPlaying = true; break }
        }
        #expect(sawPlaying)
        // And until audio really flows.
        for await p in progress where p.packetsSent > 20 { break }
        #expect(atv.features.feature(.pause).state == .available)
        #expect(try await atv.metadata.playing().artist == "Test")

        // One stream per device.
        await #expect(throws: ATVError.self) {
            try await atv.stream.streamFile(.file("/dev/null"), metadata: nil)
        }

        // Pause and resume through the facade's remote control (RAOP has taken it over).
        try await atv.remoteControl.pause()
        #expect(try await atv.metadata.playing().deviceState == .paused)
        try await atv.remoteControl.play()
        #expect(try await atv.metadata.playing().deviceState == .playing)
        try await atv.audio.setVolume(20)
        #expect(try await atv.audio.volume() == 20)

        try await atv.remoteControl.stop()
        let report = try await streaming.value
        #expect(report.stopped)
        #expect(try await atv.metadata.playing().deviceState == .idle)
        // After the stream the takeover is released: nothing implements pause now.
        await #expect(throws: ATVError.notSupported(.pause)) { try await atv.remoteControl.pause() }

        let received = try await speaker.waitForSessionEnd(sessions: 1, timeout: .seconds(10))
        #expect(received.metadata?.title == "Tone")
        #expect(received.packetsReceived > 0)
        await atv.close()
        await speaker.stop()
    }

    /// A receiver that advertises only `_airplay._tcp`: audio streams go to its AirPlay service.
    @Test func airPlayOnlyReceiverStreamsThroughItsAirPlayService() async throws {
        let pod = try await VirtualHomePod.start(.init())
        defer { Task { await pod.stop() } }
        let txt = pod.mdnsServices(raop: false)[0].txt
        let config = DeviceConfig(name: "Pod", address: "127.0.0.1",
                                  services: [ServiceConfig(protocol: .airplay, identifier: "AA:BB:CC:DD:EE:F0", port: pod.port,
                                                           properties: txt)])
        let derived = try #require(RAOPService.streamingService(in: config))
        #expect(derived.protocol == .raop && derived.port == pod.port && derived.property("features") == "0x4A7FCA00,0xBC354BD0")
        let atv = try await connect(config, options: ConnectOptions(raop: RAOPOptions(latencyFrames: 11_025), mrpTunnel: .disable))
        let raop = try #require(atv.raop)
        #expect(raop.airPlayVersion == .v2)
        #expect(raop.client.port == pod.port)
        #expect(atv.features.feature(.streamFile).state == .available)
        let report = try await raop.stream(packets: Tone(packets: 100))
        #expect(report.packetsSent >= 100)
        let received = try await pod.waitForSessionEnd(timeout: .seconds(10))
        #expect(received.packetsDecrypted >= 100 && received.decryptFailures == 0)
        await atv.close()

        // Features without audio on the AirPlay service (no bit 30, no bit 9): no stream there.
        var video = config
        video.updateService(.airplay) { $0.properties["features"] = "0x1,0x40" }
        #expect(RAOPService.streamingService(in: video) == nil)
        // A RAOP service, when there is one, is the one streams go to.
        var both = config
        both.addService(ServiceConfig(protocol: .raop, port: 5000))
        #expect(RAOPService.streamingService(in: both)?.port == 5000)
    }

    /// Stored credentials that can't be read end `connect` with an error that says what to do; the
    /// session never falls back to transient pairing or no verification in their place.
    @Test func unreadableStoredCredentialsFailClosed() async throws {
        let homePod = "0x4A7FCA00,0xBC354BD0"
        for proto in [ATVProtocol.raop, .airplay] {
            let config = DeviceConfig(name: "Pod", address: "127.0.0.1", services: [
                ServiceConfig(protocol: proto, identifier: "AA:BB:CC:DD:EE:F0", port: 7000, credentials: "not-credentials",
                              properties: ["features": homePod, "model": "AudioAccessory5,1"]),
            ])
            do {
                let atv = try await connect(config, options: ConnectOptions(mrpTunnel: .disable))
                await atv.close()
                Issue.record("\(proto): connect accepted unreadable credentials")
            } catch let error as ATVError {
                guard case .invalidCredentials(let text) = error else {
                    Issue.record("\(proto): expected invalidCredentials, got \(error)"); continue
                }
                #expect(text.contains("pair again"))
            }
        }
    }
}
