@testable import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
@testable import ATVHTTP
import ATVTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import ATVRAOP
import ATVSimulator
import Testing

/// Sans-I/O pieces of the AirPlay 2 sender, checked against bytes made by Python's plistlib (what
/// pyatv sends) and pyatv's route rule.
@Suite struct AirPlay2MessageTests {
    /// plistlib.dumps({"streams": [{…}]}, fmt=FMT_BINARY) with the same values.
    static let streamSetupVector = hex("""
        62706c6973743030d101025773747265616d73a103dd0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d5b617564696f466f726d61
        7459617564696f4d6f64655b636f6e74726f6c506f72745263745769734d656469615a6c6174656e63794d61785a6c6174656e63794d696e537368
        6b537370665273725f101273747265616d436f6e6e656374696f6e49445f1017737570706f72747344796e616d696353747265616d494454747970
        6512000400005764656661756c741117711002091200015888112b114f1020000102030405060708090a0b0c0d0e0f101112131415161718191a1b
        1c1d1e1f11016011ac441212345678081060080b1315303c4652555d6873777b7e93adb2b7bfc2c4c5cacdf0f3f6fbfc0000000000000101000000
        000000001e000000000000000000000000000000fe
        """)
    /// plistlib.dumps of pyatv's session SETUP body (name "pyatv", fixed UUID and timing port).
    static let sessionSetupVector = hex("""
        62706c6973743030df100f0102030405060708090a0b0c0d0e0f101112101314151617111819111a1b5864657669636549445f101867726f757043
        6f6e7461696e7347726f75704c65616465725f101469734d756c746953656c656374416972506c61795a6d616341646472657373556d6f64656c54
        6e616d655e6f734275696c6456657273696f6e566f734e616d65596f7356657273696f6e5f101373656e646572537570706f72747352656c61795b
        73657373696f6e555549445d736f7572636556657273696f6e5f10167374617473436f6c6c656374696f6e456e61626c65645a74696d696e67506f
        72745e74696d696e6750726f746f636f6c5f101141413a42423a43433a44443a45453a464608095a6950686f6e6531342c33557079617476553230
        463636596950686f6e65204f535431362e355f102430463145324433432d344235412d343937382d383739362d413542344333443245314630573639
        302e372e3111138a534e5450000800290032004d0064006f0075007a00890090009a00b000bc00ca00e300ee00fd011101120113011e0124012a013401
        3901600168016b0000000000000201000000000000001c0000000000000000000000000000016f
        """)

    @Test func streamSetupBodyMatchesPlistlib() {
        let request = AirPlay2AudioStreamRequest(codec: .alac, controlPort: 6001, sharedKey: Array(0..<32), streamConnectionID: 0x1234_5678)
        #expect(BinaryPlist.encode(request.body) == Self.streamSetupVector)
        // PCM asks for ct 1 / 0x800 instead.
        let pcm = try? BinaryPlistParser.parse(BinaryPlist.encode(AirPlay2AudioStreamRequest(
            codec: .l16, controlPort: 1, sharedKey: Array(0..<32), streamConnectionID: 1).body))
        guard case .array(let streams)? = pcm?["streams"] else { Issue.record("no streams"); return }
        #expect(streams.first?["ct"] == .int(1))
        #expect(streams.first?["audioFormat"] == .int(0x800))
    }

    @Test func sessionSetupBodyMatchesPyatv() {
        let body = AirPlay2SessionSetup.body(timing: .ntp(timingPort: 5002), sessionUUID: "0F1E2D3C-4B5A-4978-8796-A5B4C3D2E1F0",
                                             identity: AirPlay2SenderIdentity(name: "pyatv"))
        #expect(BinaryPlist.encode(body) == Self.sessionSetupVector)
    }

