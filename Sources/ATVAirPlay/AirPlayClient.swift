import ATVCore
import ATVHTTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

package struct AirPlayOptions: Sendable {
    /// Between `/playback-info` polls.
    package var pollInterval: Duration
    /// How long the device may take to start playing (report a duration).
    package var startTimeout: Duration
    package var connectTimeout: Duration
    /// Per HTTP request.
    package var requestTimeout: Duration
    /// `POST /play` answered 500 is retried this many times in all, `retryPause` apart (pyatv: 3, 1 s).
    package var playAttempts: Int
    package var retryPause: Duration
    /// How the connection is verified before `/play`.
    package var verification: AirPlayVerification
    /// Set up the AirPlay 2 session (SETUP, event channel, `/feedback`, RECORD) before `/play`.
    /// nil: when the device is verified, decide from its `/info` features (bits 38/48).
    package var airplay2Session: Bool?

    package init(pollInterval: Duration = .seconds(1), startTimeout: Duration = .seconds(20),
                connectTimeout: Duration = .seconds(5), requestTimeout: Duration = .seconds(10),
                playAttempts: Int = 3, retryPause: Duration = .seconds(1),
                verification: AirPlayVerification = .none, airplay2Session: Bool? = nil) {
        self.verification = verification
        self.airplay2Session = airplay2Session
        self.pollInterval = pollInterval
        self.startTimeout = startTimeout
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.playAttempts = playAttempts
        self.retryPause = retryPause
    }
}

/// Where a playback is.
package struct AirPlayProgress: Sendable, Equatable {
    package enum State: Sendable, Equatable { case loading, playing, paused, ended }
    package var state: State
    /// Seconds.
    package var position: Double
    package var duration: Double?
    package var rate: Double
    package init(state: State, position: Double = 0, duration: Double? = nil, rate: Double = 0) {
        self.state = state
        self.position = position
        self.duration = duration
        self.rate = rate
    }
}

/// How a playback went.
package struct AirPlayPlaybackReport: Sendable, Equatable {
    package enum End: Sendable, Equatable {
        /// The device reported the end of the media.
        case finished
        /// We stopped it (`stop()`, Ctrl-C).
        case stopped
        /// The device closed the connection after playback had started (e.g. stopped with its remote).
        case connectionClosed
    }
    /// The URL the device was given (for a local file, our server's URL).
    package var url: String
    package var end: End
    package var lastPosition: Double
    package var duration: Double?
    package var polls: Int
    /// Requests our file server answered (local files only).
    package var fileRequests: [AirPlayFileServer.Request]
}

