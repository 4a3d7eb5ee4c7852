// AirPlay 2 sessions timed by PTP (docs/PTP-AND-BUFFERED-AUDIO.md §3.2, §3.3): the
// timing-peer dictionaries of the session SETUP (`timingPeerInfo`, `timingPeerList`) and of
// SETPEERSX, the SETPEERS / SETPEERSX requests, and the receiver's `timingPeerInfo` in the session
// SETUP reply. Sans-I/O: values in, plists and `RTSPRequest`s out, plus the parsers a virtual
// receiver uses on the other side. The clock id is a plain `UInt64` (the PTP clock identity, big
// endian), written as a signed 64-bit plist integer as Apple's senders write it.
import ATVCore
import ATVHTTP

// MARK: - Timing peer

/// One clock-group member as the session SETUP (`timingPeerInfo`, `timingPeerList`) and SETPEERSX
/// describe it: `{ID, Addresses, ClockID, DeviceType, SupportsClockPortMatchingOverride,
/// ClockPorts}`. Only `Addresses` is read by shairport-sync; the rest follows Apple's senders.
public struct AirPlay2TimingPeer: Sendable, Equatable {
    /// `ID`: a UUID for a sender; receivers answer with their IP address or MAC.
    public var id: String?
    /// `Addresses`: the peer's IP addresses as text.
    public var addresses: [String]
    /// `ClockID`: the peer's PTP clock identity (ours: the grandmaster's).
    public var clockID: UInt64?
    /// `DeviceType` (0 in every sender examined).
    public var deviceType: Int?
    /// `SupportsClockPortMatchingOverride` (false in OwnTone and airplay-cli).
    public var supportsClockPortMatchingOverride: Bool?
    /// `ClockPorts` `{GUID: port}` (Apple senders only); empty = left out.
    public var clockPorts: [String: Int]

    public init(id: String?, addresses: [String], clockID: UInt64? = nil, deviceType: Int? = 0,
                supportsClockPortMatchingOverride: Bool? = false, clockPorts: [String: Int] = [:]) {
        self.id = id
        self.addresses = addresses
        self.clockID = clockID
        self.deviceType = deviceType
        self.supportsClockPortMatchingOverride = supportsClockPortMatchingOverride
        self.clockPorts = clockPorts
    }

    /// The dictionary, keys absent for nil values.
    public var plist: PlistValue {
        var d: [String: PlistValue] = ["Addresses": .array(addresses.map { .string($0) })]
        if let id { d["ID"] = .string(id) }
        if let clockID { d["ClockID"] = .int(Int64(bitPattern: clockID)) }
        if let deviceType { d["DeviceType"] = .int(Int64(deviceType)) }
        if let supportsClockPortMatchingOverride { d["SupportsClockPortMatchingOverride"] = .bool(supportsClockPortMatchingOverride) }
        if !clockPorts.isEmpty { d["ClockPorts"] = .dict(clockPorts.mapValues { .int(Int64($0)) }) }
        return .dict(d)
    }

    /// Reads a peer dictionary by key. Missing keys stay nil / empty; a key of the wrong type is an
    /// error (so is anything that is not a dictionary).
    public init(plist value: PlistValue, what: String = "timingPeerInfo") throws(ATVError) {
        guard let d = value.dict else { throw ATVError.protocolError("\(what) is not a dictionary") }
        addresses = []
        if let a = d["Addresses"] {
            guard let items = a.array else { throw ATVError.protocolError("\(what).Addresses is not an array") }
            for item in items {
                guard let s = item.string else { throw ATVError.protocolError("\(what).Addresses holds a value that is not a string") }
                addresses.append(s)
            }
        }
        if let v = d["ID"] {
            guard let s = v.string else { throw ATVError.protocolError("\(what).ID is not a string") }
            id = s
        } else {
            id = nil
        }
        if let v = d["ClockID"] {
            guard case .int(let i) = v else { throw ATVError.protocolError("\(what).ClockID is not an integer") }
            clockID = UInt64(bitPattern: i)
        } else {
            clockID = nil
        }
        if let v = d["DeviceType"] {
            guard case .int(let i) = v, let t = Int(exactly: i) else { throw ATVError.protocolError("\(what).DeviceType is not an integer") }
            deviceType = t
        } else {
            deviceType = nil
        }
        if let v = d["SupportsClockPortMatchingOverride"] {
            guard case .bool(let b) = v else { throw ATVError.protocolError("\(what).SupportsClockPortMatchingOverride is not a boolean") }
            supportsClockPortMatchingOverride = b
        } else {
            supportsClockPortMatchingOverride = nil
        }
        clockPorts = [:]
        if let v = d["ClockPorts"] {
            guard let ports = v.dict else { throw ATVError.protocolError("\(what).ClockPorts is not a dictionary") }
            for (guid, p) in ports {
                guard let port = portValue(p) else { throw ATVError.protocolError("\(what).ClockPorts[\(guid)] is not a port") }
                clockPorts[guid] = port
            }
        }
    }
}

