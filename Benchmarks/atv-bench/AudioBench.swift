import ATVAudio
import ATVCore
import Foundation

/// Audio pipeline benchmarks. Prints one JSON line per figure, each comparing our code with the ffmpeg
/// CLI doing the same work in the same run:
///   decode_flac / decode_mp3: decode `seconds` of noisy stereo (FLAC 44.1 kHz 16-bit; MP3 48 kHz 192k)
///     to 44.1 kHz s16 stereo, × real time (median of 3, alternating with the CLI), vs `ffmpeg -i in -f s16le -ar 44100 -ac 2 -y /dev/null`.
///   alac_encode: ALACEncoder on the decoded FLAC PCM in 352-frame packets, × real time and bytes, vs
///     `ffmpeg -f s16le … -i pcm -c:a alac -f data out` (raw packet payloads). Caveat: the CLI can't make
///     352-frame ALAC packets (the encoder forces frame_size 4096 and the CLI re-chunks to it, ignoring
///     -frame_size), so its packets are 4096 frames: fewer headers and longer prediction runs, a few %
///     smaller. The ratio compares the same work at the packet size each side actually uses.
///   alac_verbatim_encode / alac_decode: pure-Swift VerbatimALAC and ALACDecoder throughput (no baseline).
/// Each run validates its output (frame counts, lossless round trip) and throws on a mismatch.
func runAudioBenchmarks(seconds: Int = 60) async throws {
    let dir = NSTemporaryDirectory() + "atv-audio-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let expectedFrames = seconds * 44_100

    func noise(_ rate: Int) -> [String] {
        ["-f", "lavfi", "-i", "anoisesrc=d=\(seconds):c=pink:r=\(rate):a=0.3:s=1",
         "-f", "lavfi", "-i", "anoisesrc=d=\(seconds):c=pink:r=\(rate):a=0.3:s=2",
         "-f", "lavfi", "-i", "sine=f=440:r=\(rate):d=\(seconds)",
         "-filter_complex", "[0:a][2:a]amix=inputs=2[l];[1:a][2:a]amix=inputs=2[r];[l][r]amerge=inputs=2"]
    }
    let flac = dir + "/noise-44k.flac"
    let mp3 = dir + "/noise-48k.mp3"
    try benchFFmpeg(noise(44_100) + ["-ar", "44100", "-c:a", "flac", "-sample_fmt", "s16", flac])
    try benchFFmpeg(noise(48_000) + ["-ar", "48000", "-c:a", "libmp3lame", "-b:a", "192k", mp3])

    var flacPCM: [PCMPacket] = []
    for (name, path) in [("decode_flac", flac), ("decode_mp3", mp3)] {
        // Median of 3 runs per side, alternating ours and the CLI.
        var oursRuns: [Double] = [], cliRuns: [Double] = []
        for _ in 0..<3 {
            let t0 = ContinuousClock.now
            var frames = 0
            var packets: [PCMPacket] = []
            let keep = name == "decode_flac" && flacPCM.isEmpty
            for try await p in try await AudioDecoder.open(.file(path)) {
                frames += p.frames
                if keep { packets.append(p) }
            }
            oursRuns.append((ContinuousClock.now - t0).seconds)
            guard frames == expectedFrames else {
                throw ATVError.invalidState("\(name): decoded \(frames) frames, expected \(expectedFrames)")
            }
            if keep { flacPCM = packets }
            let t1 = ContinuousClock.now
            try benchFFmpeg(["-i", path, "-f", "s16le", "-ar", "44100", "-ac", "2", "/dev/null"])
            cliRuns.append((ContinuousClock.now - t1).seconds)
        }
        let ours = median(oursRuns), cli = median(cliRuns)
        let oursX = Double(seconds) / ours, cliX = Double(seconds) / cli
        benchPrint([("bench", name), ("seconds_of_audio", seconds), ("ours_x_realtime", oursX),
                    ("ffmpeg_x_realtime", cliX), ("ratio", oursX / cliX)])
    }

    // ALAC encode: ours vs the CLI on the same PCM.
    let pcmBytes = flacPCM.reduce(0) { $0 + $1.bytes.count }
    let rawPath = dir + "/pcm.s16le"
    var raw = [UInt8]()
    raw.reserveCapacity(pcmBytes)
    for p in flacPCM { raw += p.bytes }
    try Data(raw).write(to: URL(fileURLWithPath: rawPath))
    raw = []
    var encoded: [[UInt8]] = []
    var oursEncRuns: [Double] = [], cliEncRuns: [Double] = []
    var oursBytes = 0
    let alacOut = dir + "/cli.alac"
    // Median of 3 runs per side, alternating ours and the CLI.
    for _ in 0..<3 {
        let enc = try ALACEncoder()
        var out: [[UInt8]] = []
        out.reserveCapacity(flacPCM.count)
        let t0 = ContinuousClock.now
        for p in flacPCM { out.append(try enc.encode(p)) }
        oursEncRuns.append((ContinuousClock.now - t0).seconds)
        oursBytes = out.reduce(0) { $0 + $1.count }
        encoded = out
        let t1 = ContinuousClock.now
        try benchFFmpeg(["-f", "s16le", "-ar", "44100", "-ac", "2", "-i", rawPath,
                         "-map", "0:a", "-c:a", "alac", "-f", "data", alacOut])
        cliEncRuns.append((ContinuousClock.now - t1).seconds)
    }
    let oursEnc = median(oursEncRuns), cliEnc = median(cliEncRuns)
    // Validate: lossless through the decoder (and time the decoder while at it).
    var decodeTime = Double.infinity
    var decodedOK = true
    for _ in 0..<3 {
        let dec = try ALACDecoder()
        var decoded: [PCMPacket] = []
        decoded.reserveCapacity(encoded.count)
        let td = ContinuousClock.now
        for frame in encoded { decoded.append(try dec.decode(frame)) }
        decodeTime = min(decodeTime, (ContinuousClock.now - td).seconds)
        decodedOK = decoded == flacPCM
    }
    guard decodedOK else { throw ATVError.invalidState("alac: round trip is not lossless") }

    let cliBytes = (try FileManager.default.attributesOfItem(atPath: alacOut)[.size] as? Int) ?? -1
    let oursX = Double(seconds) / oursEnc, cliX = Double(seconds) / cliEnc
    benchPrint([("bench", "alac_encode"), ("seconds_of_audio", seconds), ("packets", encoded.count),
                ("ours_x_realtime", oursX), ("ffmpeg_x_realtime", cliX), ("ratio", oursX / cliX),
                ("pcm_bytes", pcmBytes), ("ours_bytes", oursBytes), ("ffmpeg_bytes", cliBytes), ("ffmpeg_packet_frames", 4096),
                ("ours_compression", Double(oursBytes) / Double(pcmBytes)),
                ("ffmpeg_compression", Double(cliBytes) / Double(pcmBytes)),
                ("size_ratio", Double(oursBytes) / Double(cliBytes))])

    var verbatimTime = Double.infinity
    var verbatimBytes = 0
    for _ in 0..<3 {
        let t0 = ContinuousClock.now
        var n = 0
        for p in flacPCM { n += VerbatimALAC.encode(p).count }
        verbatimTime = min(verbatimTime, (ContinuousClock.now - t0).seconds)
        verbatimBytes = n
    }
    benchPrint([("bench", "alac_verbatim_encode"), ("seconds_of_audio", seconds),
                ("ours_x_realtime", Double(seconds) / verbatimTime), ("ours_bytes", verbatimBytes),
                ("ours_compression", Double(verbatimBytes) / Double(pcmBytes))])
    benchPrint([("bench", "alac_decode"), ("seconds_of_audio", seconds),
                ("ours_x_realtime", Double(seconds) / decodeTime), ("lossless", decodedOK)])
}

private extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}

private func benchFFmpeg(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
    p.arguments = ["-hide_banner", "-nostdin", "-v", "error", "-y"] + args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw ATVError.invalidState("ffmpeg \(args.joined(separator: " ")) exited with \(p.terminationStatus)")
    }
}

/// One JSON object per line, keys in the given order.
private func benchPrint(_ fields: [(String, Any)]) {
    func value(_ v: Any) -> String {
        switch v {
        case let s as String: "\"\(s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""
        case let b as Bool: b ? "true" : "false"
        case let i as Int: String(i)
        case let d as Double: d.isFinite ? String(format: "%.4g", d) : "null"
        default: "null"
        }
    }
    let line = "{" + fields.map { "\"\($0.0)\":\(value($0.1))" }.joined(separator: ",") + "}\n"
    FileHandle.standardOutput.write(Data(line.utf8))   // unbuffered: lines survive a later failure
}
