// The control connection of an AirPlay 2 sender: TCP to the receiver, `GET /info`, transient
// pair-setup or pair-verify, then RTSP over HAP framing; the session SETUP with its event channel; `/feedback`; TEARDOWN.
// Reusable by anything that needs an AirPlay 2 session (audio, play-url, the MRP tunnel): nothing
// here knows about audio streams.
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore
import NIOPosix
import Synchronization

public struct AirPlay2ConnectionOptions: Sendable {
    /// HomePod software 27 answers `GET /info` with 403 unless this looks like an Apple sender.
    public var userAgent: String
    public var connectTimeout: Duration
    /// Each request must be answered within this time.
    public var requestTimeout: Duration
    /// Stored HAP credentials: pair-verify (`X-Apple-HKP: 3`). nil: transient pair-setup (HKP 4).
    public var credentials: HAPCredentials?
    public var transientPIN: String
    /// `X-Apple-Client-Name` on pairing requests (tvOS 27 wants it); nil leaves it out.
    public var clientName: String?
    public var requestInfo: Bool
    public var identity: AirPlay2SenderIdentity
    /// Connecting to the event port is retried this many times, 1 s apart, while refused.
    public var eventConnectAttempts: Int
    /// The local address the control connection is made from (nil: the system's choice). Tests
    /// on one host give each sender an address of its own (the PTP master binds the connection's
    /// local address, and the receiver follows that address).
    package var localAddress: String?

    public init(userAgent: String = "AirPlay/550.10", connectTimeout: Duration = .seconds(5),
                requestTimeout: Duration = .seconds(6), credentials: HAPCredentials? = nil, transientPIN: String = "3939",
                clientName: String? = "swift-atv", requestInfo: Bool = true,
                identity: AirPlay2SenderIdentity = AirPlay2SenderIdentity(), eventConnectAttempts: Int = 5) {
        self.userAgent = userAgent
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.credentials = credentials
        self.transientPIN = transientPIN
        self.clientName = clientName
        self.requestInfo = requestInfo
        self.identity = identity
        self.eventConnectAttempts = max(1, eventConnectAttempts)
    }
}

/// How the connection was authenticated.
public enum AirPlay2Pairing: String, Sendable, Equatable {
    /// Transient pair-setup (M1–M4, PIN 3939): keys from the SRP session key.
    case transient
    /// Pair-verify with stored HAP credentials.
    case verified
}

/// An encrypted AirPlay 2 control connection. Requests are matched to answers by `CSeq` (or, for
/// answers without one, in order); each has a timeout. A lost control connection or event channel is
/// reported once through `failure` / `onFailure`.
public final class AirPlay2Connection: Sendable {
    public let host: String
    public let port: Int
    /// Our address as the receiver sees it, and the receiver's.
    public let localIP: String
    public let remoteIP: String
    /// The `GET /info` answer (nil when not asked or not answered with a plist).
    public let info: PlistValue?
    public let pairing: AirPlay2Pairing
    /// Input of every channel key (HKDF-SHA512, a salt and info per channel): the SRP session key K
    /// (transient) or the X25519 secret.
    public let sharedSecret: [UInt8]
    /// The RTSP session id: last component of `uri`, and the RTP SSRC of audio streams.
    public let sessionID: UInt32
    public let options: AirPlay2ConnectionOptions

    let core: AirPlay2ConnectionCore
    private let channel: Channel
    private let logger: Logger

    public var uri: String { "rtsp://\(localIP)/\(sessionID)" }

    private init(host: String, port: Int, channel: Channel, core: AirPlay2ConnectionCore, info: PlistValue?,
                 pairing: AirPlay2Pairing, sharedSecret: [UInt8], options: AirPlay2ConnectionOptions, logger: Logger) {
        self.host = host
        self.port = port
        self.channel = channel
        self.core = core
        self.info = info
        self.pairing = pairing
        self.sharedSecret = sharedSecret
        self.options = options
        self.logger = logger
        localIP = channel.localAddress?.ipAddress ?? "127.0.0.1"
        remoteIP = channel.remoteAddress?.ipAddress ?? host
        sessionID = core.sessionID
    }

