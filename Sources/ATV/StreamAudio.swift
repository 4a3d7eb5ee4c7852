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
