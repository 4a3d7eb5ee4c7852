// Buffered AirPlay 2 audio (stream type 103), the RTSP side
// (docs/PTP-AND-BUFFERED-AUDIO.md §3.5-§3.7, §4.4): the formats a receiver accepts and their SSRC
// codes, the stream SETUP and its reply, SETRATEANCHORTIME and FLUSHBUFFERED. Sans-I/O: builders
// return `RTSPRequest`s and plists; the parsers are what a virtual receiver reads. Times are PTP
// master time in nanoseconds, passed in; the clock id is a plain `UInt64`.
import ATVAirPlayCore
import ATVCore
import ATVHTTP

// MARK: - Formats

/// A type-103 audio format: the `audioFormat` bit and `ct` of the stream SETUP, and the SSRC code
/// every packet carries (shairport-sync drops packets whose SSRC is not one of these,
/// docs/PTP-AND-BUFFERED-AUDIO.md §4.4).
package enum BufferedAudioFormat: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// AAC-LC 44100 Hz stereo, 1024 frames per packet.
    case aacLC44100Stereo = 0x1600_0000
    /// AAC-LC 48000 Hz stereo.
    case aacLC48000Stereo = 0x1700_0000
    /// AAC-LC 48000 Hz 5.1.
    case aacLC48000Surround51 = 0x2700_0000
    /// AAC-LC 48000 Hz 7.1.
    case aacLC48000Surround71 = 0x2800_0000
    /// ALAC 48000 Hz, 24-bit, stereo, 352 frames per packet.
    case alac48000x24Stereo = 0x1500_0000
    /// ALAC 44100 Hz, 16-bit, stereo: shairport-sync's own code (0xFACE), not an Apple value
    /// (docs/PTP-AND-BUFFERED-AUDIO.md §4.4, derived); no Apple SSRC for this format is known.
    case alac44100x16Stereo = 0x0000_FACE

    /// The RTP SSRC field of every packet.
    package var ssrc: UInt32 { rawValue }

    /// The format an SSRC names, nil for unknown codes (which shairport-sync drops).
    package init?(ssrc: UInt32) { self.init(rawValue: ssrc) }

    package var isAAC: Bool {
        switch self {
        case .aacLC44100Stereo, .aacLC48000Stereo, .aacLC48000Surround51, .aacLC48000Surround71: true
        case .alac48000x24Stereo, .alac44100x16Stereo: false
        }
    }

    package var sampleRate: Int { self == .aacLC44100Stereo || self == .alac44100x16Stereo ? 44_100 : 48_000 }
    package var framesPerPacket: Int { isAAC ? 1024 : 352 }
    package var channels: Int {
        switch self {
        case .aacLC48000Surround51: 6
        case .aacLC48000Surround71: 8
        default: 2
        }
    }
    package var bitsPerSample: Int { self == .alac48000x24Stereo ? 24 : 16 }

    /// The stream SETUP `audioFormat` bit (docs/PTP-AND-BUFFERED-AUDIO.md §3.5 table). The 5.1/7.1
    /// AAC bits are not known: nil, and such a stream cannot be set up.
    package var audioFormat: Int64? {
        switch self {
        case .aacLC44100Stereo: 0x40_0000
        case .aacLC48000Stereo: 0x80_0000
        case .alac48000x24Stereo: 0x20_0000
        case .alac44100x16Stereo: 0x4_0000
        case .aacLC48000Surround51, .aacLC48000Surround71: nil
        }
    }

    /// The largest codec frame of one packet: AAC-LC at most 6144 bits per channel (ISO/IEC
    /// 14496-3); ALAC at most its uncompressed samples plus frame header and padding.
    package var maximumPayloadBytes: Int {
        isAAC ? 768 * channels : framesPerPacket * channels * bitsPerSample / 8 + 16
    }

    /// The largest frame one packet makes on the data connection (prefix, header, tag, nonce tail).
    package var maximumFrameBytes: Int {
        BufferedAudioPacket.prefixSize + BufferedAudioPacket.minimumSealedSize + maximumPayloadBytes
    }

    /// The stream SETUP `ct`: ALAC 2, AAC-LC 4 (docs/PTP-AND-BUFFERED-AUDIO.md §3.5). The AAC value
    /// is unverified: 4 per a third-party sender and openairplay's table (1 PCM, 2 ALAC, 4 AAC-LC,
    /// 8 AAC-ELD), 3 in a comment of OwnTone's; shairport-sync reads `audioFormat` for type 103,
    /// and openairplay picks the codec from `audioFormat` too.
    package var compressionType: Int { isAAC ? 4 : 2 }

    package var description: String {
        switch self {
        case .aacLC44100Stereo: "AAC-LC 44.1 kHz stereo"
        case .aacLC48000Stereo: "AAC-LC 48 kHz stereo"
        case .aacLC48000Surround51: "AAC-LC 48 kHz 5.1"
        case .aacLC48000Surround71: "AAC-LC 48 kHz 7.1"
        case .alac48000x24Stereo: "ALAC 48 kHz 24-bit stereo"
        case .alac44100x16Stereo: "ALAC 44.1 kHz 16-bit stereo"
        }
    }
}

