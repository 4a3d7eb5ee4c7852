// `atv proxy`: a man in the middle for reverse engineering (pyatv's atvproxy). MRP and Companion modes
// pair with a controller using a PIN, pair-verify with the real device using stored
// credentials, forward every decrypted message both ways and log each one decoded.
import ArgumentParser
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDiscovery
import ATVMRP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sit between a controller and a device and log the decrypted traffic (atvproxy).",
        discussion: """
        Examples:
          atv proxy mrp --to "Living Room" --credentials <mrp credentials>
          atv proxy relay 7001 192.168.1.20 7000
        """,
        subcommands: [ProxyCompanion.self, ProxyMRP.self, ProxyRelay.self])
}

/// The options both HAP proxies take.
struct ProxyOptions: ParsableArguments {
    @Option(help: "Credentials for the device (default: the stored ones).") var credentials: String?
    @Option(help: "Settings file with stored credentials.") var storage: String?
    @Option(help: "PIN controllers pair with.") var pin: String = "1111"
    @Option(help: "Name to advertise (default: \"<device name> Proxy\").") var name: String?
    @Option(help: "Address to listen on.") var listen: String = "127.0.0.1"
    @Option(help: "Port to listen on (0 = any free port).") var listenPort: Int = 0
    @Option(help: "Also append the decoded messages to this file.") var log: String?
    @Flag(help: "Do not advertise the proxy over mDNS.") var noAdvertise = false
    @Option(help: "Keep the controllers that paired in this JSON file (loaded at start, saved on each pairing).") var pairings: String?

    func validate() throws {
        guard !pin.isEmpty, pin.allSatisfy(\.isNumber) else { throw ValidationError("--pin must be digits") }
        guard (0 ... 65535).contains(listenPort) else { throw ValidationError("--listen-port must be 0...65535") }
    }

    /// The device, its `proto` service (stored settings applied) and the credentials to pair-verify with.
    func target(_ device: DeviceOptions, _ proto: ATVProtocol) async throws -> (DeviceConfig, ServiceConfig, HAPCredentials) {
        var config: DeviceConfig
        if device.to == nil, let host = device.host, let port = device.port {
            config = DeviceConfig(name: host, address: host, services: [ServiceConfig(protocol: proto, identifier: host, port: port)])
        } else {
            config = try await findDevice(device)
            if let p = device.port { config.updateService(proto) { $0.port = p } }
            let store = FileStorage(path: storage)
            if config.identifier != nil { store.apply(try store.settings(for: config), to: &config) }
        }
        guard let service = config.service(proto) else { throw ATVError.noService(proto) }
        guard let text = credentials ?? service.credentials, !text.isEmpty else { throw ATVError.noCredentials(proto) }
        return (config, service, try HAPCredentials(parsing: text))
    }

    /// Advertises `service` (unless --no-advertise), runs until Ctrl-C, then stops the proxy.
    func serve(advertising service: MDNSService, stop: @escaping @Sendable () async -> Void) async {
        var responder: MDNSResponder?
        if !noAdvertise {
            do {
                responder = try await MDNSResponder.start([service], options: .init(interfaceAddresses: [listen]))
                let type = service.type.replacing(".local", with: "")
                print("Advertising \"\(printable(service.instance))\" (\(type)) on \(listen) via mDNS")
            } catch {
                print("Warning: not advertising over mDNS: \(error)")
            }
        }
        fflush(nil)
        let r = responder
        let interrupt = InterruptHandler { Task { await r?.stop(); await stop() } }
        defer { interrupt.cancel() }
        while !interrupt.interrupted { try? await Task.sleep(for: .milliseconds(100)) }
        await r?.stop()
        await stop()
    }
}

