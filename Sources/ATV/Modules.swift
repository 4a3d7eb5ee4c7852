// The protocol modules the facade wires: each exposes its scan handlers, `setup` and `pair`
// (`ProtocolModule`, ATVAuth); here they are listed once, in the order `connect` offers a
// device's services to them.
import ATVAirPlay
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDMAP
import ATVMRP
import ATVRAOP

/// One protocol module with the options `connect` gives it.
struct ModuleEntry {
    let serviceProtocols: Set<ATVProtocol>
    let setup: (ProtocolSetupContext) throws -> ProtocolSetup?

    init<M: ProtocolModule>(_ module: M.Type, options: M.Options) {
        serviceProtocols = M.serviceProtocols
        setup = { try M.setup($0, options: options) }
    }
}

package enum ProtocolModules {
    /// Every protocol module. AirPlay comes before RAOP and MRP, which may set themselves up from
    /// its service (audio to an AirPlay-only receiver, the MRP tunnel).
    package static let all: [any ProtocolModule.Type] = [
        AirPlayProtocol.self, RAOPProtocol.self, MRPProtocol.self, CompanionProtocol.self, DMAPProtocol.self,
    ]

    /// `all`, each with its part of `options`.
    static func forConnect(_ options: ConnectOptions, tunnelMode: MRPTunnel) -> [ModuleEntry] {
        [
            ModuleEntry(AirPlayProtocol.self, options: ()),
            ModuleEntry(RAOPProtocol.self, options: RAOPSetupOptions(raop: options.raop, airPlayVersion: options.airPlayVersion)),
            ModuleEntry(MRPProtocol.self, options: tunnelMode),
            ModuleEntry(CompanionProtocol.self, options: ()),
            ModuleEntry(DMAPProtocol.self, options: ()),
        ]
    }
}

/// Takeover for a protocol of `device` without keeping the device alive (the protocol's service
/// is owned by the device).
struct WeakTakeover: TakeoverControl {
    private let box: Box
    private final class Box: Sendable {
        weak let device: AppleTV?
        init(_ device: AppleTV) { self.device = device }
    }

    init(_ device: AppleTV) { box = Box(device) }

    func takeover(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>) throws {
        try box.device?.takeoverControl.takeover(proto, interfaces: interfaces)
    }

    func release(_ proto: ATVProtocol, interfaces: Set<InterfaceKind>) {
        box.device?.takeoverControl.release(proto, interfaces: interfaces)
    }
}

/// Pair with `config`'s device over `proto` (pyatv's `pyatv.pair`): returns the handler to drive,
/// `begin()` → `pin(_:)` → `finish()` → `close()`. The credentials `finish()` returns are already
/// verified; store them with `FileStorage.storeCredentials(_:for:of:)`. AirPlay 2 credentials
/// serve both AirPlay and RAOP.
public func pair(_ config: DeviceConfig, protocol proto: ATVProtocol,
                 options: PairingOptions = PairingOptions()) throws -> any PairingHandler {
    guard let module = ProtocolModules.all.first(where: { $0.protocol == proto }) else { throw ATVError.noService(proto) }
    return try module.pair(config, options: options)
}