// MARK: - Which format

/// The type-103 format for one receiver (pure), from its `/info` `supportedFormats.bufferStream`
/// (the stream SETUP `audioFormat` bits it takes on buffered streams, docs/PTP-AND-BUFFERED-AUDIO.md
/// §3.5, §3.10) and `--codec`:
///
/// 1. ALAC 44.1 kHz/16-bit (SSRC 0xFACE, the encoded payload of the realtime path) where listed
///    (bit 0x40000), or where nothing is listed (a receiver without `supportedFormats`, or no
///    `/info` answer: what was sent before formats were read).
/// 2. Otherwise AAC-LC 44.1 kHz stereo (bit 0x400000; SSRC 0x16000000, 1024 frames per packet),
///    encoded with FFmpeg's `aac` encoder.
/// 3. Otherwise one error: the remaining buffered formats are 48 kHz (ALAC 24-bit, AAC-LC), and our
///    audio is 44.1 kHz throughout. No fallback to realtime: buffered is taken only when asked
///    for (`--buffered on`), and the error says to use `--buffered off`.
///
/// `--codec alac|aac` forces the codec whatever the receiver lists.
package struct BufferedFormatChoice: Sendable, Equatable {
    package var format: BufferedAudioFormat
    package var reason: String

    package init(format: BufferedAudioFormat, reason: String) {
        self.format = format
        self.reason = reason
    }

    /// The formats in `bits` by name ("ALAC 48 kHz 24-bit stereo, AAC-LC 48 kHz stereo"), unknown
    /// bits as hex.
    static func describe(_ bits: UInt64) -> String {
        var names: [String] = []
        var rest = bits
        for f in BufferedAudioFormat.allCases {
            guard let bit = f.audioFormat.map({ UInt64($0) }), bits & bit != 0 else { continue }
            names.append(f.description)
            rest &= ~bit
        }
        if rest != 0 { names.append("other bits 0x" + String(rest, radix: 16, uppercase: true)) }
        return names.isEmpty ? "none" : names.joined(separator: ", ")
    }

    package static func choose(bufferStream: UInt64?, codec: AirPlayBufferedCodec?) throws(ATVError) -> BufferedFormatChoice {
        let alac = BufferedAudioFormat.alac44100x16Stereo, aac = BufferedAudioFormat.aacLC44100Stereo
        func listed(_ f: BufferedAudioFormat) -> Bool {
            guard let bits = bufferStream, let bit = f.audioFormat else { return false }
            return bits & UInt64(bit) != 0
        }
        func note(_ f: BufferedAudioFormat) -> String {
            bufferStream == nil || listed(f) ? "" : " (the receiver does not list it for buffered streams)"
        }
        switch codec {
        case .alac?: return BufferedFormatChoice(format: alac, reason: "forced by --codec alac" + note(alac))
        case .aac?: return BufferedFormatChoice(format: aac, reason: "forced by --codec aac" + note(aac))
        case nil: break
        }
        guard let bits = bufferStream else {
            return BufferedFormatChoice(format: alac, reason: "the receiver lists no buffered-stream formats in /info")
        }
        if listed(alac) { return BufferedFormatChoice(format: alac, reason: "the receiver lists it for buffered streams") }
        if listed(aac) {
            return BufferedFormatChoice(format: aac, reason: "the receiver lists it, not ALAC 44.1 kHz 16-bit, for buffered streams")
        }
        throw ATVError.invalidValue(
            "buffered audio: the receiver takes buffered streams only as \(describe(bits)); swift-atv sends ALAC 44.1 kHz 16-bit or AAC-LC 44.1 kHz. Use --buffered off")
    }
}

// MARK: - Stream SETUP (type 103)