    /// Connects, asks `GET /info`, pairs (transient, or pair-verify with `options.credentials`) and
    /// switches the connection to Control-key encryption: the driver of
    /// `AirPlay2ConnectStateMachine`. Every failure is an `ATVError`.
    public static func connect(host: String, port: Int, options: AirPlay2ConnectionOptions = AirPlay2ConnectionOptions(),
                               logger: Logger = Logger(label: "atv.airplay2")) async throws -> AirPlay2Connection {
        var machine = AirPlay2ConnectStateMachine(host: host, port: port, options: options)
        let core = AirPlay2ConnectionCore(userAgent: options.userAgent, logger: logger, endpoint: "\(host):\(port)")
        var channel: Channel?
        var actions = machine.start()
        do {
            while !actions.isEmpty {
                var next: [AirPlay2ConnectAction] = []
                for action in actions {
                    switch action {
                    case .connect:
                        do {
                            let ch = try await openTCP(host: host, port: port, timeout: options.connectTimeout,
                                                       from: options.localAddress) { channel in
                                try channel.pipeline.syncOperations.addHandler(HAPEncryptionHandler())
                                try channel.pipeline.syncOperations.addHandler(AirPlay2ResponseHandler(core: core))
                            }
                            core.attach(ch)
                            channel = ch
                            next += machine.connected()
                        } catch let error as ATVError {
                            next += machine.connectFailed(error)
                        }
                    case .send(let request):
                        do {
                            let r = try await core.request(request.method, uri: request.uri, version: request.version,
                                                           headers: request.headers, body: request.body,
                                                           timeout: options.requestTimeout)
                            next += machine.response(r)
                        } catch let error as ATVError {
                            next += machine.requestFailed(error)
                        }
                    case .enableEncryption(let keys):
                        guard let channel else { throw ATVError.invalidState("encryption before the connection") }
                        try await channel.enableHAPEncryption(keys).get()
                        next += machine.encryptionEnabled()
                    case .debug(let line):
                        logger.debug("\(line)")
                    case .done(let result):
                        guard let channel else { throw ATVError.invalidState("connected without a connection") }
                        return AirPlay2Connection(host: host, port: port, channel: channel, core: core, info: result.info,
                                                  pairing: result.pairing, sharedSecret: result.sharedSecret,
                                                  options: options, logger: logger)
                    case .failed(let error):
                        throw error
                    }
                }
                actions = next
            }
            throw ATVError.invalidState("the AirPlay 2 connect sequence stopped")
        } catch {
            if let channel {
                core.markClosing()
                try? await channel.close()
            }
            throw Self.atvError(error, host: host, port: port)
        }
    }

    /// Only `GET /info` on a connection of its own (plaintext, before any pairing), closed
    /// afterwards: what a sender asks a receiver it knows nothing about. Returns the status and
    /// the plist (nil when the body is not one); `status` nil when no answer came within `timeout`
    /// or the receiver closed the connection instead. Throws when the TCP connection cannot be
    /// made (refused, unreachable, connect timeout) or the answer is not HTTP/RTSP at all.
    public static func fetchInfo(host: String, port: Int, userAgent: String = "AirPlay/550.10", timeout: Duration,
                                 logger: Logger = Logger(label: "atv.airplay2")) async throws -> (status: Int?, info: PlistValue?) {
        let core = AirPlay2ConnectionCore(userAgent: userAgent, logger: logger)
        let channel = try await openTCP(host: host, port: port, timeout: timeout) { channel in
            try channel.pipeline.syncOperations.addHandler(HAPEncryptionHandler())
            try channel.pipeline.syncOperations.addHandler(AirPlay2ResponseHandler(core: core))
        }
        core.attach(channel)
        defer {
            core.markClosing()
            channel.close(promise: nil)
        }
        do {
            let r = try await core.request("GET", uri: "/info", timeout: timeout)
            logger.debug("GET /info → \(r.status) (\(r.body.count) bytes)")
            return (r.status, AirPlay2ConnectStateMachine.infoPlist(r))
        } catch is CancellationError {
            throw CancellationError()
        } catch ATVError.protocolError {
            throw ATVError.protocolError("the receiver at \(host):\(port) answered GET /info with something that is not HTTP or RTSP")
        } catch {
            logger.debug("GET /info not answered: \(error)")
            return (nil, nil)
        }
    }

    // MARK: Requests

