// `pair` for Companion: HAP pair-setup with the PIN the device shows, over Companion frames; then
// a pair-verify on a fresh connection so nothing unusable is returned.
import ATVAuth
import ATVCore

public actor CompanionPairingHandler: PairingHandler {
    public nonisolated let pairingProtocol = ATVProtocol.companion
    public nonisolated let deviceProvidesPIN = true
    public var pinToEnter: String? { nil }
    public var waitingMessage: String? { nil }
    public var pairedDeviceName: String? { nil }
    public private(set) var hasPaired = false

    private let host: String
    private let port: Int
    private let options: PairingOptions
    private var pinCode: String?
    private var client: CompanionClient?

    public init(host: String, service: ServiceConfig, options: PairingOptions) {
        self.host = host
        port = service.port
        self.options = options
    }

    public func begin() async throws {
        client = try await CompanionClient.connect(host: host, port: port, timeout: options.stepTimeout)
    }

    public func pin(_ pin: String) async throws { pinCode = pin }

    public func finish() async throws -> ATVCredentials {
        guard let pinCode else { throw ATVError.badInput("no PIN given: pass the PIN the device shows") }
        guard let client else { throw ATVError.badInput("pairing was not begun") }
        let hap = try await client.pair(pin: pinCode, name: options.name, timeout: min(options.timeout, .seconds(60)))
        await client.close()
        self.client = nil
        let check = try await CompanionClient.connect(host: host, port: port, timeout: options.stepTimeout)
        do { try await check.verify(hap) } catch {
            await check.close()
            throw error
        }
        await check.close()
        hasPaired = true
        return .hap(hap)
    }

    public func close() async {
        await client?.close()
        client = nil
    }
}
