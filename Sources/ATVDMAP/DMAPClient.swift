import ATVCore
import ATVHTTP
import Logging

/// What the push updater reports.
package enum DMAPPushEvent: Sendable, Equatable {
    /// A new play status (the first one at once, then one per change on the device).
    case update(DMAPPlayStatus)
    /// A request failed (bad answer, refused); polling goes on from revision 0.
    case error(ATVError)
    /// The device closed the connection or went away; the stream ends after this.
    case connectionLost(ATVError)
}

/// A DACP client for Apple TV 1–3 (DMAP over HTTP): login with a pairing GUID or a Home Sharing
/// id, play status (and its long poll), commands, touch arrows, properties and artwork.
/// Requests share one keep-alive connection and each waits at most `timeout`; the long poll has
/// its own connection and no timeout (it ends by cancellation). After a lost connection every
/// call throws `ATVError.connectionLost`.
package actor DMAPClient {
    package nonisolated let host: String
    package nonisolated let port: Int
    package nonisolated let loginID: DMAPLoginID
    package nonisolated let timeout: Duration

    private var connection: HTTPClientConnection?
    private var pollConnection: HTTPClientConnection?
    /// 0 = not logged in.
    package private(set) var sessionID: UInt64 = 0
    /// The last play status received (plain request or push).
    package private(set) var latest: DMAPPlayStatus?
    private var lost: ATVError?
    private var closed = false

    /// The long poll waits for a change without limit; this bounds a single wait only so the
    /// timer value stays representable.
    static let pollTimeout: Duration = .seconds(7 * 24 * 3600)

    package init(host: String, port: Int, credentials: String, timeout: Duration = .seconds(10)) throws {
        self.host = host
        self.port = port
        self.loginID = try DMAPLoginID(credentials: credentials)
        self.timeout = timeout
    }

    // MARK: Transport

    private func checkUsable() throws {
        if closed { throw ATVError.invalidState("the DMAP connection to \(host):\(port) is closed") }
        if let lost { throw lost }
    }

    private func mainConnection() async throws -> HTTPClientConnection {
        try checkUsable()
        if let c = connection, c.isActive { return c }
        let c = try await HTTPClientConnection.connect(host: host, port: port, timeout: timeout)
        if closed {
            c.close()
            throw ATVError.invalidState("the DMAP connection to \(host):\(port) is closed")
        }
        connection = c
        return c
    }

    private func send(_ request: DMAPRequest, via: HTTPClientConnection?, timeout: Duration) async throws -> HTTPResponseMessage {
        let response = try await sendUnlogged(request, via: via, timeout: timeout)
        // "dmap response <uri> status=<n> dmap=<hex>": `atv log` decodes the tags.
        dmapLogger.debug("dmap response \(request.uri) status=\(response.status) dmap=\(response.body.count <= 65536 ? hexString(response.body) : "")")
        return response
    }

    private func sendUnlogged(_ request: DMAPRequest, via: HTTPClientConnection?, timeout: Duration) async throws -> HTTPResponseMessage {
        dmapLogger.debug("dmap request \(request.method) \(request.uri)")
        let message = HTTPRequestMessage(method: request.method, uri: request.uri,
                                         headers: RTSPHeaders(request.headers), body: request.body)
        if let via { return try await via.send(message, timeout: timeout) }
        let reused = connection?.isActive == true
        let conn = try await mainConnection()
        do {
            return try await conn.send(message, timeout: timeout)
        } catch ATVError.connectionLost(let reason) where reused {
            // A kept-alive connection the device had just closed: once more on a new one.
            if connection === conn { connection = nil }
            do { return try await mainConnection().send(message, timeout: timeout) } catch ATVError.connectionFailed {
                throw ATVError.connectionLost(reason)
            }
        }
    }

    /// Logs in and returns the session id. A refusal is retried once; HTTP 500 means the device
    /// does not take logins now.
    @discardableResult
    package func login() async throws -> UInt64 {
        var response = try await send(DMAPRequests.login(loginID), via: nil, timeout: timeout)
        if !response.isSuccess && response.status != 500 {
            response = try await send(DMAPRequests.login(loginID), via: nil, timeout: timeout)
        }
        if response.status == 500 {
            throw ATVError.httpError(status: 500, "\(host):\(port) does not accept a DMAP login now")
        }
        guard response.isSuccess else {
            throw ATVError.authenticationFailed("\(host):\(port) refused the DMAP login (HTTP \(response.status)); pair again with `atv pair --protocol dmap`")
        }
        let elements: [DMAPElement]
        do { elements = try DMAPParser.parse(response.body) } catch {
            throw ATVError.protocolError("bad DMAP login answer from \(host):\(port): \(error)")
        }
        guard let id = elements.first("mlog", "mlid")?.uint, id != 0 else {
            throw ATVError.protocolError("the DMAP login answer from \(host):\(port) has no session id (mlog.mlid)")
        }
        sessionID = id
        return id
    }

    /// Sends a request built for the current session: logs in first if needed; a failure other
    /// than HTTP 500 logs in again and retries once; HTTP 500 is "not supported now".
    private func perform(_ feature: FeatureName, via: HTTPClientConnection? = nil, timeout: Duration? = nil,
                         _ build: (UInt64) -> DMAPRequest) async throws -> HTTPResponseMessage {
        try checkUsable()
        let t = timeout ?? self.timeout
        if sessionID == 0 { try await login() }
        var response = try await send(build(sessionID), via: via, timeout: t)
        if response.isSuccess { return response }
        if response.status == 500 { throw ATVError.notSupported(feature) }
        try await login()
        response = try await send(build(sessionID), via: via, timeout: t)
        if response.isSuccess { return response }
        if response.status == 500 { throw ATVError.notSupported(feature) }
        throw ATVError.authenticationFailed("\(host):\(port) refused \(build(sessionID).uri.split(separator: "?").first ?? "") after logging in again (HTTP \(response.status))")
    }

    // MARK: Play status

    private func parseStatus(_ response: HTTPResponseMessage) throws -> DMAPPlayStatus {
        do {
            let status = try DMAPPlayStatus(bytes: response.body)
            latest = status
            return status
        } catch {
            throw ATVError.protocolError("bad DMAP play status from \(host):\(port): \(error)")
        }
    }

    /// The current play status (answered at once).
    package func playStatus() async throws -> DMAPPlayStatus {
        let r = try await perform(.title) { DMAPRequests.playStatusUpdate(session: $0, revision: 0) }
        return try parseStatus(r)
    }

    package func playing() async throws -> Playing { try await playStatus().playing }

    /// Waits until the device's play status differs from `revision` (0: answers at once). No
    /// timeout: cancel the task to stop waiting (that closes the poll connection).
    package func waitForPlayStatus(after revision: UInt64) async throws -> DMAPPlayStatus {
        try checkUsable()
        let conn: HTTPClientConnection
        if let c = pollConnection, c.isActive { conn = c } else {
            conn = try await HTTPClientConnection.connect(host: host, port: port, timeout: timeout)
            pollConnection = conn
        }
        let response = try await withTaskCancellationHandler {
            try await perform(.pushUpdates, via: conn, timeout: Self.pollTimeout) {
                DMAPRequests.playStatusUpdate(session: $0, revision: revision)
            }
        } onCancel: {
            conn.close()
        }
        return try parseStatus(response)
    }

    /// Push updates by long polling: the current status first, then one per change. Errors are
    /// reported and polling restarts from revision 0 (after `retryDelay`); a lost connection ends
    /// the stream with `.connectionLost`, and later calls on this client throw it. Ending the
    /// iteration (or `close()`) stops the poll.
    package nonisolated func pushUpdates(retryDelay: Duration = .seconds(1)) -> AsyncStream<DMAPPushEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DMAPPushEvent.self)
        let task = Task { await self.poll(continuation, retryDelay: retryDelay) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func poll(_ out: AsyncStream<DMAPPushEvent>.Continuation, retryDelay: Duration) async {
        defer { out.finish() }
        var revision: UInt64 = 0
        while !Task.isCancelled && !closed {
            do {
                let status = try await waitForPlayStatus(after: revision)
                revision = status.revision ?? 0
                out.yield(.update(status))
            } catch {
                if Task.isCancelled || closed { return }
                let e = error as? ATVError ?? .protocolError("\(error)")
                switch e {
                case .connectionLost, .connectionFailed:
                    let reason = ATVError.connectionLost("the DMAP device \(host):\(port) closed the connection")
                    if lost == nil { lost = reason }
                    connection?.close()
                    out.yield(.connectionLost(e))
                    return
                default:
                    revision = 0
                    out.yield(.error(e))
                    try? await Task.sleep(for: retryDelay)
                }
            }
        }
    }

    // MARK: Commands

    package func command(_ command: DMAPCommand) async throws {
        let feature: FeatureName = switch command {
        case .play: .play
        case .pause: .pause
        case .playPause: .playPause
        case .stop: .stop
        case .next: .next
        case .previous: .previous
        case .volumeUp: .volumeUp
        case .volumeDown: .volumeDown
        }
        _ = try await perform(feature) { DMAPRequests.command(command, session: $0) }
    }

    /// `select`, `menu` or `topmenu`.
    package func controlPrompt(_ name: String) async throws {
        let feature: FeatureName = name == "menu" ? .menu : (name == "topmenu" ? .topMenu : .select)
        _ = try await perform(feature) { DMAPRequests.controlPrompt(name, session: $0) }
    }

    /// An arrow key, sent as a seven-event touch swipe.
    package func arrow(_ arrow: DMAPArrow) async throws {
        let feature: FeatureName = switch arrow {
        case .up: .up
        case .down: .down
        case .left: .left
        case .right: .right
        }
        for (i, _) in DMAPRequests.arrowBodies(arrow).enumerated() {
            _ = try await perform(feature) { DMAPRequests.arrow(arrow, session: $0)[i] }
        }
    }

    package func setProperty(_ property: DMAPProperty, _ value: Int, feature: FeatureName) async throws {
        _ = try await perform(feature) { DMAPRequests.setProperty(property, value, session: $0) }
    }

    /// Seconds.
    package func setPosition(_ seconds: Int) async throws {
        try await setProperty(.playingTime, seconds * 1000, feature: .setPosition)
    }

    package func setShuffle(_ state: ShuffleState) async throws {
        try await setProperty(.shuffleState, state == .off ? 0 : 1, feature: .setShuffle)
    }

    package func setRepeat(_ state: RepeatState) async throws {
        try await setProperty(.repeatState, state.rawValue, feature: .setRepeat)
    }

    /// Reads the position, then sets it `seconds` later (or earlier when negative; ≤ 0 interval
    /// means 10 s as pyatv). Nothing is sent when the position is unknown.
    package func skip(by interval: Double, forward: Bool) async throws {
        guard let position = try await playing().position, position != 0 else { return }
        let step = interval > 0 ? Int(interval) : 10
        try await setPosition(forward ? position + step : position - step)
    }

    /// PNG bytes of the artwork of what plays, nil when there is none.
    package func artwork(width: Int?, height: Int?) async throws -> [UInt8]? {
        let r = try await perform(.artwork) { DMAPRequests.artwork(session: $0, width: width, height: height) }
        return r.body.isEmpty ? nil : r.body
    }

    /// `GET /server-info` (no login needed).
    package func serverInfo() async throws -> [DMAPElement] {
        let r = try await send(DMAPRequests.serverInfo(), via: nil, timeout: timeout)
        guard r.isSuccess else { throw ATVError.httpError(status: r.status, "server-info from \(host):\(port)") }
        do { return try DMAPParser.parse(r.body) } catch {
            throw ATVError.protocolError("bad DMAP server-info from \(host):\(port): \(error)")
        }
    }

    /// Closes the connections and stops push updates. Later calls throw `.invalidState`.
    package func close() {
        closed = true
        connection?.close()
        pollConnection?.close()
        connection = nil
        pollConnection = nil
    }
}

let dmapLogger = Logger(label: "atv.dmap")

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    s.reserveCapacity(bytes.count * 2)
    for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0x0F)]) }
    return s
}
