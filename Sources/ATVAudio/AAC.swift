import ATVCore
import CFFmpeg

/// One AAC access unit: the raw bytes (no ADTS header) and the first source frame its decoded
/// output carries (negative for the encoder's priming unit).
package struct AACAccessUnit: Sendable, Equatable {
    package var bytes: [UInt8]
    package var presentationFrame: Int64

    package init(bytes: [UInt8], presentationFrame: Int64) {
        self.bytes = bytes
        self.presentationFrame = presentationFrame
    }
}

/// Encodes 44.1 kHz s16 stereo `PCMPacket`s into AAC-LC access units with FFmpeg's native `aac`
/// encoder: 1024 frames each, raw (no ADTS: what buffered AirPlay 2 carries,
/// docs/PTP-AND-BUFFERED-AUDIO.md §4.3).
///
/// Timing: the encoder delays its output by `delay` frames (FFmpeg's `initial_padding`, 1024): the
/// first unit decodes to priming (about silence), unit k ≥ 1 to source frames (k − 1) × 1024 ..< k × 1024,
/// and `presentationFrame` says so. A decoder needs the priming unit first (its output overlaps
/// into the next one), and receivers mute the first unit of a sequence anyway (shairport-sync,
/// same doc §4.4): send every unit, the priming one first, each at the timestamp of its
/// `presentationFrame`. `encode` returns no unit for the first packet and one for each later
/// packet; `flush` returns the last. Not thread-safe: use from one task at a time.
package final class AACEncoder {
    package static let framesPerPacket = 1024
    /// Frames the decoded output lags the input (the first unit's `presentationFrame` is −delay).
    package let delay: Int
    /// The AudioSpecificConfig (ISO/IEC 14496-3) a decoder of the raw units needs as extradata.
    package let audioSpecificConfig: [UInt8]
    package let bitRate: Int
    private var ctx: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var pts: Int64 = 0
    private var flushed = false

    /// `bitRate` in bits per second for the stereo stream (256 kbit/s: what Apple's music services
    /// deliver in AAC; the encoder's own default is 128 kbit/s).
    package init(bitRate: Int = 256_000) throws {
        _ = FF.quiet
        guard let codec = avcodec_find_encoder_by_name("aac") else {
            throw ATVError.notImplemented("AAC encoding (FFmpeg has no aac encoder)")
        }
        guard let ctx = avcodec_alloc_context3(codec) else { throw ATVError.playbackError("AAC encoder: out of memory") }
        self.ctx = ctx
        self.bitRate = bitRate
        ctx.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
        ctx.pointee.sample_rate = Int32(PCMFormat.sampleRate)
        ctx.pointee.time_base = AVRational(num: 1, den: Int32(PCMFormat.sampleRate))
        ctx.pointee.bit_rate = Int64(bitRate)
        ctx.pointee.profile = FF_PROFILE_AAC_LOW
        ctx.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        av_channel_layout_default(&ctx.pointee.ch_layout, 2)
        let rc = avcodec_open2(ctx, codec, nil)
        guard rc >= 0 else {
            avcodec_free_context(&self.ctx)
            throw ATVError.playbackError("cannot open the AAC encoder: \(FF.errorString(rc))")
        }
        guard ctx.pointee.frame_size == Int32(Self.framesPerPacket) else {
            avcodec_free_context(&self.ctx)
            throw ATVError.playbackError("the AAC encoder wants \(ctx.pointee.frame_size)-frame packets, not \(Self.framesPerPacket)")
        }
        delay = Int(ctx.pointee.initial_padding)
        audioSpecificConfig = ctx.pointee.extradata.map { Array(UnsafeBufferPointer(start: $0, count: Int(ctx.pointee.extradata_size))) }
            ?? AACDecoder.audioSpecificConfig(sampleRate: PCMFormat.sampleRate, channels: 2)
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        guard frame != nil, packet != nil else { throw ATVError.playbackError("AAC encoder: out of memory") }
    }

    deinit {
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&ctx)
    }

    /// The units ready after `pcm` (1...1024 frames of s16le stereo; a shorter packet is padded
    /// with silence to 1024 frames, so every unit decodes to 1024 frames).
    package func encode(_ pcm: PCMPacket) throws -> [AACAccessUnit] {
        guard ctx != nil, let frame else { throw ATVError.invalidState("AAC encoder is closed") }
        guard !flushed else { throw ATVError.invalidState("AAC encoder already flushed") }
        let n = min(pcm.frames, pcm.bytes.count / PCMFormat.bytesPerFrame)
        guard n > 0 else { return [] }
        guard n <= Self.framesPerPacket else {
            throw ATVError.invalidValue("PCM packet has \(n) frames, more than \(Self.framesPerPacket)")
        }
        let size = Self.framesPerPacket
        av_frame_unref(frame)
        frame.pointee.nb_samples = Int32(size)
        frame.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
        frame.pointee.sample_rate = Int32(PCMFormat.sampleRate)
        av_channel_layout_default(&frame.pointee.ch_layout, 2)
        let rc = av_frame_get_buffer(frame, 0)
        guard rc >= 0, let l = frame.pointee.data.0, let r = frame.pointee.data.1 else {
            throw ATVError.playbackError("AAC encoder: cannot allocate a frame: \(FF.errorString(rc))")
        }
        l.withMemoryRebound(to: Float.self, capacity: size) { left in
            r.withMemoryRebound(to: Float.self, capacity: size) { right in
                pcm.bytes.withUnsafeBufferPointer { b in
                    for i in 0..<n {
                        let o = i * 4
                        left[i] = Float(Int16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) / 32768
                        right[i] = Float(Int16(bitPattern: UInt16(b[o + 2]) | UInt16(b[o + 3]) << 8)) / 32768
                    }
                }
                for i in n..<size {
                    left[i] = 0
                    right[i] = 0
                }
            }
        }
        frame.pointee.pts = pts
        pts += Int64(size)
        return try send(frame)
    }

    /// The remaining unit(s) at the end of the input (the source's last frames).
    package func flush() throws -> [AACAccessUnit] {
        guard !flushed else { return [] }
        flushed = true
        return try send(nil)
    }

    private func send(_ frame: UnsafeMutablePointer<AVFrame>?) throws -> [AACAccessUnit] {
        guard let ctx, let packet else { throw ATVError.invalidState("AAC encoder is closed") }
        let rc = avcodec_send_frame(ctx, frame)
        guard rc >= 0 else { throw ATVError.playbackError("AAC encoding failed: \(FF.errorString(rc))") }
        var out: [AACAccessUnit] = []
        while true {
            let r = avcodec_receive_packet(ctx, packet)
            if r == cffmpeg_averror_eagain() || r == cffmpeg_averror_eof() { break }
            guard r >= 0 else { throw ATVError.playbackError("AAC encoding failed: \(FF.errorString(r))") }
            defer { av_packet_unref(packet) }
            guard let d = packet.pointee.data, packet.pointee.size > 0 else { continue }
            let p = packet.pointee.pts
            out.append(AACAccessUnit(bytes: Array(UnsafeBufferPointer(start: d, count: Int(packet.pointee.size))),
                                     presentationFrame: p == cffmpeg_nopts_value() ? -1 : p))
        }
        return out
    }
}