// MARK: - Session SETUP with PTP

/// What goes into `timingPeerList` (docs/PTP-AND-BUFFERED-AUDIO.md §3.2: OwnTone and airplay-cli
/// put one copy of `timingPeerInfo`; an iPhone in a group lists every member; shairport-sync reads
/// none of it).
public enum AirPlay2TimingPeerList: Sendable, Equatable {
    /// No `timingPeerList` key.
    case omitted
    /// `[timingPeerInfo]`: one copy of our own entry (OwnTone, airplay-cli).
    case sender
    /// An explicit list (every clock-group member).
    case peers([AirPlay2TimingPeer])
}

/// The PTP form of the session SETUP's timing: `timingProtocol` "PTP", `timingPeerInfo` (which
/// shairport-sync requires, docs/PTP-AND-BUFFERED-AUDIO.md §5.1 rows 1-2), `timingPeerList`, and
/// the optional `groupUUID`.
public struct AirPlay2PTPTiming: Sendable, Equatable {
    public var peerInfo: AirPlay2TimingPeer
    public var peerList: AirPlay2TimingPeerList
    /// `groupUUID` (shairport-sync logs when it is missing and puts it in its TXT `gid`).
    public var groupUUID: String?

    public init(peerInfo: AirPlay2TimingPeer, peerList: AirPlay2TimingPeerList = .sender, groupUUID: String? = nil) {
        self.peerInfo = peerInfo
        self.peerList = peerList
        self.groupUUID = groupUUID
    }

    /// Our own entry: a sender `ID` (upper-case UUID), the addresses the receivers reach us on, our
    /// grandmaster clock id, `DeviceType` 0, `SupportsClockPortMatchingOverride` false.
    public static func sender(id: String, addresses: [String], clockID: UInt64,
                              peerList: AirPlay2TimingPeerList = .sender, groupUUID: String? = nil) -> AirPlay2PTPTiming {
        AirPlay2PTPTiming(peerInfo: AirPlay2TimingPeer(id: id, addresses: addresses, clockID: clockID),
                          peerList: peerList, groupUUID: groupUUID)
    }

    /// The session SETUP keys this timing sets.
    public var entries: [String: PlistValue] {
        var d: [String: PlistValue] = ["timingProtocol": .string("PTP"), "timingPeerInfo": peerInfo.plist]
        switch peerList {
        case .omitted: break
        case .sender: d["timingPeerList"] = .array([peerInfo.plist])
        case .peers(let peers): d["timingPeerList"] = .array(peers.map(\.plist))
        }
        if let groupUUID { d["groupUUID"] = .string(groupUUID) }
        return d
    }

    /// Reads the PTP timing of a session SETUP request body (the receiver's side). A PTP session
    /// without a `timingPeerInfo` dictionary is an error, as shairport-sync treats it
    /// (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 2).
    public init(sessionSetup body: PlistValue) throws(ATVError) {
        guard body["timingProtocol"]?.string == "PTP" else {
            throw ATVError.protocolError("the session SETUP does not ask for PTP timing")
        }
        guard let info = body["timingPeerInfo"] else {
            throw ATVError.protocolError("the PTP session SETUP has no timingPeerInfo")
        }
        peerInfo = try AirPlay2TimingPeer(plist: info)
        switch body["timingPeerList"] {
        case nil:
            peerList = .omitted
        case let list?:
            guard let items = list.array else { throw ATVError.protocolError("timingPeerList is not an array") }
            var peers: [AirPlay2TimingPeer] = []
            for item in items { peers.append(try AirPlay2TimingPeer(plist: item, what: "timingPeerList entry")) }
            peerList = peers == [peerInfo] ? .sender : .peers(peers)
        }
        if let g = body["groupUUID"] {
            guard let s = g.string else { throw ATVError.protocolError("groupUUID is not a string") }
            groupUUID = s
        } else {
            groupUUID = nil
        }
    }
}

extension AirPlay2Timing {
    /// The timing a session SETUP request asks for (the receiver's side): `timingProtocol` "NTP"
    /// with its `timingPort`, "PTP" with its peers, "None" (or no key). Anything else is an error.
    public init(sessionSetup body: PlistValue) throws(ATVError) {
        switch body["timingProtocol"] {
        case nil:
            self = .none
        case .string("None")?:
            self = .none
        case .string("NTP")?:
            guard let port = body["timingPort"].flatMap(portValue) else {
                throw ATVError.protocolError("the NTP session SETUP has no valid timingPort")
            }
            self = .ntp(timingPort: port)
        case .string("PTP")?:
            self = .ptp(try AirPlay2PTPTiming(sessionSetup: body))
        case let other?:
            throw ATVError.protocolError("the session SETUP asks for unknown timing \(other.string.map { "\"\($0)\"" } ?? "(not a string)")")
        }
    }
}

