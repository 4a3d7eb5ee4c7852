// The code of the DocC article "Multi-room" (MultiRoom.md); each `docs-begin: NAME` …
// `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVAudio
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

func multiRoomGroupStream(_ kitchen: DeviceConfig, _ livingRoom: DeviceConfig, _ bedroom: DeviceConfig) async throws {
    // docs-begin: group
    // One decode and one encode feed every member, on one clock; each member has its own session.
    let decoder = try await AudioDecoder.open(.file("song.flac"))
    let group = try streamGroup([
        GroupDevice(name: "Kitchen", config: kitchen),
        // Its amplifier plays 40 ms late: feed it 40 ms early.
        GroupDevice(name: "Living Room", config: livingRoom, offsetMilliseconds: 40),
    ])
    let progress = Task {
        for await p in group.progressUpdates() {
            print(Int(p.position), p.members.map { "\($0.name): \($0.state)" })
        }
    }
    // While it plays: one member's volume, a member added (it joins at the current position).
    Task {
        try await group.setVolume(30, member: "Kitchen")
        try group.add(name: "Bedroom", config: bedroom)
    }
    let report = try await group.stream(decoder)
    progress.cancel()
    for m in report.members { print(m.name, m.playedWhole ? "played it all" : "\(m.state): \(m.error ?? "")") }
    // docs-end: group
}
