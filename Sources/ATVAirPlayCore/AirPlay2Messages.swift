// Sans-I/O pieces of an AirPlay 2 session (docs/ARCHITECTURE.md, ATVAirPlayCore): the route
// choice from the `features` word, the session SETUP body and its reply (read by key, never by
// position), and the event-channel answer. The audio stream SETUP is ATVRAOP's.
import ATVAuth
import ATVCore
import ATVHTTP

// MARK: - Route choice

/// Which AirPlay generation a sender speaks to a receiver.
public enum AirPlayMajorVersion: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// AirPlay 1 (RAOP): ANNOUNCE, unencrypted RTP.
    case v1 = "1"
    /// AirPlay 2 realtime audio: HAP pairing, encrypted RTSP, event channel, sealed RTP.
    case v2 = "2"

    public var description: String { self == .v1 ? "AirPlay 1 (RAOP)" : "AirPlay 2" }
}

/// The route decision for one receiver, with the reason (for the `-v` log line).
public struct AirPlayRoute: Sendable, Equatable, CustomStringConvertible {
    public var version: AirPlayMajorVersion
    public var reason: String
    /// False when nothing decided it (no features advertised, nothing forced): `version` is then
    /// only the fallback, and the receiver's `GET /info` answer should decide (`fromInfo`).
    public var decided: Bool

    public init(version: AirPlayMajorVersion, reason: String, decided: Bool = true) {
        self.version = version
        self.reason = reason
        self.decided = decided
    }

    /// `features` texts are tried in order (RAOP `ft`, RAOP `features`, AirPlay `features`…); the
    /// first that parses decides. A forced preference (pyatv's `protocol_version` 1 or 2) wins.
    public static func choose(preference: AirPlayVersion, featureTexts: [String?]) -> AirPlayRoute {
        switch preference {
        case .v1: return AirPlayRoute(version: .v1, reason: "forced by --airplay-version 1")
        case .v2: return AirPlayRoute(version: .v2, reason: "forced by --airplay-version 2")
        case .auto: break
        }
        for case let text? in featureTexts {
            guard let word = AirPlayFeatureFlags(parsing: text) else { continue }
            if word.isAirPlay2 {
                let bits = [38, 48].filter(word.has(bit:)).map(String.init).joined(separator: "+")
                return AirPlayRoute(version: .v2, reason: "features \(text) have bit \(bits)")
            }
            return AirPlayRoute(version: .v1, reason: "features \(text) have neither bit 38 nor 48")
        }
        return AirPlayRoute(version: .v1, reason: "no features advertised", decided: false)
    }

    /// The route from the receiver's `GET /info` answer, for a receiver whose features are not
    /// known from TXT records (`--host` without mDNS). `status` is nil when /info was not answered
    /// (timeout, connection closed, garbage). AirPlay 2 only when the answer is a plist whose
    /// `features` has bit 38 or 48; anything else (an AirPlay 1 receiver answering 404, nothing,
    /// or a plist without features) keeps AirPlay 1.
    public static func fromInfo(status: Int?, info: PlistValue?) -> AirPlayRoute {
        guard let status else { return AirPlayRoute(version: .v1, reason: "GET /info not answered") }
        guard (200..<300).contains(status) else { return AirPlayRoute(version: .v1, reason: "GET /info answered \(status)") }
        guard let value = info?["features"], let word = AirPlayFeatureFlags(plistValue: value) else {
            return AirPlayRoute(version: .v1, reason: "GET /info has no features")
        }
        let text = word.text
        if word.isAirPlay2 {
            let bits = [38, 48].filter(word.has(bit:)).map(String.init).joined(separator: "+")
            return AirPlayRoute(version: .v2, reason: "GET /info features \(text) have bit \(bits)")
        }
        return AirPlayRoute(version: .v1, reason: "GET /info features \(text) have neither bit 38 nor 48")
    }

    public var description: String { "\(version) (\(reason))" }
}

// MARK: - Session SETUP

/// Who we say we are in the session SETUP (values as pyatv sends them unless changed).
public struct AirPlay2SenderIdentity: Sendable, Equatable {
    public var deviceID: String
    public var macAddress: String
    public var model: String
    public var name: String
    public var osName: String
    public var osVersion: String
    public var osBuildVersion: String
    public var sourceVersion: String

    public init(deviceID: String = "AA:BB:CC:DD:EE:FF", macAddress: String = "AA:BB:CC:DD:EE:FF",
                model: String = "iPhone14,3", name: String = "swift-atv", osName: String = "iPhone OS",
                osVersion: String = "16.5", osBuildVersion: String = "20F66", sourceVersion: String = "690.7.1") {
        self.deviceID = deviceID
        self.macAddress = macAddress
        self.model = model
        self.name = name
        self.osName = osName
        self.osVersion = osVersion
        self.osBuildVersion = osBuildVersion
        self.sourceVersion = sourceVersion
    }
}

