// `atv proxy relay`: plain TCP forwarding with a callback per chunk (for hex dumps).
import ATVCore
import NIOCore
import NIOPosix
import Synchronization

package final class TCPRelay: Sendable {
    let channel: Channel
    init(channel: Channel) { self.channel = channel }
    package var port: Int { channel.localAddress?.port ?? 0 }

    /// `onData(direction, bytes)`: direction is "local->remote" or "remote->local".
    package static func start(localHost: String = "127.0.0.1", localPort: Int, remoteHost: String, remotePort: Int,
                             onData: @escaping @Sendable (String, [UInt8]) -> Void) async throws -> TCPRelay {
        let channel = try await TCPListener.bind(host: localHost, port: localPort, options: .init(autoRead: false)) { _, pipeline in
            try pipeline.addHandler(RelayLocalHandler(remoteHost: remoteHost, remotePort: remotePort, onData: onData))
        }
        return TCPRelay(channel: channel)
    }

    package func stop() async { try? await channel.close() }

    /// `label` then 16 bytes a line: offset, hex, printable ASCII.
    package static func hexdump(_ bytes: [UInt8], label: String) -> String {
        var lines = ["\(label) \(bytes.count) bytes"]
        var i = 0
        while i < bytes.count {
            let row = bytes[i ..< min(i + 16, bytes.count)]
            let hex = row.map { b in String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }.joined(separator: " ")
            let ascii = String(row.map { (0x20 ..< 0x7F).contains($0) ? Character(UnicodeScalar($0)) : "." })
            let off = String(i, radix: 16)
            lines.append(String(repeating: "0", count: max(0, 8 - off.count)) + off + "  " + (hex + String(repeating: " ", count: max(0, 47 - hex.count))) + "  " + ascii)
            i += 16
        }
        return lines.joined(separator: "\n")
    }
}

final class RelayLocalHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let remoteHost: String, remotePort: Int
    let onData: @Sendable (String, [UInt8]) -> Void
    var remote: Channel?
    init(remoteHost: String, remotePort: Int, onData: @escaping @Sendable (String, [UInt8]) -> Void) {
        self.remoteHost = remoteHost
        self.remotePort = remotePort
        self.onData = onData
    }
    func channelActive(context: ChannelHandlerContext) {
        let local = context.channel
        ClientBootstrap(group: local.eventLoop)
            .connectTimeout(.seconds(10))
            .channelInitializer { rch in
                rch.eventLoop.makeCompletedFuture { try rch.pipeline.syncOperations.addHandler(RelayRemoteHandler(local: local, onData: self.onData)) }
            }
            .connect(host: remoteHost, port: remotePort)
            .whenComplete { result in
                switch result {
                case .success(let rch): self.remote = rch; local.read()
                case .failure: local.close(promise: nil)
                }
            }
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buf = unwrapInboundIn(data)
        onData("local->remote", Array(buf.readableBytesView))
        remote?.writeAndFlush(buf, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) { if remote != nil { context.read() } }
    func channelInactive(context: ChannelHandlerContext) { remote?.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

final class RelayRemoteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let local: Channel
    let onData: @Sendable (String, [UInt8]) -> Void
    init(local: Channel, onData: @escaping @Sendable (String, [UInt8]) -> Void) { self.local = local; self.onData = onData }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buf = unwrapInboundIn(data)
        onData("remote->local", Array(buf.readableBytesView))
        local.writeAndFlush(buf, promise: nil)
    }
    func channelInactive(context: ChannelHandlerContext) { local.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