    @Test func repliesAreReadByKey() throws {
        // plistlib: {"streams": [{"type": 96, "dataPort": 7001, "controlPort": 7002, "audioBufferSize": 8388608}]}
        let stream = try AirPlay2AudioStreamReply(parsing: hex("""
            62706c6973743030d101025773747265616d73a103d40405060708090a0b5f100f617564696f42756666657253697a655b636f6e74726f6c506f
            72745864617461506f727454747970651200800000111b5a111b591060080b13151e303c454a4f52550000000000000101000000000000000c00
            000000000000000000000000000057
            """))
        #expect(stream == AirPlay2AudioStreamReply(dataPort: 7001, controlPort: 7002, type: 96, audioBufferSize: 8_388_608))
        // plistlib: {"eventPort": 7010, "timingPort": 7011}
        let session = try AirPlay2SessionReply(parsing: hex("""
            62706c6973743030d201020304596576656e74506f72745a74696d696e67506f7274111b62111b63080d17222500000000000001010000000000
            00000500000000000000000000000000000028
            """))
        #expect(session == AirPlay2SessionReply(eventPort: 7010, timingPort: 7011))

        // Several streams: the realtime one is picked, whatever its position.
        let two = BinaryPlist.encode(.dict(["streams": .array([
            .dict(["type": .int(130), "dataPort": .int(1), "controlPort": .int(2)]),
            .dict(["controlPort": .int(4), "type": .int(96), "dataPort": .int(3)]),
        ])]))
        #expect(try AirPlay2AudioStreamReply(parsing: two).dataPort == 3)
        // Missing or out-of-range ports are protocol errors.
        for bad: PlistValue in [.dict([:]), .dict(["streams": .array([])]),
                                 .dict(["streams": .array([.dict(["type": .int(96), "dataPort": .int(70000), "controlPort": .int(1)])])]),
                                 .dict(["streams": .array([.dict(["type": .int(96), "dataPort": .int(5)])])])] {
            #expect(throws: ATVError.self) { _ = try AirPlay2AudioStreamReply(parsing: BinaryPlist.encode(bad)) }
        }
        #expect(throws: ATVError.self) { _ = try AirPlay2SessionReply(parsing: BinaryPlist.encode(.dict(["eventPort": .string("x")]))) }
        #expect(throws: ATVError.self) { _ = try AirPlay2SessionReply(parsing: []) }
    }

