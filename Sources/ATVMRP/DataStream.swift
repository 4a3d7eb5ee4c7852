// MRP over the AirPlay 2 data stream (the channel of stream SETUP type 130), sans I/O: the 32-byte frame
// header, the binary-plist payload `{"params": {"data": <varint-prefixed ProtocolMessages>}}`, and
// the rule that every "sync" frame is answered with a header-only "rply". HAP encryption of the
// stream (DataStream keys) is the transport's business, not this file's.
import ATVAuth
import ATVCore

/// One data-stream frame: size (u32 BE, header included) ‖ message type (12 B) ‖ command (4 B) ‖
/// seqno (u64 BE) ‖ padding (u32) ‖ payload.
package struct MRPDataStreamFrame: Sendable, Equatable {
    package static let headerLength = 32
    package static let syncType: [UInt8] = Array("sync".utf8) + [UInt8](repeating: 0, count: 8)
    package static let replyType: [UInt8] = Array("rply".utf8) + [UInt8](repeating: 0, count: 8)
    /// Command of frames a controller sends ("comm") and of frames a device sends ("cmnd").
    package static let controllerCommand: [UInt8] = Array("comm".utf8)
    package static let deviceCommand: [UInt8] = Array("cmnd".utf8)

    /// 12 bytes.
    package var messageType: [UInt8]
    /// 4 bytes.
    package var command: [UInt8]
    package var seqno: UInt64
    package var padding: UInt32
    package var payload: [UInt8]

    package init(messageType: [UInt8], command: [UInt8], seqno: UInt64, padding: UInt32 = 0, payload: [UInt8] = []) {
        self.messageType = Self.fixed(messageType, 12)
        self.command = Self.fixed(command, 4)
        self.seqno = seqno
        self.padding = padding
        self.payload = payload
    }

    /// A "sync" frame carrying `payload`.
    package static func sync(command: [UInt8], seqno: UInt64, payload: [UInt8]) -> MRPDataStreamFrame {
        MRPDataStreamFrame(messageType: syncType, command: command, seqno: seqno, payload: payload)
    }

    /// The header-only answer to a "sync" frame with `seqno`.
    package static func reply(seqno: UInt64) -> MRPDataStreamFrame {
        MRPDataStreamFrame(messageType: replyType, command: [0, 0, 0, 0], seqno: seqno)
    }

    /// True for "sync" frames (they must be answered).
    package var isSync: Bool { messageType.starts(with: Array("sync".utf8)) }
    package var isReply: Bool { messageType.starts(with: Array("rply".utf8)) }

    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + payload.count)
        let size = UInt32(truncatingIfNeeded: Self.headerLength + payload.count)
        out += withUnsafeBytes(of: size.bigEndian, Array.init)
        out += messageType
        out += command
        out += withUnsafeBytes(of: seqno.bigEndian, Array.init)
        out += withUnsafeBytes(of: padding.bigEndian, Array.init)
        out += payload
        return out
    }

    private static func fixed(_ b: [UInt8], _ n: Int) -> [UInt8] {
        b.count >= n ? Array(b.prefix(n)) : b + [UInt8](repeating: 0, count: n - b.count)
    }
}

/// Incremental decoder of a data-stream byte stream (after decryption).
package struct MRPDataStreamDecoder: Sendable {
    package let maxFrameSize: Int
    private var buffer: [UInt8] = []

    package init(maxFrameSize: Int = MRPFraming.defaultMaxMessageSize) { self.maxFrameSize = maxFrameSize }

    package var bufferedByteCount: Int { buffer.count }

    package mutating func append<S: Sequence<UInt8>>(_ bytes: S) { buffer.append(contentsOf: bytes) }

    /// The next complete frame, or nil when more bytes are needed.
    /// - Throws: `ATVError.protocolError` on a size below 32 or above `maxFrameSize` (the stream
    ///   cannot be resynchronised: close the connection).
    package mutating func next() throws(ATVError) -> MRPDataStreamFrame? {
        guard buffer.count >= MRPDataStreamFrame.headerLength else { return nil }
        func be(_ at: Int, _ n: Int) -> UInt64 { buffer[at..<at + n].reduce(0) { $0 << 8 | UInt64($1) } }
        let size = Int(be(0, 4))
        guard size >= MRPDataStreamFrame.headerLength else {
            throw ATVError.protocolError("AirPlay data-stream frame size \(size) is smaller than its 32-byte header")
        }
        guard size <= maxFrameSize else {
            throw ATVError.protocolError("AirPlay data-stream frame of \(size) bytes exceeds the \(maxFrameSize)-byte limit")
        }
        guard buffer.count >= size else { return nil }
        let frame = MRPDataStreamFrame(messageType: Array(buffer[4..<16]), command: Array(buffer[16..<20]),
                                       seqno: be(20, 8), padding: UInt32(be(28, 4)),
                                       payload: Array(buffer[MRPDataStreamFrame.headerLength..<size]))
        buffer.removeFirst(size)
        return frame
    }
}

