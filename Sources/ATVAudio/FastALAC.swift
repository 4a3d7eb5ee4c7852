import ATVCore

/// A cheap ALAC encoder in pure Swift for real-time streaming: ~10× less CPU than FFmpeg's `alac`
/// encoder (which searches an LPC model per frame), at a somewhat lower compression ratio.
///
/// Each 16-bit stereo packet becomes one compressed channel-pair frame, decodable by every ALAC
/// decoder with the standard AirPlay parameters (history mult 40, initial history 10, rice limit 14,
/// the values of the SDP `fmtp` line / magic cookie):
/// - stereo: left/right, or mid/side (mix shift 1, weight 1), whichever has the smaller first
///   differences;
/// - prediction: ALAC's adaptive FIR with one coefficient (quantization 9), i.e. the decoder predicts
///   `x[i-2] + c·(x[i-1] − x[i-2])` and nudges `c` by ±1 after each sample by the sign of the error;
///   the encoder runs the same filter to compute the residuals, and each frame starts from the
///   coefficient the previous one ended with (it is written in the frame, so frames stay independent);
/// - residuals: ALAC's adaptive Golomb-Rice code with its zero-run mode.
/// A frame that would not be smaller than the uncompressed ("verbatim") frame is sent verbatim.
/// Not thread-safe: use from one task at a time.
public final class FastALACEncoder {
    public let framesPerPacket: Int
    static let quant: Int32 = 9
    static let historyMult: UInt32 = 40
    static let initialHistory: UInt32 = 10
    static let riceLimit = 14
    /// Bits per residual sample for a channel pair (16-bit audio + 1).
    static let bps = 17

    private var coefs: (Int32, Int32) = (512, 512)
    private var a: [Int32]
    private var b: [Int32]
    private var ra: [Int32]
    private var rb: [Int32]
    private var out: [UInt8]

    public init(framesPerPacket: Int = PCMFormat.framesPerPacket) {
        self.framesPerPacket = max(1, framesPerPacket)
        a = [Int32](repeating: 0, count: self.framesPerPacket)
        b = a; ra = a; rb = a
        out = [UInt8](repeating: 0, count: self.framesPerPacket * 4 * 2 + 64)
    }

    /// One ALAC frame for `pcm` (s16le stereo, 1...framesPerPacket frames).
    public func encode(_ pcm: PCMPacket) -> [UInt8] {
        let n = min(pcm.frames, pcm.bytes.count / PCMFormat.bytesPerFrame, framesPerPacket)
        guard n > 0 else { return [] }
        let hasSize = n != framesPerPacket
        // Deinterleave, and choose left/right or mid/side by the sum of first differences.
        var costLR: Int64 = 0, costMS: Int64 = 0
        pcm.bytes.withUnsafeBufferPointer { src in
            a.withUnsafeMutableBufferPointer { l in
                b.withUnsafeMutableBufferPointer { r in
                    var pl: Int32 = 0, pr: Int32 = 0, pm: Int32 = 0, ps: Int32 = 0
                    for i in 0 ..< n {
                        let o = i * 4
                        let left = Int32(Int16(bitPattern: UInt16(src[o]) | UInt16(src[o + 1]) << 8))
                        let right = Int32(Int16(bitPattern: UInt16(src[o + 2]) | UInt16(src[o + 3]) << 8))
                        l[i] = left
                        r[i] = right
                        let side = left - right
                        let mid = right + (side >> 1)
                        costLR += Int64(abs(left - pl)) + Int64(abs(right - pr))
                        costMS += Int64(abs(mid - pm)) + Int64(abs(side - ps))
                        pl = left; pr = right; pm = mid; ps = side
                    }
                }
            }
        }
        let midSide = costMS < costLR
        if midSide {
            // Channel 0 = right + (side >> 1), channel 1 = side = left − right: the decoder's
            // unmix (weight 1, shift 1) gives back left and right.
            a.withUnsafeMutableBufferPointer { l in
                b.withUnsafeMutableBufferPointer { r in
                    for i in 0 ..< n {
                        let side = l[i] - r[i]
                        l[i] = r[i] + (side >> 1)
                        r[i] = side
                    }
                }
            }
        }
        let c0 = coefs.0, c1 = coefs.1
        let e0 = a.withUnsafeBufferPointer { x in ra.withUnsafeMutableBufferPointer { Self.residuals(x, n, c0, $0) } }
        let e1 = b.withUnsafeBufferPointer { x in rb.withUnsafeMutableBufferPointer { Self.residuals(x, n, c1, $0) } }
        // Carry the adapted coefficients over (bounded, so a frame's adaptation stays in Int16).
        coefs = (min(max(e0, -4096), 4096), min(max(e1, -4096), 4096))

        let verbatimBytes = (23 + (hasSize ? 32 : 0) + n * 32 + 3 + 7) / 8
        var hazard = false
        let count = out.withUnsafeMutableBufferPointer { o -> Int in
            var w = FastBitWriter(o)
            w.put(1, 3)                      // channel pair element
            w.put(0, 4)                      // instance tag
            w.put(0, 12)                     // unused
            w.put(hasSize ? 1 : 0, 1)
            w.put(0, 2)                      // no bytes shifted out
            w.put(0, 1)                      // compressed
            if hasSize { w.put(UInt64(n), 32) }
            w.put(midSide ? 1 : 0, 8)        // mix shift
            w.put(midSide ? 1 : 0, 8)        // mix weight
            for c in (0 ..< 2) {
                w.put(0, 4)                  // prediction type: adaptive FIR
                w.put(UInt64(Self.quant), 4)
                w.put(4, 3)                  // history multiplier factor (4/4 × 40)
                w.put(1, 5)                  // one coefficient
                w.put(UInt64(UInt16(bitPattern: Int16(c == 0 ? c0 : c1))), 16)
            }
            ra.withUnsafeBufferPointer { if !Self.entropy($0, n, &w) { hazard = true } }
            rb.withUnsafeBufferPointer { if !Self.entropy($0, n, &w) { hazard = true } }
            w.put(7, 3)                      // end tag
            return w.finish()
        }
        if hazard || count >= verbatimBytes {
            return VerbatimALAC.encode(PCMPacket(bytes: pcm.bytes, frames: n), frameLength: framesPerPacket)
        }
        return Array(out[0 ..< count])
    }