    /// A reply either parses to valid ports (1…65535) or fails with an input error.
    @Test func replyParsersNeverTrapOnGarbage() {
        let seed = TestSeed.value(default: 42)
        var rng = SplitMix64(seed: seed)
        let valid = BinaryPlist.encode(.dict(["streams": .array([.dict(["type": .int(96), "dataPort": .int(3), "controlPort": .int(4)])]),
                                              "eventPort": .int(9)]))
        for i in 0..<3000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = valid
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            } else {
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if i % 3 == 0 { bytes = Array("bplist00".utf8) + bytes }
            }
            let ports = 1...65535
            do {
                let r = try AirPlay2AudioStreamReply(parsing: bytes)
                #expect(ports.contains(r.dataPort) && ports.contains(r.controlPort), "seed \(seed) case \(i): \(r)")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            do {
                let r = try AirPlay2SessionReply(parsing: bytes)
                #expect(ports.contains(r.eventPort) && r.timingPort.map(ports.contains) ?? true, "seed \(seed) case \(i): \(r)")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
        }
    }

    @Test func featuresAndRoute() {
        // Feature words of real devices (Apple TV 3, HomePod mini) as their TXT records carry them.
        #expect(AirPlayFeatureFlags(parsing: "0x5A7FFFF7,0xE")?.isAirPlay2 == false)           // Apple TV 3
        #expect(AirPlayFeatureFlags(parsing: "0x4A7FCA00,0xBC354BD0")?.isAirPlay2 == true)     // HomePod mini
        #expect(AirPlayFeatureFlags(parsing: "0x00000003,0x00000001")?.rawValue == 0x1_0000_0003)
        #expect(AirPlayFeatureFlags(parsing: "0x40")?.rawValue == 0x40)
        #expect(AirPlayFeatureFlags(parsing: "0x0,0x40")?.has(bit: 38) == true)
        #expect(AirPlayFeatureFlags(parsing: "0x0,0x10000")?.has(bit: 48) == true)
        for bad in ["", "12", "0x", "0x123456789", "0x1,0x2,0x3", "0xZZ", "0x1,"] {
            #expect(AirPlayFeatureFlags(parsing: bad) == nil, "\(bad)")
        }

        let homePod = "0x4A7FCA00,0xBC354BD0"
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: [homePod]).version == .v2)
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: ["0x5A7FFFF7,0xE"]).version == .v1)
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: [nil, "junk", homePod]).version == .v2)
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: []).version == .v1)
        #expect(AirPlayRoute.choose(preference: .v1, featureTexts: [homePod]).version == .v1)
        #expect(AirPlayRoute.choose(preference: .v2, featureTexts: ["0x5A7FFFF7,0xE"]).version == .v2)
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: [homePod]).description.contains("bit 38+48"))
    }

    /// `--host` without TXT: the route comes from the `GET /info` answer.
    @Test func routeFromInfoAnswer() {
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: []).decided == false)
        #expect(AirPlayRoute.choose(preference: .auto, featureTexts: ["0x5A7FFFF7,0xE"]).decided)
        #expect(AirPlayRoute.choose(preference: .v2, featureTexts: []).decided)

        let homePod: PlistValue = .dict(["features": .int(Int64(bitPattern: 0xBC35_4BD0_4A7F_CA00)), "name": .string("Pod")])
        let v2 = AirPlayRoute.fromInfo(status: 200, info: homePod)
        #expect(v2.version == .v2)
        #expect(v2.description == "AirPlay 2 (GET /info features 0x4A7FCA00,0xBC354BD0 have bit 38+48)")
        // The TXT-style string form some receivers use.
        #expect(AirPlayRoute.fromInfo(status: 200, info: .dict(["features": .string("0x4A7FCA00,0xBC354BD0")])).version == .v2)
        let appleTV3 = AirPlayRoute.fromInfo(status: 200, info: .dict(["features": .int(0xE_5A7F_FFF7)]))
        #expect(appleTV3.version == .v1 && appleTV3.reason.contains("neither bit 38 nor 48"))
        // An AirPlay 1 receiver: 404 / 400 (shairport-sync), nothing, or a plist without features.
        #expect(AirPlayRoute.fromInfo(status: 404, info: nil) == AirPlayRoute(version: .v1, reason: "GET /info answered 404"))
        #expect(AirPlayRoute.fromInfo(status: nil, info: nil) == AirPlayRoute(version: .v1, reason: "GET /info not answered"))
        #expect(AirPlayRoute.fromInfo(status: 200, info: .dict(["name": .string("x")])).version == .v1)
        #expect(AirPlayRoute.fromInfo(status: 200, info: nil).version == .v1)
        #expect(AirPlayRoute.fromInfo(status: 200, info: .dict(["features": .bool(true)])).version == .v1)
        // A 403 with features in the body is still not an answer to trust.
        #expect(AirPlayRoute.fromInfo(status: 403, info: homePod).version == .v1)
    }

    /// Bit 30 (pyatv's rule), or AirPlay 2 with audio, sends audio to the AirPlay service.
    @Test func audioOnTheAirPlayService() {
        #expect(AirPlayFeatureFlags(parsing: "0x4A7FCA00,0xBC354BD0")?.streamsAudioOnAirPlayService == true)
        #expect(AirPlayFeatureFlags(parsing: "0x40000000")?.streamsAudioOnAirPlayService == true)          // bit 30 only
        #expect(AirPlayFeatureFlags(parsing: "0x200,0x40")?.streamsAudioOnAirPlayService == true)          // bits 9 + 38
        #expect(AirPlayFeatureFlags(parsing: "0x0,0x40")?.streamsAudioOnAirPlayService == false)           // AP2, no audio bit
        #expect(AirPlayFeatureFlags(parsing: "0x5A7FFFF7,0xE")?.streamsAudioOnAirPlayService == true)      // Apple TV 3 has bit 30
        #expect(AirPlayFeatureFlags(parsing: "0x00000203")?.streamsAudioOnAirPlayService == false)         // AP1 video + audio bits
    }

    /// The stuck-receiver decision, with injected time.
    @Test func stallRule() {
        let t0 = ContinuousClock.now
        func at(_ ms: Int) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }
        let rule = AirPlay2StallRule(timeout: .seconds(10))
        // Nothing outstanding: alive whatever happened before (no timing requests needed at all).
        #expect(rule.verdict(now: at(60_000), liveness: AirPlay2Liveness()) == .alive(recheckAt: nil))
        #expect(rule.verdict(now: at(60_000), liveness: AirPlay2Liveness(lastAnswer: at(1000))) == .alive(recheckAt: nil))
        // A request out: alive until `timeout` after it was sent.
        let feedback = AirPlay2Liveness(oldestUnanswered: ("POST /feedback", at(2000)), lastAnswer: at(0))
        #expect(rule.verdict(now: at(5000), liveness: feedback) == .alive(recheckAt: at(12_000)))
        #expect(rule.verdict(now: at(11_999), liveness: feedback) == .alive(recheckAt: at(12_000)))
        #expect(rule.verdict(now: at(12_000), liveness: feedback) == .stuck(what: "POST /feedback", waited: .seconds(10)))
        // Another answer, an event-channel request or a retransmit/timing request after it is a
        // sign of life that restarts the clock.
        var answered = feedback
        answered.lastAnswer = at(4000)
        #expect(rule.verdict(now: at(12_000), liveness: answered) == .alive(recheckAt: at(14_000)))
        var event = feedback
        event.lastEventRequest = at(7000)
        #expect(rule.verdict(now: at(16_999), liveness: event) == .alive(recheckAt: at(17_000)))
        #expect(rule.verdict(now: at(17_000), liveness: event) == .stuck(what: "POST /feedback", waited: .seconds(15)))
        #expect(rule.verdict(now: at(12_000), liveness: feedback, otherSigns: at(3000)) == .alive(recheckAt: at(13_000)))
        // Signs of life before the request do not count.
        #expect(rule.verdict(now: at(12_000), liveness: feedback, otherSigns: at(1000)) == .stuck(what: "POST /feedback", waited: .seconds(10)))
    }

    @Test func eventChannelReplyCopiesCSeqAndServer() {
        let request = RTSPRequest(method: "POST", uri: "/command", headers: ["CSeq": "17", "Server": "AirTunes/870.14.1",
                                                                             "Content-Type": "application/x-apple-binary-plist"],
                                  body: [1, 2, 3])
        #expect(AirPlay2EventChannel.reply(to: request).headers["CSeq"] == "17")
        #expect(String(decoding: AirPlay2EventChannel.replyBytes(to: request), as: UTF8.self)
                == "RTSP/1.0 200 OK\r\nContent-Length: 0\r\nAudio-Latency: 0\r\nServer: AirTunes/870.14.1\r\nCSeq: 17\r\n\r\n")
    }

    @Test func sealedPacketsAreStoredForRetransmit() throws {
        var streamer = RAOPStreamer(ssrc: 7, initialSequence: 65535, initialRTPTime: 100, latencyFrames: 4410)
        streamer.audioCipher = try AirPlay2AudioCipher(key: Array(0..<32))
        let payload = [UInt8](repeating: 9, count: 40)
        let first = try streamer.packetize(payload: payload, frames: 352)
        let second = try streamer.packetize(payload: payload, frames: 352)
        #expect(first.count == 12 + 40 + AirPlay2AudioCipher.overhead)
        #expect(try AirPlay2AudioCipher.open(first, key: Array(0..<32)) == first[0..<12] + payload)
        #expect(first.suffix(8) == [0, 0, 0, 0, 0, 0, 0, 0] && second.suffix(8) == [1, 0, 0, 0, 0, 0, 0, 0])
        // A retransmit is the very sealed packet (not resealed with a new counter).
        let answers = streamer.retransmissions(for: RAOPRetransmitRequest(firstSequence: 65535, count: 2))
        #expect(answers == [RAOPRetransmitResponse.wrap(packetBytes: first, sequenceNumber: 65535),
                            RAOPRetransmitResponse.wrap(packetBytes: second, sequenceNumber: 0)])
    }
}

