// IEEE 1588-2008 (PTPv2) messages as AirPlay 2 receivers and linuxptp speak them over UDP: the
// 34-byte common header, the bodies of every message type a master sends or may receive, and the
// TLVs that follow a body. Pure: bytes in, values out and back. Parsing is bounds-checked and
// throws `PTPParseError` on anything malformed; it never traps.
// Field layout: docs/PTP-AND-BUFFERED-AUDIO.md §2.2–§2.4 and IEEE 1588-2008 §13.

/// An 8-byte PTP clock identity (header sourcePortIdentity, Announce grandmasterIdentity, the
/// Apple clock TLV; AirPlay's `timingPeerInfo.ClockID` and `networkTimeTimelineID` as a number).
package struct PTPClockIdentity: Hashable, Sendable, CustomStringConvertible {
    /// Big-endian value: byte 0 is the most significant.
    package var value: UInt64

    package init(_ value: UInt64) { self.value = value }

    /// From exactly 8 bytes (nil otherwise).
    package init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The EUI-64 of a 48-bit MAC address, as IEEE 1588 and nqptp build it: `aa:bb:cc:FF:FE:dd:ee:ff`.
    package init?(eui64FromMAC mac: [UInt8]) {
        guard mac.count == 6 else { return nil }
        self.init(bytes: mac[0..<3] + [0xFF, 0xFE] + mac[3..<6])
    }

    /// The 8 bytes, big-endian.
    package var bytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) } }

    /// As AirPlay plists carry it (`networkTimeTimelineID`, `timingPeerInfo.ClockID`): the same 64
    /// bits read as a signed integer (ids ≥ 2^63 are negative there).
    package var signedValue: Int64 { Int64(bitPattern: value) }

    /// linuxptp's spelling, e.g. `0242ac.fffe.110002`.
    package var description: String {
        let hex = bytes.map { String($0, radix: 16).leftPadded(2) }
        return hex[0..<3].joined() + "." + hex[3..<5].joined() + "." + hex[5..<8].joined()
    }
}

/// sourcePortIdentity / requestingPortIdentity / targetPortIdentity: a clock and a port number.
package struct PTPPortIdentity: Hashable, Sendable {
    package var clock: PTPClockIdentity
    package var port: UInt16

    package init(clock: PTPClockIdentity, port: UInt16) {
        self.clock = clock
        self.port = port
    }

    /// All ones: "every port" in a targetPortIdentity.
    package static let all = PTPPortIdentity(clock: PTPClockIdentity(.max), port: .max)
    package static let zero = PTPPortIdentity(clock: PTPClockIdentity(0), port: 0)
}

/// A PTP timestamp: 48-bit seconds and 32-bit nanoseconds (10 bytes on the wire).
package struct PTPTimestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var seconds: UInt64
    package var nanoseconds: UInt32

    package init(seconds: UInt64, nanoseconds: UInt32) {
        self.seconds = seconds & 0xFFFF_FFFF_FFFF
        self.nanoseconds = nanoseconds
    }

    /// From a count of nanoseconds on the timescale.
    package init(nanoseconds total: UInt64) {
        self.init(seconds: total / 1_000_000_000, nanoseconds: UInt32(total % 1_000_000_000))
    }

    package static let zero = PTPTimestamp(seconds: 0, nanoseconds: 0)

    /// Nanoseconds since the timescale's epoch (saturating for values no clock reaches).
    package var totalNanoseconds: UInt64 {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product &+ UInt64(nanoseconds)
    }

    /// Seconds and a 64-bit binary fraction (the NTP-style form AirPlay's sync packets use).
    package var secondsAndFraction: (seconds: UInt64, fraction: UInt64) {
        (seconds, UInt64((Double(min(nanoseconds, 999_999_999)) / 1e9 * 18_446_744_073_709_551_616.0).rounded(.down)))
    }

    package static func < (a: PTPTimestamp, b: PTPTimestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    package var description: String { "\(seconds).\(String(nanoseconds).leftPadded(9, with: "0"))" }
}