    /// Sends one request (CSeq, User-Agent, DACP-ID, Active-Remote, Client-Instance are added) and
    /// waits for its answer. `uri` defaults to the session URI. Throws on timeout or a lost
    /// connection; any status is returned.
    public func request(_ method: String, uri: String? = nil, version: String = "RTSP/1.0",
                        headers: RTSPHeaders = RTSPHeaders(), body: [UInt8] = [],
                        timeout: Duration? = nil) async throws -> RTSPResponse {
        try await core.request(method, uri: uri ?? self.uri, version: version, headers: headers, body: body,
                               timeout: timeout ?? options.requestTimeout)
    }

    /// A request with a binary-plist body (`Content-Type: application/x-apple-binary-plist`).
    public func request(_ method: String, uri: String? = nil, plist: PlistValue, headers: RTSPHeaders = RTSPHeaders(),
                        timeout: Duration? = nil) async throws -> RTSPResponse {
        var h = headers
        h.set("Content-Type", "application/x-apple-binary-plist")
        return try await request(method, uri: uri, headers: h, body: BinaryPlist.encode(plist), timeout: timeout)
    }

    /// The first failure (control connection or event channel lost), if any.
    public var failure: ATVError? { core.failure }

    /// Called once, on the first failure (at once if it already happened).
    public func onFailure(_ handler: @escaping @Sendable (ATVError) -> Void) { core.onFailure(handler) }

    /// Event-channel requests answered so far.
    public var eventRequestsAnswered: Int { core.eventRequests }

    /// The signals every receiver gives about being alive (for `AirPlay2StallRule`).
    public var liveness: AirPlay2Liveness { core.liveness }

    /// Called (on any thread) each time a request goes out.
    public func onRequestSent(_ handler: @escaping @Sendable () -> Void) { core.setRequestSentHandler(handler) }

    /// Ends the connection's life as failed (the first failure wins): later requests fail at once,
    /// and TEARDOWN waits for its answer only briefly.
    public func fail(_ error: ATVError) { core.fail(error) }

    // MARK: Session

    /// The session SETUP (timing, our identity), then the event channel on the returned `eventPort`,
    /// encrypted with the Events keys; every request on it is answered 200. The driver of
    /// `AirPlay2SessionSetupStateMachine`.
    @discardableResult
    public func setupSession(timing: AirPlay2Timing, sessionUUID: String = randomUUID(),
                             remoteControlOnly: Bool = false) async throws -> AirPlay2SessionReply {
        var machine = AirPlay2SessionSetupStateMachine(
            timing: timing, sessionUUID: sessionUUID, identity: options.identity, remoteControlOnly: remoteControlOnly,
            eventHost: remoteIP, eventConnectAttempts: options.eventConnectAttempts)
        var actions = machine.start()
        while !actions.isEmpty {
            var next: [AirPlay2SessionSetupAction] = []
            for action in actions {
                switch action {
                case .send(let method, let headers, let body):
                    do {
                        next += machine.response(try await request(method, headers: headers, body: body))
                    } catch let error as ATVError {
                        next += machine.requestFailed(error)
                    }
                case .sessionEstablished:
                    core.sessionEstablished()
                case .openEventChannel(let port, let after):
                    if let after { try await Task.sleep(for: after) }
                    do {
                        try await openEventChannelOnce(port: port)
                        next += machine.eventChannelOpened()
                    } catch let error as ATVError {
                        next += machine.eventChannelFailed(error)
                    }
                case .debug(let line):
                    logger.debug("\(line)")
                case .done(let reply):
                    return reply
                case .failed(let error):
                    throw error
                }
            }
            actions = next
        }
        throw ATVError.invalidState("the AirPlay 2 session setup stopped")
    }

    // MARK: Steps for a caller that sequences the session itself (ATVRAOP's AirPlay 2 audio state machine)

    /// The caller's session SETUP succeeded: TEARDOWN is owed from now on.
    package func sessionEstablished() { core.sessionEstablished() }

    /// Opens the event channel on the session SETUP reply's `eventPort` (as `setupSession` does).
    package func openEventChannel(port: Int) async throws { try await connectEventChannel(port: port) }

    /// The control connection is open.
    package var isOpen: Bool { core.isOpen }

    /// Stops `POST /feedback`.
    package func stopFeedback() { core.stopFeedback() }

    /// The next request is the TEARDOWN: the connection closing is no failure.
    package func markTearingDown() { core.markTearingDown() }

