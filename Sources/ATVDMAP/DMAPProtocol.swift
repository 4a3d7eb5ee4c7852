// DMAP/DACP as a protocol module (`ProtocolModule`): its scan handlers, `setup` (a `DMAPService`
// for the device's DMAP service, when it has credentials) and `pair`.
import ATVAuth
import ATVCore
import ATVDiscovery

/// DMAP/DACP (Apple TV 1–3, Music on a computer): scan handlers, setup and pairing.
package enum DMAPProtocol: ProtocolModule {
    package static let `protocol` = ATVProtocol.dmap
    package static var scanHandlers: [ScanHandler] { ScanHandlers.dmap }
    package static let serviceProtocols: Set<ATVProtocol> = [.dmap]

    /// A `DMAPService` (the `ProtocolSetup`'s `handle`) for `context.service`. Without credentials
    /// (a pairing GUID or Home Sharing id) it throws `NeedsPairing`.
    package static func setup(_ context: ProtocolSetupContext, options: Void) throws -> ProtocolSetup? {
        _ = try context.requireCredentials()
        let dmap = try DMAPService(address: context.config.address, service: context.service,
                                   timeout: context.timeout ?? .seconds(10))
        return dmap.setup
    }

    /// The Remote side of DMAP pairing: we publish ourselves and the device connects to us.
    package static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler {
        DMAPPairingServer(host: config.address, options: options)
    }
}
