// Opening an AirPlay 2 control connection, without I/O (as `AirPlay2AudioSessionStateMachine` is
// for the audio session): inputs are the TCP outcome, each answer, request failures (timeouts, a
// lost connection) and the encryption switch; outputs are actions for the driver
// (`AirPlay2Connection.connect`).
//
// connect → GET /info (when asked; 403 ends it, any other answer goes on) →
//   stored credentials: POST /pair-verify M1, M3 (`X-Apple-HKP: 3`)
//   none: POST /pair-pin-start (failures other than a refusal are ignored), /pair-setup M1, M3
//         transient (`X-Apple-HKP: 4`, PIN 3939)
// → Control-key encryption on → done.
// The pairing itself is ATVAuth's pure `HAPPairVerifyClient` / `HAPPairSetupClient`: a wrong proof
// or signature throws there and ends the connection here (fails closed).
import ATVAuth
import ATVCore
import ATVHTTP

/// One request of the connect sequence, before the connection adds `CSeq`, `User-Agent`, `DACP-ID`,
/// `Active-Remote` and `Client-Instance`.
package struct AirPlay2ConnectRequest: Sendable, Equatable {
    package var method: String
    package var uri: String
    package var version: String
    package var headers: RTSPHeaders
    package var body: [UInt8]

    package init(method: String, uri: String, version: String = "RTSP/1.0", headers: RTSPHeaders = RTSPHeaders(),
                 body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers
        self.body = body
    }
}

/// What a finished connect sequence yields.
package struct AirPlay2ConnectResult: Sendable, Equatable {
    /// The `GET /info` answer (nil when not asked or not answered with a plist).
    package var info: PlistValue?
    package var pairing: AirPlay2Pairing
    /// The SRP session key K (transient) or the X25519 secret of pair-verify.
    package var sharedSecret: [UInt8]
}

/// What the driver of `AirPlay2ConnectStateMachine` must do.
package enum AirPlay2ConnectAction: Sendable, Equatable {
    /// Open the TCP connection; answer with `connected()` or `connectFailed(_:)`.
    case connect
    /// Send this request; answer with `response(_:)` or `requestFailed(_:)`.
    case send(AirPlay2ConnectRequest)
    /// Switch the connection to HAP encryption with these keys; then `encryptionEnabled()`.
    case enableEncryption(ChannelKeys)
    /// A line for the debug log.
    case debug(String)
    /// Connected, paired and encrypted.
    case done(AirPlay2ConnectResult)
    /// The connection cannot be opened: close it, report this.
    case failed(ATVError)
}