    private func connectEventChannel(port: Int) async throws {
        var attempts = AirPlay2EventChannelAttempts(attempts: options.eventConnectAttempts, host: remoteIP, port: port)
        while true {
            do {
                return try await openEventChannelOnce(port: port)
            } catch let error as ATVError {
                switch attempts.connectFailed(error) {
                case .retry(let pause): try await Task.sleep(for: pause)
                case .fail(let e): throw e
                }
            }
        }
    }

    /// One connection to the event port, encrypted with the Events keys.
    private func openEventChannelOnce(port: Int) async throws {
        let keys = HAPChannel.airPlayEvents.keys(sharedSecret: sharedSecret)
        let core = self.core
        let ch = try await Self.openTCP(host: remoteIP, port: port, timeout: options.connectTimeout) { channel in
            let hap = HAPEncryptionHandler()
            hap.enable(keys: keys)
            try channel.pipeline.syncOperations.addHandler(hap)
            try channel.pipeline.syncOperations.addHandler(AirPlay2EventHandler(core: core))
        }
        core.attachEvents(ch)
    }

    /// `POST /feedback` every `interval` until `close()`. With `failAfterMisses`, that many
    /// unanswered in a row fail the connection (the receiver is gone); nil leaves the decision to
    /// the caller (an audio stream applies `AirPlay2StallRule`). Any status counts as an answer.
    public func startFeedback(interval: Duration = .seconds(2), failAfterMisses: Int? = 2) {
        let task = Task { [self] in
            var keepAlive = AirPlay2KeepAlive(interval: interval, failAfterMisses: failAfterMisses)
            let clock = ContinuousClock()
            var due = keepAlive.firstDue(startedAt: clock.now)
            while !Task.isCancelled {
                try? await Task.sleep(until: due, clock: clock)
                if Task.isCancelled || core.isClosing { return }
                let decision: AirPlay2KeepAlive.Decision
                do {
                    let r = try await request("POST", uri: "/feedback")
                    decision = keepAlive.answered(status: r.status, now: clock.now)
                    core.feedbackAnswered(r.status)
                } catch is CancellationError {
                    return
                } catch {
                    if core.isClosing { return }
                    decision = keepAlive.missed(now: clock.now)
                    logger.debug("AirPlay 2: POST /feedback failed (\(keepAlive.misses)): \(error)")
                }
                switch decision {
                case .continueAt(let next): due = next
                case .gone:
                    core.fail(.timeout("the receiver at \(host):\(port) stopped answering POST /feedback"))
                    return
                }
            }
        }
        core.setFeedbackTask(task)
    }

    /// Feedback answers so far (status → count).
    public var feedbackAnswers: [Int: Int] { core.feedbackStatuses }

    /// TEARDOWN (always, when a session was set up and the connection lives), then `close()`.
    /// After a failure the answer is waited for only briefly.
    public func teardown() async {
        core.stopFeedback()
        if core.hasSession, core.isOpen {
            let wait: Duration = core.failure == nil ? options.requestTimeout : min(options.requestTimeout, .seconds(1))
            core.markTearingDown()
            do {
                let r = try await request("TEARDOWN", timeout: wait)
                logger.debug("AirPlay 2: TEARDOWN → \(r.status)")
            } catch {
                logger.debug("AirPlay 2: TEARDOWN not answered: \(error)")
            }
        }
        await close()
    }

    /// Closes the event channel and the control connection (no failure is reported).
    public func close() async {
        core.markClosing()
        core.stopFeedback()
        if let ev = core.eventChannel { try? await ev.close() }
        try? await channel.close()
    }

    // MARK: Internals

    package static func check(_ r: RTSPResponse, _ what: String) throws(ATVError) {
        if r.status == 470 || r.status == 403 || r.status == 401 {
            throw ATVError.authenticationFailed("the receiver refused \(what) (\(r.status) \(r.reason))")
        }
        guard r.isSuccess else { throw ATVError.httpError(status: r.status, "\(what) rejected: \(r.reason)") }
    }

    static func openTCP(host: String, port: Int, timeout: Duration, from local: String? = nil,
                        handlers: @escaping @Sendable (Channel) throws -> Void) async throws -> Channel {
        let ms = max(1, timeout.wholeNanoseconds / 1_000_000)
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(ms))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try handlers(channel) }
            }
        do {
            if let local { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: local, port: 0)) }
            return try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw ATVError.connecting("\(host):\(port)", error, timeout: timeout)
        }
    }

    static func atvError(_ error: Error, host: String, port: Int) -> Error {
        if error is ATVError || error is CancellationError { return error }
        return ATVError.connection("\(host):\(port)", error)
    }
}

