// The AirPlay `features` word: the one parser of it and the one "is this AirPlay 2" test, for
// route choice (audio), play-url (video), pairing and the facade alike.
import ATVCore
import ATVHTTP

/// The AirPlay `features` bitmask, as a TXT record (`features`/`ft`: `0xLOW` or `0xLOW,0xHIGH`,
/// 1–8 hex digits each) or a `GET /info` plist (an integer) carries it.
public struct AirPlayFeatureFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let videoV1 = AirPlayFeatureFlags(rawValue: 1 << 0)
    public static let audio = AirPlayFeatureFlags(rawValue: 1 << 9)
    public static let hasUnifiedAdvertiserInfo = AirPlayFeatureFlags(rawValue: 1 << 30)
    public static let supportsUnifiedMediaControl = AirPlayFeatureFlags(rawValue: 1 << 38)
    public static let supportsSystemPairing = AirPlayFeatureFlags(rawValue: 1 << 43)
    public static let supportsHKPairingAndAccessControl = AirPlayFeatureFlags(rawValue: 1 << 46)
    public static let coreUtilsPairingAndEncryption = AirPlayFeatureFlags(rawValue: 1 << 48)
    public static let videoV2 = AirPlayFeatureFlags(rawValue: 1 << 49)

    /// `0xLLLLLLLL` or `0xLLLLLLLL,0xHHHHHHHH` (1–8 hex digits each); anything else is nil.
    public init?(parsing text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return nil }
        var words: [UInt64] = []
        for part in parts {
            let s = String(part).trimmingSpaces
            guard s.count >= 3, s.hasPrefix("0x") || s.hasPrefix("0X") else { return nil }
            let hex = s.dropFirst(2)
            guard hex.count <= 8, hex.allSatisfy(\.isHexDigit), let v = UInt64(hex, radix: 16) else { return nil }
            words.append(v)
        }
        self.init(rawValue: words.count == 2 ? words[1] << 32 | words[0] : words[0])
    }

    /// The `features` value of a `GET /info` plist: an integer (the usual form) or a TXT-style string.
    public init?(plistValue: PlistValue) {
        switch plistValue {
        case .int(let i): self.init(rawValue: UInt64(bitPattern: i))
        case .string(let s): self.init(parsing: s)
        default: return nil
        }
    }

    /// The TXT `ft` (preferred) or `features` of a service.
    public init?(service: ServiceConfig) {
        guard let text = service.property("ft") ?? service.property("features") else { return nil }
        self.init(parsing: text)
    }

    public func has(bit: Int) -> Bool { (0..<64).contains(bit) && rawValue & (1 << UInt64(bit)) != 0 }
    /// The bits set, lowest first.
    public var bits: [Int] { (0..<64).filter { has(bit: $0) } }

    /// AirPlay 2 receiver: bit 38 (SupportsUnifiedMediaControl) or 48
    /// (SupportsCoreUtilsPairingAndEncryption), pyatv's rule.
    public var isAirPlay2: Bool { !intersection([.supportsUnifiedMediaControl, .coreUtilsPairingAndEncryption]).isEmpty }
    /// URL playback: AirPlay video v1 or v2 (bit 0 or 49).
    public var supportsPlayURL: Bool { !intersection([.videoV1, .videoV2]).isEmpty }
    /// Transient (PIN-less) HAP pairing is possible: bit 43 (SystemPairing) or 48.
    public var supportsTransientPairing: Bool { !intersection([.supportsSystemPairing, .coreUtilsPairingAndEncryption]).isEmpty }
    /// HAP pairing (rather than legacy SRP/SHA-1 pairing) for `atv pair`: bit 46 (HomeKit pairing
    /// and access control) or 48 (CoreUtils pairing), or an AirPlay 2 receiver at all.
    public var usesHAPPairing: Bool { has(bit: 46) || has(bit: 48) || isAirPlay2 }
    /// Audio streams go to the AirPlay service itself: bit 30 (HasUnifiedAdvertiserInfo, pyatv's
    /// rule), or an AirPlay 2 receiver (bit 38/48) that supports audio (bit 9).
    public var streamsAudioOnAirPlayService: Bool { has(bit: 30) || (isAirPlay2 && has(bit: 9)) }

    /// `0xLLLLLLLL,0xHHHHHHHH` as in TXT records.
    public var text: String {
        "0x" + String(UInt32(truncatingIfNeeded: rawValue), radix: 16, uppercase: true)
            + ",0x" + String(UInt32(truncatingIfNeeded: rawValue >> 32), radix: 16, uppercase: true)
    }
}
