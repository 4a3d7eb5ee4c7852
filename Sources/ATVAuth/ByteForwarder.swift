import NIOCore

/// The inbound end of a TCP client channel for an actor that reads in a task (Companion and MRP
/// clients): each read's bytes go to an `AsyncStream`; `nil` marks the end of the connection.
/// A channel error closes the channel (which then ends the stream).
package final class ByteForwarder: ChannelInboundHandler, Sendable {
    package typealias InboundIn = ByteBuffer
    let continuation: AsyncStream<[UInt8]?>.Continuation
    package init(_ c: AsyncStream<[UInt8]?>.Continuation) { continuation = c }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        continuation.yield(buf.readBytes(length: buf.readableBytes) ?? [])
    }
    package func channelInactive(context: ChannelHandlerContext) {
        continuation.yield(nil)
        continuation.finish()
    }
    package func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
