// The route rule (`AirPlayAudioRouteChoice.choose`) for every kind of receiver
// docs/PTP-AND-BUFFERED-AUDIO.md §5 describes, with the `--timing` / `--buffered` overrides, and
// the traits it reads from TXT records and `GET /info`.
import ATVAirPlayCore
import ATVCore
@testable import ATVRAOP
import Testing

/// HomePod-like features: bits 38, 40, 41, 48 and more.
private let homePodFeatures = AirPlayFeatureFlags(parsing: "0x4A7FDFD5,0x3C155FDE")!
/// shairport-sync 5.2.1's AirPlay 2 features (bits 9, 11, 14, 18-20, 22, 30, 38, 40, 41, 47, 48).
private let shairportFeatures = AirPlayFeatureFlags(rawValue: 0x1_8340_405C_4A00)

private func choose(_ traits: AirPlayReceiverTraits, version: AirPlayMajorVersion = .v2, timing: AirPlayTimingPreference = .auto,
                    buffered: AirPlayBufferedPreference = .auto) throws -> AirPlayAudioRouteChoice {
    try AirPlayAudioRouteChoice.choose(version: version, traits: traits, timing: timing, buffered: buffered)
}

@Suite struct AudioRouteTests {
    @Test func shairportSyncFeaturesAreWhatTheReferenceLists() {
        #expect(shairportFeatures.bits == [9, 11, 14, 18, 19, 20, 22, 30, 38, 40, 41, 47, 48])
        #expect(homePodFeatures.has(bit: 40) && homePodFeatures.has(bit: 41) && homePodFeatures.isAirPlay2)
    }

    /// Apple receivers keep realtime NTP (pyatv's route, known to play), whatever bits 40/41 say.
    @Test(arguments: ["AudioAccessory5,1", "AudioAccessory6,1", "AudioAccessory1,1", "AppleTV6,2", "AppleTV14,1"])
    func appleReceiversKeepRealtimeNTP(model: String) throws {
        let c = try choose(AirPlayReceiverTraits(features: homePodFeatures, model: model, manufacturer: "Apple Inc."))
        #expect(c.route == .realtimeNTP && !c.ntpFallback)
        #expect(c.reason == "model \(model), features with bit 40+41: NTP timing, known to work with HomePods and Apple TVs")
    }

