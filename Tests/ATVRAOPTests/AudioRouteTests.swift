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

/// The type-103 format (`BufferedFormatChoice`) from `/info` `supportedFormats.bufferStream`
/// (docs/PTP-AND-BUFFERED-AUDIO.md §3.5, §3.10, §4.4) and `--codec`.
extension AudioRouteTests {
    /// shairport-sync 5.2.1 lists AAC-LC 44.1 kHz, ALAC 44.1 kHz/16, ALAC 48 kHz/24, AAC-LC 48 kHz.
    static let shairportBufferStream: UInt64 = 0x40_0000 | 0x4_0000 | 0x20_0000 | 0x80_0000

    @Test func alacWhereListedAsBefore() throws {
        let c = try BufferedFormatChoice.choose(bufferStream: Self.shairportBufferStream, codec: nil)
        #expect(c == BufferedFormatChoice(format: .alac44100x16Stereo, reason: "the receiver lists it for buffered streams"))
        #expect(c.format.ssrc == 0xFACE && c.format.audioFormat == 0x4_0000 && c.format.framesPerPacket == 352)
    }

    /// No `supportedFormats` (or no /info answer): ALAC, what was sent before formats were read.
    @Test func alacWhenNothingIsListed() throws {
        #expect(try BufferedFormatChoice.choose(bufferStream: nil, codec: nil)
            == BufferedFormatChoice(format: .alac44100x16Stereo, reason: "the receiver lists no buffered-stream formats in /info"))
    }

    /// AAC-LC 44.1 kHz where ALAC 44.1/16 is not listed: SSRC 0x16000000, audioFormat 0x400000,
    /// 1024 frames per packet, ct 4 — in the stream SETUP body too.
    @Test(arguments: [0x40_0000, 0x40_0000 | 0x20_0000 | 0x80_0000] as [UInt64])
    func aacWhereOnlyAACIsListed(bits: UInt64) throws {
        let c = try BufferedFormatChoice.choose(bufferStream: bits, codec: nil)
        #expect(c == BufferedFormatChoice(format: .aacLC44100Stereo, reason: "the receiver lists it, not ALAC 44.1 kHz 16-bit, for buffered streams"))
        let body = try BufferedAudioStreamRequest(format: c.format, controlPort: 0, sharedKey: [UInt8](repeating: 1, count: 32),
                                                  streamConnectionID: 7).body()
        let stream = try #require(body["streams"]?.array?.first)
        #expect(stream["audioFormat"] == .int(0x40_0000) && stream["ct"] == .int(4) && stream["spf"] == .int(1024)
                && stream["sr"] == .int(44_100) && stream["type"] == .int(103))
        #expect(c.format.ssrc == 0x1600_0000)
    }

    /// A HomePod mini's /info as one public capture shows it (unverified): bufferStream sent as a
    /// negative 64-bit integer, bits 19, 21, 22, 23 and 33+, without bit 18 (ALAC 44.1/16): AAC.
    @Test func negativeBufferStreamFromInfoIsReadByBitPattern() throws {
        let info = PlistValue.dict(["model": .string("AudioAccessory5,1"), "supportedFormats": .dict([
            "audioStream": .int(21_235_712), "bufferStream": .int(-577_021_992_844_656_640)])])
        let traits = AirPlayReceiverTraits(info: info)
        #expect(traits.bufferStreamFormats == 0xF7FE_018E_00E8_0000)
        #expect(try BufferedFormatChoice.choose(bufferStream: traits.bufferStreamFormats, codec: nil).format == .aacLC44100Stereo)
        // TXT has no formats: /info's are kept when merged.
        #expect(AirPlayReceiverTraits(model: "AudioAccessory5,1").merged(with: traits).bufferStreamFormats == 0xF7FE_018E_00E8_0000)
    }

    /// Only 48 kHz formats: one error naming them and the way out (no silent change of route).
    @Test func only48kHzFormatsIsOneClearError() {
        #expect(throws: ATVError.invalidValue(
            "buffered audio: the receiver takes buffered streams only as AAC-LC 48 kHz stereo, ALAC 48 kHz 24-bit stereo, other bits 0x1; swift-atv sends ALAC 44.1 kHz 16-bit or AAC-LC 44.1 kHz. Use --buffered off")) {
            try BufferedFormatChoice.choose(bufferStream: 0x80_0000 | 0x20_0000 | 1, codec: nil)
        }
        #expect(throws: ATVError.self) { try BufferedFormatChoice.choose(bufferStream: 0, codec: nil) }
    }

    /// `--codec alac|aac` wins, with a note when the receiver does not list it.
    @Test func codecOverride() throws {
        #expect(try BufferedFormatChoice.choose(bufferStream: Self.shairportBufferStream, codec: .aac)
            == BufferedFormatChoice(format: .aacLC44100Stereo, reason: "forced by --codec aac"))
        #expect(try BufferedFormatChoice.choose(bufferStream: 0x40_0000, codec: .alac)
            == BufferedFormatChoice(format: .alac44100x16Stereo, reason: "forced by --codec alac (the receiver does not list it for buffered streams)"))
        #expect(try BufferedFormatChoice.choose(bufferStream: 0x80_0000, codec: .aac).format == .aacLC44100Stereo)
    }

    /// The summary line names the buffered format.
    @Test func routeSummaryNamesTheFormat() {
        var c = AirPlayAudioRouteChoice(route: .bufferedPTP, reason: "forced by --buffered on")
        #expect(c.summary == "buffered PTP")
        c.bufferedCodec = .aac
        c.bufferedFormat = BufferedAudioFormat.aacLC44100Stereo.description
        #expect(c.summary == "buffered PTP, AAC-LC 44.1 kHz stereo")
    }
}
