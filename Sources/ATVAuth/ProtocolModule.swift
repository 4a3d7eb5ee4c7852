// The one shape every protocol module (ATVMRP, ATVCompanion, ATVDMAP, ATVAirPlay, ATVRAOP) exposes to
// the facade, as pyatv's `pyatv/protocols/<proto>/__init__.py` do: its scan handlers, `setup` and
// `pair`. It lives here rather than in ATVCore because pairing hands back `ATVCredentials`.
import ATVCore

/// What a protocol module is given to set itself up for one service of a device.
package struct ProtocolSetupContext: Sendable {
    /// The whole device (stored settings applied): some protocols read other services too.
    package var config: DeviceConfig
    /// The service being set up (enabled).
    package var service: ServiceConfig
    /// The longest wait for the device per step (connecting, each answer); nil: the protocol's defaults.
    package var timeout: Duration?
    /// Lets the protocol take interfaces over while it works (RAOP streaming, AirPlay playing a URL).
    package var takeover: any TakeoverControl

    package init(config: DeviceConfig, service: ServiceConfig, timeout: Duration?, takeover: any TakeoverControl) {
        self.config = config
        self.service = service
        self.timeout = timeout
        self.takeover = takeover
    }
}

/// Thrown by a module's `setup` when its protocol needs pairing first: the facade leaves the
/// protocol out (and reports `ATVError.noCredentials` only when nothing else is left).
package struct NeedsPairing: Error {
    package let `protocol`: ATVProtocol
    package init(_ proto: ATVProtocol) { self.protocol = proto }
}

extension ProtocolSetupContext {
    /// The service's stored credentials; none (or empty) → `NeedsPairing`.
    package func requireCredentials() throws(NeedsPairing) -> String {
        guard let text = service.credentials, !text.isEmpty else { throw NeedsPairing(service.protocol) }
        return text
    }
}

/// A protocol as the facade sees it: scan handlers, `setup` and `pair`. The facade goes through
/// every module for each service of a device in turn; a module may set itself up from another
/// protocol's service (RAOP from an AirPlay-only receiver, MRP tunnelled through AirPlay 2).
package protocol ProtocolModule: SendableMetatype {
    /// What `connect` passes through to this protocol besides the context (`Void` for none).
    associatedtype Options: Sendable
    /// The protocol this module implements.
    static var `protocol`: ATVProtocol { get }
    /// The mDNS service types it claims and how their records become a service and device info.
    static var scanHandlers: [ScanHandler] { get }
    /// The protocols whose services `setup` is offered (its own, and any it can ride on).
    static var serviceProtocols: Set<ATVProtocol> { get }
    /// The interfaces this protocol provides for `context.service`, to be connected on first use;
    /// nil when this service gives it nothing. Throws `NeedsPairing` when it needs pairing
    /// first (the facade then leaves it out), any other error for a bad configuration.
    static func setup(_ context: ProtocolSetupContext, options: Options) throws -> ProtocolSetup?
    /// The handler that pairs with the device over this protocol (pyatv's `pair`).
    static func pair(_ config: DeviceConfig, options: PairingOptions) throws -> any PairingHandler
}
