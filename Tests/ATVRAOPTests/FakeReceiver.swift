@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
@testable import ATVRAOP
import NIOCore
import NIOPosix

/// A tiny in-test RAOP receiver for the shell's tests: scripted RTSP answers, records what arrives
/// over UDP, asks for retransmits and sends timing requests.
final class FakeReceiver: Sendable {
    enum Behavior: Sendable, Equatable {
        case normal
        /// Answer the first request with bytes that are not RTSP.
        case garbage
        /// Accept the connection and never answer.
        case silent
        /// Close the TCP connection after this many audio packets.
        case closeAfterAudioPackets(Int)
        /// Answer SETUP without server_port.
        case badTransport
        /// Stop answering anything after RECORD (a receiver that hangs).
        case muteAfterRecord
        /// Never answer `GET /info` (an AirPlay 1 receiver that does not know it); the rest as normal.
        case ignoreInfo
        /// Answer `GET /info` with 403 (a receiver that refuses this sender); the rest as normal.
        case refuseInfo
    }

    struct Log: Sendable {
        var requests: [RTSPRequest] = []
        var audio: [RAOPAudioPacket] = []
        var syncs: [RAOPSyncPacket] = []
        var retransmitted: [RAOPAudioPacket] = []
        var timingReplies: [RAOPTimingPacket] = []
        var senderControlPort: Int?
        var senderTimingPort: Int?
        /// The source ports the audio datagrams came from.
        var audioSourcePorts: Set<Int> = []
        var retransmitAsked = false
    }

    let behavior: Behavior
    let log = MutexBox(Log())
    let tcp: Channel
    let audio: Channel
    let control: Channel
    let timing: Channel
    var port: Int { tcp.localAddress!.port! }

    private init(behavior: Behavior, tcp: Channel, audio: Channel, control: Channel, timing: Channel) {
        self.behavior = behavior
        self.tcp = tcp
        self.audio = audio
        self.control = control
        self.timing = timing
    }

    static func start(_ behavior: Behavior = .normal) async throws -> FakeReceiver {
        let group = MultiThreadedEventLoopGroup.singleton
        let box = ReceiverBox()
        func udp(_ onRead: @escaping @Sendable ([UInt8], SocketAddress) -> Void) async throws -> Channel {
            try await DatagramBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UDPReader(onRead)) }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        let audio = try await udp { bytes, from in box.receiver?.onAudio(bytes, from: from) }
        let control = try await udp { bytes, _ in box.receiver?.onControl(bytes) }
        let timing = try await udp { bytes, _ in box.receiver?.onTiming(bytes) }
        let tcp = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(RTSPServerHandler(box)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let r = FakeReceiver(behavior: behavior, tcp: tcp, audio: audio, control: control, timing: timing)
        box.set(r)
        return r
    }

    func close() async {
        for c in [tcp, audio, control, timing] { try? await c.close() }
    }

    // MARK: RTSP

    func answer(_ request: RTSPRequest) -> [UInt8]? {
        log.withLock { $0.requests.append(request) }
        switch behavior {
        case .garbage: return Array("SPAM SPAM SPAM\r\n\r\n".utf8)
        case .silent: return nil
        case .muteAfterRecord where log.withLock({ $0.requests.dropLast().contains { $0.method == "RECORD" } }): return nil
        case .ignoreInfo where request.method == "GET": return nil
        default: break
        }
        var headers: RTSPHeaders = ["CSeq": request.headers["CSeq"] ?? "0", "Server": "FakeReceiver/1.0"]
        var status = 200
        switch request.method {
        case "GET": status = behavior == .refuseInfo ? 403 : 404
        case "SETUP":
            let t = RTSPTransport(parsing: request.headers["Transport"] ?? "")
            log.withLock { $0.senderControlPort = t.port("control_port"); $0.senderTimingPort = t.port("timing_port") }
            if behavior == .badTransport {
                headers.add("Transport", "RTP/AVP/UDP;unicast;mode=record")
            } else {
                headers.add("Transport", "RTP/AVP/UDP;unicast;mode=record;server_port=\(audio.localAddress!.port!);control_port=\(control.localAddress!.port!);timing_port=\(timing.localAddress!.port!)")
            }
            headers.add("Session", "1")
            sendTimingRequest()
        case "RECORD": headers.add("Audio-Latency", "0")
        case "POST": status = 404
        default: break
        }
        return RTSPResponse(status: status, headers: headers).serialized
    }

    // MARK: UDP

    private func send(_ channel: Channel, _ bytes: [UInt8], port: Int?) {
        guard let port, let addr = try? SocketAddress(ipAddress: "127.0.0.1", port: port) else { return }
        var buf = channel.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: addr, data: buf), promise: nil)
    }

    func sendTimingRequest() {
        let port = log.withLock { $0.senderTimingPort }
        send(timing, RAOPTimingPacket(isReply: false, sendTime: NTPTime.now()).bytes, port: port)
    }

    func onAudio(_ bytes: [UInt8], from: SocketAddress) {
        guard let p = try? RAOPAudioPacket(decoding: bytes) else { return }
        let (count, ask) = log.withLock { l -> (Int, (UInt16, Int?)?) in
            l.audio.append(p)
            if let port = from.port { l.audioSourcePorts.insert(port) }
            if l.audio.count == 10, !l.retransmitAsked {
                l.retransmitAsked = true
                return (l.audio.count, (l.audio[2].sequenceNumber, l.senderControlPort))
            }
            return (l.audio.count, nil)
        }
        if let (seq, port) = ask {
            send(control, RAOPRetransmitRequest(firstSequence: seq, count: 3).bytes, port: port)
        }
        if case .closeAfterAudioPackets(let n) = behavior, count == n {
            closeClients()
        }
    }

    func onControl(_ bytes: [UInt8]) {
        guard let p = try? RAOPControlPacket(decoding: bytes) else { return }
        log.withLock { l in
            switch p {
            case .sync(let s): l.syncs.append(s)
            case .retransmitResponse(let r): l.retransmitted.append(r.packet)
            case .retransmitRequest: break
            }
        }
    }

    func onTiming(_ bytes: [UInt8]) {
        guard let p = try? RAOPTimingPacket(decoding: bytes), p.isReply else { return }
        log.withLock { $0.timingReplies.append(p) }
    }

    let clients = MutexBox<[Channel]>([])
    func closeClients() {
        for c in clients.withLock({ $0 }) { c.close(promise: nil) }
    }
}

final class ReceiverBox: Sendable {
    private let value = MutexBox<FakeReceiver?>(nil)
    func set(_ r: FakeReceiver) { value.withLock { $0 = r } }
    var receiver: FakeReceiver? { value.withLock { $0 } }
}

final class UDPReader: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onRead: @Sendable ([UInt8], SocketAddress) -> Void
    init(_ onRead: @escaping @Sendable ([UInt8], SocketAddress) -> Void) { self.onRead = onRead }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let e = unwrapInboundIn(data)
        onRead(Array(e.data.readableBytesView), e.remoteAddress)
    }
}

final class RTSPServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let box: ReceiverBox
    var parser = RTSPParser()
    init(_ box: ReceiverBox) { self.box = box }

    func channelActive(context: ChannelHandlerContext) {
        let ch = context.channel
        box.receiver?.clients.withLock { $0.append(ch) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        parser.append(unwrapInboundIn(data).readableBytesView)
        while let request = try? parser.nextRequest() {
            guard let answer = box.receiver?.answer(request) else { continue }
            var buf = context.channel.allocator.buffer(capacity: answer.count)
            buf.writeBytes(answer)
            context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
        }
    }
}