// MARK: - End to end against the virtual HomePod

func airPlay2Options(_ codec: RAOPCodec = .alac, progressTimeout: Duration = .seconds(10)) -> RAOPOptions {
    var o = RAOPOptions(codec: codec, latencyFrames: 11_025, volume: 40,
                        metadata: MediaMetadata(title: "Ramp", artist: "Test", album: "AP2",
                                                  artwork: [0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 0x42, count: 96), duration: 2),
                        requestTimeout: .seconds(3), feedbackInterval: .milliseconds(500), syncInterval: .milliseconds(250),
                        leadInPackets: 0)
    o.airPlayVersion = .v2
    o.progressTimeout = progressTimeout
    return o
}

func tempPath(_ name: String) -> String {
    // In the test process's temp folder (removed at its exit).
    let dir = (try? makeTempDir("ap2-sender")) ?? TestTemp.root
    return dir.appendingPathComponent(name).path
}

/// PCM of a WAV file's `data` chunk.
func wavData(_ path: String) throws -> [UInt8] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var i = 12
    while i + 8 <= bytes.count {
        let id = String(decoding: bytes[i..<i + 4], as: UTF8.self)
        let size = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
        if id == "data" { return Array(bytes[(i + 8)..<min(bytes.count, i + 8 + size)]) }
        i += 8 + size + (size & 1)
    }
    throw ATVError.badInput("no data chunk in \(path)")
}

