import ATVCore

/// Remote control of a device (``AppleTV/remoteControl``): buttons and playback commands, each sent by
/// the best protocol that has it (MRP, DMAP, Companion; while an audio stream or a URL plays, the
/// protocol playing it). A command no connected protocol implements throws `ATVError.notSupported`.
public struct FacadeRemoteControl: RemoteControl {
    let device: AppleTV
    private func relay(_ f: FeatureName, _ call: (any RemoteControl) async throws -> Void) async throws {
        try device.guardOpen()
        try await device.remoteRelayer.relay(f, call)
    }
    /// Press Up (a single tap unless `action` says otherwise).
    public func up(_ action: InputAction = .singleTap) async throws { try await relay(.up) { try await $0.up(action) } }
    /// Press Down (a single tap unless `action` says otherwise).
    public func down(_ action: InputAction = .singleTap) async throws { try await relay(.down) { try await $0.down(action) } }
    /// Press Left (a single tap unless `action` says otherwise).
    public func left(_ action: InputAction = .singleTap) async throws { try await relay(.left) { try await $0.left(action) } }
    /// Press Right (a single tap unless `action` says otherwise).
    public func right(_ action: InputAction = .singleTap) async throws { try await relay(.right) { try await $0.right(action) } }
    /// Press Select (a single tap unless `action` says otherwise).
    public func select(_ action: InputAction = .singleTap) async throws { try await relay(.select) { try await $0.select(action) } }
    /// Press Menu, or Back (a single tap unless `action` says otherwise).
    public func menu(_ action: InputAction = .singleTap) async throws { try await relay(.menu) { try await $0.menu(action) } }
    /// Press Home, or TV (a single tap unless `action` says otherwise).
    public func home(_ action: InputAction = .singleTap) async throws { try await relay(.home) { try await $0.home(action) } }
    /// Hold Home (the app switcher and power menu).
    public func homeHold() async throws { try await relay(.homeHold) { try await $0.homeHold() } }
    /// Go to the top menu of the app.
    public func topMenu() async throws { try await relay(.topMenu) { try await $0.topMenu() } }
    /// Start or resume playback.
    public func play() async throws { try await relay(.play) { try await $0.play() } }
    /// Toggle between playing and paused.
    public func playPause() async throws { try await relay(.playPause) { try await $0.playPause() } }
    /// Pause playback (a running audio stream or URL pauses).
    public func pause() async throws { try await relay(.pause) { try await $0.pause() } }
    /// Stop playback (a running audio stream or URL ends).
    public func stop() async throws { try await relay(.stop) { try await $0.stop() } }
    /// Skip to the next item.
    public func next() async throws { try await relay(.next) { try await $0.next() } }
    /// Go back to the previous item.
    public func previous() async throws { try await relay(.previous) { try await $0.previous() } }
    /// Skip forward `interval` seconds (0: the app's own step).
    public func skipForward(_ interval: Double = 0) async throws { try await relay(.skipForward) { try await $0.skipForward(interval) } }
    /// Skip backward `interval` seconds (0: the app's own step).
    public func skipBackward(_ interval: Double = 0) async throws { try await relay(.skipBackward) { try await $0.skipBackward(interval) } }
    /// Seek to `position` seconds into what is playing.
    public func setPosition(_ position: Int) async throws { try await relay(.setPosition) { try await $0.setPosition(position) } }
    /// Set the shuffle mode.
    public func setShuffle(_ state: ShuffleState) async throws { try await relay(.setShuffle) { try await $0.setShuffle(state) } }
    /// Set the repeat mode.
    public func setRepeat(_ state: RepeatState) async throws { try await relay(.setRepeat) { try await $0.setRepeat(state) } }
    /// Next channel (live TV apps).
    public func channelUp() async throws { try await relay(.channelUp) { try await $0.channelUp() } }
    /// Previous channel (live TV apps).
    public func channelDown() async throws { try await relay(.channelDown) { try await $0.channelDown() } }
    /// Start the screensaver.
    public func screensaver() async throws { try await relay(.screensaver) { try await $0.screensaver() } }
    /// Show the programme guide (live TV apps).
    public func guide() async throws { try await relay(.guide) { try await $0.guide() } }
    /// Open Control Center.
    public func controlCenter() async throws { try await relay(.controlCenter) { try await $0.controlCenter() } }
}

