// `pair` for Companion: HAP pair-setup with the PIN the device shows, over Companion frames; then
// a pair-verify on a fresh connection so nothing unusable is returned.
import ATVAuth
import ATVCore

/// The Companion pairing handler `pair` returns.
package typealias CompanionPairingHandler = HAPPINPairingHandler<CompanionClient>

extension HAPPINPairingHandler where Connection == CompanionClient {
    package init(companionHost host: String, service: ServiceConfig, options: PairingOptions) {
        let port = service.port
        self.init(protocol: .companion, steps: Steps(
            connect: { try await CompanionClient.connect(host: host, port: port, timeout: options.stepTimeout) },
            pairSetup: { client, pin in
                try await client.pair(pin: pin, name: options.name, timeout: min(options.timeout, .seconds(60)))
            },
            close: { await $0.close() },
            verify: { hap in
                let check = try await CompanionClient.connect(host: host, port: port, timeout: options.stepTimeout)
                do { try await check.verify(hap) } catch {
                    await check.close()
                    throw error
                }
                await check.close()
            }))
    }
}