/// How the receiver learns our clock.
public enum AirPlay2Timing: Sendable, Equatable {
    /// NTP-style responder on our UDP `timingPort` (0x52 requests → 0x53 replies).
    case ntp(timingPort: Int)
    /// PTP: our grandmaster clock; the receiver follows it (`timingPeerInfo`, AirPlay2PTPSession.swift).
    case ptp(AirPlay2PTPTiming)
    /// No timing at all (remote-control-only sessions).
    case none
}

public enum AirPlay2SessionSetup {
    /// The bplist body of the first SETUP (the session): timing, identity, `sessionUUID`.
    public static func body(timing: AirPlay2Timing, sessionUUID: String, identity: AirPlay2SenderIdentity,
                            remoteControlOnly: Bool = false) -> PlistValue {
        var d: [String: PlistValue] = [
            "deviceID": .string(identity.deviceID),
            "sessionUUID": .string(sessionUUID),
            "macAddress": .string(identity.macAddress),
            "model": .string(identity.model),
            "name": .string(identity.name),
            "osBuildVersion": .string(identity.osBuildVersion),
            "osName": .string(identity.osName),
            "osVersion": .string(identity.osVersion),
            "sourceVersion": .string(identity.sourceVersion),
            "groupContainsGroupLeader": .bool(false),
            "isMultiSelectAirPlay": .bool(true),
            "senderSupportsRelay": .bool(false),
            "statsCollectionEnabled": .bool(false),
        ]
        switch timing {
        case .ntp(let port):
            d["timingProtocol"] = .string("NTP")
            d["timingPort"] = .int(Int64(port))
        case .ptp(let ptp):
            d.merge(ptp.entries) { _, new in new }
        case .none:
            d["timingProtocol"] = .string("None")
        }
        if remoteControlOnly { d["isRemoteControlOnly"] = .bool(true) }
        return .dict(d)
    }
}

/// The answer to the session SETUP.
public struct AirPlay2SessionReply: Sendable, Equatable {
    public var eventPort: Int
    /// The receiver's timing port, when it says (NTP sessions).
    public var timingPort: Int?

    public init(eventPort: Int, timingPort: Int? = nil) {
        self.eventPort = eventPort
        self.timingPort = timingPort
    }

    public init(parsing body: [UInt8]) throws(ATVError) {
        let plist = try parsePlistBody(body, what: "session SETUP")
        guard let port = plist["eventPort"].flatMap(portValue) else {
            throw ATVError.protocolError("the session SETUP reply has no valid eventPort")
        }
        eventPort = port
        timingPort = plist["timingPort"].flatMap(portValue)
    }
}

// MARK: - Event channel

public enum AirPlay2EventChannel {
    /// The answer to any request the receiver sends on the event channel: `200 OK` with
    /// `Content-Length: 0`, `Audio-Latency: 0` and the request's `CSeq`/`Server` copied.
    public static func reply(to request: RTSPRequest) -> RTSPResponse {
        var headers = RTSPHeaders()
        headers.add("Content-Length", "0")
        headers.add("Audio-Latency", "0")
        if let server = request.headers["Server"] { headers.add("Server", server) }
        if let cseq = request.headers["CSeq"] { headers.add("CSeq", cseq) }
        return RTSPResponse(version: request.version, status: 200, reason: "OK", headers: headers)
    }

    /// `reply(to:)` on the wire, keeping the explicit `Content-Length: 0` (the generic serializer
    /// leaves it out for an empty body).
    public static func replyBytes(to request: RTSPRequest) -> [UInt8] {
        let r = reply(to: request)
        var text = "\(r.version) \(r.status) \(r.reason)\r\n"
        for f in r.headers {
            let value = String(f.value.map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 })
            text += "\(f.name): \(value)\r\n"
        }
        return Array((text + "\r\n").utf8)
    }
}

// MARK: - helpers

package func parsePlistBody(_ body: [UInt8], what: String) throws(ATVError) -> PlistValue {
    guard !body.isEmpty else { throw ATVError.protocolError("the \(what) reply has an empty body (expected a binary plist)") }
    do {
        let value = try BinaryPlistParser.parse(body)
        guard value.dict != nil else { throw ATVError.protocolError("the \(what) reply is not a dictionary") }
        return value
    } catch let e as ATVError {
        throw e
    } catch {
        throw ATVError.protocolError("the \(what) reply is not a valid binary plist (\(error))")
    }
}

package func intValue(_ v: PlistValue) -> Int? {
    switch v {
    case .int(let i): return Int(exactly: i)
    case .uid(let u): return Int(exactly: u)
    case .real(let d) where d.rounded() == d && abs(d) < 1e15: return Int(d)
    default: return nil
    }
}

package func portValue(_ v: PlistValue) -> Int? {
    guard let p = intValue(v), (1...65535).contains(p) else { return nil }
    return p
}