/// Fraction of the source's frames found at the same place in `captured`, after aligning both on
/// their first non-silent frame.
func matchedFraction(source: [UInt8], captured: [UInt8]) -> Double {
    func firstSound(_ p: [UInt8]) -> Int? {
        var f = 0
        while (f + 1) * 4 <= p.count {
            if p[(f * 4)..<(f * 4 + 4)].contains(where: { $0 != 0 }) { return f }
            f += 1
        }
        return nil
    }
    guard let s0 = firstSound(source), let c0 = firstSound(captured) else { return 0 }
    let frames = source.count / 4
    var same = 0
    for f in 0..<frames {
        let c = f + c0 - s0
        guard c >= 0, (c + 1) * 4 <= captured.count else { continue }
        if source[(f * 4)..<(f * 4 + 4)] == captured[(c * 4)..<(c * 4 + 4)] { same += 1 }
    }
    return Double(same) / Double(max(1, frames))
}

func rampPCM(packets: Int) -> [UInt8] {
    (0..<packets).flatMap { RampSource.pcm(packet: $0, frames: 352) }
}

@Suite(.serialized) struct AirPlay2SenderTests {
    func streamAndCompare(codec: RAOPCodec, loss: Double = 0) async throws -> (RAOPStreamReport, HomePodReport, Double) {
        let wav = tempPath("pod.wav")
        let lossPercent = Int(loss * 1000)
        // Deterministic pseudo-random drops: about `loss` of the audio datagrams.
        let drop: @Sendable (Int, UInt16) -> Bool = { index, _ in
            var z = UInt64(index) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 29)) &* 0xBF58_476D_1CE4_E5B9
            return Int((z ^ (z >> 32)) % 1000) < lossPercent
        }
        var config = VirtualHomePod.Configuration(outputPath: wav)
        config.timingInterval = .seconds(1)
        if loss > 0 { config.dropAudioPacket = drop }
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let client = RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options(codec))
        let packets = 250
        let report = try await client.stream(RampSource(packets: packets, framesPerPacket: 352))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        let captured = try wavData(wav)
        return (report, podReport, matchedFraction(source: rampPCM(packets: packets), captured: captured))
    }

    @Test(arguments: [RAOPCodec.alac, .l16]) func streamsBitExactToVirtualHomePod(codec: RAOPCodec) async throws {
        let (report, pod, matched) = try await streamAndCompare(codec: codec)
        #expect(matched == 1.0, "\(pod)")
        #expect(pod.pairings == [.transient])
        #expect(pod.timingProtocol == "NTP")
        #expect(pod.eventChannel == .answered || pod.eventChannel == .closed)
        #expect(pod.compressionType == (codec == .alac ? 2 : 1))
        #expect(pod.streamType == 96)
        #expect(pod.decryptFailures == 0)
        #expect(pod.packetsDecrypted >= report.packetsSent)
        #expect(pod.requests.contains("enc RECORD"))
        #expect(pod.requests.last == "enc TEARDOWN")
        // RECORD comes before the audio stream SETUP (the second SETUP).
        let record = pod.requests.firstIndex(of: "enc RECORD") ?? -1
        let setups = pod.requests.indices.filter { pod.requests[$0] == "enc SETUP" }
        #expect(setups.count == 2 && record > setups[0] && record < setups[1])
        #expect(pod.metadata?.title == "Ramp" && pod.metadata?.album == "AP2")
        #expect(pod.artworkBytes == 100 && pod.artworkType == "image/jpeg")
        #expect(pod.progress.map { $0.split(separator: "/").count == 3 } == true, "\(pod.progress ?? "-")")
        #expect(pod.volume.map { abs($0 - RAOPVolume.dB(fromPercent: 40)) < 0.001 } == true)
        #expect(pod.feedbacks >= 1)
        #expect(report.timingReplies >= 1)
        #expect(report.syncPackets >= 1)
    }

    @Test func fivePercentLossIsRepairedByRetransmits() async throws {
        let (report, pod, matched) = try await streamAndCompare(codec: .alac, loss: 0.05)
        #expect(report.retransmitRequests > 0)
        #expect(report.retransmittedPackets > 0)
        #expect(pod.packetsRecovered > 0)
        // The README claims bit-exact with 5 % loss: every frame, no packet left unrecovered.
        #expect(pod.unrecoveredPackets == 0, "\(pod)")
        #expect(matched == 1.0, "\(pod)")
    }

    @Test func userAgentCheckFailure() async throws {
        let pod = try await VirtualHomePod.start(.init(requireUserAgent: true))
        defer { Task { await pod.stop() } }
        var o = airPlay2Options()
        o.userAgent = "curl/8.0"
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: o).stream(RampSource(packets: 10, framesPerPacket: 352))
        }
        #expect(error?.description.contains("403") == true)
        // With the default (Apple-like) User-Agent the same receiver plays.
        let ok = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options())
            .stream(RampSource(packets: 20, framesPerPacket: 352))
        #expect(ok.packetsSent >= 20)
    }

    @Test func inBandTransientErrorIsAnAuthenticationFailure() async throws {
        let pod = try await VirtualHomePod.start(.init(transientError: true))
        defer { Task { await pod.stop() } }
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options())
                .stream(RampSource(packets: 10, framesPerPacket: 352))
        }
        guard case .authenticationFailed(let text)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(text.contains("transient pairing"))
    }

    @Test func droppedEventChannelEndsTheStream() async throws {
        let pod = try await VirtualHomePod.start(.init(dropEventChannelAfter: .milliseconds(800)))
        defer { Task { await pod.stop() } }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options()).stream(EndlessSilence())
        }
        #expect(error?.description.contains("event channel") == true, "\(String(describing: error))")
        #expect(clock.now - start < .seconds(30))
        // TEARDOWN was still sent.
        #expect(await poll(timeout: .seconds(5)) { pod.report().requests.contains("enc TEARDOWN") }, "\(pod.report().requests)")
    }

    /// A stuck receiver (audio discarded, requests no longer answered) ends the stream within the
    /// progress timeout of the first unanswered request, with one clear error.
    @Test func receiverThatStopsAnsweringIsNoProgress() async throws {
        let pod = try await VirtualHomePod.start(.init(noProgress: true))
        defer { Task { await pod.stop() } }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options(progressTimeout: .seconds(1)))
                .stream(EndlessSilence())
        }
        guard case .playbackError(let text)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(text.contains("makes no progress: it left") && text.contains("unanswered for"), "\(text)")
        // Setup, ≤ 0.5 s to the first unanswered request, 1 s, a short TEARDOWN wait: well under 15 s.
        #expect(clock.now - start < .seconds(15))
        #expect(pod.report().requestsUnanswered >= 1)
    }

    /// A receiver that never asks for timing (it plays by its own clock) is healthy: the whole
    /// stream plays bit-exact although it is much longer than the progress timeout.
    @Test func receiverThatNeverAsksForTimingPlaysToTheEnd() async throws {
        let wav = tempPath("pod.wav")
        var config = VirtualHomePod.Configuration(outputPath: wav)
        config.timingRequests = false
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let packets = 625  // 5 s of audio, with a 2 s progress timeout
        let report = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options(progressTimeout: .seconds(2)))
            .stream(RampSource(packets: packets, framesPerPacket: 352))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        #expect(report.timingReplies == 0)
        #expect(podReport.timingRequestsSent == 0)
        #expect(podReport.decryptFailures == 0)
        #expect(matchedFraction(source: rampPCM(packets: packets), captured: try wavData(wav)) == 1.0, "\(podReport)")
    }

    /// No TXT at all: `routeFromInfo` asks `GET /info` and takes AirPlay 2 from its features.
    @Test func routeFromInfoReachesAirPlay2() async throws {
        let wav = tempPath("pod.wav")
        let pod = try await VirtualHomePod.start(.init(outputPath: wav, requireUserAgent: true))
        defer { Task { await pod.stop() } }
        var o = airPlay2Options()
        o.airPlayVersion = .v1
        o.routeFromInfo = true
        let client = RAOPClient(host: "127.0.0.1", port: pod.port, options: o)
        let report = try await client.stream(RampSource(packets: 100, framesPerPacket: 352))
        #expect(client.options.airPlayVersion == .v2)
        #expect(report.packetsSent >= 100)
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        // The probe's GET /info is the only one: the session goes straight to pairing.
        #expect(podReport.requests.prefix(2) == ["GET /info", "POST /pair-pin-start"], "\(podReport.requests)")
        #expect(podReport.requests.filter { $0 == "GET /info" }.count == 1, "\(podReport.requests)")
        #expect(podReport.infoRejected == 0)
        #expect(matchedFraction(source: rampPCM(packets: 100), captured: try wavData(wav)) == 1.0)
    }

    @Test func pairVerifyWithStoredCredentialsAndWithStaleOnes() async throws {
        let pod = try await VirtualHomePod.start(.init(pin: "2468"))
        defer { Task { await pod.stop() } }
        let credentials = try await pairAirPlay2(host: "127.0.0.1", port: pod.port, pin: "2468")
        var o = airPlay2Options()
        o.hapCredentials = credentials
        let report = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: o).stream(RampSource(packets: 30, framesPerPacket: 352))
        #expect(report.packetsSent >= 30)
        #expect(pod.report().pairings == [.pinSetup, .verify, .verify])  // pairAirPlay2 checks with one pair-verify

        var stale = credentials
        stale.clientID = Array("someone-else".utf8)
        o.hapCredentials = stale
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: o).stream(RampSource(packets: 10, framesPerPacket: 352))
        }
        #expect(error?.description.contains("pair") == true, "\(String(describing: error))")
    }

    @Test func pauseResumeVolumeAndStopWhileStreaming() async throws {
        let pod = try await VirtualHomePod.start(.init(timingInterval: .seconds(1)))
        defer { Task { await pod.stop() } }
        let client = RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options())
        let streaming = Task { try await client.stream(EndlessSilence()) }
        // Streaming: audio reaches the receiver (a deadline, not a fixed 800 ms).
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsReceived > 0 }, "\(pod.report())")
        client.pause()
        #expect(await poll(timeout: .seconds(5)) { pod.report().requests.filter { $0 == "enc FLUSH" }.count >= 2 }, "\(pod.report().requests)")
        let beforeResume = pod.report().packetsReceived
        client.resume()
        try await client.setVolume(70)
        // Resumed: audio flows again (stricter than the fixed 600 ms it replaces).
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsReceived > beforeResume }, "\(pod.report())")
        client.stop()
        let report = try await streaming.value
        #expect(report.stopped)
        let r = pod.report()
        #expect(r.requests.filter { $0 == "enc FLUSH" }.count >= 2, "\(r.requests)")  // the first packet, then the pause
        #expect(r.volume.map { abs($0 - RAOPVolume.dB(fromPercent: 70)) < 0.001 } == true)
        #expect(r.requests.last == "enc TEARDOWN")
        #expect(!client.isStreaming)
    }

    @Test func connectionIsReusableWithoutAudio() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        let connection = try await AirPlay2Connection.connect(host: "127.0.0.1", port: pod.port)
        #expect(connection.pairing == .transient)
        #expect(connection.info?["model"]?.string == "AudioAccessory5,1")
        let reply = try await connection.setupSession(timing: .none, remoteControlOnly: true)
        #expect(reply.eventPort > 0)
        let get = try await connection.request("GET_PARAMETER", headers: ["Content-Type": "text/parameters"], body: Array("volume\r\n".utf8))
        #expect(get.status == 200 && get.bodyText.hasPrefix("volume:"))
        await connection.teardown()
        #expect(connection.failure == nil)
        #expect(pod.report().requests.suffix(2) == ["enc GET_PARAMETER", "enc TEARDOWN"])
    }
}

