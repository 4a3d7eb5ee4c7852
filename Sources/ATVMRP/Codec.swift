import ATVCore
import SwiftProtobuf

/// Encoding and decoding of `MRPProtocolMessage` with every inner-message extension known.
package enum MRPCodec {
    /// All extensions of `MRPProtocolMessage` (decoding without them silently drops inner messages).
    package static let extensions: SimpleExtensionMap = MRPMessages_Extensions

    /// Decodes one (unframed) ProtocolMessage.
    package static func decode(_ bytes: [UInt8]) throws(ATVError) -> MRPProtocolMessage {
        do {
            return try MRPProtocolMessage(serializedBytes: bytes, extensions: extensions)
        } catch {
            throw ATVError.protocolError("malformed MRP message (\(bytes.count) bytes): \(error)")
        }
    }

    /// Serialises one ProtocolMessage (without the length prefix).
    package static func encode(_ message: MRPProtocolMessage) throws(ATVError) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            throw ATVError.protocolError("cannot encode MRP message: \(error)")
        }
    }

    /// Serialises one ProtocolMessage with its varint length prefix.
    package static func encodeFramed(_ message: MRPProtocolMessage) throws(ATVError) -> [UInt8] {
        MRPFraming.frame(try encode(message))
    }
}

extension MRPFrameDecoder {
    /// The next complete, decoded message, or nil if more bytes are needed.
    package mutating func nextMessage() throws(ATVError) -> MRPProtocolMessage? {
        guard let bytes = try next() else { return nil }
        return try MRPCodec.decode(bytes)
    }
}
