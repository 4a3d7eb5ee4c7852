import ATVCore
import NIOCore
import NIOPosix

/// What a server sends for one request.
package struct RTSPServerReply: Sendable {
    /// A body sent from a file with sendfile instead of `response.body`.
    package struct FileBody: Sendable, Equatable {
        package var path: String
        package var offset: Int
        package var length: Int
        package init(path: String, offset: Int, length: Int) {
            self.path = path
            self.offset = offset
            self.length = length
        }
    }

    package var response: RTSPResponse
    package var file: FileBody?
    /// Only the head, with the Content-Length of the body it would have (an answer to HEAD).
    package var headOnly: Bool
    /// Runs on the event loop right after the response is handed to the pipeline: handlers below
    /// see it before whatever this changes (a pairing answer goes out in plaintext, then
    /// encryption is switched on).
    package var afterWrite: (@Sendable () -> Void)?
    /// Runs once the response has left for the socket (or the write failed): whatever must not
    /// happen before the peer could read the answer, such as stopping the server.
    package var afterSent: (@Sendable () -> Void)?
    /// Close the connection once the response is written; requests after it are not read.
    package var close: Bool
    /// Write nothing (a stuck receiver that reads but never answers).
    package var silent: Bool

    package init(_ response: RTSPResponse, file: FileBody? = nil, headOnly: Bool = false,
                 afterWrite: (@Sendable () -> Void)? = nil, close: Bool = false, silent: Bool = false) {
        self.response = response
        self.file = file
        self.headOnly = headOnly
        self.afterWrite = afterWrite
        self.close = close
        self.silent = silent
    }
}

/// The server end of one RTSP or HTTP/1.x connection, for `HTTPServer` and every virtual
/// device: requests framed by `RTSPParser` (Content-Length, chunked, none = no body), handed one
/// at a time to `respond` (the next only after the previous answer is written, so answers keep the
/// request order), answers written with `RTSPSerializer`. An HTTP answer always carries
/// Content-Length (0 for none) so clients need not wait for a close; an RTSP answer only with a
/// body. Malformed input gets 400 (a body over the parser's limit 413), then the connection closes.
package final class RTSPServerHandler: ChannelInboundHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer
    package typealias Respond = @Sendable (RTSPRequest) -> EventLoopFuture<RTSPServerReply>

    private var parser: RTSPParser
    private let errorVersion: String
    private let respond: Respond
    private let onBytes: (@Sendable (Int) -> Void)?
    private let onClose: (@Sendable () -> Void)?
    private var pending: EventLoopFuture<Void>?
    /// A reply asked to close, or the input was malformed: nothing more is read.
    private var closing = false
    /// A reply that closes the connection was written: requests queued after it get no answer.
    private var closed = false

    /// `respond` is called on the channel's event loop. `errorVersion`: the version of the 400/413
    /// answer ("RTSP/1.0" or "HTTP/1.1"). `onBytes` gets the size of what arrives, `onClose` runs
    /// when the connection closes.
    package init(parser: RTSPParser = RTSPParser(), errorVersion: String = "RTSP/1.0",
                 onBytes: (@Sendable (Int) -> Void)? = nil, onClose: (@Sendable () -> Void)? = nil,
                 respond: @escaping Respond) {
        self.parser = parser
        self.errorVersion = errorVersion
        self.respond = respond
        self.onBytes = onBytes
        self.onClose = onClose
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        onBytes?(buffer.readableBytes)
        guard !closing else { return }
        parser.append(buffer.readableBytesView)
        let channel = context.channel
        while !closing {
            let request: RTSPRequest?
            do {
                request = try parser.nextRequest()
            } catch {
                closing = true
                var bad = RTSPResponse(version: errorVersion, status: parser.bodyLimitExceeded ? 413 : 400)
                bad.headers.set("Connection", "close")
                let reply = RTSPServerReply(bad, close: true)
                enqueue(on: channel) { channel.eventLoop.makeSucceededFuture(reply) }
                return
            }
            guard let request else { return }
            let respond = self.respond
            enqueue(on: channel) { respond(request) }
        }
    }

    /// Chains the answer to a request after the previous one, so answers keep the request order.
    @discardableResult
    private func enqueue(on channel: Channel, _ work: @escaping @Sendable () -> EventLoopFuture<RTSPServerReply>) -> EventLoopFuture<Void> {
        let loop = channel.eventLoop
        let previous = pending ?? loop.makeSucceededVoidFuture()
        let handler = NIOLoopBound(self, eventLoop: loop)
        let next = previous.flatMapError { _ in loop.makeSucceededVoidFuture() }.flatMap { () -> EventLoopFuture<Void> in
            guard !handler.value.closed else { return loop.makeSucceededVoidFuture() }
            return work().flatMap { reply in
                guard !handler.value.closed else { return loop.makeSucceededVoidFuture() }
                if reply.close {
                    handler.value.closing = true
                    handler.value.closed = true
                }
                return Self.write(reply, on: channel)
            }
        }
        pending = next
        return next
    }

    /// Writes one reply (nothing when silent), then runs its `afterWrite`; closes when it says so.
    static func write(_ reply: RTSPServerReply, on channel: Channel) -> EventLoopFuture<Void> {
        let loop = channel.eventLoop
        if reply.silent || !channel.isActive {
            reply.afterSent?()
            return loop.makeSucceededVoidFuture()
        }
        var response = reply.response
        var region: FileRegion?
        var length = response.body.count
        if let file = reply.file {
            length = file.length
            response.body = []
            if !reply.headOnly && file.length > 0 {
                do {
                    let handle = try NIOFileHandle(_deprecatedPath: file.path)
                    region = FileRegion(fileHandle: handle, readerIndex: file.offset, endIndex: file.offset + file.length)
                } catch {
                    response = RTSPResponse(version: response.version, status: 500, headers: response.headers)
                    length = 0
                }
            }
        }
        let isHTTP = response.version.hasPrefix("HTTP/")
        var bytes = RTSPSerializer.serializeHead(response, contentLength: isHTTP || length > 0 ? length : nil,
                                                 reserving: reply.headOnly ? 0 : response.body.count)
        if !reply.headOnly { bytes += response.body }
        let written: EventLoopFuture<Void>
        if let region {
            let handle = region.fileHandle
            channel.write(channel.allocator.buffer(bytes: bytes), promise: nil)
            written = channel.writeAndFlush(IOData.fileRegion(region))
            written.whenComplete { _ in try? handle.close() }
        } else {
            written = channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        }
        reply.afterWrite?()
        if let afterSent = reply.afterSent { written.whenComplete { _ in afterSent() } }
        if reply.close { written.whenComplete { _ in channel.close(promise: nil) } }
        return written
    }

    package func channelInactive(context: ChannelHandlerContext) {
        onClose?()
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
