import ATVAuth
import ATVCompanion
import ATVCore
import ATVDiscovery
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// A virtual Apple TV, Companion side: HAP pair-setup with a PIN and pair-verify
/// over Companion frames, then encrypted E_OPACK requests — system info, sessions, the app list and
/// launching, user accounts, HID buttons (sleep/wake change the power state and push
/// `SystemStatus`/`TVSystemStatus` events to subscribers), media control volume. Requests it does
/// not know get the device's "No request handler" error. Pairings last while the process runs.
package final class VirtualCompanion: Sendable {
    package struct App: Sendable, Equatable {
        package var bundleID: String
        package var name: String
        package init(bundleID: String, name: String) { self.bundleID = bundleID; self.name = name }
    }

    package struct Configuration: Sendable {
        package var host: String
        /// 0 picks a free port.
        package var port: Int
        package var name: String
        /// MAC style, e.g. "AA:BB:CC:DD:EE:01" (rpBA in the TXT record).
        package var deviceID: String
        package var model: String
        /// The PIN pair-setup expects (the one a real device shows on screen).
        package var pin: String
        /// The accessory's long-term identity (its pairing identifier and Ed25519 key).
        package var identity: HAPIdentity
        package var apps: [App]
        /// Account id → name.
        package var accounts: [(id: String, name: String)]
        package var initialPower: CompanionSystemStatus
        package var volume: Double
        /// A text field has focus (text input works); its initial content.
        package var keyboardFocused: Bool
        package var initialText: String

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv Apple TV",
                    deviceID: String = "AA:BB:CC:DD:EE:01", model: String = "AppleTV6,2", pin: String = "1111",
                    identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString),
                    apps: [App] = VirtualCompanion.defaultApps,
                    accounts: [(id: String, name: String)] = [("A1B2C3", "Alice"), ("D4E5F6", "Bob")],
                    initialPower: CompanionSystemStatus = .awake, volume: Double = 0.5,
                    keyboardFocused: Bool = true, initialText: String = "") {
            self.host = host
            self.port = port
            self.name = name
            self.deviceID = deviceID
            self.model = model
            self.pin = pin
            self.identity = identity
            self.apps = apps
            self.accounts = accounts
            self.initialPower = initialPower
            self.volume = volume
            self.keyboardFocused = keyboardFocused
            self.initialText = initialText
        }
    }

    package static let defaultApps: [App] = [
        App(bundleID: "com.apple.TVMusic", name: "Music"),
        App(bundleID: "com.apple.TVSettings", name: "Settings"),
        App(bundleID: "com.netflix.Netflix", name: "Netflix"),
        App(bundleID: "com.google.ios.youtube", name: "YouTube"),
    ]

    /// What the device saw and did.
    package struct Report: Sendable, Equatable {
        /// Pairing identifiers of controllers that finished pair-setup.
        package var pairings: [String] = []
        /// Pairing identifiers of controllers that finished pair-verify.
        package var verifications: [String] = []
        /// Failed pair-setup / pair-verify attempts (error text).
        package var authFailures: [String] = []
        /// Request and event names in arrival order.
        package var messages: [String] = []
        /// `_launchApp` targets (bundle ids or URLs) that launched.
        package var launched: [String] = []
        /// `_hidC` as (state 1 down / 2 up, code).
        package var buttons: [[Int64]] = []
        /// Names sent in `_systemInfo`.
        package var clientNames: [String] = []
        package var account: String?
        /// Text operations applied (`_tiC`), as "insert:TEXT" or "assert:TEXT".
        package var textOperations: [String] = []
        /// `_mcc` media-control commands, e.g. "play", "skipBy:-10", "setVolume:0.3" (GetVolume is not recorded).
        package var mediaCommands: [String] = []
        /// Power states the device went through (after the initial one), "on"/"off".
        package var powerChanges: [String] = []
        package init() {}
    }

    struct State: Sendable {
        var controllers: [HAPPairedController] = []
        var report = Report()
        var power: CompanionSystemStatus
        var volume: Double
        var text: String
        var textSession: [UInt8] = []
    }

    package let configuration: Configuration
    let channel: Channel
    let state: Mutex<State>
    let pushers = Mutex<[ObjectIdentifier: Pusher]>([:])

    struct Pusher: Sendable {
        let loop: EventLoop
        let push: @Sendable (CompanionMessage) -> Void
    }

    init(configuration: Configuration, channel: Channel, state: State) {
        self.configuration = configuration
        self.channel = channel
        self.state = Mutex(state)
    }

    package var port: Int { channel.localAddress?.port ?? 0 }
    package var report: Report { state.withLock { $0.report } }
    package var pairedControllers: [HAPPairedController] { state.withLock { $0.controllers } }
    package var power: CompanionSystemStatus { state.withLock { $0.power } }
    /// The focused text field's content.
    package var text: String { state.withLock { $0.text } }

    package static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualCompanion {
        let box = DeviceBox()
        let channel = try await TCPListener.bind(host: configuration.host, port: configuration.port) { _, pipeline in
            guard let device = box.device else { throw ATVError.invalidState("virtual Companion device is not ready") }
            try pipeline.addHandler(CompanionAccessoryHandler(device: device))
        }
        let device = VirtualCompanion(configuration: configuration, channel: channel,
                                      state: State(power: configuration.initialPower, volume: configuration.volume, text: configuration.initialText))
        box.set(device)
        return device
    }

    package func stop() async {
        try? await channel.close()
        for p in pushers.withLock({ Array($0.values) }) { p.loop.execute { p.push(.event("_close")) } }
    }

    /// `_companion-link._tcp` as an Apple TV publishes it; rpFl 0x36782 has bit 0x4000 (PIN
    /// pairing supported → pyatv: pairing Mandatory).
    package func mdnsServices(address: String = "127.0.0.1") -> [MDNSService] {
        let compact = configuration.deviceID.filter { $0 != ":" }.lowercased()
        let txt: [String: String] = [
            "rpMac": "2", "rpHN": String(compact.suffix(12)), "rpFl": "0x36782", "rpHA": compact,
            "rpMd": configuration.model, "rpVr": "715.2", "rpAD": compact, "rpHI": compact,
            "rpBA": configuration.deviceID.uppercased(),
            "rpMRtID": String(decoding: configuration.identity.identifier, as: UTF8.self),
        ]
        return [MDNSService(instance: configuration.name, type: "_companion-link._tcp.local", port: UInt16(port), txt: txt,
                            hostName: "swift-atv-\(compact).local", address: address)]
    }

    // MARK: Behaviour (called on a connection's event loop)

    func record(_ body: (inout Report) -> Void) { state.withLock { body(&$0.report) } }

    func addController(_ c: HAPPairedController) {
        state.withLock { s in
            s.controllers.removeAll { $0.identifier == c.identifier }
            s.controllers.append(c)
            s.report.pairings.append(String(decoding: c.identifier, as: UTF8.self))
        }
    }

    /// The reply to a request (nil for events).
    func handle(_ m: CompanionMessage) -> CompanionMessage? {
        let name = m.identifier ?? ""
        record { $0.messages.append(name) }
        if m.kind == .event, name == "_tiC", let archive = m.content["_tiD"]?.dataValue, let op = RTIArchive.operation(archive) {
            state.withLock { s in
                guard op.session == nil || op.session == s.textSession else { return }
                if let a = op.textToAssert { s.text = a; s.report.textOperations.append("assert:" + a) }
                if let i = op.insertionText { s.text += i; s.report.textOperations.append("insert:" + i) }
            }
        }
        guard m.kind == .request else { return nil }
        let c = m.content
        switch name {
        case "_systemInfo":
            if let n = c["name"]?.stringValue { record { $0.clientNames.append(n) } }
            return .response(to: m.xid, .dict(["name": .string(configuration.name), "model": .string(configuration.model)]))
        case "_sessionStart":
            return .response(to: m.xid, .dict(["_sid": .int(Int64(UInt32.random(in: 1 ... .max)))]))
        case "_tiStart":
            guard configuration.keyboardFocused else { return .response(to: m.xid) }
            let uuid = (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255) }
            let text = state.withLock { s in s.textSession = uuid; return s.text }
            return .response(to: m.xid, .dict(["_tiD": .data(RTIArchive.session(uuid: uuid, text: text))]))
        case "_touchStart", "_touchStop", "_sessionStop", "_tiStop", "TVRCSessionStart":
            return .response(to: m.xid)
        case "FetchAttentionState":
            return .response(to: m.xid, .dict(["state": .int(power.rawValue)]))
        case "FetchLaunchableApplicationsEvent":
            return .response(to: m.xid, .dict(configuration.apps.map { ($0.bundleID, OPACK.string($0.name)) }))
        case "_launchApp":
            if let url = c["_urlS"]?.stringValue {
                record { $0.launched.append(url) }
                return .response(to: m.xid)
            }
            guard let id = c["_bundleID"]?.stringValue, configuration.apps.contains(where: { $0.bundleID == id }) else {
                return CompanionMessage(kind: .response, identifier: nil, xid: m.xid, errorMessage: "Application not found",
                                        errorCode: -6727, errorDomain: "RPErrorDomain")
            }
            record { $0.launched.append(id) }
            return .response(to: m.xid)
        case "FetchUserAccountsEvent":
            return .response(to: m.xid, .dict(configuration.accounts.map { ($0.id, OPACK.string($0.name)) }))
        case "SwitchUserAccountEvent":
            let id = c["SwitchAccountID"]?.stringValue
            guard let id, configuration.accounts.contains(where: { $0.id == id }) else { return .noHandler(for: m.xid) }
            record { $0.account = id }
            return .response(to: m.xid)
        case "_hidC":
            let st = c["_hBtS"]?.intValue ?? 0, code = c["_hidC"]?.intValue ?? 0
            record { $0.buttons.append([st, code]) }
            if st == 2, code == CompanionHIDButton.sleep.rawValue { setPower(.asleep) }
            if st == 2, code == CompanionHIDButton.wake.rawValue { setPower(.awake) }
            if st == 2, code == CompanionHIDButton.volumeUp.rawValue { setVolume(state.withLock { $0.volume } + 0.05) }
            if st == 2, code == CompanionHIDButton.volumeDown.rawValue { setVolume(state.withLock { $0.volume } - 0.05) }
            return .response(to: m.xid)
        case "_mcc":
            let command = c["_mcc"]?.intValue.flatMap(CompanionMediaCommand.init(rawValue:))
            if let command, command != .getVolume {
                var text = "\(command)"
                if let v = c["_skpS"]?.doubleValue { text += ":\(Self.number(v))" }
                if let v = c["_vol"]?.doubleValue { text += ":\(Self.number(v))" }
                record { $0.mediaCommands.append(text) }
            }
            switch command {
            case .getVolume: return .response(to: m.xid, .dict(["_vol": .double(state.withLock { $0.volume })]))
            case .setVolume:
                if let v = c["_vol"]?.doubleValue { setVolume(v) }
                return .response(to: m.xid)
            case .some: return .response(to: m.xid)
            case nil: return .noHandler(for: m.xid)
            }
        default:
            return .noHandler(for: m.xid)
        }
    }

    /// `_mcF` of `_iMC`: play, pause, next, previous, volume, skip forward/backward.
    package static let mediaControlFlags: Int64 = 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0100 | 0x0200 | 0x0400

    package var volume: Double { state.withLock { $0.volume } }

    func setVolume(_ v: Double) {
        // Whole percent steps, as a TV's volume is.
        state.withLock { $0.volume = (min(1, max(0, v)) * 100).rounded() / 100 }
        let event = CompanionMessage.event("_iMC", .dict(["_mcF": .int(Self.mediaControlFlags)]))
        for pusher in pushers.withLock({ Array($0.values) }) { pusher.loop.execute { pusher.push(event) } }
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    func setPower(_ p: CompanionSystemStatus) {
        let changed = state.withLock { s in
            defer { s.power = p }
            guard s.power != p else { return false }
            s.report.powerChanges.append(p == .asleep ? "off" : "on")
            return true
        }
        guard changed else { return }
        for name in ["SystemStatus", "TVSystemStatus"] {
            let event = CompanionMessage.event(name, .dict(["state": .int(p.rawValue)]))
            for pusher in pushers.withLock({ Array($0.values) }) { pusher.loop.execute { pusher.push(event) } }
        }
    }
}

