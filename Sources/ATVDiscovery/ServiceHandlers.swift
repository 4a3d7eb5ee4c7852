import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The mDNS service types swift-atv asks for.
package enum ServiceType {
    package static let mrp = "_mediaremotetv._tcp.local"
    package static let dmap = "_touch-able._tcp.local"
    package static let homeSharing = "_appletv-v2._tcp.local"
    package static let hscp = "_hscp._tcp.local"
    package static let airplay = "_airplay._tcp.local"
    package static let companion = "_companion-link._tcp.local"
    package static let raop = "_raop._tcp.local"
    package static let airport = "_airport._tcp.local"
    package static let deviceInfo = "_device-info._tcp.local"
    package static let sleepProxy = "_sleep-proxy._udp.local"
    package static let touchRemote = "_touch-remote._tcp.local"

    /// Every type a scan asks for, protocols first.
    package static let scanned = [mrp, dmap, homeSharing, hscp, airplay, companion, raop, airport, deviceInfo, sleepProxy]
}

/// One service instance found in responses.
package struct ServiceRecord: Sendable, Equatable {
    package var type: String
    /// The instance part of the name ("Kitchen" of "Kitchen._airplay._tcp.local").
    package var instance: String
    package var port: Int
    package var address: String?
    package var properties: [String: String]
    package init(type: String, instance: String, port: Int, address: String?, properties: [String: String]) {
        self.type = type
        self.instance = instance
        self.port = port
        self.address = address
        self.properties = properties
    }
}

