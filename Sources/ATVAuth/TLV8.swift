// TLV8 (HAP): tag(1) ‖ length(1) ‖ value; values over 255 bytes are split into consecutive
// 255-byte fragments with the same tag and joined again when read.
import ATVCore

/// An ordered TLV8 message. Sans-I/O value type; `decode` never traps on garbage.
package struct TLV8: Sendable, Equatable, CustomStringConvertible {
    package struct Tag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        package var rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }
        package init(_ rawValue: UInt8) { self.rawValue = rawValue }
        package static let method = Tag(0x00)
        package static let identifier = Tag(0x01)
        package static let salt = Tag(0x02)
        package static let publicKey = Tag(0x03)
        package static let proof = Tag(0x04)
        package static let encryptedData = Tag(0x05)
        /// "SeqNo" in pyatv, "State" in the HAP spec.
        package static let state = Tag(0x06)
        package static let error = Tag(0x07)
        package static let backOff = Tag(0x08)
        package static let certificate = Tag(0x09)
        package static let signature = Tag(0x0A)
        package static let permissions = Tag(0x0B)
        package static let fragmentData = Tag(0x0C)
        package static let fragmentLast = Tag(0x0D)
        package static let name = Tag(0x11)
        package static let flags = Tag(0x13)
        package static let separator = Tag(0xFF)
        package var description: String { "0x" + String(rawValue, radix: 16) }
    }

    /// Values of `Tag.error`.
    package enum ErrorCode: UInt8, Sendable {
        case unknown = 1, authentication = 2, backOff = 3, maxPeers = 4, maxTries = 5, unavailable = 6, busy = 7
        package var name: String {
            switch self {
            case .unknown: "unknown error"
            case .authentication: "authentication error (wrong PIN or bad proof)"
            case .backOff: "back off (too many attempts, retry later)"
            case .maxPeers: "max peers (the device cannot store more pairings)"
            case .maxTries: "max tries (too many failed attempts)"
            case .unavailable: "unavailable (the device is not accepting pairing now)"
            case .busy: "busy (another pairing is in progress)"
            }
        }
    }

    /// Values of `Tag.method`.
    package enum Method: UInt8, Sendable {
        case pairSetup = 0, pairSetupWithAuth = 1, pairVerify = 2, addPairing = 3, removePairing = 4, listPairings = 5
    }

    /// `Tag.flags` bit for transient pair-setup.
    package static let transientFlag: UInt8 = 0x10

    package struct Item: Sendable, Equatable {
        package var tag: Tag
        package var value: [UInt8]
        package init(_ tag: Tag, _ value: [UInt8]) { self.tag = tag; self.value = value }
    }

    package private(set) var items: [Item]

    package init() { items = [] }
    package init(_ items: [Item]) { self.items = items }
    package init(_ pairs: KeyValuePairs<Tag, [UInt8]>) { items = pairs.map { Item($0.key, $0.value) } }

    package mutating func append(_ tag: Tag, _ value: [UInt8]) { items.append(Item(tag, value)) }

    /// The (joined) value of the first item with this tag.
    package subscript(_ tag: Tag) -> [UInt8]? { items.first { $0.tag == tag }?.value }

    /// A one-byte value (state, error, method, flags), if present and exactly one byte long.
    package func byte(_ tag: Tag) -> UInt8? {
        guard let v = self[tag], v.count == 1 else { return nil }
        return v[0]
    }

    /// Serialized bytes. Empty values are written as `tag 00` (HAP spec).
    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(0) { $0 + $1.value.count + 2 * ($1.value.count / 255 + 1) })
        for item in items {
            if item.value.isEmpty {
                out += [item.tag.rawValue, 0]
                continue
            }
            var i = 0
            while i < item.value.count {
                let n = min(255, item.value.count - i)
                out.append(item.tag.rawValue)
                out.append(UInt8(n))
                out += item.value[i ..< i + n]
                i += n
            }
        }
        return out
    }

    /// Parse bytes. A fragment of exactly 255 bytes followed by an item with the same tag is
    /// joined with it. Truncated input throws `ATVError.protocolError`.
    package static func decode<C: Collection<UInt8>>(_ bytes: C) throws(ATVError) -> TLV8 {
        let b = Array(bytes)
        var items: [Item] = []
        var i = 0
        var lastFragmentFull = false
        while i < b.count {
            guard i + 2 <= b.count else {
                throw ATVError.protocolError("TLV8 truncated: item header at offset \(i) of \(b.count)")
            }
            let tag = Tag(b[i])
            let len = Int(b[i + 1])
            guard i + 2 + len <= b.count else {
                throw ATVError.protocolError("TLV8 truncated: item \(tag) wants \(len) bytes, \(b.count - i - 2) left")
            }
            let value = b[i + 2 ..< i + 2 + len]
            if lastFragmentFull, let last = items.last, last.tag == tag {
                items[items.count - 1].value += value
            } else {
                items.append(Item(tag, Array(value)))
            }
            lastFragmentFull = len == 255
            i += 2 + len
        }
        return TLV8(items)
    }

    package var description: String {
        "TLV8(" + items.map { "\($0.tag): \($0.value.count == 1 ? String($0.value[0]) : "\($0.value.count) B")" }
            .joined(separator: ", ") + ")"
    }
}