/// AirPlay 1 video: makes the device play a URL (or a local file we serve), follows it by polling
/// `/playback-info` and controls it with `/rate`, `/scrub` and `/stop`. One playback at a time.
///
/// Verification (`AirPlayOptions.verification`): none (plain HTTP), HAP pair-verify with stored
/// credentials or transient pairing (then HTTP over the HAP-encrypted AirPlay 2 control connection,
/// with the AirPlay 2 session recent tvOS needs: SETUP with NTP timing, event channel, `/feedback`,
/// RECORD), or legacy AirPlay verification (plain HTTP after two `/pair-verify`). A device that
/// demands more (401/403/470) or rejects the credentials is a clear `ATVError.authenticationFailed`
/// telling to pair.
package final class AirPlayClient: Sendable {
    package let host: String
    package let port: Int
    package let options: AirPlayOptions
    private let logger = Logger(label: "atv.airplay")

    private struct State {
        var playing = false
        var connection: (any AirPlayTransport)?
        var stopRequested = false
        var progress: AirPlayProgress?
    }
    private let state = Mutex(State())
    private let progressBroadcaster = Broadcaster<AirPlayProgress>()

    package init(host: String, port: Int = 7000, options: AirPlayOptions = AirPlayOptions()) {
        self.host = host
        self.port = port
        self.options = options
    }

    package var isPlaying: Bool { state.withLock { $0.playing } }
    /// The latest progress of the current playback (nil when none).
    package var progress: AirPlayProgress? { state.withLock { $0.playing ? $0.progress : nil } }
    /// Progress after every poll (and on pause/resume/seek) of any playback from now on.
    package func progressUpdates() -> AsyncStream<AirPlayProgress> { progressBroadcaster.subscribe() }

    /// Asks the device's `/server-info` (a reachability and identity check; plist as a dictionary of strings).
    package func serverInfo() async throws -> [String: String] {
        let conn = try await HTTPClientConnection.connect(host: host, port: port, timeout: options.connectTimeout)
        defer { conn.close() }
        let r = try await conn.send(AirPlayRequests.serverInfo(), timeout: options.requestTimeout)
        try Self.check(r, "GET /server-info", host: host, port: port)
        guard let dict = try BinaryPlist.decode(r.body).dict else {
            throw ATVError.protocolError("/server-info answer from \(host):\(port) is not a property list dictionary")
        }
        return dict.compactMapValues { v in
            if case .int(let i) = v { return String(i) }
            return v.string ?? v.double.map { String($0) } ?? v.bool.map { String($0) }
        }
    }

    /// Plays `target` — an http(s) URL, or a local file served by us for the duration — from
    /// `position` seconds, and returns when playback has ended (or `stop()` was called).
    package func play(_ target: String, position: Double = 0) async throws -> AirPlayPlaybackReport {
        guard position.isFinite, position >= 0 else { throw ATVError.invalidValue("start position \(position) must be ≥ 0 seconds") }
        let isURL = target.lowercased().hasPrefix("http://") || target.lowercased().hasPrefix("https://")
        if !isURL {
            var isDir = false
            guard FileManager.default.fileExists(atPath: target, isDirectory: &isDir), !isDir else {
                throw ATVError.badInput("\(target): no such file, and not an http(s) URL")
            }
        }
        try state.withLock { s in
            if s.playing { throw ATVError.invalidState("a URL is already playing on this device; stop it first") }
            s = State(playing: true, progress: AirPlayProgress(state: .loading, position: position))
        }
        defer { state.withLock { s in s.playing = false; s.connection = nil } }

        let conn = try await openTransport()
        defer { conn.close() }
        if state.withLock({ s in s.connection = conn; return s.stopRequested }) { conn.close() }

        var server: AirPlayFileServer?
        var url = target
        if !isURL {
            guard let local = conn.localAddress else { throw ATVError.connectionFailed("no local address for the connection to \(host)") }
            server = try await AirPlayFileServer.start(path: target, host: local)
            url = server!.url
            logger.info("serving \(target) at \(url)")
        }
        do {
            let report = try await run(conn, url: url, position: position, server: server)
            await server?.stop()
            return report
        } catch {
            await server?.stop()
            emit(AirPlayProgress(state: .ended, position: state.withLock { $0.progress?.position ?? 0 }))
            throw error
        }
    }

    /// Plain HTTP, or the verified (and maybe AirPlay 2 session) connection the options ask for.
    private func openTransport() async throws -> any AirPlayTransport {
        let session = options.airplay2Session
        switch options.verification {
        case .none where session != true:
            return PlainAirPlayTransport(connection: try await HTTPClientConnection.connect(host: host, port: port, timeout: options.connectTimeout))
        case .none, .transient:
            logger.info("AirPlay: transient pairing\(session == true ? " and AirPlay 2 session" : "")")
            return try await AirPlay2Transport.open(host: host, port: port, verification: .transient, session: session ?? true, options: options)
        case .legacy(let credentials):
            logger.info("AirPlay: legacy verification with stored credentials")
            let plain = PlainAirPlayTransport(connection: try await HTTPClientConnection.connect(host: host, port: port, timeout: options.connectTimeout))
            do {
                try await plain.verifyLegacy(credentials, host: host, port: port, timeout: options.requestTimeout)
            } catch {
                plain.close()
                throw error
            }
            return plain
        case .hap:
            logger.info("AirPlay: pair-verify with stored credentials")
            return try await AirPlay2Transport.open(host: host, port: port, verification: options.verification, session: session, options: options)
        }
    }

    private func run(_ conn: any AirPlayTransport, url: String, position: Double,
                     server: AirPlayFileServer?) async throws -> AirPlayPlaybackReport {
        let sessionID = UUID().uuidString
        var attempt = 0
        while true {
            attempt += 1
            let r: HTTPResponseMessage
            do {
                r = try await conn.send(AirPlayRequests.play(url: url, position: position, sessionID: sessionID),
                                        timeout: options.requestTimeout)
            } catch {
                if stopRequested { return report(url, .stopped, polls: 0, server) }
                throw error
            }
            if r.status == 500 && attempt < options.playAttempts {
                logger.info("POST /play answered 500; retry \(attempt) of \(options.playAttempts - 1)")
                try await Task.sleep(for: options.retryPause)
                continue
            }
            if r.status == 500 {
                throw ATVError.httpError(status: 500, "the Apple TV at \(host):\(port) refused POST /play with 500 Internal Server Error \(attempt) times\(Self.bodyText(r))")
            }
            try Self.check(r, "POST /play", host: host, port: port)
            break
        }

        let startPolls = max(1, Int((options.startTimeout / options.pollInterval).rounded(.up)))
        var tracker = PlaybackTracker(startPolls: startPolls)
        while true {
            if stopRequested { return report(url, .stopped, polls: tracker.polls, server, tracker.last) }
            let r: HTTPResponseMessage
            do {
                r = try await conn.send(AirPlayRequests.playbackInfo(), timeout: options.requestTimeout)
            } catch let e as ATVError {
                if stopRequested { return report(url, .stopped, polls: tracker.polls, server, tracker.last) }
                if case .connectionLost = e, tracker.phase == .playing {
                    emit(AirPlayProgress(state: .ended, position: tracker.last?.position ?? 0, duration: tracker.last?.duration))
                    return report(url, .connectionClosed, polls: tracker.polls, server, tracker.last)
                }
                throw e
            }
            if r.status == 500 {
                throw ATVError.httpError(status: 500, "the Apple TV accepted the URL but answered GET /playback-info with 500 Internal Server Error, so playback cannot be followed (tvOS 26 does this)\(Self.bodyText(r))")
            }
            try Self.check(r, "GET /playback-info", host: host, port: port)
            let info = try PlaybackInfo(body: r.body)
            switch tracker.observe(info) {
            case .loading:
                break
            case .progress(let i):
                let rate = i.rate ?? 0
                emit(AirPlayProgress(state: rate == 0 ? .paused : .playing, position: i.position ?? 0,
                                     duration: i.duration, rate: rate))
            case .ended:
                emit(AirPlayProgress(state: .ended, position: tracker.last?.position ?? 0, duration: tracker.last?.duration))
                return report(url, .finished, polls: tracker.polls, server, tracker.last)
            case .failed(let e):
                throw e
            }
            try await sleepUnlessStopped(options.pollInterval)
        }
    }

    private var stopRequested: Bool { state.withLock { $0.stopRequested } }

    private func sleepUnlessStopped(_ d: Duration) async throws {
        let step = Duration.milliseconds(50)
        var left = d
        while left > .zero {
            if stopRequested { return }
            let s = min(step, left)
            try await Task.sleep(for: s)
            left -= s
        }
    }

    private func report(_ url: String, _ end: AirPlayPlaybackReport.End, polls: Int, _ server: AirPlayFileServer?,
                        _ last: PlaybackInfo? = nil) -> AirPlayPlaybackReport {
        if end == .stopped { emit(AirPlayProgress(state: .ended, position: last?.position ?? 0, duration: last?.duration)) }
        return AirPlayPlaybackReport(url: url, end: end, lastPosition: last?.position ?? 0, duration: last?.duration,
                                     polls: polls, fileRequests: server?.requests ?? [])
    }

    private func emit(_ p: AirPlayProgress) {
        state.withLock { $0.progress = p }
        progressBroadcaster.yield(p)
    }

    // MARK: Control

    private func current() throws -> any AirPlayTransport {
        guard let c = state.withLock({ $0.playing ? $0.connection : nil }) else {
            throw ATVError.invalidState("nothing is playing over AirPlay")
        }
        return c
    }

    /// `POST /rate?value=0`.
    package func pause() async throws { try await setRate(0) }
    /// `POST /rate?value=1`.
    package func resume() async throws { try await setRate(1) }

    private func setRate(_ rate: Double) async throws {
        let r = try await current().send(AirPlayRequests.rate(rate), timeout: options.requestTimeout)
        try Self.check(r, "POST /rate", host: host, port: port)
        state.withLock { s in
            s.progress?.rate = rate
            if s.progress?.state == .playing || s.progress?.state == .paused { s.progress?.state = rate == 0 ? .paused : .playing }
        }
        if let p = state.withLock({ $0.progress }) { progressBroadcaster.yield(p) }
    }

    /// `POST /scrub?position=` (seconds).
    package func seek(to position: Double) async throws {
        guard position.isFinite, position >= 0 else { throw ATVError.invalidValue("position \(position) must be ≥ 0 seconds") }
        let r = try await current().send(AirPlayRequests.scrub(position: position), timeout: options.requestTimeout)
        try Self.check(r, "POST /scrub", host: host, port: port)
        state.withLock { $0.progress?.position = position }
        if let p = state.withLock({ $0.progress }) { progressBroadcaster.yield(p) }
    }

    /// Stops the current playback: `POST /stop`, then closes the connection. `play` then returns
    /// with `.stopped`. No-op when nothing plays.
    package func stop() async {
        let conn = state.withLock { s -> (any AirPlayTransport)? in
            guard s.playing else { return nil }
            s.stopRequested = true
            return s.connection
        }
        guard let conn else { return }
        _ = try? await conn.send(AirPlayRequests.stop(), timeout: .seconds(3))
        conn.close()
    }

    // MARK: Errors

    static func check(_ r: HTTPResponseMessage, _ what: String, host: String, port: Int) throws {
        if r.isSuccess { return }
        switch r.status {
        case 401, 403, 470:
            throw ATVError.authenticationFailed("the Apple TV at \(host):\(port) requires pairing for AirPlay (it answered \(what) with \(r.status) \(reason(r))): run `atv pair --protocol airplay`")
        default:
            throw ATVError.httpError(status: r.status, "the Apple TV at \(host):\(port) refused \(what) (\(reason(r)))\(bodyText(r))")
        }
    }

    static func reason(_ r: HTTPResponseMessage) -> String { r.reason.isEmpty ? RTSPResponse.defaultReason(r.status) : r.reason }

    /// A short printable body, when the device said something in text.
    static func bodyText(_ r: HTTPResponseMessage) -> String {
        guard !r.body.isEmpty, r.body.count <= 200, !(r.headers["Content-Type"] ?? "").contains("plist") else { return "" }
        let s = String(decoding: r.body, as: UTF8.self).filter { !$0.isNewline }
        return s.allSatisfy({ $0.isASCII && !($0.asciiValue.map { $0 < 0x20 } ?? true) }) ? ": \(s)" : ""
    }
}
