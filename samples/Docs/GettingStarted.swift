// The code of the DocC article "Getting started" (Sources/ATV/ATV.docc/GettingStarted.md): each
// `docs-begin: NAME` … `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

// docs-begin: imports
import ATV
import ATVAuth
import ATVCore
import ATVDiscovery
// docs-end: imports

func gettingStartedScan() async throws {
    // docs-begin: scan
    // Multicast mDNS for 3 seconds; each device as soon as its records are complete.
    for try await device in Discovery.scan(ScanOptions(timeout: 3)) {
        print(device.name, device.address, device.services.map(\.protocol))
    }
    // docs-end: scan
}

func gettingStartedPair() async throws {
    // docs-begin: pair
    let device = try await Discovery.find("Living Room")
    let pairing = try pair(device, protocol: .companion)
    try await pairing.begin()                        // the TV shows a PIN
    print("PIN shown on the TV: ", terminator: "")
    try await pairing.pin(readLine() ?? "")
    let credentials = try await pairing.finish()     // already verified
    await pairing.close()
    try FileStorage().storeCredentials(credentials, for: .companion, of: device)
    // docs-end: pair
}

func gettingStartedConnect() async throws {
    // docs-begin: connect
    let device = try await Discovery.find("Living Room")
    let atv = try await connect(device, storage: FileStorage())
    defer { Task { await atv.close() } }
    // docs-end: connect

    // docs-begin: control
    try await atv.remoteControl.playPause()
    try await atv.remoteControl.skipForward(15)
    let playing = try await atv.metadata.playing()
    print(playing.title ?? "nothing", playing.deviceState)
    if atv.features.feature(.turnOff).state == .available {
        try await atv.power.turnOff(awaitNewState: true)
    }
    // docs-end: control

    // docs-begin: stream
    try await atv.stream.streamFile(.file("song.flac"), metadata: MediaMetadata(title: "Song"))
    // docs-end: stream
}
