import ATVAirPlayCore
import ATVCore
import ATVHTTP
@testable import ATVRAOP
import ATVTestSupport
import Testing

/// Buffered audio (type 103) messages and packets, and the 0xD7 time announce
/// (docs/PTP-AND-BUFFERED-AUDIO.md §3.5-§3.8, §4, Appendix B; test names cite its sections). Plist
/// vectors by Python's plistlib; sealed-frame vectors by Python's `cryptography` ChaCha20Poly1305 —
/// neither by our code.
@Suite("AirPlay 2 buffered audio and PTP sync packets")
struct BufferedAudioTests {
    static let key = [UInt8](0 ..< 32)
    static let clockID: UInt64 = 0x0242_ACFF_FE11_0002

    // MARK: Stream SETUP

    @Test("type-103 stream SETUP: audioFormat/ct/spf/shk/audioMode/controlPort, no latencyMin/Max, no dataPort; plistlib's bytes")
    func streamSetup() throws {
        let setup = BufferedAudioStreamRequest(format: .alac44100x16Stereo, controlPort: 6001, sharedKey: Self.key,
                                               streamConnectionID: 0x1234_5678)
        let body = try setup.body()
        let stream = try #require(body["streams"]?.array?.first)
        #expect(stream["latencyMin"] == nil && stream["latencyMax"] == nil && stream["dataPort"] == nil)
        #expect(BinaryPlist.encode(body) == hex(
            "62706c6973743030d101025773747265616d73a103db0405060708090a0b0c0d0e0f101112131415161718195b617564696f466f726d"
            + "617459617564696f4d6f64655b636f6e74726f6c506f72745263745769734d656469615373686b537370665273725f101273747265"
            + "616d436f6e6e656374696f6e49445f1017737570706f72747344796e616d696353747265616d4944547479706512000400005764"
            + "656661756c741117711002094f1020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f11016011ac"
            + "441212345678081067080b13152c38424e51595d61647993989da5a8aaabced1d4d9da0000000000000101000000000000001a00"
            + "0000000000000000000000000000dc"))
        let request = try setup.request(uri: "rtsp://192.168.1.10/1234")
        #expect(request.method == "SETUP" && request.headers["Content-Type"] == "application/x-apple-binary-plist")
        #expect(try BufferedAudioStreamRequest(parsing: BinaryPlist.decode(request.body)) == setup)

        for format in [BufferedAudioFormat.aacLC44100Stereo, .aacLC48000Stereo, .alac48000x24Stereo] {
            let s = try #require(try BufferedAudioStreamRequest(format: format, controlPort: 1, sharedKey: Self.key,
                                                                streamConnectionID: 1).body()["streams"]?.array?.first)
            #expect(s["audioFormat"] == .int(format.audioFormat!))
            #expect(s["ct"] == .int(format.isAAC ? 4 : 2))
            #expect(s["spf"] == .int(format.isAAC ? 1024 : 352))
            #expect(s["sr"] == .int(Int64(format.sampleRate)))
        }
        #expect(throws: ATVError.self) {
            try BufferedAudioStreamRequest(format: .aacLC48000Surround51, controlPort: 1, sharedKey: Self.key, streamConnectionID: 1).body()
        }
        #expect(throws: ATVError.self) {
            try BufferedAudioStreamRequest(format: .aacLC44100Stereo, controlPort: 1, sharedKey: [1, 2], streamConnectionID: 1).body()
        }
    }

    @Test("type-103 stream SETUP reply read by key: shairport-sync's, openairplay's, controlPort first, none")
    func streamSetupReply() throws {
        // shairport-sync: {type 103, dataPort (TCP), audioBufferSize 8388608, controlPort}.
        let sps = try BufferedAudioStreamReply(parsing: BinaryPlist.encode(.dict(["streams": .array([.dict([
            "controlPort": .int(6002), "type": .int(103), "dataPort": .int(7100), "audioBufferSize": .int(8_388_608)])])])))
        #expect(sps == BufferedAudioStreamReply(dataPort: 7100, controlPort: 6002, audioBufferSize: 8_388_608))
        // openairplay adds streamID; a stream list with a type-96 stream first.
        let oar = try BufferedAudioStreamReply(parsing: BinaryPlist.encode(.dict(["streams": .array([
            .dict(["type": .int(96), "dataPort": .int(1), "controlPort": .int(2)]),
            .dict(["type": .int(103), "dataPort": .int(7200), "audioBufferSize": .int(4096), "streamID": .int(1)])])])))
        #expect(oar == BufferedAudioStreamReply(dataPort: 7200, controlPort: nil, audioBufferSize: 4096, streamID: 1))
        #expect(oar.effectiveAudioBufferSize == 4096)
        let plain = try BufferedAudioStreamReply(parsing: BinaryPlist.encode(.dict(["streams": .array([.dict(["dataPort": .int(7300)])])])))
        #expect(plain.effectiveAudioBufferSize == 8_388_608)
        #expect(try BufferedAudioStreamReply(parsing: BinaryPlist.encode(sps.body)) == sps)
        #expect(throws: ATVError.self) { try BufferedAudioStreamReply(parsing: BinaryPlist.encode(.dict(["streams": .array([])]))) }
        #expect(throws: ATVError.self) {
            try BufferedAudioStreamReply(parsing: BinaryPlist.encode(.dict(["streams": .array([.dict(["type": .int(103), "dataPort": .int(0)])])])))
        }
        #expect(throws: ATVError.self) { try BufferedAudioStreamReply(parsing: []) }
    }

    // MARK: SETRATEANCHORTIME / FLUSHBUFFERED

    @Test("network time: ns ↔ 2^-64 s fraction (reference example 890123456 ns → 0xE3DF217CEC28A178)")
    func networkTime() {
        let t = AirPlay2NetworkTime(nanoseconds: 1_234_567_890_123_456)
        #expect(t.seconds == 1_234_567)
        #expect(t.fraction == 0xE3DF_217C_EC28_A178)
        #expect(t.nanoseconds == 1_234_567_890_123_456)
        for ns: UInt64 in [0, 1, 999_999_999, 1_000_000_000, 500_000_000, 18_446_744_073_709_551_615 / 2] {
            #expect(AirPlay2NetworkTime(nanoseconds: ns).nanoseconds == ns)
        }
        #expect(AirPlay2NetworkTime(seconds: 1, fraction: 1 << 63).nanoseconds == 1_500_000_000)
    }

    @Test("SETRATEANCHORTIME: integer rate, rtpTime, network time, our clock id as timeline, flags 0; plistlib's bytes")
    func rateAnchor() throws {
        // The example body of docs/PTP-AND-BUFFERED-AUDIO.md Appendix B (§3.6).
        let play = BufferedRateAnchor.play(rtpTime: 11_259_375, networkTime: AirPlay2NetworkTime(seconds: 1_234_569, fraction: 0),
                                           timelineID: Self.clockID)
        let request = play.request(uri: "rtsp://192.168.1.10/1234")
        #expect(request.method == "SETRATEANCHORTIME")
        #expect(request.headers["Content-Type"] == "application/x-apple-binary-plist")
        #expect(request.body == hex("62706c6973743030d6010203040506070708090a0b5f10106e6574776f726b54696d65466c6167735f10"
            + "0f6e6574776f726b54696d65467261635f100f6e6574776f726b54696d65536563735f10156e6574776f726b54696d6554696d656c"
            + "696e65494454726174655772747054696d651000120012d689130242acfffe11000210011200abcdef0815283a4c646971737881"
            + "830000000000000101000000000000000c00000000000000000000000000000088"))
        #expect(play.body["rate"] == .int(1))
        // 64-bit fields with the top bit set are written as negative integers; rtpTime as unsigned.
        let high = BufferedRateAnchor.play(rtpTime: 0xFFFF_FFFF, networkTimeNanoseconds: 1_234_567_890_123_456,
                                           timelineID: 0x8000_0000_0000_0001)
        #expect(BinaryPlist.encode(high.body) == hex("62706c6973743030d60102030405060708090a0b0c5f10106e6574776f726b54696d"
            + "65466c6167735f100f6e6574776f726b54696d65467261635f100f6e6574776f726b54696d65536563735f10156e6574776f726b54"
            + "696d6554696d656c696e65494454726174655772747054696d65100013e3df217cec28a178120012d6871380000000000000011001"
            + "12ffffffff0815283a4c646971737c818a8c0000000000000101000000000000000d00000000000000000000000000000091"))
        #expect(try BufferedRateAnchor(parsing: BinaryPlist.decode(BinaryPlist.encode(high.body))) == high)
        // Pause is {rate: 0} alone.
        #expect(BinaryPlist.encode(BufferedRateAnchor.pause.body)
            == hex("62706c6973743030d1010254726174651000080b100000000000000101000000000000000300000000000000000000000000000012"))
        #expect(try BufferedRateAnchor(parsing: .dict(["rate": .int(0)])) == .pause)
        // The receiver's reading: a real rate is refused (shairport-sync reads only integers), bit 0 decides.
        #expect(throws: ATVError.self) { try BufferedRateAnchor(parsing: .dict(["rate": .real(1)])) }
        #expect(throws: ATVError.self) { try BufferedRateAnchor(parsing: .dict(["rate": .int(1), "rtpTime": .int(5)])) }
        #expect(try BufferedRateAnchor(parsing: .dict(["rate": .int(2)])) == .pause)
    }

    @Test("FLUSHBUFFERED: immediate (until only) and deferred (from + until), 23-bit sequences; plistlib's bytes")
    func flush() throws {
        let now = BufferedFlush(untilSequence: 0x123, untilTimestamp: 11_259_375)
        #expect(now.isImmediate)
        let request = now.request(uri: "rtsp://192.168.1.10/1234")
        #expect(request.method == "FLUSHBUFFERED")
        #expect(request.body == hex("62706c6973743030d2010203045d666c757368556e74696c5365715c666c757368556e74696c5453110123"
            + "1200abcdef080d1b282b0000000000000101000000000000000500000000000000000000000000000030"))
        let deferred = BufferedFlush(untilSequence: 0x123, untilTimestamp: 11_259_375, fromSequence: 0x100, fromTimestamp: 90000)
        #expect(BinaryPlist.encode(deferred.body) == hex("62706c6973743030d401020304050607085c666c75736846726f6d5365715b66"
            + "6c75736846726f6d54535d666c757368556e74696c5365715c666c757368556e74696c54531101001200015f901101231200abcdef"
            + "08111e2a3845484d500000000000000101000000000000000900000000000000000000000000000055"))
        #expect(try BufferedFlush(parsing: deferred.body) == deferred)
        #expect(try BufferedFlush(parsing: now.body) == now)
        #expect(BufferedFlush(untilSequence: 0x80_0005, untilTimestamp: 0).untilSequence == 5)
        #expect(throws: ATVError.self) { try BufferedFlush(parsing: .dict(["flushUntilSeq": .int(1)])) }
        #expect(throws: ATVError.self) { try BufferedFlush(parsing: .dict(["flushUntilSeq": .string("1"), "flushUntilTS": .int(1)])) }
    }

    // MARK: Packets

    @Test("SSRC format codes (§4.4): every code maps back, unknown codes are nil")
    func formatCodes() {
        let expected: [(BufferedAudioFormat, UInt32, Int, Int, Int)] = [
            (.aacLC44100Stereo, 0x1600_0000, 1024, 44_100, 2), (.aacLC48000Stereo, 0x1700_0000, 1024, 48_000, 2),
            (.aacLC48000Surround51, 0x2700_0000, 1024, 48_000, 6), (.aacLC48000Surround71, 0x2800_0000, 1024, 48_000, 8),
            (.alac48000x24Stereo, 0x1500_0000, 352, 48_000, 2), (.alac44100x16Stereo, 0x0000_FACE, 352, 44_100, 2),
        ]
        for (format, ssrc, spf, rate, channels) in expected {
            #expect(format.ssrc == ssrc && format.framesPerPacket == spf && format.sampleRate == rate && format.channels == channels)
            #expect(BufferedAudioFormat(ssrc: ssrc) == format)
        }
        #expect(BufferedAudioFormat(ssrc: 0) == nil)
        #expect(BufferedAudioFormat(ssrc: 0x1234_5678) == nil)
        #expect(BufferedAudioFormat.alac48000x24Stereo.bitsPerSample == 24)
    }

    static let framePayload: [UInt8] = [0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C]
    /// seq 0x000123, rtp 0x00ABCDEF, payload `framePayload`, key 0…31, nonce counter 5 — per format.
    static let frameVectors: [(BufferedAudioFormat, String)] = [
        (.aacLC44100Stereo, "002c8000012300abcdef160000000218926ac939ad5c7ebeb6b83f8d5741dc5ce5737b990500000000000000"),
        (.aacLC48000Stereo, "002c8000012300abcdef170000000218926ac939b16b5ec86db3e3d877010b7d6551e7d50500000000000000"),
        (.aacLC48000Surround51, "002c8000012300abcdef270000000218926ac939f65b5f66de5e23937c03f77f6729a59c0500000000000000"),
        (.aacLC48000Surround71, "002c8000012300abcdef280000000218926ac939fa6a3f709559c7de9cc325a0e70611d90500000000000000"),
        (.alac48000x24Stereo, "002c8000012300abcdef150000000218926ac939a94d9eb4ffbd9b413781ad3c65960f5d0500000000000000"),
        (.alac44100x16Stereo, "002c8000012300abcdef0000face0218926ac93949533504e01dda2d73903f3524773bd10500000000000000"),
    ]

    @Test("a sealed frame per format: length prefix, RTP header with the SSRC code, ChaCha20-Poly1305 (AAD = bytes 4..11), nonce tail")
    func frameVectorsPerFormat() throws {
        for (format, vector) in Self.frameVectors {
            var cipher = try AirPlay2AudioCipher(key: Self.key, counter: 5)
            let packet = BufferedAudioPacket(sequenceNumber: 0x123, timestamp: 0x00AB_CDEF, format: format, payload: Self.framePayload)
            let frame = try packet.frame(sealingWith: &cipher)
            #expect(frame == hex(vector), "\(format)")
            #expect(cipher.counter == 6)
            var deframer = BufferedAudioDeframer()
            deframer.append(frame)
            let rtp = try #require(try deframer.next())
            #expect(try BufferedAudioPacket(opening: rtp, key: Self.key) == packet)
            #expect(try BufferedAudioHeader(decoding: rtp).ssrc == format.ssrc)
        }
    }

    @Test("Appendix B skeleton: 23-bit sequence in bytes 1..3 (top bit masked), length counts itself")
    func headerLayout() throws {
        let packet = BufferedAudioPacket(sequenceNumber: 0xFF_FFFF, timestamp: 1, ssrc: 2, payload: [])
        #expect(packet.sequenceNumber == 0x7F_FFFF)
        #expect(packet.header == [0x80, 0x7F, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0, 0, 2])
        var cipher = try AirPlay2AudioCipher(key: Self.key)
        let frame = try packet.frame(sealingWith: &cipher)
        #expect(frame.count == 2 + 12 + 16 + 8)
        #expect(Int(frame[0]) << 8 | Int(frame[1]) == frame.count)
        // The top bit of byte 1, set by some senders, is ignored when reading.
        var raw = Array(frame[2...])
        raw[1] |= 0x80
        #expect(try BufferedAudioHeader(decoding: raw).sequenceNumber == 0x7F_FFFF)
        let big = BufferedAudioPacket(sequenceNumber: 0, timestamp: 0, ssrc: 0, payload: [UInt8](repeating: 0, count: 16_384))
        #expect(throws: ATVError.self) { try big.frame(sealingWith: &cipher) }
    }

    @Test("tampered or wrong-key packets fail authentication; nonces never repeat")
    func sealingFailsClosed() throws {
        var cipher = try AirPlay2AudioCipher(key: Self.key)
        let a = try BufferedAudioPacket(sequenceNumber: 1, timestamp: 352, format: .alac44100x16Stereo, payload: [1, 2, 3]).frame(sealingWith: &cipher)
        let b = try BufferedAudioPacket(sequenceNumber: 1, timestamp: 352, format: .alac44100x16Stereo, payload: [1, 2, 3]).frame(sealingWith: &cipher)
        #expect(a != b)  // same content, different nonce
        var tampered = Array(a[2...])
        tampered[6] ^= 1  // the timestamp is authenticated (AAD)
        #expect(throws: ATVError.self) { try BufferedAudioPacket(opening: tampered, key: Self.key) }
        #expect(throws: ATVError.self) { try BufferedAudioPacket(opening: Array(a[2...]), key: [UInt8](repeating: 9, count: 32)) }
        #expect(throws: ATVError.self) { try BufferedAudioPacket(opening: [0x80, 0, 0], key: Self.key) }
    }

    @Test("deframer: any split of a stream of frames gives the same packets; garbage lengths fail and stay failed")
    func deframer() throws {
        var rng = SplitMix64(seed: TestSeed.value(default: 103))
        var cipher = try AirPlay2AudioCipher(key: Self.key)
        var stream: [UInt8] = []
        var packets: [BufferedAudioPacket] = []
        for i in 0 ..< 40 {
            let p = BufferedAudioPacket(sequenceNumber: UInt32(0x7F_FFF0 + i), timestamp: UInt32(352 * i), format: .aacLC44100Stereo,
                                        payload: randomBytes(Int.random(in: 0 ... 700, using: &rng), using: &rng))
            packets.append(p)
            stream += try p.frame(sealingWith: &cipher)
        }
        for _ in 0 ..< 20 {
            var deframer = BufferedAudioDeframer()
            var got: [BufferedAudioPacket] = []
            var i = 0
            while i < stream.count {
                let n = Int.random(in: 1 ... 900, using: &rng)
                deframer.append(stream[i ..< min(i + n, stream.count)])
                i += n
                while let rtp = try deframer.next() { got.append(try BufferedAudioPacket(opening: rtp, key: Self.key)) }
            }
            #expect(got == packets)
            #expect(deframer.pendingByteCount == 0)
        }
        // Sequence numbers wrap at 2^23.
        #expect(packets[16].sequenceNumber == 0)

        for bad: [UInt8] in [[0x00, 0x00], [0x00, 0x01], [0x00, 0x25], [0x40, 0x01], [0xFF, 0xFF]] {
            var deframer = BufferedAudioDeframer()
            deframer.append(bad + [UInt8](repeating: 0, count: 64))
            #expect(throws: ATVError.self) { try deframer.next() }
            #expect(throws: ATVError.self) { try deframer.next() }
        }
        var partial = BufferedAudioDeframer()
        partial.append([0x00])
        #expect(try partial.next() == nil)
        partial.append([0x28])
        #expect(try partial.next() == nil)
        #expect(partial.pendingByteCount == 2)
    }

    // MARK: 0xD7

    @Test("0xD7 time announce: Appendix B's bytes (frame 0xABCDEF audible at 1234567.890123456 s, +11035, +77175)")
    func timeAnnounce() throws {
        let packet = PTPTimeAnnouncePacket(isFirst: true, frame: 0x00AB_CDEF, audibleAt: 1_234_567_890_123_456, clockID: Self.clockID)
        let bytes = hex("90 d7 00 06 00 ab f9 0a 00 04 62 d5 3c 8a ba c0 00 ad 26 81 02 42 ac ff fe 11 00 02")
        #expect(packet.bytes == bytes)
        let decoded = try PTPTimeAnnouncePacket(decoding: bytes)
        #expect(decoded == packet)
        #expect(decoded.audibleFrame() == 0x00AB_CDEF)
        #expect(decoded.rtpTimeAtSend &- decoded.rtpTime == 77175)
        var later = packet
        later.isFirst = false
        #expect(later.bytes[0] == 0x80)
        #expect(try PTPTimeAnnouncePacket(decoding: later.bytes).isFirst == false)
        // OwnTone's convention and wrap-around of the 32-bit RTP time.
        let ot = PTPTimeAnnouncePacket(isFirst: false, frame: 0xFFFF_FFF0, audibleAt: 5, clockID: 1,
                                       latency: PTPTimeAnnouncePacket.ownToneLatencyFrames)
        #expect(ot.rtpTime == 11_025 - 16)
        #expect(ot.audibleFrame(latency: 11_025) == 0xFFFF_FFF0)
        // Anything else is refused: wrong size, type, length field, version.
        #expect(throws: ATVError.self) { try PTPTimeAnnouncePacket(decoding: bytes.dropLast()) }
        for (i, v) in [(1, UInt8(0xD4)), (3, 7), (0, 0x10)] {
            var b = bytes
            b[i] = v
            #expect(throws: ATVError.self) { try PTPTimeAnnouncePacket(decoding: b) }
        }
    }
}
