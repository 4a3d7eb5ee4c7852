import ATVCore
import CFFmpeg

/// The ALAC "magic cookie": a 36-byte `alac` atom (size, 'alac', version 0) wrapping the 24-byte
/// ALACSpecificConfig, as FFmpeg's ALAC decoder takes it in `extradata`.
package enum ALACMagicCookie {
    /// The standard cookie for AirPlay: frameLength 352, 16-bit, history mult 40, initial history 10,
    /// rice limit 14, 2 channels, max run 255, max frame bytes 0, average bit rate 0, 44100 Hz
    /// (the same values as the RAOP SDP line `a=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100`).
    package static func make(frameLength: Int = PCMFormat.framesPerPacket, bitDepth: Int = 16, channels: Int = 2,
                            sampleRate: Int = PCMFormat.sampleRate, historyMult: Int = 40, initialHistory: Int = 10,
                            riceLimit: Int = 14, maxRun: Int = 255, maxFrameBytes: Int = 0,
                            avgBitRate: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(36)
        func u32(_ v: Int) { let x = UInt32(truncatingIfNeeded: v); out += [UInt8(x >> 24), UInt8((x >> 16) & 0xFF), UInt8((x >> 8) & 0xFF), UInt8(x & 0xFF)] }
        func u16(_ v: Int) { let x = UInt16(truncatingIfNeeded: v); out += [UInt8(x >> 8), UInt8(x & 0xFF)] }
        func u8(_ v: Int) { out.append(UInt8(truncatingIfNeeded: v)) }
        u32(36); out += Array("alac".utf8); u32(0)
        u32(frameLength); u8(0); u8(bitDepth); u8(historyMult); u8(initialHistory); u8(riceLimit); u8(channels)
        u16(maxRun); u32(maxFrameBytes); u32(avgBitRate); u32(sampleRate)
        return out
    }

    /// The cookie for a RAOP SDP `fmtp` value such as "352 0 16 40 10 14 2 255 0 0 44100"
    /// (an optional leading "96 " payload type is skipped). Nil if malformed.
    package static func make(fmtp: String) -> [UInt8]? {
        var fields = fmtp.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }
        if fields.count == 12 { fields.removeFirst() }
        guard fields.count == 11 else { return nil }
        return make(frameLength: fields[0], bitDepth: fields[2], channels: fields[6], sampleRate: fields[10],
                    historyMult: fields[3], initialHistory: fields[4], riceLimit: fields[5], maxRun: fields[7],
                    maxFrameBytes: fields[8], avgBitRate: fields[9])
    }

    /// A 36-byte cookie from either a 36-byte atom or a bare 24-byte ALACSpecificConfig; nil otherwise.
    static func normalized(_ cookie: [UInt8]) -> [UInt8]? {
        if cookie.count >= 36, Array(cookie[4..<8]) == Array("alac".utf8) { return Array(cookie.prefix(36)) }
        if cookie.count == 24 {
            return [0, 0, 0, 36] + Array("alac".utf8) + [0, 0, 0, 0] + cookie
        }
        return nil
    }

    /// Fields of a normalized cookie.
    static func fields(_ c: [UInt8]) -> (frameLength: Int, bitDepth: Int, channels: Int, sampleRate: Int) {
        func u32(_ o: Int) -> Int { Int(c[o]) << 24 | Int(c[o + 1]) << 16 | Int(c[o + 2]) << 8 | Int(c[o + 3]) }
        return (u32(12), Int(c[17]), Int(c[21]), u32(32))
    }
}