/// The payload of a "sync" frame: a binary plist `{"params": {"data": <bytes>}}` whose data is one
/// or more varint-length-prefixed ProtocolMessages.
package enum MRPDataStreamPayload {
    /// The plist for `messages`.
    package static func encode(_ messages: [MRPProtocolMessage]) throws(ATVError) -> [UInt8] {
        var data: [UInt8] = []
        for m in messages { data += MRPFraming.frame(try MRPCodec.encode(m)) }
        return BinaryPlist.encode(.dict(["params": .dict(["data": .data(data)])]))
    }

    /// The ProtocolMessages in a payload. An empty payload, or a plist without `params.data`,
    /// carries none.
    /// - Throws: `ATVError.protocolError` on a payload that is not a plist or bad message data.
    package static func decode(_ payload: [UInt8]) throws(ATVError) -> [MRPProtocolMessage] {
        guard !payload.isEmpty else { return [] }
        let plist: PlistValue
        do { plist = try BinaryPlistParser.parse(payload) } catch {
            throw ATVError.protocolError("AirPlay data-stream payload is not a binary plist (\(error))")
        }
        guard case .data(let data)? = plist["params"]?["data"] else { return [] }
        return try split(data).map { (m: [UInt8]) throws(ATVError) in try MRPCodec.decode(m) }
    }

    /// Splits message data into serialized ProtocolMessages. Quirk: data starting with 0x08 (the tag
    /// of field 1, `type`) is one message without a length prefix (CONFIGURE_CONNECTION); a real
    /// prefix is never 8, since every message is longer than that.
    package static func split(_ data: [UInt8]) throws(ATVError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var rest = data[...]
        while !rest.isEmpty {
            if rest.first == 0x08 {
                out.append(Array(rest))
                break
            }
            guard let (length, n) = try MRPVarint.decodePrefix(rest) else {
                throw ATVError.protocolError("AirPlay data-stream message data ends inside a length prefix")
            }
            guard length <= UInt64(rest.count - n) else {
                throw ATVError.protocolError("AirPlay data-stream message of \(length) bytes is truncated (\(rest.count - n) left)")
            }
            let start = rest.startIndex + n
            out.append(Array(rest[start..<start + Int(length)]))
            rest = rest[(start + Int(length))...]
        }
        return out
    }
}

/// One end of an MRP data stream: encodes messages as "sync" frames and decodes received frames,
/// producing the "rply" answers to write back. Either side can use it (`role` picks the command).
package struct MRPDataStream: Sendable {
    package enum Role: Sendable { case controller, device }
    package let role: Role
    /// The seqno of our "sync" frames: a controller uses one random value for all of them (as
    /// pyatv does); a device counts up from it.
    package private(set) var seqno: UInt64
    private var decoder: MRPDataStreamDecoder
    /// "rply" frames received (answers to our "sync" frames).
    package private(set) var repliesReceived = 0

    package init(role: Role, seqno: UInt64 = UInt64.random(in: 0x1_0000_0000...0x1_FFFF_FFFF),
                maxFrameSize: Int = MRPFraming.defaultMaxMessageSize) {
        self.role = role
        self.seqno = seqno
        decoder = MRPDataStreamDecoder(maxFrameSize: maxFrameSize)
    }

    /// The bytes of a "sync" frame carrying `messages`.
    package mutating func encode(_ messages: [MRPProtocolMessage]) throws(ATVError) -> [UInt8] {
        let frame = MRPDataStreamFrame.sync(command: role == .controller ? MRPDataStreamFrame.controllerCommand
                                                                         : MRPDataStreamFrame.deviceCommand,
                                            seqno: seqno, payload: try MRPDataStreamPayload.encode(messages))
        if role == .device { seqno &+= 1 }
        return frame.encoded()
    }

    package mutating func encode(_ message: MRPProtocolMessage) throws(ATVError) -> [UInt8] { try encode([message]) }

    /// Feed received bytes: the messages they complete, and the bytes to write back (one "rply"
    /// per "sync" frame, in order).
    package mutating func receive<S: Sequence<UInt8>>(_ bytes: S) throws(ATVError) -> (messages: [MRPProtocolMessage], write: [UInt8]) {
        decoder.append(bytes)
        var messages: [MRPProtocolMessage] = []
        var write: [UInt8] = []
        while let frame = try decoder.next() {
            if frame.isReply { repliesReceived += 1 }
            messages += try MRPDataStreamPayload.decode(frame.payload)
            if frame.isSync { write += MRPDataStreamFrame.reply(seqno: frame.seqno).encoded() }
        }
        return (messages, write)
    }
}