    /// shairport-sync's AirPlay 2 mode refuses NTP: PTP, and no NTP fallback when 319/320 fail.
    @Test func shairportSyncAirPlay2GetsPTPWithoutFallback() throws {
        let c = try choose(AirPlayReceiverTraits(features: shairportFeatures, model: "ShairportSync"))
        #expect(c == AirPlayAudioRouteChoice(route: .realtimePTP, reason: "shairport-sync's AirPlay 2 mode refuses NTP timing",
                                             ntpFallback: false))
        // Forced NTP is honoured, with the note.
        let forced = try choose(AirPlayReceiverTraits(features: shairportFeatures, model: "ShairportSync"), timing: .ntp)
        #expect(forced.route == .realtimeNTP)
        #expect(forced.reason == "forced by --timing ntp; note: shairport-sync's AirPlay 2 mode refuses NTP timing")
    }

    /// shairport-sync in classic mode (no bit 38/48) is AirPlay 1, whatever its model says.
    @Test func shairportSyncClassicIsAirPlay1() throws {
        let c = try choose(AirPlayReceiverTraits(features: AirPlayFeatureFlags(parsing: "0x5A7FFFF7,0x1E"), model: "ShairportSync"),
                           version: .v1)
        #expect(c.route == .airPlay1)
    }

    /// Sonos, Samsung, IKEA SYMFONISK are reported (unverified) to need PTP: PTP, NTP fallback allowed.
    @Test(arguments: [
        (AirPlayReceiverTraits(features: homePodFeatures, model: "S38", manufacturer: "Sonos, Inc."), "Sonos receivers are reported to need PTP timing"),
        (AirPlayReceiverTraits(features: homePodFeatures, model: "HW-LS60D", manufacturer: "Samsung"), "Samsung receivers are reported to need PTP timing"),
        (AirPlayReceiverTraits(features: homePodFeatures, model: "SYMFONISK", manufacturer: "IKEA of Sweden"), "IKEA SYMFONISK is reported to stall under NTP timing"),
    ])
    func thirdPartyPTPReceivers(traits: AirPlayReceiverTraits, reason: String) throws {
        #expect(try choose(traits) == AirPlayAudioRouteChoice(route: .realtimePTP, reason: reason, ntpFallback: true))
        #expect(try choose(traits, timing: .ptp).ntpFallback == false)
    }

    /// Sony/Google TVs advertise PTP (bit 41) yet play only with NTP; openairplay has no PTP
    /// follower; an unknown receiver: all keep NTP.
    @Test(arguments: [
        AirPlayReceiverTraits(features: homePodFeatures, model: "BRAVIA 4K", manufacturer: "Sony"),
        AirPlayReceiverTraits(features: AirPlayFeatureFlags(rawValue: 1 << 38 | 1 << 40 | 1 << 48), model: "Airplay2-Receiver"),
        AirPlayReceiverTraits(),
    ])
    func othersKeepNTP(traits: AirPlayReceiverTraits) throws {
        #expect(try choose(traits).route == .realtimeNTP)
    }

    @Test func forcedPTPAndTheErrors() throws {
        let pod = AirPlayReceiverTraits(features: homePodFeatures, model: "AudioAccessory5,1")
        #expect(try choose(pod, timing: .ptp) == AirPlayAudioRouteChoice(route: .realtimePTP, reason: "forced by --timing ptp"))
        #expect(try choose(pod, buffered: .off).route == .realtimeNTP)
        #expect(try choose(AirPlayReceiverTraits(), version: .v1) == AirPlayAudioRouteChoice(route: .airPlay1, reason: "AirPlay 1 receiver"))
        #expect(throws: ATVError.invalidValue("--timing ptp needs an AirPlay 2 receiver; this one speaks AirPlay 1 (RAOP) only")) {
            try choose(AirPlayReceiverTraits(), version: .v1, timing: .ptp)
        }
        #expect(throws: ATVError.self) { try choose(AirPlayReceiverTraits(), version: .v1, buffered: .on) }
        // --buffered on: buffered PTP (auto or forced PTP timing); with --timing ntp one clear error.
        #expect(try choose(pod, buffered: .on) == AirPlayAudioRouteChoice(route: .bufferedPTP, reason: "forced by --buffered on"))
        #expect(try choose(pod, timing: .ptp, buffered: .on).route == .bufferedPTP)
        #expect(try choose(pod, buffered: .auto).route == .realtimeNTP)
        #expect(throws: ATVError.invalidValue("--buffered on needs PTP timing; use --timing ptp or auto")) {
            try choose(pod, timing: .ntp, buffered: .on)
        }
    }

    /// Traits from TXT (RAOP `am`/`ft`, AirPlay `model`/`features`, `manufacturer`) and from /info, merged.
    @Test func traitsFromTXTAndInfo() {
        let raop = ["am": "ShairportSync", "ft": "0x405C4A00,0x18340"]
        let airplay = ["model": "Other", "features": "0x1,0x0", "manufacturer": "Acme"]
        let t = AirPlayReceiverTraits(txt: [raop, airplay])
        #expect(t == AirPlayReceiverTraits(features: shairportFeatures, model: "ShairportSync", manufacturer: "Acme"))
        #expect(t.isShairportSync)
        let info = AirPlayReceiverTraits(info: .dict(["features": .int(Int64(shairportFeatures.rawValue)), "model": .string("ShairportSync")]))
        #expect(info == AirPlayReceiverTraits(features: shairportFeatures, model: "ShairportSync"))
        #expect(AirPlayReceiverTraits().merged(with: info) == info)
        #expect(AirPlayReceiverTraits(model: "X").merged(with: info).model == "X")
    }

    /// UDP 319/320 not bindable (PTPPorts' one line): NTP plus a warning where the route allows
    /// it, nothing (the stream fails with that line) where PTP was forced or NTP is refused.
    @Test func fallbackWhenThePTPPortsCannotBeBound() throws {
        let error = ATVError.connectionFailed("cannot bind UDP on 127.0.0.1:319: another program holds the port; stop it")
        let sonos = try choose(AirPlayReceiverTraits(manufacturer: "Sonos"))
        let fallback = try #require(sonos.fallingBack(after: error))
        #expect(fallback.choice == AirPlayAudioRouteChoice(
            route: .realtimeNTP, reason: "Sonos receivers are reported to need PTP timing; PTP ports unavailable, NTP instead"))
        #expect(fallback.warning == "PTP timing unavailable (\(error)); streaming with NTP timing instead")
        #expect(!fallback.warning.contains("\n"))
        #expect(try choose(AirPlayReceiverTraits(manufacturer: "Sonos"), timing: .ptp).fallingBack(after: error) == nil)
        #expect(try choose(AirPlayReceiverTraits(model: "ShairportSync")).fallingBack(after: error) == nil)
        #expect(try choose(AirPlayReceiverTraits()).fallingBack(after: error) == nil)
    }

    @Test func routeNames() {
        #expect(AirPlayAudioRoute.allCases.map(\.shortName) == ["AirPlay 1", "realtime NTP", "realtime PTP", "buffered PTP"])
        #expect(AirPlayAudioRoute.realtimePTP.description == "AirPlay 2 realtime, PTP timing")
    }
}