/// messageType (the low nibble of octet 0).
package enum PTPMessageType: UInt8, Sendable, CaseIterable {
    case sync = 0x0, delayReq = 0x1, pdelayReq = 0x2, pdelayResp = 0x3
    case followUp = 0x8, delayResp = 0x9, pdelayRespFollowUp = 0xA, announce = 0xB, signaling = 0xC, management = 0xD

    /// Event messages are time-stamped and travel on UDP 319; the others on 320.
    package var isEvent: Bool { rawValue < 0x8 }

    /// controlField (IEEE 1588-2008 Table 23).
    package var controlField: UInt8 {
        switch self {
        case .sync: 0
        case .delayReq: 1
        case .followUp: 2
        case .delayResp: 3
        case .management: 4
        default: 5
        }
    }
}

/// flagField bits (docs/PTP-AND-BUFFERED-AUDIO.md §2.3).
package struct PTPFlags: OptionSet, Hashable, Sendable {
    package var rawValue: UInt16
    package init(rawValue: UInt16) { self.rawValue = rawValue }

    package static let leap61 = PTPFlags(rawValue: 0x0001)
    package static let leap59 = PTPFlags(rawValue: 0x0002)
    package static let currentUtcOffsetValid = PTPFlags(rawValue: 0x0004)
    package static let ptpTimescale = PTPFlags(rawValue: 0x0008)
    package static let timeTraceable = PTPFlags(rawValue: 0x0010)
    package static let frequencyTraceable = PTPFlags(rawValue: 0x0020)
    package static let alternateMaster = PTPFlags(rawValue: 0x0100)
    package static let twoStep = PTPFlags(rawValue: 0x0200)
    package static let unicast = PTPFlags(rawValue: 0x0400)
}

/// The 34-byte common header.
package struct PTPHeader: Hashable, Sendable {
    package var type: PTPMessageType
    /// majorSdoId / transportSpecific (high nibble of octet 0): 1 for gPTP / AirPlay.
    package var majorSdoId: UInt8 = 1
    /// versionPTP (low nibble of octet 1): 2.
    package var version: UInt8 = 2
    /// minorVersionPTP (high nibble of octet 1).
    package var minorVersion: UInt8 = 0
    /// messageLength as read (encoding writes the real length).
    package var messageLength: UInt16 = 0
    package var domain: UInt8 = 0
    package var minorSdoId: UInt8 = 0
    package var flags: PTPFlags = []
    /// correctionField: nanoseconds × 2^16.
    package var correction: Int64 = 0
    package var messageTypeSpecific: UInt32 = 0
    package var source: PTPPortIdentity
    package var sequenceId: UInt16
    package var controlField: UInt8
    /// logMessageInterval (log2 seconds; 0x7F "not applicable").
    package var logMessageInterval: Int8

    package init(type: PTPMessageType, source: PTPPortIdentity, sequenceId: UInt16, flags: PTPFlags,
                logMessageInterval: Int8, majorSdoId: UInt8 = 1, domain: UInt8 = 0, correction: Int64 = 0) {
        self.type = type
        self.source = source
        self.sequenceId = sequenceId
        self.flags = flags
        self.logMessageInterval = logMessageInterval
        self.majorSdoId = majorSdoId
        self.domain = domain
        self.correction = correction
        self.controlField = type.controlField
    }

    package static let size = 34
}

