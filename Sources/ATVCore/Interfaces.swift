// The user-facing interfaces. A protocol implements the members it can; every member has a
// default that throws `ATVError.notSupported(feature)`, which is how the relayer knows to fall
// through to the next protocol. An implementation must not have side effects before throwing
// `.notSupported`.

/// Buttons and playback commands.
public protocol RemoteControl: Sendable {
    func up(_ action: InputAction) async throws
    func down(_ action: InputAction) async throws
    func left(_ action: InputAction) async throws
    func right(_ action: InputAction) async throws
    func select(_ action: InputAction) async throws
    func menu(_ action: InputAction) async throws
    func home(_ action: InputAction) async throws
    func homeHold() async throws
    func topMenu() async throws
    func play() async throws
    func playPause() async throws
    func pause() async throws
    func stop() async throws
    func next() async throws
    func previous() async throws
    /// Seconds; ≤ 0 means the app's default interval.
    func skipForward(_ interval: Double) async throws
    func skipBackward(_ interval: Double) async throws
    /// Seconds.
    func setPosition(_ position: Int) async throws
    func setShuffle(_ state: ShuffleState) async throws
    func setRepeat(_ state: RepeatState) async throws
    func channelUp() async throws
    func channelDown() async throws
    func screensaver() async throws
    func guide() async throws
    func controlCenter() async throws
}

extension RemoteControl {
    public func up(_ action: InputAction) async throws { throw ATVError.notSupported(.up) }
    public func down(_ action: InputAction) async throws { throw ATVError.notSupported(.down) }
    public func left(_ action: InputAction) async throws { throw ATVError.notSupported(.left) }
    public func right(_ action: InputAction) async throws { throw ATVError.notSupported(.right) }
    public func select(_ action: InputAction) async throws { throw ATVError.notSupported(.select) }
    public func menu(_ action: InputAction) async throws { throw ATVError.notSupported(.menu) }
    public func home(_ action: InputAction) async throws { throw ATVError.notSupported(.home) }
    public func homeHold() async throws { throw ATVError.notSupported(.homeHold) }
    public func topMenu() async throws { throw ATVError.notSupported(.topMenu) }
    public func play() async throws { throw ATVError.notSupported(.play) }
    public func playPause() async throws { throw ATVError.notSupported(.playPause) }
    public func pause() async throws { throw ATVError.notSupported(.pause) }
    public func stop() async throws { throw ATVError.notSupported(.stop) }
    public func next() async throws { throw ATVError.notSupported(.next) }
    public func previous() async throws { throw ATVError.notSupported(.previous) }
    public func skipForward(_ interval: Double) async throws { throw ATVError.notSupported(.skipForward) }
    public func skipBackward(_ interval: Double) async throws { throw ATVError.notSupported(.skipBackward) }
    public func setPosition(_ position: Int) async throws { throw ATVError.notSupported(.setPosition) }
    public func setShuffle(_ state: ShuffleState) async throws { throw ATVError.notSupported(.setShuffle) }
    public func setRepeat(_ state: RepeatState) async throws { throw ATVError.notSupported(.setRepeat) }
    public func channelUp() async throws { throw ATVError.notSupported(.channelUp) }
    public func channelDown() async throws { throw ATVError.notSupported(.channelDown) }
    public func screensaver() async throws { throw ATVError.notSupported(.screensaver) }
    public func guide() async throws { throw ATVError.notSupported(.guide) }
    public func controlCenter() async throws { throw ATVError.notSupported(.controlCenter) }
}

/// What is playing, and its artwork.
public protocol Metadata: Sendable {
    func playing() async throws -> Playing
    /// Width/height are requests; nil means the device default (one nil keeps the aspect ratio).
    func artwork(width: Int?, height: Int?) async throws -> ArtworkInfo?
    func artworkID() async throws -> String
    /// The app that is playing (not necessarily the one in front).
    func app() async throws -> App?
}

