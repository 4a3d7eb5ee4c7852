import ATVCore
import ATVHTTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The AirPlay video requests, as pyatv 0.18 sends them to an AirPlay 1 receiver: a binary
/// plist `POST /play`, `GET /playback-info` polls, and the classic `/scrub`, `/rate`, `/stop`.
package enum AirPlayRequests {
    package static let userAgent = "MediaControl/1.0"
    package static let plistType = "application/x-apple-binary-plist"

    /// `POST /play` with `{Content-Location, Start-Position, X-Apple-Session-ID}` (pyatv's AirPlay 1
    /// body; Start-Position in seconds) plus `Start-Position-Seconds` (the explicit-seconds key
    /// newer receivers read; receivers that do not know it ignore it).
    package static func play(url: String, position: Double, sessionID: String) -> HTTPRequestMessage {
        let body: PlistValue = .dict([
            "Content-Location": .string(url),
            "Start-Position": .real(position),
            "Start-Position-Seconds": .real(position),
            "X-Apple-Session-ID": .string(sessionID),
        ])
        return HTTPRequestMessage(method: "POST", uri: "/play",
                                  headers: ["User-Agent": userAgent, "Content-Type": plistType],
                                  body: BinaryPlist.encode(body))
    }

    package static func playbackInfo() -> HTTPRequestMessage {
        HTTPRequestMessage(method: "GET", uri: "/playback-info", headers: ["User-Agent": userAgent])
    }

    /// Seek to `position` seconds.
    package static func scrub(position: Double) -> HTTPRequestMessage {
        HTTPRequestMessage(method: "POST", uri: "/scrub?position=" + String(cFormat: "%.6f", position),
                           headers: ["User-Agent": userAgent])
    }

    /// 0 pauses, 1 plays.
    package static func rate(_ value: Double) -> HTTPRequestMessage {
        HTTPRequestMessage(method: "POST", uri: "/rate?value=" + String(cFormat: "%.6f", value),
                           headers: ["User-Agent": userAgent])
    }

    package static func stop() -> HTTPRequestMessage {
        HTTPRequestMessage(method: "POST", uri: "/stop", headers: ["User-Agent": userAgent])
    }

    package static func serverInfo() -> HTTPRequestMessage {
        HTTPRequestMessage(method: "GET", uri: "/server-info", headers: ["User-Agent": userAgent])
    }
}

/// The body of a `POST /play` as a receiver reads it: a binary plist, or the legacy
/// `text/parameters` form (`Content-Location: …\nStart-Position: …`).
package struct AirPlayPlayRequest: Sendable, Equatable {
    package var url: String
    /// `Start-Position` as sent (pyatv: seconds; the original protocol: a fraction of the duration).
    package var startPosition: Double?
    package var startPositionSeconds: Double?
    package var sessionID: String?

    package init(url: String, startPosition: Double? = nil, startPositionSeconds: Double? = nil, sessionID: String? = nil) {
        self.url = url
        self.startPosition = startPosition
        self.startPositionSeconds = startPositionSeconds
        self.sessionID = sessionID
    }

    /// Throws `ATVError.protocolError` for a body without a `Content-Location`.
    package init(body: [UInt8]) throws {
        if let dict = (try? BinaryPlist.decode(body))?.dict {
            guard let url = dict["Content-Location"]?.string, !url.isEmpty else {
                throw ATVError.protocolError("/play body has no Content-Location")
            }
            self.init(url: url, startPosition: dict["Start-Position"]?.double,
                      startPositionSeconds: dict["Start-Position-Seconds"]?.double,
                      sessionID: dict["X-Apple-Session-ID"]?.string)
            return
        }
        var fields: [String: String] = [:]
        for line in String(decoding: body, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2 { fields[kv[0].trimmingWhitespace()] = kv[1].trimmingWhitespace() }
        }
        guard let url = fields["Content-Location"], !url.isEmpty else {
            throw ATVError.protocolError("/play body is neither a binary plist nor text parameters with a Content-Location")
        }
        self.init(url: url, startPosition: fields["Start-Position"].flatMap(Double.init))
    }

    /// The start in seconds, as a receiver that takes pyatv's meaning would use it.
    package var startSeconds: Double { startPositionSeconds ?? startPosition ?? 0 }
}