extension ProxyOptions {
    /// Runs `Session`'s proxy for `device` until Ctrl-C: pairing identity from the name, stored
    /// pairings, one log line per event (`line`), the mDNS record `advertise` makes.
    func run<Session: HAPProxyProtocol>(_ session: Session.Type, device: DeviceOptions, _ proto: ATVProtocol, label: String,
                                        line: @escaping @Sendable (HAPProxyEvent<Session.Traffic>) -> String,
                                        advertise: (_ name: String, _ identity: HAPIdentity, _ port: Int) -> MDNSService) async throws {
        let (config, service, creds) = try await target(device, proto)
        let proxyName = name ?? "\(config.name) Proxy"
        let identity = try HAPIdentity.proxy(named: proxyName)
        let sink = try ProxyLogSink(path: log)
        let store = ProxyPairings(path: pairings)
        var proxyConfig = HAPProxyConfiguration<Session>(listenHost: listen, listenPort: listenPort, deviceHost: config.address,
                                                         devicePort: service.port, credentials: creds, identity: identity, pin: pin,
                                                         name: proxyName)
        proxyConfig.controllers = try store.load()
        let proxy = try await HAPProxy<Session>.start(proxyConfig) { event in
            sink.write(line(event))
            if case .controllerPaired(let c) = event {
                do { try store.add(c) } catch { sink.write("proxy: \(error)") }
            }
        }
        print("\(label) proxy \"\(printable(proxyName))\" listening on \(listen):\(proxy.port), PIN \(pin), forwarding to \(config.address):\(service.port)")
        await serve(advertising: advertise(proxyName, identity, proxy.port), stop: { await proxy.stop() })
    }
}

struct ProxyCompanion: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "companion",
        abstract: "Companion proxy: controllers pair with it (PIN), it forwards to the device and logs every message.",
        discussion: """
        The proxy's pairing identity is derived from --name, so a controller that paired once \
        can pair-verify again after a restart (pairings themselves are kept while it runs).

        Examples:
          atv proxy companion --to "Living Room" --credentials <credentials>
          atv proxy companion --host 192.168.1.20 --credentials … --log proxy.log
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var options: ProxyOptions

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            try await options.run(CompanionProxySession.self, device: device, .companion, label: "Companion",
                                  line: { ProxyLogSink.line($0) }) { proxyName, identity, port in
                let compact = Hex.encode(identity.publicKey.prefix(6))
                let txt: [String: String] = ["rpMac": "2", "rpHN": compact, "rpFl": "0x36782", "rpHA": compact, "rpMd": "AppleTV6,2",
                                             "rpVr": "715.2", "rpAD": compact, "rpHI": compact,
                                             "rpBA": stride(from: 0, to: 12, by: 2).map { i in String(Array(compact)[i ..< i + 2]).uppercased() }.joined(separator: ":"),
                                             "rpMRtID": String(decoding: identity.identifier, as: UTF8.self)]
                return MDNSService(instance: proxyName, type: "_companion-link._tcp.local", port: UInt16(port), txt: txt,
                                   hostName: "swift-atv-proxy-\(compact).local", address: options.listen)
            }
        }
    }
}

struct ProxyMRP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mrp",
        abstract: "MRP proxy: controllers pair with it (PIN), it forwards every ProtocolMessage to the device and logs it decoded.",
        discussion: """
        DEVICE_INFO and CRYPTO_PAIRING from the controller are answered by the proxy (its own \
        handshake); the proxy sends its own DEVICE_INFO to the device and pair-verifies with the \
        credentials. Everything else is forwarded both ways. The pairing identity is derived from \
        --name, so a controller that paired once can pair-verify again after a restart.

        Examples:
          atv proxy mrp --to "Living Room" --credentials <mrp credentials>
          atv proxy mrp --host 192.168.1.20 --credentials … --log proxy.log
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var options: ProxyOptions

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            try await options.run(MRPProxySession.self, device: device, .mrp, label: "MRP",
                                  line: { ProxyLogSink.line($0) }) { proxyName, identity, port in
                let pairingID = String(decoding: identity.identifier, as: UTF8.self)
                let txt: [String: String] = ["Name": proxyName, "UniqueIdentifier": pairingID, "ModelName": "Apple TV",
                                             "SystemBuildVersion": "17K449", "AllowPairing": "YES", "BluetoothAddress": "",
                                             "LocalAirPlayReceiverPairingIdentity": pairingID]
                let compact = Hex.encode(identity.publicKey.prefix(6))
                return MDNSService(instance: proxyName, type: "_mediaremotetv._tcp.local", port: UInt16(port), txt: txt,
                                   hostName: "swift-atv-mrp-proxy-\(compact).local", address: options.listen)
            }
        }
    }
}

/// Where the proxy's decoded lines go: stderr, and a file if asked.
final class ProxyLogSink: Sendable {
    /// The file's descriptor (appending), -1 without one; open for the process's lifetime.
    let fd: Int32
    let lock = Mutex(())

