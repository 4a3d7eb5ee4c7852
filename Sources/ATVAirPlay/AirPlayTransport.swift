// How `AirPlayClient` talks to the device: plain HTTP/1.1 (devices that need no verification), or
// HTTP/1.1 over an encrypted AirPlay 2 control connection (after HAP pair-verify or transient
// pair-setup), optionally with the AirPlay 2 session recent tvOS wants before `/play`
// (session SETUP with NTP timing, event channel, `/feedback`, RECORD, as pyatv 0.18 sends it).
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVHTTP

/// How to verify the connection before `POST /play`.
package enum AirPlayVerification: Sendable {
    /// Plain HTTP; a device that demands verification answers 470.
    case none
    /// HAP pair-verify with stored credentials (`atv pair --protocol airplay`), then HAP encryption.
    case hap(HAPCredentials)
    /// Transient pair-setup (PIN 3939), then HAP encryption (AirPlay 2 devices without stored credentials).
    case transient
    /// Legacy AirPlay verification with stored legacy credentials: two `/pair-verify` POSTs on the
    /// plain HTTP connection, no encryption after.
    case legacy(LegacyCredentials)
}

protocol AirPlayTransport: Sendable {
    func send(_ request: HTTPRequestMessage, timeout: Duration) async throws -> HTTPResponseMessage
    func close()
    var localAddress: String? { get }
}

struct PlainAirPlayTransport: AirPlayTransport {
    let connection: HTTPClientConnection
    func send(_ request: HTTPRequestMessage, timeout: Duration) async throws -> HTTPResponseMessage {
        try await connection.send(request, timeout: timeout)
    }
    func close() { connection.close() }
    var localAddress: String? { connection.localAddress }

    /// Legacy verification (`/pair-verify`, X25519 + Ed25519) on this connection; a refusal is one clear line.
    func verifyLegacy(_ credentials: LegacyCredentials, host: String, port: Int, timeout: Duration) async throws {
        var client = LegacyPairVerifyClient(credentials: credentials)
        var next = try client.start()
        while true {
            let r = try await connection.send(HTTPRequestMessage(method: next.method, uri: next.path,
                                                                 headers: RTSPHeaders(next.headers.map { ($0.name, $0.value) }),
                                                                 body: next.body), timeout: timeout)
            do {
                switch try client.handle(status: r.status, body: r.body) {
                case .send(let request): next = request
                case .verified: return
                }
            } catch {
                throw ATVError.authenticationFailed("the Apple TV at \(host):\(port) rejected the stored AirPlay credentials (/pair-verify answered \(r.status)); pair again with `atv pair --protocol airplay`")
            }
        }
    }
}

/// HTTP requests over an `AirPlay2Connection` (same framing as RTSP, version `HTTP/1.1`).
struct AirPlay2Transport: AirPlayTransport {
    let connection: AirPlay2Connection
    /// Our NTP timing port while an AirPlay 2 session is set up.
    let timing: NTPTimingResponder?
    func send(_ request: HTTPRequestMessage, timeout: Duration) async throws -> HTTPResponseMessage {
        var headers = request.headers
        headers.remove("Content-Length")
        let r = try await connection.request(request.method, uri: request.uri, version: "HTTP/1.1", headers: headers,
                                             body: request.body, timeout: timeout)
        return r
    }
    func close() {
        let c = connection
        timing?.close()
        Task { await c.teardown() }
    }
    var localAddress: String? { connection.localIP }

    /// Connects and verifies; with `session`, also sets up the AirPlay 2 session before `/play`.
    static func open(host: String, port: Int, verification: AirPlayVerification, session: Bool?,
                     options: AirPlayOptions) async throws -> AirPlay2Transport {
        var o = AirPlay2ConnectionOptions(connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout)
        if case .hap(let c) = verification { o.credentials = c }
        let conn: AirPlay2Connection
        do {
            conn = try await AirPlay2Connection.connect(host: host, port: port, options: o)
        } catch let e as ATVError {
            guard o.credentials != nil else { throw e }
            switch e {
            case .authenticationFailed(let m) where m.contains("answered 470"): throw e
            case .authenticationFailed, .protocolError, .invalidCredentials:
                throw ATVError.authenticationFailed("the Apple TV at \(host):\(port) rejected the stored AirPlay credentials (\(e)); pair again with `atv pair --protocol airplay`")
            default: throw e
            }
        }
        var wantsSession = session
        if wantsSession == nil {
            wantsSession = conn.info?["features"].flatMap(AirPlayFeatureFlags.init(plistValue:))?.isAirPlay2 ?? false
        }
        var timing: NTPTimingResponder?
        if wantsSession == true {
            do {
                let responder = try await NTPTimingResponder.start(host: conn.localIP)
                timing = responder
                try await conn.setupSession(timing: .ntp(timingPort: responder.port))
                conn.startFeedback()
                let r = try await conn.request("RECORD")
                guard r.isSuccess else {
                    throw ATVError.httpError(status: r.status, "the Apple TV at \(host):\(port) refused RECORD (\(r.status) \(r.reason))")
                }
            } catch {
                timing?.close()
                await conn.teardown()
                throw error
            }
        }
        return AirPlay2Transport(connection: conn, timing: timing)
    }
}