/// What `GET /playback-info` says. `duration` is present only while something is loaded.
package struct PlaybackInfo: Sendable, Equatable {
    package struct Failure: Sendable, Equatable {
        package var code: Int
        package var domain: String
        package var message: String?
        package init(code: Int, domain: String, message: String? = nil) {
            self.code = code
            self.domain = domain
            self.message = message
        }
    }
    package var duration: Double?
    package var position: Double?
    package var rate: Double?
    package var readyToPlay: Bool?
    package var playbackBufferEmpty: Bool?
    package var playbackBufferFull: Bool?
    package var playbackLikelyToKeepUp: Bool?
    package var error: Failure?

    package init(duration: Double? = nil, position: Double? = nil, rate: Double? = nil, readyToPlay: Bool? = nil,
                playbackBufferEmpty: Bool? = nil, playbackBufferFull: Bool? = nil, playbackLikelyToKeepUp: Bool? = nil,
                error: Failure? = nil) {
        self.duration = duration
        self.position = position
        self.rate = rate
        self.readyToPlay = readyToPlay
        self.playbackBufferEmpty = playbackBufferEmpty
        self.playbackBufferFull = playbackBufferFull
        self.playbackLikelyToKeepUp = playbackLikelyToKeepUp
        self.error = error
    }

    /// Parses a binary (or XML) plist body; an empty body is an empty info. Garbage →
    /// `ATVError.protocolError`.
    package init(body: [UInt8]) throws {
        self.init()
        if body.isEmpty { return }
        guard let dict = (try? BinaryPlist.decode(body))?.dict else {
            throw ATVError.protocolError("/playback-info answer is not a property list dictionary (\(body.count) bytes)")
        }
        duration = dict["duration"]?.double.flatMap { $0.isFinite ? $0 : nil }
        position = dict["position"]?.double.flatMap { $0.isFinite ? $0 : nil }
        rate = dict["rate"]?.double.flatMap { $0.isFinite ? $0 : nil }
        readyToPlay = dict["readyToPlay"]?.bool
        playbackBufferEmpty = dict["playbackBufferEmpty"]?.bool
        playbackBufferFull = dict["playbackBufferFull"]?.bool
        playbackLikelyToKeepUp = dict["playbackLikelyToKeepUp"]?.bool
        if let e = dict["error"]?.dict {
            let code = e["code"]?.double.flatMap { $0.isFinite && abs($0) < 1e15 ? Int($0) : nil } ?? 0
            error = Failure(code: code, domain: e["domain"]?.string ?? "unknown domain",
                            message: e["userInfo"]?["NSLocalizedDescription"]?.string)
        }
    }

    /// The binary plist a receiver answers with (virtual Apple TV).
    package func encoded() -> [UInt8] {
        var d: [String: PlistValue] = [:]
        if let duration { d["duration"] = .real(duration) }
        if let position { d["position"] = .real(position) }
        if let rate { d["rate"] = .real(rate) }
        if let readyToPlay { d["readyToPlay"] = .bool(readyToPlay) }
        if let playbackBufferEmpty { d["playbackBufferEmpty"] = .bool(playbackBufferEmpty) }
        if let playbackBufferFull { d["playbackBufferFull"] = .bool(playbackBufferFull) }
        if let playbackLikelyToKeepUp { d["playbackLikelyToKeepUp"] = .bool(playbackLikelyToKeepUp) }
        if let duration {
            d["loadedTimeRanges"] = .array([.dict(["start": .real(0), "duration": .real(duration)])])
            d["seekableTimeRanges"] = .array([.dict(["start": .real(0), "duration": .real(duration)])])
        }
        if let error {
            var e: [String: PlistValue] = ["code": .int(Int64(error.code)), "domain": .string(error.domain)]
            if let m = error.message { e["userInfo"] = .dict(["NSLocalizedDescription": .string(m)]) }
            d["error"] = .dict(e)
        }
        return BinaryPlist.encode(.dict(d))
    }
}
