// The receiver's half of the MRP tunnel (MRP in AirPlay 2 data-stream frames), shared by the virtual
// HomePod and the virtual Apple TV: stream SETUP type 130 derives the DataStream keys from the
// sender's `seed`, binds a TCP data channel, and every connection to it carries MRP (DataStream
// frames under HAP encryption) to one `VirtualMRP`.
import ATVAirPlayCore
import ATVAuth
import ATVCore
import NIOCore
import NIOPosix

enum MRPTunnelListener {
    /// The DataStream keys for a type-130 stream description; nil when it has no integer `seed`.
    static func keys(stream: [String: PlistValue], secret: [UInt8]) -> ChannelKeys? {
        guard case .int(let rawSeed)? = stream["seed"] else { return nil }
        return HAPChannel.airPlayDataStream(seed: UInt64(bitPattern: rawSeed)).keys(sharedSecret: secret, role: .accessory)
    }

    /// Binds the data channel listener on `host` (any free port). Each connection first goes
    /// through `accept` (on its event loop; throw to refuse it), whose handlers sit between the HAP
    /// decryption and the MRP handler.
    static func bind(group: EventLoopGroup, host: String, keys: ChannelKeys, device: VirtualMRP,
                     accept: @escaping @Sendable (Channel) throws -> [any ChannelHandler & Sendable] = { _ in [] }) -> EventLoopFuture<Channel> {
        EncryptedListener.bind(group: group, host: host, keys: keys, noDelay: true) { ch, pipeline in
            for h in try accept(ch) { try pipeline.addHandler(h) }
            try pipeline.addHandler(MRPAccessoryHandler(device: device, transport: .dataStream))
        }
    }

    /// The SETUP answer body: `{streams: [{type: 130, dataPort, streamID}]}`.
    static func setupAnswer(dataPort: Int, streamID: Int) -> [UInt8] {
        BinaryPlist.encode(.dict(["streams": .array([.dict([
            "type": .int(130), "dataPort": .int(Int64(dataPort)), "streamID": .int(Int64(streamID)),
        ])])]))
    }
}

/// A TCP listener (any free port) whose connections are HAP-encrypted with `keys` from their first
/// byte: the AirPlay 2 event channel of the virtual receivers and the tunnel's data channel.
enum EncryptedListener {
    /// `configure` adds the handlers above the encryption, on the connection's event loop (throw
    /// to refuse the connection).
    static func bind(group: EventLoopGroup, host: String, keys: ChannelKeys, noDelay: Bool = false,
                     configure: @escaping @Sendable (Channel, ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<Channel> {
        TCPListener.bind(host: host, port: 0, on: group, options: .init(noDelay: noDelay)) { ch, pipeline in
            let crypto = HAPEncryptionHandler()
            crypto.enable(keys: keys)
            try pipeline.addHandler(crypto)
            try configure(ch, pipeline)
        }
    }
}
