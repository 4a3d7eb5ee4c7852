import ATVAuth
import ATVCore
import ATVDiscovery
import ATVMRP

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
                      close: { [self] in await close() })
    }
}