extension Metadata {
    public func playing() async throws -> Playing { throw ATVError.notSupported(.title) }
    public func artwork(width: Int?, height: Int?) async throws -> ArtworkInfo? { throw ATVError.notSupported(.artwork) }
    public func artworkID() async throws -> String { throw ATVError.notSupported(.artwork) }
    public func app() async throws -> App? { throw ATVError.notSupported(.app) }
}

/// A change pushed by a device.
public enum DeviceUpdate: Sendable, Equatable {
    case playing(Playing)
    case volume(Double)
    case outputDeviceVolume(deviceID: String, Double)
    case outputDevices([OutputDevice])
    case powerState(PowerState)
    case keyboardFocus(KeyboardFocusState)
    case connectionLost(String)
    case connectionClosed
}

/// Push updates. `updates()` gives a new subscription each call; it ends when the connection closes.
public protocol PushUpdater: Sendable {
    func updates() -> AsyncStream<DeviceUpdate>
}

/// Where audio comes from when streaming.
public enum StreamSource: Sendable, Equatable {
    /// A local file path.
    case file(String)
    /// An http(s) URL.
    case url(String)
    /// Standard input (non-seekable); raw PCM if a format is given.
    case stdin(rawFormat: RawPCMFormat?)
}

/// The layout of raw PCM given without a container.
public struct RawPCMFormat: Sendable, Equatable, Codable {
    public enum SampleFormat: String, Sendable, Codable, CaseIterable { case s16le, s16be, s24le, s32le, f32le, u8 }
    public var sampleRate: Int
    public var channels: Int
    public var sampleFormat: SampleFormat
    public init(sampleRate: Int = 44_100, channels: Int = 2, sampleFormat: SampleFormat = .s16le) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.sampleFormat = sampleFormat
    }
    /// Parses "s16le:44100:2" (any order of the three, any subset).
    public init(parsing text: String) throws {
        self.init()
        for part in text.split(separator: ":") {
            if let f = SampleFormat(rawValue: String(part)) { sampleFormat = f }
            else if let n = Int(part), n >= 8000 { sampleRate = n }
            else if let n = Int(part), (1...8).contains(n) { channels = n }
            else { throw ATVError.badInput("invalid raw PCM format '\(text)': expected e.g. s16le:44100:2") }
        }
    }
}

/// Where what a `StreamInterface` sends stands: audio being streamed, or a URL the device plays.
public struct StreamProgress: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Connecting, or the device is loading the media.
        case loading
        case playing
        case paused
        /// Played to the end, or stopped.
        case finished
        case failed
    }
    public var state: State
    /// Seconds of the media the device has played.
    public var position: Double
    /// Seconds in all, when known.
    public var duration: Double?
    /// The stream's volume (0...100), when the protocol sets one (audio streaming does).
    public var volume: Double?

    public init(state: State, position: Double, duration: Double? = nil, volume: Double? = nil) {
        self.state = state
        self.position = position
        self.duration = duration
        self.volume = volume
    }
}

/// Playing URLs and streaming audio (pyatv's `Stream` interface; the name `Stream` is Foundation's).
public protocol StreamInterface: Sendable {
    /// Play a URL (or a local file served over HTTP); `position` in seconds.
    func playURL(_ url: String, position: Double) async throws
    /// Stream audio to the device; returns when the stream has finished.
    func streamFile(_ source: StreamSource, metadata: MediaMetadata?, overrideMissingMetadata: Bool) async throws
    /// Progress of every stream and URL played from now on (a new subscription each call); ends
    /// when the device is closed.
    func progress() -> AsyncStream<StreamProgress>
}

extension StreamInterface {
    public func playURL(_ url: String, position: Double) async throws { throw ATVError.notSupported(.playURL) }
    public func streamFile(_ source: StreamSource, metadata: MediaMetadata?, overrideMissingMetadata: Bool) async throws {
        throw ATVError.notSupported(.streamFile)
    }
    /// Nothing: this protocol streams nothing.
    public func progress() -> AsyncStream<StreamProgress> { AsyncStream { $0.finish() } }
}