/// A TLV after a message body: type, and the value (its length is the value's count).
package struct PTPTLV: Hashable, Sendable {
    package var type: UInt16
    package var value: [UInt8]

    package init(type: UInt16, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    package static let management: UInt16 = 0x0001
    package static let managementErrorStatus: UInt16 = 0x0002
    package static let organizationExtension: UInt16 = 0x0003
    package static let requestUnicastTransmission: UInt16 = 0x0004
    package static let grantUnicastTransmission: UInt16 = 0x0005
    package static let cancelUnicastTransmission: UInt16 = 0x0006
    package static let acknowledgeCancelUnicastTransmission: UInt16 = 0x0007
    package static let pathTrace: UInt16 = 0x0008

    /// ORGANIZATION_EXTENSION: organizationId (3 bytes), subtype (3 bytes), then data.
    package static func organization(_ id: [UInt8], subtype: [UInt8], _ data: [UInt8]) -> PTPTLV {
        PTPTLV(type: organizationExtension, value: id + subtype + data)
    }

    /// IEEE 802.1AS Follow_Up information TLV (00-80-C2 / 1), all rate/phase fields zero.
    package static let followUpInformation = organization([0x00, 0x80, 0xC2], subtype: [0, 0, 1], [UInt8](repeating: 0, count: 22))

    /// Apple's clock-id TLV on Follow_Up (00-0D-93 / 4): the clock identity and two zero bytes.
    package static func appleClockIdentity(_ clock: PTPClockIdentity) -> PTPTLV {
        organization([0x00, 0x0D, 0x93], subtype: [0, 0, 4], clock.bytes + [0, 0])
    }

    /// The two ORGANIZATION_EXTENSION TLVs of the Signaling message iOS sends once a second, which
    /// OwnTone's and airplay-cli's masters copy (docs/PTP-AND-BUFFERED-AUDIO.md §2.4; meaning
    /// unknown): Apple's OUI 00-0D-93, subtype 1 with `00 00 03 01` and 12 zero bytes (22 bytes),
    /// then subtype 5 with `00 00 03 01` and 22 zero bytes (32 bytes).
    package static let applePeriodicSignaling: [PTPTLV] = [
        organization([0x00, 0x0D, 0x93], subtype: [0, 0, 1], [0, 0, 3, 1] + [UInt8](repeating: 0, count: 12)),
        organization([0x00, 0x0D, 0x93], subtype: [0, 0, 5], [0, 0, 3, 1] + [UInt8](repeating: 0, count: 22)),
    ]

    /// PATH_TRACE with one clock.
    package static func pathTrace(_ clock: PTPClockIdentity) -> PTPTLV {
        PTPTLV(type: pathTrace, value: clock.bytes)
    }
}

/// One REQUEST_UNICAST_TRANSMISSION (type 4, 6 bytes) or GRANT_UNICAST_TRANSMISSION (type 5, 8
/// bytes) TLV: which message type, at what period, for how long.
package struct PTPUnicastTransmission: Hashable, Sendable {
    package var messageType: UInt8
    package var logInterMessagePeriod: Int8
    /// Seconds.
    package var duration: UInt32
    /// GRANT only: renewal invited (bit 0 of the last byte).
    package var renewalInvited: Bool

    package init(messageType: UInt8, logInterMessagePeriod: Int8, duration: UInt32, renewalInvited: Bool = false) {
        self.messageType = messageType
        self.logInterMessagePeriod = logInterMessagePeriod
        self.duration = duration
        self.renewalInvited = renewalInvited
    }

    /// A REQUEST TLV's fields (nil for any other TLV or a wrong length).
    package init?(request tlv: PTPTLV) {
        guard tlv.type == PTPTLV.requestUnicastTransmission, tlv.value.count >= 6 else { return nil }
        var r = PTPReader(tlv.value)
        guard let t = try? r.u8(), let p = try? r.u8(), let d = try? r.u32() else { return nil }
        self.init(messageType: t >> 4, logInterMessagePeriod: Int8(bitPattern: p), duration: d)
    }

    /// A GRANT TLV's fields (nil for any other TLV or a wrong length).
    package init?(grant tlv: PTPTLV) {
        guard tlv.type == PTPTLV.grantUnicastTransmission, tlv.value.count >= 8 else { return nil }
        var r = PTPReader(tlv.value)
        guard let t = try? r.u8(), let p = try? r.u8(), let d = try? r.u32(), (try? r.u8()) != nil, let f = try? r.u8() else { return nil }
        self.init(messageType: t >> 4, logInterMessagePeriod: Int8(bitPattern: p), duration: d, renewalInvited: f & 1 == 1)
    }

    package var requestTLV: PTPTLV {
        var w = PTPWriter()
        w.u8(messageType << 4); w.u8(UInt8(bitPattern: logInterMessagePeriod)); w.u32(duration)
        return PTPTLV(type: PTPTLV.requestUnicastTransmission, value: w.bytes)
    }

    package var grantTLV: PTPTLV {
        var w = PTPWriter()
        w.u8(messageType << 4); w.u8(UInt8(bitPattern: logInterMessagePeriod)); w.u32(duration)
        w.u8(0); w.u8(renewalInvited ? 1 : 0)
        return PTPTLV(type: PTPTLV.grantUnicastTransmission, value: w.bytes)
    }
}

/// The Announce body (30 bytes after the header).
package struct PTPAnnounce: Hashable, Sendable {
    package var originTimestamp: PTPTimestamp = .zero
    package var currentUtcOffset: Int16 = 0
    package var priority1: UInt8
    package var clockClass: UInt8
    package var clockAccuracy: UInt8
    package var offsetScaledLogVariance: UInt16
    package var priority2: UInt8
    package var grandmasterIdentity: PTPClockIdentity
    package var stepsRemoved: UInt16 = 0
    package var timeSource: UInt8

    package init(priority1: UInt8, clockClass: UInt8, clockAccuracy: UInt8, offsetScaledLogVariance: UInt16,
                priority2: UInt8, grandmasterIdentity: PTPClockIdentity, timeSource: UInt8,
                currentUtcOffset: Int16 = 0, stepsRemoved: UInt16 = 0) {
        self.priority1 = priority1
        self.clockClass = clockClass
        self.clockAccuracy = clockAccuracy
        self.offsetScaledLogVariance = offsetScaledLogVariance
        self.priority2 = priority2
        self.grandmasterIdentity = grandmasterIdentity
        self.timeSource = timeSource
        self.currentUtcOffset = currentUtcOffset
        self.stepsRemoved = stepsRemoved
    }
}

/// A message body by type.
package enum PTPBody: Hashable, Sendable {
    /// Sync: originTimestamp (zero for a two-step master).
    case sync(origin: PTPTimestamp)
    case delayReq(origin: PTPTimestamp)
    case pdelayReq(origin: PTPTimestamp)
    case pdelayResp(requestReceipt: PTPTimestamp, requesting: PTPPortIdentity)
    /// Follow_Up: preciseOriginTimestamp (the egress time of the Sync with the same sequenceId).
    case followUp(preciseOrigin: PTPTimestamp)
    case delayResp(receive: PTPTimestamp, requesting: PTPPortIdentity)
    case pdelayRespFollowUp(responseOrigin: PTPTimestamp, requesting: PTPPortIdentity)
    case announce(PTPAnnounce)
    case signaling(target: PTPPortIdentity)
    /// Management: target, hops, actionField (low nibble: GET 0, SET 1, RESPONSE 2, COMMAND 3,
    /// ACKNOWLEDGE 4). The management TLV is among the message's TLVs.
    case management(target: PTPPortIdentity, startingBoundaryHops: UInt8, boundaryHops: UInt8, action: UInt8)

    /// Bytes of the body after the header.
    static func size(of type: PTPMessageType) -> Int {
        switch type {
        case .sync, .delayReq, .followUp, .signaling: 10
        case .pdelayReq, .pdelayResp, .pdelayRespFollowUp, .delayResp: 20
        case .announce: 30
        case .management: 14
        }
    }

    var type: PTPMessageType {
        switch self {
        case .sync: .sync
        case .delayReq: .delayReq
        case .pdelayReq: .pdelayReq
        case .pdelayResp: .pdelayResp
        case .followUp: .followUp
        case .delayResp: .delayResp
        case .pdelayRespFollowUp: .pdelayRespFollowUp
        case .announce: .announce
        case .signaling: .signaling
        case .management: .management
        }
    }
}

/// Why bytes are not a PTP message.
package enum PTPParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the header, the stated length or the type's body need.
    case truncated(needed: Int, have: Int)
    /// versionPTP other than 2.
    case unsupportedVersion(UInt8)
    /// A reserved messageType nibble (4–7, 0xE, 0xF).
    case unknownMessageType(UInt8)
    /// messageLength shorter than the header plus the type's body.
    case badLength(UInt16)
    /// A TLV running past the message's end.
    case truncatedTLV(offset: Int)

    package var description: String {
        switch self {
        case .truncated(let n, let h): "PTP message truncated (\(h) of \(n) bytes)"
        case .unsupportedVersion(let v): "PTP version \(v) (only 2 is understood)"
        case .unknownMessageType(let t): "unknown PTP message type \(t)"
        case .badLength(let l): "PTP messageLength \(l) is shorter than its type needs"
        case .truncatedTLV(let o): "PTP TLV at byte \(o) runs past the message"
        }
    }
}

