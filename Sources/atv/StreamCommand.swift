import ArgumentParser
import ATV
import ATVCore
import ATVAudio
import Foundation

struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream",
        abstract: "Stream a file, URL or stdin (-) to a speaker in real time.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @Argument(help: "Audio file, http(s) URL, or - for stdin.") var input: String
    @Option(help: "Volume 0-100 for this stream.") var volume: Double?
    @Option(help: "Raw PCM on stdin, e.g. s16le:44100:2.") var format: String?
    @Option(help: "Title shown on the device.") var title: String?
    @Option(help: "Artist shown on the device.") var artist: String?
    @Option(help: "Album shown on the device.") var album: String?
    func validate() throws {
        if let v = volume, !(0...100).contains(v) { throw ValidationError("--volume must be within 0...100") }
        if format != nil && input != "-" { throw ValidationError("--format applies to raw PCM on stdin (-) only") }
    }
    func run() async throws { try notYet("streaming (RAOP sender)", issue: 3) }
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a virtual device on loopback.",
        subcommands: [SimulateSpeaker.self])
}

struct SimulateSpeaker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "speaker",
        abstract: "A virtual AirPlay 1 speaker that writes what it plays to a WAV file.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "RTSP port (0 = any).") var port: Int = 0
    @Option(help: "WAV file to write.") var output: String = "speaker.wav"
    func run() async throws { try notYet("the virtual speaker", issue: 3) }
}

struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an input's format, duration and tags.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Audio file, http(s) URL, or - for stdin.") var input: String
    @Option(help: "Raw PCM on stdin, e.g. s16le:44100:2.") var format: String?
    func run() async throws {
        try await runReportingErrors {
            let source = try streamSource(input, format: format)
            let info = try await probeAudio(source)
            var lines = [
                "Input: \(input == "-" ? "stdin" : input)",
                "Format: \(info.formatName), codec \(info.codecName), \(info.sampleRate) Hz, \(info.channels) channel\(info.channels == 1 ? "" : "s")",
                "Duration: \(info.duration.map(formatDuration) ?? "unknown")",
            ]
            let m = info.metadata
            if let t = m.title { lines.append("Title: \(t)") }
            if let a = m.artist { lines.append("Artist: \(a)") }
            if let a = m.album { lines.append("Album: \(a)") }
            if let art = m.artwork { lines.append("Artwork: \(art.count) bytes (\(imageKind(art)))") }
            print(lines.joined(separator: "\n"))
        }
    }
}

/// Maps the CLI's input argument to a source: "-" is stdin, http(s) is a URL, anything else a file.
func streamSource(_ input: String, format: String?) throws -> StreamSource {
    if input == "-" { return .stdin(rawFormat: try format.map { try RawPCMFormat(parsing: $0) }) }
    if input.hasPrefix("http://") || input.hasPrefix("https://") { return .url(input) }
    if format != nil { throw ATVError.badInput("--format applies to raw PCM on stdin (-) only") }
    return .file(input)
}

/// 3725.5 → "1:02:05", 65 → "1:05".
func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded(.down))
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, sec) : String(format: "%d:%02d", m, sec)
}

func imageKind(_ bytes: [UInt8]) -> String {
    if bytes.starts(with: [0xFF, 0xD8]) { return "JPEG" }
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "PNG" }
    return "unknown image type"
}