/// An upper-case random (version 4) UUID string.
public func randomUUID() -> String {
    var b = (0..<16).map { _ in UInt8.random(in: 0...255) }
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    let hex = b.map { String($0, radix: 16, uppercase: true).leftPadded(2) }
    return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

// MARK: - Shared state

/// The mutable side of a connection, shared with its NIO handlers.
final class AirPlay2ConnectionCore: Sendable {
    private struct Pending {
        var id: Int
        var cseq: Int
        var continuation: CheckedContinuation<RTSPResponse, Error>?
        var timer: Scheduled<Void>?
        var what: String
        var sentAt: ContinuousClock.Instant
    }

    private struct State {
        var channel: Channel?
        var eventChannel: Channel?
        var nextCSeq = 0
        var nextID = 0
        var pending: [Pending] = []
        var open = true
        var closing = false
        var tearingDown = false
        var session = false
        var failure: ATVError?
        var handlers: [@Sendable (ATVError) -> Void] = []
        var feedback: Task<Void, Never>?
        var feedbackStatuses: [Int: Int] = [:]
        var eventRequests = 0
        var lastAnswer: ContinuousClock.Instant?
        var lastEventRequest: ContinuousClock.Instant?
        var requestSent: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    let userAgent: String
    let dacpID = String(UInt64.random(in: 1...UInt64.max), radix: 16, uppercase: true)
    let activeRemote = UInt32.random(in: 1...UInt32.max)
    let sessionID = UInt32.random(in: 1...UInt32.max)
    let logger: Logger
    /// "host:port" of the receiver, for messages.
    let endpoint: String?

    init(userAgent: String, logger: Logger, endpoint: String? = nil) {
        self.userAgent = userAgent
        self.logger = logger
        self.endpoint = endpoint
    }

    func attach(_ channel: Channel) { state.withLock { $0.channel = channel } }
    func attachEvents(_ channel: Channel) { state.withLock { $0.eventChannel = channel } }
    var eventChannel: Channel? { state.withLock { $0.eventChannel } }
    var failure: ATVError? { state.withLock { $0.failure } }
    var isClosing: Bool { state.withLock { $0.closing } }
    var isOpen: Bool { state.withLock { $0.open } }
    var hasSession: Bool { state.withLock { $0.session } }
    var eventRequests: Int { state.withLock { $0.eventRequests } }
    var feedbackStatuses: [Int: Int] { state.withLock { $0.feedbackStatuses } }
    func sessionEstablished() { state.withLock { $0.session = true } }
    func markClosing() { state.withLock { $0.closing = true } }
    func markTearingDown() { state.withLock { $0.tearingDown = true } }
    func feedbackAnswered(_ status: Int) { state.withLock { $0.feedbackStatuses[status, default: 0] += 1 } }
    func eventRequestAnswered() {
        state.withLock {
            $0.eventRequests += 1
            $0.lastEventRequest = .now
        }
    }
    func setRequestSentHandler(_ handler: @escaping @Sendable () -> Void) { state.withLock { $0.requestSent = handler } }

    var liveness: AirPlay2Liveness {
        state.withLock { s in
            let oldest = s.pending.min { $0.sentAt < $1.sentAt }
            return AirPlay2Liveness(oldestUnanswered: oldest.map { ($0.what, $0.sentAt) }, lastAnswer: s.lastAnswer,
                                    lastEventRequest: s.lastEventRequest)
        }
    }

    func setFeedbackTask(_ task: Task<Void, Never>) {
        let old = state.withLock { s -> Task<Void, Never>? in
            defer { s.feedback = task }
            return s.feedback
        }
        old?.cancel()
    }

    func stopFeedback() {
        state.withLock { s -> Task<Void, Never>? in
            defer { s.feedback = nil }
            return s.feedback
        }?.cancel()
    }

    func onFailure(_ handler: @escaping @Sendable (ATVError) -> Void) {
        let already = state.withLock { s -> ATVError? in
            if let f = s.failure { return f }
            s.handlers.append(handler)
            return nil
        }
        if let already { handler(already) }
    }

    /// Records the first failure and tells the handlers (not while closing on purpose).
    func fail(_ error: ATVError) {
        let handlers = state.withLock { s -> [@Sendable (ATVError) -> Void] in
            guard s.failure == nil, !s.closing else { return [] }
            s.failure = error
            defer { s.handlers.removeAll() }
            return s.handlers
        }
        if !handlers.isEmpty { logger.debug("AirPlay 2: \(error)") }
        for h in handlers { h(error) }
    }

    func request(_ method: String, uri: String, version: String = "RTSP/1.0", headers extra: RTSPHeaders = RTSPHeaders(),
                 body: [UInt8] = [], timeout: Duration) async throws -> RTSPResponse {
        let (id, cseq, channel) = try state.withLock { s -> (Int, Int, Channel) in
            guard s.open, let ch = s.channel else {
                throw s.failure ?? ATVError.connectionLost("the AirPlay 2 control connection is closed")
            }
            s.nextID += 1
            defer { s.nextCSeq += 1 }
            return (s.nextID, s.nextCSeq, ch)
        }
        var headers = RTSPHeaders()
        headers.add("CSeq", String(cseq))
        for f in extra { headers.add(f.name, f.value) }
        if !headers.contains("User-Agent") { headers.add("User-Agent", userAgent) }
        headers.add("DACP-ID", dacpID)
        headers.add("Active-Remote", String(activeRemote))
        headers.add("Client-Instance", dacpID)
        let bytes = RTSPRequest(method: method, uri: uri, version: version, headers: headers, body: body).serialized
        logger.trace("AirPlay 2 -> \(method) \(uri) CSeq \(cseq)")
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<RTSPResponse, Error>) in
                let ns = timeout.wholeNanoseconds
                let (registered, sent) = state.withLock { s -> (Bool, (@Sendable () -> Void)?) in
                    guard s.open else { return (false, nil) }
                    s.pending.append(Pending(id: id, cseq: cseq, continuation: cont, timer: nil, what: uri.hasPrefix("/") ? "\(method) \(uri)" : method,
                                             sentAt: .now))
                    return (true, s.requestSent)
                }
                sent?()
                guard registered else {
                    cont.resume(throwing: failure ?? ATVError.connectionLost("the AirPlay 2 control connection is closed"))
                    return
                }
                let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(ns)) { [self] in
                    timedOut(id, what: "\(method) \(uri)", after: timeout)
                }
                let keep = state.withLock { s -> Bool in
                    guard let i = s.pending.firstIndex(where: { $0.id == id }) else { return false }
                    s.pending[i].timer = timer
                    return true
                }
                if !keep { timer.cancel() }
                channel.eventLoop.execute {
                    var buffer = channel.allocator.buffer(capacity: bytes.count)
                    buffer.writeBytes(bytes)
                    channel.writeAndFlush(buffer, promise: nil)
                }
            }
        } onCancel: {
            resolve(id: id, with: .failure(CancellationError()), keepSlot: true)
        }
    }

    private func timedOut(_ id: Int, what: String, after: Duration) {
        resolve(id: id, with: .failure(ATVError.timeout("the receiver\(endpoint.map { " at \($0)" } ?? "") did not answer \(what) within \(ATVError.seconds(after)) s")), keepSlot: true)
    }

    /// Resumes the waiter of request `id`. A slot kept without a waiter swallows a late answer.
    private func resolve(id: Int, with result: Result<RTSPResponse, Error>, keepSlot: Bool) {
        let cont = state.withLock { s -> CheckedContinuation<RTSPResponse, Error>? in
            guard let i = s.pending.firstIndex(where: { $0.id == id }) else { return nil }
            let c = s.pending[i].continuation
            s.pending[i].timer?.cancel()
            if keepSlot {
                s.pending[i].continuation = nil
                s.pending[i].timer = nil
            } else {
                s.pending.remove(at: i)
            }
            return c
        }
        cont?.resume(with: result)
    }

    /// An answer arrived (on the event loop).
    func deliver(_ response: RTSPResponse) {
        let cont = state.withLock { s -> CheckedContinuation<RTSPResponse, Error>? in
            s.lastAnswer = .now
            let index: Int?
            if let cseq = response.cseq {
                index = s.pending.firstIndex { $0.cseq == cseq }
                if let i = index {
                    // Older slots whose requests timed out will not be answered any more.
                    let cut = s.pending[i].cseq
                    let entry = s.pending.remove(at: i)
                    s.pending.removeAll { $0.cseq < cut && $0.continuation == nil }
                    entry.timer?.cancel()
                    return entry.continuation
                }
                return nil
            }
            index = s.pending.indices.first
            guard let i = index else { return nil }
            let entry = s.pending.remove(at: i)
            entry.timer?.cancel()
            return entry.continuation
        }
        if let cont {
            logger.trace("AirPlay 2 <- \(response.status) CSeq \(response.cseq ?? -1)")
            cont.resume(returning: response)
        } else {
            logger.debug("AirPlay 2: unexpected answer \(response.status) (CSeq \(response.cseq ?? -1)) ignored")
        }
    }

    /// The control connection ended or failed.
    func controlClosed(_ error: ATVError?) {
        let (waiters, closing, tearingDown) = state.withLock { s -> ([CheckedContinuation<RTSPResponse, Error>], Bool, Bool) in
            s.open = false
            let w = s.pending.compactMap(\.continuation)
            for p in s.pending { p.timer?.cancel() }
            s.pending.removeAll()
            return (w, s.closing, s.tearingDown)
        }
        let lost = (error ?? ATVError.connectionLost("the receiver closed the AirPlay 2 control connection")).naming(endpoint ?? "")
        if !closing && !tearingDown { fail(lost) }
        for w in waiters { w.resume(throwing: failure ?? lost) }
    }

    /// The event channel ended.
    func eventsClosed(_ error: ATVError?) {
        let (closing, tearingDown) = state.withLock { ($0.closing, $0.tearingDown) }
        guard !closing, !tearingDown else { return }
        fail(error ?? ATVError.connectionLost("the receiver closed the AirPlay 2 event channel"))
    }
}

