import ATVAirPlay
import ATVAirPlayCore
import ATVAuth
import ATVCompanion
import ATVCore
import ATVDMAP
import ATVMRP
import ATVRAOP
import ATVSimulator

// Codecs of network input: TLV8, OPACK (and the Companion frames and message envelope carried
// in it), binary plists (every decoder) and keyed archives, DMAP tags, MRP framing and messages,
// RTP / control / timing packets.

let tlv8Target = FuzzTarget(name: "tlv8", run: { data in
    guard let tlv = try? TLV8.decode(data) else { return }
    _ = tlv.encoded()
    _ = tlv.description
}, seeds: {
    [TLV8([.init(.method, [0]), .init(.state, [1])]).encoded(),
     TLV8([.init(.state, [1]), .init(.flags, [TLV8.transientFlag])]).encoded(),
     TLV8([.init(.state, [2]), .init(.error, [3]), .init(.backOff, [0x2C, 0x01])]).encoded(),
     TLV8([.init(.state, [2]), .init(.salt, [UInt8](repeating: 7, count: 16)),
           .init(.publicKey, [UInt8](repeating: 9, count: 384))]).encoded()]  // a fragmented item
})

let opackTarget = FuzzTarget(name: "opack", run: { data in
    if let value = try? OPACK.decode(data) {
        _ = value.encoded()
        _ = value.description
    }
    _ = try? OPACK.decodePrefix(data)
    _ = try? CompanionMessage(decoding: data)
    _ = try? CompanionAuth.tlv(from: data)
    var frames = CompanionFrameDecoder(key: nil)
    for chunk in chunks(data) { guard (try? frames.decode(Array(chunk))) != nil else { break } }
}, seeds: {
    [CompanionMessage.request("_systemInfo", .dict(["_bf": .int(0), "_sf": .int(1), "name": .string("Fuzz"),
                                                    "_i": .uuid([UInt8](repeating: 1, count: 16))]), xid: 1).encoded(),
     CompanionMessage.event("_iMC", .dict(["_mcF": .int(257), "_vol": .double(0.5)])).encoded(),
     CompanionMessage.response(to: 7, .dict(["_apps": .dict(["com.apple.TVMusic": .string("Music")])])).encoded(),
     OPACK.array([.null, .bool(true), .int(-1), .int(1 << 40), .float(1.5), .data([1, 2, 3]),
                  .absoluteTime(12345), .sizedInt(7, width: 2), .string(String(repeating: "x", count: 40))]).encoded(),
     CompanionAuth.pairVerifyPayload(TLV8([.init(.state, [1])]).encoded(), first: true),
     companionFrame(CompanionFrame(type: 8, payload: CompanionMessage.event("x").encoded()))]
})

private func companionFrame(_ frame: CompanionFrame) -> [UInt8] {
    var encoder = CompanionFrameEncoder(key: nil)
    return try! encoder.encode(frame)
}

/// The binary-plist decoder (ATVCore's, the one every protocol uses), the keyed archives and AirPlay
/// bodies read with it. Whatever decodes re-encodes to bytes that decode and re-encode identically.
let plistTarget = FuzzTarget(name: "plist", run: { data in
    if let value = try? BinaryPlist.decode(data) {
        let once = BinaryPlist.encode(value)
        guard let again = try? BinaryPlist.decode(once), BinaryPlist.encode(again) == once else {
            fatalError("plist: a decoded value does not re-encode stably")
        }
    }
    _ = RTIArchive.operation(data)
    _ = RTIArchive.property(data, ["$objects"])
    _ = try? PlaybackInfo(body: data)
    _ = try? AirPlayPlayRequest(body: data)
    _ = try? AirPlay2SessionReply(parsing: data)
    _ = try? AirPlay2AudioStreamReply(parsing: data)
}, seeds: {
    [PlaybackInfo(duration: 100, position: 12.25, rate: 1, readyToPlay: true).encoded(),
     AirPlayRequests.play(url: "http://127.0.0.1/x.mp4", position: 3, sessionID: "s").body,
     BinaryPlist.encode(AirPlay2SessionSetup.body(timing: .ntp(timingPort: 7010), sessionUUID: "u",
                                                          identity: AirPlay2SenderIdentity())),
     BinaryPlist.encode(.dict(["eventPort": .int(7011), "timingPort": .int(7012)])),
     BinaryPlist.encode(.dict(["streams": .array([.dict(["type": .int(96), "dataPort": .int(7013),
                                                                  "controlPort": .int(7014)])])])),
     RTIArchive.insert(session: [UInt8](repeating: 5, count: 16), text: "hello"),
     RTIArchive.session(uuid: [UInt8](repeating: 6, count: 16), text: "abc")]
})

/// DMAP / DACP tags (ATVCore's DMAP codec, ATVDMAP's play status, the RAOP metadata read with the codec).
let dmapTarget = FuzzTarget(name: "dmap", run: { data in
    if let status = try? DMAPPlayStatus(bytes: data) {
        _ = status.revision
        _ = status.title
    }
    _ = try? DMAPParser.parse(data)
    _ = try? RAOPTrackInfo(dmap: data)
}, seeds: {
    [RAOPTrackInfo(title: "T", artist: "Ar", album: "Al").dmapBytes,
     DMAPSerializer.serialize([.container("cmst", [
         .uint8("mstt", 200), DMAPElement("cmsr", .uint(5, width: 4)), .uint8("caps", 4),
         DMAPElement("cann", .string("Song")), DMAPElement("cast", .uint(300_000, width: 4)),
         DMAPElement("cant", .uint(100_000, width: 4)),
     ])])]
})

