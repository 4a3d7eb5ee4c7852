// Companion as a protocol module (`ProtocolModule`): its scan handler, `setup` (a
// `CompanionService` for the device's Companion service, when it has credentials) and `pair`.
import ATVAuth
import ATVCore
import ATVDiscovery

/// Companion (apps, power, keyboard, accounts, touch, HID): scan handlers, setup and pairing.
package enum CompanionProtocol: ProtocolModule {
    package static let `protocol` = ATVProtocol.companion
    package static var scanHandlers: [ScanHandler] { ScanHandlers.companion }
    package static let serviceProtocols: Set<ATVProtocol> = [.companion]

    /// A `CompanionService` (the `ProtocolSetup`'s `handle`) for `context.service`. Companion works
    /// only after pair-verify: without credentials it throws `NeedsPairing`.
    package static func setup(_ context: ProtocolSetupContext, options: Void) throws -> ProtocolSetup? {
        _ = try context.requireCredentials()
        let companion = try CompanionService(address: context.config.address, service: context.service,
                                             timeout: context.timeout ?? .seconds(10))
        return companion.setup
    }

    /// HAP pairing with the PIN the device shows.
    package static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler {
        guard let service = config.service(.companion) else { throw ATVError.noService(.companion) }
        return CompanionPairingHandler(companionHost: config.address, service: service, options: options)
    }
}
