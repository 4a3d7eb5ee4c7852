import ATVCore
import ATVDMAP
import ATVHTTP
import Synchronization

/// A virtual Apple TV 3 speaking DMAP/DACP (the iOS Remote protocol) over HTTP: `/server-info`,
/// `/login` (accepts the configured pairing GUID or Home Sharing id, anything else gets 503),
/// `/ctrl-int/1/playstatusupdate` with revision numbers and a real long poll (a request for the
/// current revision waits until the state changes), playback commands, `controlpromptentry`
/// (buttons and touch swipes), `setproperty` (position, shuffle, repeat) and
/// `nowplayingartwork` (PNG). A script of items plays in order and advances on a timer.
/// Requests with an unknown session id get 403 (a device that logged the client out).
package final class VirtualAppleTV3: Sendable {
    package struct Item: Sendable, Equatable {
        package var title: String
        package var artist: String?
        package var album: String?
        package var genre: String?
        package var durationMs: UInt32
        /// iTunes media kind (2 music, 8 TV show, 32 video…).
        package var mediaKind: UInt32
        package init(title: String, artist: String? = nil, album: String? = nil, genre: String? = nil,
                    durationMs: UInt32, mediaKind: UInt32 = 2) {
            self.title = title
            self.artist = artist
            self.album = album
            self.genre = genre
            self.durationMs = durationMs
            self.mediaKind = mediaKind
        }
    }

    package struct Configuration: Sendable {
        package var host: String
        package var port: Int
        package var name: String
        /// Pairing GUID logins must present (16 hex digits, with or without "0x").
        package var pairingGUID: String
        /// A Home Sharing id accepted as `hsgid`, if any.
        package var homeSharingID: String?
        package var items: [Item]
        /// Move to the next item this often (nil: only commands change the state).
        package var advanceEvery: Duration?
        /// Start playing the first item (else idle until `play`).
        package var startPlaying: Bool
        package var artwork: [UInt8]

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv Apple TV 3",
                    pairingGUID: String = "0x0000000000000001", homeSharingID: String? = nil,
                    items: [Item] = VirtualAppleTV3.defaultItems, advanceEvery: Duration? = nil,
                    startPlaying: Bool = true, artwork: [UInt8] = VirtualAppleTV3.samplePNG) {
            self.host = host
            self.port = port
            self.name = name
            self.pairingGUID = pairingGUID
            self.homeSharingID = homeSharingID
            self.items = items
            self.advanceEvery = advanceEvery
            self.startPlaying = startPlaying
            self.artwork = artwork
        }
    }

    package static let defaultItems: [Item] = [
        Item(title: "Loopback Sunrise", artist: "The Virtual Band", album: "Localhost Sessions", genre: "Electronic",
             durationMs: 215_000, mediaKind: 2),
        Item(title: "Packet Storm", artist: "The Virtual Band", album: "Localhost Sessions", genre: "Electronic",
             durationMs: 187_500, mediaKind: 2),
        Item(title: "Revision Number Nine", artist: "Long Poll Orchestra", album: "Keep-Alive", genre: "Ambient",
             durationMs: 301_000, mediaKind: 2),
    ]

    /// A 1×1 PNG.
    package static let samplePNG: [UInt8] = [
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
        0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0xDA, 0x63, 0x60, 0x60, 0xF8, 0x5F,
        0x0F, 0x00, 0x02, 0x87, 0x01, 0x80, 0xEB, 0x47, 0xBA, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
        0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]

    /// The device's now-playing state.
    package struct NowPlaying: Sendable, Equatable {
        /// Index into the items; nil when idle.
        package var index: Int?
        /// `caps`: 0 idle, 2 stopped, 3 paused, 4 playing.
        package var playState: UInt8
        package var positionMs: UInt32
        /// 0 off, 1 on.
        package var shuffle: UInt8
        /// 0 off, 1 track, 2 all.
        package var repeatMode: UInt8
        /// 0...100.
        package var volume: Int
        package var revision: UInt32
    }

    /// What the device received.
    package struct Report: Sendable, Equatable {
        /// "METHOD /path?query" in arrival order.
        package var requests: [String] = []
        /// Requests missing the Remote headers (Client-DAAP-Version, Viewer-Only-Client).
        package var requestsWithoutRemoteHeaders: [String] = []
        /// Pairing GUIDs / Home Sharing ids that logged in.
        package var logins: [String] = []
        /// Login ids refused with 503.
        package var refusedLogins: [String] = []
        /// ctrl-int commands (play, pause, nextitem, volumeup…).
        package var commands: [String] = []
        /// `cmbe` strings of controlpromptentry bodies (select, menu, touchDown&time=0&point=20,275…).
        package var prompts: [String] = []
        /// "key=value" of setproperty.
        package var properties: [String] = []
        /// playstatusupdate requests that waited for a change.
        package var longPolls = 0
        package var artworkRequests = 0
        package init() {}
    }

    package let configuration: Configuration
    package let port: Int
    let server: HTTPServer
    let core: AppleTV3Core
    private let ticker: Task<Void, Never>?

    private init(configuration: Configuration, server: HTTPServer, core: AppleTV3Core, ticker: Task<Void, Never>?) {
        self.configuration = configuration
        self.server = server
        self.core = core
        self.port = server.port
        self.ticker = ticker
    }

    package static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualAppleTV3 {
        let core = AppleTV3Core(configuration: configuration)
        let server = try await HTTPServer.start(host: configuration.host, port: configuration.port,
                                                handler: { await core.handle($0) })
        var ticker: Task<Void, Never>?
        if let every = configuration.advanceEvery {
            ticker = Task { [weak core] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: every)
                    if Task.isCancelled { return }
                    core?.advance()
                }
            }
        }
        return VirtualAppleTV3(configuration: configuration, server: server, core: core, ticker: ticker)
    }

    /// Closes every connection (a waiting long poll gets no answer) and stops listening.
    package func stop() async {
        ticker?.cancel()
        await server.stop()
        core.shutdown()
    }

    package func report() -> Report { core.report.withLock { $0 } }
    package func nowPlaying() -> NowPlaying { core.snapshot() }
    /// The item playing now, nil when idle.
    package func currentItem() -> Item? { core.snapshot().index.map { configuration.items[$0] } }
    /// Move the script to the next item now (as the timer does).
    package func advance() { core.advance() }
    /// Forget every session: the next request with an old session id gets 403.
    package func expireSessions() { core.state.withLock { $0.sessions.removeAll() } }
    /// The play-status answer the device gives now (for tests and logs).
    package func playStatusElements() -> [DMAPElement] { core.playStatus() }

    /// Polls the report until `predicate` holds, or throws `.timeout`.
    package func waitForReport(_ what: String, timeout: Duration = .seconds(10),
                              _ predicate: (Report) -> Bool) async throws -> Report {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let r = report()
            if predicate(r) { return r }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ATVError.timeout("virtual Apple TV 3: no \(what) within \(timeout)")
    }
}

