import ATVTestSupport
import ATVCore
import Foundation
import Testing
import CFFmpeg
@testable import ATVAudio

private func packets(_ pcm: [UInt8], size: Int = 352) -> [PCMPacket] {
    stride(from: 0, to: pcm.count, by: size * 4).map { PCMPacket(bytes: Array(pcm[$0..<min(pcm.count, $0 + size * 4)])) }
}

@Suite("ALAC")
struct ALACTests {
    @Test("standard magic cookie layout (36 bytes, fmtp 352 0 16 40 10 14 2 255 0 0 44100)")
    func cookie() throws {
        let c = ALACMagicCookie.make()
        #expect(c == [0, 0, 0, 36, 0x61, 0x6C, 0x61, 0x63, 0, 0, 0, 0,
                      0, 0, 0x01, 0x60, 0, 16, 40, 10, 14, 2, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAC, 0x44])
        #expect(ALACMagicCookie.make(fmtp: "352 0 16 40 10 14 2 255 0 0 44100") == c)
        #expect(ALACMagicCookie.make(fmtp: "96 352 0 16 40 10 14 2 255 0 0 44100") == c)
        #expect(ALACMagicCookie.make(fmtp: "352 0 16") == nil)
        #expect(ALACMagicCookie.normalized(Array(c[12...])) == c)
    }

    @Test("FFmpeg ALAC encoder: 352-frame packets round-trip bit-exact, with its cookie and the standard one")
    func encoderRoundTrip() throws {
        // 1 s of noise + a 100-frame tail (a short last packet, encoded short).
        let pcm = noisyPCM(frames: 44_100 + 100 - 44_100 % 352)
        let enc = try ALACEncoder()
        #expect(enc.magicCookie.count == 36)
        #expect(Array(enc.magicCookie[4..<8]) == Array("alac".utf8))
        #expect(ALACMagicCookie.fields(enc.magicCookie).frameLength == 352)
        let input = packets(pcm)
        #expect(input.last?.frames == 100)
        let frames = try input.map { try enc.encode($0) }
        #expect(frames.allSatisfy { !$0.isEmpty })
        let total = frames.reduce(0) { $0 + $1.count }
        #expect(total < pcm.count)   // it compresses
        for cookie in [enc.magicCookie, nil] {
            let dec = try ALACDecoder(magicCookie: cookie)
            let out = try frames.map { try dec.decode($0) }
            #expect(out.map(\.frames) == input.map(\.frames))
            #expect(joined(out) == pcm)
        }
        // Silence and full-scale extremes survive too.
        var extremes = [UInt8](repeating: 0, count: 352 * 4)
        for i in stride(from: 0, to: extremes.count, by: 2) { extremes[i] = i % 8 < 4 ? 0xFF : 0x00; extremes[i + 1] = i % 8 < 4 ? 0x7F : 0x80 }
        let dec = try ALACDecoder()
        for p in [PCMPacket.silence(frames: 352), PCMPacket(bytes: extremes)] {
            #expect(try dec.decode(try enc.encode(p)) == p)
        }
    }

    @Test("FFmpeg ALAC encoder: compressed frames use the fixed prediction order, and decode bit-exact")
    func encoderPredictionOrder() throws {
        // A two-tone signal compresses (no verbatim fallback), so the frame carries its predictors.
        var pcm: [UInt8] = []
        for i in 0..<(352 * 4) {
            let t = Double(i) / 44_100
            let l = Int16(9_000 * sin(2 * .pi * 220 * t)), r = Int16(7_000 * sin(2 * .pi * 331 * t))
            for v in [l, r] { pcm += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
        }
        let enc = try ALACEncoder()
        let dec = try ALACDecoder(magicCookie: enc.magicCookie)
        for p in packets(pcm) {
            let frame = try enc.encode(p)
            #expect(try dec.decode(frame) == p)
            // Bits, MSB first: tag 3, instance 4, unused 12, has-size 1, shift 2, verbatim 1, the
            // sample count (32) if has-size; then the interlacing shift 8 and left weight 8; per
            // channel: prediction type 4, quantization 4, rice modifier 3, order 5.
            func bits(_ at: Int, _ n: Int) -> Int {
                (at..<(at + n)).reduce(0) { $0 << 1 | Int(frame[$1 / 8] >> (7 - UInt8($1 % 8)) & 1) }
            }
            #expect(bits(0, 3) == 1)      // a channel pair
            #expect(bits(22, 1) == 0)     // compressed, not verbatim
            let body = 23 + (bits(19, 1) == 1 ? 32 : 0)
            if bits(19, 1) == 1 { #expect(bits(23, 32) == 352) }
            #expect(bits(body + 27, 5) == ALACEncoder.predictionOrder)          // left channel
            #expect(bits(body + 32 + 16 * ALACEncoder.predictionOrder + 11, 5) == ALACEncoder.predictionOrder)  // right, after left's coefficients
            #expect(frame.count < 352 * 4 / 2)
        }
    }

    @Test("VerbatimALAC: header bits and bit-exact decoding by FFmpeg")
    func verbatim() throws {
        let pcm = noisyPCM(frames: 352 * 20 + 17, seed: 3)
        let input = packets(pcm)
        let frames = input.map { VerbatimALAC.encode($0) }
        // 352 frames: 23 header bits + 352·2·16 sample bits + 3 end bits = 11290 bits → 1412 bytes.
        #expect(frames[0].count == 1412)
        // 001 0000 000000000000 0 00 1 → 0x20 0x00 0x02|first sample bit.
        #expect(frames[0][0] == 0x20 && frames[0][1] == 0x00 && frames[0][2] & 0xFE == 0x02)
        // The first sample (s16le bytes b0 b1) follows MSB-first from bit 23.
        let s0 = UInt16(pcm[1]) << 8 | UInt16(pcm[0])
        #expect(frames[0][2] & 1 == UInt8(s0 >> 15))
        #expect(frames[0][3] == UInt8((s0 >> 7) & 0xFF))
        // Short packet: has-size bit set, 32-bit count 17 follows the 23-bit header.
        let last = frames.last!
        #expect(last[0] == 0x20 && last[1] == 0x00 && last[2] == 0x12)
        #expect(last.count == (23 + 32 + 17 * 32 + 3 + 7) / 8)
        let dec = try ALACDecoder()
        let out = try frames.map { try dec.decode($0) }
        #expect(out.map(\.frames) == input.map(\.frames))
        #expect(joined(out) == pcm)
    }

    @Test("ALACDecoder rejects garbage without crashing (fuzz)")
    func decoderFuzz() throws {
        let dec = try ALACDecoder()
        av_log_set_level(AV_LOG_QUIET)   // FFmpeg would log every rejected frame
        defer { av_log_set_level(AV_LOG_ERROR) }
        let seed = TestSeed.value(default: 42)
        var rng = SplitMix64(seed: seed)
        for i in 0..<2000 {
            let n = Int.random(in: 0...1500, using: &rng)
            let bytes = randomBytes(n, using: &rng)
            do {
                let p = try dec.decode(bytes)
                #expect(p.bytes.count == p.frames * 4, "seed \(seed) case \(i)")
                #expect(p.frames <= 352, "seed \(seed) case \(i)")
            } catch {
                #expect((error as? ATVError)?.isMalformedInput == true, "seed \(seed) case \(i): \(error)")
            }
        }
        // Valid frames still decode after all that garbage.
        let p = PCMPacket(bytes: noisyPCM(frames: 352))
        #expect(try dec.decode(VerbatimALAC.encode(p)) == p)
        #expect(throws: ATVError.self) { try ALACDecoder(magicCookie: [1, 2, 3]) }
    }

    @Test("the ffmpeg CLI's alac encoding (the benchmark's baseline) is lossless and uses 4096-frame packets")
    func cliBaseline() async throws {
        let pcm = noisyPCM(frames: 352 * 50, seed: 11)
        let raw = try await Fixtures.shared.file("alac-in.s16le") { try Data(pcm).write(to: URL(fileURLWithPath: $0)) }
        let m4a = try await Fixtures.shared.file("cli-alac.m4a") { path in
            try ffmpeg(["-f", "s16le", "-ar", "44100", "-ac", "2", "-i", raw, "-c:a", "alac", "-frame_size", "352", path])
        }
        #expect(try await cliPCM(m4a) == pcm)
        // -frame_size 352 is ignored: 17600 frames come out as 4 packets of 4096 and one of 1216.
        let crc = String(decoding: try await runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", m4a, "-c:a", "copy", "-f", "framecrc", "-"]), as: UTF8.self)
        let sizes = crc.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line -> Int? in
            let f = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            return f.count >= 4 ? Int(f[3]) : nil
        }
        #expect(sizes == [4096, 4096, 4096, 4096, 1216])
    }
}

@Suite("WAV")
struct WAVTests {
    @Test("WAVWriter writes a header, appends PCM and fixes sizes on close")
    func writer() async throws {
        let path = Fixtures.shared.dir + "/written-\(UUID().uuidString).wav"
        let pcm = noisyPCM(frames: 44_100 * 2 + 123, seed: 5)   // > 1 s: an intermediate header update happens
        var w = try WAVWriter(path: path)
        for p in packets(pcm) { try w.write(p) }
        #expect(w.dataBytes == pcm.count)
        // Before close the header already covers at least the first second (crash-safe).
        let mid = try WAVFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(mid.data.count >= 44_100 * 4)
        try w.close()
        let f = try WAVFile(path: path)
        #expect(f.sampleRate == 44_100 && f.channels == 2 && f.bitsPerSample == 16 && f.formatTag == 1)
        #expect(f.data == pcm)
        #expect(f.frames == pcm.count / 4)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 44 + pcm.count)
        #expect(Array(bytes[4..<8]) == [UInt8](WAVWriter.header(dataBytes: pcm.count)[4..<8]))
        // FFmpeg agrees (and our decoder reads it back bit-exact).
        #expect(try await cliPCM(path) == pcm)
        #expect(joined(try await decodeAll(try await AudioDecoder.open(.file(path)))) == pcm)
        try? FileManager.default.removeItem(atPath: path)
    }

    @Test("WAVFile parser never crashes on garbage (fuzz)")
    func parserFuzz() throws {
        let seed = TestSeed.value(default: 9)
        var rng = SplitMix64(seed: seed)
        let good = WAVWriter.header(dataBytes: 8) + [1, 2, 3, 4, 5, 6, 7, 8]
        #expect(try WAVFile(bytes: good).data == [1, 2, 3, 4, 5, 6, 7, 8])
        for i in 0..<5000 {
            var b: [UInt8]
            if i % 2 == 0 {
                b = good
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            } else {
                b = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            do {
                let f = try WAVFile(bytes: b)
                #expect(f.data.count <= b.count, "seed \(seed) case \(i)")
            } catch {
                #expect((error as? ATVError)?.isMalformedInput == true, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(throws: ATVError.self) { try WAVFile(bytes: Array("RIFF....WAVEjunk".utf8)) }
    }
}
