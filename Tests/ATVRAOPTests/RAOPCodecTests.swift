@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
@testable import ATVRAOP
import ATVTestSupport
import Testing

@Suite struct SDPTests {
    @Test func alacAnnounceExact() throws {
        let sdp = SDP.announce(format: RAOPAudioFormat(codec: .alac), sessionID: 3_735_928_559, localIP: "127.0.0.1", remoteIP: "127.0.0.2")
        #expect(sdp == "v=0\r\no=iTunes 3735928559 0 IN IP4 127.0.0.1\r\ns=iTunes\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 AppleLossless\r\na=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100\r\n")
        let parsed = try SDP.parse(sdp)
        #expect(parsed.format == RAOPAudioFormat(codec: .alac, framesPerPacket: 352, sampleRate: 44100, channels: 2, bitDepth: 16))
        #expect(parsed.sessionID == "3735928559" && !parsed.encrypted)
    }

    @Test func l16HasNoFmtp() throws {
        let sdp = SDP.announce(format: RAOPAudioFormat(codec: .l16), sessionID: 1, localIP: "127.0.0.1", remoteIP: "127.0.0.1")
        #expect(sdp.contains("a=rtpmap:96 L16/44100/2\r\n"))
        #expect(!sdp.contains("fmtp"))
        #expect(try SDP.parse(sdp).format == RAOPAudioFormat(codec: .l16))
    }

    @Test func parsesForeignSDP() throws {
        let text = "v=0\no=iTunes 1 0 IN IP4 1.2.3.4\ns=iTunes\nm=audio 0 RTP/AVP 96\na=rtpmap:96 AppleLossless\na=fmtp:96 4096 0 24 40 10 14 1 255 0 0 48000\na=rsaaeskey:AAAA\na=min-latency:11025\n"
        let d = try SDP.parse(text)
        #expect(d.format == RAOPAudioFormat(codec: .alac, framesPerPacket: 4096, sampleRate: 48000, channels: 1, bitDepth: 24))
        #expect(d.encrypted && d.minLatency == 11025)
        #expect(throws: ATVError.self) { try SDP.parse("v=0\r\nm=audio 0 RTP/AVP 96\r\n") }
        #expect(throws: ATVError.self) { try SDP.parse("a=rtpmap:96 mpeg4-generic/44100/2\r\n") }
        #expect(throws: ATVError.self) { try SDP.parse("a=rtpmap:96 AppleLossless\r\na=fmtp:96 352 0 16\r\n") }
        #expect(throws: ATVError.self) { try SDP.parse("a=rtpmap:96 AppleLossless\r\na=fmtp:96 352 x 16 40 10 14 2 255 0 0 44100\r\n") }
    }
}

