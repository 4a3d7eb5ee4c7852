import ATVCore

extension ATVError {
    /// The kinds of error a decoder or state machine may report for bytes it cannot accept. Fuzz
    /// tests assert this: garbage is never reported as, say, a timeout, a lost connection or an
    /// unimplemented feature, and the message is not empty.
    public var isMalformedInput: Bool {
        switch self {
        case .protocolError(let m), .badInput(let m), .invalidValue(let m), .authenticationFailed(let m),
             .pairingFailed(let m), .invalidCredentials(let m):
            return !m.isEmpty
        default:
            return false
        }
    }
}
