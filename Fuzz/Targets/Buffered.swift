import ATVAirPlayCore
import ATVCore
import ATVRAOP

// AirPlay 2 with PTP timing and buffered audio (type 103): the data-connection deframer (input cut
// at arbitrary places), packet headers and opening, the 0xD7 time announce, the plists a receiver
// reads (session SETUP timing, SETPEERS/SETPEERSX, stream SETUP and reply, SETRATEANCHORTIME,
// FLUSHBUFFERED), and the send-ahead window driven by operations taken from the input.

private let bufferedKey = [UInt8](0 ..< 32)

let bufferedTarget = FuzzTarget(name: "buffered", run: { data in
    var deframer = BufferedAudioDeframer()
    outer: for chunk in chunks(data) {
        deframer.append(chunk)
        while true {
            let next: [UInt8]?
            do { next = try deframer.next() } catch { break outer }
            guard let packet = next else { break }
            _ = try? BufferedAudioHeader(decoding: packet)
            _ = try? BufferedAudioPacket(opening: packet, key: bufferedKey)
        }
    }
    _ = try? PTPTimeAnnouncePacket(decoding: data)
    _ = try? BufferedAudioHeader(decoding: data)
    _ = try? AirPlay2PTPSessionReply(parsing: data)
    _ = try? BufferedAudioStreamReply(parsing: data)
    _ = try? AirPlay2Peers.addresses(fromSetPeers: data)
    _ = try? AirPlay2Peers.peers(fromSetPeersX: data)
    if let plist = try? BinaryPlist.decode(data) {
        _ = try? AirPlay2Timing(sessionSetup: plist)
        _ = try? BufferedAudioStreamRequest(parsing: plist)
        _ = try? BufferedRateAnchor(parsing: plist)
        _ = try? BufferedFlush(parsing: plist)
    }
    // The send window: each input byte is one operation; time moves forward by bounded steps.
    var window = BufferedSendWindow(configuration: .init(audioBufferSize: 1 + Int(data.first ?? 0) * 4096, clockID: 7),
                                    rtpBase: 0xFFFF_0000, firstSequence: 0x7F_FFF0)
    var now: UInt64 = 1_000_000_000
    for byte in data.prefix(256) {
        now += UInt64(byte) * 3_000_000
        switch byte % 8 {
        case 0, 1, 2: _ = window.write(payloadBytes: Int(byte) * 40)
        case 3: _ = window.packetsAllowed(now: now)
        case 4: _ = window.nextOpening(now: now)
        case 5: _ = byte & 0x10 == 0 ? window.start(at: now) : window.resume(now: now)
        case 6: _ = window.pause(now: now)
        default: _ = window.seek(toSourceFrame: UInt64(byte) * 44_100, now: now)
        }
        _ = window.playheadSourceFrame(now: now)
    }
}, seeds: {
    var cipher = try! AirPlay2AudioCipher(key: bufferedKey)
    var frames: [UInt8] = []
    for i: UInt32 in 0 ..< 3 {
        let payload = [UInt8](repeating: UInt8(i), count: 20 + Int(i))
        let packet = BufferedAudioPacket(sequenceNumber: 0x7F_FFFF + i, timestamp: 1024 * i, format: .aacLC44100Stereo, payload: payload)
        frames += try! packet.frame(sealingWith: &cipher)
    }
    let peer = AirPlay2TimingPeer(id: "6A1B2C3D-0000-4000-8000-00000000A1B2", addresses: ["192.168.1.10"], clockID: 0x0242_ACFF_FE11_0002)
    let setup = AirPlay2SessionSetup.body(timing: .ptp(AirPlay2PTPTiming(peerInfo: peer)), sessionUUID: "u",
                                          identity: AirPlay2SenderIdentity())
    return [
        [0x10] + frames,
        PTPTimeAnnouncePacket(isFirst: true, frame: 0xABCDEF, audibleAt: 1_234_567_890_123_456, clockID: 0x0242_ACFF_FE11_0002).bytes,
        BinaryPlist.encode(setup),
        BinaryPlist.encode(AirPlay2PTPSessionReply(eventPort: 7000, timingPeer: peer).body),
        AirPlay2Peers.setPeers(["192.168.1.20", "192.168.1.10"], uri: "rtsp://x/1").body,
        AirPlay2Peers.setPeersX([peer], uri: "rtsp://x/1").body,
        BinaryPlist.encode(try! BufferedAudioStreamRequest(format: .alac48000x24Stereo, controlPort: 6001, sharedKey: bufferedKey,
                                                           streamConnectionID: 1).body()),
        BinaryPlist.encode(BufferedAudioStreamReply(dataPort: 7100, controlPort: 6002, audioBufferSize: 8_388_608).body),
        BinaryPlist.encode(BufferedRateAnchor.play(rtpTime: 1, networkTimeNanoseconds: 2, timelineID: 3).body),
        BinaryPlist.encode(BufferedFlush(untilSequence: 5, untilTimestamp: 6, fromSequence: 1, fromTimestamp: 2).body),
        [0, 1, 2, 3, 8, 13, 21, 5, 4, 6, 7, 3, 0x15, 0x17, 3, 4],
    ]
})