/// Decodes raw AAC access units (no ADTS) to 44.1 kHz s16le stereo with FFmpeg's `aac` decoder,
/// given the stream's AudioSpecificConfig (as shairport-sync decodes type-103 AAC; it prepends
/// ADTS headers instead, which says the same). Every unit decodes to 1024 frames, the first one
/// to the encoder's priming. Not thread-safe: use from one task at a time.
package final class AACDecoder {
    package let sampleRate: Int
    package let channels: Int
    private let decoder: FFmpegPacketDecoder

    /// The 2-byte AudioSpecificConfig of AAC-LC (object type 2) at a standard rate: 44100 Hz
    /// stereo is `12 10`.
    package static func audioSpecificConfig(sampleRate: Int, channels: Int) -> [UInt8] {
        let rates = [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350]
        let index = rates.firstIndex(of: sampleRate) ?? 4
        let bits = 2 << 11 | index << 7 | (channels & 0xF) << 3
        return [UInt8(bits >> 8), UInt8(bits & 0xFF)]
    }

    /// `audioSpecificConfig` nil: AAC-LC at `sampleRate` with `channels` channels.
    package init(sampleRate: Int = PCMFormat.sampleRate, channels: Int = 2, audioSpecificConfig: [UInt8]? = nil) throws {
        self.sampleRate = sampleRate
        self.channels = channels
        let config = audioSpecificConfig ?? Self.audioSpecificConfig(sampleRate: sampleRate, channels: channels)
        decoder = try FFmpegPacketDecoder(codecID: AV_CODEC_ID_AAC, name: "AAC", unitName: "AAC unit", extradata: config,
                                          sampleRate: sampleRate, channels: channels)
    }

    /// PCM (s16le stereo; mono duplicated) of one access unit. Throws `ATVError.protocolError` for
    /// data that is not a valid AAC unit.
    package func decode(_ unit: [UInt8]) throws -> PCMPacket { try decoder.decode(unit) }
}
