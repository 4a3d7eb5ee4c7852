// The code of the DocC article "Push updates" (PushUpdates.md); each `docs-begin: NAME` …
// `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVCore

func pushUpdates(_ atv: AppleTV) async {
    // docs-begin: updates
    // Ends when the device is closed or its connection is lost.
    for await update in atv.updates() {
        switch update {
        case .playing(let playing):
            print(playing.deviceState, playing.title ?? "-", playing.position ?? 0)
        case .volume(let level):
            print("volume", level)
        case .powerState(let state):
            print("power", state)
        case .keyboardFocus(let focus):
            print("keyboard", focus)
        case .connectionLost(let reason):
            print("lost:", reason)
        case .connectionClosed:
            print("closed")
        case .outputDevices, .outputDeviceVolume:
            break
        }
    }
    // docs-end: updates
}

func pushUpdatesFeature(_ atv: AppleTV) async throws {
    // docs-begin: feature
    guard atv.features.feature(.pushUpdates).state == .available else {
        print("no protocol of this device pushes updates: poll metadata.playing() instead")
        return
    }
    // docs-end: feature
}

func pushUpdatesTask(_ atv: AppleTV) async {
    // docs-begin: task
    let watcher = Task {
        for await case .playing(let playing) in atv.updates() { print(playing.title ?? "-") }
    }
    // … use the device …
    await atv.close()          // ends the stream, so the task ends too
    await watcher.value
    // docs-end: task
}
