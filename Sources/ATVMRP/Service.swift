// MRP as a set of user-facing interfaces: one connection, the now-playing and device
// state fed by every message the device sends, and RemoteControl / Metadata / PushUpdater / Audio /
// Power / Features on top.
import ATVAuth
import ATVCore
import ATVHTTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

package final class MRPService: Sendable {
    package struct Options: Sendable {
        package var name: String
        package var osBuild: String
        package var connectTimeout: Duration
        package var replyTimeout: Duration
        /// GENERIC heartbeat period; nil disables it.
        package var heartbeat: Duration?
        package init(name: String = "swift-atv", osBuild: String = "18M60", connectTimeout: Duration = .seconds(10),
                    replyTimeout: Duration = .seconds(MRPHandshake.replyTimeout),
                    heartbeat: Duration? = .seconds(MRPHandshake.heartbeatInterval)) {
            self.name = name
            self.osBuild = osBuild
            self.connectTimeout = connectTimeout
            self.replyTimeout = replyTimeout
            self.heartbeat = heartbeat
        }
    }

    struct State {
        var connection: MRPConnection?
        var player = MRPPlayerState()
        var device = MRPDeviceState()
        var lastPlaying: Playing?
        var lostError: ATVError?
        var closed = false
        var tunnel: MRPTunnelEndpoint?
    }

    package let host: String
    package let port: Int
    package let credentials: HAPCredentials?
    package let options: Options
    /// Opens the AirPlay 2 session whose data channel carries MRP; nil: a direct TCP connection.
    package let openTunnel: (@Sendable () async throws -> MRPTunnelEndpoint)?
    let state = Mutex(State())
    let broadcaster = Broadcaster<DeviceUpdate>()
    /// Every update, including repeated volume values (for waiting on VOLUME_DID_CHANGE).
    let volumeEvents = Broadcaster<Double>()

    package init(host: String, port: Int, credentials: HAPCredentials?, options: Options = Options(),
                tunnel: (@Sendable () async throws -> MRPTunnelEndpoint)? = nil) {
        self.host = host
        self.port = port
        self.credentials = credentials
        self.options = options
        self.openTunnel = tunnel
    }

    /// True when MRP runs over an AirPlay 2 data channel.
    package var isTunnelled: Bool { openTunnel != nil }

    // MARK: Connection

    /// Connect and run the handshake; afterwards the now-playing state the device sent is known.
    package func connect() async throws {
        try state.withLock { s in
            if s.closed { throw ATVError.blocked }
            if s.connection != nil { throw ATVError.invalidState("MRP is already connected; make a new MRPService to reconnect") }
        }
        let listener = MRPConnection.Listener(message: { [weak self] m in self?.apply(m) },
                                              closed: { [weak self] e in self?.connectionEnded(e) })
        var tunnel: MRPTunnelEndpoint?
        let conn: MRPConnection
        if let openTunnel {
            // MRP over the AirPlay 2 data stream (tvOS 15+): no MRP pair-verify (the data stream is encrypted) and no
            // MRP heartbeat (`/feedback` keeps the session alive).
            let t = try await openTunnel()
            tunnel = t
            state.withLock { $0.tunnel = t }
            do {
                conn = try await MRPConnection.connect(host: t.host, port: t.port, timeout: options.connectTimeout,
                                                       transport: .airPlayDataStream, configure: t.configure, listener: listener)
            } catch {
                await t.close()
                throw error
            }
            t.onFailure { e in Task { await conn.abort(e) } }
        } else {
            conn = try await MRPConnection.connect(host: host, port: port, timeout: options.connectTimeout, listener: listener)
        }
        state.withLock { $0.connection = conn }
        let pairingID = credentials.map { String(decoding: $0.clientID, as: UTF8.self) } ?? UUID().uuidString.lowercased()
        do {
            try await conn.start(client: MRPMessages.ClientInfo(pairingID: pairingID, name: options.name, osBuild: options.osBuild),
                                 credentials: tunnel == nil ? credentials : nil, timeout: options.replyTimeout)
        } catch {
            await conn.close()
            await tunnel?.close()
            if let e = error as? ATVError { throw e }
            throw ATVError.connectionFailed("MRP handshake with \(host):\(port) failed: \(error)")
        }
        if tunnel == nil, let hb = options.heartbeat { await conn.startHeartbeat(interval: hb, timeout: options.replyTimeout) }
    }

    package func close() async {
        let (conn, tunnel) = state.withLock { s -> (MRPConnection?, MRPTunnelEndpoint?) in
            s.closed = true
            return (s.connection, s.tunnel)
        }
        await conn?.close()
        await tunnel?.close()
        broadcaster.finish()
        volumeEvents.finish()
    }

    func connectionEnded(_ error: ATVError?) {
        let wasOpen = state.withLock { s -> Bool in
            defer { if let error { s.lostError = error } }
            return !s.closed && s.lostError == nil
        }
        if let error, wasOpen { broadcaster.yield(.connectionLost(error.description)) }
        else if error == nil, wasOpen { broadcaster.yield(.connectionClosed) }
        broadcaster.finish()
        volumeEvents.finish()
    }

    func connection() throws -> MRPConnection {
        try state.withLock { s in
            if let e = s.lostError { throw e }
            if s.closed { throw ATVError.blocked }
            guard let c = s.connection else { throw ATVError.invalidState("MRP is not connected; call connect() first") }
            return c
        }
    }

    /// Applies a message to the state and posts the updates it causes.
    func apply(_ m: MRPProtocolMessage) {
        var updates: [DeviceUpdate] = []
        var volume: Double?
        state.withLock { s in
            if s.player.apply(m) {
                let p = s.player.playing()
                if p != s.lastPlaying {
                    s.lastPlaying = p
                    updates.append(.playing(p))
                }
            }
            updates += s.device.apply(m)
            if m.type == .volumeDidChange, m.hasMRPvolumeDidChangeMessage {
                let v = m.MRPvolumeDidChangeMessage
                if (v.hasOutputDeviceUid ? v.outputDeviceUid : v.endpointUid) == s.device.deviceUID {
                    volume = s.device.volume
                }
            }
        }
        for u in updates { broadcaster.yield(u) }
        if let volume { volumeEvents.yield(volume) }
    }

    // MARK: State

    package var playerState: MRPPlayerState { state.withLock { $0.player } }
    package var deviceState: MRPDeviceState { state.withLock { $0.device } }

    // MARK: Low-level helpers

    func command(_ c: MRPCommand, options: MRPCommandOptions? = nil) async throws {
        try await send(MRPMessages.sendCommand(c, options: options), command: c)
    }

    func send(_ message: MRPProtocolMessage, command: MRPCommand) async throws {
        let reply = try await connection().sendAndReceive(message, timeout: options.replyTimeout)
        if let e = MRPCommands.resultError(reply, command: command) { throw e }
    }

    func run(_ steps: [MRPHIDStep]) async throws {
        let conn = try connection()
        for step in steps {
            switch step {
            case .send(let m): try await conn.send(m)
            case .sleep(let s): try await Task.sleep(for: .seconds(s))
            case .flush: _ = try await conn.sendAndReceive(MRPMessages.generic(), timeout: options.replyTimeout)
            }
        }
    }

    func press(_ key: MRPHIDKey, _ action: InputAction) async throws {
        let a: MRPInputAction = switch action {
        case .singleTap: .singleTap
        case .doubleTap: .doubleTap
        case .hold: .hold
        }
        try await run(MRPHID.steps(key, a))
    }

    /// Waits for the next VOLUME_DID_CHANGE of our device after `body`, at most 5 s (no error on timeout).
    func awaitingVolume(_ body: () async throws -> Void) async throws {
        let events = volumeEvents.subscribe()
        try await body()
        await withTaskGroup(of: Void.self) { g in
            g.addTask { for await _ in events { return } }
            g.addTask { try? await Task.sleep(for: .seconds(5)) }
            await g.next()
            g.cancelAll()
        }
    }
}

