import ATVAuth
import ATVCompanion
import ATVCore
import ATVDMAP
import ATVMRP
import ATVAirPlayCore
import ATVRAOP

/// Pair with `config`'s device over `proto` (pyatv's `pyatv.pair`): returns the handler to drive,
/// `begin()` → `pin(_:)` → `finish()` → `close()`. The credentials `finish()` returns are already
/// verified; store them with `FileStorage.storeCredentials(_:for:of:)`. AirPlay 2 credentials
/// serve both AirPlay and RAOP.
public func pair(_ config: DeviceConfig, protocol proto: ATVProtocol,
                 options: PairingOptions = PairingOptions()) throws -> any PairingHandler {
    switch proto {
    case .airplay, .raop:
        guard let service = config.service(proto) else { throw ATVError.noService(proto) }
        return AirPlayPairingHandler(protocol: proto, host: config.address, service: service,
                                     airplay: config.service(.airplay), options: options)
    case .companion:
        guard let service = config.service(.companion) else { throw ATVError.noService(.companion) }
        return CompanionPairingHandler(companionHost: config.address, service: service, options: options)
    case .mrp:
        guard let service = config.service(.mrp) else { throw ATVError.noService(.mrp) }
        return MRPPairingHandler(mrpHost: config.address, service: service, options: options)
    case .dmap:
        return DMAPPairingServer(host: config.address, options: options)
    }
}
