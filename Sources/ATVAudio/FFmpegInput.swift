import ATVCore
import CFFmpeg
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Where a decoder reads from (internal; the public API maps `StreamSource` and file descriptors onto it).
enum InputSpec: Sendable {
    /// A path or URL that libavformat opens itself (file, http, https).
    case location(String, display: String, isNetwork: Bool, rawFormat: RawPCMFormat?)
    /// A file descriptor read through a custom non-seekable AVIOContext (stdin, pipes). Not closed by us.
    case fileDescriptor(Int32, display: String, rawFormat: RawPCMFormat?)
    /// Rejected before touching FFmpeg (e.g. a URL scheme other than http/https).
    case unsupported(display: String, reason: String)

    var display: String {
        switch self {
        case .location(_, let d, _, _), .fileDescriptor(_, let d, _), .unsupported(let d, _): d
        }
    }

    static func from(_ source: StreamSource) -> InputSpec {
        switch source {
        case .file(let path):
            .location(path, display: path, isNetwork: false, rawFormat: nil)
        case .url(let url):
            url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://")
                ? .location(url, display: url, isNetwork: true, rawFormat: nil)
                : .unsupported(display: url, reason: "unsupported URL (only http:// and https:// are supported)")
        case .stdin(let raw):
            .fileDescriptor(0, display: "stdin", rawFormat: raw)
        }
    }
}

/// Cancellation flag shared between an async owner and the blocking FFmpeg thread.
final class CancelFlag: @unchecked Sendable {
    private let lock = ConditionMutex()
    private var value = false
    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func cancel() { lock.lock(); value = true; lock.unlock() }
}

/// Reads a file descriptor for the custom AVIOContext; polls so a cancel is noticed within 100 ms.
final class FDReader {
    let fd: Int32
    let cancel: CancelFlag
    init(fd: Int32, cancel: CancelFlag) { self.fd = fd; self.cancel = cancel }

    /// > 0 bytes read, or an AVERROR code (EOF, EXIT on cancel, or errno).
    func read(_ buf: UnsafeMutablePointer<UInt8>, _ size: Int) -> Int32 {
        while true {
            if cancel.isCancelled { return cffmpeg_averror_exit() }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, 100)
            if r < 0 {
                if errno == EINTR { continue }
                return cffmpeg_averror(errno)
            }
            if r == 0 { continue }
            let n = Glibc.read(fd, buf, size)
            if n > 0 { return Int32(n) }
            if n == 0 { return cffmpeg_averror_eof() }
            if errno == EINTR || errno == EAGAIN { continue }
            return cffmpeg_averror(errno)
        }
    }
}

private let interruptCallback: @convention(c) (UnsafeMutableRawPointer?) -> Int32 = { opaque in
    guard let opaque else { return 0 }
    return Unmanaged<CancelFlag>.fromOpaque(opaque).takeUnretainedValue().isCancelled ? 1 : 0
}

/// An opened input: demuxer + decoder + resampler to 44.1 kHz s16 stereo. Not thread-safe: it lives on
/// one thread (the decode thread, or a probe thread) and is freed there.
final class FFmpegInput {
    let display: String
    private let cancel: CancelFlag
    private var fmt: UnsafeMutablePointer<AVFormatContext>?
    private var avio: UnsafeMutablePointer<AVIOContext>?
    private var reader: Unmanaged<FDReader>?
    private let cancelRef: Unmanaged<CancelFlag>
    private var codecCtx: UnsafeMutablePointer<AVCodecContext>?
    private var swr: OpaquePointer?
    private var swrInput: (format: Int32, rate: Int32, channels: Int32)?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var streamIndex: Int32 = -1
    private(set) var info: AudioInfo

    /// Resampled output not yet handed out (s16le stereo), from `pendingHead`.
    private var pending: [UInt8] = []
    private var pendingHead = 0
    private var scratch: [UInt8] = []
    private var draining = false
    private var finished = false
    private var consecutiveBadPackets = 0

