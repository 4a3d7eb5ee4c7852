import ATVAuth
import ATVCore
import ATVDiscovery
import Logging

/// MRP as a protocol of the facade: remote control (HID buttons and SEND_COMMAND), metadata
/// (now playing, artwork, app), push updates, audio (volume), power and features, over one
/// connection that pair-verifies with the stored HAP credentials and is encrypted afterwards.
extension MRPService {
    /// The MRP service of `service` when it has HAP credentials (nil otherwise: MRP needs pairing).
    static func make(address: String, service: ServiceConfig, options: MRPService.Options = MRPService.Options()) throws -> MRPService? {
        guard let text = service.credentials, !text.isEmpty else { return nil }
        guard case .hap(let creds) = try ATVCredentials(parsing: text) else {
            throw ATVError.invalidCredentials("MRP needs HAP credentials (ltpk:ltsk:atv_id:client_id); pair again with `atv pair --protocol mrp`")
        }
        return MRPService(host: address, port: service.port, credentials: creds, options: options)
    }

    /// OS version, build and MAC from the `_mediaremotetv._tcp` TXT record (a manual service has none).
    static func deviceInfo(_ service: ServiceConfig) -> DeviceInfo {
        var info = DeviceInfo()
        if let build = service.property("SystemBuildVersion") {
            info.buildNumber = build
            info.version = DeviceTables.version(forBuild: build)
            info.operatingSystem = .tvOS
        }
        info.mac = service.property("macAddress")
        return info
    }

    func setup(_ service: ServiceConfig) -> ProtocolSetup {
        ProtocolSetup(protocol: .mrp,
                      interfaces: InterfaceSet(remoteControl: self, metadata: self, pushUpdater: self, power: self, audio: self),
                      features: self,
                      deviceInfo: Self.deviceInfo(service),
                      connect: { [self] in try await connect() },
                      close: { [self] in await close() },
                      handle: self)
    }
}

/// MRP (remote control, metadata, push updates, volume, power): scan handlers, setup and pairing.
package enum MRPProtocol: ProtocolModule {
    package static let `protocol` = ATVProtocol.mrp
    package static var scanHandlers: [ScanHandler] { ScanHandlers.mrp }
    /// Its own service, and the AirPlay service it is tunnelled through (HomePods, tvOS 15 and later).
    package static let serviceProtocols: Set<ATVProtocol> = [.mrp, .airplay]
    static let logger = Logger(label: "atv.connect")

    /// An `MRPService` (the `ProtocolSetup`'s `handle`): for an MRP service, with its stored HAP
    /// credentials (none: `NeedsPairing`); for an AirPlay service, tunnelled
    /// through the AirPlay 2 remote-control channel when `options` and the tunnel rule
    /// (`MRPService.tunnelCredentials`) say so, else nil.
    package static func setup(_ context: ProtocolSetupContext, options tunnelMode: MRPTunnel) throws -> ProtocolSetup? {
        let config = context.config
        let service = context.service
        if service.protocol == .airplay {
            guard let credentials = try MRPService.tunnelCredentials(airplay: service, in: config, mode: tunnelMode) else { return nil }
            logger.info("MRP through the AirPlay 2 remote-control channel of \(config.name) (\(credentials == nil ? "transient pairing" : "pair-verify with stored credentials")), set up when first used")
            let mrp = MRPService.tunnelled(address: config.address, airplay: service, credentials: credentials)
            var setup = mrp.setup(service)
            let open = setup.connect
            setup.connect = {
                do { try await open() } catch let error as ATVError {
                    throw error.context("remote control through the AirPlay 2 tunnel")
                }
            }
            return setup
        }
        var mrpOptions = MRPService.Options()
        if let t = context.timeout {
            mrpOptions.connectTimeout = t
            mrpOptions.replyTimeout = t
        }
        guard let mrp = try MRPService.make(address: config.address, service: service, options: mrpOptions) else {
            throw NeedsPairing(.mrp)
        }
        return mrp.setup(service)
    }

    /// HAP pairing with the PIN the device shows, over the MRP connection.
    package static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler {
        guard let service = config.service(.mrp) else { throw ATVError.noService(.mrp) }
        return MRPPairingHandler(mrpHost: config.address, service: service, options: options)
    }
}
