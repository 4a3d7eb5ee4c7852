import ATVCore

/// The MRP connection sequence as data: the connection shell executes the steps in order.
package enum MRPHandshake {
    package enum Step: Sendable, Equatable {
        /// Send and wait for the reply with the same correlation key.
        case sendAndWait(MRPProtocolMessage)
        /// Send without waiting.
        case send(MRPProtocolMessage)
        /// Run HAP pair-verify over CRYPTO_PAIRING, then encrypt the connection.
        case pairVerify
    }

    /// DEVICE_INFO (must be first), pair-verify if there are credentials, SET_CONNECTION_STATE,
    /// CLIENT_UPDATES_CONFIG, GET_KEYBOARD_SESSION.
    package static func steps(_ client: MRPMessages.ClientInfo, hasCredentials: Bool) -> [Step] {
        var steps: [Step] = [.sendAndWait(MRPMessages.deviceInfo(client))]
        if hasCredentials { steps.append(.pairVerify) }
        steps.append(.send(MRPMessages.setConnectionState(.connected)))
        steps.append(.sendAndWait(MRPMessages.clientUpdatesConfig()))
        steps.append(.sendAndWait(MRPMessages.getKeyboardSession()))
        return steps
    }

    /// Seconds between GENERIC heartbeats on a direct connection (none in the AirPlay tunnel).
    package static let heartbeatInterval: Double = 30
    /// Default wait for a reply.
    package static let replyTimeout: Double = 5
}

/// Request/response correlation: a reply carries the request's `identifier`; messages
/// without one (e.g. CRYPTO_PAIRING replies) are matched by type.
package enum MRPCorrelation {
    package static func key(_ message: MRPProtocolMessage) -> String {
        if message.hasIdentifier, !message.identifier.isEmpty { return message.identifier }
        return "type_\(message.type.rawValue)"
    }

    /// The key a request will be answered with, after giving it an identifier if it should have one.
    /// CRYPTO_PAIRING requests keep no identifier (their replies have none).
    package static func prepare(_ request: inout MRPProtocolMessage, identifier: String) -> String {
        if request.type != .cryptoPairing { request.identifier = identifier }
        return key(request)
    }
}
