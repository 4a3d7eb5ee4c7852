import ATVAirPlay
import ATVAuth
import ATVCore
import ATVMRP
import ATVRAOP
import Logging

/// Options for ``connect(_:options:storage:)``.
public struct ConnectOptions: Sendable {
    /// RAOP streaming options (codec, latency, volume…).
    public var raop: RAOPOptions
    /// AirPlay 1 (RAOP) or AirPlay 2 for audio streaming; `.auto` follows the receiver's
    /// `features` (bit 38 or 48 → AirPlay 2, pyatv's rule) from its TXT records or, when there are
    /// none (a config made from an address), from its `GET /info` answer asked before each stream
    /// (no answer → AirPlay 1). Overrides `raop.airPlayVersion`.
    public var airPlayVersion: AirPlayVersion
    /// MRP over the AirPlay 2 remote-control channel (HomePods, tvOS ≥ 15) when there is no direct
    /// MRP service. `.auto` defers to the stored `mrp_tunnel` setting of the device, if any.
    public var mrpTunnel: MRPTunnel
    /// The longest wait for the device, per step: connecting, and each answer while connecting
    /// (and for RAOP/AirPlay requests); a protocol's whole setup gets three steps. nil: each
    /// protocol's defaults.
    public var timeout: Duration?
    /// Each option's default: RAOP's defaults, AirPlay version and MRP tunnel chosen automatically,
    /// each protocol's own timeouts.
    public init(raop: RAOPOptions = RAOPOptions(), airPlayVersion: AirPlayVersion = .auto, mrpTunnel: MRPTunnel = .auto,
                timeout: Duration? = nil) {
        self.raop = raop
        self.airPlayVersion = airPlayVersion
        self.mrpTunnel = mrpTunnel
        self.timeout = timeout
    }
}

extension AppleTV {
    /// The RAOP protocol of this device, when connected (streaming controls and progress).
    public var raop: RAOPService? { extra.withLock { $0.raop } }
}

