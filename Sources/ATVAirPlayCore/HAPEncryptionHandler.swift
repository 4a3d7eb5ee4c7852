// The thin NIO shell around ATVAuth's HAP framing (blocks of a 2-byte little-endian length, up to
// 1024 bytes of ChaCha20-Poly1305 ciphertext, a 16-byte tag): plain bytes pass through
// until `enable(keys:)`; from then on every outbound buffer is sealed into ≤1024-byte blocks and
// every inbound byte is decrypted before the RTSP/HTTP parser above sees it. Used by both ends of
// an AirPlay 2 control or event connection. A frame that fails authentication closes the channel
// with `ATVError.authenticationFailed` fired down the pipeline.
import ATVAuth
import ATVCore
import NIOCore

public final class HAPEncryptionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var session: HAPSession?
    private var failed = false

    public init() {}

    /// True once `enable` was called.
    public var isEnabled: Bool { session != nil }

    /// Start encrypting. Call on the channel's event loop, after the last plaintext pairing
    /// message was written (accessory) or read (controller).
    public func enable(keys: ChannelKeys) {
        session = HAPSession(keys: keys)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        guard session != nil else {
            context.fireChannelRead(data)
            return
        }
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        do {
            let plain = try session!.decrypt(bytes)
            guard !plain.isEmpty else { return }
            var out = context.channel.allocator.buffer(capacity: plain.count)
            out.writeBytes(plain)
            context.fireChannelRead(wrapInboundOut(out))
        } catch {
            failed = true
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard session != nil else {
            context.write(data, promise: promise)
            return
        }
        var buffer = unwrapOutboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        do {
            let sealed = try session!.encrypt(bytes)
            var out = context.channel.allocator.buffer(capacity: sealed.count)
            out.writeBytes(sealed)
            context.write(wrapOutboundOut(out), promise: promise)
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }
}

extension HAPEncryptionHandler: @unchecked Sendable {}

extension Channel {
    /// Finds the channel's `HAPEncryptionHandler` and enables it with `keys`, on the event loop.
    public func enableHAPEncryption(_ keys: ChannelKeys) -> EventLoopFuture<Void> {
        pipeline.handler(type: HAPEncryptionHandler.self).map { $0.enable(keys: keys) }
    }
}