/// Through scripts/peers/udp-loss-relay.py (5 % of the audio datagrams dropped, seeded).
@Suite(.serialized) struct AirPlay2LossRelayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A UDP port that was free a moment ago.
    static func freeUDPPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: a.sin_port))
        guard port > 0 else { throw ATVError.connectionFailed("no free UDP port") }
        return port
    }

    @Test func fivePercentLossThroughTheRelayIsRepaired() async throws {
        let audioPort = try Self.freeUDPPort()
        let relay = try Child("/usr/bin/python3", [
            Self.root.appendingPathComponent("scripts/peers/udp-loss-relay.py").path, "--listen", "0",
            "--target", "127.0.0.1:\(audioPort)", "--loss", "0.05", "--seed", "7", "--only-audio", "--max-seconds", "60"])
        defer { relay.kill() }
        // First line: {"listening": PORT} (a deadline; the wait holds no thread of the concurrency pool).
        let line = (try? await relay.waitForOutput(timeout: 60) { $0.contains("\n") }) ?? relay.describe()
        let digits = line.drop { !$0.isNumber }.prefix { $0.isNumber }
        let relayPort = try #require(Int(digits), "relay said: \(line)")

        let wav = tempPath("pod.wav")
        var config = VirtualHomePod.Configuration(outputPath: wav)
        config.audioPort = audioPort
        config.advertisedAudioPort = relayPort
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let packets = 700
        let report = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options())
            .stream(RampSource(packets: packets, framesPerPacket: 352))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        let matched = matchedFraction(source: rampPCM(packets: packets), captured: try wavData(wav))
        print("AirPlay 2 through udp-loss-relay.py at 5 %: matched \(matched), packets requested \(podReport.packetsRequested), "
              + "recovered \(podReport.packetsRecovered), unrecovered \(podReport.unrecoveredPackets), retransmitted \(report.retransmittedPackets)")
        #expect(report.retransmittedPackets > 0, "\(podReport)")
        #expect(podReport.packetsRequested >= 10, "\(podReport)")  // ~5 % of 700+ datagrams were dropped
        #expect(podReport.decryptFailures == 0)
        // Bit-exact as the README claims: every frame, no packet left unrecovered.
        #expect(podReport.unrecoveredPackets == 0, "\(podReport)")
        #expect(matched == 1.0, "\(podReport)")
    }
}

