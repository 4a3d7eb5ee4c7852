// NTP timestamps and the NTP-style timing packets of AirPlay (RAOP and AirPlay 2 with
// timingProtocol "NTP"): the receiver sends 0x52 requests to the sender's timing port, the sender
// answers 0x53 with its clock.
import ATVCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - NTP time

/// A 64-bit NTP timestamp: seconds since 1900 (high 32 bits) and binary fraction (low 32 bits).
public struct NTPTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
    public static let unixEpochOffset: UInt64 = 0x83AA_7E80

    public var raw: UInt64

    public init(raw: UInt64) { self.raw = raw }
    public init(seconds: UInt32, fraction: UInt32) { raw = UInt64(seconds) << 32 | UInt64(fraction) }

    /// From Unix time in seconds (wall clock).
    public init(unixTime: Double) {
        let whole = unixTime.rounded(.down)
        let frac = (unixTime - whole) * 4_294_967_296.0
        let seconds = UInt64(max(0, whole)) &+ Self.unixEpochOffset
        raw = (seconds << 32) | UInt64(min(max(frac, 0), 4_294_967_295.0))
    }

    /// From Unix seconds + nanoseconds.
    public init(unixSeconds: Int, nanoseconds: Int) {
        let seconds = UInt64(max(0, unixSeconds)) &+ Self.unixEpochOffset
        let frac = (UInt64(max(0, min(nanoseconds, 999_999_999))) << 32) / 1_000_000_000
        raw = (seconds << 32) | frac
    }

    /// The current wall-clock time (CLOCK_REALTIME).
    public static func now() -> NTPTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return NTPTime(unixSeconds: Int(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
    }

    /// From nanoseconds since the Unix epoch (CLOCK_REALTIME).
    public init(unixNanoseconds ns: Int64) {
        let (s, n) = ns.quotientAndRemainder(dividingBy: 1_000_000_000)
        self.init(unixSeconds: Int(n < 0 ? s - 1 : s), nanoseconds: Int(n < 0 ? n + 1_000_000_000 : n))
    }

    /// The wall-clock time (CLOCK_REALTIME) at the CLOCK_MONOTONIC instant `monotonic` (ns, a
    /// `NIODeadline`'s `uptimeNanoseconds`): the two clocks related without a preemption between
    /// two reads moving the result (`SystemClocks.realtimeOffset`).
    public static func at(monotonic: UInt64) -> NTPTime {
        NTPTime(unixNanoseconds: SystemClocks.realtime(atMonotonic: monotonic))
    }

    /// Nanoseconds since the NTP epoch (1900) − CLOCK_MONOTONIC nanoseconds, now: carries an
    /// instant on the wall clock in NTP nanoseconds to the monotonic clock (subtract it) and back.
    package static func monotonicOffset() -> Int64 {
        SystemClocks.realtimeOffset() &+ Int64(unixEpochOffset) * 1_000_000_000
    }

    public var seconds: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) }
    public var fraction: UInt32 { UInt32(truncatingIfNeeded: raw) }
    public var unixTime: Double {
        Double(Int64(raw >> 32) - Int64(Self.unixEpochOffset)) + Double(fraction) / 4_294_967_296.0
    }

    /// `ts2ntp`: an RTP frame count as an NTP duration, `((ts << 16) / rate) << 16` (16-bit
    /// fraction precision, as pyatv computes it).
    public static func fromTimestamp(_ ts: UInt64, sampleRate: Int) -> NTPTime {
        guard sampleRate > 0 else { return NTPTime(raw: 0) }
        return NTPTime(raw: ((ts << 16) / UInt64(sampleRate)) << 16)
    }

    /// `ntp2ts`: this NTP value (as a duration) in frames, `((ntp >> 16) · rate) >> 16`.
    public func toTimestamp(sampleRate: Int) -> UInt64 {
        guard sampleRate > 0 else { return 0 }
        let product = (raw >> 16).multipliedFullWidth(by: UInt64(sampleRate))
        return (product.high << 48) | (product.low >> 16)
    }

    public func adding(seconds: Double) -> NTPTime {
        let delta = Int64((seconds * 4_294_967_296.0).rounded())
        return NTPTime(raw: UInt64(bitPattern: Int64(bitPattern: raw) &+ delta))
    }

    /// `self − other` in seconds (may be negative).
    public func secondsSince(_ other: NTPTime) -> Double {
        Double(Int64(bitPattern: raw &- other.raw)) / 4_294_967_296.0
    }

    public static func < (a: NTPTime, b: NTPTime) -> Bool { a.raw < b.raw }
    public var description: String { "NTP(\(seconds).\(fraction))" }
}

