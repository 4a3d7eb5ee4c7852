import ATVAirPlay
import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import NIOCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A virtual Apple TV, AirPlay video side: `GET /server-info` and `/info`, `POST /play` (it fetches
/// the URL with a Range request to prove it is reachable, and probes its duration), a
/// `/playback-info` timeline that advances in real time, `/scrub`, `/rate`, `/stop`. By default the
/// pairing endpoints answer as a device that needs no pairing; with `requirePairing` or `airplay2`
/// the port speaks HAP PIN / transient pair-setup, HAP pair-verify (then HAP encryption), legacy
/// pairing and verification, and the AirPlay 2 session (SETUP, event channel, RECORD, `/feedback`)
/// (VirtualAppleTVAirPlay2.swift). Closing the connection that started a playback stops it, as on
/// a real AirPlay 1 receiver. Loopback by default.
package final class VirtualAppleTV: Sendable {
    /// Test knobs: make the device refuse.
    package struct Faults: Sendable, Equatable {
        /// Answer `POST /play` with this status (e.g. 403, 470, 500).
        package var playStatus: Int?
        /// Answer `GET /playback-info` with this status (e.g. 500, as tvOS 26 does).
        package var playbackInfoStatus: Int?
        package init(playStatus: Int? = nil, playbackInfoStatus: Int? = nil) {
            self.playStatus = playStatus
            self.playbackInfoStatus = playbackInfoStatus
        }
    }

    package struct Configuration: Sendable {
        package var host: String
        /// 0 picks a free port (see `port`).
        package var port: Int
        package var name: String
        package var deviceID: String
        package var model: String
        /// The `features` TXT/plist value (bit 0: AirPlay video v1).
        package var features: String
        /// Duration when the media cannot be probed.
        package var defaultDuration: Double
        /// Probe the fetched media with FFmpeg for its duration.
        package var probeDuration: Bool
        /// For the reachability fetch and the probe.
        package var fetchTimeout: Duration
        package var faults: Faults
        /// Refuse `/play` and the session (470) on a connection that has not pair-verified (or
        /// transiently paired). Also switches to the HTTP/RTSP front that can encrypt.
        package var requirePairing: Bool
        /// Advertise AirPlay 2 (features bits 38 and 48, TXT `pk`) so senders take the session path:
        /// pair-verify, session SETUP, event channel, RECORD, `/feedback`, then `/play` encrypted.
        package var airplay2: Bool
        /// PIN of HAP pair-setup (what a real device shows on screen).
        package var pin: String
        /// The accessory's long-term identity (pairing identifier, Ed25519 key).
        package var identity: HAPIdentity
        /// The tvOS version in the TXT (`osvers`), nil for none. With 15 or later (and HAP
        /// credentials) senders reach MRP through the AirPlay 2 tunnel (stream SETUP type 130).
        package var osVersion: String?

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv Apple TV",
                    deviceID: String = "AA:BB:CC:DD:EE:01", model: String = "AppleTV3,2",
                    features: String = "0x5A7FFFF7,0xE", defaultDuration: Double = 60, probeDuration: Bool = true,
                    fetchTimeout: Duration = .seconds(5), faults: Faults = Faults(),
                    requirePairing: Bool = false, airplay2: Bool = false, pin: String = "1111",
                    identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString), osVersion: String? = nil) {
            self.host = host
            self.port = port
            self.name = name
            self.deviceID = deviceID
            self.model = model
            self.features = features
            self.defaultDuration = defaultDuration
            self.probeDuration = probeDuration
            self.fetchTimeout = fetchTimeout
            self.faults = faults
            self.requirePairing = requirePairing
            self.airplay2 = airplay2
            self.pin = pin
            self.identity = identity
            self.osVersion = osVersion
        }

        /// The features actually advertised: with `airplay2`, bits 38 and 48 are added.
        package var advertisedFeatures: String {
            guard airplay2 else { return features }
            let raw = AirPlayFeatureFlags(parsing: features)?.rawValue ?? 1
            let v = raw | (1 << 38) | (1 << 48)
            return "0x" + String(UInt32(truncatingIfNeeded: v), radix: 16, uppercase: true)
                + ",0x" + String(UInt32(truncatingIfNeeded: v >> 32), radix: 16, uppercase: true)
        }

        /// The HTTP/RTSP front with pairing and encryption serves the port (else plain HTTP).
        package var usesPairingFront: Bool { requirePairing || airplay2 }

        /// TXT of `_airplay._tcp` (also for pyatv's `--service-properties`).
        package var txt: [String: String] {
            var t = ["deviceid": deviceID.uppercased(), "features": advertisedFeatures, "model": model, "srcvers": "220.68",
                     "flags": "0x4", "vv": "2"]
            if let osVersion { t["osvers"] = osVersion }
            if usesPairingFront {
                t["pk"] = identity.publicKey.map { String(cFormat: "%02x", $0) }.joined()
                t["pi"] = String(decoding: identity.identifier, as: UTF8.self).lowercased()
            }
            return t
        }

        /// `--service-properties` for `atvremote --manual` (first character is the separator).
        package var servicePropertiesArgument: String {
            ";" + txt.keys.sorted().map { "\($0)=\(txt[$0] ?? "")" }.joined(separator: ";")
        }
    }

    /// What the device saw and did.
    package struct Report: Sendable, Equatable {
        package struct Fetch: Sendable, Equatable {
            package var url: String
            /// The Range header we sent.
            package var range: String
            /// The HTTP status, nil when no answer.
            package var status: Int?
            package var bytes: Int
            package var contentRange: String?
            package var error: String?
            package var ok: Bool { error == nil }
        }
        /// "METHOD /path?query" in arrival order.
        package var requests: [String] = []
        package var userAgents: [String] = []
        package var plays: [AirPlayPlayRequest] = []
        package var fetches: [Fetch] = []
        /// The duration each successful play got (probed or default).
        package var durations: [Double] = []
        package var playbackInfoPolls = 0
        package var scrubs: [Double] = []
        package var rates: [Double] = []
        package var stops = 0
        /// Playbacks that ran to the end of their media.
        package var finished = 0
        /// Playbacks stopped because their connection closed.
        package var closedByConnection = 0
        /// Pairing front: "PIN", "transient", "verified" in order; failures as text.
        package var pairings: [String] = []
        package var pairingFailures: [String] = []
        /// Requests refused with 470 because the connection was not verified.
        package var refusedUnverified = 0
        /// Video/info requests that arrived encrypted.
        package var encryptedRequests = 0
        package var sessionSetups = 0
        package var timingProtocol: String?
        /// Answers to the NTP timing request sent to the sender's timing port after session SETUP.
        package var timingReplies = 0
        package var eventConnections = 0
        package var records = 0
        package var feedbacks = 0
        /// Remote-control streams (type 130, the MRP tunnel) set up, and data channels the sender opened.
        package var remoteControlStreams = 0
        package var dataChannelConnections = 0
    }

    package enum Event: Sendable, Equatable {
        case request(String)
        case play(AirPlayPlayRequest)
        case fetched(Report.Fetch)
        case started(url: String, duration: Double, position: Double)
        case ended(url: String, reason: String)
        /// Pairing finished: "PIN", "transient" or "verified".
        case paired(String)
        case pairingFailed(String)
    }

    package let configuration: Configuration
    package let port: Int
    let server: HTTPServer?
    let front: Channel?
    let pairing: AppleTVPairingShared
    let core: AppleTVCore

    private init(configuration: Configuration, server: HTTPServer?, front: Channel?, pairing: AppleTVPairingShared, core: AppleTVCore) {
        self.configuration = configuration
        self.server = server
        self.front = front
        self.pairing = pairing
        self.core = core
        self.port = server?.port ?? front?.localAddress?.port ?? configuration.port
    }

    /// Starts the device. `mrp` (usually the same device that serves the direct MRP port) answers
    /// the AirPlay 2 remote-control tunnel (stream SETUP type 130); without it that SETUP gets 501.
    package static func start(_ configuration: Configuration = Configuration(), mrp: VirtualMRP? = nil) async throws -> VirtualAppleTV {
        let core = AppleTVCore(configuration: configuration, mrp: mrp)
        let pairing = AppleTVPairingShared(identity: configuration.identity, pin: configuration.pin)
        if configuration.usesPairingFront {
            let front = try await startAirPlay2Server(core: core, shared: pairing)
            return VirtualAppleTV(configuration: configuration, server: nil, front: front, pairing: pairing, core: core)
        }
        let server = try await HTTPServer.start(host: configuration.host, port: configuration.port,
                                                onClose: { core.connectionClosed($0) },
                                                handler: { await core.handle($0) })
        return VirtualAppleTV(configuration: configuration, server: server, front: nil, pairing: pairing, core: core)
    }

    package func stop() async {
        await server?.stop()
        try? await front?.close()
        pairing.closeAll()
        core.events.finish()
    }

    /// Controllers paired with the PIN so far.
    package var pairedControllers: [HAPPairedController] { pairing.controllers.withLock { $0 } }

    package func report() -> Report { core.report.withLock { $0 } }
    package func events() -> AsyncStream<Event> { core.events.subscribe() }

    /// Change the fault knobs while running.
    package func setFaults(_ faults: Faults) { core.state.withLock { $0.faults = faults } }

    /// What `/playback-info` would answer now.
    package func playbackInfo() -> PlaybackInfo { core.currentInfo().info }

    /// Waits for an event matching `predicate` (checked against events from now on).
    package func waitFor(_ what: String, timeout: Duration, _ predicate: @escaping @Sendable (Event) -> Bool) async throws -> Event {
        let stream = events()
        return try await withThrowingTaskGroup(of: Event?.self) { group in
            group.addTask {
                for await e in stream where predicate(e) { return e }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let e = first { return e }
            throw ATVError.timeout("virtual Apple TV: no \(what) within \(timeout)")
        }
    }
}

