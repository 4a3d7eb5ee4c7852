import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVPTP
import ATVRAOP
import ATVTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import ATVSimulator

/// The virtual HomePod with PTP timing, driven by a Swift controller connecting from 127.0.0.71
/// with our own PTP master there (the sender's address) while the receiver's follower holds
/// 127.0.0.72's UDP 319/320 (addresses no other suite binds 319/320 on):
/// session SETUP with `timingPeerInfo`, RECORD before the stream SETUP, SETPEERS, 0xD7 time
/// announces, and each played packet placed on the master's timeline. Then every requirement
/// of the shairport-sync-like profile (docs/PTP-AND-BUFFERED-AUDIO.md §5.1), each by a sender
/// that breaks it and is refused or gets no audio. Serialized: every test binds the PTP ports.
@Suite(.serialized) struct HomePodPTPTests {
    static let bplist = HomePodStreamTests.bplist
    static let masterClock = PTPClockIdentity(0x0242_ACFF_FE11_0002)
    static let uri = "rtsp://127.0.0.1/1"
    static let sender = "127.0.0.71"
    static let follower = "127.0.0.72"

    struct Session {
        var control: HomePodTestClient
        var events: HomePodTestClient
        var key: [UInt8]
        var dataPort: Int
        var controlPort: Int
        var audio: TestSocket
    }

    static func requireRoot() throws {
        guard getuid() == 0 else { throw HarnessError("PTP tests bind UDP 319/320: they need root") }
    }

    /// A pod whose follower binds 127.0.0.2, writing `out`.
    static func pod(_ out: URL, profile: VirtualHomePod.Configuration.Profile = .homepod,
                    timing: VirtualHomePod.Configuration.TimingAccepted = .both) async throws -> VirtualHomePod {
        var config = VirtualHomePod.Configuration(outputPath: out.path)
        config.ptpAddress = follower
        config.profile = profile
        config.timing = timing
        return try await VirtualHomePod.start(config)
    }

    static func master(_ host: String = sender) async throws -> PTPMaster {
        let master = try await PTPMaster.start(bindAddress: host, clockIdentity: masterClock, multicastWhenNoPeers: false)
        master.addPeer(follower)
        return master
    }

    static func ptpSetupBody(peerInfo: Bool = true) -> [UInt8] {
        var body = AirPlay2PTPTiming.sender(id: "6E0C5D0A-1A59-4F77-9D53-2C9E3C0F1A01", addresses: [sender],
                                            clockID: masterClock.value).entries
        if !peerInfo {
            body["timingPeerInfo"] = nil
            body["timingPeerList"] = nil
        }
        body["deviceID"] = .string("AA:BB:CC:DD:EE:FF")
        body["sessionUUID"] = .string(UUID().uuidString)
        return BinaryPlist.encode(.dict(body))
    }

    /// Pairing, PTP session SETUP (checked), event channel, RECORD (before the stream, naming
    /// sequence 100), SETPEERS, stream SETUP type 96 ALAC.
    static func open(_ pod: VirtualHomePod, buffered: Bool = false) async throws -> Session {
        let control = try await HomePodTestClient.connect(port: pod.port, from: Self.sender)
        let K = try await control.pairTransient()
        let s1 = try await control.request("SETUP", uri, headers: bplist, body: ptpSetupBody())
        #expect(s1.status == 200)
        let reply = try AirPlay2PTPSessionReply(parsing: s1.body)
        #expect(reply.timingPort == 0)
        #expect(reply.timingPeer?.addresses == [follower])
        let events = try await HomePodTestClient.connect(port: reply.eventPort, keys: HAPChannel.airPlayEvents.keys(sharedSecret: K))
        let command = try await events.nextRequest(timeout: .seconds(5))
        try await events.answer(command)
        #expect(try await control.request("RECORD", uri, headers: [("RTP-Info", "seq=100;rtptime=0")]).status == 200)
        let peers = AirPlay2Peers.setPeers([follower, sender], uri: uri)
        #expect(try await control.request("SETPEERS", uri, headers: [("Content-Type", AirPlay2Peers.setPeersContentType)], body: peers.body).status == 200)
        var keyRNG = SplitMix64(seed: 0x5054)
        let key = randomBytes(32, using: &keyRNG)
        if buffered {
            let setup = BufferedAudioStreamRequest(format: .alac44100x16Stereo, controlPort: 40_000, sharedKey: key, streamConnectionID: 1)
            let s2 = try await control.request("SETUP", uri, headers: bplist, body: BinaryPlist.encode(try setup.body()))
            #expect(s2.status == 200)
            let reply = try BufferedAudioStreamReply(parsing: s2.body)
            #expect(reply.audioBufferSize == 8_388_608)
            return Session(control: control, events: events, key: key, dataPort: reply.dataPort, controlPort: 0, audio: try TestSocket.udp())
        }
        let s2 = try await control.request("SETUP", uri, headers: bplist, body: HomePodStreamTests.plist(["streams": .array([.dict([
            "type": .int(96), "ct": .int(2), "audioFormat": .int(0x40000), "spf": .int(352), "sr": .int(44100),
            "shk": .data(key), "controlPort": .int(40_000), "audioMode": .string("default"), "isMedia": .bool(true),
        ])])]))
        #expect(s2.status == 200)
        guard case .array(let list)? = try BinaryPlistParser.parse(s2.body)["streams"], let first = list.first,
              let dataPort = first["dataPort"]?.double, let controlPort = first["controlPort"]?.double else {
            throw HarnessError("no ports in the stream SETUP reply")
        }
        return Session(control: control, events: events, key: key, dataPort: Int(dataPort), controlPort: Int(controlPort),
                       audio: try TestSocket.udp())
    }

