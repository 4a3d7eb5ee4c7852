import ArgumentParser
import ATV
import ATVCore
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
    func run() async throws { try notYet("probe", issue: 2) }
}
