import ATVCore

/// Protobuf base-128 varints, as MRP uses them for its length prefix.
package enum MRPVarint {
    /// Longest varint of a 64-bit value.
    package static let maxLength = 10

    package static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// Decodes a varint at the start of `bytes`.
    /// - Returns: the value and how many bytes it took, or nil if `bytes` ends inside the varint.
    /// - Throws: `ATVError.protocolError` if it is longer than 10 bytes or overflows 64 bits.
    package static func decodePrefix<C: Collection<UInt8>>(_ bytes: C) throws(ATVError) -> (value: UInt64, length: Int)? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        for byte in bytes {
            count += 1
            if count > maxLength || (count == maxLength && byte > 1) {
                throw ATVError.protocolError("MRP length prefix is not a valid varint (too long)")
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return (value, count) }
            shift += 7
        }
        return nil
    }

    /// Decodes `bytes` as exactly one varint (nothing before or after it).
    package static func decode(_ bytes: [UInt8]) throws(ATVError) -> UInt64 {
        guard let (value, length) = try decodePrefix(bytes) else {
            throw ATVError.protocolError("MRP varint is truncated")
        }
        guard length == bytes.count else {
            throw ATVError.protocolError("MRP varint has \(bytes.count - length) trailing bytes")
        }
        return value
    }
}

/// MRP stream framing: every message is varint(length) ‖ message bytes.
package enum MRPFraming {
    /// Default limit on one message (artwork replies are the largest real messages).
    package static let defaultMaxMessageSize = 16 * 1024 * 1024

    package static func frame(_ payload: [UInt8]) -> [UInt8] {
        MRPVarint.encode(UInt64(payload.count)) + payload
    }
}

/// Incremental decoder of a varint-length-prefixed MRP byte stream. Sans-I/O: feed it whatever
/// arrived with `append`, then call `next()` until it returns nil.
package struct MRPFrameDecoder: Sendable {
    package let maxMessageSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    package init(maxMessageSize: Int = MRPFraming.defaultMaxMessageSize) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes received but not yet returned as a message.
    package var bufferedByteCount: Int { buffer.count - readIndex }

    package mutating func append<S: Sequence<UInt8>>(_ bytes: S) {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or nil if more bytes are needed.
    /// - Throws: `ATVError.protocolError` on a bad prefix or a message over `maxMessageSize`; the
    ///   stream cannot be resynchronised after that, so the connection should be closed.
    package mutating func next() throws(ATVError) -> [UInt8]? {
        let pending = buffer[readIndex...]
        guard let (length, prefixLength) = try MRPVarint.decodePrefix(pending) else { return nil }
        guard length <= UInt64(maxMessageSize) else {
            throw ATVError.protocolError("MRP message of \(length) bytes exceeds the \(maxMessageSize)-byte limit")
        }
        let start = readIndex + prefixLength
        let end = start + Int(length)
        guard end <= buffer.count else { return nil }
        readIndex = end
        let message = Array(buffer[start..<end])
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        return message
    }
}
