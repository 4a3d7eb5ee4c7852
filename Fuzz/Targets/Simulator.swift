import Dispatch
import Synchronization
import NIOCore
import NIOEmbedded
import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVHTTP
import ATVMRP
import ATVRAOP
@testable import ATVSimulator

// The virtual devices' request handlers, driven without sockets: each input is the byte stream a
// controller sends on one connection, fed to the device's own pipeline in an EmbeddedChannel (or,
// for the Apple TV, to its async request handler). What needs real sockets is not driven:
// `SETUP` (the speaker binds its UDP audio/control/timing sockets; the HomePod and the Apple TV
// open event, data and timing listeners) is renamed in the input before it reaches the device, and
// the Apple TV's `POST /play` (it fetches the URL it is given) is skipped.

/// Renames the RTSP method SETUP so the devices never bind sockets (see above).
private func withoutSetup(_ data: [UInt8]) -> [UInt8] {
    var out = data
    let setup = Array("SETUP".utf8)
    var i = 0
    while i + setup.count <= out.count {
        if out[i] == 0x53, Array(out[i..<(i + setup.count)]) == setup { out[i] = 0x58 }  // "XETUP"
        i += 1
    }
    return out
}

/// Feeds `data` (cut into input-chosen chunks) to a pipeline and drops what the device answers.
private func drive(_ channel: EmbeddedChannel, _ data: [UInt8]) {
    _ = try? channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 50000)).wait()
    for chunk in chunks(data) {
        guard channel.isActive, (try? channel.writeInbound(channel.allocator.buffer(bytes: chunk))) != nil else { break }
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

private func embeddedChannel() -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    channel.localAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 7000)
    channel.remoteAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 50000)
    return channel
}

/// The virtual AirPlay 1 speaker's RTSP connection (OPTIONS, /info, ANNOUNCE with SDP, RECORD,
/// SET_PARAMETER volume / progress / DMAP metadata / artwork, FLUSH, TEARDOWN).
let simSpeakerTarget = FuzzTarget(name: "sim-speaker", run: { data in
    let shared = SpeakerShared(configuration: VirtualSpeaker.Configuration())
    let channel = embeddedChannel()
    let session = SpeakerSession(channel: channel, shared: shared)
    try! channel.pipeline.syncOperations.addHandler(session.serverHandler())
    drive(channel, withoutSetup(data))
}, seeds: {
    [[15] + raopSessionRequests().flatMap { RTSPSerializer.serialize($0) }]
})

private let homePodShared = try! HomePodShared(configuration: VirtualHomePod.Configuration())

/// The virtual HomePod's control connection: /info, transient and PIN pair-setup, pair-verify
/// (then HAP-encrypted RTSP, which random input does not reach).
let simHomePodTarget = FuzzTarget(name: "sim-homepod", run: { data in
    homePodShared.report.withLock { $0 = HomePodReport() }
    let channel = embeddedChannel()
    let crypto = HAPEncryptionHandler()
    let connection = HomePodConnection(channel: channel, shared: homePodShared, crypto: crypto)
    try! channel.pipeline.syncOperations.addHandler(crypto)
    try! channel.pipeline.syncOperations.addHandler(connection.serverHandler())
    drive(channel, withoutSetup(data))
}, seeds: {
    pairingFrontSeeds(version: "RTSP/1.0")
})

/// The virtual Apple TV's AirPlay front (AirPlay 2 pairing, legacy pairing, /info, /server-info,
/// /playback-info, /scrub, /rate, /stop, the RTSP methods of a session), requests parsed with the
/// same RTSP/HTTP parser the device uses.
let simAppleTVTarget = FuzzTarget(name: "sim-appletv", run: { data in
    guard let flags = data.first else { return }
    var parser = RTSPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 1 << 16)
    parser.append(data.dropFirst())
    var requests: [RTSPRequest] = []
    while requests.count < 8, let r = try? parser.nextRequest() { requests.append(r) }
    let core = AppleTVCore(configuration: VirtualAppleTV.Configuration(requirePairing: flags & 1 == 1, airplay2: true,
                                                                       pin: "2468"))
    let shared = AppleTVPairingShared(identity: appleTVIdentity, pin: "2468")
    let channel = embeddedChannel()
    let connection = AppleTVAirPlay2Connection(channel: channel, core: core, shared: shared)
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Task {
        for r in requests {
            let path = r.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? r.uri
            if r.method == "SETUP" || path == "/play" { continue }
            box.replies += 1
            _ = await connection.handle(r)
        }
        done.signal()
    }
    done.wait()
    connection.closed()
    _ = try? channel.finish(acceptAlreadyClosed: true)
}, seeds: {
    pairingFrontSeeds(version: "HTTP/1.1").map { [1] + $0.dropFirst() } + [[0] + Array((
        "GET /server-info HTTP/1.1\r\nContent-Length: 0\r\n\r\n" +
        "GET /playback-info HTTP/1.1\r\nContent-Length: 0\r\n\r\n" +
        "POST /scrub?position=12.5 HTTP/1.1\r\nContent-Length: 0\r\n\r\n" +
        "POST /rate?value=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n" +
        "POST /stop HTTP/1.1\r\nContent-Length: 0\r\n\r\n").utf8)]
})

private final class Box: @unchecked Sendable { var replies = 0 }

private let appleTVIdentity = try! HAPIdentity(identifier: "fuzz-appletv", seed: [UInt8](repeating: 0x77, count: 32))