// MARK: - Byte helpers

/// Big-endian writes (packet encoders).
package struct ByteWriter {
    package var bytes: [UInt8] = []
    package init(capacity: Int) { bytes.reserveCapacity(capacity) }
    package mutating func u8(_ v: UInt8) { bytes.append(v) }
    package mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    package mutating func u32(_ v: UInt32) {
        bytes.append(UInt8(v >> 24)); bytes.append(UInt8((v >> 16) & 0xFF))
        bytes.append(UInt8((v >> 8) & 0xFF)); bytes.append(UInt8(v & 0xFF))
    }
    package mutating func ntp(_ t: NTPTime) { u32(t.seconds); u32(t.fraction) }
    package mutating func append(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
}

/// Bounds-checked big-endian reads.
package struct ByteReader {
    package let bytes: [UInt8]
    package init(_ bytes: [UInt8]) { self.bytes = bytes }
    package func u8(_ at: Int) throws -> UInt8 {
        guard at >= 0, at < bytes.count else { throw ATVError.protocolError("packet too short") }
        return bytes[at]
    }
    package func u16(_ at: Int) throws -> UInt16 {
        guard at >= 0, at + 2 <= bytes.count else { throw ATVError.protocolError("packet too short") }
        return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
    }
    package func u32(_ at: Int) throws -> UInt32 {
        guard at >= 0, at + 4 <= bytes.count else { throw ATVError.protocolError("packet too short") }
        return UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
    package func ntp(_ at: Int) throws -> NTPTime { NTPTime(seconds: try u32(at), fraction: try u32(at + 4)) }
}

// MARK: - Timing channel

/// NTP-style timing packet (32 bytes): request 0x52 (receiver → sender), reply 0x53.
public struct RAOPTimingPacket: Sendable, Hashable {
    public static let requestType: UInt8 = 0x52
    public static let replyType: UInt8 = 0x53
    public static let size = 32

    public var isReply: Bool
    public var referenceTime: NTPTime
    public var receiveTime: NTPTime
    public var sendTime: NTPTime

    public init(isReply: Bool, referenceTime: NTPTime = NTPTime(raw: 0), receiveTime: NTPTime = NTPTime(raw: 0),
                sendTime: NTPTime) {
        self.isReply = isReply
        self.referenceTime = referenceTime
        self.receiveTime = receiveTime
        self.sendTime = sendTime
    }

    /// The reply to `request`: reference = the request's send time.
    public static func reply(to request: RAOPTimingPacket, receivedAt: NTPTime, sentAt: NTPTime) -> RAOPTimingPacket {
        RAOPTimingPacket(isReply: true, referenceTime: request.sendTime, receiveTime: receivedAt, sendTime: sentAt)
    }

    public var bytes: [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.u8(0x80)
        w.u8(0x80 | (isReply ? Self.replyType : Self.requestType))
        w.u16(0x0007)
        w.u32(0)
        w.ntp(referenceTime)
        w.ntp(receiveTime)
        w.ntp(sendTime)
        return w.bytes
    }

    public init(decoding bytes: some Collection<UInt8>) throws {
        let r = ByteReader(Array(bytes))
        guard bytes.count >= Self.size else { throw ATVError.protocolError("timing packet of \(bytes.count) bytes, expected 32") }
        switch try r.u8(1) & 0x7F {
        case Self.requestType: isReply = false
        case Self.replyType: isReply = true
        default: throw ATVError.protocolError("not a timing packet")
        }
        referenceTime = try r.ntp(8)
        receiveTime = try r.ntp(16)
        sendTime = try r.ntp(24)
    }
}