    static func alac(_ pcm: [[UInt8]]) throws -> [[UInt8]] {
        let encoder = try ALACEncoder(framesPerPacket: 352)
        return try pcm.map { try encoder.encode(PCMPacket(bytes: $0)) }
    }

    /// Waits until the follower has been locked for 400 ms (the strict profile's validity).
    static func waitForClock(_ pod: VirtualHomePod) async -> Bool {
        let locked = await poll(timeout: .seconds(10)) { pod.ptpStatus()?.state == .locked }
        try? await Task.sleep(for: .milliseconds(450))
        return locked
    }

    static func finish(_ pod: VirtualHomePod, _ session: Session, master: PTPMaster?) async throws -> HomePodReport {
        #expect(try await session.control.request("TEARDOWN", uri).status == 200)
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await session.control.close()
        await session.events.close()
        await pod.stop()
        await master?.stop()
        return report
    }

    /// The whole PTP path on a HomePod: the follower locks on the master the RTSP peer runs, a
    /// 0xD7 anchors frame 0 at T, and each packet i is placed at T + i·352/44100 s on the
    /// master's timeline; the offset matches the master's timescale; the WAV is bit-exact.
    @Test func ptpRealtimeSessionPlaysEachPacketAtTheMastersTime() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let master = try await Self.master()
        let pod = try await Self.pod(out)
        let session = try await Self.open(pod)
        #expect(await Self.waitForClock(pod), "\(String(describing: pod.ptpStatus()))")
        let start = Int64(master.networkTime.totalNanoseconds) + 2_000_000_000
        let announce = PTPTimeAnnouncePacket(isFirst: true, frame: 0, audibleAt: UInt64(start), clockID: Self.masterClock.value)
        session.audio.sendTo(port: session.controlPort, announce.bytes)
        #expect(await poll(timeout: .seconds(5)) { pod.report().ptp.anchorFrame != nil }, "\(pod.report())")
        let pcm = HomePodStreamTests.signal(packets: 100)
        try await HomePodStreamTests.send(try Self.alac(pcm), session: .init(
            control: session.control, events: session.events, key: session.key, dataPort: session.dataPort,
            audio: session.audio, senderControl: session.audio))
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsDecrypted >= 100 }, "\(pod.report())")
        let report = try await Self.finish(pod, session, master: master)

        #expect(report.timingProtocol == "PTP")
        #expect(report.ptp.timingPeerAddresses == [Self.sender])
        #expect(report.ptp.setPeers == [[Self.follower, Self.sender]])
        #expect(report.ptp.master == Self.sender)
        #expect(report.ptp.grandmaster == Self.masterClock)
        #expect(report.ptp.timeAnnounces == 1 && report.ptp.anchorsRejected == 0)
        // Same host, same monotonic clock: the offset is the master's timescale offset, less the
        // (loopback) delay.
        let offset = try #require(report.ptp.offset)
        #expect(abs(offset - master.timescaleOffset) < 1_000_000, "offset \(offset) vs \(master.timescaleOffset)")
        #expect(report.ptp.playInstants.count == 100)
        for (i, p) in report.ptp.playInstants.enumerated() {
            #expect(p.rtpTime == UInt32(i * 352))
            #expect(p.masterTime == start + Int64(i * 352) * 1_000_000_000 / 44_100)
            // By the offset when it played (the estimate moves by a few hundred ns meanwhile).
            #expect(abs((p.localTime ?? 0) - (p.masterTime - offset)) < 100_000)
            #expect(!p.late)
        }
        #expect(report.requests.contains("enc RECORD") && report.requests.firstIndex(of: "enc RECORD")! < report.requests.lastIndex(of: "enc SETUP")!)
        #expect(try Harness.wavPCM(out) == pcm.flatMap { $0 })
    }

    /// `--timing ntp` refuses PTP sessions, `--timing ptp` NTP ones; both: a HomePod takes either.
    @Test func timingChoiceRefusesTheOtherProtocol() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (timing, ptpStatus, ntpStatus) in [(VirtualHomePod.Configuration.TimingAccepted.ntp, 501, 200), (.ptp, nil, 501)] {
            let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), timing: timing)
            let control = try await HomePodTestClient.connect(port: pod.port, from: Self.sender)
            _ = try await control.pairTransient()
            if let ptpStatus {
                #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: Self.ptpSetupBody()).status == ptpStatus)
            }
            let ntp = HomePodStreamTests.plist(["timingProtocol": .string("NTP"), "timingPort": .int(40_001)])
            #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: ntp).status == ntpStatus)
            await control.close()
            await pod.stop()
        }
    }

    /// Another program holds the follower's address's UDP 320: a HomePod still takes the PTP session (and plays by
    /// its own clock, `followerError` says why); the strict profile answers 500.
    @Test func heldPTPPortsLeaveAHomePodWithoutAFollower() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let holder = try await UDPEndpoint.bind(host: Self.follower, port: 320) { _, _, _ in }
        for (profile, status) in [(VirtualHomePod.Configuration.Profile.homepod, 200), (.shairportAP2, 500)] {
            let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), profile: profile)
            let control = try await HomePodTestClient.connect(port: pod.port, from: Self.sender)
            _ = try await control.pairTransient()
            #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: Self.ptpSetupBody()).status == status)
            if profile == .homepod {
                #expect(pod.report().ptp.followerError != nil)
                #expect(pod.ptpStatus() == nil)
            }
            await control.close()
            await pod.stop()
        }
        await holder.close()
    }

    // MARK: - The shairport-sync-like profile (docs/PTP-AND-BUFFERED-AUDIO.md §5.1)

    /// Row 1: NTP is refused with 501; row 2: a PTP session SETUP without `timingPeerInfo` too.
    @Test func strictProfileRefusesNTPAndPTPWithoutTimingPeerInfo() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), profile: .shairportAP2)
        let control = try await HomePodTestClient.connect(port: pod.port, from: Self.sender)
        _ = try await control.pairTransient()
        let ntp = HomePodStreamTests.plist(["timingProtocol": .string("NTP"), "timingPort": .int(40_001)])
        #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: ntp).status == 501)
        #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: Self.ptpSetupBody(peerInfo: false)).status == 501)
        #expect(try await control.request("SETUP", Self.uri, headers: Self.bplist, body: HomePodStreamTests.plist([:])).status == 501)
        await control.close()
        #expect(pod.report().ptp.sessionsRefused == [501, 501, 501])
        #expect(pod.report().sessions == 0)
        await pod.stop()
    }

    /// The strict profile with a well-behaved sender plays, with the clock checks of rows 8-9;
    /// SETRATEANCHORTIME is read with an integer `rate` only (row 12).
    @Test func strictProfilePlaysForASenderThatFollowsTheRules() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let master = try await Self.master()
        let pod = try await Self.pod(out, profile: .shairportAP2)
        let session = try await Self.open(pod)
        #expect(await Self.waitForClock(pod), "\(String(describing: pod.ptpStatus()))")
        // A real rate is refused, an integer one taken.
        let real = PlistValue.dict(["rate": .real(1), "rtpTime": .int(0), "networkTimeSecs": .int(1), "networkTimeFrac": .int(0),
                      "networkTimeTimelineID": .int(Self.masterClock.signedValue), "networkTimeFlags": .int(0)])
        #expect(try await session.control.request("SETRATEANCHORTIME", Self.uri, headers: Self.bplist, body: BinaryPlist.encode(real)).status == 400)
        #expect(try await session.control.request("SETRATEANCHORTIME", Self.uri, headers: Self.bplist, body: BinaryPlist.encode(BufferedRateAnchor.pause.body)).status == 200)
        let start = Int64(master.networkTime.totalNanoseconds) + 2_000_000_000
        session.audio.sendTo(port: session.controlPort,
                             PTPTimeAnnouncePacket(isFirst: true, frame: 0, audibleAt: UInt64(start), clockID: Self.masterClock.value).bytes)
        #expect(await poll(timeout: .seconds(5)) { pod.report().ptp.anchorFrame != nil }, "\(pod.report())")
        let pcm = HomePodStreamTests.signal(packets: 40)
        try await HomePodStreamTests.send(try Self.alac(pcm), session: .init(
            control: session.control, events: session.events, key: session.key, dataPort: session.dataPort,
            audio: session.audio, senderControl: session.audio))
        #expect(await poll(timeout: .seconds(10)) { pod.report().framesWritten >= 40 * 352 }, "\(pod.report())")
        let report = try await Self.finish(pod, session, master: master)
        #expect(report.ptp.rateAnchors == ["pause"])
        #expect(report.ptp.rateAnchorsRefused.count == 1)
        #expect(report.ptp.playInstants.count == 40)
        #expect(report.ptp.framesDroppedWithoutClock == 0)
        #expect(try Harness.wavPCM(out) == pcm.flatMap { $0 })
    }

    /// Row 3: only the RTSP peer's clock counts. A master on another address (127.0.0.73) is
    /// never followed: SETRATEANCHORTIME gets 400 (no clock measured) and nothing plays.
    @Test func strictProfileFollowsOnlyTheRTSPPeersClock() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let master = try await Self.master("127.0.0.73")
        let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), profile: .shairportAP2)
        let session = try await Self.open(pod)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(pod.ptpStatus()?.state == .waitingForAnnounce)
        #expect(pod.ptpStatus()?.master == Self.sender)
        let anchor = BufferedRateAnchor.play(rtpTime: 0, networkTimeNanoseconds: master.networkTime.totalNanoseconds, timelineID: Self.masterClock.value)
        #expect(try await session.control.request("SETRATEANCHORTIME", Self.uri, headers: Self.bplist, body: BinaryPlist.encode(anchor.body)).status == 400)
        try await Self.sendAnnouncedAudio(session, master: master, packets: 20)
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsDecrypted >= 20 }, "\(pod.report())")
        let report = try await Self.finish(pod, session, master: master)
        #expect(report.ptp.rateAnchorsRefused.count == 1 && report.ptp.rateAnchorsRefused[0].contains("not measured"))
        #expect(report.ptp.anchorsRejected == 1)
        #expect(report.framesWritten == 0, "no audio: \(report)")
        #expect(report.ptp.framesDroppedWithoutClock == 20 * 352)
    }

    /// Row 5: Sync and Follow_Up from the right address and ports but no Announce: no clock.
    @Test func strictProfileNeedsAnAnnounceBeforeFollowUp() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), profile: .shairportAP2)
        let session = try await Self.open(pod)
        // A master without Announces: our core's Syncs and Follow_Ups, from the sender's 319/320.
        let group = MultiThreadedEventLoopGroup.singleton
        let event = try await DatagramBootstrap(group: group).bind(host: Self.sender, port: 319).get()
        let general = try await DatagramBootstrap(group: group).bind(host: Self.sender, port: 320).get()
        var config = PTPMasterConfig(clockIdentity: Self.masterClock)
        config.multicastWhenNoPeers = false
        var core = PTPMasterCore(config: config)
        var now = PTPMaster.monotonicNow()
        _ = core.start(now: now)
        var out = core.addPeer(Self.follower, now: now)
        var followUps = 0
        for _ in 0..<16 {
            for d in out.send {
                guard let token = d.syncToken else { continue }  // no Announce
                let target = try SocketAddress(ipAddress: Self.follower, port: 319)
                try await event.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: event.allocator.buffer(bytes: d.bytes)))
                let f = core.syncSent(token, at: PTPMaster.monotonicNow())
                try await general.writeAndFlush(AddressedEnvelope(remoteAddress: try SocketAddress(ipAddress: Self.follower, port: 320),
                                                                  data: general.allocator.buffer(bytes: f.bytes)))
                followUps += 1
            }
            try await Task.sleep(for: .milliseconds(125))
            now = PTPMaster.monotonicNow()
            out = core.tick(now: now)
        }
        #expect(followUps >= 12)
        #expect(pod.ptpStatus()?.state == .waitingForAnnounce)
        #expect(pod.ptpStatus()?.samples == 0)
        try await event.close()
        try await general.close()
        let report = try await Self.finish(pod, session, master: nil)
        #expect(report.ptp.offset == nil)
    }

    /// Rows 7 and 9: a 0xD7 anchor on another clock than the announced grandmaster is refused
    /// and nothing plays.
    @Test func strictProfileRefusesAnAnchorOnAnotherClock() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let master = try await Self.master()
        let pod = try await Self.pod(dir.appendingPathComponent("pod.wav"), profile: .shairportAP2)
        let session = try await Self.open(pod)
        #expect(await Self.waitForClock(pod))
        let start = master.networkTime.totalNanoseconds + 2_000_000_000
        session.audio.sendTo(port: session.controlPort,
                             PTPTimeAnnouncePacket(isFirst: true, frame: 0, audibleAt: start, clockID: 0x1111_2222_3333_4444).bytes)
        try await HomePodStreamTests.send(try Self.alac(HomePodStreamTests.signal(packets: 20)), session: .init(
            control: session.control, events: session.events, key: session.key, dataPort: session.dataPort,
            audio: session.audio, senderControl: session.audio))
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsDecrypted >= 20 }, "\(pod.report())")
        let report = try await Self.finish(pod, session, master: master)
        #expect(report.ptp.timeAnnounces == 1 && report.ptp.anchorsRejected == 1)
        #expect(report.framesWritten == 0)
    }

    // MARK: - Buffered audio (type 103)

    /// Connects to the data port and writes `packets` ALAC packets (352 frames each, RTP time
    /// i·352, sequence 1000 + i) with the SSRC `ssrc(i)`.
    static func sendBuffered(_ session: Session, _ payloads: [[UInt8]], ssrc: (Int) -> UInt32 = { _ in 0xFACE }) async throws -> Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5)).connect(host: "127.0.0.1", port: session.dataPort).get()
        var cipher = try AirPlay2AudioCipher(key: session.key)
        var bytes: [UInt8] = []
        for (i, payload) in payloads.enumerated() {
            let packet = BufferedAudioPacket(sequenceNumber: 1000 + UInt32(i), timestamp: UInt32(i * 352), ssrc: ssrc(i), payload: payload)
            bytes += try packet.frame(sealingWith: &cipher)
        }
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
        return channel
    }

    static func rateAnchor(_ session: Session, frame: UInt32, at time: UInt64) async throws -> Int {
        let anchor = BufferedRateAnchor.play(rtpTime: frame, networkTimeNanoseconds: time, timelineID: masterClock.value)
        return try await session.control.request("SETRATEANCHORTIME", uri, headers: bplist, body: BinaryPlist.encode(anchor.body)).status
    }

    /// Buffered on a HomePod: the packets wait for the anchor, then each plays at its time by the
    /// master's clock; a pause holds them, FLUSHBUFFERED discards up to the named packet, and a
    /// new anchor plays the rest. The WAV holds exactly the frames played, bit-exact.
    @Test func bufferedStreamPlaysByTheAnchorPausesAndFlushes() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let master = try await Self.master()
        let pod = try await Self.pod(out)
        let session = try await Self.open(pod, buffered: true)
        #expect(await Self.waitForClock(pod), "\(String(describing: pod.ptpStatus()))")
        let pcm = HomePodStreamTests.signal(packets: 100)
        let data = try await Self.sendBuffered(session, try Self.alac(pcm))
        #expect(await poll(timeout: .seconds(10)) { pod.report().packetsDecrypted >= 100 }, "\(pod.report())")
        try await Task.sleep(for: .milliseconds(200))
        #expect(pod.report().framesWritten == 0, "nothing plays before an anchor")
        // Play from 300 ms on (8 ms per packet); pause once 30 or more have played.
        let start = master.networkTime.totalNanoseconds + 300_000_000
        #expect(try await Self.rateAnchor(session, frame: 0, at: start) == 200)
        #expect(await poll(timeout: .seconds(10)) { pod.report().ptp.playInstants.count >= 30 }, "\(pod.report())")
        #expect(try await session.control.request("SETRATEANCHORTIME", Self.uri, headers: Self.bplist,
                                                  body: BinaryPlist.encode(BufferedRateAnchor.pause.body)).status == 200)
        try await Task.sleep(for: .milliseconds(300))
        let paused = pod.report().ptp.playInstants.count
        try await Task.sleep(for: .milliseconds(300))
        #expect(pod.report().ptp.playInstants.count == paused, "a pause holds the rest")
        #expect(paused < 80, "paused after \(paused) packets")
        // Seek: discard up to packet 80 (sequence 1080), then play from it 200 ms from now.
        let flush = BufferedFlush(untilSequence: 1080, untilTimestamp: 80 * 352)
        #expect(try await session.control.request(BufferedFlush.method, Self.uri, headers: Self.bplist, body: BinaryPlist.encode(flush.body)).status == 200)
        let resume = master.networkTime.totalNanoseconds + 200_000_000
        #expect(try await Self.rateAnchor(session, frame: 80 * 352, at: resume) == 200)
        #expect(await poll(timeout: .seconds(10)) { pod.report().ptp.playInstants.count >= paused + 20 }, "\(pod.report())")
        try await data.close()
        let report = try await Self.finish(pod, session, master: master)

        let played = report.ptp.playInstants
        #expect(played.count == paused + 20)
        #expect(report.ptp.packetsFlushed == 80 - paused)
        for (i, p) in played.enumerated() {
            let packet = i < paused ? i : 80 + (i - paused)
            #expect(p.rtpTime == UInt32(packet * 352))
            let expected = i < paused ? Int64(start) + Int64(packet * 352) * 1_000_000_000 / 44_100
                                      : Int64(resume) + Int64((packet - 80) * 352) * 1_000_000_000 / 44_100
            #expect(p.masterTime == expected)
        }
        #expect(report.ptp.rateAnchors == ["play", "pause", "play"])
        let expectedPCM = (Array(0..<paused) + Array(80..<100)).flatMap { pcm[$0] }
        #expect(try Harness.wavPCM(out) == expectedPCM)
    }

    /// The strict profile on type 103: SETRATEANCHORTIME gets 400 until the clock is measured
    /// (a sender retries), and packets with an SSRC that is no format code are dropped (rows 11-12).
    @Test func strictProfileBufferedRefusesEarlyAnchorsAndDropsUnknownSSRCs() async throws {
        try Self.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("pod.wav")
        let master = try await Self.master()
        let pod = try await Self.pod(out, profile: .shairportAP2)
        let session = try await Self.open(pod, buffered: true)
        let pcm = HomePodStreamTests.signal(packets: 40)
        // Every fourth packet carries SSRC 0 (as airplay-cli sends buffered ALAC).
        let data = try await Self.sendBuffered(session, try Self.alac(pcm)) { $0 % 4 == 3 ? 0 : 0xFACE }
        var refused = 0
        var status = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            status = try await Self.rateAnchor(session, frame: 0, at: master.networkTime.totalNanoseconds + 300_000_000)
            if status == 200 { break }
            refused += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == 200)
        #expect(refused >= 1, "the first anchor comes before the clock is measured")
        #expect(await poll(timeout: .seconds(10)) { pod.report().ptp.playInstants.count >= 30 }, "\(pod.report())")
        try await data.close()
        let report = try await Self.finish(pod, session, master: master)
        #expect(report.ptp.packetsDroppedForSSRC == 10)
        #expect(report.ptp.rateAnchorsRefused.count == refused)
        #expect(report.ptp.playInstants.count == 30)
        #expect(try Harness.wavPCM(out) == pcm.enumerated().filter { $0.offset % 4 != 3 }.flatMap { $0.element })
    }

    static func sendAnnouncedAudio(_ session: Session, master: PTPMaster, packets: Int) async throws {
        let start = master.networkTime.totalNanoseconds + 2_000_000_000
        session.audio.sendTo(port: session.controlPort,
                             PTPTimeAnnouncePacket(isFirst: true, frame: 0, audibleAt: start, clockID: masterClock.value).bytes)
        try await Task.sleep(for: .milliseconds(100))
        try await HomePodStreamTests.send(try alac(HomePodStreamTests.signal(packets: packets)), session: .init(
            control: session.control, events: session.events, key: session.key, dataPort: session.dataPort,
            audio: session.audio, senderControl: session.audio))
    }
}