/// Connect, `GET /info`, pair-verify or transient pair-setup, encrypt (pure; one request at a time).
package struct AirPlay2ConnectStateMachine: Sendable {
    package enum State: Sendable, Equatable {
        case idle, connecting, info, pinStart, pairVerify, pairSetup, encrypting, done, failed
    }

    let host: String
    let port: Int
    let userAgent: String
    let clientName: String?
    let requestInfo: Bool
    private(set) package var state: State = .idle
    private var verify: HAPPairVerifyClient?
    private var setup: HAPPairSetupClient
    private var info: PlistValue?
    private var result: AirPlay2ConnectResult?

    /// `pairVerify` / `pairSetup` replace the clients made from `options` (their keys and SRP
    /// secret are random; tests fix them).
    package init(host: String, port: Int, options: AirPlay2ConnectionOptions,
                 pairVerify: HAPPairVerifyClient? = nil, pairSetup: HAPPairSetupClient? = nil) {
        self.host = host
        self.port = port
        userAgent = options.userAgent
        clientName = options.clientName
        requestInfo = options.requestInfo
        verify = pairVerify ?? options.credentials.map { HAPPairVerifyClient(credentials: $0) }
        setup = pairSetup ?? .transient(pin: options.transientPIN)
    }

    package var isFinished: Bool { state == .done || state == .failed }

    // MARK: Inputs

    package mutating func start() -> [AirPlay2ConnectAction] {
        guard state == .idle else { return [] }
        state = .connecting
        return [.connect]
    }

    package mutating func connected() -> [AirPlay2ConnectAction] {
        guard state == .connecting else { return [] }
        if requestInfo {
            state = .info
            return [.send(AirPlay2ConnectRequest(method: "GET", uri: "/info"))]
        }
        return startPairing()
    }

    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    package mutating func connectFailed(_ error: ATVError) -> [AirPlay2ConnectAction] {
        guard state == .connecting else { return [] }
        return fail(error)
    }

    package mutating func response(_ r: RTSPResponse) -> [AirPlay2ConnectAction] {
        switch state {
        case .info:
            if r.status == 403 {
                return fail(.authenticationFailed(
                    "\(host):\(port) refused GET /info with 403 (it only talks to Apple AirPlay senders; User-Agent was \"\(userAgent)\")"))
            }
            info = Self.infoPlist(r)
            return [.debug("AirPlay 2: GET /info → \(r.status)")] + startPairing()
        case .pinStart:
            do throws(ATVError) {
                try checkPairing(r, "/pair-pin-start")
                return [.debug("AirPlay 2: /pair-pin-start → \(r.status)")] + startPairSetup()
            } catch {
                return pinStartFailed(error)
            }
        case .pairVerify:
            do throws(ATVError) {
                try checkPairing(r, "/pair-verify")
                guard var client = verify else { return fail(.invalidState("pair-verify without credentials")) }
                let output = try client.handle(r.body)
                verify = client
                switch output {
                case .send(let next): return [pairingPost("/pair-verify", next, hkp: 3)]
                case .verified(let secret): return encrypt(.verified, secret)
                }
            } catch {
                return fail(error)
            }
        case .pairSetup:
            do throws(ATVError) {
                try checkPairing(r, "/pair-setup")
            } catch {
                return fail(error)
            }
            let output: HAPPairSetupClient.Output
            do throws(ATVError) { output = try setup.handle(r.body) } catch {
                return fail(.authenticationFailed(
                    "transient pairing with \(host) was refused (\(error)); if it shows a PIN, pair with `atv pair --protocol airplay`"))
            }
            switch output {
            case .send(let next): return [pairingPost("/pair-setup", next, hkp: 4)]
            case .transient(let key): return encrypt(.transient, key)
            case .paired: return fail(.protocolError("transient pair-setup unexpectedly produced credentials"))
            }
        default:
            return []
        }
    }

    /// The request was not answered in time, or the connection is gone.
    package mutating func requestFailed(_ error: ATVError) -> [AirPlay2ConnectAction] {
        switch state {
        case .info, .pairVerify, .pairSetup: return fail(error)
        case .pinStart: return pinStartFailed(error)
        default: return []
        }
    }

    package mutating func encryptionEnabled() -> [AirPlay2ConnectAction] {
        guard state == .encrypting, let result else { return [] }
        state = .done
        return [.debug("AirPlay 2: \(result.pairing) pairing done, control channel encrypted"), .done(result)]
    }

    // MARK: Pure pieces the other paths share

    /// The plist of a `GET /info` answer: nil unless a success with a body that parses.
    package static func infoPlist(_ r: RTSPResponse) -> PlistValue? {
        r.isSuccess && !r.body.isEmpty ? try? BinaryPlistParser.parse(r.body) : nil
    }

    // MARK: Internals

    private mutating func startPairing() -> [AirPlay2ConnectAction] {
        if let client = verify {
            var c = client
            do throws(ATVError) {
                let m1 = try c.start()
                verify = c
                state = .pairVerify
                return [pairingPost("/pair-verify", m1, hkp: 3)]
            } catch {
                return fail(error)
            }
        }
        state = .pinStart
        return [pairingPost("/pair-pin-start", [], hkp: 4)]
    }

    private mutating func startPairSetup() -> [AirPlay2ConnectAction] {
        do throws(ATVError) {
            let m1 = try setup.start()
            state = .pairSetup
            return [pairingPost("/pair-setup", m1, hkp: 4)]
        } catch {
            return fail(error)
        }
    }

    /// Some receivers do not know `/pair-pin-start` (or time out, #2908); transient pairing works
    /// without it. Only a refusal ends the connection.
    private mutating func pinStartFailed(_ error: ATVError) -> [AirPlay2ConnectAction] {
        if case .authenticationFailed = error { return fail(error) }
        return [.debug("AirPlay 2: /pair-pin-start failed (\(error)); continuing")] + startPairSetup()
    }

    private func pairingPost(_ path: String, _ body: [UInt8], hkp: Int) -> AirPlay2ConnectAction {
        var h = RTSPHeaders()
        h.add("Content-Type", "application/octet-stream")
        h.add("Connection", "keep-alive")
        h.add("X-Apple-HKP", String(hkp))
        if let clientName { h.add("X-Apple-Client-Name", clientName) }
        return .send(AirPlay2ConnectRequest(method: "POST", uri: path, version: "HTTP/1.1", headers: h, body: body))
    }

    private func checkPairing(_ r: RTSPResponse, _ path: String) throws(ATVError) {
        if r.status == 470 {
            throw ATVError.authenticationFailed(
                "\(host) requires a paired sender (\(path) answered 470); pair with `atv pair --protocol airplay`")
        }
        if r.status == 403 || r.status == 401 {
            throw ATVError.authenticationFailed("\(host) refused \(path) (\(r.status) \(r.reason)); check its speaker access settings")
        }
        guard r.isSuccess else { throw ATVError.httpError(status: r.status, "\(path) rejected: \(r.reason)") }
    }

    private mutating func encrypt(_ pairing: AirPlay2Pairing, _ secret: [UInt8]) -> [AirPlay2ConnectAction] {
        result = AirPlay2ConnectResult(info: info, pairing: pairing, sharedSecret: secret)
        state = .encrypting
        return [.enableEncryption(HAPChannel.airPlayControl.keys(sharedSecret: secret))]
    }

    private mutating func fail(_ error: ATVError) -> [AirPlay2ConnectAction] {
        state = .failed
        verify = nil
        result = nil
        return [.failed(error)]
    }
}