/// The MRP accessory side of the virtual Apple TV (pairing over CRYPTO_PAIRING, then commands,
/// now-playing subscription, volume, output devices), one direct connection.
private let mrpDevice = try! VirtualMRP.embedded(VirtualMRP.Configuration(
    identity: try! HAPIdentity(identifier: "fuzz-mrp", seed: [UInt8](repeating: 0x66, count: 32)), advanceInterval: nil))

let simMRPTarget = FuzzTarget(name: "sim-mrp", run: { data in
    mrpDevice.state.withLock { $0.report = VirtualMRP.Report() }
    let channel = embeddedChannel()
    try! channel.pipeline.syncOperations.addHandler(MRPAccessoryHandler(device: mrpDevice))
    drive(channel, data)
}, seeds: {
    [[40] + mrpSeedMessages().flatMap { (try? MRPCodec.encodeFramed($0)) ?? [] }]
})

/// Messages a controller and a device exchange (seeds for the MRP targets).
func mrpSeedMessages() -> [MRPProtocolMessage] {
    var client = MRPMessages.deviceInfo(MRPMessages.ClientInfo(pairingID: "fuzz", name: "Fuzz", osBuild: "18M60"))
    client.uniqueIdentifier = "1"
    var messages = [client, MRPMessages.setConnectionState(), MRPMessages.cryptoPairing(
        TLV8([.init(.method, [0]), .init(.state, [1])]).encoded(), isPairSetupM1: true)]
    messages.append(mrpDevice.deviceInfo())
    messages.append(mrpDevice.setNowPlayingClient())
    messages.append(mrpDevice.setState())
    messages.append(mrpDevice.volumeAvailability())
    messages.append(mrpDevice.volumeDidChange(40))
    messages.append(MRPHID.event(.select, down: true))
    return messages
}

/// The requests of a whole RAOP session as our sender makes them (RTSP seeds).
func raopSessionRequests() -> [RTSPRequest] {
    var sm = RAOPSessionStateMachine(configuration: raopConfiguration)
    var requests: [RTSPRequest] = []
    var actions = sm.start()
    for _ in 0..<8 {
        guard case .send(let r, _)? = actions.first(where: { if case .send = $0 { true } else { false } }) else { break }
        requests.append(r)
        var h = RTSPHeaders()
        h.add("CSeq", String(r.cseq ?? 0))
        if r.method == "SETUP" {
            h.add("Transport", "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002")
            h.add("Session", "DEADBEEF")
        }
        actions = sm.receive(RTSPResponse(status: 200, headers: h))
    }
    requests += sent(sm.setVolume(dB: -20)) + sent(sm.setMetadata(RAOPTrackInfo(title: "T", artist: "A"), sequence: 5, rtpTime: 6))
        + sent(sm.setProgress(RAOPProgress(start: 1, current: 2, end: 3))) + sent(sm.flush(sequence: 9, rtpTime: 10))
        + sent(sm.setArtwork([0xFF, 0xD8, 0xFF], sequence: 11, rtpTime: 12)) + sent(sm.feedback()) + sent(sm.teardown())
    return requests
}

private func sent(_ actions: [RAOPSessionAction]) -> [RTSPRequest] {
    actions.compactMap { if case .send(let r, _) = $0 { r } else { nil } }
}

let raopConfiguration = RAOPSessionConfiguration(
    localIP: "127.0.0.1", remoteIP: "127.0.0.1", sessionID: 1234, dacpID: "ABCDEF0123456789", activeRemote: 99,
    format: RAOPAudioFormat(codec: .alac), password: "secret", controlPort: 50001, timingPort: 50002,
    initialVolumeDB: -20, initialSequence: 65535, initialRTPTime: 88200, requestInfo: true)

/// /info, then a transient pair-setup M1 and a pair-verify M1 (first byte: chunk size).
private func pairingFrontSeeds(version: String) -> [[UInt8]] {
    func request(_ method: String, _ uri: String, _ body: [UInt8], cseq: Int, extra: String = "") -> [UInt8] {
        Array("\(method) \(uri) \(version)\r\nCSeq: \(cseq)\r\n\(extra)Content-Length: \(body.count)\r\n\r\n".utf8) + body
    }
    var setup = HAPPairSetupClient.transient(srpSecret: [UInt8](repeating: 1, count: 32))
    var pinSetup = HAPPairSetupClient(pin: "2468", srpSecret: [UInt8](repeating: 1, count: 32))
    var verify = HAPPairVerifyClient(credentials: HAPCredentials(deviceLTPK: appleTVIdentity.publicKey,
                                                                 clientLTSK: appleTVIdentity.seed,
                                                                 deviceID: [1], clientID: [2]))
    let info = request("GET", "/info", [], cseq: 0)
    return [
        [20] + info + request("POST", "/pair-setup", try! setup.start(), cseq: 1, extra: "X-Apple-HKP: 4\r\n"),
        [33] + info + request("POST", "/pair-setup", try! pinSetup.start(), cseq: 1, extra: "X-Apple-HKP: 3\r\n"),
        [63] + request("POST", "/pair-verify", try! verify.start(), cseq: 1),
        [63] + request("POST", "/pair-pin-start", [], cseq: 1) + request("POST", "/pair-verify", [1, 0, 0, 0] + [UInt8](repeating: 9, count: 64), cseq: 2),
        [63] + request("OPTIONS", "*", [], cseq: 1) + request("RECORD", "rtsp://127.0.0.1/1", [], cseq: 2)
            + request("SET_PARAMETER", "rtsp://127.0.0.1/1", Array("volume: -20.0\r\n".utf8), cseq: 3)
            + request("TEARDOWN", "rtsp://127.0.0.1/1", [], cseq: 4),
    ]
}