// MARK: - RemoteControl

extension MRPService: RemoteControl {
    package func up(_ action: InputAction) async throws { try await press(.up, action) }
    package func down(_ action: InputAction) async throws { try await press(.down, action) }
    package func left(_ action: InputAction) async throws { try await press(.left, action) }
    package func right(_ action: InputAction) async throws { try await press(.right, action) }
    package func select(_ action: InputAction) async throws { try await press(.select, action) }
    package func menu(_ action: InputAction) async throws { try await press(.menu, action) }
    package func home(_ action: InputAction) async throws { try await press(.home, action) }
    package func homeHold() async throws { try await press(.home, .hold) }
    package func topMenu() async throws { try await press(.topMenu, .singleTap) }
    package func play() async throws { try await command(.play) }
    package func pause() async throws { try await command(.pause) }
    package func playPause() async throws { try await command(MRPCommands.playPauseCommand(playerState)) }
    package func stop() async throws { try await command(.stop) }
    package func next() async throws { try await command(.nextTrack) }
    package func previous() async throws { try await command(.previousTrack) }
    package func skipForward(_ interval: Double) async throws {
        try await send(MRPCommands.skip(forward: true, seconds: interval > 0 ? interval : nil, state: playerState), command: .skipForward)
    }
    package func skipBackward(_ interval: Double) async throws {
        try await send(MRPCommands.skip(forward: false, seconds: interval > 0 ? interval : nil, state: playerState), command: .skipBackward)
    }
    package func setPosition(_ position: Int) async throws {
        try await send(try MRPCommands.setPosition(Double(position)), command: .seekToPlaybackPosition)
    }
    package func setShuffle(_ s: ShuffleState) async throws { try await send(MRPCommands.setShuffle(s), command: .changeShuffleMode) }
    package func setRepeat(_ r: RepeatState) async throws { try await send(MRPCommands.setRepeat(r), command: .changeRepeatMode) }
}

