// The accessory (device) side of one Companion connection, sans-I/O: bytes in, bytes out.
// Pair-setup (PS_Start/PS_Next) and pair-verify (PV_Start/PV_Next) run ATVAuth's server state
// machines over `_pd` carriers; after pair-verify M4 both directions are encrypted with the
// Companion channel keys and E_OPACK messages are surfaced to the caller.
import ATVAuth
import ATVCore

package struct CompanionAccessoryConnection: Sendable {
    package enum Output: Sendable, Equatable {
        /// Bytes to write to the controller.
        case send([UInt8])
        /// Pair-setup finished: remember this controller.
        case paired(HAPPairedController)
        /// Pair-verify finished; the channel is encrypted from now on.
        case verified(HAPPairedController)
        /// Pair-setup or pair-verify failed (the error reply was already queued).
        case authFailed(ATVError)
        /// A decoded E_OPACK message (only after pair-verify).
        case message(CompanionMessage)
    }

    let identity: HAPIdentity
    let pin: String
    var setup: HAPPairSetupServer?
    var verify: HAPPairVerifyServer?
    var encoder = CompanionFrameEncoder(key: nil)
    var decoder = CompanionFrameDecoder(key: nil)
    package private(set) var isEncrypted = false

    package init(identity: HAPIdentity, pin: String) {
        self.identity = identity
        self.pin = pin
    }

    /// Feed received bytes; `controllers` are the pairings known now (for pair-verify).
    package mutating func receive(_ bytes: [UInt8], controllers: [HAPPairedController]) throws(ATVError) -> [Output] {
        var out: [Output] = []
        for frame in try decoder.decode(bytes) {
            guard let type = CompanionFrameType(rawValue: frame.type) else { continue }
            switch type {
            case .pairSetupStart, .pairSetupNext:
                if type == .pairSetupStart || setup == nil { setup = HAPPairSetupServer(identity: identity, pin: pin) }
                let tlv: [UInt8]
                do { tlv = try CompanionAuth.tlv(from: frame.payload) } catch { out.append(.authFailed(error)); continue }
                guard var s = setup else { continue }
                let reply = s.handle(tlv)
                setup = s
                out.append(.send(try encoder.encode(CompanionFrame(type: CompanionFrameType.pairSetupNext.rawValue,
                                                                   payload: CompanionAuth.replyPayload(reply.message)))))
                switch reply.event {
                case .paired(let c): out.append(.paired(c)); setup = nil
                case .failed(let e): out.append(.authFailed(e)); setup = nil
                default: break
                }
            case .pairVerifyStart, .pairVerifyNext:
                if type == .pairVerifyStart || verify == nil {
                    verify = HAPPairVerifyServer(identity: identity, controllers: controllers)
                }
                let tlv: [UInt8]
                do { tlv = try CompanionAuth.tlv(from: frame.payload) } catch { out.append(.authFailed(error)); continue }
                guard var v = verify else { continue }
                let reply = v.handle(tlv)
                verify = v
                out.append(.send(try encoder.encode(CompanionFrame(type: CompanionFrameType.pairVerifyNext.rawValue,
                                                                   payload: CompanionAuth.replyPayload(reply.message)))))
                switch reply.event {
                case .verified(let c, let shared):
                    let keys = HAPChannel.companion.keys(sharedSecret: shared, role: .accessory)
                    encoder.enableEncryption(key: keys.output)
                    decoder.enableEncryption(key: keys.input)
                    isEncrypted = true
                    verify = nil
                    out.append(.verified(c))
                case .failed(let e): out.append(.authFailed(e)); verify = nil
                default: break
                }
            case .encryptedOPACK, .unencryptedOPACK, .packedOPACK:
                // Messages are only accepted on a verified (encrypted) channel.
                guard isEncrypted, !frame.payload.isEmpty else { continue }
                out.append(.message(try CompanionMessage(decoding: frame.payload)))
            default:
                continue
            }
        }
        return out
    }

    /// An encrypted E_OPACK frame carrying `message`.
    package mutating func encode(_ message: CompanionMessage) throws(ATVError) -> [UInt8] {
        guard isEncrypted else { throw ATVError.invalidState("Companion: messages need a verified connection") }
        return try encoder.encode(CompanionFrame(type: CompanionFrameType.encryptedOPACK.rawValue, payload: message.encoded()))
    }
}