/// The buffered audio stream we ask for (stream SETUP, `type 103`, docs/PTP-AND-BUFFERED-AUDIO.md
/// §3.5): no `latencyMin` / `latencyMax` (Sonos adds `latencyMax` of delay when they are present),
/// no `dataPort`.
package struct BufferedAudioStreamRequest: Sendable, Equatable {
    package static let bufferedType = 103

    package var format: BufferedAudioFormat
    /// Our UDP control port (unused by shairport-sync for 103; sent as OwnTone does).
    package var controlPort: Int
    /// The 32-byte audio key (`shk`).
    package var sharedKey: [UInt8]
    /// `streamConnectionID` (the RTSP session id in OwnTone).
    package var streamConnectionID: UInt32
    package var audioMode: String

    package init(format: BufferedAudioFormat, controlPort: Int, sharedKey: [UInt8], streamConnectionID: UInt32,
                audioMode: String = "default") {
        self.format = format
        self.controlPort = controlPort
        self.sharedKey = sharedKey
        self.streamConnectionID = streamConnectionID
        self.audioMode = audioMode
    }

    /// `{streams: [{type 103, audioFormat, ct, spf, sr, shk, controlPort, audioMode, isMedia,
    /// streamConnectionID, supportsDynamicStreamID}]}`. A format without a known `audioFormat` bit
    /// or a key that is not 32 bytes is refused.
    package func body() throws(ATVError) -> PlistValue {
        guard let audioFormat = format.audioFormat else {
            throw ATVError.badInput("buffered audio: the stream SETUP bit for \(format) is not known")
        }
        guard sharedKey.count == 32 else { throw ATVError.badInput("AirPlay 2 audio key must be 32 bytes, got \(sharedKey.count)") }
        let stream: [String: PlistValue] = [
            "type": .int(Int64(Self.bufferedType)),
            "audioFormat": .int(audioFormat),
            "ct": .int(Int64(format.compressionType)),
            "spf": .int(Int64(format.framesPerPacket)),
            "sr": .int(Int64(format.sampleRate)),
            "shk": .data(sharedKey),
            "controlPort": .int(Int64(controlPort)),
            "audioMode": .string(audioMode),
            "isMedia": .bool(true),
            "streamConnectionID": .int(Int64(streamConnectionID)),
            "supportsDynamicStreamID": .bool(false),
        ]
        return .dict(["streams": .array([.dict(stream)])])
    }

    /// The SETUP request on the session URL.
    package func request(uri: String) throws(ATVError) -> RTSPRequest {
        bplistRequest("SETUP", uri: uri, body: try body())
    }

    /// Reads a type-103 stream SETUP request (the receiver's side): the format from the `audioFormat`
    /// bit, the 32-byte `shk` (shairport-sync: missing = fatal), `controlPort`, `streamConnectionID`.
    package init(parsing plist: PlistValue) throws(ATVError) {
        guard let streams = plist["streams"]?.array,
              let stream = streams.first(where: { $0["type"].flatMap(intValue) == Self.bufferedType }) else {
            throw ATVError.protocolError("the stream SETUP has no buffered (type 103) stream")
        }
        guard let bit = stream["audioFormat"].flatMap(intValue),
              let format = BufferedAudioFormat.allCases.first(where: { $0.audioFormat == Int64(bit) }) else {
            throw ATVError.protocolError("the buffered stream SETUP has no known audioFormat")
        }
        guard let key = stream["shk"]?.data, key.count == 32 else {
            throw ATVError.protocolError("the buffered stream SETUP has no 32-byte shk")
        }
        self.format = format
        sharedKey = key
        controlPort = stream["controlPort"].flatMap(intValue) ?? 0
        streamConnectionID = stream["streamConnectionID"].flatMap(intValue).map { UInt32(truncatingIfNeeded: $0) } ?? 0
        audioMode = stream["audioMode"]?.string ?? "default"
    }
}