/// Turns service records into device configurations: one per address, services merged.
package enum DeviceBuilder {
    /// What one handler learns from one service.
    struct Contribution {
        var name: String?
        var service: ServiceConfig?
        var info = DeviceInfo()
    }

    /// Splits "Instance._type._tcp.local" into (instance, type).
    package static func split(_ fullName: String) -> (instance: String, type: String)? {
        for t in ServiceType.scanned + [ServiceType.touchRemote] {
            let suffix = "." + t
            if fullName.lowercased().hasSuffix(suffix.lowercased()), fullName.count > suffix.count {
                return (String(fullName.dropLast(suffix.count)), t)
            }
        }
        return nil
    }

    /// Service records from a set of DNS records; `sourceAddress` is used when no A record names
    /// an address. Link-local addresses are skipped.
    package static func serviceRecords(from records: [DNSRecord], sourceAddress: String?) -> [ServiceRecord] {
        var instances: [String] = []           // full names, in order seen
        var srv: [String: (port: Int, target: String)] = [:]
        var txt: [String: [String: String]] = [:]
        var addresses: [String: String] = [:]
        for r in records {
            let key = r.name.lowercased()
            switch r.data {
            case .ptr(let target):
                if r.name.hasPrefix("_"), split(target) != nil, !instances.contains(where: { $0.lowercased() == target.lowercased() }) {
                    instances.append(target)
                }
            case .srv(_, _, let port, let target):
                srv[key] = (Int(port), target)
                if let full = split(r.name).map({ _ in r.name }), !instances.contains(where: { $0.lowercased() == key }) {
                    instances.append(full)
                }
            case .txt(let strings):
                txt[key] = TXTProperties.decode(strings)
            case .a(let ip):
                if !ip.hasPrefix("169.254.") { addresses[key] = addresses[key] ?? ip }
            default: break
            }
        }
        return instances.compactMap { full in
            guard let (instance, type) = split(full) else { return nil }
            let key = full.lowercased()
            let s = srv[key]
            let address = s.flatMap { addresses[$0.target.lowercased()] } ?? sourceAddress
            return ServiceRecord(type: type, instance: instance, port: s?.port ?? 0, address: address, properties: txt[key] ?? [:])
        }
    }

    /// Devices from service records, grouped by address, in order of first appearance.
    package static func devices(from services: [ServiceRecord]) -> [DeviceConfig] {
        var order: [String] = []
        var byAddress: [String: [ServiceRecord]] = [:]
        for s in services {
            guard let a = s.address else { continue }
            if byAddress[a] == nil { order.append(a) }
            byAddress[a, default: []].append(s)
        }
        return order.compactMap { device(address: $0, services: byAddress[$0]!) }
    }

    static func device(address: String, services: [ServiceRecord]) -> DeviceConfig? {
        let airplayTXT = services.first { $0.type == ServiceType.airplay }?.properties ?? [:]
        var names: [ATVProtocol: String] = [:]
        var info = DeviceInfo()
        var config = DeviceConfig(name: "", address: address)
        var deviceInfoModel: DeviceModel = .unknown
        var protocolServices: [ServiceRecord] = []
        for s in services {
            switch s.type {
            case ServiceType.deviceInfo:
                if let m = prop(s.properties, "model") { deviceInfoModel = DeviceTables.model(m) }
                continue
            case ServiceType.airport:
                if let wama = prop(s.properties, "wama") { info.merge(airportInfo(wama)) }
                continue
            case ServiceType.sleepProxy:
                continue
            default: break
            }
            guard let c = contribution(s, airplayTXT: airplayTXT) else { continue }
            protocolServices.append(s)
            info.merge(c.info)
            if let svc = c.service {
                config.addService(svc)
                if let n = c.name, names[svc.protocol] == nil { names[svc.protocol] = n }
            }
        }
        guard !config.services.isEmpty else { return nil }
        // DMAP: a Home Sharing id (hG) from any of its records makes pairing optional.
        config.updateService(.dmap) { if $0.credentials != nil { $0.pairing = .optional } }
        if deviceInfoModel != .unknown { info.model = deviceInfoModel }
        if info.operatingSystem == .unknown { info.operatingSystem = DeviceTables.operatingSystem(for: info.model) }
        config.deviceInfo = info
        for p in [ATVProtocol.mrp, .airplay, .companion, .raop, .dmap] {
            if let n = names[p], !n.isEmpty {
                config.name = n
                break
            }
        }
        if config.name.isEmpty { config.name = "Unknown" }
        // Behind a sleep proxy every service is announced with port 0.
        config.deepSleep = protocolServices.allSatisfy { $0.port == 0 }
        return config
    }

    static func prop(_ p: [String: String], _ key: String) -> String? { p.caseInsensitiveValue(for: key) }

    static func contribution(_ s: ServiceRecord, airplayTXT: [String: String]) -> Contribution? {
        guard let handler = ScanHandlers.byType[s.type] else { return nil }
        let found = handler.handle(s.instance, s.port, s.properties, airplayTXT)
        return Contribution(name: found.name, service: found.service, info: found.deviceInfo)
    }

    static func beforeUnderscore(_ s: String) -> String {
        String(s.split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(s))
    }

    static func flags(_ p: [String: String]) -> UInt64 {
        let text = prop(p, "flags") ?? prop(p, "sf") ?? "0"
        if text.lowercased().hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) ?? 0 }
        return UInt64(text) ?? 0
    }

    static func requiresPassword(_ p: [String: String]) -> Bool {
        prop(p, "pw")?.lowercased() == "true" || flags(p) & 0x80 != 0
    }

    static func pairing(_ p: [String: String], model: String?) -> PairingRequirement {
        if prop(p, "acl") == "1" { return .disabled }
        if let m = model, m.hasPrefix("Mac"), DeviceTables.isMac(m),
           m.dropFirst(3).first?.isNumber == true { return .unsupported }   // ^Mac\d+,\d+$
        if flags(p) & (0x200 | 0x8) != 0 { return .mandatory }
        if prop(p, "act") == "2" { return .unsupported }
        return .notNeeded
    }

    /// `wama` = "macaddress=XX-XX-…,syVs=7.8.1,…".
    static func airportInfo(_ wama: String) -> DeviceInfo {
        var info = DeviceInfo()
        for pair in wama.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "macaddress" { info.mac = kv[1].replacing("-", with: ":").uppercased() }
            if kv[0] == "syVs" { info.version = kv[1] }
        }
        return info
    }
}

