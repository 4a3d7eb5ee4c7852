// Companion frame types, auth payloads and the E_OPACK message envelope. The byte framing itself (type ‖ 3-byte BE length ‖ payload, encrypted after pair-verify)
// is ATVAuth's CompanionFrameEncoder/Decoder.
import ATVAuth
import ATVCore

package enum CompanionFrameType: UInt8, Sendable, CaseIterable {
    case unknown = 0x00, noOp = 0x01
    case pairSetupStart = 0x03, pairSetupNext = 0x04, pairVerifyStart = 0x05, pairVerifyNext = 0x06
    case unencryptedOPACK = 0x07, encryptedOPACK = 0x08, packedOPACK = 0x09
    case pairingRequest = 0x0A, pairingResponse = 0x0B
    case sessionStartRequest = 0x10, sessionStartResponse = 0x11, sessionData = 0x12
    case familyIdentityRequest = 0x20, familyIdentityResponse = 0x21, familyIdentityUpdate = 0x22

    package var isAuth: Bool { (0x03 ... 0x06).contains(rawValue) }
    package var isOPACK: Bool { (0x07 ... 0x09).contains(rawValue) }
}

/// The `_pd` carrier of HAP TLV8 in auth frames.
package enum CompanionAuth {
    /// Pair-setup payload: `{"_pd": tlv, "_pwTy": 1}`.
    package static func pairSetupPayload(_ tlv: [UInt8]) -> [UInt8] {
        OPACK.dict(["_pd": .data(tlv), "_pwTy": .int(1)]).encoded()
    }
    /// Pair-verify payload: `{"_pd": tlv, "_auTy": 4}` for M1, `{"_pd": tlv}` afterwards.
    package static func pairVerifyPayload(_ tlv: [UInt8], first: Bool) -> [UInt8] {
        first ? OPACK.dict(["_pd": .data(tlv), "_auTy": .int(4)]).encoded() : OPACK.dict(["_pd": .data(tlv)]).encoded()
    }
    /// A device's reply: `{"_pd": tlv}`.
    package static func replyPayload(_ tlv: [UInt8]) -> [UInt8] { OPACK.dict(["_pd": .data(tlv)]).encoded() }

    /// The TLV bytes of an auth frame's payload.
    package static func tlv(from payload: [UInt8]) throws(ATVError) -> [UInt8] {
        let obj = try OPACK.decode(payload)
        guard case .dictionary = obj else { throw ATVError.protocolError("Companion auth frame is not an OPACK dictionary") }
        guard let pd = obj["_pd"]?.dataValue, !pd.isEmpty else {
            throw ATVError.protocolError("Companion auth frame has no pairing data (_pd)")
        }
        return pd
    }
}

/// An E_OPACK message: `{_i, _t, _c, _x}` with optional error fields.
package struct CompanionMessage: Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Int64, Sendable { case event = 1, request = 2, response = 3 }

    package var kind: Kind
    /// `_i`: the command or event name (responses may omit it).
    package var identifier: String?
    /// `_c`.
    package var content: OPACK
    /// `_x`: the transaction id (responses echo the request's).
    package var xid: Int64?
    /// `_em`, `_ec`, `_ed` of an error response.
    package var errorMessage: String?
    package var errorCode: Int64?
    package var errorDomain: String?

    package init(kind: Kind, identifier: String?, content: OPACK = .dictionary([]), xid: Int64? = nil,
                errorMessage: String? = nil, errorCode: Int64? = nil, errorDomain: String? = nil) {
        self.kind = kind
        self.identifier = identifier
        self.content = content
        self.xid = xid
        self.errorMessage = errorMessage
        self.errorCode = errorCode
        self.errorDomain = errorDomain
    }

    package static func request(_ name: String, _ content: OPACK = .dictionary([]), xid: Int64) -> CompanionMessage {
        CompanionMessage(kind: .request, identifier: name, content: content, xid: xid)
    }
    package static func event(_ name: String, _ content: OPACK = .dictionary([]), xid: Int64? = nil) -> CompanionMessage {
        CompanionMessage(kind: .event, identifier: name, content: content, xid: xid)
    }
    package static func response(to xid: Int64?, _ content: OPACK = .dictionary([])) -> CompanionMessage {
        CompanionMessage(kind: .response, identifier: nil, content: content, xid: xid)
    }
    /// The error a device sends for a request it does not handle.
    package static func noHandler(for xid: Int64?) -> CompanionMessage {
        CompanionMessage(kind: .response, identifier: nil, content: .dictionary([]), xid: xid,
                         errorMessage: "No request handler", errorCode: 58822, errorDomain: "RPErrorDomain")
    }

    package var opack: OPACK {
        var pairs: [(String, OPACK)] = []
        if let i = identifier { pairs.append(("_i", .string(i))) }
        pairs.append(("_t", .int(kind.rawValue)))
        pairs.append(("_c", content))
        if let em = errorMessage { pairs.append(("_em", .string(em))) }
        if let ec = errorCode { pairs.append(("_ec", .int(ec))) }
        if let ed = errorDomain { pairs.append(("_ed", .string(ed))) }
        if let x = xid { pairs.append(("_x", .int(x))) }
        return .dict(pairs)
    }

    package func encoded() -> [UInt8] { opack.encoded() }

    package init(decoding payload: [UInt8]) throws(ATVError) {
        let obj = try OPACK.decode(payload)
        guard case .dictionary = obj else { throw ATVError.protocolError("Companion message is not an OPACK dictionary") }
        guard let t = obj["_t"]?.intValue, let kind = Kind(rawValue: t) else {
            throw ATVError.protocolError("Companion message has no valid type (_t)")
        }
        self.kind = kind
        identifier = obj["_i"]?.stringValue
        content = obj["_c"] ?? .dictionary([])
        xid = obj["_x"]?.intValue
        errorMessage = obj["_em"]?.stringValue
        errorCode = obj["_ec"]?.intValue
        errorDomain = obj["_ed"]?.stringValue
        if kind != .response && identifier == nil {
            throw ATVError.protocolError("Companion \(kind == .event ? "event" : "request") has no identifier (_i)")
        }
    }

    package var description: String {
        "\(kind) \(identifier ?? "-") x=\(xid.map(String.init) ?? "-") \(content)" + (errorMessage.map { " error=\($0)" } ?? "")
    }
}

/// HID button codes (`_hidC`).
package enum CompanionHIDButton: Int64, Sendable, CaseIterable {
    case up = 1, down, left, right, menu, select, home, volumeUp, volumeDown, siri, screensaver,
         sleep, wake, playPause, channelIncrement, channelDecrement, guide, pageUp, pageDown
}

/// `_mcc` media-control commands.
package enum CompanionMediaCommand: Int64, Sendable, CaseIterable {
    case play = 1, pause, nextTrack, previousTrack, getVolume, setVolume, skipBy,
         fastForwardBegin, fastForwardEnd, rewindBegin, rewindEnd, getCaptionSettings, setCaptionSettings
}

/// SystemStatus `state` values.
package enum CompanionSystemStatus: Int64, Sendable {
    case asleep = 1, screensaver = 2, awake = 3, idle = 4
}
