import ATVCore

extension ATVError {
    var isProtocolError: Bool {
        if case .protocolError = self { return true }
        return false
    }
}
