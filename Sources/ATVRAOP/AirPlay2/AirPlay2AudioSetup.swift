// The AirPlay 2 realtime audio stream SETUP (`type 96`): the body we send and the reply we read
// (by key, never by position).
import ATVAirPlayCore
import ATVAuth
import ATVCore

// MARK: - Audio stream SETUP

/// The realtime audio stream we ask for (stream SETUP, `type 96`).
package struct AirPlay2AudioStreamRequest: Sendable, Equatable {
    /// Realtime audio (RTP over UDP with NTP/sync packets).
    package static let realtimeType = 96
    /// `ct` (compression type) and `audioFormat` bits.
    package static let alacCompression = 2
    package static let alac44100x16x2: Int64 = 0x40000
    package static let pcmCompression = 1
    package static let pcm44100x16x2: Int64 = 0x800

    package var codec: RAOPCodec
    package var controlPort: Int
    /// The 32-byte audio key (`shk`).
    package var sharedKey: [UInt8]
    package var framesPerPacket: Int
    package var sampleRate: Int
    package var latencyMin: Int
    package var latencyMax: Int
    /// The RTSP session id (also the SSRC), as `streamConnectionID`.
    package var streamConnectionID: UInt32

    package init(codec: RAOPCodec = .alac, controlPort: Int, sharedKey: [UInt8], framesPerPacket: Int = 352,
                sampleRate: Int = 44_100, latencyMin: Int = 11_025, latencyMax: Int = 88_200, streamConnectionID: UInt32) {
        self.codec = codec
        self.controlPort = controlPort
        self.sharedKey = sharedKey
        self.framesPerPacket = framesPerPacket
        self.sampleRate = sampleRate
        self.latencyMin = latencyMin
        self.latencyMax = latencyMax
        self.streamConnectionID = streamConnectionID
    }

    package var body: PlistValue {
        let alac = codec == .alac
        let stream: [String: PlistValue] = [
            "audioFormat": .int(alac ? Self.alac44100x16x2 : Self.pcm44100x16x2),
            "audioMode": .string("default"),
            "controlPort": .int(Int64(controlPort)),
            "ct": .int(Int64(alac ? Self.alacCompression : Self.pcmCompression)),
            "isMedia": .bool(true),
            "latencyMax": .int(Int64(latencyMax)),
            "latencyMin": .int(Int64(latencyMin)),
            "shk": .data(sharedKey),
            "spf": .int(Int64(framesPerPacket)),
            "sr": .int(Int64(sampleRate)),
            "type": .int(Int64(Self.realtimeType)),
            "supportsDynamicStreamID": .bool(false),
            "streamConnectionID": .int(Int64(streamConnectionID)),
        ]
        return .dict(["streams": .array([.dict(stream)])])
    }
}

/// The answer to the audio stream SETUP: where audio and control packets go.
package struct AirPlay2AudioStreamReply: Sendable, Equatable {
    package var dataPort: Int
    package var controlPort: Int
    package var type: Int?
    package var audioBufferSize: Int?

    package init(dataPort: Int, controlPort: Int, type: Int? = nil, audioBufferSize: Int? = nil) {
        self.dataPort = dataPort
        self.controlPort = controlPort
        self.type = type
        self.audioBufferSize = audioBufferSize
    }

    /// Finds the realtime stream (`type` 96, or the only stream) in `streams`, by key.
    package init(parsing body: [UInt8]) throws(ATVError) {
        let plist = try parsePlistBody(body, what: "audio stream SETUP")
        guard case .array(let streams)? = plist["streams"], !streams.isEmpty else {
            throw ATVError.protocolError("the audio stream SETUP reply has no streams")
        }
        let chosen = streams.first { $0["type"].flatMap(intValue) == AirPlay2AudioStreamRequest.realtimeType }
            ?? (streams.count == 1 ? streams[0] : nil)
        guard let stream = chosen else {
            throw ATVError.protocolError("the audio stream SETUP reply has no realtime (type 96) stream")
        }
        guard let data = stream["dataPort"].flatMap(portValue) else {
            throw ATVError.protocolError("the audio stream SETUP reply has no valid dataPort")
        }
        guard let control = stream["controlPort"].flatMap(portValue) else {
            throw ATVError.protocolError("the audio stream SETUP reply has no valid controlPort")
        }
        dataPort = data
        controlPort = control
        type = stream["type"].flatMap(intValue)
        audioBufferSize = stream["audioBufferSize"].flatMap(intValue)
    }
}