/// Each protocol's scan handlers (the service types it claims and how their records become a
/// `ServiceConfig` and `DeviceInfo`). Each protocol module lists its own as
/// `ProtocolModule.scanHandlers`; discovery runs them all, so scanning works without the facade.
package enum ScanHandlers {
    private static func prop(_ p: [String: String], _ key: String) -> String? { p.caseInsensitiveValue(for: key) }

    /// `_mediaremotetv._tcp`.
    package static let mrp = [ScanHandler(serviceType: ServiceType.mrp) { _, port, p, _ in
        var info = DeviceInfo()
        var svc = ServiceConfig(protocol: .mrp, identifier: prop(p, "UniqueIdentifier"), port: port, properties: p)
        svc.pairing = prop(p, "AllowPairing")?.uppercased() == "YES" ? .optional : .disabled
        if let build = prop(p, "SystemBuildVersion") {
            info.buildNumber = build
            info.version = DeviceTables.version(forBuild: build)
            // tvOS 15 and later only speak MRP tunnelled over AirPlay 2.
            if let n = Int(build.prefix { $0.isNumber }), n >= 19 {
                svc.enabled = false
                svc.pairing = .notNeeded
            }
        }
        if let mac = prop(p, "macAddress") { info.mac = mac.uppercased() }
        info.operatingSystem = .tvOS
        return ScanHandler.Found(name: prop(p, "Name") ?? "Unknown", service: svc, deviceInfo: info)
    }]

    /// `_touch-able._tcp`, `_appletv-v2._tcp` (Home Sharing) and `_hscp._tcp` (Music on a computer).
    package static let dmap = [
        dmapHandler(ServiceType.dmap, name: "CtlN", identifier: { instance, _ in DeviceBuilder.beforeUnderscore(instance) },
                    info: DeviceInfo(operatingSystem: .legacy)),
        dmapHandler(ServiceType.homeSharing, name: "Name", identifier: { instance, _ in DeviceBuilder.beforeUnderscore(instance) },
                    info: DeviceInfo(operatingSystem: .legacy)),
        dmapHandler(ServiceType.hscp, name: "Machine Name", identifier: { _, p in prop(p, "Machine ID") },
                    info: DeviceInfo(model: .music)),
    ]

    private static func dmapHandler(_ type: String, name: String,
                                    identifier: @escaping @Sendable (String, [String: String]) -> String?,
                                    info: DeviceInfo) -> ScanHandler {
        ScanHandler(serviceType: type) { instance, port, p, _ in
            let hg = prop(p, "hG")
            let svc = ServiceConfig(protocol: .dmap, identifier: identifier(instance, p), port: port,
                                    credentials: hg, pairing: hg != nil ? .optional : .mandatory, properties: p)
            return ScanHandler.Found(name: prop(p, name), service: svc, deviceInfo: info)
        }
    }

    /// `_airplay._tcp`.
    package static let airplay = [ScanHandler(serviceType: ServiceType.airplay) { instance, port, p, _ in
        var info = DeviceInfo()
        let deviceID = prop(p, "deviceid")
        var svc = ServiceConfig(protocol: .airplay, identifier: deviceID, port: port, properties: p)
        if let model = prop(p, "model") {
            info.rawModel = model
            info.model = DeviceTables.model(model)
            if DeviceTables.isMac(model) { info.operatingSystem = .macOS }
        }
        info.version = prop(p, "osvers")
        info.mac = deviceID?.uppercased()
        info.outputDeviceID = prop(p, "psi") ?? prop(p, "pi")
        svc.requiresPassword = DeviceBuilder.requiresPassword(p)
        svc.pairing = DeviceBuilder.pairing(p, model: prop(p, "model"))
        return ScanHandler.Found(name: instance, service: svc, deviceInfo: info)
    }]

    /// `_companion-link._tcp`.
    package static let companion = [ScanHandler(serviceType: ServiceType.companion) { instance, port, p, _ in
        var info = DeviceInfo()
        var svc = ServiceConfig(protocol: .companion, identifier: prop(p, "rpMRtID"), port: port, properties: p)
        if let md = prop(p, "rpMd") {
            info.rawModel = md
            info.model = DeviceTables.model(md)
        }
        let flags = UInt64(prop(p, "rpFl")?.lowercased().replacing("0x", with: "") ?? "", radix: 16) ?? 0
        svc.pairing = flags & 0x04 != 0 ? .disabled : (flags & 0x4000 != 0 ? .mandatory : .unsupported)
        return ScanHandler.Found(name: instance, service: svc, deviceInfo: info)
    }]

    /// `_raop._tcp`.
    package static let raop = [ScanHandler(serviceType: ServiceType.raop) { instance, port, p, airplayTXT in
        var info = DeviceInfo()
        let parts = instance.split(separator: "@", maxSplits: 1).map(String.init)
        let id = parts.count == 2 ? parts[0] : prop(p, "pk")
        var svc = ServiceConfig(protocol: .raop, identifier: id, port: port, properties: p)
        if let am = prop(p, "am") {
            info.rawModel = am
            info.model = DeviceTables.model(am)
        }
        info.version = prop(p, "ov")
        if let id, id.count == 12, id.allSatisfy(\.isHexDigit) {
            info.mac = stride(from: 0, to: 12, by: 2).map { i -> String in
                let a = id.index(id.startIndex, offsetBy: i)
                return String(id[a...id.index(after: a)])
            }.joined(separator: ":").uppercased()
        }
        svc.requiresPassword = DeviceBuilder.requiresPassword(p)
        if prop(airplayTXT, "acl") == "1" { svc.pairing = .disabled }
        else if prop(airplayTXT, "act") == "2" { svc.pairing = .unsupported }
        else { svc.pairing = DeviceBuilder.pairing(p, model: prop(p, "am")) }
        return ScanHandler.Found(name: parts.count == 2 ? parts[1] : instance, service: svc, deviceInfo: info)
    }]

    /// Every protocol's handlers, by service type.
    static let byType: [String: ScanHandler] = Dictionary(
        (mrp + dmap + airplay + companion + raop).map { ($0.serviceType, $0) }, uniquingKeysWith: { a, _ in a })
}
