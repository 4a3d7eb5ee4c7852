@testable import ATVAirPlay
@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
import ATVTestSupport
import Foundation
import Testing

@Suite struct CodecTests {
    @Test func playRequestCarriesPyatvFields() throws {
        let r = AirPlayRequests.play(url: "http://10.0.0.2:8080/a b.mp4", position: 12.5, sessionID: "S-1")
        #expect(r.method == "POST" && r.uri == "/play")
        #expect(r.headers["User-Agent"] == "MediaControl/1.0")
        #expect(r.headers["content-type"] == "application/x-apple-binary-plist")
        #expect(Array(r.body.prefix(8)) == Array("bplist00".utf8))
        let dict = try BinaryPlist.decode(r.body)
        #expect(dict["Content-Location"] == .string("http://10.0.0.2:8080/a b.mp4"))
        #expect(dict["Start-Position"] == .real(12.5))
        #expect(dict["X-Apple-Session-ID"] == .string("S-1"))
        let parsed = try AirPlayPlayRequest(body: r.body)
        #expect(parsed == AirPlayPlayRequest(url: "http://10.0.0.2:8080/a b.mp4", startPosition: 12.5,
                                             startPositionSeconds: 12.5, sessionID: "S-1"))
        #expect(parsed.startSeconds == 12.5)
    }

    @Test func playRequestTextParametersAndIntegerPosition() throws {
        let text = try AirPlayPlayRequest(body: Array("Content-Location: http://h/x.mov\nStart-Position: 0.25\n".utf8))
        #expect(text.url == "http://h/x.mov" && text.startPosition == 0.25)
        // pyatv sends an integer Start-Position (it casts the position to int).
        let body = BinaryPlist.encode(.dict(["Content-Location": .string("http://h/y"), "Start-Position": .int(7),
                                             "X-Apple-Session-ID": .string("u")]))
        #expect(try AirPlayPlayRequest(body: body).startSeconds == 7)
        #expect(throws: ATVError.self) { try AirPlayPlayRequest(body: BinaryPlist.encode(.dict(["Start-Position": .int(1)]))) }
    }

    @Test func controlRequests() {
        #expect(AirPlayRequests.scrub(position: 30).uri == "/scrub?position=30.000000")
        #expect(AirPlayRequests.rate(0).uri == "/rate?value=0.000000")
        #expect(AirPlayRequests.rate(1).uri == "/rate?value=1.000000")
        #expect(AirPlayRequests.stop().method == "POST" && AirPlayRequests.stop().uri == "/stop")
        #expect(AirPlayRequests.playbackInfo().method == "GET")
        #expect(HTTPRequestMessage(method: "POST", uri: "/scrub?position=30.000000").query["position"] == "30.000000")
        #expect(HTTPRequestMessage(method: "GET", uri: "/a%20b?x=1%2").path == "/a%20b")
        #expect(HTTPRequestMessage(method: "GET", uri: "/?k=a%20b&z").query == ["k": "a b", "z": ""])
    }

    @Test func playbackInfoRoundTrip() throws {
        let info = PlaybackInfo(duration: 100, position: 12.25, rate: 1, readyToPlay: true, playbackBufferEmpty: false,
                                playbackBufferFull: true, playbackLikelyToKeepUp: true)
        #expect(try PlaybackInfo(body: info.encoded()) == info)
        let failed = PlaybackInfo(readyToPlay: false, error: .init(code: -1100, domain: "NSURLErrorDomain", message: "nope"))
        #expect(try PlaybackInfo(body: failed.encoded()) == failed)
        #expect(try PlaybackInfo(body: []) == PlaybackInfo())
        #expect(throws: ATVError.self) { try PlaybackInfo(body: Array("<html>500</html>".utf8)) }
        // Integers are numbers too.
        #expect(try PlaybackInfo(body: BinaryPlist.encode(.dict(["duration": .int(5), "position": .int(1)]))).duration == 5)
    }

    /// Feature words of real devices (Apple TV 3, HomePod mini) as their TXT records carry them.
    @Test func featureFlags() throws {
        let atv3 = try #require(AirPlayFeatureFlags(parsing: "0x5A7FFFF7,0xE"))
        #expect(atv3.supportsPlayURL && !atv3.isAirPlay2)
        let mini = try #require(AirPlayFeatureFlags(parsing: "0x4A7FCA00,0xBC354BD0"))
        #expect(mini.isAirPlay2)
        #expect(AirPlayFeatureFlags(parsing: "0x00000003,0x00000001")?.rawValue == 0x1_0000_0003)
        #expect(AirPlayFeatureFlags(parsing: "0x1")?.supportsPlayURL == true)
        #expect(AirPlayFeatureFlags(parsing: "0x0,0x20000")?.supportsPlayURL == true) // bit 49
        #expect(AirPlayFeatureFlags(parsing: "0x200")?.supportsPlayURL == false)
        for bad in ["", "0x", "5A7FFFF7", "0x123456789", "0x1,0x2,0x3", "0xZZ", "0x1,"] {
            #expect(AirPlayFeatureFlags(parsing: bad) == nil, "\(bad)")
        }
        #expect(AirPlayFeatureFlags(rawValue: 0xE_5A7F_FFF7).text == "0x5A7FFFF7,0xE")
        let svc = ServiceConfig(protocol: .airplay, port: 7000, properties: ["features": "0x200", "ft": "0x1"])
        #expect(AirPlayFeatureFlags(service: svc)?.supportsPlayURL == true)
    }

    @Test func byteRanges() {
        #expect(ByteRangeRequest(header: nil, size: 100) == .whole)
        #expect(ByteRangeRequest(header: "bytes=0-9", size: 100) == .partial(offset: 0, length: 10))
        #expect(ByteRangeRequest(header: "bytes=90-", size: 100) == .partial(offset: 90, length: 10))
        #expect(ByteRangeRequest(header: "bytes=90-1000", size: 100) == .partial(offset: 90, length: 10))
        #expect(ByteRangeRequest(header: "bytes=-30", size: 100) == .partial(offset: 70, length: 30))
        #expect(ByteRangeRequest(header: "bytes=-300", size: 100) == .partial(offset: 0, length: 100))
        #expect(ByteRangeRequest(header: "bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRangeRequest(header: "bytes=-0", size: 100) == .unsatisfiable)
        #expect(ByteRangeRequest(header: "bytes=0-0,5-9", size: 100) == .partial(offset: 0, length: 1))
        for ignored in ["items=0-1", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=--1", "bytes=99999999999999999999-"] {
            #expect(ByteRangeRequest(header: ignored, size: 100) == .whole, "\(ignored)")
        }
    }

    @Test func trackerFollowsAPlayback() {
        var t = PlaybackTracker(startPolls: 3)
        #expect(t.observe(PlaybackInfo()) == .loading)
        #expect(t.observe(PlaybackInfo(readyToPlay: false)) == .loading)
        let p = PlaybackInfo(duration: 10, position: 1, rate: 1)
        #expect(t.observe(p) == .progress(p))
        #expect(t.phase == .playing)
        let paused = PlaybackInfo(duration: 10, position: 4, rate: 0)
        #expect(t.observe(paused) == .progress(paused))
        #expect(t.observe(PlaybackInfo(readyToPlay: false)) == .ended)
        #expect(t.phase == .ended && t.last == paused && t.polls == 5)
    }

    @Test func trackerEndsWhenHeldAtEndAndFailsOnErrorsOrNoStart() {
        var t = PlaybackTracker()
        _ = t.observe(PlaybackInfo(duration: 10, position: 9, rate: 1))
        #expect(t.observe(PlaybackInfo(duration: 10, position: 10, rate: 0)) != .ended)
        #expect(t.observe(PlaybackInfo(duration: 10, position: 10, rate: 0)) == .ended)

        var e = PlaybackTracker()
        guard case .failed(let err) = e.observe(PlaybackInfo(error: .init(code: -1100, domain: "NSURLErrorDomain"))) else {
            Issue.record("error not reported"); return
        }
        #expect(err.description.contains("-1100") && err.description.contains("NSURLErrorDomain"))

        var n = PlaybackTracker(startPolls: 2)
        #expect(n.observe(PlaybackInfo()) == .loading)
        guard case .failed(let never) = n.observe(PlaybackInfo()) else { Issue.record("no start not reported"); return }
        #expect(never.description.contains("did not start"))
    }

    /// Parsers of network input never crash on garbage: what parses re-encodes to the same value,
    /// what does not is an input error.
    @Test func fuzzParsers() {
        let seed = TestSeed.value(default: 0xA1F1)
        var rng = SplitMix64(seed: seed)
        let valid = PlaybackInfo(duration: 100, position: 12.25, rate: 1, readyToPlay: true).encoded()
        let play = AirPlayRequests.play(url: "http://h/x", position: 3, sessionID: "s").body
        for i in 0..<20000 {
            var bytes: [UInt8]
            switch i % 3 {
            case 0: bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                bytes = valid
                for _ in 0..<Int.random(in: 1...8, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            default:
                bytes = Array(play.prefix(Int.random(in: 0...play.count, using: &rng)))
                if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 0xFF }
            }
            do {
                let info = try PlaybackInfo(body: bytes)
                #expect(try PlaybackInfo(body: info.encoded()) == info, "seed \(seed) case \(i): \(info)")
            } catch {
                #expect((error as? ATVError)?.isMalformedInput == true, "seed \(seed) case \(i): \(error)")
            }
            do { _ = try BinaryPlistParser.parse(bytes) } catch {
                #expect(error is BinaryPlistParser.Failure, "seed \(seed) case \(i): \(error)")
            }
            do {
                let request = try AirPlayPlayRequest(body: bytes)
                #expect(!request.url.isEmpty, "seed \(seed) case \(i)")
            } catch {
                #expect((error as? ATVError)?.isMalformedInput == true, "seed \(seed) case \(i): \(error)")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            _ = ByteRangeRequest(header: "bytes=" + text, size: Int.random(in: 0...1000, using: &rng))
            _ = AirPlayFeatureFlags(parsing: text)
            _ = HTTPRequestMessage(method: "GET", uri: "/x?" + text).query
        }
    }
}