    @inline(__always)
    static func signExtend(_ v: Int32) -> Int32 { (v << (32 - Int32(bps))) >> (32 - Int32(bps)) }

    /// The residuals of ALAC's one-coefficient adaptive FIR, exactly as the decoder reconstructs the
    /// samples from them; returns the coefficient after the last sample.
    static func residuals(_ x: UnsafeBufferPointer<Int32>, _ n: Int, _ start: Int32, _ e: UnsafeMutableBufferPointer<Int32>) -> Int32 {
        e[0] = x[0]
        guard n > 1 else { return start }
        e[1] = signExtend(x[1] &- x[0])
        var c = start
        var i = 2
        while i < n {
            let d = x[i - 2], p = x[i - 1]
            let sum = (p &- d) &* c
            let predicted = Int32(truncatingIfNeeded: (Int64(sum) + Int64(1 << (quant - 1))) >> Int64(quant)) &+ d
            let err = signExtend(x[i] &- predicted)
            e[i] = err
            if err != 0 {
                let s: Int32 = d > p ? 1 : (d < p ? -1 : 0)
                c -= err > 0 ? s : -s
            }
            i += 1
        }
        return c
    }

    /// ALAC's adaptive Golomb-Rice code for one channel's residuals. False in the one case where
    /// decoders differ (a 65536 right after a zero run): then the caller sends the frame verbatim.
    static func entropy(_ e: UnsafeBufferPointer<Int32>, _ n: Int, _ w: inout FastBitWriter) -> Bool {
        var history = initialHistory
        var signModifier: UInt32 = 0
        var i = 0
        while i < n {
            let v = e[i]
            let x = UInt32(bitPattern: (v << 1) ^ (v >> 31))
            let k = min(log2((history >> 9) + 3), riceLimit)
            if signModifier == 1 && x == 0x10000 { return false }
            scalar(x - signModifier, k, bps, &w)
            signModifier = 0
            if x > 0xFFFF {
                history = 0xFFFF
            } else {
                history = history &+ x &* historyMult &- ((history &* historyMult) >> 9)
            }
            if history < 128 && i + 1 < n {
                let kz = min(7 - log2(history) + Int((history + 16) >> 6), riceLimit)
                var run = 0
                while i + 1 + run < n && e[i + 1 + run] == 0 && run < 0xFFFF { run += 1 }
                scalar(UInt32(run), kz, 16, &w)
                i += run
                signModifier = 1
                history = 0
            }
            i += 1
        }
        return true
    }

    @inline(__always)
    static func log2(_ v: UInt32) -> Int { v == 0 ? 0 : 31 - v.leadingZeroBitCount }

    @inline(__always)
    static func scalar(_ x: UInt32, _ k: Int, _ bits: Int, _ w: inout FastBitWriter) {
        let divisor = UInt32(1 << k) - 1
        let q = x / divisor
        if q > 8 {
            w.put(0x1FF, 9)
            w.put(UInt64(x), bits)
            return
        }
        let unary = UInt64((1 << q) - 1) << 1        // q ones, then a zero
        if k == 1 {
            w.put(unary, Int(q) + 1)
            return
        }
        let r = x - q * divisor
        if r > 0 {
            w.put(unary << UInt64(k) | UInt64(r + 1), Int(q) + 1 + k)
        } else {
            w.put(unary << UInt64(k - 1), Int(q) + k)
        }
    }
}

/// MSB-first bit writer into a buffer the caller sized (no bounds growth).
struct FastBitWriter {
    private let buffer: UnsafeMutableBufferPointer<UInt8>
    private var at = 0
    private var acc: UInt64 = 0
    private var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    /// Appends the low `bits` (≤ 32) bits of `value`.
    @inline(__always)
    mutating func put(_ value: UInt64, _ bits: Int) {
        acc = (acc << UInt64(bits)) | (value & ((1 << UInt64(bits)) - 1))
        count += bits
        while count >= 8 {
            count -= 8
            if at < buffer.count { buffer[at] = UInt8(truncatingIfNeeded: acc >> UInt64(count)) }
            at += 1
        }
    }

    /// Pads with zero bits to a byte; returns the byte count (may exceed the buffer: then the caller
    /// must not use the bytes).
    mutating func finish() -> Int {
        if count > 0 { put(0, 8 - count) }
        return at
    }
}
