import ArgumentParser
import ATV
import ATVAirPlayCore
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDiscovery
import ATVMRP
import ATVRAOP
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct Pair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pair with a device and store the credentials.",
        discussion: """
        airplay/raop: HAP pairing for AirPlay 2 devices (features bit 38 or 48, or --airplay-version 2),
          legacy AirPlay pairing otherwise (the device shows a PIN either way).
        dmap: we act as a Remote; enter the printed PIN on the Apple TV (Settings › Remotes).
        companion: HAP pairing over the Companion link (the device shows a PIN).
        mrp: HAP pairing over MRP (CRYPTO_PAIRING messages; the device shows a PIN).
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
            switch proto {
            case .companion:
                try await pairCompanion()
            case .mrp:
                try await pairMRP()
            case .airplay, .raop:
                try await pairLegacy(proto)
            case .dmap:
                try await pairDMAP()
            }
        }
    }

    func pairLegacy(_ proto: ATVProtocol) async throws {
        var config = try await resolveDevice(device, for: proto, defaultPort: 7000)
        guard let service = config.service(proto) else { throw ATVError.noService(proto) }
        // pyatv's rule: HAP pairing when the AirPlay version is 2 (features bit 38 or 48).
        let airplay = config.service(.airplay)
        let route = AirPlayRoute.choose(preference: AirPlayVersion(rawValue: airplayVersion) ?? .auto, featureTexts: [
            service.property("ft"), service.property("features"), airplay?.property("ft"), airplay?.property("features"),
        ])
        if route.version == .v2 {
            try await pairHAP(proto, config: config, service: service)
            return
        }
        let http = try await PairingHTTPClient.connect(host: config.address, port: service.port, timeout: min(timeout, 15))
        defer { http.close() }
        let start = try await http.send(LegacyPairSetupClient.pinStartRequest)
        guard start.status == 200 else { throw ATVError.httpError(status: start.status, "/pair-pin-start: the device does not offer PIN pairing") }
        let thePIN = try pin ?? Self.askPIN()
        var client = LegacyPairSetupClient(pin: thePIN)
        var request = try client.start()
        var result: LegacyPairingResult?
        while result == nil {
            let r = try await http.send(request)
            switch try client.handle(status: r.status, body: r.body) {
            case .send(let next): request = next
            case .paired(let p): result = p
            }
        }
        guard let result else { return }
        // Verify at once, so nothing unusable is stored.
        var verify = LegacyPairVerifyClient(credentials: result.credentials, deviceLTPK: result.deviceLTPK)
        var vreq = try verify.start()
        verifying: while true {
            let r = try await http.send(vreq)
            switch try verify.handle(status: r.status, body: r.body) {
            case .send(let next): vreq = next
            case .verified: break verifying
            }
        }
        let creds = ATVCredentials.legacy(result.credentials)
        _ = config.setCredentials(proto, creds.stringValue)
        let path = try store(config, proto: proto, credentials: creds)
        print("Paired with \(config.name) over \(proto) (\(creds.masked)); credentials stored in \(path)")
    }

    /// AirPlay 2: `/pair-pin-start`, HAP pair-setup M1–M6 (`X-Apple-HKP: 3`), then a pair-verify on a
    /// fresh connection so nothing unusable is stored. The credentials serve AirPlay and RAOP (AirPlay 2
    /// audio pair-verifies with them).
    func pairHAP(_ proto: ATVProtocol, config: DeviceConfig, service: ServiceConfig) async throws {
        var config = config
        let limit = Duration.seconds(min(timeout, 15))
        let pairing = try await AirPlay2PINPairing.connect(host: config.address, port: service.port, clientName: name, timeout: limit)
        let hap: HAPCredentials
        do {
            try await pairing.begin()
            let thePIN = try pin ?? Self.askPIN()
            hap = try await pairing.finish(pin: thePIN)
        } catch {
            pairing.close()
            throw error
        }
        let check = try await AirPlay2Connection.connect(
            host: config.address, port: service.port,
            options: AirPlay2ConnectionOptions(requestTimeout: limit, credentials: hap, clientName: name, requestInfo: false))
        await check.close()
        let creds = ATVCredentials.hap(hap)
        _ = config.setCredentials(proto, creds.stringValue)
        var path = try store(config, proto: proto, credentials: creds)
        let other: ATVProtocol = proto == .airplay ? .raop : .airplay
        path = try store(config, proto: other, credentials: creds)
        print("Paired with \(config.name) over \(proto) (AirPlay 2 HAP, \(creds.masked)); credentials stored in \(path)")
    }

    /// HAP pair-setup with the PIN the device shows, over Companion frames; then pair-verify on a
    /// fresh connection so nothing unusable is stored.
    func pairCompanion() async throws {
        var config = try await resolveDevice(device, for: .companion, defaultPort: 49153)
        guard let service = config.service(.companion) else { throw ATVError.noService(.companion) }
        let limit = Duration.seconds(min(timeout, 60))
        let client = try await CompanionClient.connect(host: config.address, port: service.port, timeout: .seconds(min(timeout, 15)))
        let thePIN: String
        do { thePIN = try pin ?? Self.askPIN() } catch { await client.close(); throw error }
        let hap: HAPCredentials
        do { hap = try await client.pair(pin: thePIN, name: name, timeout: limit) } catch {
            await client.close()
            throw error
        }
        await client.close()
        let check = try await CompanionClient.connect(host: config.address, port: service.port, timeout: .seconds(min(timeout, 15)))
        do { try await check.verify(hap) } catch {
            await check.close()
            throw error
        }
        await check.close()
        let creds = ATVCredentials.hap(hap)
        _ = config.setCredentials(.companion, creds.stringValue)
        let path = try store(config, proto: .companion, credentials: creds)
        print("Paired with \(config.name) over Companion (\(creds.masked)); credentials stored in \(path)")
    }

    /// HAP pair-setup with the PIN the device shows, over MRP CRYPTO_PAIRING messages; then the
    /// full MRP handshake with pair-verify on a fresh connection, so nothing unusable is stored.
    func pairMRP() async throws {
        var config = try await resolveDevice(device, for: .mrp, defaultPort: 49152)
        guard let service = config.service(.mrp) else { throw ATVError.noService(.mrp) }
        let connectLimit = Duration.seconds(min(timeout, 15))
        let conn = try await MRPConnection.connect(host: config.address, port: service.port, timeout: connectLimit)
        let hap: HAPCredentials
        do {
            let thePIN = try pin ?? Self.askPIN()
            hap = try await conn.pairSetup(pin: thePIN, name: name, timeout: .seconds(min(timeout, 60)))
        } catch {
            await conn.close()
            throw error
        }
        await conn.close()
        let check = MRPService(host: config.address, port: service.port, credentials: hap,
                               options: MRPService.Options(name: name, connectTimeout: connectLimit, heartbeat: nil))
        do { try await check.connect() } catch {
            await check.close()
            throw error
        }
        await check.close()
        let creds = ATVCredentials.hap(hap)
        _ = config.setCredentials(.mrp, creds.stringValue)
        let path = try store(config, proto: .mrp, credentials: creds)
        print("Paired with \(config.name) over MRP (\(creds.masked)); credentials stored in \(path)")
    }

    func pairDMAP() async throws {
        let config = try await resolveDevice(device, for: .dmap, defaultPort: 3689)
        let handler = try DMAPPairingHandler(guid: guid ?? DMAPPairing.randomGUID(), pin: pin ?? String(format: "%04d", Int.random(in: 0 ... 9999)), name: name)
        let paired = AsyncStream<String>.makeStream()
        let server = try PairingHTTPServer.start(host: "0.0.0.0") { req in
            let r = handler.handle(method: req.requestLine?.method ?? "", target: req.requestLine?.target ?? "")
            if let who = r.pairedWith { paired.continuation.yield(who) }
            return .init(status: r.status, body: r.body)
        }
        defer { server.stop() }
        var responder: MDNSResponder?
        if !noPublish {
            let addrs = publishOn.isEmpty ? [try Self.localAddress(facing: config.address)] : publishOn
            var services: [MDNSService] = []
            for a in addrs {
                guard let instance = DMAPPairing.serviceInstanceName(ipv4: a) else { throw ATVError.invalidValue("--publish-on \(a) is not an IPv4 address") }
                services.append(MDNSService(instance: instance, type: "_touch-remote._tcp.local", port: UInt16(server.port),
                                            txt: DMAPPairing.txtRecord(name: name, guid: handler.guid),
                                            hostName: "swift-atv-\(handler.guid.prefix(6).lowercased()).local", address: a))
            }
            responder = try await MDNSResponder.start(services, options: .init(interfaceAddresses: addrs))
        }
        print("Enter PIN \(handler.pin ?? "") on the Apple TV (Settings › Remotes)")
        print("Waiting up to \(Int(timeout)) s for the Apple TV on port \(server.port)")
        fflush(nil)
        let who: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask { for await w in paired.stream { return w }; return nil }
            group.addTask { try? await Task.sleep(for: .seconds(timeout)); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            paired.continuation.finish()
            return first
        }
        await responder?.stop()
        guard let who else { throw ATVError.timeout("the Apple TV did not send a pairing request within \(Int(timeout)) s") }
        let creds = handler.credentials
        var cfg = config
        _ = cfg.setCredentials(.dmap, creds.stringValue)
        let path = try store(cfg, proto: .dmap, credentials: creds)
        print("Paired with \(who) over DMAP (\(creds.masked)); credentials stored in \(path)")
    }

    func store(_ config: DeviceConfig, proto: ATVProtocol, credentials: ATVCredentials) throws -> String {
        let storage = FileStorage(path: storage)
        var settings = try storage.settings(for: config)
        settings.fill(from: config, overwrite: false)
        settings.protocols.setCredentials(credentials.stringValue, for: proto)
        try storage.store(settings)
        try storage.save()
        return storage.path
    }

    static func askPIN() throws -> String {
        guard isatty(0) == 1 else {
            throw ATVError.badInput("no --pin given and stdin is not a terminal: pass --pin with the PIN the device shows")
        }
        print("Enter PIN shown on the device: ", terminator: "")
        fflush(nil)
        guard let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ATVError.badInput("no PIN entered")
        }
        return line.trimmingCharacters(in: .whitespaces)
    }

    /// The local IPv4 address the kernel would use to reach `host` (no packet is sent).
    static func localAddress(facing host: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw ATVError.connectionFailed("socket()") }
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(9).bigEndian)
        guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { throw ATVError.invalidValue("\(host) is not an IPv4 address") }
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw ATVError.connectionFailed("no route to \(host)") }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        var buf = [CChar](repeating: 0, count: 16)
        inet_ntop(AF_INET, &local.sin_addr, &buf, 16)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

struct Credentials: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List or remove stored credentials.",
        subcommands: [CredentialsList.self, CredentialsRemove.self], defaultSubcommand: CredentialsList.self)
}

struct CredentialsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored devices and credentials (masked).")
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
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove stored credentials of a device.")
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
