import ATVAuth
import ATVCore
import ATVDiscovery
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Companion as a protocol of the facade: apps, power (preferred over MRP),
/// keyboard, user accounts, HID buttons and media control, volume, touch; push updates of power,
/// volume and keyboard focus. It needs credentials from `atv pair --protocol companion` (pair-verify
/// is the only way in), so `connect` sets it up only when they exist.
///
/// `connect(_:options:storage:)` makes one for a device's Companion service; use the interfaces of
/// `AppleTV` rather than this class.
package final class CompanionService: Sendable {
    /// How we present ourselves in `_systemInfo`.
    package struct Identity: Sendable {
        /// The name the Apple TV shows for us.
        package var name: String
        /// The model we claim to be.
        package var model: String
        /// Our device identifier (MAC style).
        package var deviceID: String
        /// swift-atv's defaults, as stored in the settings (`InfoSettings`).
        package init(name: String = InfoSettings.defaultName, model: String = InfoSettings.defaultModel,
                    deviceID: String = InfoSettings.defaultDeviceID) {
            self.name = name
            self.model = model
            self.deviceID = deviceID
        }
    }

    let address: String
    let service: ServiceConfig
    /// The stored HAP credentials pair-verify uses.
    package let credentials: HAPCredentials
    let identity: Identity
    /// Connecting, and each answer while connecting.
    let timeout: Duration
    private struct State {
        var client: CompanionClient?
        var closing = false
        var power: PowerState?
        /// `_mcF` of the latest `_iMC`.
        var mediaFlags: Int64?
        var volume: Double?
        var focus: KeyboardFocusState = .unknown
        var events: Task<Void, Never>?
    }
    private let state = Mutex(State())
    let updates = Broadcaster<DeviceUpdate>()
    /// Internal: every power/volume change, for callers that wait for the next one.
    let changes = Broadcaster<DeviceUpdate>()
    /// Internal: the `_mcF` of every `_iMC` as it arrives.
    let mediaControlEvents = Broadcaster<Int64>()
    let logger = Logger(label: "atv.companion")

    /// `_mcF` bits of the `_iMC` media-control flags event (play, pause, next, previous, volume, skip).
    enum MediaFlag: Int64 {
        case play = 0x0001, pause = 0x0002, nextTrack = 0x0004, previousTrack = 0x0008
        case volume = 0x0100, skipForward = 0x0200, skipBackward = 0x0400
    }

    /// The Companion protocol of the device at `address`, with the credentials stored in `service`;
    /// nothing is connected until `connect()`. `timeout` bounds connecting and each answer.
    /// Throws `.noCredentials(.companion)` without credentials, `.invalidCredentials` for bad ones.
    package init(address: String, service: ServiceConfig, identity: Identity = Identity(), timeout: Duration = .seconds(10)) throws {
        guard let raw = service.credentials, !raw.trimmingWhitespace().isEmpty else {
            throw ATVError.noCredentials(.companion)
        }
        self.address = address
        self.service = service
        self.credentials = try HAPCredentials(parsing: raw)
        self.identity = identity
        self.timeout = timeout
    }

    /// The connected client (after `connect`).
    package var client: CompanionClient {
        get throws {
            guard let c = state.withLock({ $0.client }) else { throw ATVError.invalidState("Companion is not connected") }
            return c
        }
    }

    var setup: ProtocolSetup {
        let remote = CompanionRemote(companion: self)
        return ProtocolSetup(protocol: .companion,
                             interfaces: InterfaceSet(remoteControl: remote, pushUpdater: CompanionPush(companion: self),
                                                      power: CompanionPower(companion: self), audio: CompanionAudio(companion: self),
                                                      apps: CompanionApps(companion: self), userAccounts: CompanionAccounts(companion: self),
                                                      keyboard: CompanionKeyboard(companion: self), touch: CompanionTouch(companion: self)),
                             features: CompanionFeatures(companion: self),
                             deviceInfo: deviceInfo,
                             connect: { [self] in try await connect() },
                             close: { [self] in await close() },
                             handle: self)
    }

    /// Model from the TXT `rpMd`, MAC from `rpBA`.
    var deviceInfo: DeviceInfo {
        var info = DeviceInfo()
        if let model = service.property("rpMd") {
            info.rawModel = model
            info.model = DeviceTables.model(model)
            info.operatingSystem = DeviceTables.operatingSystem(for: info.model)
        }
        info.mac = service.property("rpBA")
        return info
    }

    // MARK: Connection

    /// TCP, pair-verify, the session sequence (system info, touch start, session start, TV remote start), then the initial power state.
    package func connect() async throws {
        let timeout = self.timeout
        let client = try await CompanionClient.connect(host: address, port: service.port, timeout: timeout)
        do {
            do { try await client.verify(credentials, timeout: timeout) } catch {
                switch error as? ATVError {
                case .connectionFailed?, .connectionLost?, .timeout?, .protocolError?: throw error
                default:
                    throw ATVError.authenticationFailed("the device did not accept the Companion credentials (\(error)); pair again with `atv pair --protocol companion`")
                }
            }
            try await client.startSession(name: identity.name, model: identity.model, clientID: credentials.clientID,
                                          deviceID: identity.deviceID)
        } catch {
            await client.close()
            throw error
        }
        let events = client.events
        let task = Task { [weak self] in
            for await event in events {
                guard let self else { return }
                await self.handle(event)
            }
            self?.ended()
        }
        state.withLock { s in
            s.client = client
            s.events = task
        }
        // FetchAttentionState may fail on newer tvOS; power is then learned from events.
        if let status = try? await client.systemStatus() { setPower(Self.powerState(status)) }
    }

    func close() async {
        let (client, task) = state.withLock { s -> (CompanionClient?, Task<Void, Never>?) in
            s.closing = true
            return (s.client, s.events)
        }
        if let client {
            await client.stopSession()
            await client.close()
        }
        task?.cancel()
        updates.finish()
        changes.finish()
        mediaControlEvents.finish()
    }

    /// The event stream ended: unless we closed it, the device went away.
    private func ended() {
        let closing = state.withLock { $0.closing }
        if !closing {
            logger.info("the Companion connection was lost")
            updates.yield(.connectionLost("the device closed the Companion connection"))
        }
        updates.finish()
        changes.finish()
        mediaControlEvents.finish()
    }

    static func powerState(_ status: CompanionSystemStatus) -> PowerState {
        status == .asleep ? .off : .on
    }

    func handle(_ event: CompanionMessage) async {
        switch event.identifier {
        case "SystemStatus", "TVSystemStatus":
            let p = event.content["state"]?.intValue.flatMap(CompanionSystemStatus.init(rawValue:)).map(Self.powerState) ?? .unknown
            setPower(p)
        case "_iMC":
            let flags = event.content["_mcF"]?.intValue ?? 0
            state.withLock { $0.mediaFlags = flags }
            mediaControlEvents.yield(flags)
            if flags & MediaFlag.volume.rawValue != 0 {
                if let v = try? await fetchVolume() { setVolume(v) }
            } else {
                setVolume(0)
            }
        case "_tiStarted": setFocus(.focused)
        case "_tiStopped": setFocus(.unfocused)
        default: break
        }
    }

    func setPower(_ p: PowerState) {
        let changed = state.withLock { s in defer { s.power = p }; return s.power != p }
        guard changed else { return }
        updates.yield(.powerState(p))
        changes.yield(.powerState(p))
    }

    func setVolume(_ v: Double) {
        state.withLock { $0.volume = v }
        updates.yield(.volume(v))
        changes.yield(.volume(v))
    }

    func setFocus(_ f: KeyboardFocusState) {
        let changed = state.withLock { s in defer { s.focus = f }; return s.focus != f }
        if changed { updates.yield(.keyboardFocus(f)) }
    }

    var power: PowerState? { state.withLock { $0.power } }
    var cachedVolume: Double? { state.withLock { $0.volume } }
    var focus: KeyboardFocusState { state.withLock { $0.focus } }

    func has(_ flag: MediaFlag) -> Bool { (state.withLock { $0.mediaFlags } ?? 0) & flag.rawValue != 0 }
    /// False only when the device said it lacks the control (no `_iMC` yet: unknown, so try).
    func mayHave(_ flag: MediaFlag) -> Bool { (state.withLock { $0.mediaFlags } ?? flag.rawValue) & flag.rawValue != 0 }

    /// GetVolume (0...1 on the wire) as 0...100.
    func fetchVolume() async throws -> Double {
        let c = try await client.mediaControl(.getVolume)
        guard let v = c["_vol"]?.doubleValue, v.isFinite else {
            throw ATVError.protocolError("Companion GetVolume: no _vol in the response")
        }
        // Without float noise (0.15 × 100 is 15.000000000000002).
        return (v * 100 * 1e6).rounded() / 1e6
    }

    /// Run `action`, then wait (≤ `timeout`) for the next `_iMC` (pyatv's rule after volume changes).
    func awaitMediaControlEvent(timeout: Duration, after action: () async throws -> Void) async throws {
        let stream = mediaControlEvents.subscribe()
        try await action()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in stream { return } }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Run `action`, then wait (≤ `timeout`) for the first change `matching` (from subscription time).
    func awaitChange(timeout: Duration, _ matching: @escaping @Sendable (DeviceUpdate) -> Bool,
                     after action: () async throws -> Void) async throws -> Bool {
        let stream = changes.subscribe()
        try await action()
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await u in stream where matching(u) { return true }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    // MARK: Features (pyatv's FeatureName ids; see ATVCore/Features.swift)

    func feature(_ name: FeatureName) -> FeatureInfo {
        func flag(_ f: MediaFlag) -> FeatureInfo { has(f) ? .available : FeatureInfo(.unavailable) }
        switch name {
        case .play: return flag(.play)
        case .pause: return flag(.pause)
        case .next: return flag(.nextTrack)
        case .previous: return flag(.previousTrack)
        case .volume, .setVolume: return flag(.volume)
        case .skipForward: return flag(.skipForward)
        case .skipBackward: return flag(.skipBackward)
        case .powerState: return power == nil ? .unsupported : .available
        case .up, .down, .left, .right, .select, .menu, .home, .playPause, .volumeUp, .volumeDown,
             .turnOn, .turnOff, .appList, .launchApp, .channelUp, .channelDown,
             .textGet, .textClear, .textAppend, .textSet, .textFocusState, .accountList, .switchAccount,
             .screensaver, .swipe, .action, .click, .guide, .controlCenter, .pushUpdates:
            return .available
        default: return .unsupported
        }
    }

    // MARK: Buttons

    /// A HID button with pyatv's input actions: tap = down + up, double tap = two taps, hold = down, 1 s, up.
    func press(_ button: CompanionHIDButton, _ action: InputAction = .singleTap) async throws {
        let c = try client
        switch action {
        case .singleTap:
            try await c.press(button, down: true)
            try await c.press(button, down: false)
        case .doubleTap:
            for _ in 0 ..< 2 {
                try await c.press(button, down: true)
                try await c.press(button, down: false)
            }
        case .hold:
            try await c.press(button, down: true)
            try await Task.sleep(for: .seconds(1))
            try await c.press(button, down: false)
        }
    }
}

struct CompanionRemote: RemoteControl {
    let companion: CompanionService
    func up(_ action: InputAction) async throws { try await companion.press(.up, action) }
    func down(_ action: InputAction) async throws { try await companion.press(.down, action) }
    func left(_ action: InputAction) async throws { try await companion.press(.left, action) }
    func right(_ action: InputAction) async throws { try await companion.press(.right, action) }
    func select(_ action: InputAction) async throws { try await companion.press(.select, action) }
    func menu(_ action: InputAction) async throws { try await companion.press(.menu, action) }
    func home(_ action: InputAction) async throws { try await companion.press(.home, action) }
    func playPause() async throws { try await companion.press(.playPause) }
    func play() async throws { _ = try await companion.client.mediaControl(.play) }
    func pause() async throws { _ = try await companion.client.mediaControl(.pause) }
    func next() async throws { _ = try await companion.client.mediaControl(.nextTrack) }
    func previous() async throws { _ = try await companion.client.mediaControl(.previousTrack) }
    func skipForward(_ interval: Double) async throws {
        _ = try await companion.client.mediaControl(.skipBy, [("_skpS", .double(interval > 0 ? interval : 10))])
    }
    func skipBackward(_ interval: Double) async throws {
        _ = try await companion.client.mediaControl(.skipBy, [("_skpS", .double(-(interval > 0 ? interval : 10)))])
    }
    func channelUp() async throws { try await companion.press(.channelIncrement) }
    func channelDown() async throws { try await companion.press(.channelDecrement) }
    func screensaver() async throws { try await companion.press(.screensaver) }
    func guide() async throws { try await companion.press(.guide) }
    func controlCenter() async throws { try await companion.press(.pageDown) }
}

struct CompanionPower: Power {
    let companion: CompanionService
    func powerState() async throws -> PowerState {
        if let p = companion.power { return p }
        if let status = try await companion.client.systemStatus() {
            companion.setPower(CompanionService.powerState(status))
            return companion.power ?? .unknown
        }
        return .unknown
    }
    func turnOn(awaitNewState: Bool) async throws { try await set(.on, awaitNewState) }
    func turnOff(awaitNewState: Bool) async throws { try await set(.off, awaitNewState) }

    /// Sleep/Wake button-up (as pyatv); with `awaitNewState`, wait ≤ 10 s for the device to report it
    /// (only when it reports power at all: a device whose state is unknown cannot be waited for).
    func set(_ target: PowerState, _ awaitNewState: Bool) async throws {
        let client = try companion.client
        guard awaitNewState, companion.power != nil else { return try await client.setPower(on: target == .on) }
        if companion.power == target { return try await client.setPower(on: target == .on) }
        let seen = try await companion.awaitChange(timeout: .seconds(10), { $0 == .powerState(target) }) {
            try await client.setPower(on: target == .on)
        }
        if !seen && companion.power != target {
            throw ATVError.timeout("the device did not report power \(target == .on ? "on" : "off") within 10 s")
        }
    }
}

struct CompanionAudio: Audio {
    let companion: CompanionService
    /// Asks the device (GetVolume) rather than trusting a cached value.
    func volume() async throws -> Double {
        guard companion.mayHave(.volume) else { throw ATVError.notSupported(.volume) }
        let v = try await companion.fetchVolume()
        if companion.cachedVolume != v { companion.setVolume(v) }
        return v
    }
    /// SetVolume, then wait ≤ 5 s for the device's next `_iMC` (as pyatv).
    func setVolume(_ level: Double, outputDevice: String?) async throws {
        guard companion.mayHave(.volume) else { throw ATVError.notSupported(.setVolume) }
        let client = try companion.client
        try await companion.awaitMediaControlEvent(timeout: .seconds(5)) {
            _ = try await client.mediaControl(.setVolume, [("_vol", .double(level / 100))])
        }
    }
    func volumeUp() async throws { try await step(.volumeUp) }
    func volumeDown() async throws { try await step(.volumeDown) }
    func step(_ button: CompanionHIDButton) async throws {
        try await companion.awaitMediaControlEvent(timeout: .seconds(5)) { try await companion.press(button) }
    }
}

struct CompanionApps: Apps {
    let companion: CompanionService
    func appList() async throws -> [App] {
        try await companion.client.appList().map { App(name: $0.name, identifier: $0.bundleID) }
            .sorted { ($0.name ?? "", $0.identifier) < ($1.name ?? "", $1.identifier) }
    }
    func launchApp(_ bundleIDOrURL: String) async throws { try await companion.client.launchApp(bundleIDOrURL) }
}

struct CompanionAccounts: UserAccounts {
    let companion: CompanionService
    func accountList() async throws -> [UserAccount] {
        try await companion.client.accounts().map { UserAccount(name: $0.name, identifier: $0.id) }
            .sorted { ($0.name, $0.identifier) < ($1.name, $1.identifier) }
    }
    func switchAccount(_ id: String) async throws { try await companion.client.switchAccount(id) }
}

/// Every call restarts the text-input session (RTI `_tiStop`, then `_tiStart`); a nil answer means no text field has focus.
struct CompanionKeyboard: Keyboard {
    let companion: CompanionService
    func textFocusState() async throws -> KeyboardFocusState {
        let text = try await companion.client.textGet()
        companion.setFocus(text == nil ? .unfocused : .focused)
        return companion.focus
    }
    func textGet() async throws -> String? {
        let text = try await companion.client.textGet()
        companion.setFocus(text == nil ? .unfocused : .focused)
        return text
    }
    func textClear() async throws { try check(try await companion.client.textClear()) }
    func textAppend(_ text: String) async throws { try check(try await companion.client.textAppend(text)) }
    func textSet(_ text: String) async throws { try check(try await companion.client.textSet(text)) }
    private func check(_ result: String?) throws {
        companion.setFocus(result == nil ? .unfocused : .focused)
        if result == nil { throw ATVError.invalidState("no text field has focus on the device") }
    }
}

/// Touch events (`_hidT`); coordinates 0...1000, time in ns since the touch session began.
struct CompanionTouch: TouchGestures {
    let companion: CompanionService
    static let origin = ContinuousClock.now
    var nanoseconds: Int64 {
        let d = ContinuousClock.now - Self.origin
        return d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
    func swipe(startX: Int, startY: Int, endX: Int, endY: Int, durationMs: Int) async throws {
        let client = try companion.client
        try await client.touch(x: startX, y: startY, phase: Int64(TouchAction.press.rawValue), nanoseconds: nanoseconds)
        let steps = max(1, durationMs / 16)
        for i in 1 ..< steps {
            try await Task.sleep(for: .milliseconds(16))
            let x = startX + (endX - startX) * i / steps, y = startY + (endY - startY) * i / steps
            try await client.touch(x: x, y: y, phase: Int64(TouchAction.hold.rawValue), nanoseconds: nanoseconds)
        }
        try await client.touch(x: endX, y: endY, phase: Int64(TouchAction.release.rawValue), nanoseconds: nanoseconds)
    }
    func action(x: Int, y: Int, mode: TouchAction) async throws {
        try await companion.client.touch(x: x, y: y, phase: Int64(mode.rawValue), nanoseconds: nanoseconds)
    }
    func click(_ action: InputAction) async throws {
        let client = try companion.client
        try await client.press(.select, down: true)
        try await Task.sleep(for: action == .hold ? .seconds(1) : .milliseconds(20))
        try await client.press(.select, down: false)
        try await client.touch(x: 1000, y: 1000, phase: Int64(TouchAction.click.rawValue), nanoseconds: nanoseconds)
    }
}

struct CompanionPush: PushUpdater {
    let companion: CompanionService
    func updates() -> AsyncStream<DeviceUpdate> { companion.updates.subscribe() }
}

struct CompanionFeatures: Features {
    let companion: CompanionService
    func feature(_ name: FeatureName) -> FeatureInfo { companion.feature(name) }
}