/// What a device is playing (``AppleTV/metadata``), from the best protocol that knows: MRP, DMAP,
/// or, while swift-atv streams audio or plays a URL, the protocol playing it.
public struct FacadeMetadata: Metadata {
    let device: AppleTV
    /// What is playing now: state, media type, title, artist, album, position, total time and more.
    public func playing() async throws -> Playing {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.title) { try await $0.playing() }
    }
    /// The artwork of what is playing, scaled to about `width` × `height` pixels where the protocol
    /// can (nil keeps the aspect ratio); nil when there is none.
    public func artwork(width: Int? = 512, height: Int? = nil) async throws -> ArtworkInfo? {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.artwork) { try await $0.artwork(width: width, height: height) }
    }
    /// An identifier of the current artwork, which changes when the artwork does.
    public func artworkID() async throws -> String {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.artwork) { try await $0.artworkID() }
    }
    /// The app that is playing, when the device says.
    public func app() async throws -> App? {
        try device.guardOpen()
        return try await device.metadataRelayer.relay(.app) { try await $0.app() }
    }
}

/// Streaming to a device (``AppleTV/stream``): audio from swift-atv in real time (RAOP or AirPlay
/// 2), or a URL the device plays itself (AirPlay).
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
    /// Make the device play `url` (http or https), or a local file that swift-atv serves to it, from
    /// `position` seconds; returns when playback ends. Throws `ATVError.notSupported` when the
    /// device has no AirPlay service that plays URLs.
    public func playURL(_ url: String, position: Double = 0) async throws {
        try device.guardOpen()
        guard device.features.feature(.playURL).state == .available else { throw ATVError.notSupported(.playURL) }
        try await device.streamRelayer.relay(.playURL) { try await $0.playURL(url, position: position) }
    }
    /// Decode `source` (a file, an http(s) URL or standard input) with FFmpeg and stream it in real
    /// time to the device's audio receiver; returns when the stream has ended. `metadata` is shown
    /// instead of the file's tags (with `overrideMissingMetadata`, only where the file has none).
    /// ``streamAudio(_:tags:duration:metadata:overrideMissing:)`` takes decoded audio and returns a report.
    public func streamFile(_ source: StreamSource, metadata: MediaMetadata? = nil,
                           overrideMissingMetadata: Bool = false) async throws {
        try device.guardOpen()
        try await device.streamRelayer.relay(.streamFile) {
            try await $0.streamFile(source, metadata: metadata, overrideMissingMetadata: overrideMissingMetadata)
        }
    }
}

/// Power of a device (``AppleTV/power``): Companion first, then MRP.
public struct FacadePower: Power {
    let device: AppleTV
    /// Whether the device is on, off (asleep) or unknown.
    public func powerState() async throws -> PowerState {
        try device.guardOpen()
        return try await device.powerRelayer.relay(.powerState) { try await $0.powerState() }
    }
    /// Wake the device; with `awaitNewState`, return only once it reports that it is on.
    public func turnOn(awaitNewState: Bool = false) async throws {
        try device.guardOpen()
        try await device.powerRelayer.relay(.turnOn) { try await $0.turnOn(awaitNewState: awaitNewState) }
    }
    /// Put the device to sleep; with `awaitNewState`, return only once it reports that it is off.
    public func turnOff(awaitNewState: Bool = false) async throws {
        try device.guardOpen()
        try await device.powerRelayer.relay(.turnOff) { try await $0.turnOff(awaitNewState: awaitNewState) }
    }
}

/// Volume and output devices of a device (``AppleTV/audio``); while an audio stream runs, its
/// protocol takes over the volume. Volume is guarded both ways: a level outside 0...100 is never
/// sent (`ATVError.invalidValue`), and a protocol reporting one is an error rather than a wrong number.
public struct FacadeAudio: Audio {
    let device: AppleTV
    static func check(_ level: Double, _ what: String) throws {
        guard level.isFinite, (0...100).contains(level) else {
            throw ATVError.invalidValue("\(what) \(level) is outside 0...100")
        }
    }
    /// The volume, 0...100.
    public func volume() async throws -> Double {
        try device.guardOpen()
        let v = try await device.audioRelayer.relay(.volume) { try await $0.volume() }
        try Self.check(v, "device reported volume")
        return v
    }
    /// Set the volume to `level` (0...100), of the device or, with `outputDevice`, of one speaker of
    /// its group (an identifier from ``outputDevices()``).
    public func setVolume(_ level: Double, outputDevice: String? = nil) async throws {
        try device.guardOpen()
        try Self.check(level, "volume")
        try await device.audioRelayer.relay(.setVolume) { try await $0.setVolume(level, outputDevice: outputDevice) }
    }
    /// One step louder.
    public func volumeUp() async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.volumeUp) { try await $0.volumeUp() }
    }
    /// One step quieter.
    public func volumeDown() async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.volumeDown) { try await $0.volumeDown() }
    }
    /// The speakers the device plays to (MRP): identifier, name and volume of each.
    public func outputDevices() async throws -> [OutputDevice] {
        try device.guardOpen()
        return try await device.audioRelayer.relay(.outputDevices) { try await $0.outputDevices() }
    }
    /// Add speakers (by identifier) to the group the device plays to; returns once the device
    /// reports its new group, or after 5 seconds.
    public func addOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.addOutputDevices) { try await $0.addOutputDevices(ids) }
    }
    /// Remove speakers (by identifier) from the group the device plays to; returns once the device
    /// reports its new group, or after 5 seconds.
    public func removeOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.removeOutputDevices) { try await $0.removeOutputDevices(ids) }
    }
    /// Make the device play to exactly these speakers (by identifier); returns once the device
    /// reports its new group, or after 5 seconds.
    public func setOutputDevices(_ ids: [String]) async throws {
        try device.guardOpen()
        try await device.audioRelayer.relay(.setOutputDevices) { try await $0.setOutputDevices(ids) }
    }
}