/// The connection against receivers that misbehave before any AirPlay 2 session exists.
@Suite(.serialized) struct AirPlay2ConnectionFaultTests {
    static let quick = AirPlay2ConnectionOptions(connectTimeout: .seconds(2), requestTimeout: .milliseconds(700))

    @Test func silentReceiverTimesOut() async throws {
        let receiver = try await FakeReceiver.start(.silent)
        defer { Task { await receiver.close() } }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: ATVError.self) {
            _ = try await AirPlay2Connection.connect(host: "127.0.0.1", port: receiver.port, options: Self.quick)
        }
        guard case .timeout(let text)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(text.contains("GET /info"))
        #expect(clock.now - start < .seconds(10))
    }

    @Test func garbageIsAProtocolError() async throws {
        let receiver = try await FakeReceiver.start(.garbage)
        defer { Task { await receiver.close() } }
        let error = await #expect(throws: ATVError.self) {
            _ = try await AirPlay2Connection.connect(host: "127.0.0.1", port: receiver.port, options: Self.quick)
        }
        #expect(error?.isProtocolError == true, "\(String(describing: error))")
    }

    /// AirPlay 2 forced on an AirPlay-1-only receiver: it has no pairing endpoints.
    @Test func airPlay1ReceiverRefusesPairing() async throws {
        let receiver = try await FakeReceiver.start(.normal)
        defer { Task { await receiver.close() } }
        let error = await #expect(throws: ATVError.self) {
            _ = try await AirPlay2Connection.connect(host: "127.0.0.1", port: receiver.port, options: Self.quick)
        }
        guard case .httpError(let status, let text)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(status == 404 && text.contains("/pair-setup"))
    }

    @Test func refusedPortIsAConnectionError() async throws {
        let receiver = try await FakeReceiver.start(.normal)
        let port = receiver.port
        await receiver.close()
        await #expect(throws: ATVError.self) {
            _ = try await AirPlay2Connection.connect(host: "127.0.0.1", port: port, options: Self.quick)
        }
    }
}

