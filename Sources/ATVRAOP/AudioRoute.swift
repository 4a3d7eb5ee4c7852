// Which of the four audio routes a receiver gets, as a pure function of what it advertises (TXT
// or `GET /info`: the features word, `model`, `manufacturer`) and the user's `--timing` /
// `--buffered` choices (docs/PTP-AND-BUFFERED-AUDIO.md §6):
//
//   AirPlay 1 (RAOP) · AirPlay 2 realtime NTP · AirPlay 2 realtime PTP · AirPlay 2 buffered PTP
//
// Defaults follow the evidence: realtime NTP, what pyatv sends and HomePods and Apple TVs are
// known to play, for every AirPlay 2 receiver except those known to refuse NTP or to need PTP:
// shairport-sync's AirPlay 2 mode (model `ShairportSync`, §5.1 row 1; it may not fall back to NTP
// when UDP 319/320 cannot be bound) and Sonos, Samsung and IKEA SYMFONISK (§5.4, unverified; they
// fall back to NTP with a warning). Feature bits 40 (buffered audio) and 41 (PTP) are reported, never decisive on
// their own: Sony and Google TVs advertise PTP yet play only with NTP.
import ATVAirPlayCore
import ATVCore

/// `--timing`: how an AirPlay 2 stream is timed.
public enum AirPlayTimingPreference: String, Sendable, Equatable, CaseIterable {
    /// NTP, or PTP where the receiver refuses NTP or is known to need PTP.
    case auto
    case ntp
    case ptp
}

/// `--buffered`: whether an AirPlay 2 stream is buffered audio (type 103 over TCP).
public enum AirPlayBufferedPreference: String, Sendable, Equatable, CaseIterable {
    /// Realtime: no evidence yet that any receiver wants buffered audio from us.
    case auto
    case on
    case off
}

/// `--codec alac|aac` on a buffered AirPlay 2 stream: the type-103 codec, instead of the one the
/// receiver's `/info` `supportedFormats.bufferStream` lists (`BufferedFormatChoice`).
public enum AirPlayBufferedCodec: String, Sendable, Equatable, CaseIterable {
    /// ALAC 44.1 kHz/16-bit stereo (SSRC 0xFACE).
    case alac
    /// AAC-LC 44.1 kHz stereo (SSRC 0x16000000), encoded with FFmpeg's `aac` encoder.
    case aac
}

/// The four ways audio reaches a receiver.
public enum AirPlayAudioRoute: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    case airPlay1
    case realtimeNTP
    case realtimePTP
    case bufferedPTP

    public var description: String {
        switch self {
        case .airPlay1: "AirPlay 1 (RAOP)"
        case .realtimeNTP: "AirPlay 2 realtime, NTP timing"
        case .realtimePTP: "AirPlay 2 realtime, PTP timing"
        case .bufferedPTP: "AirPlay 2 buffered, PTP timing"
        }
    }

    /// For the summary line after "AirPlay 2, codec, …".
    public var shortName: String {
        switch self {
        case .airPlay1: "AirPlay 1"
        case .realtimeNTP: "realtime NTP"
        case .realtimePTP: "realtime PTP"
        case .bufferedPTP: "buffered PTP"
        }
    }

    public var usesPTP: Bool { self == .realtimePTP || self == .bufferedPTP }
}

/// The route and why (the `-v` log line), and whether NTP may replace PTP when the PTP ports cannot
/// be bound.
public struct AirPlayAudioRouteChoice: Sendable, Equatable, CustomStringConvertible {
    public var route: AirPlayAudioRoute
    public var reason: String
    /// PTP was chosen by `auto` for a receiver not known to refuse NTP (the Sonos and Samsung
    /// reports are unverified): when UDP 319/320 cannot be bound the stream goes with NTP after one
    /// warning line. False where PTP was forced or the receiver refuses NTP (shairport-sync).
    public var ntpFallback: Bool
    /// Buffered PTP: the type-103 codec sent, once chosen (`BufferedFormatChoice`).
    public var bufferedCodec: AirPlayBufferedCodec?
    /// Buffered PTP: the type-103 format sent, e.g. "AAC-LC 44.1 kHz stereo", once chosen.
    public var bufferedFormat: String?

    public init(route: AirPlayAudioRoute, reason: String, ntpFallback: Bool = false) {
        self.route = route
        self.reason = reason
        self.ntpFallback = ntpFallback
    }

    public var description: String { "\(route) (\(reason))" }

    /// For the summary line: "buffered PTP, AAC-LC 44.1 kHz stereo", "realtime NTP".
    public var summary: String { route.shortName + (bufferedFormat.map { ", " + $0 } ?? "") }
}