/// The shared state behind the HTTP handlers.
final class AppleTVCore: Sendable {
    struct State {
        var faults: VirtualAppleTV.Faults
        var timeline: PlaybackTimeline?
        /// The connection whose /play started the timeline.
        var owner: Int?
        var failure: PlaybackInfo.Failure?
        /// Bumped by every /play and /stop, so a load that finishes late cannot start stale media.
        var generation = 0
    }
    let configuration: VirtualAppleTV.Configuration
    /// The MRP device behind the AirPlay 2 remote-control tunnel, if any.
    let mrp: VirtualMRP?
    let report = Mutex(VirtualAppleTV.Report())
    let state: Mutex<State>
    let events = Broadcaster<VirtualAppleTV.Event>(bufferingPolicy: .unbounded)
    private let epoch = ContinuousClock.now

    init(configuration: VirtualAppleTV.Configuration, mrp: VirtualMRP? = nil) {
        self.configuration = configuration
        self.mrp = mrp
        self.state = Mutex(State(faults: configuration.faults))
    }

    var now: Double {
        let d = ContinuousClock.now - epoch
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func log(_ line: String) {
        report.withLock { $0.requests.append(line) }
        events.yield(.request(line))
    }

    func paired(_ how: String) {
        report.withLock { $0.pairings.append(how) }
        events.yield(.paired(how))
    }

    func pairingFailed(_ what: String) {
        report.withLock { $0.pairingFailures.append(what) }
        events.yield(.pairingFailed(what))
    }

    func handle(_ request: HTTPServer.Request) async -> HTTPServerResponse {
        await handle(request.message, connection: request.connection)
    }

    func handle(_ m: HTTPRequestMessage, connection: Int, prefix: String = "") async -> HTTPServerResponse {
        let line = "\(prefix)\(m.method) \(m.uri)"
        report.withLock { r in
            r.requests.append(line)
            if let ua = m.headers["User-Agent"] { r.userAgents.append(ua) }
        }
        events.yield(.request(line))
        let faults = state.withLock { $0.faults }
        switch (m.method, m.path) {
        case ("GET", "/server-info"):
            return plist(serverInfo())
        case ("GET", "/info"):
            return plist(info())
        case ("POST", "/play"):
            if let s = faults.playStatus { return HTTPServerResponse(status: s) }
            return await play(m, connection: connection)
        case ("GET", "/playback-info"):
            report.withLock { $0.playbackInfoPolls += 1 }
            if let s = faults.playbackInfoStatus { return HTTPServerResponse(status: s) }
            return HTTPServerResponse(status: 200, headers: ["Content-Type": AirPlayRequests.plistType],
                                      bytes: currentInfo().info.encoded())
        case ("POST", "/scrub"), ("GET", "/scrub"):
            if m.method == "GET" {
                let i = currentInfo().info
                let text = "duration: \(String(cFormat: "%.6f", i.duration ?? 0))\nposition: \(String(cFormat: "%.6f", i.position ?? 0))\n"
                return HTTPServerResponse(status: 200, headers: ["Content-Type": "text/parameters"], bytes: Array(text.utf8))
            }
            guard let p = m.query["position"].flatMap(Double.init), p.isFinite else { return HTTPServerResponse(status: 400) }
            report.withLock { $0.scrubs.append(p) }
            let t = now
            return state.withLock { s in
                guard s.timeline != nil else { return HTTPServerResponse(status: 200) }
                s.timeline?.seek(to: p, at: t)
                return HTTPServerResponse(status: 200)
            }
        case ("POST", "/rate"):
            guard let r = m.query["value"].flatMap(Double.init), r.isFinite, r >= 0 else { return HTTPServerResponse(status: 400) }
            report.withLock { $0.rates.append(r) }
            let t = now
            state.withLock { $0.timeline?.setRate(r, at: t) }
            return HTTPServerResponse(status: 200)
        case ("POST", "/stop"):
            report.withLock { $0.stops += 1 }
            state.withLock { $0.generation += 1 }   // a load still in progress must not start
            end(reason: "stopped", owner: nil)
            return HTTPServerResponse(status: 200)
        case ("POST", "/pair-pin-start"), ("POST", "/pair-setup"), ("POST", "/pair-setup-pin"),
             ("POST", "/pair-verify"), ("POST", "/fp-setup"), ("POST", "/auth-setup"):
            // A device that needs no pairing: nothing to set up, nothing to verify.
            return HTTPServerResponse(status: 200)
        case ("OPTIONS", _):
            return HTTPServerResponse(status: 200, headers: ["Public": "GET, POST, OPTIONS"])
        default:
            return HTTPServerResponse(status: 404)
        }
    }

    private func plist(_ d: [String: PlistValue]) -> HTTPServerResponse {
        HTTPServerResponse(status: 200, headers: ["Content-Type": AirPlayRequests.plistType], bytes: BinaryPlist.encode(.dict(d)))
    }

    private var featureValue: Int {
        Int(truncatingIfNeeded: AirPlayFeatureFlags(parsing: configuration.advertisedFeatures)?.rawValue ?? 1)
    }

    private func serverInfo() -> [String: PlistValue] {
        ["deviceid": .string(configuration.deviceID), "features": .int(Int64(featureValue)), "model": .string(configuration.model),
         "protovers": .string("1.0"), "srcvers": .string("220.68"), "macAddress": .string(configuration.deviceID),
         "osBuildVersion": .string("12H847")]
    }

    private func info() -> [String: PlistValue] {
        var d: [String: PlistValue] = [
            "deviceID": .string(configuration.deviceID), "features": .int(Int64(featureValue)), "model": .string(configuration.model),
            "name": .string(configuration.name), "sourceVersion": .string("220.68"), "statusFlags": .int(4),
            "macAddress": .string(configuration.deviceID), "protocolVersion": .string("1.0"),
        ]
        if configuration.usesPairingFront {
            d["pk"] = .data(configuration.identity.publicKey)
            d["pi"] = .string(String(decoding: configuration.identity.identifier, as: UTF8.self).lowercased())
        }
        return d
    }

    /// The playback-info to answer now, ending the timeline when it ran out.
    func currentInfo() -> (info: PlaybackInfo, ended: String?) {
        let t = now
        let (info, endedURL): (PlaybackInfo, String?) = state.withLock { s in
            if let f = s.failure { return (PlaybackInfo(readyToPlay: false, error: f), nil) }
            guard let tl = s.timeline else { return (PlaybackInfo(readyToPlay: false), nil) }
            if tl.isEnded(at: t) {
                s.timeline = nil
                s.owner = nil
                return (PlaybackInfo(readyToPlay: false), tl.url)
            }
            return (tl.info(at: t), nil)
        }
        if let u = endedURL {
            report.withLock { $0.finished += 1 }
            events.yield(.ended(url: u, reason: "finished"))
        }
        return (info, endedURL)
    }

    private func end(reason: String, owner: Int?) {
        let url: String? = state.withLock { s in
            s.failure = nil
            guard let tl = s.timeline else { return nil }
            if let owner, s.owner != owner { return nil }
            s.timeline = nil
            s.owner = nil
            return tl.url
        }
        if let url { events.yield(.ended(url: url, reason: reason)) }
    }

    func connectionClosed(_ id: Int) {
        let owned = state.withLock { $0.owner == id && $0.timeline != nil }
        guard owned else { return }
        report.withLock { $0.closedByConnection += 1 }
        end(reason: "connection closed", owner: id)
    }

    private func play(_ m: HTTPRequestMessage, connection: Int) async -> HTTPServerResponse {
        let request: AirPlayPlayRequest
        do { request = try AirPlayPlayRequest(body: m.body) } catch { return HTTPServerResponse(status: 400) }
        report.withLock { $0.plays.append(request) }
        events.yield(.play(request))
        // A new play replaces whatever played. Like a real receiver, /play is accepted at once and
        // the media loads in the background: /playback-info has no duration until it is ready,
        // and a failed load shows there as an error.
        let generation = state.withLock { s -> Int in
            s.timeline = nil; s.owner = nil; s.failure = nil
            s.generation += 1
            return s.generation
        }
        Task { await load(request, connection: connection, generation: generation) }
        return HTTPServerResponse(status: 200)
    }

    private func load(_ request: AirPlayPlayRequest, connection: Int, generation: Int) async {
        let fetch = await fetch(request.url)
        report.withLock { $0.fetches.append(fetch) }
        events.yield(.fetched(fetch))
        guard fetch.ok else {
            // NSURLError codes: -1004 cannot connect, -1100 file does not exist (404), -1011 bad server response.
            let code = fetch.status == nil ? -1004 : fetch.status == 404 ? -1100 : -1011
            state.withLock { s in
                guard s.generation == generation else { return }
                s.failure = PlaybackInfo.Failure(code: code, domain: "NSURLErrorDomain",
                                                 message: "cannot fetch \(request.url): \(fetch.error ?? "")")
            }
            return
        }
        var duration = configuration.defaultDuration
        if configuration.probeDuration, let d = await probe(request.url), d > 0 { duration = d }
        report.withLock { $0.durations.append(duration) }
        let start = request.startSeconds
        let t = now
        let started = state.withLock { s -> Bool in
            guard s.generation == generation else { return false }
            s.timeline = PlaybackTimeline(url: request.url, duration: duration, start: start, now: t)
            s.owner = connection
            return true
        }
        if started { events.yield(.started(url: request.url, duration: duration, position: min(start, duration))) }
    }

    /// GET with `Range: bytes=0-65535`, as a player's first request would be.
    private func fetch(_ urlString: String) async -> VirtualAppleTV.Report.Fetch {
        let range = "bytes=0-65535"
        var f = VirtualAppleTV.Report.Fetch(url: urlString, range: range, status: nil, bytes: 0)
        guard let url = URL(string: urlString), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            f.error = "not a URL"
            return f
        }
        guard scheme == "http" else {
            f.error = "\(scheme) is not supported by the virtual Apple TV (http only)"
            return f
        }
        let port = url.port ?? 80
        var path = url.path.isEmpty ? "/" : url.path
        if url.path.isEmpty == false, let encoded = URLComponents(string: urlString)?.percentEncodedPath, !encoded.isEmpty {
            path = encoded
        }
        if let q = url.query { path += "?" + q }
        do {
            let conn = try await HTTPClientConnection.connect(host: host, port: port, timeout: configuration.fetchTimeout)
            defer { conn.close() }
            let r = try await conn.send(HTTPRequestMessage(method: "GET", uri: path,
                                                           headers: ["Range": range, "User-Agent": "AppleCoreMedia/1.0.0"]),
                                        timeout: configuration.fetchTimeout, maxBody: 65536)
            f.status = r.status
            f.bytes = r.body.count
            f.contentRange = r.headers["Content-Range"]
            if !(r.status == 200 || r.status == 206) { f.error = "HTTP \(r.status)" }
            else if r.body.isEmpty { f.error = "empty body" }
        } catch {
            f.error = "\(error)"
        }
        return f
    }

    private func probe(_ url: String) async -> Double? {
        let timeout = configuration.fetchTimeout
        return await withTaskGroup(of: Double?.self) { group in
            group.addTask { try? await probeAudio(.url(url)).duration }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
