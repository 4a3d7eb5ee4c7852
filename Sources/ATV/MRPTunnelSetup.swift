// MRP over the AirPlay 2 remote-control channel (protocols.md §5.5): when to use it, and how to open
// it on an `AirPlay2Connection` (session SETUP isRemoteControlOnly → event channel → RECORD → stream
// SETUP type 130 → data channel with the DataStream keys, `/feedback` every 2 s).
import ATVAuth
import ATVCore
import ATVMRP
import ATVRAOP
import Logging
import NIOCore

extension MRPService {
    /// The tunnel rule (`MRPTunnel.auto`: HomePods, model AudioAccessory*, with stored HAP or
    /// transient pairing; Apple TVs with tvOS ≥ 15 and HAP AirPlay credentials; never when there is
    /// a direct MRP service): nil when MRP should not be tunnelled through `airplay`, else the credentials
    /// to pair-verify with (`.some(nil)`: transient pairing).
    public static func tunnelCredentials(airplay: ServiceConfig, in config: DeviceConfig, mode: MRPTunnel) throws(ATVError) -> HAPCredentials?? {
        if config.services.contains(where: { $0.protocol == .mrp && $0.enabled }) { return nil }
        let creds = try RAOPService.hapCredentials(for: airplay, in: config)
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

    /// Opens the AirPlay 2 remote-control session and its data channel.
    public static func openAirPlayTunnel(host: String, port: Int, options: AirPlay2ConnectionOptions,
                                  logger: Logger = Logger(label: "atv.mrp-tunnel")) async throws -> MRPTunnelEndpoint {
        let ap = try await AirPlay2Connection.connect(host: host, port: port, options: options, logger: logger)
        do {
            try await ap.setupSession(timing: .none, remoteControlOnly: true)
            let record = try await ap.request("RECORD")
            guard record.isSuccess else { throw ATVError.httpError(status: record.status, "RECORD for the remote-control session rejected: \(record.reason)") }
            // Below Int64.max: the seed travels as a plist integer, which is signed.
            let seed = UInt64.random(in: 0...UInt64(Int64.max))
            let stream: BPlistValue = .dict([
                "controlType": .int(2), "channelID": .string(randomUUID()), "seed": .int(Int64(seed)),
                "clientUUID": .string(randomUUID()), "type": .int(130), "wantsDedicatedSocket": .bool(true),
                "clientTypeUUID": .string("1910A70F-DBC0-4242-AF95-115DB30604E1"),
            ])
            let r = try await ap.request("SETUP", plist: .dict(["streams": .array([stream])]))
            if r.status == 470 || r.status == 401 || r.status == 403 {
                throw ATVError.authenticationFailed("the receiver refused the remote-control stream SETUP (\(r.status) \(r.reason)); pair with `atv pair --protocol airplay`")
            }
            guard r.isSuccess else { throw ATVError.httpError(status: r.status, "remote-control stream SETUP rejected: \(r.reason)") }
            let reply = try? BinaryPlistParser.parse(r.body)
            guard case .array(let streams)? = reply?["streams"], let first = streams.first,
                  let dataPort = first["dataPort"]?.double.map({ Int($0) }), (1...65535).contains(dataPort) else {
                throw ATVError.protocolError("the receiver's remote-control stream SETUP reply has no dataPort")
            }
            logger.debug("MRP tunnel: data channel on port \(dataPort)")
            ap.startFeedback()
            let keys = HAPChannel.airPlayDataStream(seed: seed).keys(sharedSecret: ap.sharedSecret)
            return MRPTunnelEndpoint(host: ap.remoteIP, port: dataPort,
                             configure: { ch in
                                 let crypto = HAPEncryptionHandler()
                                 crypto.enable(keys: keys)
                                 try ch.pipeline.syncOperations.addHandler(crypto)
                             },
                             close: { await ap.teardown() },
                             onFailure: { handler in ap.onFailure(handler) })
        } catch {
            await ap.teardown()
            throw error
        }
    }
}
