// Debug lines that carry Companion frames in a form `atv log` decodes:
// "companion frame <direction> type=<n> opack=<hex of the decrypted payload>".
import ATVAuth
import Logging

enum CompanionLog {
    static let logger = Logger(label: "atv.companion")

    static func frame(_ direction: String, _ type: UInt8, _ payload: [UInt8]) {
        logger.debug("companion frame \(direction) type=\(type) opack=\(Hex.encode(payload))")
    }
}
