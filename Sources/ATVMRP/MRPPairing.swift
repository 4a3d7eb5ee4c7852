// `pair` for MRP: HAP pair-setup with the PIN the device shows, over CRYPTO_PAIRING messages; then
// the full MRP handshake with pair-verify on a fresh connection, so nothing unusable is returned.
import ATVAuth
import ATVCore

public actor MRPPairingHandler: PairingHandler {
    public nonisolated let pairingProtocol = ATVProtocol.mrp
    public nonisolated let deviceProvidesPIN = true
    public var pinToEnter: String? { nil }
    public var waitingMessage: String? { nil }
    public var pairedDeviceName: String? { nil }
    public private(set) var hasPaired = false

    private let host: String
    private let port: Int
    private let options: PairingOptions
    private var pinCode: String?
    private var connection: MRPConnection?

    public init(host: String, service: ServiceConfig, options: PairingOptions) {
        self.host = host
        port = service.port
        self.options = options
    }

    public func begin() async throws {
        connection = try await MRPConnection.connect(host: host, port: port, timeout: options.stepTimeout)
    }

    public func pin(_ pin: String) async throws { pinCode = pin }

    public func finish() async throws -> ATVCredentials {
        guard let pinCode else { throw ATVError.badInput("no PIN given: pass the PIN the device shows") }
        guard let connection else { throw ATVError.badInput("pairing was not begun") }
        let hap = try await connection.pairSetup(pin: pinCode, name: options.name, timeout: min(options.timeout, .seconds(60)))
        await connection.close()
        self.connection = nil
        let check = MRPService(host: host, port: port, credentials: hap,
                               options: MRPService.Options(name: options.name, connectTimeout: options.stepTimeout, heartbeat: nil))
        do { try await check.connect() } catch {
            await check.close()
            throw error
        }
        await check.close()
        hasPaired = true
        return .hap(hap)
    }

    public func close() async {
        await connection?.close()
        connection = nil
    }
}