// MARK: - NIO handlers

/// Parses answers on the control connection (after `HAPEncryptionHandler` decrypted them).
final class AirPlay2ResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var parser = RTSPParser()
    private let core: AirPlay2ConnectionCore
    private var done = false

    init(core: AirPlay2ConnectionCore) { self.core = core }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        parser.append(unwrapInboundIn(data).readableBytesView)
        do {
            while let message = try parser.nextMessage() {
                if case .response(let r) = message { core.deliver(r) }
            }
            // Garbage is known from its first bytes, not at a timeout.
            if !parser.canBeginResponse() { throw ATVError.protocolError("not RTSP") }
        } catch {
            finish(.protocolError("the receiver\(core.endpoint.map { " at \($0)" } ?? "") answered something that is not RTSP or HTTP on the AirPlay control connection"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let e = error as? ATVError, case .authenticationFailed = e {
            finish(.authenticationFailed("the AirPlay 2 control connection failed decryption (wrong key or tampered data)"))
        } else {
            finish(ATVError.connection("the receiver", error, during: "the AirPlay 2 control connection"))
        }
        context.close(promise: nil)
    }

    private func finish(_ error: ATVError?) {
        guard !done else { return }
        done = true
        core.controlClosed(error)
    }
}

/// Answers every request on the event channel with a bare 200.
final class AirPlay2EventHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var parser = RTSPParser()
    private let core: AirPlay2ConnectionCore
    private var done = false

    init(core: AirPlay2ConnectionCore) { self.core = core }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        parser.append(unwrapInboundIn(data).readableBytesView)
        do {
            while let message = try parser.nextMessage() {
                guard case .request(let request) = message else { continue }
                core.logger.debug("AirPlay 2 event: \(request.method) \(request.uri)")
                let bytes = AirPlay2EventChannel.replyBytes(to: request)
                var buffer = context.channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
                core.eventRequestAnswered()
            }
        } catch {
            finish(.protocolError("the receiver sent garbage on the AirPlay 2 event channel"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let e = error as? ATVError, case .authenticationFailed = e {
            finish(.authenticationFailed("the AirPlay 2 event channel failed decryption (wrong key or tampered data)"))
        } else {
            finish(ATVError.connection("the receiver", error, during: "the AirPlay 2 event channel"))
        }
        context.close(promise: nil)
    }

    private func finish(_ error: ATVError?) {
        guard !done else { return }
        done = true
        core.eventsClosed(error)
    }
}
