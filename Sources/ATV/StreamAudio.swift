// Streaming audio through the facade: the RAOP protocol's sender (ATVRAOP's `RAOPService`),
// set up on first use.
import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVRAOP

/// What an audio stream sent, from `FacadeStream.streamAudio`.
public struct AudioStreamReport: Sendable {
    /// The receiver, "address:port".
    public var receiver: String
    /// The AirPlay generation the stream used.
    public var airPlayVersion: AirPlayMajorVersion
    /// The sender's counters: codec, packets sent and retransmitted, source frames, timing.
    public var details: RAOPStreamReport
}

extension FacadeStream {
    /// Stream PCM packets (an opened `AudioDecoder`, or any 44.1 kHz s16 stereo source in
    /// 352-frame packets) to the device's audio receiver, with metadata from `tags` and
    /// `metadata` (the caller's win unless `overrideMissing`); returns when the stream has ended
    /// (played out, or stopped with `remoteControl.stop()`). Progress: `progress()`.
    public func streamAudio<S: AsyncSequence & Sendable>(_ packets: S, tags: MediaMetadata = MediaMetadata(), duration: Double? = nil,
                                                         metadata: MediaMetadata? = nil,
                                                         overrideMissing: Bool = false) async throws -> AudioStreamReport
        where S.Element == PCMPacket {
        try device.guardOpen()
        guard let raop = device.raop else { throw ATVError.noService(.raop) }
        try await device.setUp(.raop)
        let report = try await raop.stream(packets: packets, tags: tags, duration: duration, metadata: metadata,
                                           overrideMissing: overrideMissing)
        return AudioStreamReport(receiver: "\(device.config.address):\(raop.client.port)", airPlayVersion: raop.airPlayVersion,
                                 details: report)
    }
}

/// A PCM source started a number of frames in (`atv stream --start`, and how a seek reopens a
/// file): ATVAudio's `PCMStartingAt`, under the name the facade has always offered.
public typealias PCMStartingAt<Base: AsyncSequence & Sendable> = ATVAudio.PCMStartingAt<Base> where Base.Element == PCMPacket

/// "90", "1:30", "1:02:03.5" as seconds; nil for anything else (`atv stream --start`).
public func parseStartPosition(_ text: String) -> Double? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard (1...3).contains(parts.count) else { return nil }
    var seconds = 0.0
    for (i, part) in parts.enumerated() {
        let last = i == parts.count - 1
        // Hours and minutes whole; the seconds may have a fraction; minutes and seconds below 60.
        guard let v = last ? Double(part) : Int(part).map(Double.init), v >= 0, v.isFinite, i == 0 || v < 60 else { return nil }
        seconds = seconds * 60 + v
    }
    return seconds
}
