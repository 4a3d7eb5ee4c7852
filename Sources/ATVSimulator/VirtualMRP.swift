import ATVAuth
import ATVCore
import ATVDiscovery
import ATVHTTP
import ATVMRP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// A virtual Apple TV, MRP side: answers DEVICE_INFO, HAP pair-setup with a PIN
/// and pair-verify over CRYPTO_PAIRING (then everything is encrypted), and plays a scripted queue
/// of tracks: every `advanceInterval` seconds of playing it moves to the next track. Connections that
/// sent CLIENT_UPDATES_CONFIG get the now-playing state and volume pushed on every change. It obeys
/// SEND_COMMAND (play, pause, toggle, stop, next, previous, skip, seek, shuffle, repeat), SET_VOLUME,
/// HID buttons (volume keys change the volume) and PLAYBACK_QUEUE_REQUEST (artwork bytes).
package final class VirtualMRP: Sendable {
    package struct Track: Sendable, Equatable {
        package var title: String
        package var artist: String
        package var album: String
        package var genre: String
        /// Seconds.
        package var duration: Double
        /// PNG bytes (may be empty: no artwork).
        package var artwork: [UInt8]
        package init(title: String, artist: String, album: String, genre: String = "Pop", duration: Double, artwork: [UInt8] = []) {
            self.title = title
            self.artist = artist
            self.album = album
            self.genre = genre
            self.duration = duration
            self.artwork = artwork
        }
    }

    package struct Configuration: Sendable {
        package var host: String
        /// 0 picks a free port.
        package var port: Int
        package var name: String
        /// The device's UID (DEVICE_INFO deviceUID; volume messages carry it).
        package var deviceID: String
        package var model: String
        package var pin: String
        package var identity: HAPIdentity
        package var tracks: [Track]
        /// Seconds of playing after which the script moves to the next track; nil: never.
        package var advanceInterval: Double?
        /// Percent.
        package var volume: Double
        package var startPlaying: Bool
        /// Also serve artwork over HTTP and announce it as the item's `artworkURL` (pyatv and our
        /// client try that before the in-band PLAYBACK_QUEUE_REQUEST).
        package var artworkOverHTTP: Bool

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv Apple TV",
                    deviceID: String = "F2204E63-BCAB-4941-80A0-06C46CB71391", model: String = "AppleTV6,2",
                    pin: String = "1111", identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString),
                    tracks: [Track] = VirtualMRP.defaultTracks, advanceInterval: Double? = 10, volume: Double = 50,
                    startPlaying: Bool = true, artworkOverHTTP: Bool = false) {
            self.host = host
            self.port = port
            self.name = name
            self.deviceID = deviceID
            self.model = model
            self.pin = pin
            self.identity = identity
            self.tracks = tracks
            self.advanceInterval = advanceInterval
            self.volume = volume
            self.startPlaying = startPlaying
            self.artworkOverHTTP = artworkOverHTTP
        }
    }

    /// A tiny valid PNG (1×1, opaque red) used as artwork by the default tracks.
    package static let samplePNG: [UInt8] = [
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
        0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0x00,
        0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E,
        0x44, 0xAE, 0x42, 0x60, 0x82,
    ]

    package static let defaultTracks: [Track] = [
        Track(title: "First Light", artist: "The Virtuals", album: "Loopback Sessions", genre: "Ambient", duration: 201, artwork: samplePNG),
        Track(title: "Second Wind", artist: "Ada Byte", album: "Packets", genre: "Electronic", duration: 185, artwork: samplePNG),
        Track(title: "Third Time Lucky", artist: "The Virtuals", album: "Loopback Sessions", genre: "Ambient", duration: 242, artwork: samplePNG),
    ]

    /// tvOS 14.7: pyatv disables direct MRP for tvOS ≥ 15 (build ≥ 19…), which tunnels MRP over AirPlay.
    package static let systemBuild = "18M60"
    package static let bundleIdentifier = "com.apple.TVMusic"
    package static let appName = "Music"

    /// What the device saw and did.
    package struct Report: Sendable, Equatable {
        package var pairings: [String] = []
        package var verifications: [String] = []
        package var authFailures: [String] = []
        /// Message types received, in order (e.g. "deviceInfo", "sendCommand").
        package var messages: [String] = []
        /// SEND_COMMAND commands obeyed, in order (e.g. "pause", "nextTrack").
        package var commands: [String] = []
        /// HID transitions, e.g. "select down", "select up".
        package var buttons: [String] = []
        /// Names controllers sent in DEVICE_INFO.
        package var clientNames: [String] = []
        /// Volume (percent) after every change.
        package var volumes: [Double] = []
        /// Power changes, "off" / "on".
        package var power: [String] = []
        /// The group (other output device UIDs) after every MODIFY_OUTPUT_CONTEXT_REQUEST.
        package var outputGroups: [[String]] = []
        package init() {}
    }

    package struct NowPlaying: Sendable, Equatable {
        package var trackIndex: Int
        package var playing: Bool
        /// Position in seconds at `positionDate`.
        package var position: Double
        package var positionDate: Date
        /// After Stop (until Play): SET_STATE says Stopped rather than Paused.
        package var stopped = false
        package var shuffle: MRPShuffleMode
        package var repeatMode: MRPRepeatMode
        package func positionNow(_ now: Date = Date()) -> Double {
            playing ? position + now.timeIntervalSince(positionDate) : position
        }
    }

    struct State: Sendable {
        var controllers: [HAPPairedController] = []
        var report = Report()
        var now: NowPlaying
        var volume: Double
        /// When playing time last reached the advance interval check.
        var playedSinceAdvance: Double = 0
        var poweredOn = true
        /// UIDs of the other output devices in this device's group.
        var grouped: [String] = []
        /// When Home went down; a hold (≥ 0.8 s) arms the sleep menu, Select then sleeps (pyatv's turn_off).
        var homeDownAt: Date?
        var sleepMenuOpen = false
    }

    package let configuration: Configuration
    /// The TCP listener of a direct device; nil when embedded (the MRP tunnel of a virtual HomePod).
    let channel: Channel?
    let artworkServer: HTTPServer?
    let artworkRequests: RequestLog
    /// Paths of the HTTP artwork requests served (with `artworkOverHTTP`).
    package var httpArtworkRequests: [String] { artworkRequests.all }
    let state: Mutex<State>
    let pushers = Mutex<[ObjectIdentifier: MRPPusher]>([:])
    let ticker = Mutex<Task<Void, Never>?>(nil)
    let muted = Atomic<Bool>(false)

    /// A hung device: while muted it reads but answers nothing (heartbeats time out).
    package func setMuted(_ on: Bool) { muted.store(on, ordering: .relaxed) }

    init(configuration: Configuration, channel: Channel?, artworkServer: HTTPServer?, artworkRequests: RequestLog) {
        self.configuration = configuration
        self.channel = channel
        self.artworkServer = artworkServer
        self.artworkRequests = artworkRequests
        state = Mutex(State(now: NowPlaying(trackIndex: 0, playing: configuration.startPlaying, position: 0, positionDate: Date(),
                                            shuffle: .off, repeatMode: .off),
                            volume: configuration.volume))
    }

    package var port: Int { channel?.localAddress?.port ?? 0 }
    package var report: Report { state.withLock { $0.report } }
    package var nowPlaying: NowPlaying { state.withLock { $0.now } }
    package var currentTrack: Track { configuration.tracks[state.withLock { $0.now.trackIndex }] }
    package var volume: Double { state.withLock { $0.volume } }
    package var isOn: Bool { state.withLock { $0.poweredOn } }
    /// UIDs of the other output devices grouped with this one.
    package var groupedDevices: [String] { state.withLock { $0.grouped } }
    package var pairedControllers: [HAPPairedController] { state.withLock { $0.controllers } }

    package static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualMRP {
        guard !configuration.tracks.isEmpty else { throw ATVError.invalidConfig("the virtual MRP device needs at least one track") }
        let box = MRPDeviceBox()
        let channel = try await TCPListener.bind(host: configuration.host, port: configuration.port, options: .init(noDelay: true)) { _, pipeline in
            guard let device = box.device else { throw ATVError.invalidState("virtual MRP device is not ready") }
            try pipeline.addHandler(MRPAccessoryHandler(device: device))
        }
        let requests = RequestLog()
        var server: HTTPServer?
        if configuration.artworkOverHTTP {
            let tracks = configuration.tracks
            let log = requests
            do {
                server = try await HTTPServer.start(host: configuration.host) { req in
                    let target = req.message.uri
                    log.append(target)
                    // /artwork/<index>.png
                    let name = target.split(separator: "/").last.map { $0.split(separator: ".").first.map(String.init) ?? "" } ?? ""
                    guard let i = Int(name), tracks.indices.contains(i), !tracks[i].artwork.isEmpty else { return HTTPServerResponse(status: 404) }
                    return HTTPServerResponse(status: 200, headers: ["Content-Type": "image/png"], bytes: tracks[i].artwork)
                }
            } catch {
                try? await channel.close()
                throw error
            }
        }
        let device = VirtualMRP(configuration: configuration, channel: channel, artworkServer: server, artworkRequests: requests)
        box.set(device)
        device.startTicker()
        return device
    }

    /// Stop listening and close every controller connection (they see the device go away).
    package func stop() async {
        ticker.withLock { $0?.cancel() }
        await artworkServer?.stop()
        if let channel { try? await channel.close() }
        dropConnections()
    }

    /// A device without a listener of its own: controllers reach it through another transport (the
    /// AirPlay 2 data stream of a virtual HomePod, `MRPAccessoryHandler(device:transport: .dataStream)`).
    package static func embedded(_ configuration: Configuration) throws -> VirtualMRP {
        guard !configuration.tracks.isEmpty else { throw ATVError.invalidConfig("the virtual MRP device needs at least one track") }
        let device = VirtualMRP(configuration: configuration, channel: nil, artworkServer: nil, artworkRequests: RequestLog())
        device.startTicker()
        return device
    }

    /// Controller connections open now (direct or tunnelled).
    package var connectionCount: Int { pushers.withLock { $0.count } }

    /// Close every controller connection but keep listening.
    package func dropConnections() {
        for p in pushers.withLock({ Array($0.values) }) { p.loop.execute { p.close() } }
    }

    func startTicker() {
        guard let interval = configuration.advanceInterval, interval > 0 else { return }
        let task = Task { [weak self] in
            let step = min(0.1, interval / 4)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(step))
                guard let self else { return }
                let advance = self.state.withLock { s -> Bool in
                    guard s.now.playing else { return false }
                    s.playedSinceAdvance += step
                    if s.playedSinceAdvance >= interval { s.playedSinceAdvance = 0; return true }
                    return false
                }
                if advance { self.changeTrack(by: 1) }
            }
        }
        ticker.withLock { $0 = task }
    }

    /// `_mediaremotetv._tcp` as an Apple TV publishes it (pyatv: name from `Name`, identifier from
    /// `UniqueIdentifier`, pairing Optional because `AllowPairing` is YES).
    package func mdnsServices(address: String = "127.0.0.1") -> [MDNSService] {
        let txt: [String: String] = [
            "Name": configuration.name, "UniqueIdentifier": configuration.deviceID, "ModelName": "Apple TV",
            "SystemBuildVersion": Self.systemBuild, "AllowPairing": "YES", "BluetoothAddress": "", "macAddress": "AA:BB:CC:DD:EE:02",
            "LocalAirPlayReceiverPairingIdentity": String(decoding: configuration.identity.identifier, as: UTF8.self),
        ]
        let host = configuration.deviceID.filter(\.isLetter).prefix(12).lowercased()
        return [MDNSService(instance: configuration.name, type: "_mediaremotetv._tcp.local", port: UInt16(port), txt: txt,
                            hostName: "swift-atv-mrp-\(host).local", address: address)]
    }

    // MARK: Behaviour

    func record(_ body: (inout Report) -> Void) { state.withLock { body(&$0.report) } }

    func addController(_ c: HAPPairedController) {
        state.withLock { s in
            s.controllers.removeAll { $0.identifier == c.identifier }
            s.controllers.append(c)
            s.report.pairings.append(String(decoding: c.identifier, as: UTF8.self))
        }
    }

    func changeTrack(by delta: Int) {
        state.withLock { s in
            let n = configuration.tracks.count
            s.now.trackIndex = ((s.now.trackIndex + delta) % n + n) % n
            s.now.position = 0
            s.now.positionDate = Date()
            s.playedSinceAdvance = 0
        }
        pushState()
    }

    func setPlaying(_ playing: Bool) {
        state.withLock { s in
            let date = Date()
            s.now.position = s.now.positionNow(date)
            s.now.positionDate = date
            s.now.playing = playing
            if playing { s.now.stopped = false }
        }
        pushState()
    }

    func seek(to seconds: Double) {
        state.withLock { s in
            let d = configuration.tracks[s.now.trackIndex].duration
            s.now.position = min(max(0, seconds), d)
            s.now.positionDate = Date()
        }
        pushState()
    }

    func setVolume(_ percent: Double) {
        let v = state.withLock { s -> Double in
            s.volume = (min(100, max(0, percent)) * 10).rounded() / 10
            s.report.volumes.append(s.volume)
            return s.volume
        }
        let message = volumeDidChange(v)
        broadcast { _ in message }
    }

    /// Obeys one SEND_COMMAND; returns the sendError (0 = done).
    func perform(_ c: MRPSendCommandMessage) -> Int32 {
        record { $0.commands.append("\(c.command)") }
        let now = nowPlaying
        switch c.command {
        case .play: setPlaying(true)
        case .pause: setPlaying(false)
        case .togglePlayPause: setPlaying(!now.playing)
        case .stop:
            state.withLock { s in s.now.playing = false; s.now.stopped = true; s.now.position = 0; s.now.positionDate = Date() }
            pushState()
        case .nextTrack: changeTrack(by: 1)
        case .previousTrack: changeTrack(by: -1)
        case .skipForward, .skipBackward:
            let interval = c.options.hasSkipInterval ? Double(c.options.skipInterval) : 15
            seek(to: now.positionNow() + (c.command == .skipForward ? interval : -interval))
        case .seekToPlaybackPosition:
            seek(to: c.options.playbackPosition)
        case .changeShuffleMode:
            state.withLock { $0.now.shuffle = c.options.shuffleMode }
            pushState()
        case .changeRepeatMode:
            state.withLock { $0.now.repeatMode = c.options.repeatMode }
            pushState()
        default:
            return 1  // not supported
        }
        return 0
    }

    func button(_ data: [UInt8]) {
        guard let (page, usage, down) = MRPHID.parseEventData(data) else { return }
        let key = MRPHIDKey.allCases.first { $0.usagePage == page && $0.usage == usage }
        record { $0.buttons.append("\(key?.rawValue ?? "\(page):\(usage)") \(down ? "down" : "up")") }
        guard let key else { return }
        if key == .home {
            state.withLock { s in
                if down { s.homeDownAt = Date() } else if let t = s.homeDownAt {
                    s.sleepMenuOpen = Date().timeIntervalSince(t) >= 0.8
                    s.homeDownAt = nil
                }
            }
            return
        }
        guard !down else { return }
        switch key {
        case .volumeUp: setVolume(volume + 5)
        case .volumeDown: setVolume(volume - 5)
        case .select:
            let sleep = state.withLock { s in defer { s.sleepMenuOpen = false }; return s.sleepMenuOpen }
            if sleep { setPower(false) }
        case .wakeUp: setPower(true)
        case .suspend: setPower(false)
        default: break
        }
    }

    /// Power changes are announced with DEVICE_INFO_UPDATE (logicalDeviceCount 0 = off).
    func setPower(_ on: Bool) {
        let changed = state.withLock { s -> Bool in
            guard s.poweredOn != on else { return false }
            s.poweredOn = on
            if !on { s.now.playing = false }
            s.report.power.append(on ? "on" : "off")
            return true
        }
        guard changed else { return }
        pushDeviceInfoUpdate()
        pushState()
    }

    func pushDeviceInfoUpdate() {
        var m = deviceInfo()
        m.type = .deviceInfoUpdate
        let update = m
        broadcast { _ in update }
    }

    /// MODIFY_OUTPUT_CONTEXT_REQUEST: add, remove or set the group, then DEVICE_INFO_UPDATE.
    func modifyOutputs(_ r: MRPModifyOutputContextRequestMessage) {
        state.withLock { s in
            let adding = r.clusterAwareAddingDevices.isEmpty ? r.addingDevices : r.clusterAwareAddingDevices
            let removing = r.clusterAwareRemovingDevices.isEmpty ? r.removingDevices : r.clusterAwareRemovingDevices
            let setting = r.clusterAwareSettingDevices.isEmpty ? r.settingDevices : r.clusterAwareSettingDevices
            if !setting.isEmpty { s.grouped = [] }
            for id in setting + adding where id != configuration.deviceID && !s.grouped.contains(id) { s.grouped.append(id) }
            s.grouped.removeAll { removing.contains($0) }
            s.report.outputGroups.append(s.grouped)
        }
        pushDeviceInfoUpdate()
    }

    // MARK: Messages the device sends

    var playerPath: MRPPlayerPath {
        var path = MRPPlayerPath()
        path.client.bundleIdentifier = Self.bundleIdentifier
        path.client.displayName = Self.appName
        path.player.identifier = MRPPlayerState.defaultPlayerID
        path.player.displayName = "Default Player"
        return path
    }

    func deviceInfo() -> MRPProtocolMessage {
        var info = MRPDeviceInfoMessage()
        info.uniqueIdentifier = configuration.deviceID
        info.name = configuration.name
        info.localizedModelName = configuration.model.hasPrefix("AudioAccessory") ? "HomePod" : "Apple TV"
        info.systemBuildVersion = Self.systemBuild
        info.applicationBundleIdentifier = "com.apple.mediaremoted"
        info.applicationBundleVersion = "1"
        info.protocolVersion = 1
        info.lastSupportedMessageType = 108
        info.supportsSystemPairing = true
        info.allowsPairing = true
        info.systemMediaApplication = Self.bundleIdentifier
        info.supportsAcl = true
        info.supportsSharedQueue = true
        info.supportsExtendedMotion = true
        info.sharedQueueVersion = 2
        info.deviceUid = configuration.deviceID
        info.deviceClass = .appleTv
        info.logicalDeviceCount = isOn ? 1 : 0
        info.modelID = configuration.model
        info.isGroupLeader = true
        info.groupedDevices = groupedDevices.map { uid in
            var d = MRPDeviceInfoMessage()
            d.name = "Speaker \(uid)"
            d.uniqueIdentifier = uid
            d.deviceUid = uid
            return d
        }
        var m = MRPMessages.message(.deviceInfo)
        m.MRPdeviceInfoMessage = info
        return m
    }

    func setNowPlayingClient() -> MRPProtocolMessage {
        var m = MRPMessages.message(.setNowPlayingClient)
        m.MRPsetNowPlayingClientMessage.client = playerPath.client
        return m
    }

    func contentItem(_ now: NowPlaying, withArtwork: Bool = false) -> MRPContentItem {
        let track = configuration.tracks[now.trackIndex]
        var item = MRPContentItem()
        item.identifier = "swift-atv-track-\(now.trackIndex)"
        var md = MRPContentItemMetadata()
        md.title = track.title
        md.trackArtistName = track.artist
        md.albumName = track.album
        md.genre = track.genre
        md.duration = track.duration
        md.elapsedTime = now.position
        md.elapsedTimeTimestamp = now.positionDate.timeIntervalSinceReferenceDate
        md.playbackRate = now.playing ? 1 : 0
        md.mediaType = .audio
        md.contentIdentifier = "swift-atv-content-\(now.trackIndex)"
        if !track.artwork.isEmpty {
            md.artworkAvailable = true
            md.artworkMimetype = "image/png"
            md.artworkIdentifier = "swift-atv-artwork-\(now.trackIndex)"
            if let server = artworkServer {
                md.artworkURL = "http://\(configuration.host):\(server.port)/artwork/\(now.trackIndex).png"
            }
        }
        item.metadata = md
        if withArtwork, !track.artwork.isEmpty {
            item.artworkData = Data(track.artwork)
            item.artworkDataWidth = 1
            item.artworkDataHeight = 1
        }
        return item
    }

    func setState(withArtwork: Bool = false) -> MRPProtocolMessage {
        let now = nowPlaying
        var s = MRPSetStateMessage()
        s.playerPath = playerPath
        s.playbackState = now.playing ? .playing : now.stopped ? .stopped : .paused
        s.playbackStateTimestamp = Date().timeIntervalSinceReferenceDate
        var commands: [MRPCommandInfo] = []
        for c: MRPCommand in [.play, .pause, .togglePlayPause, .stop, .nextTrack, .previousTrack, .skipForward, .skipBackward,
                              .seekToPlaybackPosition, .changeShuffleMode, .changeRepeatMode] {
            var info = MRPCommandInfo()
            info.command = c
            info.enabled = true
            if c == .skipForward || c == .skipBackward { info.preferredIntervals = [10] }
            if c == .changeShuffleMode { info.shuffleMode = now.shuffle }
            if c == .changeRepeatMode { info.repeatMode = now.repeatMode }
            commands.append(info)
        }
        s.supportedCommands.supportedCommands = commands
        s.playbackQueue.location = 0
        s.playbackQueue.contentItems = [contentItem(now, withArtwork: withArtwork)]
        var m = MRPMessages.message(.setState)
        m.MRPsetStateMessage = s
        return m
    }

    func volumeAvailability() -> MRPProtocolMessage {
        var m = MRPMessages.message(.volumeControlAvailability)
        m.MRPvolumeControlAvailabilityMessage.volumeControlAvailable = true
        m.MRPvolumeControlAvailabilityMessage.volumeCapabilities = .both
        return m
    }

    func volumeDidChange(_ percent: Double) -> MRPProtocolMessage {
        var m = MRPMessages.message(.volumeDidChange)
        m.MRPvolumeDidChangeMessage.volume = Float(percent / 100)
        m.MRPvolumeDidChangeMessage.outputDeviceUid = configuration.deviceID
        return m
    }

    func pushState() {
        let message = setState()
        broadcast { _ in message }
    }

    /// Send to every connection that subscribed (CLIENT_UPDATES_CONFIG).
    func broadcast(_ make: @escaping @Sendable (VirtualMRP) -> MRPProtocolMessage) {
        for p in pushers.withLock({ Array($0.values) }) {
            let m = make(self)
            // On the caller's own loop push at once, so a command's new state precedes its reply.
            if p.loop.inEventLoop { p.push(m) } else { p.loop.execute { p.push(m) } }
        }
    }
}

