/// Every error swift-atv throws. Each case carries what a user needs to act on it; `description`
/// is one line, suitable for the CLI.
public enum ATVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No protocol on this device implements the feature.
    case notSupported(FeatureName)
    /// The device configuration has no service for the protocol.
    case noService(ATVProtocol)
    /// A value outside its allowed range (e.g. volume outside 0...100).
    case invalidValue(String)
    /// The operation cannot be done now (e.g. a second stream to the same device).
    case invalidState(String)
    /// The facade was closed.
    case blocked
    case connectionFailed(String)
    case connectionLost(String)
    case timeout(String)
    case pairingFailed(String)
    case authenticationFailed(String)
    case noCredentials(ATVProtocol)
    case invalidCredentials(String)
    case deviceNotFound(String)
    case deviceIdMissing
    /// The peer answered with something we cannot parse or accept.
    case protocolError(String)
    case httpError(status: Int, String)
    case playbackError(String)
    case invalidConfig(String)
    case settings(String)
    /// An input (file, URL, stdin) that cannot be opened or decoded.
    case badInput(String)
    case notImplemented(String)

    public var description: String {
        switch self {
        case .notSupported(let f): "\(f) is not supported by this device (no connected protocol implements it)"
        case .noService(let p): "the device has no \(p) service"
        case .invalidValue(let s): "invalid value: \(s)"
        case .invalidState(let s): s
        case .blocked: "the device connection is closed"
        case .connectionFailed(let s): "connection failed: \(s)"
        case .connectionLost(let s): "connection lost: \(s)"
        case .timeout(let s): "timed out: \(s)"
        case .pairingFailed(let s): "pairing failed: \(s)"
        case .authenticationFailed(let s): "authentication failed: \(s)"
        case .noCredentials(let p): "no credentials for \(p): pair first with `atv pair --protocol \(p.key)`"
        case .invalidCredentials(let s): "invalid credentials: \(s)"
        case .deviceNotFound(let s): "device not found: \(s)"
        case .deviceIdMissing: "the device has no identifier"
        case .protocolError(let s): "protocol error: \(s)"
        case .httpError(let status, let s): "device answered \(status): \(s)"
        case .playbackError(let s): "playback failed: \(s)"
        case .invalidConfig(let s): "invalid configuration: \(s)"
        case .settings(let s): "settings: \(s)"
        case .badInput(let s): s
        case .notImplemented(let s): "\(s) is not implemented yet"
        }
    }
}

extension ATVError {
    /// The same error with what was being done in front of its text (kind and exit status kept).
    package func context(_ what: String) -> ATVError {
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
