import ATVTestSupport
import ATVCore
import ATVTestSupport
@testable import ATVHTTP
import Foundation
import Testing
@testable import ATVAirPlay
@testable import ATVSimulator

/// Proof by the reference sender: pyatv 0.18.0's `atvremote play_url` against the virtual Apple TV.
@Suite(.serialized) struct PyatvPlayURLTests {
    @Test func pyatvPlaysAURLToTheEnd() async throws {
        let dir = try makeTempDir("atv-airplay")
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try makeWAV(seconds: 2.5, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start()
        let started = ContinuousClock.now
        let child = try atvremotePlayURL(origin.url, port: atv.port, home: dir)
        let r0 = await child.finish(timeout: 60)
        let (status, timedOut) = (r0.status, r0.timedOut)
        let elapsed = ContinuousClock.now - started
        await atv.stop()
        await origin.stop()
        #expect(status == 0 && !timedOut, "atvremote exit \(status)\n\(child.describe())")

        let r = atv.report()
        // pyatv's AirPlay 1 play: one POST /play (User-Agent MediaControl/1.0, bplist body with the
        // URL, an integer Start-Position 0 and a session UUID), then GET /playback-info once a second.
        #expect(r.plays.count == 1)
        let play = try #require(r.plays.first)
        #expect(play.url == origin.url)
        #expect(play.startPosition == 0 && play.startPositionSeconds == nil)
        #expect(play.sessionID.flatMap(UUID.init(uuidString:)) != nil, "session id \(play.sessionID ?? "nil")")
        #expect(r.userAgents.first == "MediaControl/1.0")
        #expect(r.requests.first == "POST /play")
        #expect(Set(r.requests.dropFirst()) == ["GET /playback-info"], "\(r.requests)")
        // Playing 2.5 s then one poll without duration: at least 3 polls, and it returned only after the end.
        #expect(r.playbackInfoPolls >= 3, "polls \(r.playbackInfoPolls)")
        #expect(r.finished == 1)
        #expect(elapsed >= .seconds(2.5), "atvremote returned after \(elapsed), before the media ended")
        #expect(r.durations == [2.5])
        // The device proved the URL reachable with a Range request answered 206.
        #expect(r.fetches.first?.status == 206)
        #expect(origin.requests.contains { $0.range == "bytes=0-65535" && $0.status == 206 })
    }

    @Test func pyatvReportsAnUnreachableURL() async throws {
        let dir = try makeTempDir("atv-airplay")
        defer { try? FileManager.default.removeItem(at: dir) }
        let probe = try await HTTPServer.start(host: "127.0.0.1") { _ in HTTPServerResponse(status: 200) }
        let deadPort = probe.port
        await probe.stop()
        let atv = try await VirtualAppleTV.start()
        let child = try atvremotePlayURL("http://127.0.0.1:\(deadPort)/gone.mp4", port: atv.port, home: dir)
        let r0 = await child.finish(timeout: 60)
        let (status, timedOut) = (r0.status, r0.timedOut)
        await atv.stop()
        #expect(status != 0 && !timedOut)
        #expect(child.stdout.contains("got error -1004 (NSURLErrorDomain) when playing video")
                || child.stderr.contains("got error -1004 (NSURLErrorDomain) when playing video"), "\(child.describe())")
        #expect(atv.report().fetches.first?.ok == false)
    }

    @Test func pyatvSeesAuthenticationRequired() async throws {
        let dir = try makeTempDir("atv-airplay")
        defer { try? FileManager.default.removeItem(at: dir) }
        let atv = try await VirtualAppleTV.start(.init(faults: .init(playStatus: 470)))
        let child = try atvremotePlayURL("http://127.0.0.1:1/x.mp4", port: atv.port, home: dir)
        let r0 = await child.finish(timeout: 60)
        let (status, timedOut) = (r0.status, r0.timedOut)
        await atv.stop()
        #expect(status != 0 && !timedOut)
        #expect((child.stdout + child.stderr).contains("AuthenticationError"), "\(child.describe())")
        #expect(atv.report().requests == ["POST /play"])
    }

    /// atvremote killed mid-play: its connection closes and the device stops the playback.
    @Test func pyatvGoneStopsPlayback() async throws {
        let dir = try makeTempDir("atv-airplay")
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try makeWAV(seconds: 0.5, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start(.init(defaultDuration: 120, probeDuration: false))
        let child = try atvremotePlayURL(origin.url, port: atv.port, home: dir)
        try await eventually("two polls", timeout: .seconds(30)) { atv.report().playbackInfoPolls >= 2 }
        #expect(atv.playbackInfo().duration == 120)
        child.process.terminate()
        _ = await child.finish(timeout: 10)
        try await eventually("stop on close") { atv.report().closedByConnection == 1 }
        #expect(atv.playbackInfo().duration == nil)
        await atv.stop()
        await origin.stop()
    }
}

/// `atvremote --manual … --protocol airplay play_url=URL`. pyatv only offers play_url when the
/// service's `features` has bit 0 or 49, and a manual service has no TXT unless given.
private func atvremotePlayURL(_ url: String, port: Int, home: URL, features: String? = "0x5A7FFFF7,0xE") throws -> Child {
    var args = ["--manual", "--address", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                "--id", "AA:BB:CC:DD:EE:01"]
    if let features { args += ["--service-properties", ";features=\(features)"] }
    args.append("play_url=\(url)")
    return try Child(try TestEnv.venvTool("atvremote"), args, environment: ["HOME": home.path], in: home)
}
