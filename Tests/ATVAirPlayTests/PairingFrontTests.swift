@testable import ATVAirPlay
@testable import ATVAirPlayCore
import ATVAuth
import ATVCore
@testable import ATVHTTP
@testable import ATVSimulator
import ATVTestSupport
import Foundation
import Testing

/// The verified AirPlay path: HAP PIN pairing, pair-verify, the AirPlay 2 session, then `/play` and
/// its control over the encrypted connection. Our client and pyatv 0.18 against the virtual Apple TV
/// with `requirePairing` and `airplay2`.
@Suite(.serialized) struct PairingFrontTests {
    static func device(pin: String = "2468", duration: Double = 60) async throws -> VirtualAppleTV {
        try await VirtualAppleTV.start(.init(defaultDuration: duration, requirePairing: true, airplay2: true, pin: pin))
    }

    @Test func ourClientPairsVerifiesAndPlaysOverTheSession() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 2.5, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await Self.device()
        let credentials = try await pairAirPlay2(host: "127.0.0.1", port: atv.port, pin: "2468")
        #expect(atv.pairedControllers.count == 1)

        var options = Support.fast
        options.verification = .hap(credentials)
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: options)
        let play = Task { try await client.play(origin.url, position: 0.5) }
        try await Support.eventually("playing") { client.progress?.state == .playing }
        try await client.pause()
        #expect(atv.playbackInfo().rate == 0)
        try await client.seek(to: 1.5)
        #expect(abs((atv.playbackInfo().position ?? 0) - 1.5) < 0.05)
        try await client.resume()
        let report = try await play.value
        await atv.stop()
        await origin.stop()

        #expect(report.end == .finished)
        #expect(report.duration.map { abs($0 - 2.5) < 0.01 } == true)
        let r = atv.report()
        // PIN pair-setup, the check pair-verify right after pairing, then the play's pair-verify.
        #expect(r.pairings == ["PIN", "verified", "verified"], "\(r.pairings)")
        #expect(r.pairingFailures.isEmpty)
        // The AirPlay 2 session came first: SETUP (NTP timing), event channel, RECORD, then /play.
        #expect(r.sessionSetups == 1 && r.timingProtocol == "NTP")
        #expect(r.eventConnections == 1)
        #expect(r.records == 1)
        // Our timing port answered the device's NTP request.
        #expect(r.timingReplies == 1)
        let setup = try #require(r.requests.firstIndex(of: "enc SETUP"), "\(r.requests)")
        let record = try #require(r.requests.firstIndex(of: "enc RECORD"), "\(r.requests)")
        let playIndex = try #require(r.requests.firstIndex(of: "enc POST /play"), "\(r.requests)")
        #expect(setup < record && record < playIndex)
        #expect(r.requests.contains("enc POST /rate?value=0.000000") || r.requests.contains { $0.hasPrefix("enc POST /rate?value=0") })
        #expect(r.requests.contains { $0.hasPrefix("enc POST /scrub?position=1.5") })
        #expect(r.requests.contains("enc GET /playback-info"))
        // Nothing of the video side went in plaintext.
        #expect(!r.requests.contains { $0.hasPrefix("POST /play") || $0.hasPrefix("GET /playback-info") }, "\(r.requests)")
        #expect(r.refusedUnverified == 0)
        #expect(r.finished == 1)
        #expect(r.rates == [0, 1] && r.scrubs == [1.5])
        #expect(r.fetches.first?.status == 206)
    }

    @Test func stopOverTheVerifiedConnection() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start(.init(probeDuration: false, requirePairing: true, airplay2: true, pin: "2468"))
        let credentials = try await pairAirPlay2(host: "127.0.0.1", port: atv.port, pin: "2468")
        var options = Support.fast
        options.verification = .hap(credentials)
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: options)
        let play = Task { try await client.play(origin.url) }
        try await Support.eventually("playing") { client.progress?.state == .playing }
        await client.stop()
        let report = try await play.value
        #expect(report.end == .stopped)
        try await Support.eventually("stop seen") { atv.report().stops == 1 }
        #expect(atv.report().requests.contains("enc POST /stop"))
        #expect(atv.playbackInfo().duration == nil)
        await atv.stop()
        await origin.stop()
    }

    @Test func withoutCredentialsTheDeviceAsksForPairing() async throws {
        let atv = try await Self.device()
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: Support.fast)
        do {
            _ = try await client.play("http://127.0.0.1:1/x.mp4")
            Issue.record("play succeeded without pairing")
        } catch let e as ATVError {
            guard case .authenticationFailed(let m) = e else { Issue.record("wrong error \(e)"); return }
            #expect(m.contains("470") && m.contains("atv pair --protocol airplay"), "\(m)")
            #expect(!m.contains("\n"))
        }
        #expect(atv.report().refusedUnverified == 1)
        #expect(atv.report().plays.isEmpty)
        await atv.stop()
    }

    @Test func staleCredentialsAreAClearError() async throws {
        let other = try await Self.device()
        let stale = try await pairAirPlay2(host: "127.0.0.1", port: other.port, pin: "2468")
        await other.stop()
        let atv = try await Self.device()
        var options = Support.fast
        options.verification = .hap(stale)
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: options)
        do {
            _ = try await client.play("http://127.0.0.1:1/x.mp4")
            Issue.record("play succeeded with another device's credentials")
        } catch let e as ATVError {
            guard case .authenticationFailed(let m) = e else { Issue.record("wrong error \(e)"); return }
            #expect(m.contains("pair again with `atv pair --protocol airplay`"), "\(m)")
            #expect(!m.contains("\n"))
        }
        #expect(atv.report().plays.isEmpty)
        #expect(!atv.report().pairings.contains("verified"))
        #expect(atv.report().sessionSetups == 0)
        await atv.stop()
    }

    /// pyatv pairs with the PIN (typed on stdin), then plays with those credentials: it takes its
    /// AirPlay 2 path because the TXT features have bits 38/48.
    @Test func pyatvPairsThenPlaysOverItsAirPlay2Path() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 2, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await Self.device()
        let tool = try Support.requireAtvremote()
        let common = "'\(tool)' --manual --address 127.0.0.1 --port \(atv.port) --protocol airplay --id \(atv.configuration.deviceID) --service-properties '\(atv.configuration.servicePropertiesArgument)'"
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        let pair = try Child("/bin/sh", ["-c", "echo 2468 | \(common) pair"], environment: env, in: dir)
        let pairResult = await pair.finish(timeout: 60)
        let (ps, pt) = (pairResult.status, pairResult.timedOut)
        #expect(ps == 0 && !pt, "\(pair.describe())")
        guard let line = pair.stdout.split(separator: "\n").first(where: { $0.contains("You may now use these credentials:") }) else {
            Issue.record("no credentials: \(pair.describe())")
            await atv.stop(); await origin.stop()
            return
        }
        let credentials = String(line.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        #expect(credentials.split(separator: ":").count == 4, "\(credentials)")

        let play = try Child("/bin/sh", ["-c", "\(common) --airplay-credentials \(credentials) play_url=\(origin.url)"],
                             environment: env, in: dir)
        let playResult = await play.finish(timeout: 60)
        let (status, timedOut) = (playResult.status, playResult.timedOut)
        await atv.stop()
        await origin.stop()
        #expect(status == 0 && !timedOut, "\(play.describe())")
        let r = atv.report()
        #expect(r.pairings == ["PIN", "verified"], "\(r.pairings) \(r.pairingFailures)")
        #expect(r.sessionSetups == 1 && r.timingProtocol == "NTP")
        #expect(r.eventConnections == 1)
        #expect(r.records == 1)
        #expect(r.timingReplies == 1, "pyatv's timing server answered")
        #expect(r.plays.count == 1 && r.plays.first?.url == origin.url)
        #expect(r.requests.contains("enc POST /play"), "\(r.requests)")
        #expect(r.requests.contains("enc GET /playback-info"), "\(r.requests)")
        #expect(r.fetches.first?.status == 206)
        #expect(r.finished == 1)
        #expect(r.refusedUnverified == 0)
    }
}

