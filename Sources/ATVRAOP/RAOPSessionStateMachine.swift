import ATVCore
import ATVHTTP

/// Everything the RTSP session needs to know up front.
package struct RAOPSessionConfiguration: Sendable, Equatable {
    /// The sender's address as the receiver sees it (SDP `o=`, request URI).
    package var localIP: String
    /// The receiver's address (SDP `c=`).
    package var remoteIP: String
    /// Session id: the request URI's last component and the RTP SSRC.
    package var sessionID: UInt32
    /// `DACP-ID` / `Client-Instance` (16 upper-case hex digits).
    package var dacpID: String
    package var activeRemote: UInt32
    package var userAgent: String
    package var format: RAOPAudioFormat
    package var username: String
    package var password: String?
    /// Local UDP ports announced in SETUP.
    package var controlPort: Int
    package var timingPort: Int
    /// Volume to set before RECORD (dB); nil = leave the receiver's.
    package var initialVolumeDB: Double?
    /// First RTP sequence number and timestamp (announced in RECORD's `RTP-Info`).
    package var initialSequence: UInt16
    package var initialRTPTime: UInt32
    /// Send `GET /info` first (non-200 answers are tolerated).
    package var requestInfo: Bool

    package init(localIP: String, remoteIP: String, sessionID: UInt32, dacpID: String, activeRemote: UInt32,
                userAgent: String = "AirPlay/550.10", format: RAOPAudioFormat = RAOPAudioFormat(),
                username: String = "swift-atv", password: String? = nil, controlPort: Int, timingPort: Int,
                initialVolumeDB: Double? = nil, initialSequence: UInt16, initialRTPTime: UInt32,
                requestInfo: Bool = true) {
        self.localIP = localIP
        self.remoteIP = remoteIP
        self.sessionID = sessionID
        self.dacpID = dacpID
        self.activeRemote = activeRemote
        self.userAgent = userAgent
        self.format = format
        self.username = username
        self.password = password
        self.controlPort = controlPort
        self.timingPort = timingPort
        self.initialVolumeDB = initialVolumeDB
        self.initialSequence = initialSequence
        self.initialRTPTime = initialRTPTime
        self.requestInfo = requestInfo
    }

    /// The RTSP URI of this session: `rtsp://<local ip>/<session id>`.
    package var uri: String { "rtsp://\(localIP)/\(sessionID)" }
}

/// What SETUP told us about the receiver.
public struct RAOPServerPorts: Sendable, Equatable {
    public var audioPort: Int
    public var controlPort: Int
    public var timingPort: Int
    public var session: String

    public init(audioPort: Int, controlPort: Int, timingPort: Int, session: String) {
        self.audioPort = audioPort
        self.controlPort = controlPort
        self.timingPort = timingPort
        self.session = session
    }
}

/// The kind of an RTSP request this session sends (names requests in errors).
package enum RAOPRequestKind: String, Sendable, Equatable {
    case info = "GET /info"
    case announce = "ANNOUNCE"
    case setup = "SETUP"
    case volume = "SET_PARAMETER volume"
    case record = "RECORD"
    case metadata = "SET_PARAMETER metadata"
    case artwork = "SET_PARAMETER artwork"
    case progress = "SET_PARAMETER progress"
    case flush = "FLUSH"
    case feedback = "POST /feedback"
    case teardown = "TEARDOWN"

    /// Failures of these end the session; the others are reported as warnings.
    var isCritical: Bool {
        switch self {
        case .announce, .setup, .record: true
        default: false
        }
    }
}

/// What the I/O shell must do next.
package enum RAOPSessionAction: Sendable, Equatable {
    /// Write this request (its CSeq is set).
    case send(RTSPRequest, RAOPRequestKind)
    /// SETUP succeeded: where to send audio, sync and timing.
    case serverPorts(RAOPServerPorts)
    /// RECORD succeeded: start sending audio. `audioLatency` is the receiver's `Audio-Latency` header, if any.
    case startStreaming(audioLatency: Int?)
    /// A non-fatal problem (e.g. the receiver rejected metadata).
    case warning(String)
    /// TEARDOWN was answered (or the session never got far enough to need one).
    case closed
    /// The session cannot continue.
    case failed(ATVError)
}

