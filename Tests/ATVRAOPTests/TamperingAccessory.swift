import ATVAuth
import ATVCore
@testable import ATVHTTP
import NIOCore
import NIOPosix

/// A tiny in-test AirPlay 2 accessory (ATVAuth's `HAPPairSetupServer`): transient pairing over
/// plain HTTP, then every encrypted request is answered with a frame that does not authenticate —
/// one bit flipped (`.tampered`) or sealed with a key the controller does not have (`.wrongKey`).
final class TamperingAccessory: Sendable {
    enum Mode: Sendable { case tampered, wrongKey }
    let server: Channel
    var port: Int { server.localAddress?.port ?? 0 }

    private init(server: Channel) { self.server = server }

    static func start(_ mode: Mode) async throws -> TamperingAccessory {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Handler(mode: mode)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TamperingAccessory(server: server)
    }

    func close() async { try? await server.close() }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        var parser = RTSPParser()
        var setup = HAPPairSetupServer(identity: HAPIdentity(identifier: "tampering-accessory"), pin: "1111")
        var keys: ChannelKeys?

        init(mode: Mode) { self.mode = mode }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            if let keys {
                // Encrypted from here on: answer anything with a frame that fails authentication.
                let answer = RTSPResponse(status: 200, headers: ["CSeq": "0"]).serialized
                var encoder = HAPFrameEncoder(key: mode == .wrongKey ? [UInt8](repeating: 7, count: 32) : keys.output)
                guard var frame = try? encoder.encode(answer) else { return }
                if mode == .tampered { frame[4] ^= 0x01 }
                _ = bytes
                write(context, frame)
                return
            }
            parser.append(bytes)
            while let request = try? parser.nextRequest() {
                var response = RTSPResponse(version: request.version, status: 200)
                if let cseq = request.headers["CSeq"] { response.headers.add("CSeq", cseq) }
                if request.uri == "/pair-setup" {
                    let reply = setup.handle(request.body)
                    response.body = reply.message
                    if case .transient(let k)? = reply.event {
                        keys = HAPChannel.airPlayControl.keys(sharedSecret: k, role: .accessory)
                    }
                }
                write(context, response.serialized)
            }
        }

        func write(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
            var buffer = context.channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }
}
