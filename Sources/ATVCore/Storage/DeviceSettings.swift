import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Everything stored about one device: who we claim to be towards it (`info`) and, per protocol,
/// its identifier, credentials and password. Mirrors pyatv's `Settings`; the JSON keys are pyatv's,
/// so a pyatv settings file can be read as is. Unknown keys are kept and written back; values equal
/// to their defaults are left out when writing.
public struct DeviceSettings: Sendable, Equatable, Codable {
    public var info: InfoSettings
    public var protocols: ProtocolSettings
    /// Keys of the device entry this version does not know.
    public var extra: [String: JSONValue]

    public init(info: InfoSettings = InfoSettings(), protocols: ProtocolSettings = ProtocolSettings(),
                extra: [String: JSONValue] = [:]) {
        self.info = info
        self.protocols = protocols
        self.extra = extra
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        info = try c.decodeIfPresent(InfoSettings.self, forKey: AnyKey("info")) ?? InfoSettings()
        protocols = try c.decodeIfPresent(ProtocolSettings.self, forKey: AnyKey("protocols")) ?? ProtocolSettings()
        extra = try c.extras(excluding: ["info", "protocols"])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(info, forKey: AnyKey("info"))
        if !protocols.isDefault { try c.encode(protocols, forKey: AnyKey("protocols")) }
        try c.encodeExtras(extra)
    }

    /// Every protocol identifier stored in this entry.
    public var identifiers: Set<String> {
        Set(ATVProtocol.allCases.compactMap { protocols.identifier(for: $0) })
    }

    /// Settings for a device nobody has seen before, filled from its configuration
    /// (identifier, credentials and password of every service).
    public init(from config: DeviceConfig) {
        self.init()
        fill(from: config, overwrite: true)
    }

    /// Copy identifiers, credentials and passwords of the config's services into these settings.
    /// With `overwrite == false` only missing values are filled.
    public mutating func fill(from config: DeviceConfig, overwrite: Bool) {
        for s in config.services {
            let p = s.protocol
            if let id = s.identifier, overwrite || protocols.identifier(for: p) == nil {
                protocols.setIdentifier(id, for: p)
            }
            if let c = s.credentials, overwrite || protocols.credentials(for: p) == nil {
                protocols.setCredentials(c, for: p)
            }
            if let pw = s.password, overwrite || protocols.password(for: p) == nil {
                protocols.setPassword(pw, for: p)
            }
        }
    }

    /// Fill identifiers, credentials and passwords this entry lacks from another entry.
    /// Returns true if anything changed.
    @discardableResult
    public mutating func fillMissing(from other: DeviceSettings) -> Bool {
        let before = self
        for p in ATVProtocol.allCases {
            if protocols.identifier(for: p) == nil, let v = other.protocols.identifier(for: p) {
                protocols.setIdentifier(v, for: p)
            }
            if protocols.credentials(for: p) == nil, let v = other.protocols.credentials(for: p) {
                protocols.setCredentials(v, for: p)
            }
            if protocols.password(for: p) == nil, let v = other.protocols.password(for: p) {
                protocols.setPassword(v, for: p)
            }
        }
        return self != before
    }
}

/// How we present ourselves to the device (pyatv's `InfoSettings`).
public struct InfoSettings: Sendable, Equatable, Codable {
    public static let defaultName = "swift-atv"
    public static let defaultMAC = "02:70:79:61:74:76"
    public static let defaultModel = "iPhone10,6"
    public static let defaultDeviceID = "FF:70:79:61:74:76"
    public static let defaultOSName = "iPhone OS"
    public static let defaultOSBuild = "18G82"
    public static let defaultOSVersion = "14.7.1"

    public var name: String
    public var mac: String
    public var model: String
    public var deviceID: String
    /// Random 6 bytes as 12 hex characters; generated when missing.
    public var rpID: String
    public var osName: String
    public var osBuild: String
    public var osVersion: String
    public var extra: [String: JSONValue]

    public init(name: String = defaultName, mac: String = defaultMAC, model: String = defaultModel,
                deviceID: String = defaultDeviceID, rpID: String? = nil, osName: String = defaultOSName,
                osBuild: String = defaultOSBuild, osVersion: String = defaultOSVersion,
                extra: [String: JSONValue] = [:]) {
        self.name = name
        self.mac = mac
        self.model = model
        self.deviceID = deviceID
        self.rpID = rpID ?? InfoSettings.randomRPID()
        self.osName = osName
        self.osBuild = osBuild
        self.osVersion = osVersion
        self.extra = extra
    }

