// Every credential string pyatv reads and writes, as one type with detection.
import ATVCore

public enum ATVCredentials: Sendable, Equatable, CustomStringConvertible {
    /// No credentials (pyatv prints `:::`).
    case null
    /// Transient pairing marker (`ltpk == "transient"`); never stored.
    case transient
    /// HAP: `ltpk:ltsk:atv_id:client_id` (MRP, Companion, AirPlay 2, RAOP-v2).
    case hap(HAPCredentials)
    /// Legacy AirPlay/RAOP device authentication: printed `:<seed>::<client id>`; `client_id:seed` is read too.
    case legacy(LegacyCredentials)
    /// DMAP pairing GUID, `0x` + 16 hex digits (login with `pairing-guid=`).
    case dmapPairingGUID(String)
    /// DMAP Home Sharing id `hG`, a UUID (login with `hsgid=`).
    case dmapHomeSharing(String)

    public enum Kind: String, Sendable, CaseIterable {
        case null, transient, hap, legacy, dmapPairingGUID = "dmap-pairing-guid", dmapHomeSharing = "dmap-home-sharing"
    }

    public var kind: Kind {
        switch self {
        case .null: .null
        case .transient: .transient
        case .hap: .hap
        case .legacy: .legacy
        case .dmapPairingGUID: .dmapPairingGUID
        case .dmapHomeSharing: .dmapHomeSharing
        }
    }

    static let transientMarker = Array("transient".utf8)

    /// Parse any of pyatv's formats; throws `.invalidCredentials` with the reason otherwise.
    public init(parsing raw: String) throws(ATVError) {
        let s = raw.trimmingWhitespace()
        if s.isEmpty { throw ATVError.invalidCredentials("empty string (use ':::' for no credentials)") }
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            let digits = s.dropFirst(2)
            guard digits.count == 16, digits.allSatisfy(\.isHexDigit) else {
                throw ATVError.invalidCredentials("a DMAP pairing GUID is 0x followed by 16 hex digits")
            }
            self = .dmapPairingGUID("0x" + digits.uppercased())
            return
        }
        if Self.isUUID(s) {
            self = .dmapHomeSharing(s.uppercased())
            return
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var fields: [[UInt8]] = []
        for (i, p) in parts.enumerated() {
            guard let b = Hex.decode(p), !p.contains(" ") else {
                throw ATVError.invalidCredentials("field \(i + 1) of \(parts.count) is not hex")
            }
            fields.append(b)
        }
        switch fields.count {
        case 2:
            // pyatv's compatibility form client_id:seed.
            self = .legacy(try LegacyCredentials(seed: fields[1], clientID: fields[0]))
        case 4:
            let (ltpk, ltsk, atvID, clientID) = (fields[0], fields[1], fields[2], fields[3])
            if fields.allSatisfy(\.isEmpty) {
                self = .null
            } else if ltpk == Self.transientMarker {
                self = .transient
            } else if ltpk.isEmpty, !ltsk.isEmpty, atvID.isEmpty, !clientID.isEmpty {
                self = .legacy(try LegacyCredentials(seed: ltsk, clientID: clientID))
            } else if !ltpk.isEmpty, !ltsk.isEmpty, !atvID.isEmpty, !clientID.isEmpty {
                self = .hap(try HAPCredentials(parsing: s))
            } else {
                throw ATVError.invalidCredentials("4 fields but neither HAP (all set) nor legacy (only the 2nd and 4th set)")
            }
        default:
            throw ATVError.invalidCredentials("expected ltpk:ltsk:atv_id:client_id, client_id:seed, 0x<16 hex> or a UUID (got \(fields.count) colon-separated fields)")
        }
    }

    static func isUUID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// pyatv's string form (what pyatv's `str(credentials)` prints, or the DMAP id as is).
    public var stringValue: String {
        switch self {
        case .null: ":::"
        case .transient: Hex.encode(Self.transientMarker) + ":::"
        case .hap(let c): c.stringValue
        case .legacy(let c): ":" + Hex.encode(c.seed) + "::" + Hex.encode(c.clientID)
        case .dmapPairingGUID(let g): g
        case .dmapHomeSharing(let u): u
        }
    }

    /// Which protocols can use credentials of this kind.
    public var usableWith: Set<ATVProtocol> {
        switch self {
        case .null: Set(ATVProtocol.allCases)
        case .transient: [.airplay, .raop]
        case .hap: [.airplay, .companion, .mrp, .raop]
        case .legacy: [.airplay, .raop]
        case .dmapPairingGUID, .dmapHomeSharing: [.dmap]
        }
    }

    /// A form safe to print: the kind and a short prefix of a public part; never secret key bytes.
    public var masked: String {
        switch self {
        case .null: "none"
        case .transient: "transient"
        case .hap(let c): "hap device-key \(Hex.encode(c.deviceLTPK.prefix(4)))… client \(String(decoding: c.clientID.prefix(8), as: UTF8.self))…"
        case .legacy(let c): "legacy client-id \(Hex.encode(c.clientID.prefix(3)))…"
        case .dmapPairingGUID(let g): "dmap pairing-guid \(g.prefix(6))…"
        case .dmapHomeSharing(let u): "dmap home-sharing \(u.prefix(4))…"
        }
    }

    /// Does not print secrets.
    public var description: String { masked }
}
