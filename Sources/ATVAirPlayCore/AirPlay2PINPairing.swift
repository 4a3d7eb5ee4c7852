// HAP PIN pairing over AirPlay 2: `POST /pair-pin-start` makes the
// device show a PIN, then `/pair-setup` M1–M6 with `X-Apple-HKP: 3`. The result is stored as HAP
// credentials (pyatv's `ltpk:ltsk:atv_id:client_id`) and used for pair-verify later.
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore

/// One PIN pairing: `begin()` (the device shows the PIN), then `finish(pin:)`.
public final class AirPlay2PINPairing: Sendable {
    private let core: AirPlay2ConnectionCore
    private let channel: Channel
    private let host: String
    private let timeout: Duration
    private let clientName: String?

    private init(core: AirPlay2ConnectionCore, channel: Channel, host: String, timeout: Duration, clientName: String?) {
        self.core = core
        self.channel = channel
        self.host = host
        self.timeout = timeout
        self.clientName = clientName
    }

    public static func connect(host: String, port: Int, userAgent: String = "AirPlay/550.10", clientName: String? = "swift-atv",
                               timeout: Duration = .seconds(10), logger: Logger = Logger(label: "atv.airplay2")) async throws -> AirPlay2PINPairing {
        let core = AirPlay2ConnectionCore(userAgent: userAgent, logger: logger)
        let channel = try await AirPlay2Connection.openTCP(host: host, port: port, timeout: timeout) { channel in
            try channel.pipeline.syncOperations.addHandler(AirPlay2ResponseHandler(core: core))
        }
        core.attach(channel)
        return AirPlay2PINPairing(core: core, channel: channel, host: host, timeout: timeout, clientName: clientName)
    }

    private func post(_ path: String, _ body: [UInt8]) async throws -> RTSPResponse {
        var h = RTSPHeaders()
        h.add("Content-Type", "application/octet-stream")
        h.add("Connection", "keep-alive")
        h.add("X-Apple-HKP", "3")
        if let clientName { h.add("X-Apple-Client-Name", clientName) }
        let r = try await core.request("POST", uri: path, version: "HTTP/1.1", headers: h, body: body, timeout: timeout)
        if r.status == 470 || r.status == 403 || r.status == 401 {
            throw ATVError.authenticationFailed("\(host) refused \(path) (\(r.status) \(r.reason))")
        }
        guard r.isSuccess else { throw ATVError.httpError(status: r.status, "\(path) rejected: \(r.reason)") }
        return r
    }

    /// Asks the device to show a PIN.
    public func begin() async throws {
        _ = try await post("/pair-pin-start", [])
    }

    /// Pair-setup M1–M6 with the PIN; returns the credentials to store. Closes the connection.
    public func finish(pin: String) async throws -> HAPCredentials {
        defer { close() }
        var setup = HAPPairSetupClient(pin: pin)
        var message = try setup.start()
        while true {
            let r = try await post("/pair-setup", message)
            switch try setup.handle(r.body) {
            case .send(let next): message = next
            case .paired(let credentials): return credentials
            case .transient: throw ATVError.protocolError("PIN pair-setup ended like a transient one")
            }
        }
    }

    public func close() {
        core.markClosing()
        channel.close(promise: nil)
    }
}

/// PIN pairing in one call (for devices whose PIN is known in advance, e.g. tests), checked with a
/// pair-verify on a fresh connection so nothing unusable is returned.
public func pairAirPlay2(host: String, port: Int, pin: String, timeout: Duration = .seconds(10)) async throws -> HAPCredentials {
    let pairing = try await AirPlay2PINPairing.connect(host: host, port: port, timeout: timeout)
    do { try await pairing.begin() } catch {
        pairing.close()
        throw error
    }
    let credentials = try await pairing.finish(pin: pin)
    let check = try await AirPlay2Connection.connect(
        host: host, port: port, options: AirPlay2ConnectionOptions(requestTimeout: timeout, credentials: credentials, requestInfo: false))
    await check.close()
    return credentials
}
