// The Companion proxy (`atv proxy companion`): ATVAuth's `HAPProxy` driving a
// CompanionProxySession per controller; forwarded frames are its traffic (one decoded line each).
import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The Companion proxy: `CompanionProxy.start(CompanionProxy.Configuration(...)) { event in ... }`.
package typealias CompanionProxy = HAPProxy<CompanionProxySession>

extension HAPProxyConfiguration where Session == CompanionProxySession {
    /// A Companion proxy listening on `listenHost:listenPort` (0: any free port) for the device at
    /// `deviceHost:devicePort`, which it pair-verifies with `credentials`.
    package init(listenHost: String = "127.0.0.1", listenPort: Int = 0, deviceHost: String, devicePort: Int,
                credentials: HAPCredentials, identity: HAPIdentity, pin: String = "1111", connectTimeout: Duration = .seconds(10)) {
        self.init(listenHost: listenHost, listenPort: listenPort, deviceHost: deviceHost, devicePort: devicePort,
                  credentials: credentials, identity: identity, pin: pin, name: "", connectTimeout: connectTimeout)
    }
}

extension CompanionProxySession: HAPProxyProtocol {
    /// A forwarded frame and its direction.
    package typealias Traffic = (Direction, CompanionFrame)

    static let logger = Logger(label: "atv.proxy.companion")

    package init(configuration c: HAPProxyConfiguration<CompanionProxySession>) {
        self.init(identity: c.identity, pin: c.pin, credentials: c.credentials)
    }

    package static func action(for output: Output) -> HAPProxyAction {
        switch output {
        case .sendToController(let b): .toController(b)
        case .sendToDevice(let b): .toDevice(b)
        case .paired(let p): .paired(p)
        case .deviceVerified: .deviceVerified
        case .controllerVerified, .controllerAuthFailed, .forwarded: .none
        }
    }

    package static func event(for output: Output) -> HAPProxyEvent<Traffic>? {
        switch output {
        case .sendToController, .sendToDevice: return nil
        case .paired(let p): return .controllerPaired(p)
        case .controllerVerified(let p): return .controllerVerified(String(decoding: p.identifier, as: UTF8.self))
        case .controllerAuthFailed(let e): return .controllerAuthFailed("\(e)")
        case .deviceVerified: return .deviceVerified(nil)
        case .forwarded(let d, let f):
            logger.debug("companion frame \(d.rawValue) type=\(f.type) opack=\(Hex.encode(f.payload))")
            return .traffic((d, f))
        }
    }
}

extension HAPProxy where Session == CompanionProxySession {
    /// One line for a forwarded frame: its type and, for OPACK frames, the decoded message.
    package static func describe(_ frame: CompanionFrame) -> String {
        let type = CompanionFrameType(rawValue: frame.type).map { "\($0)" } ?? String(cFormat: "0x%02x", frame.type)
        guard CompanionFrameType(rawValue: frame.type)?.isOPACK == true else {
            return "\(type) \(frame.payload.count) bytes"
        }
        guard let value = try? OPACK.decode(frame.payload) else { return "\(type) undecodable \(Hex.encode(frame.payload.prefix(64)))" }
        if let m = try? CompanionMessage(decoding: frame.payload) {
            return "\(type) \(m.kind) \(m.identifier ?? "-") x=\(m.xid.map(String.init) ?? "-") \(m.content)" + (m.errorMessage.map { " error=\($0)" } ?? "")
        }
        return "\(type) \(value)"
    }
}