/// MRP: varint framing on the TCP stream, ProtocolMessage decode, then the now-playing and
/// device state updates; also the plain MRP channel and the type-130 data stream.
let mrpTarget = FuzzTarget(name: "mrp", run: { data in
    var decoder = MRPFrameDecoder(maxMessageSize: 1 << 16)
    var player = MRPPlayerState()
    var device = MRPDeviceState()
    for chunk in chunks(data) {
        decoder.append(chunk)
        while true {
            guard let frame = try? decoder.next() else { break }
            guard let message = try? MRPCodec.decode(frame) else { continue }
            _ = player.apply(message)
            _ = device.apply(message)
        }
    }
    var stream = MRPDataStreamDecoder(maxFrameSize: 1 << 16)
    stream.append(data)
    while let frame = try? stream.next() { _ = frame }
}, seeds: {
    var seeds: [[UInt8]] = []
    for builder in mrpSeedMessages() {
        seeds.append([16] + ((try? MRPCodec.encodeFramed(builder)) ?? []))
    }
    return seeds
})

/// RTP audio packets, control packets (sync, retransmit request and response) and NTP timing.
let rtpTarget = FuzzTarget(name: "rtp", run: { data in
    if let p = try? RAOPAudioPacket(decoding: data) { _ = p.bytes }
    if let p = try? RAOPControlPacket(decoding: data) { _ = p }
    if let p = try? RAOPTimingPacket(decoding: data) { _ = p.bytes }
    _ = try? RAOPSyncPacket(decoding: data)
    _ = try? RAOPRetransmitRequest(decoding: data)
    _ = try? RAOPRetransmitResponse(decoding: data)
    _ = try? RTPHeader(decoding: data)
    // The receiving side of our virtual speakers: audio packets (each a length-prefixed message)
    // into the jitter buffer, which asks for retransmissions and plays out in order.
    var jitter = JitterBuffer()
    var now: UInt64 = 0
    for m in messages(data, max: 64) {
        now += 20_000_000
        guard let p = try? RAOPAudioPacket(decoding: m) else { _ = jitter.tick(now: now); continue }
        _ = jitter.insert(seq: p.sequenceNumber, payload: p.payload, isRetransmission: p.marker, now: now)
    }
    _ = jitter.finish()
}, seeds: {
    let audio = RAOPAudioPacket(sequenceNumber: 7, timestamp: 88200, ssrc: 0x1234, marker: true, payload: [1, 2, 3, 4])
    let stream = [0, 1, 3, 2, 5].map {
        RAOPAudioPacket(sequenceNumber: UInt16(truncatingIfNeeded: 65534 + $0), timestamp: UInt32(352 * $0), ssrc: 1, payload: [UInt8($0)]).bytes
    }
    return [audio.bytes,
            RAOPSyncPacket(isFirst: true, rtpTimeLessLatency: 77175, ntpTime: NTPTime(seconds: 5, fraction: 6), rtpTime: 88200).bytes,
            RAOPRetransmitRequest(firstSequence: 3, count: 2).bytes,
            RAOPRetransmitResponse(packet: audio).bytes,
            RAOPTimingPacket(isReply: false, sendTime: NTPTime(seconds: 7, fraction: 8)).bytes,
            framed(stream)]
})

/// The accessory side of a Companion connection (the virtual Companion device): frames, pairing
/// over Companion auth frames, then E_OPACK messages.
private let companionIdentity = try! HAPIdentity(identifier: "fuzz-companion", seed: [UInt8](repeating: 0x33, count: 32))

let companionTarget = FuzzTarget(name: "companion-accessory", run: { data in
    var connection = CompanionAccessoryConnection(identity: companionIdentity, pin: "1111")
    for chunk in chunks(data) {
        guard (try? connection.receive(Array(chunk), controllers: [])) != nil else { break }
    }
}, seeds: {
    var setup = HAPPairSetupClient.transient(srpSecret: [UInt8](repeating: 1, count: 32))
    var verify = HAPPairVerifyClient(credentials: HAPCredentials(deviceLTPK: companionIdentity.publicKey,
                                                                 clientLTSK: companionIdentity.seed,
                                                                 deviceID: [1], clientID: [2]))
    var encoder = CompanionFrameEncoder(key: nil)
    return [[63] + (try! encoder.encode(CompanionFrame(type: 3, payload: CompanionAuth.pairSetupPayload(try! setup.start())))),
            [63] + (try! encoder.encode(CompanionFrame(type: 5, payload: CompanionAuth.pairVerifyPayload(try! verify.start(), first: true)))),
            [63] + (try! encoder.encode(CompanionFrame(type: 8, payload: CompanionMessage.request("_systemInfo", xid: 1).encoded())))]
})
