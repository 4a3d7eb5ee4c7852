import ATVAuth
import ATVCore

/// One end of an MRP byte stream, sans I/O: varint-length-prefixed ProtocolMessages,
/// ChaCha20-Poly1305 encrypted (nonce = 4 zero bytes ‖ u64 LE counter, no AAD, length includes
/// the tag) once `enableEncryption` was called after pair-verify. Either side can use it.
package struct MRPChannel: Sendable {
    private var decoder: MRPFrameDecoder
    private var output: ChaChaCounterCipher?
    private var input: ChaChaCounterCipher?

    package init(maxMessageSize: Int = MRPFraming.defaultMaxMessageSize) {
        decoder = MRPFrameDecoder(maxMessageSize: maxMessageSize)
    }

    package var isEncrypted: Bool { output != nil }
    /// Bytes received that do not make a whole frame yet.
    package var bufferedByteCount: Int { decoder.bufferedByteCount }

    /// Switches both directions to encryption. Bytes already buffered are decrypted too, since the
    /// peer encrypts everything after the last pair-verify message.
    package mutating func enableEncryption(_ keys: ChannelKeys) {
        output = ChaChaCounterCipher(key: keys.output, layout: .hap)
        input = ChaChaCounterCipher(key: keys.input, layout: .hap)
    }

    /// The bytes to write for `message`.
    package mutating func encode(_ message: MRPProtocolMessage) throws(ATVError) -> [UInt8] {
        var payload = try MRPCodec.encode(message)
        if output != nil { payload = try output!.seal(payload) }
        return MRPFraming.frame(payload)
    }

    /// Feed received bytes; returns every message they complete.
    /// - Throws: `ATVError` on a bad frame, a failed decryption or an unparsable message; the
    ///   connection must be closed then.
    package mutating func receive<S: Sequence<UInt8>>(_ bytes: S) throws(ATVError) -> [MRPProtocolMessage] {
        decoder.append(bytes)
        var out: [MRPProtocolMessage] = []
        while var payload = try decoder.next() {
            if input != nil { payload = try input!.open(payload) }
            out.append(try MRPCodec.decode(payload))
        }
        return out
    }
}
