// The code of the DocC article "Pipe standard input to speakers" (PipeStdinToSpeakers.md); each
// `docs-begin: NAME` … `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVAudio
import ATVCore

func pipeStdinContainer() async throws {
    // docs-begin: container
    // `ffmpeg -i in.mkv -f wav - | my-tool`: any container FFmpeg reads, from standard input.
    let decoder = try await AudioDecoder.open(.stdin(rawFormat: nil))
    // docs-end: container
    _ = decoder
}

func pipeStdinRaw() async throws {
    // docs-begin: raw
    // `sox in.wav -t raw -e signed -b 16 -c 2 -r 44100 - | my-tool`: raw PCM has no header,
    // so its layout is given.
    let format = RawPCMFormat(sampleRate: 44_100, channels: 2, sampleFormat: .s16le)
    let decoder = try await AudioDecoder.open(.stdin(rawFormat: format))
    // docs-end: raw
    _ = decoder
}

func pipeStdinToSpeaker() async throws {
    // docs-begin: stream
    let speaker = DeviceConfig(name: "Speaker", address: "192.168.1.20",
                               services: [ServiceConfig(protocol: .raop, identifier: "192.168.1.20",
                                                        port: 7000)])
    let decoder = try await AudioDecoder.open(.stdin(rawFormat: nil))
    let atv = try await connect(speaker)
    defer { Task { await atv.close() } }
    let report = try await atv.stream.streamAudio(decoder, metadata: MediaMetadata(title: "Live"))
    print("sent \(report.details.sourceFrames) frames to \(report.receiver)")
    // docs-end: stream
}
