// The code of the DocC article "Stream a file to a HomePod" (StreamToHomePod.md); each
// `docs-begin: NAME` … `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

// docs-begin: imports
import ATV
import ATVAudio
import ATVCore
import ATVDiscovery
// docs-end: imports

func streamToHomePod() async throws {
    // docs-begin: stream
    // Open the file first: a bad file fails before anything touches the network.
    let decoder = try await AudioDecoder.open(.file("song.flac"))
    let homePod = try await Discovery.find("Kitchen HomePod")
    let atv = try await connect(homePod)
    defer { Task { await atv.close() } }

    let progress = Task {
        for await p in atv.stream.progress() { print(p.state, Int(p.position), p.volume ?? 0) }
    }
    let report = try await atv.stream.streamAudio(decoder, tags: decoder.info.metadata,
                                                  duration: decoder.info.duration)
    progress.cancel()
    print("\(report.airPlayVersion) to \(report.receiver):",
          report.details.packetsSent, "packets,",
          report.details.retransmittedPackets, "retransmitted")
    // docs-end: stream
}

func streamToHomePodOptions(_ homePod: DeviceConfig) async throws {
    // docs-begin: options
    let options = ConnectOptions(airPlayVersion: .v2, timeout: .seconds(5))
    let atv = try await connect(homePod, options: options)
    // docs-end: options
    await atv.close()
}

func streamToHomePodControl(_ atv: AppleTV) async throws {
    // docs-begin: control
    // From another task while the stream plays:
    try await atv.audio.setVolume(30)
    try await atv.remoteControl.pause()
    try await atv.remoteControl.play()
    try await atv.remoteControl.stop()       // streamAudio returns; report.details.stopped
    // docs-end: control
}
