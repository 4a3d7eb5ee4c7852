@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
import Foundation
import Synchronization
import Testing
@testable import ATVAirPlay
@testable import ATVSimulator

/// Our client against the virtual Apple TV, on loopback.
@Suite(.serialized) struct ClientTests {
    /// A "remote" URL: media served by a separate HTTP server.
    @Test func playsAURLToTheEndWithSeekPauseAndProgress() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 2.5, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start()
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        let updates = client.progressUpdates()
        let seen = Mutex<[AirPlayProgress]>([])
        let collector = Task { for await p in updates { seen.withLock { $0.append(p) } } }

        let play = Task { try await client.play(origin.url, position: 0.5) }
        try await Support.eventually("playing") { client.progress?.state == .playing }
        try await client.pause()
        // While paused the device's own position must stand still (the client's copy is up to one
        // poll old, so it is not the reference).
        let pausedAt = try #require(atv.playbackInfo().position)
        try await Task.sleep(for: .milliseconds(600))
        let info = atv.playbackInfo()
        #expect(info.rate == 0)
        #expect(abs((info.position ?? -1) - pausedAt) < 0.01, "position moved while paused: \(info.position ?? -1) vs \(pausedAt)")
        try await client.seek(to: 1.5)
        #expect(abs((atv.playbackInfo().position ?? 0) - 1.5) < 0.05)
        try await client.resume()
        let report = try await play.value
        collector.cancel()
        await atv.stop()
        await origin.stop()