/// The RTSP side of an AirPlay 1 (RAOP) sender session, without I/O: it produces requests and
/// consumes responses, matching them by CSeq.
///
/// GET /info → ANNOUNCE (401 → Digest retry) → SETUP → [SET_PARAMETER volume] → RECORD →
/// streaming (SET_PARAMETER volume/metadata/artwork/progress, FLUSH, POST /feedback) → TEARDOWN.
package struct RAOPSessionStateMachine: Sendable {
    package enum State: Sendable, Equatable {
        case idle, info, announcing, settingUp, settingVolume, recording, streaming, tearingDown, closed, failed
    }

    package let configuration: RAOPSessionConfiguration
    package private(set) var state: State = .idle
    package private(set) var serverPorts: RAOPServerPorts?
    /// Requests sent and not yet answered, by CSeq.
    package private(set) var pending: [Int: RAOPRequestKind] = [:]

    private var nextCSeq = 0
    private var challenge: RTSPDigestChallenge?
    private var announceRetried = false
    private var deferredVolumeDB: Double?

    package init(configuration: RAOPSessionConfiguration) {
        self.configuration = configuration
    }

    package var isStreaming: Bool { state == .streaming }
    package var isFinished: Bool { state == .closed || state == .failed }

    // MARK: Inputs

    package mutating func start() -> [RAOPSessionAction] {
        guard state == .idle else { return [.warning("session already started")] }
        if configuration.requestInfo {
            state = .info
            return [send(.info, method: "GET", uri: "/info")]
        }
        return announce()
    }

    /// Feeds a response. Responses with an unknown CSeq are ignored (with a warning).
    package mutating func receive(_ response: RTSPResponse) -> [RAOPSessionAction] {
        let cseq: Int
        if let c = response.cseq {
            cseq = c
        } else if pending.count == 1, let only = pending.keys.first {
            cseq = only  // receivers that omit CSeq: only one request can be meant
        } else {
            return [.warning("response \(response.status) without CSeq ignored")]
        }
        guard let kind = pending.removeValue(forKey: cseq) else {
            return [.warning("response with unexpected CSeq \(cseq) ignored")]
        }
        if isFinished { return [] }
        return handle(response, for: kind)
    }

    /// No answer to request `cseq` in time.
    package mutating func timedOut(cseq: Int) -> [RAOPSessionAction] {
        guard let kind = pending.removeValue(forKey: cseq), !isFinished else { return [] }
        if kind == .teardown {
            state = .closed
            return [.closed]
        }
        if kind.isCritical || kind == .info || kind == .feedback || state != .streaming {
            return fail(.timeout("the receiver did not answer \(kind.rawValue)"))
        }
        return [.warning("the receiver did not answer \(kind.rawValue)")]
    }

    /// The connection closed under us.
    package mutating func connectionClosed() -> [RAOPSessionAction] {
        if isFinished { return [] }
        if state == .tearingDown {
            state = .closed
            pending.removeAll()
            return [.closed]
        }
        return fail(.connectionLost("the receiver closed the RTSP connection during \(describe(state))"))
    }

    // MARK: Commands while streaming

    package mutating func setVolume(dB: Double) -> [RAOPSessionAction] {
        guard state == .streaming else {
            deferredVolumeDB = dB
            return []
        }
        return [setParameter(.volume, contentType: "text/parameters", body: Array(RAOPVolume.parameterBody(dB: dB).utf8))]
    }

    package mutating func setMetadata(_ info: RAOPTrackInfo, sequence: UInt16, rtpTime: UInt32) -> [RAOPSessionAction] {
        guard state == .streaming else { return [] }
        return [setParameter(.metadata, contentType: "application/x-dmap-tagged", body: info.dmapBytes,
                             rtpInfo: (sequence, rtpTime))]
    }

    package mutating func setArtwork(_ bytes: [UInt8], contentType: String = "image/jpeg", sequence: UInt16, rtpTime: UInt32) -> [RAOPSessionAction] {
        guard state == .streaming, !bytes.isEmpty else { return [] }
        return [setParameter(.artwork, contentType: contentType, body: bytes, rtpInfo: (sequence, rtpTime))]
    }

    package mutating func setProgress(_ progress: RAOPProgress) -> [RAOPSessionAction] {
        guard state == .streaming else { return [] }
        return [setParameter(.progress, contentType: "text/parameters", body: Array(progress.parameterBody.utf8))]
    }

    /// FLUSH up to (not including) the given next packet.
    package mutating func flush(sequence: UInt16, rtpTime: UInt32) -> [RAOPSessionAction] {
        guard state == .streaming else { return [] }
        var headers = RTSPHeaders()
        headers.add("Range", "npt=0-")
        headers.add("RTP-Info", "seq=\(sequence);rtptime=\(rtpTime)")
        return [send(.flush, method: "FLUSH", uri: configuration.uri, headers: headers)]
    }

    /// Keep-alive. Non-200 answers are tolerated (AirPlay 1 receivers often 404/501 it): any answer
    /// proves the receiver is alive.
    package mutating func feedback() -> [RAOPSessionAction] {
        guard state == .streaming else { return [] }
        return [send(.feedback, method: "POST", uri: "/feedback")]
    }

    /// Ends the session: TEARDOWN if SETUP got a session, otherwise closes at once.
    package mutating func teardown() -> [RAOPSessionAction] {
        switch state {
        case .closed, .tearingDown:
            return []
        case .failed:
            // Still release the receiver when a session exists (e.g. after a keep-alive timeout).
            guard serverPorts != nil else { return [] }
            state = .tearingDown
            return [send(.teardown, method: "TEARDOWN", uri: configuration.uri)]
        case .idle, .info, .announcing, .settingUp:
            if serverPorts == nil {
                state = .closed
                return [.closed]
            }
            fallthrough
        default:
            state = .tearingDown
            return [send(.teardown, method: "TEARDOWN", uri: configuration.uri)]
        }
    }

    // MARK: Internals

    private mutating func handle(_ response: RTSPResponse, for kind: RAOPRequestKind) -> [RAOPSessionAction] {
        switch kind {
        case .info:
            guard state == .info else { return [] }
            return announce()
        case .announce:
            guard state == .announcing else { return [] }
            if response.status == 401 {
                guard let password = configuration.password, !password.isEmpty else {
                    return fail(.authenticationFailed("the receiver requires a password (ANNOUNCE answered 401); pass one"))
                }
                guard !announceRetried else {
                    return fail(.authenticationFailed("the receiver rejected the password (ANNOUNCE answered 401 twice)"))
                }
                guard let header = response.headers["WWW-Authenticate"],
                      let parsed = try? RTSPDigestChallenge(header: header) else {
                    return fail(.authenticationFailed("ANNOUNCE answered 401 without a usable Digest challenge"))
                }
                challenge = parsed
                announceRetried = true
                return announce()
            }
            if response.status == 403 {
                return fail(.authenticationFailed("the receiver refused the stream (ANNOUNCE answered 403)"))
            }
            guard response.isSuccess else { return fail(httpError(response, kind)) }
            return setup()
        case .setup:
            guard state == .settingUp else { return [] }
            guard response.isSuccess else { return fail(httpError(response, kind)) }
            guard let transportValue = response.headers["Transport"] else {
                return fail(.protocolError("SETUP response has no Transport header"))
            }
            let transport = RTSPTransport(parsing: transportValue)
            guard let audio = transport.port("server_port") else {
                return fail(.protocolError("SETUP response Transport has no valid server_port: \(transportValue.prefix(120))"))
            }
            let session = response.headers["Session"].map { String($0.split(separator: ";").first ?? "").trimmingSpaces } ?? ""
            let ports = RAOPServerPorts(audioPort: audio,
                                        controlPort: transport.port("control_port") ?? audio,
                                        timingPort: transport.port("timing_port") ?? audio,
                                        session: session.isEmpty ? "1" : session)
            serverPorts = ports
            var actions: [RAOPSessionAction] = [.serverPorts(ports)]
            if let volume = deferredVolumeDB ?? configuration.initialVolumeDB {
                deferredVolumeDB = nil
                state = .settingVolume
                actions.append(setParameter(.volume, contentType: "text/parameters",
                                            body: Array(RAOPVolume.parameterBody(dB: volume).utf8)))
            } else {
                actions.append(record())
            }
            return actions
        case .volume:
            var actions: [RAOPSessionAction] = []
            if !response.isSuccess {
                actions.append(.warning("the receiver rejected the volume (\(response.status) \(response.reason))"))
            }
            if state == .settingVolume { actions.append(record()) }
            return actions
        case .record:
            guard state == .recording else { return [] }
            guard response.isSuccess else { return fail(httpError(response, kind)) }
            state = .streaming
            var actions: [RAOPSessionAction] = [
                .startStreaming(audioLatency: response.headers["Audio-Latency"].flatMap { Int($0.trimmingSpaces) }),
            ]
            if let volume = deferredVolumeDB {
                deferredVolumeDB = nil
                actions += setVolume(dB: volume)
            }
            return actions
        case .metadata, .artwork, .progress, .flush:
            return response.isSuccess ? [] : [.warning("the receiver rejected \(kind.rawValue) (\(response.status) \(response.reason))")]
        case .feedback:
            return []
        case .teardown:
            state = .closed
            return [.closed]
        }
    }

    private mutating func announce() -> [RAOPSessionAction] {
        state = .announcing
        let sdp = SDP.announce(format: configuration.format, sessionID: configuration.sessionID,
                               localIP: configuration.localIP, remoteIP: configuration.remoteIP)
        return [send(.announce, method: "ANNOUNCE", uri: configuration.uri,
                     headers: ["Content-Type": "application/sdp"], body: Array(sdp.utf8))]
    }

    private mutating func setup() -> [RAOPSessionAction] {
        state = .settingUp
        let transport = RTSPTransport(parameters: [
            ("unicast", ""), ("interleaved", "0-1"), ("mode", "record"),
            ("control_port", String(configuration.controlPort)), ("timing_port", String(configuration.timingPort)),
        ])
        return [send(.setup, method: "SETUP", uri: configuration.uri, headers: ["Transport": transport.headerValue])]
    }

    private mutating func record() -> RAOPSessionAction {
        state = .recording
        var headers = RTSPHeaders()
        headers.add("Range", "npt=0-")
        headers.add("RTP-Info", "seq=\(configuration.initialSequence);rtptime=\(configuration.initialRTPTime)")
        return send(.record, method: "RECORD", uri: configuration.uri, headers: headers)
    }

    private mutating func setParameter(_ kind: RAOPRequestKind, contentType: String, body: [UInt8],
                                       rtpInfo: (UInt16, UInt32)? = nil) -> RAOPSessionAction {
        var headers = RTSPHeaders()
        headers.add("Content-Type", contentType)
        if let (seq, ts) = rtpInfo { headers.add("RTP-Info", "seq=\(seq);rtptime=\(ts)") }
        return send(kind, method: "SET_PARAMETER", uri: configuration.uri, headers: headers, body: body)
    }

    private mutating func send(_ kind: RAOPRequestKind, method: String, uri: String,
                               headers extra: RTSPHeaders = RTSPHeaders(), body: [UInt8] = []) -> RAOPSessionAction {
        let cseq = nextCSeq
        nextCSeq += 1
        var headers = RTSPHeaders()
        headers.add("CSeq", String(cseq))
        for field in extra { headers.add(field.name, field.value) }
        headers.add("User-Agent", configuration.userAgent)
        headers.add("DACP-ID", configuration.dacpID)
        headers.add("Active-Remote", String(configuration.activeRemote))
        headers.add("Client-Instance", configuration.dacpID)
        if let session = serverPorts?.session { headers.add("Session", session) }
        if let challenge, let password = configuration.password {
            headers.add("Authorization", RTSPDigest.authorization(username: configuration.username, password: password,
                                                                  challenge: challenge, method: method, uri: uri))
        }
        pending[cseq] = kind
        return .send(RTSPRequest(method: method, uri: uri, headers: headers, body: body), kind)
    }

    private mutating func fail(_ error: ATVError) -> [RAOPSessionAction] {
        state = .failed
        pending.removeAll()
        return [.failed(error)]
    }

    private func httpError(_ response: RTSPResponse, _ kind: RAOPRequestKind) -> ATVError {
        .httpError(status: response.status, "\(kind.rawValue) rejected: \(response.reason)")
    }

    private func describe(_ state: State) -> String {
        switch state {
        case .idle, .info: "connection setup"
        case .announcing: "ANNOUNCE"
        case .settingUp: "SETUP"
        case .settingVolume: "SET_PARAMETER volume"
        case .recording: "RECORD"
        case .streaming: "streaming"
        case .tearingDown: "TEARDOWN"
        case .closed, .failed: "shutdown"
        }
    }
}