/// The answer to the buffered stream SETUP: the TCP `dataPort` to connect to, the receiver's UDP
/// `controlPort` (when given) and `audioBufferSize` (8388608 from shairport-sync and openairplay),
/// read by key (receivers often write `controlPort` first).
package struct BufferedAudioStreamReply: Sendable, Equatable {
    /// shairport-sync's and openairplay's `audioBufferSize`, assumed when the reply has none.
    package static let defaultAudioBufferSize = 8_388_608

    package var dataPort: Int
    package var controlPort: Int?
    package var audioBufferSize: Int?
    package var streamID: Int?

    package init(dataPort: Int, controlPort: Int? = nil, audioBufferSize: Int? = nil, streamID: Int? = nil) {
        self.dataPort = dataPort
        self.controlPort = controlPort
        self.audioBufferSize = audioBufferSize
        self.streamID = streamID
    }

    /// The buffer size to plan the send-ahead window with.
    package var effectiveAudioBufferSize: Int { audioBufferSize ?? Self.defaultAudioBufferSize }

    /// Finds the type-103 stream (or the only stream) in `streams`.
    package init(parsing body: [UInt8]) throws(ATVError) {
        let plist = try parsePlistBody(body, what: "buffered stream SETUP")
        guard let streams = plist["streams"]?.array, !streams.isEmpty else {
            throw ATVError.protocolError("the buffered stream SETUP reply has no streams")
        }
        let chosen = streams.first { $0["type"].flatMap(intValue) == BufferedAudioStreamRequest.bufferedType }
            ?? (streams.count == 1 ? streams[0] : nil)
        guard let stream = chosen else {
            throw ATVError.protocolError("the buffered stream SETUP reply has no buffered (type 103) stream")
        }
        guard let data = stream["dataPort"].flatMap(portValue) else {
            throw ATVError.protocolError("the buffered stream SETUP reply has no valid dataPort")
        }
        dataPort = data
        controlPort = stream["controlPort"].flatMap(portValue)
        audioBufferSize = stream["audioBufferSize"].flatMap(intValue).flatMap { $0 > 0 ? $0 : nil }
        streamID = stream["streamID"].flatMap(intValue)
    }

    /// The reply body (the receiver's side), shairport-sync's shape.
    package var body: PlistValue {
        var stream: [String: PlistValue] = ["type": .int(Int64(BufferedAudioStreamRequest.bufferedType)),
                                            "dataPort": .int(Int64(dataPort))]
        if let controlPort { stream["controlPort"] = .int(Int64(controlPort)) }
        if let audioBufferSize { stream["audioBufferSize"] = .int(Int64(audioBufferSize)) }
        if let streamID { stream["streamID"] = .int(Int64(streamID)) }
        return .dict(["streams": .array([.dict(stream)])])
    }
}

// MARK: - Network time

/// A time on the PTP master's timescale as SETRATEANCHORTIME writes it: whole seconds and a
/// fraction in units of 2^-64 s (docs/PTP-AND-BUFFERED-AUDIO.md §3.6).
package struct AirPlay2NetworkTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var seconds: UInt64
    package var fraction: UInt64

    package init(seconds: UInt64, fraction: UInt64) {
        self.seconds = seconds
        self.fraction = fraction
    }

    /// From nanoseconds: `fraction = ns × 2^64 / 10^9`, truncated (890123456 ns → 0xE3DF217CEC28A178).
    package init(nanoseconds: UInt64) {
        seconds = nanoseconds / 1_000_000_000
        let ns = nanoseconds % 1_000_000_000
        fraction = UInt64(1_000_000_000).dividingFullWidth((high: ns, low: 0)).quotient
    }

    /// Back to nanoseconds, rounded to the nearest (exact for values made by `init(nanoseconds:)`).
    package var nanoseconds: UInt64 {
        let p = fraction.multipliedFullWidth(by: 1_000_000_000)
        let rounded = p.high + (p.low >= 1 << 63 ? 1 : 0)
        return seconds &* 1_000_000_000 &+ rounded
    }

    package static func < (a: Self, b: Self) -> Bool { (a.seconds, a.fraction) < (b.seconds, b.fraction) }
    package var description: String { "\(seconds)s+\(fraction)/2^64" }
}

// MARK: - SETRATEANCHORTIME

