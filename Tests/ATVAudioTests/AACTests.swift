import ATVCore
import Foundation
import Testing
@testable import ATVAudio

/// A deterministic tonal test signal (s16le stereo): a three-note chord per channel under a slow
/// swell, peaks about −6 dBFS — music-like content a perceptual codec keeps well (white noise it
/// does not try to keep sample-exact).
func chordPCM(frames: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: frames * 4)
    let notes: [[Double]] = [[220, 554.37, 1318.5], [329.63, 880, 2489]]
    for i in 0..<frames {
        let t = Double(i) / 44_100
        let swell = 0.6 + 0.4 * sin(2 * .pi * 0.5 * t)
        for c in 0..<2 {
            let s = notes[c].reduce(0.0) { $0 + sin(2 * .pi * $1 * t) } / 3 * 16_000 * swell
            let u = UInt16(bitPattern: Int16(clamping: Int(s.rounded())))
            out[i * 4 + c * 2] = UInt8(u & 0xFF)
            out[i * 4 + c * 2 + 1] = UInt8(u >> 8)
        }
    }
    return out
}

/// Samples (both channels interleaved) of s16le bytes.
func samples(_ pcm: some Collection<UInt8>) -> [Int16] {
    let a = Array(pcm)
    return stride(from: 0, to: a.count - 1, by: 2).map { Int16(bitPattern: UInt16(a[$0]) | UInt16(a[$0 + 1]) << 8) }
}

/// Signal-to-noise ratio of `decoded` against `reference` in dB (same length).
func snr(_ reference: [Int16], _ decoded: [Int16]) -> Double {
    var signal = 0.0, noise = 0.0
    for (r, d) in zip(reference, decoded) {
        signal += Double(r) * Double(r)
        noise += (Double(d) - Double(r)) * (Double(d) - Double(r))
    }
    return noise == 0 ? .infinity : 10 * log10(signal / noise)
}

@Suite("AAC")
struct AACTests {
    /// Encodes `pcm` in 1024-frame packets, then flushes; returns the units.
    static func encode(_ pcm: [UInt8], encoder: AACEncoder) throws -> [AACAccessUnit] {
        var units: [AACAccessUnit] = []
        for start in stride(from: 0, to: pcm.count, by: 1024 * 4) {
            units += try encoder.encode(PCMPacket(bytes: Array(pcm[start..<min(pcm.count, start + 1024 * 4)])))
        }
        return units + (try encoder.flush())
    }

    /// FFmpeg's encoder appends the backward-compatible "no SBR" signalling (sync extension
    /// 0x2B7, object type 5, flag 0: `56 E5 00`) to the two bytes.
    @Test("AudioSpecificConfig of AAC-LC 44.1 kHz stereo is 12 10, the encoder's too")
    func audioSpecificConfig() throws {
        #expect(AACDecoder.audioSpecificConfig(sampleRate: 44_100, channels: 2) == [0x12, 0x10])
        #expect(AACDecoder.audioSpecificConfig(sampleRate: 48_000, channels: 2) == [0x11, 0x90])
        let enc = try AACEncoder()
        #expect(Array(enc.audioSpecificConfig.prefix(2)) == [0x12, 0x10])
        #expect(enc.delay == 1024)
    }

    /// 3 s + a 300-frame tail through FFmpeg's aac encoder and back through its decoder: raw units
    /// (no ADTS sync word), one per 1024-frame packet plus the priming unit, presentation frames
    /// −1024, 0, 1024, … contiguous; the decoded stream placed by them lines up with the source
    /// at lag 0 (cross-correlation over ±2048 frames) and its SNR is at least 28 dB.
    ///
    /// The bound: AAC-LC at 256 kbit/s is perceptually transparent but not waveform-exact (its
    /// quantisation noise follows the masking threshold); on this chord FFmpeg 5.1's encoder keeps
    /// 35.6 dB. 28 dB leaves room for other FFmpeg versions and still fails for a misplaced unit
    /// (a 1024-frame shift of this signal is near 0 dB) or a wrong scale or channel order.
    @Test("FFmpeg AAC-LC round trip: frame count, alignment, SNR")
    func roundTrip() throws {
        let frames = 3 * 44_100 + 300 - (3 * 44_100) % 1024
        let pcm = chordPCM(frames: frames)
        let enc = try AACEncoder()
        let units = try Self.encode(pcm, encoder: enc)
        let packetsIn = (frames + 1023) / 1024
        #expect(units.count == packetsIn + 1)
        #expect(units.map(\.presentationFrame) == (0...packetsIn).map { Int64($0 - 1) * 1024 })
        // Raw access units: no ADTS header (sync word 0xFFF), within AAC-LC's 6144 bits per channel.
        #expect(units.allSatisfy { !($0.bytes.count >= 2 && $0.bytes[0] == 0xFF && $0.bytes[1] & 0xF0 == 0xF0) })
        #expect(units.allSatisfy { !$0.bytes.isEmpty && $0.bytes.count <= 768 * 2 })

        let dec = try AACDecoder(audioSpecificConfig: enc.audioSpecificConfig)
        var decoded: [UInt8] = []
        for unit in units {
            let out = try dec.decode(unit.bytes)
            #expect(out.frames == 1024)
            decoded += out.bytes
        }
        // Unit k's output is source frames from its presentation frame: drop the priming unit.
        let aligned = Array(decoded.dropFirst(enc.delay * 4).prefix(frames * 4))
        #expect(aligned.count == frames * 4)
        let ref = samples(pcm), got = samples(aligned)
        // Lag with the best correlation (left channel, 2048 frames 0.5 s in, ±2048 frames).
        func correlation(_ lag: Int) -> Double {
            var sum = 0.0
            for i in 22_050..<(22_050 + 2048) {
                sum += Double(ref[2 * i]) * Double(got[2 * (i + lag)])
            }
            return sum
        }
        let best = (-2048...2048).max { correlation($0) < correlation($1) }
        #expect(best == 0)
        let db = snr(ref, got)
        print("AAC-LC 256 kbit/s round trip: SNR \(String(format: "%.1f", db)) dB over \(frames) frames, \(units.count) units, \(units.reduce(0) { $0 + $1.bytes.count }) bytes")
        #expect(db >= 28, "SNR \(db) dB")
        // The tail (the last, short packet) decodes too.
        let tail = Array(ref.suffix(300 * 2)), tailGot = Array(got.suffix(300 * 2))
        #expect(snr(tail, tailGot) > 20)
    }

    @Test("a packet longer than 1024 frames, encode after flush and garbage to the decoder are errors")
    func errors() throws {
        let enc = try AACEncoder()
        #expect(throws: ATVError.self) { try enc.encode(PCMPacket.silence(frames: 1025)) }
        _ = try enc.encode(PCMPacket.silence(frames: 1024))
        _ = try enc.flush()
        #expect(throws: ATVError.self) { try enc.encode(PCMPacket.silence(frames: 1024)) }
        #expect(try enc.flush().isEmpty)
        let dec = try AACDecoder()
        #expect(throws: ATVError.self) { try dec.decode([UInt8](repeating: 0xFF, count: 64)) }
    }
}