final class AppleTV3Core: Sendable {
    struct State {
        var now: VirtualAppleTV3.NowPlaying
        /// When the position was last set while playing.
        var playingSince: ContinuousClock.Instant?
        var sessions: Set<UInt64> = []
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var stopped = false
    }
    let configuration: VirtualAppleTV3.Configuration
    let state: Mutex<State>
    let report = Mutex(VirtualAppleTV3.Report())

    init(configuration: VirtualAppleTV3.Configuration) {
        self.configuration = configuration
        let playing = configuration.startPlaying && !configuration.items.isEmpty
        let now = VirtualAppleTV3.NowPlaying(index: playing ? 0 : nil, playState: playing ? 4 : 0, positionMs: 0,
                                             shuffle: 0, repeatMode: 0, volume: 50, revision: 1)
        state = Mutex(State(now: now, playingSince: playing ? .now : nil))
    }

    static func normalizedGUID(_ s: String) -> String {
        var g = s.uppercased()
        if g.hasPrefix("0X") { g.removeFirst(2) }
        return g
    }

    // MARK: State

    static func position(_ s: State) -> UInt32 {
        var ms = UInt64(s.now.positionMs)
        if let since = s.playingSince {
            let d = ContinuousClock.now - since
            ms += UInt64(max(0, d.components.seconds)) * 1000 + UInt64(max(0, d.components.attoseconds) / 1_000_000_000_000_000)
        }
        return UInt32(min(ms, UInt64(UInt32.max - 1)))
    }

    func snapshot() -> VirtualAppleTV3.NowPlaying {
        state.withLock { s in
            var n = s.now
            n.positionMs = clampPosition(Self.position(s), n.index)
            return n
        }
    }

    func clampPosition(_ ms: UInt32, _ index: Int?) -> UInt32 {
        guard let i = index, configuration.items.indices.contains(i) else { return 0 }
        return min(ms, configuration.items[i].durationMs)
    }

