// `pair` for AirPlay and RAOP: HAP pairing (`/pair-pin-start`, pair-setup M1–M6 with
// `X-Apple-HKP: 3`) for AirPlay 2 receivers, legacy AirPlay pairing (SRP over `/pair-setup-pin`)
// for the others; either way a verify on the new credentials before they are returned.
import ATVAuth
import ATVCore
import ATVHTTP

public actor AirPlayPairingHandler: PairingHandler {
    public nonisolated let pairingProtocol: ATVProtocol
    public nonisolated let deviceProvidesPIN = true
    public var pinToEnter: String? { nil }
    public var waitingMessage: String? { nil }
    public var pairedDeviceName: String? { nil }
    public private(set) var hasPaired = false
    /// AirPlay 2 (HAP) or AirPlay 1 (legacy) pairing, and why.
    public nonisolated let route: AirPlayRoute

    private let host: String
    private let port: Int
    private let options: PairingOptions
    private var pinCode: String?
    private var hap: AirPlay2PINPairing?
    private var legacy: HTTPClientConnection?

    /// `service` is the AirPlay or RAOP service being paired; `airplay` the device's AirPlay
    /// service, whose features also count for the route.
    public init(protocol proto: ATVProtocol, host: String, service: ServiceConfig, airplay: ServiceConfig?,
                options: PairingOptions) {
        pairingProtocol = proto
        self.host = host
        port = service.port
        self.options = options
        route = AirPlayRoute.choose(preference: options.airPlayVersion, featureTexts: [
            service.property("ft"), service.property("features"), airplay?.property("ft"), airplay?.property("features"),
        ])
    }

    public func begin() async throws {
        if route.version == .v2 {
            let pairing = try await AirPlay2PINPairing.connect(host: host, port: port, clientName: options.name,
                                                               timeout: options.stepTimeout)
            hap = pairing
            try await pairing.begin()
        } else {
            let http = try await HTTPClientConnection.connect(host: host, port: port, timeout: options.stepTimeout)
            legacy = http
            let start = try await http.send(LegacyPairSetupClient.pinStartRequest, timeout: options.stepTimeout)
            guard start.status == 200 else {
                throw ATVError.httpError(status: start.status, "/pair-pin-start: the device does not offer PIN pairing")
            }
        }
    }

    public func pin(_ pin: String) async throws { pinCode = pin }

    public func finish() async throws -> ATVCredentials {
        guard let pinCode else { throw ATVError.badInput("no PIN given: pass the PIN the device shows") }
        if let hap {
            let credentials = try await hap.finish(pin: pinCode)
            // Verify on a fresh connection, so nothing unusable is returned.
            let check = try await AirPlay2Connection.connect(
                host: host, port: port,
                options: AirPlay2ConnectionOptions(requestTimeout: options.stepTimeout, credentials: credentials,
                                                   clientName: options.name, requestInfo: false))
            await check.close()
            hasPaired = true
            return .hap(credentials)
        }
        guard let http = legacy else { throw ATVError.badInput("pairing was not begun") }
        var client = LegacyPairSetupClient(pin: pinCode)
        var request = try client.start()
        var result: LegacyPairingResult?
        while result == nil {
            let r = try await http.send(request, timeout: options.stepTimeout)
            switch try client.handle(status: r.status, body: r.body) {
            case .send(let next): request = next
            case .paired(let p): result = p
            }
        }
        guard let result else { throw ATVError.authenticationFailed("legacy pairing ended without credentials") }
        var verify = LegacyPairVerifyClient(credentials: result.credentials, deviceLTPK: result.deviceLTPK)
        var vreq = try verify.start()
        verifying: while true {
            let r = try await http.send(vreq, timeout: options.stepTimeout)
            switch try verify.handle(status: r.status, body: r.body) {
            case .send(let next): vreq = next
            case .verified: break verifying
            }
        }
        hasPaired = true
        return .legacy(result.credentials)
    }

    public func close() async {
        hap?.close()
        hap = nil
        legacy?.close()
        legacy = nil
    }
}

extension HTTPClientConnection {
    /// Sends a request a pairing state machine (legacy AirPlay, DMAP) asks for.
    public func send(_ request: PairingHTTPRequest, timeout: Duration) async throws -> HTTPResponseMessage {
        var headers = RTSPHeaders()
        for h in request.headers { headers.add(h.name, h.value) }
        return try await send(HTTPRequestMessage(method: request.method, uri: request.path, headers: headers, body: request.body),
                              timeout: timeout)
    }
}
