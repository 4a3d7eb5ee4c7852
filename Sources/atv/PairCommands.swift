import ArgumentParser
import ATV
import ATVAirPlayCore
import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct Pair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pair with a device and store the credentials.",
        discussion: """
        airplay/raop: HAP pairing for AirPlay 2 devices (features bit 38 or 48, or \
        --airplay-version 2), legacy AirPlay pairing otherwise (the device shows a PIN either way).

        dmap: we act as a Remote; enter the printed PIN on the Apple TV (Settings › Remotes).

        companion: HAP pairing over the Companion link (the device shows a PIN).

        mrp: HAP pairing over MRP (CRYPTO_PAIRING messages; the device shows a PIN).

        Examples:
          atv pair --to "Living Room" --protocol airplay
          atv pair --to "Living Room" --protocol companion --pin 1234
          atv pair --to "Apple TV 3" --protocol dmap
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    /// `--timeout` (DeviceOptions): here the wait for the device, 60 s by default (dmap: for its
    /// pairing request; the user is typing a PIN).
    var timeout: Double { device.timeout ?? 60 }
    @Option(help: "airplay, raop, dmap, companion or mrp.") var `protocol`: String
    @Option(help: "PIN shown on the device (asked for when omitted); for dmap the PIN to enter on the Apple TV.") var pin: String?
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?
    @Option(help: "dmap: our name as a Remote; companion: the name the device shows for us.") var name: String = "swift-atv"
    @Option(help: "dmap: IPv4 address of an interface to publish _touch-remote._tcp on (default: the one facing the device).")
    var publishOn: [String] = []
    @Option(help: "dmap: our pairing GUID (16 hex digits; random when omitted).") var guid: String?
    @Flag(help: "dmap: do not publish over mDNS (the device must be told our port some other way).") var noPublish = false
    @Option(help: "airplay/raop: auto (from the device's features), 1 (legacy pairing) or 2 (HAP pairing).")
    var airplayVersion: String = "auto"

    func validate() throws {
        guard AirPlayVersion(rawValue: airplayVersion) != nil else { throw ValidationError("--airplay-version must be auto, 1 or 2") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            guard let proto = ATVProtocol(key: `protocol`) else {
                throw ATVError.invalidValue("--protocol must be airplay, raop, dmap, companion or mrp (got \(`protocol`))")
            }
            let defaultPort = [ATVProtocol.companion: 49153, .mrp: 49152, .dmap: 3689][proto] ?? 7000
            let config = try await resolveDevice(device, for: proto, defaultPort: defaultPort)
            let options = PairingOptions(name: name, timeout: .seconds(timeout),
                                         airPlayVersion: AirPlayVersion(rawValue: airplayVersion) ?? .auto,
                                         guid: guid, publishOn: publishOn, publish: !noPublish)
            let handler = try ATV.pair(config, protocol: proto, options: options)
            let credentials: ATVCredentials
            do {
                if !handler.deviceProvidesPIN, let pin { try await handler.pin(pin) }
                try await handler.begin()
                if handler.deviceProvidesPIN {
                    try await handler.pin(try pin ?? Self.askPIN())
                } else {
                    print("Enter PIN \(await handler.pinToEnter ?? "") on the Apple TV (Settings › Remotes)")
                }
                if let waiting = await handler.waitingMessage { print(waiting) }
                fflush(nil)
                credentials = try await handler.finish()
            } catch {
                await handler.close()
                throw error
            }
            await handler.close()
            let storage = FileStorage(path: storage)
            var path = try storage.storeCredentials(credentials, for: proto, of: config)
            var kind = ""
            if case .hap = credentials, proto == .airplay || proto == .raop {
                // AirPlay 2 credentials serve AirPlay and RAOP alike.
                path = try storage.storeCredentials(credentials, for: proto == .airplay ? .raop : .airplay, of: config)
                kind = "AirPlay 2 HAP, "
            }
            let name = await handler.pairedDeviceName ?? config.name
            let shown: String
            switch proto {
            case .companion: shown = "Companion"
            case .mrp: shown = "MRP"
            case .dmap: shown = "DMAP"
            default: shown = "\(proto)"
            }
            print("Paired with \(name) over \(shown) (\(kind)\(credentials.masked)); credentials stored in \(path)")
        }
    }

    static func askPIN() throws -> String {
        guard isatty(0) == 1 else {
            throw ATVError.badInput("no --pin given and stdin is not a terminal: pass --pin with the PIN the device shows")
        }
        print("Enter PIN shown on the device: ", terminator: "")
        fflush(nil)
        guard let line = readLine(), !line.trimmingWhitespace().isEmpty else {
            throw ATVError.badInput("no PIN entered")
        }
        return line.trimmingWhitespace()
    }
}

struct Credentials: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List or remove stored credentials.",
        discussion: """
        Examples:
          atv credentials
          atv credentials remove AA:BB:CC:DD:EE:FF --protocol companion
        """,
        subcommands: [CredentialsList.self, CredentialsRemove.self], defaultSubcommand: CredentialsList.self)
}

struct CredentialsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored devices and credentials (masked).",
        discussion: """
        Examples:
          atv credentials list
          atv credentials list --storage ~/atv-devices.json
        """)
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let store = FileStorage(path: storage)
            let devices = try store.allSettings
            var any = false
            for d in devices {
                let ids = ATVProtocol.allCases.compactMap { p in d.protocols.identifier(for: p).map { "\(p.key)=\($0)" } }
                let creds = ATVProtocol.allCases.compactMap { p -> String? in
                    guard let c = d.protocols.credentials(for: p) else { return nil }
                    let shown = (try? ATVCredentials(parsing: c))?.masked ?? "unparseable"
                    return "  \(p.key): \(shown)"
                }
                guard !creds.isEmpty else { continue }
                any = true
                print("Device \(ids.isEmpty ? "(no identifier)" : ids.joined(separator: " "))")
                creds.forEach { print($0) }
            }
            if !any { print("No stored credentials in \(store.path)") }
        }
    }
}

struct CredentialsRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove stored credentials of a device.",
        discussion: """
        Examples:
          atv credentials remove AA:BB:CC:DD:EE:FF
          atv credentials remove AA:BB:CC:DD:EE:FF --protocol mrp
        """)
    @Argument(help: "A device identifier (any protocol's).") var id: String
    @Option(help: "Only this protocol's credentials.") var `protocol`: String?
    @Option(help: "Settings file (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    func run() async throws {
        try await runReportingErrors {
            let proto: ATVProtocol?
            if let p = `protocol` {
                guard let v = ATVProtocol(key: p) else { throw ATVError.invalidValue("--protocol must be airplay, raop, dmap, companion or mrp") }
                proto = v
            } else { proto = nil }
            let store = FileStorage(path: storage)
            var removed = 0
            try store.modify { devices in
                for i in devices.indices where devices[i].identifiers.contains(id) {
                    for p in ATVProtocol.allCases where proto == nil || proto == p {
                        if devices[i].protocols.credentials(for: p) != nil {
                            devices[i].protocols.setCredentials(nil, for: p)
                            removed += 1
                        }
                    }
                }
            }
            guard removed > 0 else { throw ATVError.deviceNotFound("no stored credentials for \(id)\(proto.map { " (\($0.key))" } ?? "") in \(store.path)") }
            print("Removed \(removed) credential\(removed == 1 ? "" : "s") of \(id) from \(store.path)")
        }
    }
}
