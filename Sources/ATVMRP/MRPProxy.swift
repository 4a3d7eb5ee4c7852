// The MRP proxy (`atv proxy mrp`): ATVAuth's `HAPProxy` driving an MRPProxySession per controller
// (the device must answer DEVICE_INFO and pair-verify within `connectTimeout`); forwarded and
// dropped messages are its traffic.
import ATVAuth
import ATVCore
import Logging

/// The MRP proxy: `MRPProxy.start(MRPProxy.Configuration(...)) { event in ... }`.
package typealias MRPProxy = HAPProxy<MRPProxySession>

extension MRPProxySession: HAPProxyProtocol {
    /// What the proxy saw go by.
    package enum Traffic: Sendable {
        /// A decrypted message: forwarded (`toDevice`/`toController`) or part of a handshake.
        case message(Direction, MRPProtocolMessage)
        /// A message the controller sent before it was verified: not forwarded.
        case dropped(MRPProtocolMessage)
    }

    static let logger = Logger(label: "atv.proxy.mrp")

    package init(configuration c: HAPProxyConfiguration<MRPProxySession>) {
        self.init(identity: c.identity, pin: c.pin, credentials: c.credentials, name: c.name)
    }

    package static func action(for output: Output) -> HAPProxyAction {
        switch output {
        case .sendToController(let b): .toController(b)
        case .sendToDevice(let b): .toDevice(b)
        case .paired(let p): .paired(p)
        case .deviceVerified: .deviceVerified
        case .controllerVerified, .controllerAuthFailed, .message, .dropped: .none
        }
    }

    package static func event(for output: Output) -> HAPProxyEvent<Traffic>? {
        switch output {
        case .sendToController, .sendToDevice: return nil
        case .paired(let p): return .controllerPaired(p)
        case .controllerVerified(let p): return .controllerVerified(String(decoding: p.identifier, as: UTF8.self))
        case .controllerAuthFailed(let e): return .controllerAuthFailed("\(e)")
        case .deviceVerified(let info): return .deviceVerified(info.name)
        case .message(let d, let m):
            if logger.logLevel <= .debug, let bytes = try? MRPCodec.encode(m) {
                logger.debug("mrp message \(d.rawValue) type=\(m.type) protobuf=\(Hex.encode(bytes))")
            }
            return .traffic(.message(d, m))
        case .dropped(let m): return .traffic(.dropped(m))
        }
    }
}
