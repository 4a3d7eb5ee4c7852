// The code of the DocC article "Play a URL on an Apple TV" (PlayURLOnAppleTV.md); each
// `docs-begin: NAME` … `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVCore
import ATVDiscovery

func playURLOnAppleTV() async throws {
    // docs-begin: play
    let appleTV = try await Discovery.find("Living Room")
    let atv = try await connect(appleTV, storage: FileStorage())   // AirPlay credentials, if paired
    defer { Task { await atv.close() } }

    let progress = Task {
        for await p in atv.stream.progress() { print(p.state, p.position, p.duration ?? 0) }
    }
    // Returns when playback ends (played out, stopped on the TV, or stop() below).
    try await atv.stream.playURL("https://example.com/film.mp4", position: 60)
    progress.cancel()
    // docs-end: play
}

func playLocalFileOnAppleTV(_ atv: AppleTV) async throws {
    // docs-begin: local
    // A local file: served to the TV by a small HTTP server (Range requests) while it plays.
    try await atv.stream.playURL("/home/me/Videos/holiday.mp4")
    // docs-end: local
}

func controlURLPlayback(_ atv: AppleTV) async throws {
    // docs-begin: control
    // While the URL plays, AirPlay takes over these calls:
    try await atv.remoteControl.pause()
    try await atv.remoteControl.setPosition(120)
    try await atv.remoteControl.play()
    print(try await atv.metadata.playing().position ?? 0)
    try await atv.remoteControl.stop()       // playURL returns
    // docs-end: control
}
