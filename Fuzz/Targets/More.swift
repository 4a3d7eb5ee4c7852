import Dispatch
import NIOEmbedded
import Synchronization
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDMAP
@testable import ATVHTTP
import ATVMRP
import ATVRAOP
@testable import ATVSimulator

// The Companion and MRP proxies (both directions), the encrypted frame codecs, and the virtual
// Companion and Apple TV 3 (DMAP) request handlers.

private let proxyIdentity = try! HAPIdentity(identifier: "fuzz-proxy", seed: [UInt8](repeating: 0x12, count: 32))
private let proxyCredentials = HAPCredentials(deviceLTPK: proxyIdentity.publicKey, clientLTSK: proxyIdentity.seed,
                                              deviceID: [1], clientID: [2])

/// Starts `session`, then feeds it each message from the side its first byte names, until one fails.
private func drive<S: HAPProxySession>(_ session: inout S, _ input: [[UInt8]]) {
    guard (try? session.start()) != nil else { return }
    for m in input {
        let body = Array(m.dropFirst())
        let ok = (m.first ?? 0) % 2 == 0 ? (try? session.fromController(body, controllers: [])) != nil
                                           : (try? session.fromDevice(body)) != nil
        if !ok { return }
    }
}

/// Input: a byte choosing the proxy (Companion or MRP), then length-prefixed messages whose first
/// byte says which side sent them (even: the controller, odd: the device).
let proxyTarget = FuzzTarget(name: "proxy", run: { data in
    guard let which = data.first else { return }
    let input = messages(Array(data.dropFirst()), max: 8)
    if which % 2 == 0 {
        var p = CompanionProxySession(identity: proxyIdentity, pin: "1111", credentials: proxyCredentials)
        drive(&p, input)
    } else {
        var p = MRPProxySession(identity: proxyIdentity, pin: "1111", credentials: proxyCredentials, name: "Fuzz")
        drive(&p, input)
    }
}, seeds: {
    var encoder = CompanionFrameEncoder(key: nil)
    var setup = HAPPairSetupClient.transient(srpSecret: [UInt8](repeating: 1, count: 32))
    let companionM1 = try! encoder.encode(CompanionFrame(type: 3, payload: CompanionAuth.pairSetupPayload(try! setup.start())))
    let mrp = mrpSeedMessages().compactMap { try? MRPCodec.encodeFramed($0) }
    return [[0] + framed([[0] + companionM1, [1] + companionM1]),
            [1] + framed([[0] + mrp[0], [1] + mrp[3], [0] + mrp[2], [1] + mrp[5]])]
})

/// Encrypted framing (HAP, Companion, MRP channel) with fixed keys: lengths, tags, counters; the
/// seeds are sealed with the same keys, so their contents reach the decoders behind.
private let frameKey = [UInt8](repeating: 0x5A, count: 32)