@Suite struct RTPTests {
    @Test func syncPacketVectorsFromPyatvRun() throws {
        let first = RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: 0,
                                   ntpTime: NTPTime(seconds: 0xEEAB_FC82, fraction: 0x8CD8_0000), rtpTime: 66150)
        #expect(first.bytes == hex("90d4 0007 00000000 eeabfc82 8cd80000 00010266"))
        let next = RAOPSyncPacket(isFirst: false, rtpTimeLessLatency: 44000,
                                  ntpTime: NTPTime(seconds: 0xEEAB_FC83, fraction: 0x8C44_0000), rtpTime: 110_150)
        #expect(next.bytes == hex("80d4 0007 0000abe0 eeabfc83 8c440000 0001ae46"))
        #expect(try RAOPSyncPacket(decoding: hex("90d4 0007 00000000 eeabfc82 8cd80000 00010266")) == first)
        guard case .sync(let decoded) = try RAOPControlPacket(decoding: next.bytes) else { Issue.record("not sync"); return }
        #expect(decoded == next && decoded.rtpTime &- decoded.rtpTimeLessLatency == 66150)
    }

    @Test func audioPacketHeaderAndMarker() throws {
        let p = RAOPAudioPacket(sequenceNumber: 0xFFFF, timestamp: 88200, ssrc: 0xDEADBEEF, marker: true, payload: [1, 2, 3])
        #expect(p.bytes == hex("80e0 ffff 00015888 deadbeef 010203"))
        let q = RAOPAudioPacket(sequenceNumber: 0, timestamp: 88552, ssrc: 0xDEADBEEF, payload: [])
        #expect(q.bytes == hex("8060 0000 000159e8 deadbeef"))
        #expect(try RAOPAudioPacket(decoding: p.bytes) == p)
        #expect(throws: ATVError.self) { try RAOPAudioPacket(decoding: hex("8060 0000")) }
        #expect(throws: ATVError.self) { try RAOPAudioPacket(decoding: hex("8054 0000 00000000 00000000")) }
        #expect(throws: ATVError.self) { try RTPHeader(decoding: hex("4060 0000 00000000 00000000")) }
    }

    @Test func retransmitRequestAndResponse() throws {
        let req = try RAOPRetransmitRequest(decoding: hex("80d5 0001 fffe 0003"))
        #expect(req.firstSequence == 0xFFFE && req.count == 3 && req.sequenceNumbers == [0xFFFE, 0xFFFF, 0])
        #expect(req.bytes == hex("80d5 0001 fffe 0003"))
        let audio = RAOPAudioPacket(sequenceNumber: 0x1234, timestamp: 1, ssrc: 2, payload: [0xAA, 0xBB])
        let res = RAOPRetransmitResponse(packet: audio)
        #expect(res.bytes == hex("80d6 1234 8060 1234 00000001 00000002 aabb"))
        guard case .retransmitResponse(let back) = try RAOPControlPacket(decoding: res.bytes) else { Issue.record("kind"); return }
        #expect(back.packet == audio)
        #expect(throws: ATVError.self) { try RAOPControlPacket(decoding: hex("80d7 0000")) }
        #expect(throws: ATVError.self) { try RAOPControlPacket(decoding: hex("80d5 0001 fffe")) }
    }

    @Test func timingRequestAndReply() throws {
        let request = try RAOPTimingPacket(decoding: hex("80d2 0007 00000000 0000000000000000 0000000000000000 e0000001 80000000"))
        #expect(!request.isReply && request.sendTime == NTPTime(seconds: 0xE000_0001, fraction: 0x8000_0000))
        let reply = RAOPTimingPacket.reply(to: request, receivedAt: NTPTime(raw: 0x0102_0304_0506_0708), sentAt: NTPTime(raw: 0x1112_1314_1516_1718))
        #expect(reply.bytes == hex("80d3 0007 00000000 e0000001 80000000 0102030405060708 1112131415161718"))
        #expect(try RAOPTimingPacket(decoding: reply.bytes) == reply)
        #expect(throws: ATVError.self) { try RAOPTimingPacket(decoding: hex("80d2 0007")) }
    }

    @Test func ntpHelpers() {
        // ts2ntp / ntp2ts with 16-bit precision as pyatv computes them.
        #expect(NTPTime.fromTimestamp(44100, sampleRate: 44100).raw == 1 << 32)
        #expect(NTPTime.fromTimestamp(22050, sampleRate: 44100).raw == 0x8000_0000)
        #expect(NTPTime(raw: 3 << 32).toTimestamp(sampleRate: 44100) == 132_300)
        // Large (absolute) NTP values must not overflow.
        let big = NTPTime(seconds: 0xEEAB_FC82, fraction: 0)
        #expect(big.toTimestamp(sampleRate: 44100) == UInt64(0xEEAB_FC82) * 44100)
        let t = NTPTime(unixSeconds: 0, nanoseconds: 500_000_000)
        #expect(t.seconds == 0x83AA_7E80 && t.fraction == 0x8000_0000)
        #expect(abs(NTPTime(unixTime: 1_700_000_000.25).unixTime - 1_700_000_000.25) < 1e-6)
        let now = NTPTime.now()
        #expect(now.unixTime > 1_600_000_000)
        #expect(abs(now.adding(seconds: 1.5).secondsSince(now) - 1.5) < 1e-9)
    }

    /// Every packet that decodes re-encodes to bytes that decode to the same packet; every
    /// rejection is an input error.
    @Test func fuzzDecodersNeverCrash() {
        let seed = TestSeed.value(default: 7)
        var rng = SplitMix64(seed: seed)
        var decoded = 0, rejected = 0
        func check<P: Equatable>(_ i: Int, _ decode: ([UInt8]) throws -> P, _ encode: (P) -> [UInt8], _ b: [UInt8]) {
            do {
                let p = try decode(b)
                decoded += 1
                #expect(try decode(encode(p)) == p, "seed \(seed) case \(i): \(hexString(b))")
            } catch {
                rejected += 1
                #expect((error as? ATVError)?.isMalformedInput == true, "seed \(seed) case \(i): \(error)")
            }
        }
        for i in 0..<20000 {
            let n = Int.random(in: 0..<48, using: &rng)
            var b = randomBytes(n, using: &rng)
            if n > 1, Bool.random(using: &rng) { b[0] = 0x80; b[1] = [0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0x60, 0xE0].randomElement(using: &rng)! }
            check(i, { try RAOPControlPacket(decoding: $0) }, \.bytes, b)
            check(i, { try RAOPTimingPacket(decoding: $0) }, \.bytes, b)
            check(i, { try RAOPAudioPacket(decoding: $0) }, \.bytes, b)
            do { _ = try RAOPTrackInfo(dmap: b) } catch {
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(decoded > 0 && rejected > 0, "seed \(seed): decoded \(decoded) rejected \(rejected)")
    }
}

@Suite struct VolumeMetadataDigestTests {
    @Test func volumeConversions() {
        #expect(abs(RAOPVolume.dB(fromPercent: 33) - -20.1) < 1e-9)
        #expect(RAOPVolume.dB(fromPercent: 0) == -144)
        #expect(RAOPVolume.dB(fromPercent: 100) == 0)
        #expect(RAOPVolume.dB(fromPercent: 150) == 0)
        #expect(RAOPVolume.percent(fromDB: -144) == 0)
        #expect(RAOPVolume.percent(fromDB: -31) == 0)
        #expect(abs(RAOPVolume.percent(fromDB: -20.1) - 33) < 1e-9)
        #expect(RAOPVolume.percent(fromDB: 0) == 100)
        #expect(RAOPVolume.parameterBody(dB: RAOPVolume.dB(fromPercent: 33)) == "volume: -20.100000\r\n")
        #expect(RAOPVolume.parameterBody(dB: -144) == "volume: -144.000000\r\n")
        #expect(RAOPVolume.parseParameters("volume: -20.100000\r\nprogress: 1/2/3\r\n") == ["volume": "-20.100000", "progress": "1/2/3"])
    }

    @Test func dmapTrackInfoBytes() throws {
        let info = RAOPTrackInfo(title: "T", artist: "Ar", album: "Al")
        #expect(info.dmapBytes == hex("6d6c6974 0000001d 6d696e6d 00000001 54 6173616c 00000002 416c 61736172 00000002 4172"))
        #expect(try RAOPTrackInfo(dmap: info.dmapBytes) == info)
        #expect(try RAOPTrackInfo(dmap: RAOPTrackInfo(title: "Only").dmapBytes) == RAOPTrackInfo(title: "Only"))
        #expect(throws: ATVError.self) { try RAOPTrackInfo(dmap: hex("6d6c6974 000000ff 00")) }
    }

    @Test func progressString() throws {
        let p = RAOPProgress(start: 66150, current: 110_250, end: 66150 + 441_000)
        #expect(p.value == "66150/110250/507150")
        #expect(p.parameterBody == "progress: 66150/110250/507150\r\n")
        #expect(try RAOPProgress(parsing: "progress: 66150/110250/507150") == p)
        #expect(p.seconds().position == 1.0 && p.seconds().duration == 10.0)
        #expect(throws: ATVError.self) { try RAOPProgress(parsing: "1/2") }
    }

    @Test func digestVector() throws {
        let challenge = try RTSPDigestChallenge(header: "Digest realm=\"raop\", nonce=\"4f2a9c1d\"")
        #expect(challenge == RTSPDigestChallenge(realm: "raop", nonce: "4f2a9c1d"))
        // Computed independently with Python hashlib.
        #expect(RTSPDigest.response(username: "pyatv", password: "secret", realm: "raop", nonce: "4f2a9c1d",
                                    method: "ANNOUNCE", uri: "rtsp://127.0.0.1/3735928559") == "125db1b377a01ef2374feaf90f5d83d5")
        let header = RTSPDigest.authorization(username: "pyatv", password: "secret", challenge: challenge,
                                              method: "ANNOUNCE", uri: "rtsp://127.0.0.1/3735928559")
        #expect(header == "Digest username=\"pyatv\", realm=\"raop\", nonce=\"4f2a9c1d\", uri=\"rtsp://127.0.0.1/3735928559\", response=\"125db1b377a01ef2374feaf90f5d83d5\"")
        #expect(RTSPDigest.verify(authorization: header, password: "secret", challenge: challenge, method: "ANNOUNCE"))
        #expect(!RTSPDigest.verify(authorization: header, password: "wrong", challenge: challenge, method: "ANNOUNCE"))
        #expect(throws: ATVError.self) { try RTSPDigestChallenge(header: "Basic realm=\"x\"") }
        #expect(RTSPDigest.md5Hex("") == "d41d8cd98f00b204e9800998ecf8427e")
    }
}