/// SETRATEANCHORTIME (docs/PTP-AND-BUFFERED-AUDIO.md §3.6): play (`rate` 1) with the anchor "frame
/// `rtpTime` is audible at `networkTime` on clock `timelineID`", or pause (`{rate: 0}` alone, as
/// Apple sends it). `rate` is an integer plist node (shairport-sync reads nothing from a real) and
/// `networkTimeFlags` is 0.
package enum BufferedRateAnchor: Sendable, Equatable {
    case play(rtpTime: UInt32, networkTime: AirPlay2NetworkTime, timelineID: UInt64)
    case pause

    package static let method = "SETRATEANCHORTIME"

    /// Play with the network time in nanoseconds.
    package static func play(rtpTime: UInt32, networkTimeNanoseconds: UInt64, timelineID: UInt64) -> Self {
        .play(rtpTime: rtpTime, networkTime: AirPlay2NetworkTime(nanoseconds: networkTimeNanoseconds), timelineID: timelineID)
    }

    package var body: PlistValue {
        switch self {
        case .pause:
            return .dict(["rate": .int(0)])
        case .play(let rtp, let time, let timeline):
            return .dict([
                "rate": .int(1),
                "rtpTime": .int(Int64(rtp)),
                "networkTimeSecs": .int(Int64(bitPattern: time.seconds)),
                "networkTimeFrac": .int(Int64(bitPattern: time.fraction)),
                "networkTimeTimelineID": .int(Int64(bitPattern: timeline)),
                "networkTimeFlags": .int(0),
            ])
        }
    }

    package func request(uri: String) -> RTSPRequest { bplistRequest(Self.method, uri: uri, body: body) }

    /// Reads a SETRATEANCHORTIME body (the receiver's side) as shairport-sync does: `rate` must be
    /// an integer (a real is refused) and only its bit 0 counts; a play needs the whole anchor;
    /// `rtpTime` is truncated to 32 bits.
    package init(parsing plist: PlistValue) throws(ATVError) {
        guard plist.dict != nil else { throw ATVError.protocolError("the SETRATEANCHORTIME body is not a dictionary") }
        guard case .int(let rate)? = plist["rate"] else {
            throw ATVError.protocolError("SETRATEANCHORTIME has no integer rate")
        }
        guard rate & 1 == 1 else { self = .pause; return }
        guard case .int(let rtp)? = plist["rtpTime"], case .int(let secs)? = plist["networkTimeSecs"],
              case .int(let frac)? = plist["networkTimeFrac"], case .int(let timeline)? = plist["networkTimeTimelineID"] else {
            throw ATVError.protocolError("SETRATEANCHORTIME with rate 1 lacks rtpTime or the network time")
        }
        self = .play(rtpTime: UInt32(truncatingIfNeeded: rtp),
                     networkTime: AirPlay2NetworkTime(seconds: UInt64(bitPattern: secs), fraction: UInt64(bitPattern: frac)),
                     timelineID: UInt64(bitPattern: timeline))
    }
}

// MARK: - FLUSHBUFFERED

/// FLUSHBUFFERED (docs/PTP-AND-BUFFERED-AUDIO.md §3.7). Without `from`: an immediate flush: the
/// receiver stops, clears its anchor and discards packets until the one with sequence
/// `untilSequence` (kept: the first packet of the new content); playback needs a new anchor. With
/// `from`: a deferred flush of the packets from `from` up to (not including) `until`, without
/// stopping. Sequence numbers are the 23-bit ones of the packets (same doc, §4.2).
package struct BufferedFlush: Sendable, Equatable {
    package static let method = "FLUSHBUFFERED"

    package var fromSequence: UInt32?
    package var fromTimestamp: UInt32?
    package var untilSequence: UInt32
    package var untilTimestamp: UInt32

    package init(untilSequence: UInt32, untilTimestamp: UInt32, fromSequence: UInt32? = nil, fromTimestamp: UInt32? = nil) {
        self.untilSequence = untilSequence & BufferedAudioPacket.sequenceMask
        self.untilTimestamp = untilTimestamp
        self.fromSequence = fromSequence.map { $0 & BufferedAudioPacket.sequenceMask }
        self.fromTimestamp = fromTimestamp
    }

    package var isImmediate: Bool { fromSequence == nil }

    package var body: PlistValue {
        var d: [String: PlistValue] = ["flushUntilSeq": .int(Int64(untilSequence)), "flushUntilTS": .int(Int64(untilTimestamp))]
        if let fromSequence { d["flushFromSeq"] = .int(Int64(fromSequence)) }
        if let fromTimestamp { d["flushFromTS"] = .int(Int64(fromTimestamp)) }
        return .dict(d)
    }

    package func request(uri: String) -> RTSPRequest { bplistRequest(Self.method, uri: uri, body: body) }

    /// Reads a FLUSHBUFFERED body (the receiver's side): `flushUntilSeq` and `flushUntilTS` are
    /// required; sequence numbers are masked to 23 bits as shairport-sync does.
    package init(parsing plist: PlistValue) throws(ATVError) {
        func value(_ key: String) throws(ATVError) -> UInt32? {
            guard let v = plist[key] else { return nil }
            guard case .int(let i) = v else { throw ATVError.protocolError("FLUSHBUFFERED \(key) is not an integer") }
            return UInt32(truncatingIfNeeded: i)
        }
        guard let untilSeq = try value("flushUntilSeq"), let untilTS = try value("flushUntilTS") else {
            throw ATVError.protocolError("FLUSHBUFFERED lacks flushUntilSeq or flushUntilTS")
        }
        self.init(untilSequence: untilSeq, untilTimestamp: untilTS,
                  fromSequence: try value("flushFromSeq"), fromTimestamp: try value("flushFromTS"))
    }
}

private func bplistRequest(_ method: String, uri: String, body: PlistValue) -> RTSPRequest {
    var h = RTSPHeaders()
    h.set("Content-Type", "application/x-apple-binary-plist")
    return RTSPRequest(method: method, uri: uri, headers: h, body: BinaryPlist.encode(body))
}