/// What a receiver says about itself that the route rule reads: TXT (`features`/`ft`, `model`/`am`,
/// `manufacturer`) or `GET /info` (`features`, `model`, `manufacturer`).
package struct AirPlayReceiverTraits: Sendable, Equatable {
    package var features: AirPlayFeatureFlags?
    package var model: String?
    package var manufacturer: String?
    /// `/info` `supportedFormats.bufferStream`: the `audioFormat` bits the receiver takes on buffered
    /// (type 103) streams (a 64-bit mask, read by bit pattern: HomePods send it negative); nil when
    /// not advertised.
    package var bufferStreamFormats: UInt64?

    package init(features: AirPlayFeatureFlags? = nil, model: String? = nil, manufacturer: String? = nil,
                bufferStreamFormats: UInt64? = nil) {
        self.features = features
        self.model = model
        self.manufacturer = manufacturer
        self.bufferStreamFormats = bufferStreamFormats
    }

    /// From TXT properties (RAOP `am`/`ft`, AirPlay `model`/`features`), the first present wins.
    package init(txt: [[String: String]]) {
        func first(_ keys: [String]) -> String? {
            for props in txt { for k in keys { if let v = props[k], !v.isEmpty { return v } } }
            return nil
        }
        var features: AirPlayFeatureFlags?
        for props in txt {
            for k in ["ft", "features"] {
                if features == nil, let text = props[k] { features = AirPlayFeatureFlags(parsing: text) }
            }
        }
        self.init(features: features, model: first(["model", "am"]), manufacturer: first(["manufacturer"]))
    }

    /// From a `GET /info` plist.
    package init(info: PlistValue) {
        var buffer: UInt64?
        if case .int(let bits)? = info["supportedFormats"]?["bufferStream"] { buffer = UInt64(bitPattern: bits) }
        self.init(features: info["features"].flatMap(AirPlayFeatureFlags.init(plistValue:)),
                  model: info["model"]?.string, manufacturer: info["manufacturer"]?.string, bufferStreamFormats: buffer)
    }

    /// Fills what `self` lacks from `other`.
    package func merged(with other: AirPlayReceiverTraits) -> AirPlayReceiverTraits {
        AirPlayReceiverTraits(features: features ?? other.features, model: model ?? other.model,
                              manufacturer: manufacturer ?? other.manufacturer,
                              bufferStreamFormats: bufferStreamFormats ?? other.bufferStreamFormats)
    }

    /// shairport-sync (`model=ShairportSync`, docs/PTP-AND-BUFFERED-AUDIO.md §5.1).
    package var isShairportSync: Bool { model?.lowercased() == "shairportsync" }

    /// Why this receiver should have PTP, and whether it refuses NTP outright (verified for
    /// shairport-sync) or is only reported to need PTP (Sonos, Samsung, IKEA SYMFONISK:
    /// docs/PTP-AND-BUFFERED-AUDIO.md §5.4, unverified); nil for every other receiver.
    package var needsPTP: (reason: String, refusesNTP: Bool)? {
        if isShairportSync { return ("shairport-sync's AirPlay 2 mode refuses NTP timing", true) }
        let maker = (manufacturer ?? "").lowercased()
        let model = (self.model ?? "").lowercased()
        if maker.contains("sonos") { return ("Sonos receivers are reported to need PTP timing", false) }
        if maker.contains("samsung") { return ("Samsung receivers are reported to need PTP timing", false) }
        if model.contains("symfonisk") || maker.contains("ikea") {
            return ("IKEA SYMFONISK is reported to stall under NTP timing", false)
        }
        return nil
    }

    /// "features 0x…,0x… (bits 40+41)" etc., for the reason text.
    var describedBits: String {
        guard let f = features else { return "no features" }
        let bits = [40, 41].filter(f.has(bit:))
        return bits.isEmpty ? "features without bits 40/41" : "features with bit \(bits.map(String.init).joined(separator: "+"))"
    }
}

extension AirPlayAudioRouteChoice {
    /// The PTP master could not start (`error`, PTPPorts' one line): realtime NTP and the warning
    /// to show when the route allows it (`ntpFallback`), else nil (the stream fails with `error`).
    package func fallingBack(after error: ATVError) -> (choice: AirPlayAudioRouteChoice, warning: String)? {
        guard route.usesPTP, ntpFallback else { return nil }
        return (AirPlayAudioRouteChoice(route: .realtimeNTP, reason: reason + "; PTP ports unavailable, NTP instead"),
                "PTP timing unavailable (\(error)); streaming with NTP timing instead")
    }

    /// The rule (pure). `version` is the AirPlay generation already chosen (features bits 38/48,
    /// or `--airplay-version`), `traits` what the receiver advertises.
    package static func choose(version: AirPlayMajorVersion, traits: AirPlayReceiverTraits,
                               timing: AirPlayTimingPreference, buffered: AirPlayBufferedPreference) throws(ATVError) -> AirPlayAudioRouteChoice {
        guard version == .v2 else {
            if timing == .ptp { throw ATVError.invalidValue("--timing ptp needs an AirPlay 2 receiver; this one speaks AirPlay 1 (RAOP) only") }
            if buffered == .on { throw ATVError.invalidValue("--buffered on needs an AirPlay 2 receiver; this one speaks AirPlay 1 (RAOP) only") }
            return AirPlayAudioRouteChoice(route: .airPlay1, reason: "AirPlay 1 receiver")
        }
        let needs = traits.needsPTP
        if buffered == .on {
            // Buffered audio anchors playback on our PTP clock (docs/PTP-AND-BUFFERED-AUDIO.md §6.3).
            if timing == .ntp { throw ATVError.invalidValue("--buffered on needs PTP timing; use --timing ptp or auto") }
            return AirPlayAudioRouteChoice(route: .bufferedPTP, reason: "forced by --buffered on")
        }
        switch timing {
        case .ntp:
            let warning = needs.map { "; note: \($0.reason)" } ?? ""
            return AirPlayAudioRouteChoice(route: .realtimeNTP, reason: "forced by --timing ntp\(warning)")
        case .ptp:
            return AirPlayAudioRouteChoice(route: .realtimePTP, reason: "forced by --timing ptp")
        case .auto:
            if let needs {
                return AirPlayAudioRouteChoice(route: .realtimePTP, reason: needs.reason, ntpFallback: !needs.refusesNTP)
            }
            let kind = traits.model.map { "model \($0)" } ?? "receiver"
            return AirPlayAudioRouteChoice(
                route: .realtimeNTP,
                reason: "\(kind), \(traits.describedBits): NTP timing, known to work with HomePods and Apple TVs")
        }
    }
}
