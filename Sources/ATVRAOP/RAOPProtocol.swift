// RAOP as a protocol module (`ProtocolModule`): its scan handler, `setup` (an `RAOPService` for the
// device's RAOP service, or for its AirPlay service when audio streams go there) and `pair`.
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVDiscovery
import Logging

/// What `connect` passes to RAOP's `setup`.
package struct RAOPSetupOptions: Sendable {
    /// Streaming options (codec, latency, volume, credentials…); the context's timeout overrides theirs.
    package var raop: RAOPOptions
    /// AirPlay 1, AirPlay 2, or `.auto` (the receiver's features decide).
    package var airPlayVersion: AirPlayVersion
    package init(raop: RAOPOptions = RAOPOptions(), airPlayVersion: AirPlayVersion = .auto) {
        self.raop = raop
        self.airPlayVersion = airPlayVersion
    }
}

/// RAOP (AirPlay audio, version 1 or 2): scan handlers, setup and pairing.
package enum RAOPProtocol: ProtocolModule {
    package static let `protocol` = ATVProtocol.raop
    package static var scanHandlers: [ScanHandler] { ScanHandlers.raop }
    /// Its own service, and the AirPlay service of a receiver that advertises no RAOP service.
    package static let serviceProtocols: Set<ATVProtocol> = [.raop, .airplay]
    static let logger = Logger(label: "atv.connect")

    /// An `RAOPService` (the `ProtocolSetup`'s `handle`) streaming to `context.service`; for an
    /// AirPlay service, only when the device has no RAOP service and its features say audio goes
    /// to the AirPlay service (`RAOPService.streamingService`).
    package static func setup(_ context: ProtocolSetupContext, options: RAOPSetupOptions) throws -> ProtocolSetup? {
        guard let (service, raopOptions) = try streaming(context.config, service: context.service, options: options,
                                                         timeout: context.timeout) else { return nil }
        let raop = RAOPService(address: context.config.address, service: service, options: raopOptions)
        raop.attach(context.takeover)
        return raop.setup
    }

    /// The service audio streams to `config` go to (`service`, or for an AirPlay service the one
    /// derived from it: `RAOPService.streamingService`) and the options a stream there takes: the
    /// route (AirPlay 1 or 2, from the TXT features or `GET /info`), the receiver's traits, the
    /// password and the stored HAP credentials. nil: `service` does not carry audio streams.
    /// The one rule for a single stream and for each member of a group stream.
    package static func streaming(_ config: DeviceConfig, service: ServiceConfig, options: RAOPSetupOptions,
                                  timeout: Duration?) throws -> (ServiceConfig, RAOPOptions)? {
        var service = service
        if service.protocol == .airplay {
            guard config.service(.raop) == nil, let derived = RAOPService.streamingService(in: config) else { return nil }
            logger.info("\(config.name) advertises no RAOP service: audio streams go to its AirPlay service (port \(derived.port))")
            service = derived
        }
        var raopOptions = options.raop
        if let t = timeout {
            raopOptions.connectTimeout = t
            raopOptions.requestTimeout = t
            // A silent receiver costs the /info probe plus the AirPlay 1 attempt after it: half each.
            raopOptions.infoTimeout = min(raopOptions.infoTimeout, t / 2)
        }
        if raopOptions.password == nil { raopOptions.password = service.password }
        let route = RAOPService.route(for: service, in: config, preference: options.airPlayVersion)
        raopOptions.airPlayVersion = route.version
        // What the TXT records say about the receiver (model, features): the timing rule's input.
        raopOptions.receiverTraits = AirPlayReceiverTraits(txt: [service.properties, config.service(.airplay)?.properties ?? [:]])
        // No features known (an address without TXT): each stream asks GET /info for the route.
        raopOptions.routeFromInfo = !route.decided
        if route.version == .v2 || !route.decided, raopOptions.hapCredentials == nil {
            raopOptions.hapCredentials = try AirPlayStoredCredentials.hap(for: service, in: config)
        }
        let how = route.decided ? "\(route)" : "from GET /info when streaming (\(route.reason); AirPlay 1 if unanswered)"
        logger.info("audio streaming to \(config.name): \(how)\(raopOptions.hapCredentials != nil ? ", pair-verify with stored credentials" : "")")
        return (service, raopOptions)
    }

    /// HAP pairing when the receiver speaks AirPlay 2, legacy AirPlay pairing otherwise; the
    /// credentials serve AirPlay too.
    package static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler {
        guard let service = config.service(.raop) else { throw ATVError.noService(.raop) }
        return AirPlayPairingHandler(protocol: .raop, host: config.address, service: service,
                                     airplay: config.service(.airplay), options: options)
    }
}
