import ATVAuth
import ATVCore
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
    // Each enabled service is offered to every module that sets itself up from its protocol, in
    // the modules' order (AirPlay first: RAOP and MRP may ride on its service).
    let modules = ProtocolModules.forConnect(options, tunnelMode: tunnelMode)
    let takeover = WeakTakeover(device)
    for service in config.services where service.enabled {
        for module in modules where module.serviceProtocols.contains(service.protocol) {
            let context = ProtocolSetupContext(config: config, service: service, timeout: options.timeout, takeover: takeover)
            let setup: ProtocolSetup
            do {
                guard let s = try module.setup(context) else { continue }
                setup = s
            } catch let skip as NeedsPairing {
                let p = skip.protocol
                logger.info("\(p) has no credentials (pair with `atv pair --protocol \(p.key)`); skipping it")
                needCredentials.append(p)
                continue
            }
            if let raop = setup.handle as? RAOPService { device.extra.withLock { $0.raop = raop } }
            try device.add(setup)
            added.append(setup.protocol)
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