/// Encodes 44.1 kHz s16 stereo `PCMPacket`s into ALAC frames with FFmpeg's native `alac` encoder.
///
/// FFmpeg sets the encoder's frame_size to 4096 after opening but accepts smaller frames
/// (AV_CODEC_CAP_SMALL_LAST_FRAME): each 352-frame packet becomes one ALAC frame carrying its sample
/// count in the header. A short (last) packet is encoded as a short frame, so decoding returns exactly
/// the frames given; pad it first with `PCMPacket.padded(to:)` if the receiver needs fixed-size frames
/// (RAOP pads its last packet anyway). Not thread-safe: use from one task at a time.
package final class ALACEncoder {
    package let framesPerPacket: Int
    /// The 36-byte cookie for decoders; its frameLength is set to `framesPerPacket` (FFmpeg's own
    /// extradata says 4096), matching the SDP `fmtp` line; every other field is the encoder's.
    package let magicCookie: [UInt8]
    private var ctx: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var pts: Int64 = 0
    /// The linear-prediction order of every frame (see `init`).
    package static let predictionOrder = 2

    package init(framesPerPacket: Int = PCMFormat.framesPerPacket) throws {
        _ = FF.quiet
        guard framesPerPacket > 0, framesPerPacket <= 4096 else {
            throw ATVError.invalidValue("ALAC framesPerPacket must be 1...4096, got \(framesPerPacket)")
        }
        self.framesPerPacket = framesPerPacket
        guard let codec = avcodec_find_encoder_by_name("alac") else {
            throw ATVError.notImplemented("ALAC encoding (FFmpeg has no alac encoder)")
        }
        guard let ctx = avcodec_alloc_context3(codec) else { throw ATVError.playbackError("ALAC encoder: out of memory") }
        self.ctx = ctx
        ctx.pointee.sample_fmt = AV_SAMPLE_FMT_S16P
        ctx.pointee.sample_rate = Int32(PCMFormat.sampleRate)
        ctx.pointee.time_base = AVRational(num: 1, den: Int32(PCMFormat.sampleRate))
        av_channel_layout_default(&ctx.pointee.ch_layout, 2)
        ctx.pointee.frame_size = Int32(framesPerPacket)
        // A fixed linear-prediction order of 2 instead of FFmpeg's search over orders 4–6: the
        // encoder is the largest CPU cost of a real-time stream, and this cuts it by ~17% (FFmpeg's
        // CLI, 60 s of the benchmark's tones and pink noise in 352-frame packets: 0.46 → 0.38 CPU-s)
        // for ~1.7% more bytes (4.62 → 4.70 MB). Still lossless; any ALAC decoder reads any order.
        var options: OpaquePointer?
        av_dict_set(&options, "min_prediction_order", "\(Self.predictionOrder)", 0)
        av_dict_set(&options, "max_prediction_order", "\(Self.predictionOrder)", 0)
        let rc = avcodec_open2(ctx, codec, &options)
        av_dict_free(&options)
        guard rc >= 0, let extra = ctx.pointee.extradata, ctx.pointee.extradata_size >= 36 else {
            avcodec_free_context(&self.ctx)
            throw ATVError.playbackError("cannot open the ALAC encoder: \(FF.errorString(rc))")
        }
        var cookie = Array(UnsafeBufferPointer(start: extra, count: 36))
        let fl = UInt32(framesPerPacket)
        cookie[12] = UInt8(fl >> 24); cookie[13] = UInt8((fl >> 16) & 0xFF)
        cookie[14] = UInt8((fl >> 8) & 0xFF); cookie[15] = UInt8(fl & 0xFF)
        magicCookie = cookie
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        guard frame != nil, packet != nil else {
            throw ATVError.playbackError("ALAC encoder: out of memory")
        }
    }

    deinit {
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&ctx)
    }

    /// One ALAC frame for `packet` (1...framesPerPacket frames of s16le stereo).
    package func encode(_ pcm: PCMPacket) throws -> [UInt8] {
        guard let ctx, let frame, let packet else { throw ATVError.invalidState("ALAC encoder is closed") }
        let n = min(pcm.frames, pcm.bytes.count / PCMFormat.bytesPerFrame)
        guard n > 0 else { return [] }
        guard n <= framesPerPacket else {
            throw ATVError.invalidValue("PCM packet has \(n) frames, more than \(framesPerPacket)")
        }
        av_frame_unref(frame)
        frame.pointee.nb_samples = Int32(n)
        frame.pointee.format = AV_SAMPLE_FMT_S16P.rawValue
        frame.pointee.sample_rate = Int32(PCMFormat.sampleRate)
        av_channel_layout_default(&frame.pointee.ch_layout, 2)
        var rc = av_frame_get_buffer(frame, 0)
        guard rc >= 0, let l = frame.pointee.data.0, let r = frame.pointee.data.1 else {
            throw ATVError.playbackError("ALAC encoder: cannot allocate a frame: \(FF.errorString(rc))")
        }
        l.withMemoryRebound(to: Int16.self, capacity: n) { left in
            r.withMemoryRebound(to: Int16.self, capacity: n) { right in
                pcm.bytes.withUnsafeBufferPointer { b in
                    for i in 0..<n {
                        let o = i * 4
                        left[i] = Int16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)
                        right[i] = Int16(bitPattern: UInt16(b[o + 2]) | UInt16(b[o + 3]) << 8)
                    }
                }
            }
        }
        frame.pointee.pts = pts
        pts += Int64(n)
        rc = avcodec_send_frame(ctx, frame)
        guard rc >= 0 else { throw ATVError.playbackError("ALAC encoding failed: \(FF.errorString(rc))") }
        var out: [UInt8] = []
        while true {
            let r = avcodec_receive_packet(ctx, packet)
            if r == cffmpeg_averror_eagain() || r == cffmpeg_averror_eof() { break }
            guard r >= 0 else { throw ATVError.playbackError("ALAC encoding failed: \(FF.errorString(r))") }
            if let d = packet.pointee.data { out += UnsafeBufferPointer(start: d, count: Int(packet.pointee.size)) }
            av_packet_unref(packet)
        }
        return out
    }
}

