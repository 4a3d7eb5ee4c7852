// AirPlay (video) as a protocol module (`ProtocolModule`): its scan handler, `setup` (an
// `AirPlayService` for the device's AirPlay service) and `pair`.
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVDiscovery

/// AirPlay video (`playURL` and its playback controls): scan handlers, setup and pairing.
package enum AirPlayProtocol: ProtocolModule {
    package static let `protocol` = ATVProtocol.airplay
    package static var scanHandlers: [ScanHandler] { ScanHandlers.airplay }
    package static let serviceProtocols: Set<ATVProtocol> = [.airplay]

    /// An `AirPlayService` (the `ProtocolSetup`'s `handle`) for `context.service`, verifying with
    /// its stored credentials; connecting is a no-op (each playback opens its own connection).
    package static func setup(_ context: ProtocolSetupContext, options: Void) throws -> ProtocolSetup? {
        var airplayOptions = AirPlayOptions()
        if let t = context.timeout {
            airplayOptions.connectTimeout = t
            airplayOptions.requestTimeout = t
        }
        let airplay = try AirPlayService(address: context.config.address, service: context.service, options: airplayOptions)
        airplay.attach(context.takeover)
        return airplay.setup
    }

    /// HAP pairing when the device speaks AirPlay 2, legacy AirPlay pairing otherwise.
    package static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler {
        guard let service = config.service(.airplay) else { throw ATVError.noService(.airplay) }
        return AirPlayPairingHandler(protocol: .airplay, host: config.address, service: service,
                                     airplay: config.service(.airplay), options: options)
    }
}