        #expect(report.end == .finished)
        #expect(report.url == origin.url)
        #expect(report.duration.map { abs($0 - 2.5) < 0.01 } == true, "duration \(String(describing: report.duration))")
        #expect(report.fileRequests.isEmpty)
        let r = atv.report()
        #expect(r.plays.count == 1)
        #expect(r.plays.first?.url == origin.url)
        #expect(r.plays.first?.startPosition == 0.5)
        #expect(!r.userAgents.isEmpty && r.userAgents.allSatisfy { $0 == "MediaControl/1.0" })
        #expect(r.fetches.first?.status == 206)
        #expect(r.fetches.first?.contentRange?.hasPrefix("bytes 0-65535/") == true)
        #expect(r.rates == [0, 1])
        #expect(r.scrubs == [1.5])
        #expect(r.finished == 1)
        #expect(r.playbackInfoPolls >= 3)
        #expect(Array(r.requests.prefix(2)) == ["POST /play", "GET /playback-info"])
        let states = seen.withLock { $0.map(\.state) }
        #expect(states.contains(.playing) && states.contains(.paused) && states.last == .ended, "\(states)")
        // Origin saw the device's reachability fetch (and FFmpeg's probe).
        #expect(origin.requests.contains { $0.range == "bytes=0-65535" && $0.status == 206 })
    }

    @Test func stopEndsPlaybackOnTheDevice() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start(.init(probeDuration: false, faults: .init()))
        defer { Task { await atv.stop(); await origin.stop() } }
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        let play = Task { try await client.play(origin.url) }
        try await Support.eventually("playing") { client.progress?.state == .playing }
        #expect(client.isPlaying)
        await client.stop()
        let report = try await play.value
        #expect(report.end == .stopped)
        #expect(!client.isPlaying)
        #expect(atv.report().stops == 1)
        #expect(atv.report().durations == [60]) // default duration: probing was off
        #expect(atv.playbackInfo().duration == nil)
        await #expect(throws: ATVError.self) { try await client.pause() }
    }

    @Test func closingTheConnectionStopsPlaybackOnTheDevice() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start(.init(probeDuration: false))
        defer { Task { await atv.stop(); await origin.stop() } }
        let conn = try await HTTPClientConnection.connect(host: "127.0.0.1", port: atv.port)
        let r = try await conn.send(AirPlayRequests.play(url: origin.url, position: 0, sessionID: "x"))
        #expect(r.status == 200)
        // /play is accepted at once; the media loads in the background.
        try await Support.eventually("media loaded") { atv.playbackInfo().duration == 60 }
        conn.close()
        try await Support.eventually("end on close") { atv.report().closedByConnection == 1 }
        #expect(atv.playbackInfo().duration == nil)
    }

    @Test func localFileIsServedWithRangeRequests() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1.2, named: "my clip.wav", in: dir)
        let atv = try await VirtualAppleTV.start()
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        let report = try await client.play(media.path)
        await atv.stop()
        #expect(report.end == .finished)
        #expect(report.url.hasPrefix("http://127.0.0.1:") && report.url.hasSuffix("/my%20clip.wav"), "\(report.url)")
        #expect(report.duration.map { abs($0 - 1.2) < 0.01 } == true)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: media.path)[.size] as? Int)
        let fetch = try #require(report.fileRequests.first)
        #expect(fetch.method == "GET" && fetch.range == "bytes=0-65535" && fetch.status == 206 && fetch.bytes == 65536)
        #expect(atv.report().fetches.first?.contentRange == "bytes 0-65535/\(size)")
        #expect(report.fileRequests.allSatisfy { $0.client == "127.0.0.1" })
        // The server is gone after the play.
        await #expect(throws: ATVError.self) {
            let c = try await HTTPClientConnection.connect(host: "127.0.0.1", port: Int(URL(string: report.url)!.port!), timeout: .seconds(1))
            _ = try await c.send(HTTPRequestMessage(method: "GET", uri: "/"), timeout: .seconds(1))
        }
    }

    @Test func serverInfoAndPairingEndpointsOfADeviceThatNeedsNoPairing() async throws {
        let atv = try await VirtualAppleTV.start()
        defer { Task { await atv.stop() } }
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        let info = try await client.serverInfo()
        #expect(info["deviceid"] == "AA:BB:CC:DD:EE:01" && info["model"] == "AppleTV3,2")
        let features = try #require(info["features"].flatMap { UInt64($0) })
        #expect(AirPlayFeatureFlags(rawValue: features).supportsPlayURL && !AirPlayFeatureFlags(rawValue: features).isAirPlay2)
        let c = try await HTTPClientConnection.connect(host: "127.0.0.1", port: atv.port)
        defer { c.close() }
        let i = try await c.send(HTTPRequestMessage(method: "GET", uri: "/info"))
        #expect(try BinaryPlist.decode(i.body)["name"] == .string("swift-atv Apple TV"))
        for path in ["/pair-pin-start", "/pair-setup", "/pair-verify"] {
            #expect(try await c.send(HTTPRequestMessage(method: "POST", uri: path, body: [1, 2, 3])).status == 200, "\(path)")
        }
        #expect(try await c.send(HTTPRequestMessage(method: "GET", uri: "/nothing")).status == 404)
        // Nothing plays: playback-info has no duration.
        let pi = try await c.send(AirPlayRequests.playbackInfo())
        #expect(try PlaybackInfo(body: pi.body) == PlaybackInfo(readyToPlay: false))
    }

    @Test func fileServerRangesHeadAndErrors() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.bin")
        let content = (0..<1000).map { UInt8($0 % 251) }
        try Data(content).write(to: url)
        let server = try await AirPlayFileServer.start(path: url.path, host: "127.0.0.1")
        defer { Task { await server.stop() } }
        let c = try await HTTPClientConnection.connect(host: "127.0.0.1", port: server.url.split(separator: ":").last.flatMap { Int($0.split(separator: "/")[0]) } ?? 0)
        let whole = try await c.send(HTTPRequestMessage(method: "GET", uri: "/f.bin"))
        #expect(whole.status == 200 && whole.body == content && whole.headers["Accept-Ranges"] == "bytes")
        let part = try await c.send(HTTPRequestMessage(method: "GET", uri: "/f.bin", headers: ["Range": "bytes=100-199"]))
        #expect(part.status == 206 && part.body == Array(content[100..<200]) && part.headers["Content-Range"] == "bytes 100-199/1000")
        let tail = try await c.send(HTTPRequestMessage(method: "GET", uri: "/f.bin", headers: ["Range": "bytes=-10"]))
        #expect(tail.status == 206 && tail.body == Array(content[990...]))
        let head = try await c.send(HTTPRequestMessage(method: "HEAD", uri: "/f.bin"))
        #expect(head.status == 200 && head.body.isEmpty && head.headers["Content-Length"] == "1000")
        let bad = try await c.send(HTTPRequestMessage(method: "GET", uri: "/f.bin", headers: ["Range": "bytes=5000-"]))
        #expect(bad.status == 416 && bad.headers["Content-Range"] == "bytes */1000")
        #expect(try await c.send(HTTPRequestMessage(method: "GET", uri: "/other")).status == 404)
        #expect(try await c.send(HTTPRequestMessage(method: "POST", uri: "/f.bin")).status == 405)
        #expect(server.requests.map(\.status) == [200, 206, 206, 200, 416, 404, 405])
        #expect(server.requests[1].bytes == 100)
    }
}

