// `pair` for MRP: HAP pair-setup with the PIN the device shows, over CRYPTO_PAIRING messages; then
// the full MRP handshake with pair-verify on a fresh connection, so nothing unusable is returned.
import ATVAuth
import ATVCore

/// The MRP pairing handler `pair` returns.
package typealias MRPPairingHandler = HAPPINPairingHandler<MRPConnection>

extension HAPPINPairingHandler where Connection == MRPConnection {
    package init(mrpHost host: String, service: ServiceConfig, options: PairingOptions) {
        let port = service.port
        self.init(protocol: .mrp, steps: Steps(
            connect: { try await MRPConnection.connect(host: host, port: port, timeout: options.stepTimeout) },
            pairSetup: { connection, pin in
                try await connection.pairSetup(pin: pin, name: options.name, timeout: min(options.timeout, .seconds(60)))
            },
            close: { await $0.close() },
            verify: { hap in
                let check = MRPService(host: host, port: port, credentials: hap,
                                       options: MRPService.Options(name: options.name, connectTimeout: options.stepTimeout,
                                                                   heartbeat: nil))
                do { try await check.connect() } catch {
                    await check.close()
                    throw error
                }
                await check.close()
            }))
    }
}