final class DeviceBox: Sendable {
    let value = Mutex<VirtualCompanion?>(nil)
    var device: VirtualCompanion? { value.withLock { $0 } }
    func set(_ d: VirtualCompanion) { value.withLock { $0 = d } }
}

/// One controller connection.
final class CompanionAccessoryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let device: VirtualCompanion
    var connection: CompanionAccessoryConnection
    var subscriptions: Set<String> = []
    var context: ChannelHandlerContext?

    init(device: VirtualCompanion) {
        self.device = device
        connection = CompanionAccessoryConnection(identity: device.configuration.identity, pin: device.configuration.pin)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        device.pushers.withLock {
            $0[ObjectIdentifier(self)] = .init(loop: context.eventLoop, push: { bound.value.push($0) })
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        device.pushers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(self)) }
        self.context = nil
    }

    func push(_ event: CompanionMessage) {
        guard let context else { return }
        if event.identifier == "_close" { context.close(promise: nil); return }
        guard connection.isEncrypted, let name = event.identifier, subscriptions.contains(name) else { return }
        write(context, try? connection.encode(event))
        context.flush()
    }

    func write(_ context: ChannelHandlerContext, _ bytes: [UInt8]?) {
        guard let bytes else { return }
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        let bytes = buf.readBytes(length: buf.readableBytes) ?? []
        do {
            for out in try connection.receive(bytes, controllers: device.pairedControllers) {
                switch out {
                case .send(let b): write(context, b)
                case .paired(let c): device.addController(c)
                case .verified(let c): device.record { $0.verifications.append(String(decoding: c.identifier, as: UTF8.self)) }
                case .authFailed(let e): device.record { $0.authFailures.append(e.description) }
                case .message(let m):
                    if m.kind == .event, m.identifier == "_interest" {
                        for e in m.content["_regEvents"]?.arrayValue ?? [] {
                            guard let s = e.stringValue, subscriptions.insert(s).inserted else { continue }
                            // A new media-control subscriber learns the current controls at once.
                            if s == "_iMC" {
                                push(.event("_iMC", .dict(["_mcF": .int(VirtualCompanion.mediaControlFlags)])))
                            }
                        }
                        for e in m.content["_deregEvents"]?.arrayValue ?? [] { if let s = e.stringValue { subscriptions.remove(s) } }
                    }
                    if let reply = device.handle(m) { write(context, try connection.encode(reply)) }
                }
            }
            context.flush()
        } catch {
            // Garbage or a frame that fails authentication ends the connection.
            device.record { $0.authFailures.append("\(error)") }
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
