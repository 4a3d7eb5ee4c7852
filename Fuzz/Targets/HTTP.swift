import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import ATVAirPlay
import ATVAirPlayCore
import ATVAuth
import ATVCore
@testable import ATVHTTP
import ATVRAOP

// HTTP and RTSP parsers of network input: the RTSP/HTTP parser shared by RAOP, AirPlay 2 and the
// virtual devices (with what is parsed from its headers and bodies, and the RAOP sender's session
// state machine fed the responses), the legacy-pairing HTTP parser (ATVAuth), and the AirPlay HTTP
// client (NIOHTTP1 under our response handler) on an EmbeddedChannel.

/// Input: first byte sets the chunk size, the rest is what a peer sends on one connection.
let rtspTarget = FuzzTarget(name: "rtsp", run: { data in
    var parser = RTSPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 1 << 16)
    var session = RAOPSessionStateMachine(configuration: raopConfiguration)
    _ = session.start()
    var count = 0
    for chunk in chunks(data) {
        parser.append(chunk)
        while count < 16 {
            guard let message = try? parser.nextMessage() else { break }
            count += 1
            switch message {
            case .response(let r):
                _ = session.receive(r)
                if let challenge = r.headers["WWW-Authenticate"] { _ = RTSPDigest.parseParameters(challenge) }
                _ = RAOPVolume.parseParameters(r.bodyText)
                _ = try? AirPlay2SessionReply(parsing: r.body)
            case .request(let r):
                _ = try? SDP.parse(r.bodyText)
                _ = RAOPVolume.parseParameters(r.bodyText)
                _ = try? RAOPProgress(parsing: r.bodyText)
                _ = try? RAOPTrackInfo(dmap: r.body)
                if let t = r.headers["Transport"] { _ = RTSPTransport(parsing: t) }
                if let a = r.headers["Authorization"] { _ = RTSPDigest.parseParameters(a) }
                _ = RTSPSerializer.serialize(r)
            }
        }
    }
}, seeds: {
    var responses: [RTSPResponse] = []
    for r in raopSessionRequests().prefix(5) {
        var h = RTSPHeaders()
        h.add("CSeq", String(r.cseq ?? 0))
        if r.method == "SETUP" {
            h.add("Transport", "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002")
            h.add("Session", "DEADBEEF")
        }
        if r.method == "RECORD" { h.add("Audio-Latency", "11025") }
        responses.append(RTSPResponse(status: 200, headers: h))
    }
    var challenge = RTSPHeaders()
    challenge.add("CSeq", "1")
    challenge.add("WWW-Authenticate", "Digest realm=\"raop\", nonce=\"abc\"")
    return [[12] + responses.flatMap { RTSPSerializer.serialize($0) },
            [30] + RTSPSerializer.serialize(responses[0]) + RTSPSerializer.serialize(RTSPResponse(status: 401, headers: challenge)),
            [63] + raopSessionRequests().flatMap { RTSPSerializer.serialize($0) }]
})

/// What the pairing servers read (DMAP remote pairing, legacy AirPlay pairing in the simulator),
/// framed by ATVHTTP's parser: requests until the input runs out, each request target handed to
/// the DMAP pairing handler, which answers 200, 404 or 500 and nothing else.
let legacyHTTPTarget = FuzzTarget(name: "legacy-http", run: { data in
    var parser = RTSPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 1 << 20)
    var count = 0
    for chunk in chunks(data) {
        parser.append(chunk)
        while count < 16 {
            guard let request = try? parser.nextRequest() else { break }
            count += 1
            _ = DMAPPairing.parseTarget(request.uri)
            let reply = dmapPairing.handle(method: request.method, target: request.uri)
            precondition([200, 404, 500].contains(reply.status), "DMAP pairing answered \(reply.status)")
        }
    }
}, seeds: {
    [[7] + Array("HTTP/1.1 200 OK\r\nContent-Type: application/x-apple-binary-plist\r\nContent-Length: 4\r\n\r\nabcd".utf8),
     [63] + Array("GET /pair?pairingcode=4B6F3B4A4F5A6F2E&servicename=0000000000000001 HTTP/1.1\r\n\r\n".utf8),
     [63] + Array("POST /pair-setup-pin HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyHTTP/1.1 470 Connection Authorization Required\r\n\r\n".utf8)]
})

private let dmapPairing = try! DMAPPairingHandler(guid: "0000000000000001", pin: "1234", name: "Fuzz")

/// The AirPlay video client: two pipelined requests, then the input as what the device answers,
/// then the connection closes. Each answer's body goes to the decoders of /playback-info and
/// /server-info answers.
let airplayHTTPTarget = FuzzTarget(name: "airplay-http", run: { data in
    let channel = EmbeddedChannel()
    try! channel.pipeline.syncOperations.addHandler(HTTPClientRequestHandler(host: "127.0.0.1", port: 7000, fate: ConnectionFate()))
    _ = try? channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 7000)).wait()
    var futures: [EventLoopFuture<HTTPResponseMessage>] = []
    for request in [AirPlayRequests.playbackInfo(), AirPlayRequests.serverInfo()] {
        let promise = channel.eventLoop.makePromise(of: HTTPResponseMessage.self)
        channel.writeAndFlush(HTTPClientRequestHandler.Outbound(request: request, promise: promise, maxBody: 1 << 16,
                                                                 timeout: .seconds(10), what: request.path), promise: nil)
        futures.append(promise.futureResult)
    }
    while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    for chunk in chunks(data) {
        guard channel.isActive, (try? channel.writeInbound(channel.allocator.buffer(bytes: chunk))) != nil else { break }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    for f in futures {
        f.whenSuccess { response in
            _ = try? PlaybackInfo(body: response.body)
            _ = try? BinaryPlist.decode(response.body)
            for f in response.headers.fields {  // header values parsed elsewhere from the network
                _ = ByteRangeRequest(header: f.value, size: 1000)
                _ = AirPlayFeatureFlags(parsing: f.value)
            }
        }
    }
}, seeds: {
    let info = PlaybackInfo(duration: 100, position: 12.25, rate: 1, readyToPlay: true).encoded()
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/x-apple-plist+xml\r\nContent-Length: \(info.count)\r\n\r\n"
    return [[20] + Array(head.utf8) + info + Array("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".utf8),
            [63] + Array(("HTTP/1.1 206 Partial Content\r\nRange: bytes=0-99\r\nFeatures: 0x5A7FFFF7,0x1E\r\nContent-Length: 0\r\n\r\n" +
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n").utf8)]
})