/// An AirPlay 2 device and no stored credentials: transient pairing, then the session and `/play`.
@Suite(.serialized) struct TransientPlayTests {
    @Test func transientPairingThenSessionThenPlay() async throws {
        let dir = try Support.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let media = try Support.makeWAV(seconds: 1, in: dir)
        let origin = try await AirPlayFileServer.start(path: media.path, host: "127.0.0.1")
        let atv = try await VirtualAppleTV.start(.init(airplay2: true))
        var options = Support.fast
        options.verification = .transient
        options.airplay2Session = true
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: options)
        let report = try await client.play(origin.url)
        await atv.stop()
        await origin.stop()
        #expect(report.end == .finished)
        let r = atv.report()
        #expect(r.pairings == ["transient"])
        #expect(r.sessionSetups == 1 && r.records == 1 && r.eventConnections == 1)
        #expect(r.requests.contains("enc POST /play"))
        #expect(r.finished == 1)
    }
}

/// Legacy credentials the device does not know: one clear line naming pairing, nothing played.
@Suite(.serialized) struct LegacyVerificationTests {
    @Test func unknownLegacyCredentialsAreAClearError() async throws {
        let atv = try await VirtualAppleTV.start(.init(requirePairing: true, pin: "2468"))
        var options = Support.fast
        options.verification = .legacy(LegacyCredentials.generate())
        let client = AirPlayClient(host: "127.0.0.1", port: atv.port, options: options)
        do {
            _ = try await client.play("http://127.0.0.1:1/x.mp4")
            Issue.record("play succeeded with unknown legacy credentials")
        } catch let e as ATVError {
            guard case .authenticationFailed(let m) = e else { Issue.record("wrong error \(e)"); return }
            #expect(m.contains("rejected the stored AirPlay credentials") && m.contains("pair again with `atv pair --protocol airplay`"), "\(m)")
            #expect(!m.contains("\n"))
        }
        let r = atv.report()
        #expect(r.plays.isEmpty)
        #expect(r.pairingFailures.count == 1, "\(r.pairingFailures)")
        // The device refuses at step 1: the controller key is not paired.
        #expect(r.requests.filter { $0.hasPrefix("POST /pair-verify (legacy)") }.count == 1, "\(r.requests)")
        await atv.stop()
    }
}