/// The device refuses: each is a clear error naming what it said.
@Suite(.serialized) struct FailureTests {
    private func play(faults: VirtualAppleTV.Faults, url: String? = nil) async throws -> (ATVError?, VirtualAppleTV.Report) {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let atv = try await VirtualAppleTV.start(.init(probeDuration: false, faults: faults))
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        var error: ATVError?
        do {
            _ = try await client.play(url ?? media.path)
        } catch let e as ATVError {
            error = e
        }
        await atv.stop()
        return (error, atv.report())
    }

    @Test func play500IsRetriedThenReported() async throws {
        let (error, report) = try await play(faults: .init(playStatus: 500))
        let e = try #require(error)
        guard case .httpError(500, _) = e else { Issue.record("wrong error \(e)"); return }
        #expect(e.description.contains("500") && e.description.contains("POST /play") && e.description.contains("3 times"), "\(e)")
        #expect(report.requests == ["POST /play", "POST /play", "POST /play"])
    }

    @Test(arguments: [403, 470])
    func authRequiredSaysToPair(status: Int) async throws {
        let (error, report) = try await play(faults: .init(playStatus: status))
        let e = try #require(error)
        guard case .authenticationFailed = e else { Issue.record("wrong error \(e)"); return }
        #expect(e.description.contains("requires pairing") && e.description.contains("atv pair --protocol airplay")
                && e.description.contains("\(status)"), "\(e)")
        #expect(report.requests == ["POST /play"])
    }

    @Test func playbackInfo500IsAnError() async throws {
        let (error, report) = try await play(faults: .init(playbackInfoStatus: 500))
        let e = try #require(error)
        guard case .httpError(500, _) = e else { Issue.record("wrong error \(e)"); return }
        #expect(e.description.contains("/playback-info") && e.description.contains("Internal Server Error"), "\(e)")
        #expect(report.requests == ["POST /play", "GET /playback-info"])
    }

    @Test func unreachableURLIsAnError() async throws {
        // A port nothing listens on: bind one, note it, close it.
        let probe = try await HTTPServer.start(host: "127.0.0.1") { _ in HTTPServerResponse(status: 200) }
        let port = probe.port
        await probe.stop()
        let (error, report) = try await play(faults: .init(), url: "http://127.0.0.1:\(port)/missing.mp4")
        let e = try #require(error)
        guard case .playbackError = e else { Issue.record("wrong error \(e)"); return }
        #expect(e.description.contains("NSURLErrorDomain") && e.description.contains("missing.mp4"), "\(e)")
        #expect(report.fetches.count == 1 && report.fetches[0].ok == false)
    }

    @Test func noDeviceIsAConnectionError() async throws {
        let probe = try await HTTPServer.start(host: "127.0.0.1") { _ in HTTPServerResponse(status: 200) }
        let port = probe.port
        await probe.stop()
        let client = AirPlayClient(host: "127.0.0.1", port: port, options: Support.fast)
        await #expect(throws: ATVError.self) { _ = try await client.play("http://127.0.0.1:1/x.mp4") }
        await #expect(throws: ATVError.badInput("/nonexistent/file.mp4: no such file, and not an http(s) URL")) {
            _ = try await client.play("/nonexistent/file.mp4")
        }
    }
}
