import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// One protocol service a device offers (what mDNS or the user said about it).
public struct ServiceConfig: Sendable, Equatable, Codable {
    public var `protocol`: ATVProtocol
    /// Protocol-specific identifier (MRP UniqueIdentifier, AirPlay deviceid, RAOP MAC, DMAP id…).
    public var identifier: String?
    public var port: Int
    public var credentials: String?
    public var password: String?
    public var requiresPassword: Bool
    public var pairing: PairingRequirement
    /// Decoded TXT properties; keys compared case-insensitively via `property(_:)`.
    public var properties: [String: String]
    public var enabled: Bool

    public init(protocol: ATVProtocol, identifier: String? = nil, port: Int, credentials: String? = nil,
                password: String? = nil, requiresPassword: Bool = false,
                pairing: PairingRequirement = .unsupported, properties: [String: String] = [:],
                enabled: Bool = true) {
        self.protocol = `protocol`
        self.identifier = identifier
        self.port = port
        self.credentials = credentials
        self.password = password
        self.requiresPassword = requiresPassword
        self.pairing = pairing
        self.properties = properties
        self.enabled = enabled
    }

    /// Case-insensitive TXT lookup.
    public func property(_ key: String) -> String? { properties.caseInsensitiveValue(for: key) }

    /// Merge another description of the same service: credentials and password come from the new
    /// one when set, properties are updated.
    public mutating func merge(_ other: ServiceConfig) {
        if let c = other.credentials { credentials = c }
        if let p = other.password { password = p }
        if identifier == nil { identifier = other.identifier }
        properties.merge(other.properties) { _, new in new }
        if other.port != 0 { port = other.port }
        requiresPassword = requiresPassword || other.requiresPassword
        if other.pairing != .unsupported { pairing = other.pairing }
    }
}

/// What is known about the hardware and software of a device.
public struct DeviceInfo: Sendable, Equatable, Codable, CustomStringConvertible {
    public var operatingSystem: OperatingSystem
    public var version: String?
    public var buildNumber: String?
    public var model: DeviceModel
    /// The model string as the device reports it (e.g. "AppleTV6,2").
    public var rawModel: String?
    public var mac: String?
    public var outputDeviceID: String?

    public init(operatingSystem: OperatingSystem = .unknown, version: String? = nil, buildNumber: String? = nil,
                model: DeviceModel = .unknown, rawModel: String? = nil, mac: String? = nil,
                outputDeviceID: String? = nil) {
        self.operatingSystem = operatingSystem
        self.version = version
        self.buildNumber = buildNumber
        self.model = model
        self.rawModel = rawModel
        self.mac = mac
        self.outputDeviceID = outputDeviceID
    }

    /// The OS, derived from the model when not given explicitly.
    public var effectiveOperatingSystem: OperatingSystem {
        if operatingSystem != .unknown { return operatingSystem }
        switch model {
        case .airPortExpress, .airPortExpressGen2: return .airPortOS
        case .homePod, .homePodMini, .homePodGen2, .gen2, .gen3, .gen4, .gen4K, .appleTV4KGen2, .appleTV4KGen3:
            return .tvOS
        default: return .unknown
        }
    }

    /// The model name, falling back to the raw model string.
    public var modelString: String {
        if model == .unknown, let raw = rawModel { return raw }
        return model.description
    }

    /// Fill fields that are still unknown from another source (first writer wins per field).
    public mutating func merge(_ other: DeviceInfo) {
        if operatingSystem == .unknown { operatingSystem = other.operatingSystem }
        if version == nil { version = other.version }
        if buildNumber == nil { buildNumber = other.buildNumber }
        if model == .unknown { model = other.model }
        if rawModel == nil { rawModel = other.rawModel }
        if mac == nil { mac = other.mac }
        if outputDeviceID == nil { outputDeviceID = other.outputDeviceID }
    }

    /// E.g. "Apple TV 3, ATV SW 13.x build 17K499".
    public var description: String {
        let os: String
        switch effectiveOperatingSystem {
        case .legacy: os = "ATV SW"
        case .tvOS: os = "tvOS"
        case .airPortOS: os = "AirPortOS"
        case .macOS: os = "MacOS"
        case .unknown: os = "Unknown OS"
        }
        var s = "\(modelString), \(os)"
        if let v = version { s += " \(v)" }
        if let b = buildNumber { s += " build \(b)" }
        return s
    }
}

/// A device and the services it offers: the input to `connect` and `pair`.
public struct DeviceConfig: Sendable, Equatable, Codable {
    public var name: String
    /// IP address (v4 or v6) as a string.
    public var address: String
    public var deepSleep: Bool
    public var deviceInfo: DeviceInfo
    public private(set) var services: [ServiceConfig]

    public init(name: String, address: String, deepSleep: Bool = false, deviceInfo: DeviceInfo = DeviceInfo(),
                services: [ServiceConfig] = []) {
        self.name = name
        self.address = address
        self.deepSleep = deepSleep
        self.deviceInfo = deviceInfo
        self.services = []
        for s in services { addService(s) }
    }

    /// Add a service, merging with an existing one of the same protocol.
    public mutating func addService(_ service: ServiceConfig) {
        if let i = services.firstIndex(where: { $0.protocol == service.protocol }) {
            services[i].merge(service)
        } else {
            services.append(service)
        }
    }

    public func service(_ proto: ATVProtocol) -> ServiceConfig? {
        services.first { $0.protocol == proto }
    }

    public mutating func updateService(_ proto: ATVProtocol, _ body: (inout ServiceConfig) -> Void) {
        if let i = services.firstIndex(where: { $0.protocol == proto }) { body(&services[i]) }
    }

    /// The main identifier: first non-nil in the order MRP, DMAP, AirPlay, RAOP, Companion.
    public var identifier: String? {
        for p in [ATVProtocol.mrp, .dmap, .airplay, .raop, .companion] {
            if let id = service(p)?.identifier { return id }
        }
        return nil
    }

    /// Every identifier of every service, without duplicates, in service order.
    public var allIdentifiers: [String] {
        var seen = Set<String>()
        return services.compactMap(\.identifier).filter { seen.insert($0).inserted }
    }

    /// A device is ready when at least one service has an identifier.
    public var ready: Bool { services.contains { $0.identifier != nil } }

    /// Store credentials for a protocol; false if there is no such service.
    @discardableResult
    public mutating func setCredentials(_ proto: ATVProtocol, _ credentials: String?) -> Bool {
        guard let i = services.firstIndex(where: { $0.protocol == proto }) else { return false }
        services[i].credentials = credentials
        return true
    }

    /// Does this device match a name or identifier given by the user (case-insensitive)?
    public func matches(_ nameOrID: String) -> Bool {
        let k = nameOrID.lowercased()
        return name.lowercased() == k || allIdentifiers.contains { $0.lowercased() == k }
    }
}

extension Dictionary where Key == String {
    /// TXT keys are case-insensitive (`rpMd` and `rpmd` are the same key).
    package func caseInsensitiveValue(for key: String) -> Value? {
        if let v = self[key] { return v }
        let lk = key.lowercased()
        return first { $0.key.lowercased() == lk }?.value
    }
}