/// Shares the HTTP request log with the server thread.
final class RequestLog: Sendable {
    let log = Mutex<[String]>([])
    func append(_ s: String) { log.withLock { $0.append(s) } }
    var all: [String] { log.withLock { $0 } }
}

final class MRPDeviceBox: Sendable {
    let value = Mutex<VirtualMRP?>(nil)
    var device: VirtualMRP? { value.withLock { $0 } }
    func set(_ d: VirtualMRP) { value.withLock { $0 = d } }
}

struct MRPPusher: Sendable {
    let loop: EventLoop
    let push: @Sendable (MRPProtocolMessage) -> Void
    let close: @Sendable () -> Void
}

/// One controller connection (runs on its channel's event loop). The same message handling serves a
/// direct MRP connection (varint-framed, encrypted after pair-verify) and the AirPlay 2 data stream
/// (frames with "sync"/"rply" headers; the HAP encryption sits below this handler).
final class MRPAccessoryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Auth { case none, setup(HAPPairSetupServer), verify(HAPPairVerifyServer) }
    enum Transport { case direct, dataStream }

    let device: VirtualMRP
    var codec = MRPChannel()
    var stream: MRPDataStream?
    var auth: Auth = .none
    var subscribed = false
    var context: ChannelHandlerContext?

    init(device: VirtualMRP, transport: Transport = .direct) {
        self.device = device
        if transport == .dataStream { stream = MRPDataStream(role: .device, seqno: 1) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        device.pushers.withLock {
            $0[ObjectIdentifier(self)] = MRPPusher(loop: context.eventLoop, push: { bound.value.push($0) },
                                                   close: { bound.value.context?.close(promise: nil) })
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        device.pushers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(self)) }
        self.context = nil
    }

    func push(_ m: MRPProtocolMessage) {
        guard subscribed, let context else { return }
        send(context, m)
        context.flush()
    }

    func send(_ context: ChannelHandlerContext, _ m: MRPProtocolMessage) {
        let encoded: [UInt8]?
        if stream != nil { encoded = try? stream!.encode(m) } else { encoded = try? codec.encode(m) }
        guard let bytes = encoded else { return }
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    func reply(_ context: ChannelHandlerContext, to request: MRPProtocolMessage, _ m: MRPProtocolMessage) {
        var r = m
        if request.hasIdentifier { r.identifier = request.identifier }
        send(context, r)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        let bytes = buf.readBytes(length: buf.readableBytes) ?? []
        do {
            if stream != nil {
                let (messages, answers) = try stream!.receive(bytes)
                if !answers.isEmpty { context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: answers)), promise: nil) }
                for m in messages { handle(context, m) }
            } else {
                for m in try codec.receive(bytes) { handle(context, m) }
            }
            context.flush()
        } catch {
            // Garbage, or a frame that fails authentication, ends the connection.
            device.record { $0.authFailures.append("\(error)") }
            context.close(promise: nil)
        }
    }

    func handle(_ context: ChannelHandlerContext, _ m: MRPProtocolMessage) {
        device.record { $0.messages.append("\(m.type)") }
        if device.muted.load(ordering: .relaxed) { return }
        switch m.type {
        case .deviceInfo:
            if m.hasMRPdeviceInfoMessage { device.record { $0.clientNames.append(m.MRPdeviceInfoMessage.name) } }
            reply(context, to: m, device.deviceInfo())
        case .cryptoPairing:
            pairing(context, Array(m.MRPcryptoPairingMessage.pairingData))
        case .setConnectionState:
            break
        case .clientUpdatesConfig:
            // The current state first, then the reply (the controller is ready once it has the reply).
            subscribed = true
            send(context, device.volumeAvailability())
            send(context, device.volumeDidChange(device.volume))
            send(context, device.setNowPlayingClient())
            send(context, device.setState())
            reply(context, to: m, MRPMessages.message(.clientUpdatesConfig))
        case .getKeyboardSession:
            reply(context, to: m, MRPMessages.message(.keyboard))
        case .generic:
            reply(context, to: m, MRPMessages.generic())
        case .sendCommand:
            let error = device.perform(m.MRPsendCommandMessage)
            var r = MRPMessages.message(.sendCommandResult)
            r.MRPsendCommandResultMessage.sendError = error
            r.MRPsendCommandResultMessage.handlerReturnStatus = error == 0 ? 0 : 1
            reply(context, to: m, r)
        case .sendHidEvent:
            device.button(Array(m.MRPsendHideventMessage.hidEventData))
        case .setVolume:
            device.setVolume(Double(m.MRPsetVolumeMessage.volume) * 100)
        case .playbackQueueRequest:
            reply(context, to: m, device.setState(withArtwork: true))
        case .wakeDevice:
            device.setPower(true)
        case .modifyOutputContextRequest:
            device.modifyOutputs(m.MRPmodifyOutputContextRequestMessage)
        default:
            if m.hasIdentifier, !m.identifier.isEmpty { reply(context, to: m, MRPMessages.message(m.type)) }
        }
    }

    func pairing(_ context: ChannelHandlerContext, _ tlvBytes: [UInt8]) {
        let config = device.configuration
        if let tlv = try? TLV8.decode(tlvBytes), tlv.byte(.state) == 1 {
            auth = tlv[.method] != nil
                ? .setup(HAPPairSetupServer(identity: config.identity, pin: config.pin))
                : .verify(HAPPairVerifyServer(identity: config.identity, controllers: device.pairedControllers))
        }
        var out: HAPAccessoryReply
        switch auth {
        case .setup(var s):
            out = s.handle(tlvBytes)
            auth = .setup(s)
        case .verify(var v):
            out = v.handle(tlvBytes)
            auth = .verify(v)
        case .none:
            // Not after an M1: a fresh pair-setup answers with an error item.
            var s = HAPPairSetupServer(identity: config.identity, pin: config.pin)
            out = s.handle(tlvBytes)
        }
        send(context, MRPMessages.cryptoPairing(out.message))
        switch out.event {
        case .paired(let c): device.addController(c)
        case .verified(let c, let shared):
            device.record { $0.verifications.append(String(decoding: c.identifier, as: UTF8.self)) }
            context.flush()
            // In the AirPlay tunnel MRP-level encryption is off (the data stream is encrypted already).
            if stream == nil { codec.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared, role: .accessory)) }
            auth = .none
        case .failed(let e): device.record { $0.authFailures.append(e.description) }
        case .transient, nil: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
