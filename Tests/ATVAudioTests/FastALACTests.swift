import ATVCore
import Foundation
import Testing
@testable import ATVAudio

@Suite("FastALAC")
struct FastALACTests {
    /// Test signals: tones, correlated stereo (mid/side), sparse clicks in silence (zero runs),
    /// full-scale noise (verbatim fallback), square waves at the extremes, and a short last packet.
    static func signals() -> [(String, [UInt8])] {
        var rng = SplitMix(state: 7)
        func pcm(_ frames: Int, _ f: (Int) -> (Int, Int)) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: frames * 4)
            for i in 0 ..< frames {
                let (l, r) = f(i)
                for (c, v) in [l, r].enumerated() {
                    let u = UInt16(bitPattern: Int16(clamping: v))
                    out[i * 4 + c * 2] = UInt8(u & 0xFF)
                    out[i * 4 + c * 2 + 1] = UInt8(u >> 8)
                }
            }
            return out
        }
        let n = 352 * 40
        return [
            ("noisy tone", noisyPCM(frames: n + 100)),
            ("correlated", pcm(n) { i in let s = Int(sin(Double(i) * 0.0314) * 20_000); return (s, s * 4 / 5) }),
            ("clicks", pcm(n) { i in i % 997 == 0 ? (3000, -3000) : (i % 1500 == 1 ? (1, 0) : (0, 0)) }),
            ("silence", pcm(n) { _ in (0, 0) }),
            ("white noise", pcm(n) { _ in (Int(Int16(truncatingIfNeeded: rng.next())), Int(Int16(truncatingIfNeeded: rng.next()))) }),
            ("extremes", pcm(n) { i in (i / 3) % 2 == 0 ? (32767, -32768) : (-32768, 32767) }),
            ("ramp", pcm(n) { i in ((i * 37) % 65536 - 32768, (i * 91) % 65536 - 32768) }),
        ]
    }

    @Test("round-trips bit-exact through FFmpeg's ALAC decoder with the standard cookie")
    func roundTrip() throws {
        for (name, pcm) in Self.signals() {
            let enc = FastALACEncoder()
            let dec = try ALACDecoder()
            let input = stride(from: 0, to: pcm.count, by: 352 * 4).map {
                PCMPacket(bytes: Array(pcm[$0 ..< min(pcm.count, $0 + 352 * 4)]))
            }
            let frames = input.map { enc.encode($0) }
            let out = try frames.map { try dec.decode($0) }
            #expect(out.map(\.frames) == input.map(\.frames), "\(name)")
            #expect(joined(out) == pcm, "\(name)")
            let ratio = Double(frames.reduce(0) { $0 + $1.count }) / Double(pcm.count)
            switch name {
            case "silence", "clicks": #expect(ratio < 0.05, "\(name): \(ratio)")
            case "correlated": #expect(ratio < 0.5, "\(name): \(ratio)")
            case "noisy tone": #expect(ratio < 0.9, "\(name): \(ratio)")
            default: #expect(ratio <= 1.01, "\(name): \(ratio)")
            }
        }
    }

    @Test("compresses the ffmpeg-made bench-like signal within 15% of FFmpeg's encoder")
    func ratioAgainstFFmpeg() throws {
        let pcm = Self.signals()[1].1
        let input = stride(from: 0, to: pcm.count, by: 352 * 4).map { PCMPacket(bytes: Array(pcm[$0 ..< $0 + 352 * 4])) }
        let fast = FastALACEncoder()
        let ff = try ALACEncoder()
        let a = input.reduce(0) { $0 + fast.encode($1).count }
        let b = try input.reduce(0) { $0 + (try ff.encode($1)).count }
        #expect(Double(a) < Double(b) * 1.15, "fast \(a) vs FFmpeg \(b)")
    }
}