    /// Applies a change and wakes every long poll.
    func mutate(_ change: (inout State) -> Void) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            // Freeze the running position before changing anything.
            s.now.positionMs = clampPosition(Self.position(s), s.now.index)
            if s.playingSince != nil { s.playingSince = .now }
            change(&s)
            s.playingSince = s.now.playState == 4 ? (s.playingSince ?? .now) : nil
            s.now.revision &+= 1
            if s.now.revision == 0 { s.now.revision = 1 }
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    func select(_ index: Int, in s: inout State) {
        s.now.index = index
        s.now.positionMs = 0
        if s.now.playState == 0 || s.now.playState == 2 { s.now.playState = 4 }
        s.playingSince = nil
    }

    func advance() {
        guard !configuration.items.isEmpty else { return }
        mutate { s in
            let next = ((s.now.index ?? -1) + 1) % self.configuration.items.count
            self.select(next, in: &s)
        }
    }

    func shutdown() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.stopped = true
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// Waits until the revision differs from `revision` or the device stops.
    func waitForChange(from revision: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.stopped || UInt64(s.now.revision) != revision { return true }
                s.waiters[s.nextWaiter] = c
                s.nextWaiter += 1
                return false
            }
            if now { c.resume() }
        }
    }

    // MARK: Answers

    func playStatus() -> [DMAPElement] {
        let n = snapshot()
        var fields: [DMAPElement] = [
            .uint32("mstt", 200), .uint32("cmsr", n.revision), .uint8("caps", n.playState),
            .uint8("cash", n.shuffle), .uint8("carp", n.repeatMode), .uint8("cafs", 0), .uint8("cavs", 0),
            .bool("cavc", true), .uint32("caas", 2), .uint32("caar", 6),
        ]
        if let i = n.index, configuration.items.indices.contains(i) {
            let item = configuration.items[i]
            fields.append(.raw("canp", [0, 0, 0, 1, 0, 0, 0, 0x29, 0, 0, 0, 0x2A, 0, 0, 0, UInt8(truncatingIfNeeded: i + 1)]))
            fields.append(.string("cann", item.title))
            if let a = item.artist { fields.append(.string("cana", a)) }
            if let a = item.album { fields.append(.string("canl", a)) }
            if let g = item.genre { fields.append(.string("cang", g)) }
            fields.append(.uint64("asai", UInt64(i + 1)))
            fields.append(.uint32("cmmk", item.mediaKind))
            fields.append(.uint32("cant", item.durationMs - min(item.durationMs, n.positionMs)))
            fields.append(.uint32("cast", item.durationMs))
            fields.append(.uint8("casu", 1))
        }
        return [.container("cmst", fields)]
    }

    func serverInfo() -> [DMAPElement] {
        [.container("msrv", [
            .uint32("mstt", 200), .uint32("mpro", 0x0002_000A), .uint32("apro", 0x0003_000B),
            .uint32("aeSV", 0x0003_0009), .string("minm", configuration.name), .bool("mslr", true),
            .uint32("mstm", 1800), .bool("msal", true), .bool("msup", true), .bool("mspi", true),
            .bool("msex", true), .bool("msbr", true), .bool("msqy", true), .bool("msix", true),
            .uint32("msdc", 1),
        ])]
    }

    static func dmap(_ elements: [DMAPElement]) -> HTTPServerResponse {
        HTTPServerResponse(status: 200, headers: ["Content-Type": "application/x-dmap-tagged"],
                           bytes: DMAPSerializer.serialize(elements))
    }

    func handle(_ request: HTTPServer.Request) async -> HTTPServerResponse {
        let m = request.message
        let line = "\(m.method) \(m.uri)"
        report.withLock { r in
            r.requests.append(line)
            if m.headers["Client-DAAP-Version"] == nil || m.headers["Viewer-Only-Client"] == nil {
                r.requestsWithoutRemoteHeaders.append(line)
            }
        }
        let q = m.query
        switch (m.method, m.path) {
        case ("GET", "/server-info"):
            return Self.dmap(serverInfo())
        case ("GET", "/login"):
            return login(q)
        default:
            break
        }
        // Everything else needs a session.
        guard let sid = q["session-id"].flatMap({ UInt64($0) }), state.withLock({ $0.sessions.contains(sid) }) else {
            return HTTPServerResponse(status: 403)
        }
        switch (m.method, m.path) {
        case ("GET", "/ctrl-int/1/playstatusupdate"):
            let revision = q["revision-number"].flatMap { UInt64($0) } ?? 0
            if revision != 0 {
                report.withLock { $0.longPolls += 1 }
                await waitForChange(from: revision)
            }
            return Self.dmap(playStatus())
        case ("GET", "/ctrl-int/1/nowplayingartwork"):
            report.withLock { $0.artworkRequests += 1 }
            guard snapshot().index != nil else { return HTTPServerResponse(status: 204) }
            return HTTPServerResponse(status: 200, headers: ["Content-Type": "image/png"], bytes: configuration.artwork)
        case ("POST", "/ctrl-int/1/controlpromptentry"):
            guard let elements = try? DMAPParser.parse(m.body), let text = elements.first("cmbe")?.string else {
                return HTTPServerResponse(status: 400)
            }
            report.withLock { $0.prompts.append(text) }
            return HTTPServerResponse(status: 204)
        case ("POST", "/ctrl-int/1/setproperty"):
            return setProperty(q)
        case ("POST", let path) where path.hasPrefix("/ctrl-int/1/"):
            return command(String(path.dropFirst("/ctrl-int/1/".count)))
        default:
            return HTTPServerResponse(status: 404)
        }
    }

    func login(_ q: [String: String]) -> HTTPServerResponse {
        let expected = Self.normalizedGUID(configuration.pairingGUID)
        var id: String?
        if let g = q["pairing-guid"], Self.normalizedGUID(g) == expected { id = g }
        if let h = q["hsgid"], let hs = configuration.homeSharingID, h.lowercased() == hs.lowercased() { id = h }
        guard let id else {
            let given = q["pairing-guid"] ?? q["hsgid"] ?? "(none)"
            report.withLock { $0.refusedLogins.append(given) }
            return HTTPServerResponse(status: 503)
        }
        let session = UInt64(UInt32.random(in: 1...UInt32.max))
        state.withLock { _ = $0.sessions.insert(session) }
        report.withLock { $0.logins.append(id) }
        return Self.dmap([.container("mlog", [.uint32("mstt", 200), .uint32("mlid", UInt32(session))])])
    }

    func command(_ name: String) -> HTTPServerResponse {
        let items = configuration.items.count
        switch name {
        case "play":
            mutate { s in
                if s.now.index == nil, items > 0 { self.select(0, in: &s) }
                if s.now.index != nil { s.now.playState = 4 }
            }
        case "pause":
            mutate { s in if s.now.index != nil { s.now.playState = 3 } }
        case "playpause":
            mutate { s in
                if s.now.index == nil, items > 0 { self.select(0, in: &s); return }
                s.now.playState = s.now.playState == 4 ? 3 : 4
            }
        case "stop":
            mutate { s in
                if s.now.index != nil { s.now.playState = 2; s.now.positionMs = 0; s.playingSince = nil }
            }
        case "nextitem", "previtem":
            guard items > 0 else { break }
            mutate { s in
                let cur = s.now.index ?? 0
                let next = name == "nextitem" ? (cur + 1) % items : (cur + items - 1) % items
                self.select(next, in: &s)
            }
        case "volumeup":
            mutate { s in s.now.volume = min(100, s.now.volume + 5) }
        case "volumedown":
            mutate { s in s.now.volume = max(0, s.now.volume - 5) }
        default:
            return HTTPServerResponse(status: 500)
        }
        report.withLock { $0.commands.append(name) }
        return HTTPServerResponse(status: 204)
    }

    func setProperty(_ q: [String: String]) -> HTTPServerResponse {
        var done: [String] = []
        for (key, value) in q.sorted(by: { $0.key < $1.key }) where key.hasPrefix("dacp.") {
            guard let v = Int(value), v >= 0 else { return HTTPServerResponse(status: 400) }
            switch key {
            case "dacp.playingtime":
                mutate { s in
                    s.now.positionMs = self.clampPosition(UInt32(clamping: v), s.now.index)
                    if s.playingSince != nil { s.playingSince = .now }
                }
            case "dacp.shufflestate":
                mutate { s in s.now.shuffle = v == 0 ? 0 : 1 }
            case "dacp.repeatstate":
                guard v <= 2 else { return HTTPServerResponse(status: 400) }
                mutate { s in s.now.repeatMode = UInt8(v) }
            default:
                return HTTPServerResponse(status: 500)
            }
            done.append("\(key)=\(value)")
        }
        report.withLock { $0.properties += done }
        return HTTPServerResponse(status: 204)
    }
}
