// MRP over the AirPlay 2 remote-control channel: when to use it, and an `AirPlay2DataStream`
// (ATVAirPlayCore) as the transport of an `MRPService`.
import ATVAirPlayCore
import ATVAuth
import ATVCore
import Logging
import NIOCore

/// MRP through the AirPlay 2 remote-control channel (HomePods, tvOS 15 and later): when to tunnel it,
/// and opening the tunnel `MRPProtocol.setup` uses.
extension MRPService {
    /// The tunnel rule (`MRPTunnel.auto`: HomePods, model AudioAccessory*, with stored HAP or
    /// transient pairing; Apple TVs with tvOS ≥ 15 and HAP AirPlay credentials; never when there is
    /// a direct MRP service): nil when MRP should not be tunnelled through `airplay`, else the credentials
    /// to pair-verify with (`.some(nil)`: transient pairing).
    package static func tunnelCredentials(airplay: ServiceConfig, in config: DeviceConfig, mode: MRPTunnel) throws(ATVError) -> HAPCredentials?? {
        if config.services.contains(where: { $0.protocol == .mrp && $0.enabled }) { return nil }
        let creds = try AirPlayStoredCredentials.hap(for: airplay, in: config)
        switch mode {
        case .disable: return nil
        case .force: return .some(creds)
        case .auto:
            let model = airplay.property("model") ?? config.deviceInfo.rawModel ?? ""
            if model.hasPrefix("AudioAccessory") { return .some(creds) }
            let major = (airplay.property("osvers") ?? "").split(separator: ".").first.flatMap { Int($0) } ?? 0
            if model.hasPrefix("AppleTV"), major >= 15, let creds { return .some(creds) }
            return nil
        }
    }

    /// An MRP service whose connection runs on the data channel of a fresh AirPlay 2 session.
    static func tunnelled(address: String, airplay: ServiceConfig, credentials: HAPCredentials?,
                          options: MRPService.Options = MRPService.Options(),
                          airPlayOptions: AirPlay2ConnectionOptions = AirPlay2ConnectionOptions()) -> MRPService {
        var ap = airPlayOptions
        ap.credentials = credentials
        let apOptions = ap
        let port = airplay.port
        return MRPService(host: address, port: port, credentials: nil, options: options) {
            try await openAirPlayTunnel(host: address, port: port, options: apOptions)
        }
    }

    /// Opens the AirPlay 2 remote-control session and its data channel (`AirPlay2DataStream`) as
    /// the transport of an MRP connection.
    package static func openAirPlayTunnel(host: String, port: Int, options: AirPlay2ConnectionOptions,
                                  logger: Logger = Logger(label: "atv.mrp-tunnel")) async throws -> MRPTunnelEndpoint {
        let stream = try await AirPlay2DataStream.open(host: host, port: port, options: options, logger: logger)
        let ap = stream.connection
        return MRPTunnelEndpoint(host: stream.host, port: stream.port,
                                 configure: { ch in try ch.pipeline.syncOperations.addHandler(stream.makeEncryptionHandler()) },
                                 close: { await ap.teardown() },
                                 onFailure: { handler in ap.onFailure(handler) })
    }
}