public protocol Power: Sendable {
    func powerState() async throws -> PowerState
    func turnOn(awaitNewState: Bool) async throws
    func turnOff(awaitNewState: Bool) async throws
}

extension Power {
    public func powerState() async throws -> PowerState { throw ATVError.notSupported(.powerState) }
    public func turnOn(awaitNewState: Bool) async throws { throw ATVError.notSupported(.turnOn) }
    public func turnOff(awaitNewState: Bool) async throws { throw ATVError.notSupported(.turnOff) }
}

/// Volume (0.0...100.0) and output devices.
public protocol Audio: Sendable {
    func volume() async throws -> Double
    func setVolume(_ level: Double, outputDevice: String?) async throws
    func volumeUp() async throws
    func volumeDown() async throws
    func outputDevices() async throws -> [OutputDevice]
    func addOutputDevices(_ ids: [String]) async throws
    func removeOutputDevices(_ ids: [String]) async throws
    func setOutputDevices(_ ids: [String]) async throws
}

extension Audio {
    public func volume() async throws -> Double { throw ATVError.notSupported(.volume) }
    public func setVolume(_ level: Double, outputDevice: String?) async throws { throw ATVError.notSupported(.setVolume) }
    public func volumeUp() async throws { throw ATVError.notSupported(.volumeUp) }
    public func volumeDown() async throws { throw ATVError.notSupported(.volumeDown) }
    public func outputDevices() async throws -> [OutputDevice] { throw ATVError.notSupported(.outputDevices) }
    public func addOutputDevices(_ ids: [String]) async throws { throw ATVError.notSupported(.addOutputDevices) }
    public func removeOutputDevices(_ ids: [String]) async throws { throw ATVError.notSupported(.removeOutputDevices) }
    public func setOutputDevices(_ ids: [String]) async throws { throw ATVError.notSupported(.setOutputDevices) }
}

public protocol Apps: Sendable {
    func appList() async throws -> [App]
    /// A bundle identifier or a URL.
    func launchApp(_ bundleIDOrURL: String) async throws
}

extension Apps {
    public func appList() async throws -> [App] { throw ATVError.notSupported(.appList) }
    public func launchApp(_ bundleIDOrURL: String) async throws { throw ATVError.notSupported(.launchApp) }
}

public protocol UserAccounts: Sendable {
    func accountList() async throws -> [UserAccount]
    func switchAccount(_ id: String) async throws
}

extension UserAccounts {
    public func accountList() async throws -> [UserAccount] { throw ATVError.notSupported(.accountList) }
    public func switchAccount(_ id: String) async throws { throw ATVError.notSupported(.switchAccount) }
}

public protocol Keyboard: Sendable {
    func textFocusState() async throws -> KeyboardFocusState
    func textGet() async throws -> String?
    func textClear() async throws
    func textAppend(_ text: String) async throws
    func textSet(_ text: String) async throws
}

extension Keyboard {
    public func textFocusState() async throws -> KeyboardFocusState { throw ATVError.notSupported(.textFocusState) }
    public func textGet() async throws -> String? { throw ATVError.notSupported(.textGet) }
    public func textClear() async throws { throw ATVError.notSupported(.textClear) }
    public func textAppend(_ text: String) async throws { throw ATVError.notSupported(.textAppend) }
    public func textSet(_ text: String) async throws { throw ATVError.notSupported(.textSet) }
}

/// Touch gestures; coordinates are 0...1000.
public protocol TouchGestures: Sendable {
    func swipe(startX: Int, startY: Int, endX: Int, endY: Int, durationMs: Int) async throws
    func action(x: Int, y: Int, mode: TouchAction) async throws
    func click(_ action: InputAction) async throws
}

extension TouchGestures {
    public func swipe(startX: Int, startY: Int, endX: Int, endY: Int, durationMs: Int) async throws {
        throw ATVError.notSupported(.swipe)
    }
    public func action(x: Int, y: Int, mode: TouchAction) async throws { throw ATVError.notSupported(.action) }
    public func click(_ action: InputAction) async throws { throw ATVError.notSupported(.click) }
}