/// The facade for every protocol the device offers that swift-atv speaks. Services that are
/// disabled are skipped; a device with none usable is an error. Nothing is connected here: each
/// protocol is set up on its first use (`AppleTV.setUp` sets them up ahead of time), so a call
/// never waits for or fails because of a protocol it does not use (streaming to a HomePod opens
/// no MRP tunnel). Stored credentials that can't be read are reported here.
public func connect(_ config: DeviceConfig, options: ConnectOptions = ConnectOptions(),
                    storage: FileStorage? = nil) async throws -> AppleTV {
    let logger = Logger(label: "atv.connect")
    var config = config
    var tunnelMode = options.mrpTunnel
    if let storage {
        if config.identifier != nil, let settings = try? storage.settings(for: config) {
            storage.apply(settings, to: &config)
            // The stored `mrp_tunnel` (pyatv's setting) applies unless the caller chose one.
            if tunnelMode == .auto { tunnelMode = settings.protocols.airplay.mrpTunnel }
        }
    }
    guard !config.services.isEmpty else { throw ATVError.noService(.raop) }
    // A protocol's whole setup is bounded by three steps, whatever the device does.
    let device = AppleTV(config: config, setUpDeadline: options.timeout.map { $0 * 3 + .milliseconds(500) })
    var added: [ATVProtocol] = []
    var needCredentials: [ATVProtocol] = []
    func addRAOP(_ service: ServiceConfig) throws {
        var raopOptions = options.raop
        if let t = options.timeout {
            raopOptions.connectTimeout = t
            raopOptions.requestTimeout = t
            // A silent receiver costs the /info probe plus the AirPlay 1 attempt after it: half each.
            raopOptions.infoTimeout = min(raopOptions.infoTimeout, t / 2)
        }
        if raopOptions.password == nil { raopOptions.password = service.password }
        let route = RAOPService.route(for: service, in: config, preference: options.airPlayVersion)
        raopOptions.airPlayVersion = route.version
        // No features known (an address without TXT): each stream asks GET /info for the route.
        raopOptions.routeFromInfo = !route.decided
        if route.version == .v2 || !route.decided, raopOptions.hapCredentials == nil {
            raopOptions.hapCredentials = try RAOPService.hapCredentials(for: service, in: config)
        }
        let how = route.decided ? "\(route)" : "from GET /info when streaming (\(route.reason); AirPlay 1 if unanswered)"
        logger.info("audio streaming to \(config.name): \(how)\(raopOptions.hapCredentials != nil ? ", pair-verify with stored credentials" : "")")
        let raop = RAOPService(address: config.address, service: service, options: raopOptions)
        raop.attach(device)
        device.extra.withLock { $0.raop = raop }
        try device.add(raop.setup)
        added.append(.raop)
    }
    for service in config.services where service.enabled {
        switch service.protocol {
        case .raop:
            try addRAOP(service)
        case .airplay:
            var airplayOptions = AirPlayOptions()
            if let t = options.timeout {
                airplayOptions.connectTimeout = t
                airplayOptions.requestTimeout = t
            }
            let airplay = try AirPlayService(address: config.address, service: service, options: airplayOptions)
            airplay.attach(device)
            try device.add(airplay.setup)
            added.append(.airplay)
            // An AirPlay 2 receiver without `_raop._tcp`: audio streams go to this service.
            if config.service(.raop) == nil, let derived = RAOPService.streamingService(in: config) {
                logger.info("\(config.name) advertises no RAOP service: audio streams go to its AirPlay service (port \(derived.port))")
                try addRAOP(derived)
            }
            if let credentials = try MRPService.tunnelCredentials(airplay: service, in: config, mode: tunnelMode) {
                logger.info("MRP through the AirPlay 2 remote-control channel of \(config.name) (\(credentials == nil ? "transient pairing" : "pair-verify with stored credentials")), set up when first used")
                let mrp = MRPService.tunnelled(address: config.address, airplay: service, credentials: credentials)
                var setup = mrp.setup(service)
                let open = setup.connect
                setup.connect = {
                    do { try await open() } catch let error as ATVError {
                        throw error.context("remote control through the AirPlay 2 tunnel")
                    }
                }
                try device.add(setup)
                added.append(.mrp)
            }
        case .mrp:
            var mrpOptions = MRPService.Options()
            if let t = options.timeout {
                mrpOptions.connectTimeout = t
                mrpOptions.replyTimeout = t
            }
            guard let mrp = try MRPService.make(address: config.address, service: service, options: mrpOptions) else {
                logger.info("MRP has no credentials; pair with `atv pair --protocol mrp` to use it. Skipping it")
                needCredentials.append(.mrp)
                continue
            }
            try device.add(mrp.setup(service))
            added.append(.mrp)
        case .companion:
            // Companion works only after pair-verify: without credentials it is left out.
            guard service.credentials?.isEmpty == false else {
                logger.info("Companion has no credentials (pair with `atv pair --protocol companion`); skipping it")
                needCredentials.append(.companion)
                continue
            }
            let companion = try CompanionService(address: config.address, service: service, timeout: options.timeout ?? .seconds(10))
            try device.add(companion.setup)
            added.append(.companion)
        case .dmap:
            guard service.credentials?.isEmpty == false else {
                logger.info("DMAP has no credentials (pair with `atv pair --protocol dmap`); skipping it")
                needCredentials.append(.dmap)
                continue
            }
            let dmap = try DMAPService(address: config.address, service: service, timeout: options.timeout ?? .seconds(10))
            try device.add(dmap.setup)
            added.append(.dmap)
        }
    }
    guard !added.isEmpty else {
        if let p = needCredentials.first { throw ATVError.noCredentials(p) }
        let offered = config.services.map(\.protocol.description).joined(separator: ", ")
        throw ATVError.invalidConfig("none of this device's protocols (\(offered)) is enabled")
    }
    try await device.connect()
    return device
}

extension ATVError {
    /// The same error with what was being done in front of its text (kind and exit status kept).
    func context(_ what: String) -> ATVError {
        switch self {
        case .connectionFailed(let s): .connectionFailed("\(what): \(s)")
        case .connectionLost(let s): .connectionLost("\(what): \(s)")
        case .timeout(let s): .timeout("\(what): \(s)")
        case .authenticationFailed(let s): .authenticationFailed("\(what): \(s)")
        case .pairingFailed(let s): .pairingFailed("\(what): \(s)")
        case .protocolError(let s): .protocolError("\(what): \(s)")
        case .httpError(let status, let s): .httpError(status: status, "\(what): \(s)")
        default: self
        }
    }
}