let secureFramesTarget = FuzzTarget(name: "secure-frames", run: { data in
    var hap = HAPFrameDecoder(key: frameKey)
    var companion = CompanionFrameDecoder(key: frameKey)
    var channel = MRPChannel(maxMessageSize: 1 << 16)
    channel.enableEncryption(ChannelKeys(output: frameKey, input: frameKey))
    for chunk in chunks(data) {
        let bytes = Array(chunk)
        if let plain = try? hap.decode(bytes) { _ = plain }
        if let frames = try? companion.decode(bytes) {
            for f in frames { _ = try? CompanionMessage(decoding: f.payload) }
        }
        _ = try? channel.receive(bytes)
    }
}, seeds: {
    var hap = HAPFrameEncoder(key: frameKey)
    var companion = CompanionFrameEncoder(key: frameKey)
    var channel = MRPChannel()
    channel.enableEncryption(ChannelKeys(output: frameKey, input: frameKey))
    return [[63] + (try! hap.encode(Array("GET /info RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8))),
            [63] + (try! companion.encode(CompanionFrame(type: 8, payload: CompanionMessage.request("_launchApp", .dict(["_bundleID": .string("com.apple.TVMusic")]), xid: 1).encoded()))),
            [63] + mrpSeedMessages().prefix(4).flatMap { try! channel.encode($0) }]
})

/// The virtual Companion device's message handler (what it does with a verified controller's
/// E_OPACK requests and events: apps, power, HID, media control, text input, volume).
private let companionDevice = VirtualCompanion(
    configuration: VirtualCompanion.Configuration(identity: try! HAPIdentity(identifier: "fuzz-companion-device",
                                                                              seed: [UInt8](repeating: 0x13, count: 32))),
    channel: EmbeddedChannel(), state: VirtualCompanion.State(power: .awake, volume: 0.5, text: ""))

let simCompanionTarget = FuzzTarget(name: "sim-companion", run: { data in
    companionDevice.state.withLock { $0.report = VirtualCompanion.Report(); $0.text = ""; $0.textSession = [] }
    for m in messages(data, max: 8) {
        guard let message = try? CompanionMessage(decoding: m) else { continue }
        _ = companionDevice.handle(message)
    }
}, seeds: {
    let requests: [CompanionMessage] = [
        .request("_systemInfo", .dict(["name": .string("Fuzz")]), xid: 1),
        .request("FetchLaunchableApplicationsEvent", xid: 2),
        .request("_launchApp", .dict(["_bundleID": .string("com.apple.TVMusic")]), xid: 3),
        .request("_hidC", .dict(["_hBtS": .int(1), "_hidC": .int(6)]), xid: 4),
        .request("_mcc", .dict(["_mcc": .int(1)]), xid: 5),
        .request("_tiStart", xid: 6),
        .event("_tiC", .dict(["_tiV": .int(1), "_tiD": .data(RTIArchive.insert(session: [UInt8](repeating: 5, count: 16), text: "hi"))])),
        .request("_powerOff", xid: 7),
    ]
    return [framed(requests.map { $0.encoded() })]
})

/// The virtual Apple TV 3 (DMAP/DACP server): /server-info, /login, then, with a session, play
/// status (long polls answer at once: the device is marked stopped), artwork, commands, set
/// property and the text prompt. Requests come one per input line.
let simAppleTV3Target = FuzzTarget(name: "sim-appletv3", run: { data in
    var parser = RTSPParserShim(data)
    let core = AppleTV3Core(configuration: VirtualAppleTV3.Configuration(advanceEvery: nil))
    core.state.withLock { _ = $0.sessions.insert(1) }
    core.shutdown()
    let requests = parser.requests()
    let done = DispatchSemaphore(value: 0)
    Task {
        for r in requests {
            _ = await core.handle(HTTPServer.Request(message: r, remoteAddress: "127.0.0.1", localAddress: "127.0.0.1",
                                                     connection: 1))
        }
        done.signal()
    }
    done.wait()
}, seeds: {
    let prompt = DMAPSerializer.serialize([DMAPElement("cmbe", .string("hello"))])
    return [Array(("GET /server-info HTTP/1.1\r\n\r\nGET /login?pairing-guid=0x0000000000000001 HTTP/1.1\r\n\r\n" +
                   "GET /ctrl-int/1/playstatusupdate?session-id=1&revision-number=1 HTTP/1.1\r\n\r\n" +
                   "POST /ctrl-int/1/playpause?session-id=1 HTTP/1.1\r\n\r\n" +
                   "POST /ctrl-int/1/setproperty?dmcp.volume=30&session-id=1 HTTP/1.1\r\n\r\n" +
                   "GET /ctrl-int/1/nowplayingartwork?mw=512&mh=512&session-id=1 HTTP/1.1\r\n\r\n" +
                   "POST /ctrl-int/1/controlpromptentry?session-id=1 HTTP/1.1\r\nContent-Length: \(prompt.count)\r\n\r\n").utf8) + prompt]
})

/// HTTP requests as the DMAP server's socket delivers them, parsed with the same RTSP/HTTP parser.
private struct RTSPParserShim {
    var parser = RTSPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 1 << 16)
    init(_ data: [UInt8]) { parser.append(data) }
    mutating func requests() -> [HTTPRequestMessage] {
        var out: [HTTPRequestMessage] = []
        while out.count < 8, let r = try? parser.nextRequest() {
            out.append(r)
        }
        return out
    }
}