/// Uncompressed ("verbatim") ALAC frames, pure Swift: the framing pyatv ≤ 0.13.0 used for RAOP.
///
/// Layout, packed MSB-first: element tag `001` (channel pair; `000` for mono), 4-bit instance tag 0,
/// 12 unused bits 0, has-size bit, 2-bit shift 0, not-compressed bit 1 (23 bits; with has-size 0 that is
/// `001` + 19 zero bits + `1`); a 32-bit sample count if has-size is set; then each sample as 16 bits
/// (frame by frame, left then right); then the end tag `111`; zero bits to the next byte boundary.
package enum VerbatimALAC {
    /// One frame for `packet`. The has-size bit is set (and the count written) when the packet is not
    /// exactly `frameLength` frames, the length the receiver's cookie/fmtp announces.
    package static func encode(_ packet: PCMPacket, frameLength: Int = PCMFormat.framesPerPacket) -> [UInt8] {
        let n = min(packet.frames, packet.bytes.count / PCMFormat.bytesPerFrame)
        var w = BitWriter(capacity: 8 + n * 4)
        let hasSize = n != frameLength
        w.write(1, bits: 3)           // channels - 1: channel pair element
        w.write(0, bits: 4)           // element instance tag
        w.write(0, bits: 12)          // unused
        w.write(hasSize ? 1 : 0, bits: 1)
        w.write(0, bits: 2)           // bytes shifted out ("uncompressed bits")
        w.write(1, bits: 1)           // not compressed
        if hasSize { w.write(UInt32(n), bits: 32) }
        packet.bytes.withUnsafeBufferPointer { b in
            for i in 0..<(n * 2) {
                // s16le in, the 16-bit value MSB-first out (i.e. byte-swapped).
                w.write(UInt32(b[2 * i + 1]) << 8 | UInt32(b[2 * i]), bits: 16)
            }
        }
        w.write(7, bits: 3)           // end tag
        return w.finish()
    }
}

struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var acc: UInt64 = 0
    private var count = 0

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// Appends the low `bits` (≤ 32) bits of `value`, MSB first.
    mutating func write(_ value: UInt32, bits: Int) {
        let mask: UInt64 = bits == 64 ? ~0 : (1 << UInt64(bits)) - 1
        acc = (acc << UInt64(bits)) | (UInt64(value) & mask)
        count += bits
        while count >= 8 {
            count -= 8
            bytes.append(UInt8(truncatingIfNeeded: acc >> UInt64(count)))
        }
    }

    mutating func finish() -> [UInt8] {
        if count > 0 {
            bytes.append(UInt8(truncatingIfNeeded: acc << UInt64(8 - count)))
            count = 0
            acc = 0
        }
        return bytes
    }
}

/// Decodes ALAC frames (as senders put in RAOP RTP packets) to 44.1 kHz s16le stereo with FFmpeg's
/// `alac` decoder. Not thread-safe: use from one task at a time.
package final class ALACDecoder {
    package let framesPerPacket: Int
    package let magicCookie: [UInt8]
    private let decoder: FFmpegPacketDecoder

    /// `magicCookie`: a 36-byte `alac` atom or a 24-byte ALACSpecificConfig; nil builds the standard
    /// AirPlay cookie (framesPerPacket, 16-bit, 2 channels, 44100 Hz). The stream must be 44.1 kHz.
    package init(framesPerPacket: Int = PCMFormat.framesPerPacket, magicCookie: [UInt8]? = nil) throws {
        let cookie: [UInt8]
        if let given = magicCookie {
            guard let c = ALACMagicCookie.normalized(given) else {
                throw ATVError.invalidValue("ALAC magic cookie must be 36 (or 24) bytes, got \(given.count)")
            }
            cookie = c
        } else {
            cookie = ALACMagicCookie.make(frameLength: framesPerPacket)
        }
        let f = ALACMagicCookie.fields(cookie)
        guard (1...8).contains(f.channels), [16, 20, 24, 32].contains(f.bitDepth), f.frameLength > 0 else {
            throw ATVError.invalidValue("unsupported ALAC cookie (\(f.channels) channels, \(f.bitDepth)-bit)")
        }
        self.framesPerPacket = framesPerPacket
        self.magicCookie = cookie
        decoder = try FFmpegPacketDecoder(codecID: AV_CODEC_ID_ALAC, name: "ALAC", unitName: "ALAC frame", extradata: cookie,
                                          sampleRate: f.sampleRate, channels: f.channels)
    }

    /// PCM (s16le stereo; mono is duplicated, 24/32-bit keeps the top 16 bits) of one ALAC frame.
    /// Throws `ATVError.protocolError` for data that is not a valid ALAC frame.
    package func decode(_ alacPacket: [UInt8]) throws -> PCMPacket { try decoder.decode(alacPacket) }
}