    init(path: String?) throws {
        guard let path else { fd = -1; return }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ATVError.badInput("cannot write \(path)") }
    }

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        lock.withLock { _ in
            StandardStream.writeError(bytes)
            if fd >= 0 { StandardStream.write(fd, bytes) }
        }
    }

    static func line(_ event: MRPProxy.Event) -> String {
        line(event) { traffic in
            switch traffic {
            case .dropped(let m): "proxy: dropped (controller not verified) \(MRPProxySession.describe(m))"
            case .message(let d, let m): "\(d.rawValue) \(MRPProxySession.describe(m))"
            }
        }
    }

    static func line(_ event: CompanionProxy.Event) -> String {
        line(event) { d, f in "\(d.rawValue) \(CompanionProxy.describe(f))" }
    }

    /// The line of an event of either proxy; `traffic` renders what it forwarded.
    static func line<Traffic>(_ event: HAPProxyEvent<Traffic>, traffic: (Traffic) -> String) -> String {
        switch event {
        case .controllerConnected(let a): "proxy: controller connected from \(a)"
        case .controllerPaired(let c): "proxy: controller \(printable(String(decoding: c.identifier, as: UTF8.self))) paired"
        case .controllerVerified(let id): "proxy: controller \(printable(id)) verified"
        case .controllerAuthFailed(let e): "proxy: controller authentication failed: \(printable(e))"
        case .deviceVerified(let name?): "proxy: verified with the device \"\(printable(name))\""
        case .deviceVerified(nil): "proxy: verified with the device"
        case .deviceFailed(let e): "proxy: device: \(printable(e))"
        case .closed(let why): "proxy: link closed: \(printable(why))"
        case .traffic(let t): traffic(t)
        }
    }
}

struct ProxyRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "relay",
        abstract: "Forward TCP bytes between a local port and a remote host, printing a hex dump of each chunk.",
        discussion: """
        Examples:
          atv proxy relay 7001 192.168.1.20 7000
          atv stream song.flac --host 127.0.0.1 --port 7001
        """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Local port to listen on (127.0.0.1).") var localPort: Int
    @Argument(help: "Remote host.") var remoteHost: String
    @Argument(help: "Remote port.") var remotePort: Int
    func validate() throws {
        guard (0 ... 65535).contains(localPort), (1 ... 65535).contains(remotePort) else { throw ValidationError("ports must be within 0...65535") }
    }
    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            let relay = try await TCPRelay.start(localPort: localPort, remoteHost: remoteHost, remotePort: remotePort) { dir, bytes in
                StandardStream.writeError((TCPRelay.hexdump(bytes, label: dir) + "\n"))
            }
            print("Relaying 127.0.0.1:\(relay.port) -> \(remoteHost):\(remotePort)")
            fflush(nil)
            let stop = InterruptHandler { Task { await relay.stop() } }
            defer { stop.cancel() }
            while !stop.interrupted { try? await Task.sleep(for: .milliseconds(100)) }
            await relay.stop()
        }
    }
}

/// The proxy's paired controllers in a small JSON file: [{"identifier": hex, "public_key": hex}].
final class ProxyPairings: Sendable {
    let path: String?
    let lock = Mutex(())
    init(path: String?) { self.path = path }

    func load() throws(ATVError) -> [HAPPairedController] {
        guard let path, FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path),
              let list = try? JSONDecoder().decode([[String: String]].self, from: data) else {
            throw ATVError.settings("\(path) is not a proxy pairings file (a JSON list of identifier/public_key)")
        }
        return try list.map { item throws(ATVError) in
            guard let id = item["identifier"].flatMap(Hex.decode), let key = item["public_key"].flatMap(Hex.decode), key.count == 32 else {
                throw ATVError.settings("\(path): an entry lacks a hex identifier or a 32-byte hex public_key")
            }
            return HAPPairedController(identifier: id, publicKey: key)
        }
    }

    func add(_ c: HAPPairedController) throws {
        guard let path else { return }
        try lock.withLock { _ in
            var list = try load()
            list.removeAll { $0.identifier == c.identifier }
            list.append(c)
            let json = list.map { ["identifier": Hex.encode($0.identifier), "public_key": Hex.encode($0.publicKey)] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(json)
            do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                throw ATVError.settings("cannot write \(path): \(PathName.describe(error))")
            }
        }
    }
}
