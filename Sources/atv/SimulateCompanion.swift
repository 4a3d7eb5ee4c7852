import ArgumentParser
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct SimulateCompanion: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "companion",
        abstract: "A virtual Apple TV's Companion service: PIN pairing, pair-verify, apps, power, buttons.",
        usage: "atv simulate companion [<options>]",
        discussion: """
        Pairings are kept while it runs. Prints one line per pairing, verification and request.

        Examples:
          atv simulate companion --port 49153 --pin 1234
          atv pair --host 127.0.0.1 --protocol companion --pin 1234
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "TCP port (0 = any free port).") var port: Int = 0
    @Option(help: "The PIN pairing expects (what a real device shows on screen).") var pin: String = "1111"
    @Option(help: "Name of the device.") var name: String = "swift-atv Apple TV"
    @Option(help: "Device id (MAC style), rpBA in the TXT record.") var deviceId: String = "AA:BB:CC:DD:EE:01"
    @Option(help: "The accessory's pairing identifier (default: a random UUID).") var pairingId: String?
    @Flag(help: "Do not advertise _companion-link._tcp over mDNS on 127.0.0.1.") var noAdvertise = false

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard !pin.isEmpty, pin.allSatisfy(\.isNumber) else { throw ValidationError("--pin must be digits") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            var config = VirtualCompanion.Configuration(port: port, name: name, deviceID: deviceId.uppercased(), pin: pin)
            if let pairingId { config.identity = HAPIdentity(identifier: pairingId) }
            let device = try await VirtualCompanion.start(config)
            print("Virtual Companion device \"\(name)\" listening on 127.0.0.1:\(device.port), PIN \(pin), pairing id \(String(decoding: config.identity.identifier, as: UTF8.self))")
            var advertiser: MDNSResponder?
            if !noAdvertise {
                do {
                    advertiser = try await MDNSResponder.start(device.mdnsServices(), options: .init(interfaceAddresses: ["127.0.0.1"]))
                    print("Advertising \"\(name)\" (_companion-link._tcp) on 127.0.0.1 via mDNS")
                } catch {
                    print("Warning: not advertising over mDNS: \(error)")
                }
            }
            fflush(nil)
            let responder = advertiser
            let stop = InterruptHandler { Task { await responder?.stop(); await device.stop() } }
            defer { stop.cancel() }
            var seen = VirtualCompanion.Report()
            while !stop.interrupted {
                try? await Task.sleep(for: .milliseconds(100))
                let r = device.report
                for line in companionReportLines(r, since: seen) { print(line) }
                if r != seen { fflush(nil) }
                seen = r
            }
            await responder?.stop()
            await device.stop()
        }
    }
}
