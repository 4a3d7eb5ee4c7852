// One FFmpeg packet decoder for the codecs receivers get from senders (ALAC frames, raw AAC access
// units): the codec context with its extradata, one packet in, every frame out, converted to
// 44.1 kHz s16le stereo (`PCMPacket`). `ALACDecoder` and `AACDecoder` each give it their codec and
// configuration; this is the only place that drives FFmpeg's send/receive loop for them.
import ATVCore
import CFFmpeg

/// Not thread-safe: use from one task at a time (as its owners say).
final class FFmpegPacketDecoder {
    /// "ALAC", "AAC": in error text.
    private let name: String
    /// "ALAC frame", "AAC unit": in error text.
    private let unitName: String
    private var ctx: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?

    /// Opens FFmpeg's decoder for `codecID` with `extradata` (the ALAC cookie, the AAC
    /// AudioSpecificConfig), `sampleRate` and `channels`.
    init(codecID: AVCodecID, name: String, unitName: String, extradata: [UInt8], sampleRate: Int, channels: Int) throws {
        _ = FF.quiet
        self.name = name
        self.unitName = unitName
        guard let codec = avcodec_find_decoder(codecID), let ctx = avcodec_alloc_context3(codec) else {
            throw ATVError.notImplemented("\(name) decoding (FFmpeg has no \(name.lowercased()) decoder)")
        }
        self.ctx = ctx
        let padding = Int(AV_INPUT_BUFFER_PADDING_SIZE)
        guard let extra = av_mallocz(extradata.count + padding)?.assumingMemoryBound(to: UInt8.self) else {
            throw ATVError.playbackError("\(name) decoder: out of memory")
        }
        extradata.withUnsafeBufferPointer { extra.update(from: $0.baseAddress!, count: extradata.count) }
        ctx.pointee.extradata = extra
        ctx.pointee.extradata_size = Int32(extradata.count)
        ctx.pointee.sample_rate = Int32(sampleRate)
        av_channel_layout_default(&ctx.pointee.ch_layout, Int32(channels))
        let rc = avcodec_open2(ctx, codec, nil)
        guard rc >= 0 else { throw ATVError.playbackError("cannot open the \(name) decoder: \(FF.errorString(rc))") }
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        guard frame != nil, packet != nil else { throw ATVError.playbackError("\(name) decoder: out of memory") }
    }

    deinit {
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&ctx)
    }

    /// PCM (s16le stereo; mono duplicated; 24/32-bit integers keep their top 16 bits; floats
    /// rounded and clipped) of one packet. Throws `ATVError.protocolError` for data the codec
    /// cannot decode.
    func decode(_ bytes: [UInt8]) throws -> PCMPacket {
        guard let ctx, let frame, let packet else { throw ATVError.invalidState("\(name) decoder is closed") }
        guard !bytes.isEmpty else { return PCMPacket(bytes: [], frames: 0) }
        av_packet_unref(packet)
        var rc = av_new_packet(packet, Int32(bytes.count))
        guard rc >= 0, let data = packet.pointee.data else { throw ATVError.playbackError("\(name) decoder: out of memory") }
        bytes.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: bytes.count) }
        rc = avcodec_send_packet(ctx, packet)
        av_packet_unref(packet)
        if rc < 0 && rc != cffmpeg_averror_eagain() {
            throw ATVError.protocolError("invalid \(unitName) (\(bytes.count) bytes): \(FF.errorString(rc))")
        }
        var out: [UInt8] = []
        var frames = 0
        while true {
            let r = avcodec_receive_frame(ctx, frame)
            if r == cffmpeg_averror_eagain() || r == cffmpeg_averror_eof() { break }
            guard r >= 0 else { throw ATVError.protocolError("invalid \(unitName): \(FF.errorString(r))") }
            defer { av_frame_unref(frame) }
            let n = Int(frame.pointee.nb_samples)
            let ch = Int(frame.pointee.ch_layout.nb_channels)
            guard n > 0, ch > 0, let planes = frame.pointee.extended_data else { continue }
            let fmt = AVSampleFormat(rawValue: frame.pointee.format)
            let planar = av_sample_fmt_is_planar(fmt) != 0
            let right = ch > 1 ? 1 : 0
            let base = out.count
            out.append(contentsOf: repeatElement(0, count: n * 4))
            /// Sample i of the left and right channel (mono: channel 0 twice) as s16.
            func convert<T>(_ type: T.Type, _ toInt16: (T) -> Int16) {
                out.withUnsafeMutableBufferPointer { o in
                    if planar {
                        guard let l = planes[0], let r = planes[right] else { return }
                        let lp = UnsafeRawPointer(l).assumingMemoryBound(to: T.self)
                        let rp = UnsafeRawPointer(r).assumingMemoryBound(to: T.self)
                        for i in 0..<n { Self.put(o, base + i * 4, toInt16(lp[i]), toInt16(rp[i])) }
                    } else {
                        guard let p0 = planes[0] else { return }
                        let p = UnsafeRawPointer(p0).assumingMemoryBound(to: T.self)
                        for i in 0..<n { Self.put(o, base + i * 4, toInt16(p[i * ch]), toInt16(p[i * ch + right])) }
                    }
                }
            }
            switch fmt {
            case AV_SAMPLE_FMT_S16P, AV_SAMPLE_FMT_S16: convert(Int16.self) { $0 }
            case AV_SAMPLE_FMT_S32P, AV_SAMPLE_FMT_S32: convert(Int32.self) { Int16(truncatingIfNeeded: $0 >> 16) }
            case AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_FLT: convert(Float.self, Self.s16)
            default:
                throw ATVError.protocolError("\(name) decoder produced unsupported sample format \(fmt.rawValue)")
            }
            frames += n
        }
        return PCMPacket(bytes: out, frames: frames)
    }

    /// A float sample as s16, rounded and clipped (as FFmpeg's own conversion).
    @inline(__always)
    static func s16(_ x: Float) -> Int16 {
        let v = (x * 32768).rounded()
        return v >= 32767 ? .max : v <= -32768 ? .min : Int16(v)
    }

    @inline(__always)
    private static func put(_ o: UnsafeMutableBufferPointer<UInt8>, _ at: Int, _ l: Int16, _ r: Int16) {
        let lu = UInt16(bitPattern: l), ru = UInt16(bitPattern: r)
        o[at] = UInt8(truncatingIfNeeded: lu); o[at + 1] = UInt8(truncatingIfNeeded: lu >> 8)
        o[at + 2] = UInt8(truncatingIfNeeded: ru); o[at + 3] = UInt8(truncatingIfNeeded: ru >> 8)
    }
}