    /// Opens and probes; throws `ATVError.badInput("<display>: <reason>")`.
    init(_ spec: InputSpec, cancel: CancelFlag, ioTimeout: Double = 10, openDecoder: Bool = true) throws {
        _ = FF.quiet
        self.display = spec.display
        self.cancel = cancel
        self.cancelRef = Unmanaged.passRetained(cancel)
        self.info = AudioInfo(formatName: "", codecName: "", sampleRate: 0, channels: 0, duration: nil,
                              metadata: MediaMetadata())
        do {
            try open(spec, ioTimeout: ioTimeout, openDecoder: openDecoder)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    private func bad(_ reason: String) -> ATVError { .badInput("\(display): \(reason)") }

    /// 200 packets in a row that do not decode (FFmpeg's code for them says nothing more: its text
    /// for some is "Error number -50531338 occurred").
    static let corrupt = "decoding failed: the audio data is corrupt"

    private func open(_ spec: InputSpec, ioTimeout: Double, openDecoder: Bool) throws {
        var options: OpaquePointer? = nil
        defer { av_dict_free(&options) }
        var url: String? = nil
        var rawFormat: RawPCMFormat? = nil

        guard let ctx = avformat_alloc_context() else { throw bad("out of memory") }
        fmt = ctx
        cffmpeg_set_interrupt_callback(ctx, interruptCallback, cancelRef.toOpaque())

        switch spec {
        case .unsupported(_, let reason):
            throw bad(reason)
        case .location(let location, _, let isNetwork, let raw):
            rawFormat = raw
            if isNetwork {
                url = location
                let micros = String(Int(ioTimeout * 1_000_000))
                av_dict_set(&options, "rw_timeout", micros, 0)
                av_dict_set(&options, "timeout", micros, 0)
                // Only what http(s) needs: no file/pipe/concat/... reachable through redirects or playlists.
                av_dict_set(&options, "protocol_whitelist", "http,https,tcp,tls", 0)
            } else {
                // "file:" so that a path such as "x:y" or "pipe:0" is never taken for a protocol.
                url = "file:" + location
                var st = stat()
                if stat(location, &st) != 0 {
                    throw bad(errno == ENOENT ? "no such file" : String(cString: strerror(errno)))
                }
                if (st.st_mode & S_IFMT) == S_IFDIR { throw bad("is a directory") }
                if (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 0 { throw bad("empty file") }
                if access(location, R_OK) != 0 { throw bad("permission denied") }
            }
        case .fileDescriptor(let fd, _, let raw):
            rawFormat = raw
            let r = FDReader(fd: fd, cancel: cancel)
            let ref = Unmanaged.passRetained(r)
            reader = ref
            let size: Int32 = 32_768
            guard let buf = av_malloc(Int(size)) else { throw bad("out of memory") }
            avio = avio_alloc_context(buf.assumingMemoryBound(to: UInt8.self), size, 0, ref.toOpaque(),
                                      { opaque, buf, size in
                                          guard let opaque, let buf else { return cffmpeg_averror_eof() }
                                          return Unmanaged<FDReader>.fromOpaque(opaque).takeUnretainedValue()
                                              .read(buf, Int(size))
                                      }, nil, nil)
            guard let avio else { av_free(buf); throw bad("out of memory") }
            avio.pointee.seekable = 0
            ctx.pointee.pb = avio
            ctx.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
            // A pipe may be a live source: don't wait for FFmpeg's default 5 MB / 5 s of look-ahead
            // before the first packet (64 KiB is still plenty to identify MP3/AAC/FLAC/WAV).
            ctx.pointee.probesize = 65_536
            ctx.pointee.max_analyze_duration = 500_000
        }

        var inputFormat: UnsafePointer<AVInputFormat>? = nil
        if let raw = rawFormat {
            guard raw.channels >= 1, raw.channels <= 8, raw.sampleRate >= 1000, raw.sampleRate <= 768_000 else {
                throw bad("invalid raw PCM format (\(raw.sampleRate) Hz, \(raw.channels) channels)")
            }
            inputFormat = av_find_input_format(raw.sampleFormat.rawValue)
            guard inputFormat != nil else { throw bad("raw format \(raw.sampleFormat.rawValue) unsupported by FFmpeg") }
            av_dict_set(&options, "sample_rate", String(raw.sampleRate), 0)
            var layout = AVChannelLayout()
            av_channel_layout_default(&layout, Int32(raw.channels))
            var desc = [CChar](repeating: 0, count: 64)
            av_channel_layout_describe(&layout, &desc, desc.count)
            av_channel_layout_uninit(&layout)
            av_dict_set(&options, "ch_layout", desc.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, 0)
        }

        let r = avformat_open_input(&fmt, url, inputFormat, &options)   // frees fmt on failure
        if r < 0 {
            fmt = nil
            throw openError(r, isNetwork: { if case .location(_, _, true, _) = spec { true } else { false } }())
        }
        guard let fmt else { throw bad("cannot open") }
        let si = avformat_find_stream_info(fmt, nil)
        if si < 0 {
            if cancel.isCancelled { throw CancellationError() }
            throw bad("cannot read stream info: \(FF.errorString(si)) (truncated or corrupt file?)")
        }

        var codec: UnsafePointer<AVCodec>? = nil
        let index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0)
        if index == cffmpeg_averror_stream_not_found() {
            throw bad("no audio stream (not an audio file?)")
        }
        if index == cffmpeg_averror_decoder_not_found() || (index >= 0 && codec == nil) {
            throw bad("no decoder for the audio stream")
        }
        guard index >= 0, let stream = fmt.pointee.streams[Int(index)] else {
            throw bad("no audio stream: \(FF.errorString(index))")
        }
        streamIndex = index
        let par = stream.pointee.codecpar!
        info = AudioInfo(
            formatName: FF.string(fmt.pointee.iformat?.pointee.name) ?? "unknown",
            codecName: FF.string(avcodec_get_name(par.pointee.codec_id)) ?? "unknown",
            sampleRate: Int(par.pointee.sample_rate),
            channels: Int(par.pointee.ch_layout.nb_channels),
            duration: nil,
            metadata: MediaMetadata())
        info.duration = Self.duration(fmt, stream)
        info.metadata = Self.metadata(fmt, audio: stream, duration: info.duration)

        guard openDecoder else { return }
        if par.pointee.sample_rate <= 0 || par.pointee.ch_layout.nb_channels <= 0 {
            throw bad("audio stream has no sample rate/channels (truncated or corrupt file?)")
        }
        // Drop the other streams early (cover art etc.).
        for i in 0..<Int(fmt.pointee.nb_streams) where i != Int(index) {
            fmt.pointee.streams[i]?.pointee.discard = AVDISCARD_ALL
        }
        codecCtx = avcodec_alloc_context3(codec)
        guard let codecCtx else { throw bad("out of memory") }
        var rc = avcodec_parameters_to_context(codecCtx, par)
        if rc >= 0 { rc = avcodec_open2(codecCtx, codec, nil) }
        if rc < 0 { throw bad("cannot open the \(info.codecName) decoder: \(FF.errorString(rc))") }
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        guard frame != nil, packet != nil else { throw bad("out of memory") }
    }

    private func openError(_ r: Int32, isNetwork: Bool) -> Error {
        if cancel.isCancelled { return CancellationError() }
        if r == cffmpeg_averror_invaliddata() || r == cffmpeg_averror(EINVAL) {
            return bad("not a recognized audio file (\(FF.errorString(r)))")
        }
        if !isNetwork && (r == cffmpeg_averror(EIO) || r == cffmpeg_averror_eof()) {
            return bad("truncated or corrupt file (\(FF.errorString(r)))")
        }
        if r == cffmpeg_averror_exit() { return bad("opening timed out or was interrupted") }
        if r == cffmpeg_averror(ETIMEDOUT) { return ATVError.timeout("\(display): no answer") }
        return bad(FF.errorString(r))
    }

    private static func duration(_ fmt: UnsafeMutablePointer<AVFormatContext>,
                                 _ stream: UnsafeMutablePointer<AVStream>) -> Double? {
        let nopts = cffmpeg_nopts_value()
        let d = fmt.pointee.duration
        if d != nopts, d > 0 { return Double(d) / Double(cffmpeg_time_base()) }
        let sd = stream.pointee.duration
        let tb = stream.pointee.time_base
        if sd != nopts, sd > 0, tb.den > 0 { return Double(sd) * Double(tb.num) / Double(tb.den) }
        return nil
    }

    private static func tag(_ key: String, _ dicts: [OpaquePointer?]) -> String? {
        for dict in dicts {
            guard let dict else { continue }
            // av_dict_get matches keys case-insensitively unless AV_DICT_MATCH_CASE is given.
            if let entry = av_dict_get(dict, key, nil, 0), let value = entry.pointee.value {
                let s = String(cString: value).trimmingWhitespaceAndNewlines()
                if !s.isEmpty { return s }
            }
        }
        return nil
    }

    private static func metadata(_ fmt: UnsafeMutablePointer<AVFormatContext>, audio: UnsafeMutablePointer<AVStream>,
                                 duration: Double?) -> MediaMetadata {
        var dicts: [OpaquePointer?] = [fmt.pointee.metadata, audio.pointee.metadata]
        var artwork: [UInt8]? = nil
        for i in 0..<Int(fmt.pointee.nb_streams) {
            guard let s = fmt.pointee.streams[i] else { continue }
            if s != audio { dicts.append(s.pointee.metadata) }
            if artwork == nil, (s.pointee.disposition & cffmpeg_disposition_attached_pic()) != 0,
               let data = s.pointee.attached_pic.data, s.pointee.attached_pic.size > 0 {
                artwork = Array(UnsafeBufferPointer(start: data, count: Int(s.pointee.attached_pic.size)))
            }
        }
        return MediaMetadata(title: tag("title", dicts), artist: tag("artist", dicts) ?? tag("album_artist", dicts),
                             album: tag("album", dicts), artwork: artwork, duration: duration)
    }

    // MARK: decoding

    private var available: Int { pending.count - pendingHead }

    /// The next packet of `frames` frames (the last one may be short), nil at the end.
    func nextPacket(frames: Int) throws -> PCMPacket? {
        let want = frames * PCMFormat.bytesPerFrame
        while available < want && !finished {
            try pump()
        }
        let n = min(available, want)
        guard n > 0 else { return nil }
        let bytes = Array(pending[pendingHead..<(pendingHead + n)])
        pendingHead += n
        if pendingHead > 65_536 && pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        return PCMPacket(bytes: bytes, frames: n / PCMFormat.bytesPerFrame)
    }

    /// One step of the demux/decode loop.
    private func pump() throws {
        guard let codecCtx, let frame, let packet, let fmt else { finished = true; return }
        let r = avcodec_receive_frame(codecCtx, frame)
        if r == 0 {
            defer { av_frame_unref(frame) }
            try convert(frame)
            return
        }
        if r == cffmpeg_averror_eof() {
            try flushResampler()
            finished = true
            return
        }
        if r == cffmpeg_averror_invaliddata() {
            // A corrupt (or, at the end of a cut file, partial) packet: skip it like the ffmpeg CLI.
            consecutiveBadPackets += 1
            if consecutiveBadPackets >= 200 { throw bad(Self.corrupt) }
            return
        }
        if r != cffmpeg_averror_eagain() {
            throw bad("decoding failed: \(FF.errorString(r))")
        }
        if draining {   // EAGAIN while draining should not happen; end anyway
            try flushResampler()
            finished = true
            return
        }
        let rr = av_read_frame(fmt, packet)
        if rr < 0 {
            if cancel.isCancelled { throw CancellationError() }
            // libavformat reports many I/O failures as EOF; the AVIOContext keeps the real error.
            let ioError = fmt.pointee.pb.map { $0.pointee.error } ?? 0
            if ioError < 0 && ioError != cffmpeg_averror_eof() {
                if ioError == cffmpeg_averror(ETIMEDOUT) { throw ATVError.timeout("\(display): no data for too long") }
                throw bad("read error: \(FF.errorString(ioError))")
            }
            let atEOF = rr == cffmpeg_averror_eof() || (fmt.pointee.pb.map { $0.pointee.eof_reached != 0 } ?? false)
            guard atEOF else { throw bad("read error: \(FF.errorString(rr))") }
            avcodec_send_packet(codecCtx, nil)
            draining = true
            return
        }
        defer { av_packet_unref(packet) }
        guard packet.pointee.stream_index == streamIndex else { return }
        let sr = avcodec_send_packet(codecCtx, packet)
        if sr < 0 && sr != cffmpeg_averror_eagain() {
            // Like the ffmpeg CLI, skip a corrupt packet; give up when nothing decodes any more.
            consecutiveBadPackets += 1
            if consecutiveBadPackets >= 200 {
                throw bad(Self.corrupt)
            }
        } else {
            consecutiveBadPackets = 0
        }
    }

    private func convert(_ frame: UnsafeMutablePointer<AVFrame>) throws {
        let f = frame.pointee
        guard f.nb_samples > 0 else { return }
        let key = (format: f.format, rate: f.sample_rate, channels: f.ch_layout.nb_channels)
        if swr == nil || swrInput.map({ $0 != key }) ?? true {
            if swr != nil { try flushResampler() }
            try makeResampler(frame)
            swrInput = key
        }
        let maxOut = Int(swr_get_out_samples(swr, f.nb_samples)) + 64
        if scratch.count < maxOut * PCMFormat.bytesPerFrame {
            scratch = [UInt8](repeating: 0, count: maxOut * PCMFormat.bytesPerFrame)
        }
        let n = scratch.withUnsafeMutableBufferPointer {
            cffmpeg_swr_convert_to_interleaved(swr, $0.baseAddress, Int32(maxOut), frame)
        }
        if n < 0 { throw bad("resampling failed: \(FF.errorString(n))") }
        pending.append(contentsOf: scratch[0..<(Int(n) * PCMFormat.bytesPerFrame)])
    }

    private func makeResampler(_ frame: UnsafeMutablePointer<AVFrame>) throws {
        swr_free(&swr)
        var inLayout = AVChannelLayout()
        defer { av_channel_layout_uninit(&inLayout) }
        if frame.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC {
            av_channel_layout_default(&inLayout, frame.pointee.ch_layout.nb_channels)
        } else {
            _ = av_channel_layout_copy(&inLayout, &frame.pointee.ch_layout)
        }
        var rc = cffmpeg_swr_alloc_to_s16_stereo(&swr, Int32(PCMFormat.sampleRate), &inLayout,
                                                 frame.pointee.format, frame.pointee.sample_rate)
        if rc >= 0 { rc = swr_init(swr) }
        if rc < 0 { throw bad("cannot set up resampling: \(FF.errorString(rc))") }
    }

    private func flushResampler() throws {
        guard let swr else { return }
        while true {
            let maxOut = 4096
            if scratch.count < maxOut * PCMFormat.bytesPerFrame {
                scratch = [UInt8](repeating: 0, count: maxOut * PCMFormat.bytesPerFrame)
            }
            let n = scratch.withUnsafeMutableBufferPointer {
                cffmpeg_swr_convert_to_interleaved(swr, $0.baseAddress, Int32(maxOut), nil)
            }
            if n <= 0 { break }
            pending.append(contentsOf: scratch[0..<(Int(n) * PCMFormat.bytesPerFrame)])
        }
        swr_free(&self.swr)
        swrInput = nil
    }

    func close() {
        if frame != nil { av_frame_free(&frame) }
        if packet != nil { av_packet_free(&packet) }
        if codecCtx != nil { avcodec_free_context(&codecCtx) }
        if swr != nil { swr_free(&swr) }
        if fmt != nil { avformat_close_input(&fmt) }
        if let a = avio {
            var buffer: UnsafeMutableRawPointer? = UnsafeMutableRawPointer(a.pointee.buffer)
            av_freep(&buffer)
            avio_context_free(&avio)
            avio = nil
        }
        if let reader { reader.release(); self.reader = nil }
        if !cancelReleased { cancelRef.release(); cancelReleased = true }
    }
    private var cancelReleased = false
}