// MARK: - Metadata

extension MRPService: Metadata {
    package func playing() async throws -> Playing {
        _ = try connection()
        return state.withLock { $0.player.playing() }
    }

    package func artworkID() async throws -> String {
        _ = try connection()
        guard let item = state.withLock({ $0.player.activePlayer?.currentItem }), let id = MRPArtwork.artworkID(item) else {
            throw ATVError.notSupported(.artwork)
        }
        return id
    }

    /// The artwork of the current item: its http URLs first (`artworkIdentifier` template,
    /// `artworkURL`), else in-band (PLAYBACK_QUEUE_REQUEST); nil when the item has none.
    package func artwork(width: Int?, height: Int?) async throws -> ArtworkInfo? {
        let conn = try connection()
        let (item, location) = state.withLock { ($0.player.activePlayer?.currentItem, $0.player.activePlayer?.location ?? 0) }
        guard let item, MRPArtwork.artworkID(item) != nil else { return nil }
        for url in MRPArtwork.candidateURLs(item.metadata, width: width ?? 0, height: height ?? 0) {
            if let art = await Self.fetchArtwork(url, width: width ?? 0, height: height ?? 0) { return art }
        }
        let reply = try await conn.sendAndReceive(MRPMessages.artworkRequest(location: Int32(clamping: location), width: width ?? 0,
                                                                             height: height ?? -1), timeout: options.replyTimeout)
        return try MRPArtwork.fromReply(reply)
    }

    /// GET an http:// artwork URL (https is not supported: nil, and the caller falls back).
    static func fetchArtwork(_ text: String, width: Int, height: Int) async -> ArtworkInfo? {
        guard let c = URLComponents(string: text), c.scheme?.lowercased() == "http", let host = c.host, !host.isEmpty else { return nil }
        var path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        if let q = c.percentEncodedQuery { path += "?" + q }
        guard let client = try? await HTTPClientConnection.connect(host: host, port: c.port ?? 80, timeout: .seconds(5)) else { return nil }
        defer { client.close() }
        guard let r = try? await client.send(HTTPRequestMessage(method: "GET", uri: path), timeout: .seconds(5)),
              r.status == 200, !r.body.isEmpty else { return nil }
        return ArtworkInfo(bytes: r.body, mimeType: sniffImageType(r.body), width: width, height: height)
    }

    /// MIME type from the first bytes (PNG, JPEG, GIF, WebP), else application/octet-stream.
    static func sniffImageType(_ b: [UInt8]) -> String {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if b.starts(with: Array("GIF8".utf8)) { return "image/gif" }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        return "application/octet-stream"
    }

    package func app() async throws -> App? {
        _ = try connection()
        return state.withLock { $0.player.app }
    }
}

// MARK: - PushUpdater

extension MRPService: PushUpdater {
    /// Playing, volume, power and output-device changes. Ends when the connection closes; when the
    /// device closed it (or it broke) the last element is `.connectionLost(reason)`.
    package func updates() -> AsyncStream<DeviceUpdate> { broadcaster.subscribe() }
}

// MARK: - Audio

extension MRPService: Audio {
    package func volume() async throws -> Double {
        _ = try connection()
        guard let v = state.withLock({ $0.device.volume }) else { throw ATVError.notSupported(.volume) }
        return v
    }