    public static func randomRPID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<6).map { _ in String(cFormat: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    private static let keys: Set<String> = ["name", "mac", "model", "device_id", "rp_id", "os_name",
                                            "os_build", "os_version"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        self.init(name: try c.string("name") ?? Self.defaultName,
                  mac: try c.string("mac") ?? Self.defaultMAC,
                  model: try c.string("model") ?? Self.defaultModel,
                  deviceID: try c.string("device_id") ?? Self.defaultDeviceID,
                  rpID: try c.string("rp_id"),
                  osName: try c.string("os_name") ?? Self.defaultOSName,
                  osBuild: try c.string("os_build") ?? Self.defaultOSBuild,
                  osVersion: try c.string("os_version") ?? Self.defaultOSVersion,
                  extra: try c.extras(excluding: Self.keys))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.put(name, "name", default: Self.defaultName)
        try c.put(mac, "mac", default: Self.defaultMAC)
        try c.put(model, "model", default: Self.defaultModel)
        try c.put(deviceID, "device_id", default: Self.defaultDeviceID)
        try c.put(rpID, "rp_id")  // random default: always written, like pyatv
        try c.put(osName, "os_name", default: Self.defaultOSName)
        try c.put(osBuild, "os_build", default: Self.defaultOSBuild)
        try c.put(osVersion, "os_version", default: Self.defaultOSVersion)
        try c.encodeExtras(extra)
    }
}

/// Identifier and credentials of one protocol (Companion, DMAP, MRP).
public struct BasicProtocolSettings: Sendable, Equatable, Codable {
    public var identifier: String?
    public var credentials: String?
    public var extra: [String: JSONValue]

    public init(identifier: String? = nil, credentials: String? = nil, extra: [String: JSONValue] = [:]) {
        self.identifier = identifier
        self.credentials = credentials
        self.extra = extra
    }

    public var isDefault: Bool { identifier == nil && credentials == nil && extra.isEmpty }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        identifier = try c.string("identifier")
        credentials = try c.string("credentials")
        extra = try c.extras(excluding: ["identifier", "credentials"])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.put(identifier, "identifier")
        try c.put(credentials, "credentials")
        try c.encodeExtras(extra)
    }
}

/// pyatv's `MrpTunnel`: whether MRP is tunnelled over AirPlay 2.
public enum MRPTunnel: String, Sendable, Codable, CaseIterable {
    case auto, force, disable
}

/// pyatv's `AirPlayVersion`: which AirPlay major version to use ("auto", "1", "2").
public enum AirPlayVersion: String, Sendable, Codable, CaseIterable {
    case auto
    case v1 = "1"
    case v2 = "2"

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw: String
        if let i = try? c.decode(Int.self) { raw = String(i) } else { raw = try c.decode(String.self) }
        guard let v = AirPlayVersion(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "protocol_version must be auto, 1 or 2")
        }
        self = v
    }
}

public struct AirPlaySettings: Sendable, Equatable, Codable {
    public var identifier: String?
    public var credentials: String?
    public var password: String?
    public var mrpTunnel: MRPTunnel
    public var extra: [String: JSONValue]

    public init(identifier: String? = nil, credentials: String? = nil, password: String? = nil,
                mrpTunnel: MRPTunnel = .auto, extra: [String: JSONValue] = [:]) {
        self.identifier = identifier
        self.credentials = credentials
        self.password = password
        self.mrpTunnel = mrpTunnel
        self.extra = extra
    }

    public var isDefault: Bool {
        identifier == nil && credentials == nil && password == nil && mrpTunnel == .auto && extra.isEmpty
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        identifier = try c.string("identifier")
        credentials = try c.string("credentials")
        password = try c.string("password")
        mrpTunnel = try c.decodeIfPresent(MRPTunnel.self, forKey: AnyKey("mrp_tunnel")) ?? .auto
        extra = try c.extras(excluding: ["identifier", "credentials", "password", "mrp_tunnel"])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.put(identifier, "identifier")
        try c.put(credentials, "credentials")
        try c.put(password, "password")
        try c.put(mrpTunnel, "mrp_tunnel", default: .auto)
        try c.encodeExtras(extra)
    }
}

public struct RAOPSettings: Sendable, Equatable, Codable {
    public var identifier: String?
    public var credentials: String?
    public var password: String?
    /// AirPlay major version to use (also consulted by AirPlay).
    public var protocolVersion: AirPlayVersion
    /// Local UDP ports; 0 = pick a random free port.
    public var timingPort: Int
    public var controlPort: Int
    public var extra: [String: JSONValue]

    public init(identifier: String? = nil, credentials: String? = nil, password: String? = nil,
                protocolVersion: AirPlayVersion = .auto, timingPort: Int = 0, controlPort: Int = 0,
                extra: [String: JSONValue] = [:]) {
        self.identifier = identifier
        self.credentials = credentials
        self.password = password
        self.protocolVersion = protocolVersion
        self.timingPort = timingPort
        self.controlPort = controlPort
        self.extra = extra
    }

    public var isDefault: Bool {
        identifier == nil && credentials == nil && password == nil && protocolVersion == .auto
            && timingPort == 0 && controlPort == 0 && extra.isEmpty
    }