/// Apps of a device (``AppleTV/apps``), through Companion.
public struct FacadeApps: Apps {
    let device: AppleTV
    /// The installed apps: name and bundle identifier of each.
    public func appList() async throws -> [App] {
        try device.guardOpen()
        return try await device.appsRelayer.relay(.appList) { try await $0.appList() }
    }
    /// Launch an app by bundle identifier (`com.netflix.Netflix`), or open a URL in the app that
    /// handles it.
    public func launchApp(_ bundleIDOrURL: String) async throws {
        try device.guardOpen()
        try await device.appsRelayer.relay(.launchApp) { try await $0.launchApp(bundleIDOrURL) }
    }
}

/// User accounts of a device (``AppleTV/userAccounts``), through Companion.
public struct FacadeUserAccounts: UserAccounts {
    let device: AppleTV
    /// The device's user accounts: name and identifier of each.
    public func accountList() async throws -> [UserAccount] {
        try device.guardOpen()
        return try await device.accountsRelayer.relay(.accountList) { try await $0.accountList() }
    }
    /// Switch to the account with identifier `id`.
    public func switchAccount(_ id: String) async throws {
        try device.guardOpen()
        try await device.accountsRelayer.relay(.switchAccount) { try await $0.switchAccount(id) }
    }
}

/// The on-screen keyboard of a device (``AppleTV/keyboard``), through Companion: the text of the
/// focused text field.
public struct FacadeKeyboard: Keyboard {
    let device: AppleTV
    /// Whether a text field has focus.
    public func textFocusState() async throws -> KeyboardFocusState {
        try device.guardOpen()
        return try await device.keyboardRelayer.relay(.textFocusState) { try await $0.textFocusState() }
    }
    /// The text of the focused text field; nil when none has focus.
    public func textGet() async throws -> String? {
        try device.guardOpen()
        return try await device.keyboardRelayer.relay(.textGet) { try await $0.textGet() }
    }
    /// Empty the focused text field.
    public func textClear() async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textClear) { try await $0.textClear() }
    }
    /// Add `text` at the end of the focused text field.
    public func textAppend(_ text: String) async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textAppend) { try await $0.textAppend(text) }
    }
    /// Replace the text of the focused text field with `text`.
    public func textSet(_ text: String) async throws {
        try device.guardOpen()
        try await device.keyboardRelayer.relay(.textSet) { try await $0.textSet(text) }
    }
}

/// Touch gestures on a device's touch surface (``AppleTV/touch``), through Companion. Coordinates
/// are 0...1000 on each axis; others throw `ATVError.invalidValue`.
public struct FacadeTouch: TouchGestures {
    let device: AppleTV
    /// Swipe from (`startX`, `startY`) to (`endX`, `endY`) over `durationMs` milliseconds.
    public func swipe(startX: Int, startY: Int, endX: Int, endY: Int, durationMs: Int) async throws {
        try device.guardOpen()
        for v in [startX, startY, endX, endY] where !(0...1000).contains(v) {
            throw ATVError.invalidValue("touch coordinate \(v) is outside 0...1000")
        }
        try await device.touchRelayer.relay(.swipe) {
            try await $0.swipe(startX: startX, startY: startY, endX: endX, endY: endY, durationMs: durationMs)
        }
    }
    /// Touch at (`x`, `y`): press, hold, release or click, as `mode` says.
    public func action(x: Int, y: Int, mode: TouchAction) async throws {
        try device.guardOpen()
        try await device.touchRelayer.relay(.action) { try await $0.action(x: x, y: y, mode: mode) }
    }
    /// Click the touch surface (a tap, double tap or hold, as `action` says).
    public func click(_ action: InputAction) async throws {
        try device.guardOpen()
        try await device.touchRelayer.relay(.click) { try await $0.click(action) }
    }
}
