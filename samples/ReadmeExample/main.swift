import ATV
import ATVCore
import ATVDiscovery

// Find a device and connect: every protocol it offers, each set up when first used
// (streaming to a HomePod opens no remote-control tunnel).
let device = try await Discovery.find("Kitchen")
let atv = try await connect(device)
defer { Task { await atv.close() } }

// Stream a file, following its progress; while it plays, pause, stop and volume go to it.
let progress = Task { for await p in atv.stream.progress() { print(p.state, p.position) } }
try await atv.stream.streamFile(.file("song.flac"), metadata: MediaMetadata(title: "Song"))
progress.cancel()

// Every interface goes to the best protocol (MRP > DMAP > Companion > AirPlay > RAOP):
try await atv.audio.setVolume(40)            // 0...100, checked
print(try await atv.metadata.playing())
print(atv.features.feature(.streamFile).state)
for await update in atv.updates() { print(update) }   // push updates, de-duplicated