/// Encrypted answers that do not authenticate, and a transient PIN the receiver does not accept.
@Suite(.serialized) struct AirPlay2KeyFaultTests {
    @Test(arguments: [TamperingAccessory.Mode.tampered, .wrongKey]) func undecryptableAnswerFailsTheRequest(mode: TamperingAccessory.Mode) async throws {
        let accessory = try await TamperingAccessory.start(mode)
        defer { Task { await accessory.close() } }
        let connection = try await AirPlay2Connection.connect(
            host: "127.0.0.1", port: accessory.port,
            options: AirPlay2ConnectionOptions(requestTimeout: .seconds(2), requestInfo: false))
        #expect(connection.pairing == .transient)
        let error = await #expect(throws: ATVError.self) { _ = try await connection.setupSession(timing: .ntp(timingPort: 9)) }
        guard case .authenticationFailed(let text)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(text.contains("decryption"))
        #expect(connection.failure != nil)
        await connection.close()
    }

    @Test func wrongTransientPINIsAnAuthenticationFailure() async throws {
        let pod = try await VirtualHomePod.start(.init(transientPIN: "1234"))
        defer { Task { await pod.stop() } }
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: "127.0.0.1", port: pod.port, options: airPlay2Options())
                .stream(RampSource(packets: 10, framesPerPacket: 352))
        }
        guard case .authenticationFailed? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(pod.report().pairingFailures.count == 1)
    }
}