/// The answer to a PTP session SETUP: the usual `eventPort` (and `timingPort`, 0 from
/// shairport-sync) plus the receiver's own `timingPeerInfo` (shairport-sync: `{Addresses: [its
/// addresses], ID: its IP}`; docs/PTP-AND-BUFFERED-AUDIO.md §3.2). The address to send PTP to is
/// the RTSP peer's (§5.1 row 3), not necessarily one listed here.
public struct AirPlay2PTPSessionReply: Sendable, Equatable {
    public var eventPort: Int
    public var timingPort: Int?
    public var timingPeer: AirPlay2TimingPeer?

    public init(eventPort: Int, timingPort: Int? = 0, timingPeer: AirPlay2TimingPeer?) {
        self.eventPort = eventPort
        self.timingPort = timingPort
        self.timingPeer = timingPeer
    }

    /// Parses by key; `timingPort` 0 (shairport-sync's) is kept as 0.
    public init(parsing body: [UInt8]) throws(ATVError) {
        let plist = try parsePlistBody(body, what: "session SETUP")
        guard let port = plist["eventPort"].flatMap(portValue) else {
            throw ATVError.protocolError("the session SETUP reply has no valid eventPort")
        }
        eventPort = port
        timingPort = plist["timingPort"].flatMap(intValue).flatMap { (0...65535).contains($0) ? $0 : nil }
        timingPeer = try plist["timingPeerInfo"].map { v throws(ATVError) in try AirPlay2TimingPeer(plist: v) }
    }

    /// The reply body (the receiver's side).
    public var body: PlistValue {
        var d: [String: PlistValue] = ["eventPort": .int(Int64(eventPort))]
        if let timingPort { d["timingPort"] = .int(Int64(timingPort)) }
        if let timingPeer { d["timingPeerInfo"] = timingPeer.plist }
        return .dict(d)
    }
}

// MARK: - SETPEERS / SETPEERSX

/// SETPEERS (a binary-plist array of IP strings) and SETPEERSX (feature bit 52: an array of peer
/// dictionaries), docs/PTP-AND-BUFFERED-AUDIO.md §3.3. shairport-sync answers 200 to both and uses
/// neither (it follows the RTSP peer); Apple receivers learn the clock group from them.
public enum AirPlay2Peers {
    /// SETPEERS' content type as OwnTone sends it (airplay-cli sends `application/x-apple-binary-plist`).
    public static let setPeersContentType = "/peer-list-changed"
    public static let setPeersXContentType = "/peer-list-changed-x"
    public static let binaryPlistContentType = "application/x-apple-binary-plist"

    /// The SETPEERS request on the session URL.
    public static func setPeers(_ addresses: [String], uri: String,
                                contentType: String = setPeersContentType) -> RTSPRequest {
        request("SETPEERS", uri: uri, contentType: contentType, body: .array(addresses.map { .string($0) }))
    }

    /// The SETPEERSX request on the session URL.
    public static func setPeersX(_ peers: [AirPlay2TimingPeer], uri: String) -> RTSPRequest {
        request("SETPEERSX", uri: uri, contentType: setPeersXContentType, body: .array(peers.map(\.plist)))
    }

    /// SETPEERS' address list: every member's addresses, in the order given (an iPhone lists the
    /// newest member first), then ours last; each address once.
    public static func addressList(members: [[String]], sender: [String]) -> [String] {
        var seen = Set<String>()
        return (members.flatMap { $0 } + sender).filter { seen.insert($0).inserted }
    }

    /// The addresses of a SETPEERS body (the receiver's side).
    public static func addresses(fromSetPeers body: [UInt8]) throws(ATVError) -> [String] {
        guard let items = try BinaryPlist.decode(body).array else {
            throw ATVError.protocolError("the SETPEERS body is not an array")
        }
        var out: [String] = []
        for item in items {
            guard let s = item.string else { throw ATVError.protocolError("the SETPEERS body holds a value that is not a string") }
            out.append(s)
        }
        return out
    }

    /// The peers of a SETPEERSX body (the receiver's side).
    public static func peers(fromSetPeersX body: [UInt8]) throws(ATVError) -> [AirPlay2TimingPeer] {
        guard let items = try BinaryPlist.decode(body).array else {
            throw ATVError.protocolError("the SETPEERSX body is not an array")
        }
        var out: [AirPlay2TimingPeer] = []
        for item in items { out.append(try AirPlay2TimingPeer(plist: item, what: "SETPEERSX entry")) }
        return out
    }

    private static func request(_ method: String, uri: String, contentType: String, body: PlistValue) -> RTSPRequest {
        var h = RTSPHeaders()
        h.set("Content-Type", contentType)
        return RTSPRequest(method: method, uri: uri, headers: h, body: BinaryPlist.encode(body))
    }
}