    private static let keys: Set<String> = ["identifier", "credentials", "password", "protocol_version",
                                            "timing_port", "control_port"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        identifier = try c.string("identifier")
        credentials = try c.string("credentials")
        password = try c.string("password")
        protocolVersion = try c.decodeIfPresent(AirPlayVersion.self, forKey: AnyKey("protocol_version")) ?? .auto
        timingPort = try c.lenientInt("timing_port") ?? 0
        controlPort = try c.lenientInt("control_port") ?? 0
        for (key, port) in [("timing_port", timingPort), ("control_port", controlPort)] where !(0...65535).contains(port) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey(key)],
                                                    debugDescription: "\(key) must be 0...65535"))
        }
        extra = try c.extras(excluding: Self.keys)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.put(identifier, "identifier")
        try c.put(credentials, "credentials")
        try c.put(password, "password")
        try c.put(protocolVersion, "protocol_version", default: .auto)
        try c.put(timingPort, "timing_port", default: 0)
        try c.put(controlPort, "control_port", default: 0)
        try c.encodeExtras(extra)
    }
}

/// Per-protocol settings (pyatv's `ProtocolSettings`).
public struct ProtocolSettings: Sendable, Equatable, Codable {
    public var airplay: AirPlaySettings
    public var companion: BasicProtocolSettings
    public var dmap: BasicProtocolSettings
    public var mrp: BasicProtocolSettings
    public var raop: RAOPSettings
    public var extra: [String: JSONValue]

    public init(airplay: AirPlaySettings = AirPlaySettings(), companion: BasicProtocolSettings = BasicProtocolSettings(),
                dmap: BasicProtocolSettings = BasicProtocolSettings(), mrp: BasicProtocolSettings = BasicProtocolSettings(),
                raop: RAOPSettings = RAOPSettings(), extra: [String: JSONValue] = [:]) {
        self.airplay = airplay
        self.companion = companion
        self.dmap = dmap
        self.mrp = mrp
        self.raop = raop
        self.extra = extra
    }

    public var isDefault: Bool {
        airplay.isDefault && companion.isDefault && dmap.isDefault && mrp.isDefault && raop.isDefault && extra.isEmpty
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        airplay = try c.decodeIfPresent(AirPlaySettings.self, forKey: AnyKey("airplay")) ?? AirPlaySettings()
        companion = try c.decodeIfPresent(BasicProtocolSettings.self, forKey: AnyKey("companion")) ?? BasicProtocolSettings()
        dmap = try c.decodeIfPresent(BasicProtocolSettings.self, forKey: AnyKey("dmap")) ?? BasicProtocolSettings()
        mrp = try c.decodeIfPresent(BasicProtocolSettings.self, forKey: AnyKey("mrp")) ?? BasicProtocolSettings()
        raop = try c.decodeIfPresent(RAOPSettings.self, forKey: AnyKey("raop")) ?? RAOPSettings()
        extra = try c.extras(excluding: ["airplay", "companion", "dmap", "mrp", "raop"])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        if !airplay.isDefault { try c.encode(airplay, forKey: AnyKey("airplay")) }
        if !companion.isDefault { try c.encode(companion, forKey: AnyKey("companion")) }
        if !dmap.isDefault { try c.encode(dmap, forKey: AnyKey("dmap")) }
        if !mrp.isDefault { try c.encode(mrp, forKey: AnyKey("mrp")) }
        if !raop.isDefault { try c.encode(raop, forKey: AnyKey("raop")) }
        try c.encodeExtras(extra)
    }

    public func identifier(for p: ATVProtocol) -> String? {
        switch p {
        case .airplay: airplay.identifier
        case .companion: companion.identifier
        case .dmap: dmap.identifier
        case .mrp: mrp.identifier
        case .raop: raop.identifier
        }
    }

    public func credentials(for p: ATVProtocol) -> String? {
        switch p {
        case .airplay: airplay.credentials
        case .companion: companion.credentials
        case .dmap: dmap.credentials
        case .mrp: mrp.credentials
        case .raop: raop.credentials
        }
    }

    /// Only AirPlay and RAOP have a password; nil for the others.
    public func password(for p: ATVProtocol) -> String? {
        switch p {
        case .airplay: airplay.password
        case .raop: raop.password
        default: nil
        }
    }

    public mutating func setIdentifier(_ v: String?, for p: ATVProtocol) {
        switch p {
        case .airplay: airplay.identifier = v
        case .companion: companion.identifier = v
        case .dmap: dmap.identifier = v
        case .mrp: mrp.identifier = v
        case .raop: raop.identifier = v
        }
    }

    public mutating func setCredentials(_ v: String?, for p: ATVProtocol) {
        switch p {
        case .airplay: airplay.credentials = v
        case .companion: companion.credentials = v
        case .dmap: dmap.credentials = v
        case .mrp: mrp.credentials = v
        case .raop: raop.credentials = v
        }
    }

    /// Ignored for protocols without a password.
    public mutating func setPassword(_ v: String?, for p: ATVProtocol) {
        switch p {
        case .airplay: airplay.password = v
        case .raop: raop.password = v
        default: break
        }
    }
}

extension DeviceConfig {
    /// Copy stored credentials and passwords into the matching services (nil values are ignored).
    public mutating func apply(_ settings: DeviceSettings) {
        for p in ATVProtocol.allCases {
            let creds = settings.protocols.credentials(for: p)
            let pw = settings.protocols.password(for: p)
            updateService(p) { s in
                if let creds { s.credentials = creds }
                if let pw { s.password = pw }
            }
        }
    }
}
