import ATVCore

public struct FacadeRemoteControl: RemoteControl {
    let device: AppleTV
    private func relay(_ f: FeatureName, _ call: (any RemoteControl) async throws -> Void) async throws {
        try device.guardOpen()
        try await device.remoteRelayer.relay(f, call)
    }
    public func up(_ action: InputAction = .singleTap) async throws { try await relay(.up) { try await $0.up(action) } }
    public func down(_ action: InputAction = .singleTap) async throws { try await relay(.down) { try await $0.down(action) } }
    public func left(_ action: InputAction = .singleTap) async throws { try await relay(.left) { try await $0.left(action) } }
    public func right(_ action: InputAction = .singleTap) async throws { try await relay(.right) { try await $0.right(action) } }
    public func select(_ action: InputAction = .singleTap) async throws { try await relay(.select) { try await $0.select(action) } }
    public func menu(_ action: InputAction = .singleTap) async throws { try await relay(.menu) { try await $0.menu(action) } }
    public func home(_ action: InputAction = .singleTap) async throws { try await relay(.home) { try await $0.home(action) } }
    public func homeHold() async throws { try await relay(.homeHold) { try await $0.homeHold() } }
    public func topMenu() async throws { try await relay(.topMenu) { try await $0.topMenu() } }
    public func play() async throws { try await relay(.play) { try await $0.play() } }
    public func playPause() async throws { try await relay(.playPause) { try await $0.playPause() } }
    public func pause() async throws { try await relay(.pause) { try await $0.pause() } }
    public func stop() async throws { try await relay(.stop) { try await $0.stop() } }
    public func next() async throws { try await relay(.next) { try await $0.next() } }
    public func previous() async throws { try await relay(.previous) { try await $0.previous() } }
    public func skipForward(_ interval: Double = 0) async throws { try await relay(.skipForward) { try await $0.skipForward(interval) } }
    public func skipBackward(_ interval: Double = 0) async throws { try await relay(.skipBackward) { try await $0.skipBackward(interval) } }
    public func setPosition(_ position: Int) async throws { try await relay(.setPosition) { try await $0.setPosition(position) } }
    public func setShuffle(_ state: ShuffleState) async throws { try await relay(.setShuffle) { try await $0.setShuffle(state) } }
    public func setRepeat(_ state: RepeatState) async throws { try await relay(.setRepeat) { try await $0.setRepeat(state) } }
    public func channelUp() async throws { try await relay(.channelUp) { try await $0.channelUp() } }
    public func channelDown() async throws { try await relay(.channelDown) { try await $0.channelDown() } }
    public func screensaver() async throws { try await relay(.screensaver) { try await $0.screensaver() } }
    public func guide() async throws { try await relay(.guide) { try await $0.guide() } }
    public func controlCenter() async throws { try await relay(.controlCenter) { try await $0.controlCenter() } }
}

public struct FacadeMetadata: Metadata {
    let device: AppleTV
    public func playing() async throws -> Playing {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.title) { try await $0.playing() }
    }
    public func artwork(width: Int? = 512, height: Int? = nil) async throws -> ArtworkInfo? {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.artwork) { try await $0.artwork(width: width, height: height) }
    }
    public func artworkID() async throws -> String {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.artwork) { try await $0.artworkID() }
    }
    public func app() async throws -> App? {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.app) { try await $0.app() }
    }
}

public struct FacadeStream: StreamInterface {
    let device: AppleTV
    /// Progress of every stream and URL played through this device from now on, from whichever
    /// protocol plays it (a new subscription each call; sets nothing up). Ends when the device closes.
    public func progress() -> AsyncStream<StreamProgress> {
        let sources = device.streamRelayer.ordered().map { $0.1.progress() }
        let (merged, continuation) = AsyncStream.makeStream(of: StreamProgress.self, bufferingPolicy: .bufferingNewest(256))
        let feeds = sources.map { source in
            Task { for await p in source { continuation.yield(p) } }
        }
        let end = Task {
            for feed in feeds { await feed.value }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            for feed in feeds { feed.cancel() }
            end.cancel()
        }
        return merged
    }
    public func playURL(_ url: String, position: Double = 0) async throws {
        try device.guardOpen()
        guard device.features.feature(.playURL).state == .available else { throw ATVError.notSupported(.playURL) }
        try await device.streamRelayer.relay(.playURL) { try await $0.playURL(url, position: position) }
    }
    public func streamFile(_ source: StreamSource, metadata: MediaMetadata? = nil,
                           overrideMissingMetadata: Bool = false) async throws {
        try device.guardOpen()
        try await device.streamRelayer.relay(.streamFile) {
            try await $0.streamFile(source, metadata: metadata, overrideMissingMetadata: overrideMissingMetadata)
        }
    }
}