/// A whole message: header, body and TLVs.
package struct PTPMessage: Hashable, Sendable {
    package var header: PTPHeader
    package var body: PTPBody
    package var tlvs: [PTPTLV]

    /// A message; the header's type and messageLength follow the body and TLVs.
    package init(header: PTPHeader, body: PTPBody, tlvs: [PTPTLV] = []) {
        self.header = header
        self.body = body
        self.tlvs = tlvs
        self.header.type = body.type
        self.header.messageLength = UInt16(truncatingIfNeeded: encodedLength)
    }

    var encodedLength: Int {
        PTPHeader.size + PTPBody.size(of: body.type) + tlvs.reduce(0) { $0 + 4 + $1.value.count + ($1.value.count & 1) }
    }

    package var type: PTPMessageType { header.type }

    /// The REQUEST_UNICAST_TRANSMISSION TLVs of a Signaling message.
    package var unicastRequests: [PTPUnicastTransmission] { tlvs.compactMap(PTPUnicastTransmission.init(request:)) }
    /// The GRANT_UNICAST_TRANSMISSION TLVs of a Signaling message.
    package var unicastGrants: [PTPUnicastTransmission] { tlvs.compactMap(PTPUnicastTransmission.init(grant:)) }

    /// Wire bytes; messageLength is the real length, the header's type that of the body.
    package func encoded() -> [UInt8] {
        var w = PTPWriter()
        let h = header
        let length = encodedLength
        w.u8(h.majorSdoId << 4 | body.type.rawValue)
        w.u8(h.minorVersion << 4 | (h.version & 0x0F))
        w.u16(UInt16(truncatingIfNeeded: length))
        w.u8(h.domain)
        w.u8(h.minorSdoId)
        w.u16(h.flags.rawValue)
        w.u64(UInt64(bitPattern: h.correction))
        w.u32(h.messageTypeSpecific)
        w.port(h.source)
        w.u16(h.sequenceId)
        w.u8(h.controlField)
        w.u8(UInt8(bitPattern: h.logMessageInterval))
        switch body {
        case .sync(let t), .delayReq(let t), .followUp(let t):
            w.timestamp(t)
        case .pdelayReq(let t):
            w.timestamp(t); w.zeros(10)
        case .pdelayResp(let t, let p), .delayResp(let t, let p), .pdelayRespFollowUp(let t, let p):
            w.timestamp(t); w.port(p)
        case .announce(let a):
            w.timestamp(a.originTimestamp)
            w.u16(UInt16(bitPattern: a.currentUtcOffset))
            w.u8(0)
            w.u8(a.priority1)
            w.u8(a.clockClass); w.u8(a.clockAccuracy); w.u16(a.offsetScaledLogVariance)
            w.u8(a.priority2)
            w.bytes += a.grandmasterIdentity.bytes
            w.u16(a.stepsRemoved)
            w.u8(a.timeSource)
        case .signaling(let target):
            w.port(target)
        case .management(let target, let start, let hops, let action):
            w.port(target); w.u8(start); w.u8(hops); w.u8(action & 0x0F); w.u8(0)
        }
        for tlv in tlvs {
            // TLV lengths are even (IEEE 1588 §14.1.1): an odd value gets a pad byte.
            let padded = tlv.value.count + (tlv.value.count & 1)
            w.u16(tlv.type); w.u16(UInt16(truncatingIfNeeded: padded))
            w.bytes += tlv.value
            if padded != tlv.value.count { w.u8(0) }
        }
        return w.bytes
    }

    /// Parses a datagram. Bytes after messageLength (padding) are ignored.
    package init(parsing bytes: [UInt8]) throws(PTPParseError) {
        var r = PTPReader(bytes)
        guard bytes.count >= PTPHeader.size else { throw .truncated(needed: PTPHeader.size, have: bytes.count) }
        let b0 = try r.u8(), b1 = try r.u8()
        guard let type = PTPMessageType(rawValue: b0 & 0x0F) else { throw .unknownMessageType(b0 & 0x0F) }
        guard b1 & 0x0F == 2 else { throw .unsupportedVersion(b1 & 0x0F) }
        let length = try r.u16()
        let bodySize = PTPBody.size(of: type)
        guard Int(length) >= PTPHeader.size + bodySize else { throw .badLength(length) }
        guard bytes.count >= Int(length) else { throw .truncated(needed: Int(length), have: bytes.count) }
        var h = PTPHeader(type: type, source: .zero, sequenceId: 0, flags: [], logMessageInterval: 0, majorSdoId: b0 >> 4)
        h.minorVersion = b1 >> 4
        h.version = b1 & 0x0F
        h.messageLength = length
        h.domain = try r.u8()
        h.minorSdoId = try r.u8()
        h.flags = PTPFlags(rawValue: try r.u16())
        h.correction = Int64(bitPattern: try r.u64())
        h.messageTypeSpecific = try r.u32()
        h.source = try r.port()
        h.sequenceId = try r.u16()
        h.controlField = try r.u8()
        h.logMessageInterval = Int8(bitPattern: try r.u8())

        let body: PTPBody
        switch type {
        case .sync: body = .sync(origin: try r.timestamp())
        case .delayReq: body = .delayReq(origin: try r.timestamp())
        case .followUp: body = .followUp(preciseOrigin: try r.timestamp())
        case .pdelayReq:
            body = .pdelayReq(origin: try r.timestamp())
            try r.skip(10)
        case .pdelayResp: body = .pdelayResp(requestReceipt: try r.timestamp(), requesting: try r.port())
        case .delayResp: body = .delayResp(receive: try r.timestamp(), requesting: try r.port())
        case .pdelayRespFollowUp: body = .pdelayRespFollowUp(responseOrigin: try r.timestamp(), requesting: try r.port())
        case .announce:
            let origin = try r.timestamp()
            let utc = Int16(bitPattern: try r.u16())
            try r.skip(1)
            let p1 = try r.u8(), cls = try r.u8(), acc = try r.u8(), variance = try r.u16(), p2 = try r.u8()
            let gm = try r.clock()
            let steps = try r.u16(), source = try r.u8()
            var a = PTPAnnounce(priority1: p1, clockClass: cls, clockAccuracy: acc, offsetScaledLogVariance: variance,
                                priority2: p2, grandmasterIdentity: gm, timeSource: source,
                                currentUtcOffset: utc, stepsRemoved: steps)
            a.originTimestamp = origin
            body = .announce(a)
        case .signaling: body = .signaling(target: try r.port())
        case .management:
            let target = try r.port()
            let start = try r.u8(), hops = try r.u8(), action = try r.u8() & 0x0F
            try r.skip(1)
            body = .management(target: target, startingBoundaryHops: start, boundaryHops: hops, action: action)
        }

        var tlvs: [PTPTLV] = []
        let end = Int(length)
        while r.offset + 4 <= end {
            let at = r.offset
            let t = try r.u16(), n = Int(try r.u16())
            guard r.offset + n <= end else { throw .truncatedTLV(offset: at) }
            tlvs.append(PTPTLV(type: t, value: try r.take(n)))
        }
        self.header = h
        self.body = body
        self.tlvs = tlvs
    }
}

