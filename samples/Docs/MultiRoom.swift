// The code of the DocC article "Multi-room" (MultiRoom.md); each `docs-begin: NAME` …
// `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVCore

func multiRoomOutputs(_ atv: AppleTV) async throws {
    // docs-begin: outputs
    // The speakers the Apple TV or HomePod plays to now (MRP).
    for output in try await atv.audio.outputDevices() {
        print(output.identifier, output.name ?? "?", output.volume)
    }
    // Let it play to more speakers, fewer, or exactly these (identifiers from scan or the list).
    try await atv.audio.addOutputDevices(["AA:BB:CC:DD:EE:FF"])
    try await atv.audio.removeOutputDevices(["AA:BB:CC:DD:EE:FF"])
    try await atv.audio.setOutputDevices(["11:22:33:44:55:66", "AA:BB:CC:DD:EE:FF"])
    // One speaker's volume within the group.
    try await atv.audio.setVolume(25, outputDevice: "AA:BB:CC:DD:EE:FF")
    // docs-end: outputs
}

func multiRoomUpdates(_ atv: AppleTV) async {
    // docs-begin: updates
    for await update in atv.updates() {
        switch update {
        case .outputDevices(let outputs): print("now playing to", outputs.compactMap(\.name))
        case .outputDeviceVolume(let id, let level): print(id, "volume", level)
        default: break
        }
    }
    // docs-end: updates
}