    package func setVolume(_ level: Double, outputDevice: String?) async throws {
        let conn = try connection()
        let (uid, absolute, current) = state.withLock { ($0.device.deviceUID, $0.device.supportsAbsoluteVolume, $0.device.volume) }
        guard let target = outputDevice ?? uid else { throw ATVError.protocolError("the device reported no output device UID for volume") }
        let message = try MRPMessages.setVolume(percent: level, outputDeviceUID: target)
        if outputDevice != nil || (absolute && current != level) {
            try await awaitingVolume { try await conn.send(message) }
        } else {
            try await conn.send(message)
        }
    }

    package func volumeUp() async throws { try await stepVolume(up: true) }
    package func volumeDown() async throws { try await stepVolume(up: false) }

    func stepVolume(up: Bool) async throws {
        let (abs, rel, v) = state.withLock { ($0.device.supportsAbsoluteVolume, $0.device.supportsRelativeVolume, $0.device.volume ?? 0) }
        if abs && (up ? v >= 100 : v <= 0) { return }
        if rel {
            let steps = MRPHID.steps(up ? .volumeUp : .volumeDown, flush: false)
            if abs { try await awaitingVolume { try await run(steps) } } else { try await run(steps) }
        } else if abs {
            try await setVolume(up ? min(v + 5, 100) : max(v - 5, 0), outputDevice: nil)
        } else {
            throw ATVError.notSupported(up ? .volumeUp : .volumeDown)
        }
    }

    package func outputDevices() async throws -> [OutputDevice] {
        _ = try connection()
        return state.withLock { $0.device.outputDevices }
    }

    package func addOutputDevices(_ ids: [String]) async throws { try await modifyOutputs(MRPMessages.modifyOutputContext(adding: ids)) }
    package func removeOutputDevices(_ ids: [String]) async throws { try await modifyOutputs(MRPMessages.modifyOutputContext(removing: ids)) }
    package func setOutputDevices(_ ids: [String]) async throws { try await modifyOutputs(MRPMessages.modifyOutputContext(setting: ids)) }

    /// Sends MODIFY_OUTPUT_CONTEXT_REQUEST and waits (≤ 5 s, no error after) for the changed device list, as pyatv.
    func modifyOutputs(_ message: MRPProtocolMessage) async throws {
        let conn = try connection()
        let updates = broadcaster.subscribe()
        try await conn.send(message)
        await withTaskGroup(of: Void.self) { g in
            g.addTask { for await u in updates { if case .outputDevices = u { return } } }
            g.addTask { try? await Task.sleep(for: .seconds(5)) }
            await g.next()
            g.cancelAll()
        }
    }
}

// MARK: - Power

extension MRPService: Power {
    package func powerState() async throws -> PowerState {
        _ = try connection()
        return state.withLock { $0.device.powerState }
    }
    /// WAKE_DEVICE; with `awaitNewState`, waits (≤ 5 s) until the device reports it is on.
    package func turnOn(awaitNewState: Bool) async throws {
        let conn = try connection()
        try await awaitingPower(.on, enabled: awaitNewState) { try await conn.send(MRPMessages.wakeDevice()) }
    }

    /// Home held for 1 s, then Select (how pyatv turns the device off); with `awaitNewState`, waits (≤ 5 s) until it reports off.
    package func turnOff(awaitNewState: Bool) async throws {
        try await awaitingPower(.off, enabled: awaitNewState) { try await run(MRPHID.turnOffSteps()) }
    }

    func awaitingPower(_ target: PowerState, enabled: Bool, _ body: () async throws -> Void) async throws {
        guard enabled, state.withLock({ $0.device.powerState }) != target else { return try await body() }
        let updates = broadcaster.subscribe()
        try await body()
        let reached = await withTaskGroup(of: Bool.self) { g in
            g.addTask { for await u in updates { if u == .powerState(target) { return true } }; return false }
            g.addTask { try? await Task.sleep(for: .seconds(5)); return false }
            let r = await g.next() ?? false
            g.cancelAll()
            return r
        }
        if !reached, state.withLock({ $0.device.powerState }) != target {
            throw ATVError.timeout("the device did not report power \(target) within 5 s")
        }
    }
}

// MARK: - Features

extension MRPService: Features {
    package func feature(_ name: FeatureName) -> FeatureInfo {
        let (p, d) = state.withLock { ($0.player, $0.device) }
        return MRPFeatures(player: p, device: d).feature(name)
    }
}