/// Big-endian reads with bounds checks.
struct PTPReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws(PTPParseError) -> [UInt8] {
        guard n >= 0, offset <= bytes.count - n else { throw .truncated(needed: offset + n, have: bytes.count) }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func skip(_ n: Int) throws(PTPParseError) { _ = try take(n) }

    mutating func uint(_ n: Int) throws(PTPParseError) -> UInt64 {
        try take(n).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func u8() throws(PTPParseError) -> UInt8 { UInt8(try uint(1)) }
    mutating func u16() throws(PTPParseError) -> UInt16 { UInt16(try uint(2)) }
    mutating func u32() throws(PTPParseError) -> UInt32 { UInt32(try uint(4)) }
    mutating func u64() throws(PTPParseError) -> UInt64 { try uint(8) }

    mutating func timestamp() throws(PTPParseError) -> PTPTimestamp {
        let s = try uint(6)
        let ns = try u32()
        return PTPTimestamp(seconds: s, nanoseconds: ns)
    }

    mutating func clock() throws(PTPParseError) -> PTPClockIdentity { PTPClockIdentity(try u64()) }

    mutating func port() throws(PTPParseError) -> PTPPortIdentity {
        PTPPortIdentity(clock: try clock(), port: try u16())
    }
}

/// Big-endian writes.
struct PTPWriter {
    var bytes: [UInt8] = []

    mutating func uint(_ v: UInt64, _ n: Int) {
        for i in (0..<n).reversed() { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { uint(UInt64(v), 2) }
    mutating func u32(_ v: UInt32) { uint(UInt64(v), 4) }
    mutating func u64(_ v: UInt64) { uint(v, 8) }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func timestamp(_ t: PTPTimestamp) { uint(t.seconds, 6); u32(t.nanoseconds) }
    mutating func port(_ p: PTPPortIdentity) { u64(p.clock.value); u16(p.port) }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
