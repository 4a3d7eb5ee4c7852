import ATVCore
import ATVHTTP

/// The audio payload of a RAOP stream.
public enum RAOPCodec: String, Sendable, Equatable, CaseIterable {
    /// Apple Lossless (`a=rtpmap:96 AppleLossless` + ALAC fmtp line).
    case alac
    /// Raw big-endian PCM (`a=rtpmap:96 L16/44100/2`, no fmtp line).
    case l16
}

/// The stream format announced in (or parsed from) the ANNOUNCE SDP.
package struct RAOPAudioFormat: Sendable, Equatable {
    package var codec: RAOPCodec
    package var framesPerPacket: Int
    package var sampleRate: Int
    package var channels: Int
    package var bitDepth: Int

    package init(codec: RAOPCodec = .alac, framesPerPacket: Int = 352, sampleRate: Int = 44_100,
                channels: Int = 2, bitDepth: Int = 16) {
        self.codec = codec
        self.framesPerPacket = framesPerPacket
        self.sampleRate = sampleRate
        self.channels = channels
        self.bitDepth = bitDepth
    }

    /// Bytes of one full packet of PCM (before any encoding).
    package var bytesPerPacket: Int { framesPerPacket * channels * bitDepth / 8 }
}

/// What a receiver learns from an ANNOUNCE body.
package struct SDPDescription: Sendable, Equatable {
    package var format: RAOPAudioFormat
    /// The `o=` session id (also the SSRC senders like pyatv use).
    package var sessionID: String?
    /// True if the SDP carries an AES key (`a=rsaaeskey` / `a=fpaeskey`): encrypted audio.
    package var encrypted: Bool
    /// The `a=min-latency` attribute, if any (frames).
    package var minLatency: Int?

    package init(format: RAOPAudioFormat, sessionID: String? = nil, encrypted: Bool = false, minLatency: Int? = nil) {
        self.format = format
        self.sessionID = sessionID
        self.encrypted = encrypted
        self.minLatency = minLatency
    }
}

package enum SDP {
    /// The ANNOUNCE body (CRLF lines). L16 never gets an fmtp line (shairport-sync treats L16 +
    /// fmtp as ALAC and crashes).
    package static func announce(format: RAOPAudioFormat, sessionID: UInt32, localIP: String, remoteIP: String) -> String {
        var lines = [
            "v=0",
            "o=iTunes \(sessionID) 0 IN IP4 \(localIP)",
            "s=iTunes",
            "c=IN IP4 \(remoteIP)",
            "t=0 0",
            "m=audio 0 RTP/AVP 96",
        ]
        switch format.codec {
        case .alac:
            lines.append("a=rtpmap:96 AppleLossless")
            lines.append("a=fmtp:96 \(format.framesPerPacket) 0 \(format.bitDepth) 40 10 14 \(format.channels) 255 0 0 \(format.sampleRate)")
        case .l16:
            lines.append("a=rtpmap:96 L16/\(format.sampleRate)/\(format.channels)")
        }
        return lines.map { $0 + "\r\n" }.joined()
    }

    /// Parses an ANNOUNCE body. Throws `protocolError` for an SDP without a usable audio format.
    package static func parse(_ text: String) throws -> SDPDescription {
        var rtpmap: String?
        var fmtp: [Int]?
        var sessionID: String?
        var encrypted = false
        var minLatency: Int?
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            let line = String(rawLine).trimmingSpaces
            if line.hasPrefix("o=") {
                let f = line.dropFirst(2).split(separator: " ")
                if f.count > 1 { sessionID = String(f[1]) }
            } else if line.hasPrefix("a=rtpmap:") {
                let rest = line.dropFirst("a=rtpmap:".count)
                if let space = rest.firstIndex(of: " ") { rtpmap = String(rest[rest.index(after: space)...]).trimmingSpaces }
            } else if line.hasPrefix("a=fmtp:") {
                let f = line.dropFirst("a=fmtp:".count).split(separator: " ").dropFirst()
                fmtp = f.compactMap { Int($0) }
                if fmtp?.count != f.count { throw ATVError.protocolError("malformed SDP fmtp line \"\(line.prefix(80))\"") }
            } else if line.hasPrefix("a=rsaaeskey:") || line.hasPrefix("a=fpaeskey:") {
                encrypted = true
            } else if line.hasPrefix("a=min-latency:") {
                minLatency = Int(line.dropFirst("a=min-latency:".count))
            }
        }
        guard let rtpmap else { throw ATVError.protocolError("SDP has no a=rtpmap line") }
        var format: RAOPAudioFormat
        if rtpmap.lowercased().hasPrefix("applelossless") {
            format = RAOPAudioFormat(codec: .alac)
            if let f = fmtp {
                guard f.count >= 11 else { throw ATVError.protocolError("ALAC fmtp line has \(f.count) fields, expected 11") }
                format.framesPerPacket = f[0]
                format.bitDepth = f[2]
                format.channels = f[6]
                format.sampleRate = f[10]
            }
        } else if rtpmap.uppercased().hasPrefix("L16") {
            let parts = rtpmap.split(separator: "/")
            format = RAOPAudioFormat(codec: .l16)
            if parts.count > 1 {
                guard let rate = Int(parts[1]) else { throw ATVError.protocolError("malformed L16 rtpmap \"\(rtpmap)\"") }
                format.sampleRate = rate
            }
            if parts.count > 2 {
                guard let ch = Int(parts[2]) else { throw ATVError.protocolError("malformed L16 rtpmap \"\(rtpmap)\"") }
                format.channels = ch
            }
        } else {
            throw ATVError.protocolError("unsupported SDP codec \"\(rtpmap.prefix(40))\"")
        }
        guard (1...8).contains(format.channels), (8000...384_000).contains(format.sampleRate),
              [8, 16, 24, 32].contains(format.bitDepth), (1...16384).contains(format.framesPerPacket) else {
            throw ATVError.protocolError("unsupported SDP audio format \(format)")
        }
        return SDPDescription(format: format, sessionID: sessionID, encrypted: encrypted, minLatency: minLatency)
    }
}
