import ATVTestSupport
import ATVCore
import Foundation
import Testing
@testable import ATVAudio

/// 3 s at 44.1 kHz.
private let threeSeconds = 132_300

@Suite("AudioDecoder")
struct DecoderTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let file: String
        let codec: [String]
        let frames: Int
        let formatName: String
        let codecName: String
        var testDescription: String { file }
    }

    static let formats: [Case] = [
        // PCM and FLAC are lossless with exact lengths: exactly 3 s.
        Case(file: "s.wav", codec: ["-c:a", "pcm_s16le"], frames: threeSeconds, formatName: "wav", codecName: "pcm_s16le"),
        Case(file: "s.flac", codec: ["-c:a", "flac"], frames: threeSeconds, formatName: "flac", codecName: "flac"),
        // LAME writes encoder delay/padding into its Xing/Info header; libavformat trims both on a seekable
        // file (gapless), so the length is exact.
        Case(file: "s.mp3", codec: ["-c:a", "libmp3lame", "-b:a", "128k"], frames: threeSeconds, formatName: "mp3", codecName: "mp3"),
        // Ogg Vorbis carries exact granule positions: exact.
        Case(file: "s.ogg", codec: ["-c:a", "libvorbis"], frames: threeSeconds, formatName: "ogg", codecName: "vorbis"),
        // AAC in MP4: the muxer's edit list removes the 1024-sample encoder priming, but FFmpeg 5.1 does
        // not trim the end padding of the last 1024-sample AAC frame: ceil(132300 / 1024) * 1024 = 133120
        // (the ffmpeg CLI yields the same count).
        Case(file: "s.m4a", codec: ["-c:a", "aac", "-b:a", "128k"], frames: 133_120,
             formatName: "mov,mp4,m4a,3gp,3g2,mj2", codecName: "aac"),
    ]

    @Test("decodes each container/codec to the exact frame count, in 352-frame packets", arguments: formats)
    func decodesFormats(_ c: Case) async throws {
        let path = try await Fixtures.shared.sine(c.file, codecArgs: c.codec)
        let decoder = try await AudioDecoder.open(.file(path))
        #expect(decoder.info.formatName == c.formatName)
        #expect(decoder.info.codecName == c.codecName)
        #expect(decoder.info.sampleRate == 44_100)
        #expect(decoder.info.channels == 2)
        let d = try #require(decoder.info.duration)
        #expect(abs(d - 3.0) < 0.05)
        let packets = try await decodeAll(decoder)
        #expect(packets.reduce(0) { $0 + $1.frames } == c.frames)
        #expect(wellFormed(packets))
        // Same PCM as the ffmpeg CLI (same libraries, same default resampler settings).
        #expect(joined(packets) == (try await cliPCM(path)))
    }

    @Test("lossless input decodes bit-exact to the source samples")
    func losslessIsBitExact() async throws {
        let wav = try await Fixtures.shared.sine("s.wav", codecArgs: ["-c:a", "pcm_s16le"])
        let source = try WAVFile(path: wav).data
        for file in ["s.wav", "s.flac"] {
            let path = try await Fixtures.shared.sine(file, codecArgs: file.hasSuffix("flac") ? ["-c:a", "flac"] : ["-c:a", "pcm_s16le"])
            let pcm = joined(try await decodeAll(try await AudioDecoder.open(.file(path))))
            #expect(pcm == source, "\(file)")
        }
    }

    @Test("other rates, depths and channel counts are resampled to 44.1 kHz stereo")
    func resamples() async throws {
        let mono48 = try await Fixtures.shared.sine("m48.wav", rate: 48_000, channels: 1, codecArgs: ["-c:a", "pcm_s16le"])
        let flac96 = try await Fixtures.shared.sine("s96.flac", rate: 96_000, codecArgs: ["-c:a", "flac", "-sample_fmt", "s32"])
        let wav96 = try await Fixtures.shared.sine("s96.wav", rate: 96_000, codecArgs: ["-c:a", "pcm_s24le"])
        let mp3_48 = try await Fixtures.shared.sine("s48.mp3", rate: 48_000, codecArgs: ["-c:a", "libmp3lame"])
        for (path, rate, channels) in [(mono48, 48_000, 1), (flac96, 96_000, 2), (wav96, 96_000, 2), (mp3_48, 48_000, 2)] {
            let decoder = try await AudioDecoder.open(.file(path))
            #expect(decoder.info.sampleRate == rate)
            #expect(decoder.info.channels == channels)
            let packets = try await decodeAll(decoder)
            // 3 s of input is 3 s of output: exactly 132300 frames after resampling.
            #expect(packets.reduce(0) { $0 + $1.frames } == threeSeconds, "\(path)")
            #expect(wellFormed(packets))
            #expect(joined(packets) == (try await cliPCM(path)), "\(path)")
        }
        // Mono goes to both channels.
        let mono = joined(try await decodeAll(try await AudioDecoder.open(.file(mono48))))
        var same = true
        for i in stride(from: 0, to: mono.count, by: 4) where mono[i] != mono[i + 2] || mono[i + 1] != mono[i + 3] {
            same = false
        }
        #expect(same)
    }

    @Test("a custom packet size is honoured")
    func customPacketSize() async throws {
        let path = try await Fixtures.shared.sine("s.flac", codecArgs: ["-c:a", "flac"])
        let packets = try await decodeAll(try await AudioDecoder.open(.file(path), framesPerPacket: 1000))
        #expect(wellFormed(packets, size: 1000))
        #expect(packets.count == 133)   // 132 full packets + 300 frames
        #expect(packets.last?.frames == 300)
    }

    @Test("non-seekable pipe input gives the file's PCM (WAV, FLAC bit-exact; MP3 without the end trim)",
          arguments: ["s.wav", "s.flac", "s.mp3"])
    func pipeInput(_ file: String) async throws {
        let codec: [String] = switch file {
        case "s.wav": ["-c:a", "pcm_s16le"]
        case "s.flac": ["-c:a", "flac"]
        default: ["-c:a", "libmp3lame", "-b:a", "128k"]
        }
        let path = try await Fixtures.shared.sine(file, codecArgs: codec)
        let fromFile = joined(try await decodeAll(try await AudioDecoder.open(.file(path))))
        let (reader, cat) = try catPipe(path)
        let decoder = try await AudioDecoder.open(fileDescriptor: reader.fileDescriptor, name: "pipe")
        let packets = try await decodeAll(decoder)
        try reader.close()
        await waitForExit(cat)
        let fromPipe = joined(packets)
        // Duration on a pipe: only FLAC states it in its header (STREAMINFO sample count).
        #expect(decoder.info.duration == (file == "s.flac" ? 3.0 : nil))
        #expect(wellFormed(packets))
        if file == "s.mp3" {
            // Without seeking, libavformat can't apply the LAME end-padding trim: the start delay is still
            // removed (identical prefix) but a few padding frames remain at the end.
            #expect(fromPipe.count > fromFile.count)
            #expect(fromPipe.count - fromFile.count < 1152 * 4)
            #expect(Array(fromPipe.prefix(fromFile.count)) == fromFile)
        } else {
            #expect(fromPipe == fromFile)
            #expect(fromPipe.count == threeSeconds * 4)
        }
        if file == "s.wav" {
            // WAV's header size is known even on a pipe, but the stream length is not trusted by us.
            #expect(decoder.info.formatName == "wav")
        }
    }

    @Test("StreamSource.stdin reads fd 0 (a pipe is put there for the test), with and without a raw format")
    func stdinSource() async throws {
        let flac = try await Fixtures.shared.sine("s.flac", codecArgs: ["-c:a", "flac"])
        let expected = joined(try await decodeAll(try await AudioDecoder.open(.file(flac))))
        let pcm = noisyPCM(frames: 10_000, seed: 21)
        let raw = try await Fixtures.shared.file("stdin.s16le") { try Data(pcm).write(to: URL(fileURLWithPath: $0)) }
        let saved = dup(0)
        #expect(saved >= 0)
        defer { dup2(saved, 0); close(saved) }
        for (path, format, want) in [(flac, nil as RawPCMFormat?, expected), (raw, RawPCMFormat(), pcm)] {
            let (reader, cat) = try catPipe(path)
            #expect(dup2(reader.fileDescriptor, 0) == 0)
            try reader.close()
            let decoder = try await AudioDecoder.open(.stdin(rawFormat: format))
            let got = joined(try await decodeAll(decoder))
            await waitForExit(cat)
            #expect(got == want, "\(path)")
        }
    }

    @Test("raw PCM with a format: from a pipe and from a file")
    func rawPCM() async throws {
        // 1 s of s16le stereo noise at 44.1 kHz: decodes to the very same bytes.
        let pcm = noisyPCM(frames: 44_100, seed: 7)
        let raw = try await Fixtures.shared.file("noise.s16le") { try Data(pcm).write(to: URL(fileURLWithPath: $0)) }
        let (reader, cat) = try catPipe(raw)
        let decoder = try await AudioDecoder.open(fileDescriptor: reader.fileDescriptor,
                                                  rawFormat: RawPCMFormat(sampleRate: 44_100, channels: 2, sampleFormat: .s16le))
        #expect(decoder.info.formatName == "s16le")
        #expect(decoder.info.duration == nil)   // unknown on a pipe
        let packets = try await decodeAll(decoder)
        try reader.close()
        await waitForExit(cat)
        #expect(joined(packets) == pcm)
        #expect(packets.reduce(0) { $0 + $1.frames } == 44_100)
        #expect(wellFormed(packets))

        // The left channel as s16be mono at 22050 Hz from a raw file: 22050 frames = 1 s → 44100 output frames.
        let be = try await Fixtures.shared.file("mono.s16be") { path in
            var out: [UInt8] = []
            for i in stride(from: 0, to: 22_050 * 4, by: 4) { out += [pcm[i + 1], pcm[i]] }
            try Data(out).write(to: URL(fileURLWithPath: path))
        }
        let d2 = try await AudioDecoder.open(rawPCMFile: be, format: RawPCMFormat(sampleRate: 22_050, channels: 1, sampleFormat: .s16be))
        #expect(d2.info.sampleRate == 22_050 && d2.info.channels == 1)
        let n = try await decodeAll(d2).reduce(0) { $0 + $1.frames }
        #expect(n == 44_100)

        // f32le stereo at 48 kHz: 48000 input frames → 44100 output frames.
        let f32 = try await Fixtures.shared.file("tone.f32le") { path in
            try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1", "-ac", "2",
                        "-f", "f32le", path])
        }
        let d3 = try await AudioDecoder.open(rawPCMFile: f32, format: try RawPCMFormat(parsing: "f32le:48000:2"))
        #expect(try await decodeAll(d3).reduce(0) { $0 + $1.frames } == 44_100)
    }

    @Test("metadata: tags, duration and attached cover art")
    func metadata() async throws {
        let cover = try await Fixtures.shared.cover()
        let src = try await Fixtures.shared.sine("s.wav", codecArgs: ["-c:a", "pcm_s16le"])
        let mp3 = try await Fixtures.shared.file("tagged.mp3") { path in
            try ffmpeg(["-i", src, "-i", cover, "-map", "0", "-map", "1", "-c:a", "libmp3lame", "-c:v", "copy",
                        "-disposition:v", "attached_pic", "-id3v2_version", "3",
                        "-metadata", "title=Song Title", "-metadata", "artist=Some Artist",
                        "-metadata", "album=An Album", path])
        }
        let info = try await probeAudio(.file(mp3))
        #expect(info.metadata.title == "Song Title")
        #expect(info.metadata.artist == "Some Artist")
        #expect(info.metadata.album == "An Album")
        #expect(abs((info.metadata.duration ?? 0) - 3.0) < 0.05)
        #expect(info.metadata.duration == info.duration)
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: cover)))
        #expect(info.metadata.artwork == png)
        #expect(info.metadata.artwork?.prefix(4) == [0x89, 0x50, 0x4E, 0x47])
        // The decoder sees the same, and the cover stream doesn't disturb decoding.
        let decoder = try await AudioDecoder.open(.file(mp3))
        #expect(decoder.info == info)
        #expect(try await decodeAll(decoder).reduce(0) { $0 + $1.frames } == threeSeconds)

        // FLAC Vorbis comments in upper case, Ogg Vorbis comments live on the stream: both found.
        let flac = try await Fixtures.shared.file("tagged.flac") { path in
            try ffmpeg(["-i", src, "-c:a", "flac", "-metadata", "TITLE=Flac Title", "-metadata", "ARTIST=Flac Artist",
                        "-metadata", "ALBUM=Flac Album", path])
        }
        let fi = try await probeAudio(.file(flac))
        #expect(fi.metadata.title == "Flac Title" && fi.metadata.artist == "Flac Artist" && fi.metadata.album == "Flac Album")
        #expect(fi.metadata.artwork == nil)
        let ogg = try await Fixtures.shared.file("tagged.ogg") { path in
            try ffmpeg(["-i", src, "-c:a", "libvorbis", "-metadata", "title=Ogg Title", "-metadata", "artist=Ogg Artist", path])
        }
        let oi = try await probeAudio(.file(ogg))
        #expect(oi.metadata.title == "Ogg Title" && oi.metadata.artist == "Ogg Artist" && oi.metadata.album == nil)
    }

    @Test("a file cut in the middle decodes what is there (like the ffmpeg CLI), without an error",
          arguments: ["s.flac", "s.mp3", "s.wav"])
    func cutInTheMiddle(_ file: String) async throws {
        let codec: [String] = switch file {
        case "s.wav": ["-c:a", "pcm_s16le"]
        case "s.flac": ["-c:a", "flac"]
        default: ["-c:a", "libmp3lame", "-b:a", "128k"]
        }
        let full = try await Fixtures.shared.sine(file, codecArgs: codec)
        let half = try await Fixtures.shared.file("half-" + file) { path in
            let d = try Data(contentsOf: URL(fileURLWithPath: full))
            try d.prefix(d.count / 2).write(to: URL(fileURLWithPath: path))
        }
        let packets = try await decodeAll(try await AudioDecoder.open(.file(half)))
        let frames = packets.reduce(0) { $0 + $1.frames }
        #expect(frames > threeSeconds * 4 / 10 && frames < threeSeconds * 6 / 10, "\(frames)")
        #expect(wellFormed(packets))
        // What is there is the start of the full decode.
        let whole = joined(try await decodeAll(try await AudioDecoder.open(.file(full))))
        let part = joined(packets)
        let compared = file == "s.mp3" ? part.count - 1152 * 4 * 2 : part.count   // MP3: last frames may differ
        #expect(Array(part.prefix(compared)) == Array(whole.prefix(compared)))
    }

    @Test("only http(s) URLs are accepted; a file path is never taken for an FFmpeg protocol")
    func urlSchemes() async throws {
        for url in ["ftp://127.0.0.1/x.mp3", "file:///etc/passwd", "pipe:0", "concat:a|b"] {
            await #expect(throws: ATVError.badInput("\(url): unsupported URL (only http:// and https:// are supported)")) {
                _ = try await AudioDecoder.open(.url(url))
            }
        }
        // "pipe:0" as a *file* is a (missing) file named pipe:0, not stdin.
        await #expect(throws: ATVError.badInput("pipe:0: no such file")) { _ = try await AudioDecoder.open(.file("pipe:0")) }
        // A real file whose name contains a colon opens fine.
        let src = try await Fixtures.shared.sine("s.wav", codecArgs: ["-c:a", "pcm_s16le"])
        let colon = try await Fixtures.shared.file("a:b.wav") { try FileManager.default.copyItem(atPath: src, toPath: $0) }
        #expect(try await decodeAll(try await AudioDecoder.open(.file(colon))).reduce(0) { $0 + $1.frames } == threeSeconds)
    }

    @Test("bad inputs fail at open with a one-line badInput naming the path")
    func badInputs() async throws {
        let dir = Fixtures.shared.dir
        let missing = dir + "/does-not-exist.mp3"
        let text = try await Fixtures.shared.file("notes.txt") { try "hello, this is not audio\n".write(toFile: $0, atomically: true, encoding: .utf8) }
        let png = try await Fixtures.shared.cover()
        let flac = try await Fixtures.shared.sine("s.flac", codecArgs: ["-c:a", "flac"])
        let truncated = try await Fixtures.shared.file("truncated.flac") { path in
            let d = try Data(contentsOf: URL(fileURLWithPath: flac))
            try d.prefix(30).write(to: URL(fileURLWithPath: path))   // cut inside STREAMINFO
        }
        let wav = try await Fixtures.shared.sine("s.wav", codecArgs: ["-c:a", "pcm_s16le"])
        let truncatedWAV = try await Fixtures.shared.file("truncated.wav") { path in
            try Data(contentsOf: URL(fileURLWithPath: wav)).prefix(20).write(to: URL(fileURLWithPath: path))
        }
        let garbage = try await Fixtures.shared.file("garbage.mp3") { path in
            var rng = SplitMix64(seed: 99)
            try Data((0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: URL(fileURLWithPath: path))
        }
        let empty = try await Fixtures.shared.file("empty.wav") { try Data().write(to: URL(fileURLWithPath: $0)) }
        for (path, reason) in [(missing, "no such file"), (text, "not a recognized audio file"), (png, "no audio stream"), (truncated, "truncated or corrupt"),
                               (truncatedWAV, "not a recognized audio file"), (garbage, "not a recognized audio file"),
                               (empty, "empty file"), (dir, "is a directory")] {
            var message: String? = nil
            do {
                _ = try await AudioDecoder.open(.file(path))
            } catch let e as ATVError {
                message = e.badInputMessage
            }
            let m = try #require(message, "\(path) should fail with badInput")
            #expect(m.hasPrefix(path + ": "), "\(m)")
            #expect(!m.contains("\n"))
            if !reason.isEmpty { #expect(m.contains(reason), "\(m)") }
            // probeAudio rejects the unreadable ones too (it does not decode, so it only needs a stream).
            if path == missing || path == png || path == text {
                await #expect(throws: ATVError.self) { _ = try await probeAudio(.file(path)) }
            }
        }
    }
}