/// Garbage on the pairing front's endpoints: every request is answered, none crashes the device,
/// and it still pairs afterwards.
@Suite(.serialized) struct PairingFrontFuzzTests {
    @Test func randomBodiesAreAnsweredAndTheDeviceSurvives() async throws {
        let atv = try await VirtualAppleTV.start(.init(requirePairing: true, airplay2: true, pin: "2468"))
        let seed = TestSeed.value(default: 0x9F0E)
        var rng = SplitMix64(seed: seed)
        let paths = ["/pair-setup", "/pair-verify", "/pair-setup-pin", "/play", "/scrub?position=x", "/rate?value=-1"]
        for i in 0..<60 {
            let conn = try await HTTPClientConnection.connect(host: "127.0.0.1", port: atv.port, timeout: .seconds(3))
            var body = randomBytes(Int.random(in: 0...300, using: &rng), using: &rng)
            if i % 3 == 0, !body.isEmpty { body[0] = UInt8(i % 2) }  // looks like legacy verification
            if i % 3 == 1 { body = [0x06, 0x01, 0x01] + body }      // looks like a TLV at state 1
            let r = try await conn.send(HTTPRequestMessage(method: "POST", uri: paths[i % paths.count], body: body), timeout: .seconds(3))
            #expect((200...599).contains(r.status), "seed \(seed) case \(i)")
            conn.close()
        }
        let credentials = try await pairAirPlay2(host: "127.0.0.1", port: atv.port, pin: "2468")
        #expect(atv.pairedControllers.contains { $0.identifier == credentials.clientID })
        #expect(atv.report().plays.isEmpty)
        await atv.stop()
    }
}