public struct FacadePower: Power {
    let device: AppleTV
    public func powerState() async throws -> PowerState {
        try device.guardOpen()
        return try await device.powerRelayer.relay(.powerState) { try await $0.powerState() }
    }
    public func turnOn(awaitNewState: Bool = false) async throws {
        try device.guardOpen()
        try await device.powerRelayer.relay(.turnOn) { try await $0.turnOn(awaitNewState: awaitNewState) }
    }
    public func turnOff(awaitNewState: Bool = false) async throws {
        try device.guardOpen()
        try await device.powerRelayer.relay(.turnOff) { try await $0.turnOff(awaitNewState: awaitNewState) }
    }
}

/// Volume is guarded both ways: a level outside 0...100 is never sent, and a protocol reporting one
/// is an error rather than a wrong number.
public struct FacadeAudio: Audio {
    let device: AppleTV
    static func check(_ level: Double, _ what: String) throws {
        guard level.isFinite, (0...100).contains(level) else {
            throw ATVError.invalidValue("\(what) \(level) is outside 0...100")
        }
    }
    public func volume() async throws -> Double {
        try device.guardOpen()
        let v = try await device.audioRelayer.relay(.volume) { try await $0.volume() }
        try Self.check(v, "device reported volume")
        return v
    }
    public func setVolume(_ level: Double, outputDevice: String? = nil) async throws {
        try device.guardOpen()
        try Self.check(level, "volume")
        try await device.audioRelayer.relay(.setVolume) { try await $0.setVolume(level, outputDevice: outputDevice) }
    }
    public func volumeUp() async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.volumeUp) { try await $0.volumeUp() }
    }
    public func volumeDown() async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.volumeDown) { try await $0.volumeDown() }
    }
    public func outputDevices() async throws -> [OutputDevice] {
        try device.guardOpen()
        return try await device.audioRelayer.relay(.outputDevices) { try await $0.outputDevices() }
    }
    public func addOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.addOutputDevices) { try await $0.addOutputDevices(ids) }
    }
    public func removeOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.removeOutputDevices) { try await $0.removeOutputDevices(ids) }
    }
    public func setOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.setOutputDevices) { try await $0.setOutputDevices(ids) }
    }
}

public struct FacadeApps: Apps {
    let device: AppleTV
    public func appList() async throws -> [App] {
        try device.guardOpen()
        return try await device.appsRelayer.relay(.appList) { try await $0.appList() }
    }
    public func launchApp(_ bundleIDOrURL: String) async throws {
        try device.guardOpen()
        try await device.appsRelayer.relay(.launchApp) { try await $0.launchApp(bundleIDOrURL) }
    }
}

public struct FacadeUserAccounts: UserAccounts {
    let device: AppleTV
    public func accountList() async throws -> [UserAccount] {
        try device.guardOpen()
        return try await device.accountsRelayer.relay(.accountList) { try await $0.accountList() }
    }
    public func switchAccount(_ id: String) async throws {
        try device.guardOpen()
        try await device.accountsRelayer.relay(.switchAccount) { try await $0.switchAccount(id) }
    }
}

public struct FacadeKeyboard: Keyboard {
    let device: AppleTV
    public func textFocusState() async throws -> KeyboardFocusState {
        try device.guardOpen()
        return try await device.keyboardRelayer.relay(.textFocusState) { try await $0.textFocusState() }
    }
    public func textGet() async throws -> String? {
        try device.guardOpen()
        return try await device.keyboardRelayer.relay(.textGet) { try await $0.textGet() }
    }
    public func textClear() async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textClear) { try await $0.textClear() }
    }
    public func textAppend(_ text: String) async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textAppend) { try await $0.textAppend(text) }
    }
    public func textSet(_ text: String) async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textSet) { try await $0.textSet(text) }
    }
}

public struct FacadeTouch: TouchGestures {
    let device: AppleTV
    public func swipe(startX: Int, startY: Int, endX: Int, endY: Int, durationMs: Int) async throws {
        try device.guardOpen()
        for v in [startX, startY, endX, endY] where !(0...1000).contains(v) {
            throw ATVError.invalidValue("touch coordinate \(v) is outside 0...1000")
        }
        try await device.touchRelayer.relay(.swipe) {
            try await $0.swipe(startX: startX, startY: startY, endX: endX, endY: endY, durationMs: durationMs)
        }
    }
    public func action(x: Int, y: Int, mode: TouchAction) async throws {
        try device.guardOpen()
        try await device.touchRelayer.relay(.action) { try await $0.action(x: x, y: y, mode: mode) }
    }
    public func click(_ action: InputAction) async throws {
        try device.guardOpen()
        try await device.touchRelayer.relay(.click) { try await $0.click(action) }
    }
}
