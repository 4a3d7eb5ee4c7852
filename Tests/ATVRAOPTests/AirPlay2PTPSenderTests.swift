// The PTP-timed AirPlay 2 session on the sender's side (docs/PTP-AND-BUFFERED-AUDIO.md §3):
// the state machine's plan and exact requests (session SETUP with `timingProtocol PTP` and our
// `timingPeerInfo`, RECORD before SETPEERS before the stream SETUP), the PTP master's peer added
// at SETPEERS and removed on teardown from every state, the 0xD7 sync packets on a manual clock
// mapped exactly onto the master's timescale, and the mapping itself against the real clocks.
// The shells with real UDP 319/320 run in a network namespace of their own
// (CLITests/StreamTimingCLITests): other processes on the host may hold those ports.
@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
import ATVPTP
@testable import ATVRAOP
import NIOCore
import NIOEmbedded
import Testing

private let uuid = "11111111-2222-4333-8444-555555555555"
private let first = RTPPosition(sequence: 65535, rtpTime: 88200)
private let key = [UInt8](repeating: 7, count: 32)
/// A clock id ≥ 2^63: written as a negative plist integer.
private let clockID: UInt64 = 0xE089_7E14_4BB7_0008
private let ours = "127.0.0.1"
/// An address of its own (the virtual receivers of other suites use 127.0.0.2).
private let receiver = "127.0.0.63"

private func ptpMachine() -> AirPlay2AudioSessionStateMachine {
    AirPlay2AudioSessionStateMachine(configuration: AirPlay2AudioSessionConfiguration(
        identity: AirPlay2SenderIdentity(), sessionUUID: uuid, codec: .alac, latencyFrames: 88_200,
        timing: .ptp(clockID: clockID, addresses: [ours]), requestTimeout: .seconds(3), progressTimeout: .seconds(5)))
}

private struct Sent {
    var request: AirPlay2AudioRequest
    var id: Int
    var kind: AirPlay2AudioRequestKind
}

private func sent(_ actions: [AirPlay2AudioSessionAction]) -> [Sent] {
    actions.compactMap { if case .send(let r, let id, let kind) = $0 { Sent(request: r, id: id, kind: kind) } else { nil } }
}

private func only(_ actions: [AirPlay2AudioSessionAction]) throws -> Sent {
    let s = sent(actions)
    try #require(s.count == 1)
    return s[0]
}

private func reply(_ status: Int = 200, plist: PlistValue? = nil) -> RTSPResponse {
    RTSPResponse(status: status, reason: nil, body: plist.map { BinaryPlist.encode($0) } ?? [])
}

/// shairport-sync's answer to a PTP session SETUP: timingPort 0 and its own timingPeerInfo.
private let sessionReply = PlistValue.dict([
    "eventPort": .int(7000), "timingPort": .int(0),
    "timingPeerInfo": .dict(["Addresses": .array([.string(receiver)]), "ID": .string(receiver)]),
])
private let streamReply = PlistValue.dict(["streams": .array([.dict([
    "type": .int(96), "dataPort": .int(6000), "controlPort": .int(6001),
])])])

/// Drives a fresh PTP machine to (and including the request of) `step`.
private func drive(to step: AirPlay2AudioSetupStep, _ sm: inout AirPlay2AudioSessionStateMachine) throws -> Sent? {
    #expect(sm.start() == [.connect])
    #expect(sm.connected(sessionID: 0x1234, audioKey: key, receiverAddress: receiver) == [])
    let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
    if step == .sessionSetup { return setup }
    #expect(sm.response(id: setup.id, reply(plist: sessionReply)) == [.sessionEstablished, .openEventChannel(port: 7000)])
    if step == .eventChannel { return nil }
    let record = try only(sm.eventChannelOpened())
    if step == .record || step == .feedback { return record }
    #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver])])
    let setPeers = try only(sm.clockGroupJoined(members: [[receiver]]))
    if step == .setPeers { return setPeers }
    let streamSetup = try only(sm.response(id: setPeers.id, reply()))
    if step == .streamSetup { return streamSetup }
    return try only(sm.response(id: streamSetup.id, reply(plist: streamReply)))
}

@Suite struct AirPlay2PTPSessionMachineTests {
    /// The whole PTP plan, request by request, bodies decoded.
    @Test func ptpPlanSendsTheRequestsInOrder() throws {
        var sm = ptpMachine()
        #expect(sm.plan == [.sessionSetup, .eventChannel, .feedback, .record, .setPeers, .streamSetup, .flush])
        #expect(sm.start() == [.connect])
        #expect(sm.connected(sessionID: 0x1234, audioKey: key, receiverAddress: receiver) == [])

        // Session SETUP: timingProtocol PTP, our timingPeerInfo and one copy as timingPeerList; no timingPort.
        let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
        #expect(setup.kind == .sessionSetup && setup.request.method == "SETUP" && setup.request.uri == nil)
        #expect(setup.request.headers["Content-Type"] == "application/x-apple-binary-plist")
        let body = try BinaryPlistParser.parse(setup.request.body)
        #expect(body["timingProtocol"] == .string("PTP"))
        #expect(body["timingPort"] == nil)
        let peer = PlistValue.dict([
            "ID": .string(uuid), "Addresses": .array([.string(ours)]),
            "ClockID": .int(-2_267_142_311_769_604_088), "DeviceType": .int(0),
            "SupportsClockPortMatchingOverride": .bool(false),
        ])
        #expect(body["timingPeerInfo"] == peer)
        #expect(body["timingPeerList"] == .array([peer]))
        #expect(body["sessionUUID"] == .string(uuid) && body["deviceID"] == .string("AA:BB:CC:DD:EE:FF"))
        #expect(try AirPlay2Timing(sessionSetup: body) == .ptp(.sender(id: uuid, addresses: [ours], clockID: clockID)))

        // The reply (timingPort 0, the receiver's timingPeerInfo) → event channel.
        #expect(sm.response(id: setup.id, reply(plist: sessionReply)) == [.sessionEstablished, .openEventChannel(port: 7000)])
        #expect(!sm.ptpPeerAdded)

        // Event channel → /feedback, then RECORD before anything about the stream.
        let opened = sm.eventChannelOpened()
        #expect(opened.first == .startFeedback)
        let record = try only(opened)
        #expect(record.request == AirPlay2AudioRequest("RECORD") && record.kind == .record)

        // RECORD answered → the receiver joins the clock group (alone: a single stream) →
        // SETPEERS [receiver, us].
        #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver])])
        #expect(!sm.ptpPeerAdded)
        let joined = sm.clockGroupJoined(members: [[receiver]])
        let setPeers = try only(joined)
        #expect(joined == [.send(setPeers.request, id: setPeers.id, .setPeers)])
        #expect(setPeers.kind == .setPeers && setPeers.request.method == "SETPEERS" && setPeers.request.uri == nil)
        #expect(setPeers.request.headers["Content-Type"] == "/peer-list-changed")
        #expect(try BinaryPlistParser.parse(setPeers.request.body) == .array([.string(receiver), .string(ours)]))
        #expect(try AirPlay2Peers.addresses(fromSetPeers: setPeers.request.body) == [receiver, ours])

        // SETPEERS answered → the realtime stream SETUP, as with NTP (type 96, latencyMin/Max).
        let streamSetup = try only(sm.response(id: setPeers.id, reply()))
        #expect(streamSetup.kind == .streamSetup)
        let expected = AirPlay2AudioStreamRequest(codec: .alac, controlPort: 50001, sharedKey: key, streamConnectionID: 0x1234)
        #expect(streamSetup.request.body == BinaryPlist.encode(expected.body))

        // Its answer → ports, the master sends to the receiver from now on (nqptp follows us
        // from the stream SETUP), FLUSH naming the first packet, ready.
        let afterStream = sm.response(id: streamSetup.id, reply(plist: streamReply))
        #expect(Array(afterStream.prefix(2)) == [.serverPorts(RAOPServerPorts(audioPort: 6000, controlPort: 6001, timingPort: 0, session: "4660")),
                                                 .addPTPPeer(receiver)])
        #expect(sm.ptpPeerAdded)
        let flush = try only(afterStream)
        #expect(flush.kind == .flush && flush.request.headers["RTP-Info"] == "seq=65535;rtptime=88200")
        #expect(sm.response(id: flush.id, reply()) == [.ready])
        #expect(sm.state == .ready)
    }

    /// Where the master sends: the RTSP peer (what nqptp follows; shairport-sync lists it among
    /// its addresses); plus the reply's addresses of the same family when the RTSP peer is not
    /// among them (the receiver's clock lives elsewhere), never ours.
    @Test func ptpPeerAddresses() {
        typealias M = AirPlay2AudioSessionStateMachine
        #expect(M.ptpPeers(rtspPeer: "192.168.1.20", timingAddresses: ["192.168.1.20", "10.0.0.5", "fe80::1"], ours: ["192.168.1.2"])
                == ["192.168.1.20"])
        #expect(M.ptpPeers(rtspPeer: "127.0.0.3", timingAddresses: ["127.0.0.2"], ours: ["127.0.0.1"]) == ["127.0.0.3", "127.0.0.2"])
        #expect(M.ptpPeers(rtspPeer: "127.0.0.1", timingAddresses: ["127.0.0.2"], ours: ["127.0.0.1"]) == ["127.0.0.2"])
        #expect(M.ptpPeers(rtspPeer: "10.0.0.9", timingAddresses: ["10.0.0.8", "fe80::2", "10.0.0.1"], ours: ["10.0.0.1"])
                == ["10.0.0.9", "10.0.0.8"])
        #expect(M.ptpPeers(rtspPeer: "10.0.0.9", timingAddresses: [], ours: ["10.0.0.1"]) == ["10.0.0.9"])
        // IPv6 receivers: the same rule; the receiver's own interface names are dropped.
        #expect(M.ptpPeers(rtspPeer: "fe80::5", timingAddresses: ["192.168.1.20", "fe80::5%en0"], ours: ["fe80::1"]) == ["fe80::5"])
        #expect(M.ptpPeers(rtspPeer: "2001:db8::9", timingAddresses: ["2001:db8::8", "fe80::8%en0", "10.0.0.8", "2001:db8::1"],
                           ours: ["2001:db8::1"]) == ["2001:db8::9", "2001:db8::8", "fe80::8"])
    }

    /// A receiver whose reply puts its clock at another address (as our virtual HomePod with a
    /// separate PTP address): that address joins the master, is in SETPEERS, and leaves.
    @Test func replyAddressesJoinTheMaster() throws {
        var sm = ptpMachine()
        _ = sm.start()
        _ = sm.connected(sessionID: 1, audioKey: key, receiverAddress: "127.0.0.1")
        let setup = try only(sm.setUp(controlPort: 1, timingPort: 2, first: first))
        let elsewhere = PlistValue.dict(["eventPort": .int(7000), "timingPort": .int(0),
                                         "timingPeerInfo": .dict(["Addresses": .array([.string("127.0.0.2")]), "ID": .string("127.0.0.2")])])
        _ = sm.response(id: setup.id, reply(plist: elsewhere))
        let record = try only(sm.eventChannelOpened())
        #expect(sm.response(id: record.id, reply()) == [.joinClockGroup(["127.0.0.2"])])
        let setPeers = try only(sm.clockGroupJoined(members: [["127.0.0.2"]]))
        // The RTSP peer is our own address here (one host): the master never sends to itself.
        #expect(try AirPlay2Peers.addresses(fromSetPeers: setPeers.request.body) == ["127.0.0.2", ours])
        #expect(sm.ptpPeers == ["127.0.0.2"])
        let streamSetup = try only(sm.response(id: setPeers.id, reply()))
        #expect(sm.response(id: streamSetup.id, reply(plist: streamReply)).dropFirst().first == .addPTPPeer("127.0.0.2"))
        let teardown = sm.teardown(connectionOpen: true, connectionFailed: false)
        #expect(teardown.first == .removePTPPeer("127.0.0.2"))
    }

    /// NTP keeps its plan: no SETPEERS, no peer.
    @Test func ntpPlanIsUnchanged() {
        let sm = AirPlay2AudioSessionStateMachine(configuration: AirPlay2AudioSessionConfiguration(
            identity: AirPlay2SenderIdentity(), sessionUUID: uuid, codec: .alac, latencyFrames: 88_200,
            requestTimeout: .seconds(3), progressTimeout: .seconds(5)))
        #expect(sm.plan == [.sessionSetup, .eventChannel, .feedback, .record, .streamSetup, .flush])
    }

    /// SETPEERS refused or unanswered only warns (shairport-sync ignores it; the master already
    /// sends to the receiver): setup goes on to the stream SETUP.
    @Test(arguments: [true, false]) func setPeersFailureOnlyWarns(refused: Bool) throws {
        var sm = ptpMachine()
        let setPeers = try #require(try drive(to: .setPeers, &sm))
        let actions = refused ? sm.response(id: setPeers.id, reply(501)) : sm.requestFailed(id: setPeers.id, .timeout("SETPEERS"))
        guard case .warning(let text)? = actions.first else { Issue.record("no warning: \(actions)"); return }
        #expect(text.contains("SETPEERS"))
        #expect(try only(actions).kind == .streamSetup)
        #expect(sm.state == .settingUp(.streamSetup))
    }

    /// A refused PTP session SETUP (shairport-sync without timingPeerInfo answers 501) fails with one error.
    @Test func refusedSessionSetupFails() throws {
        var sm = ptpMachine()
        let setup = try #require(try drive(to: .sessionSetup, &sm))
        let actions = sm.response(id: setup.id, reply(501))
        guard case .failed? = actions.last else { Issue.record("\(actions)"); return }
        #expect(sm.state == .failed && !sm.ptpPeerAdded)
        // Nothing to release, no session: close at once.
        #expect(sm.teardown(connectionOpen: true, connectionFailed: false) == [.stopFeedback, .close])
    }

    /// Teardown from every state of the PTP plan: the receiver leaves the master's peers exactly
    /// when it was added (once the stream SETUP was answered), TEARDOWN once a session exists.
    @Test(arguments: [
        ("idle", false, false), ("connecting", false, false), ("connected", false, false),
        ("sessionSetup", false, false), ("eventChannel", true, false), ("record", true, false),
        ("setPeers", true, false), ("streamSetup", true, false), ("flush", true, true), ("ready", true, true),
        ("streaming", true, true), ("failedAtStreamSetup", true, false),
    ])
    func teardownFromEachState(state: String, owesTeardown: Bool, peerAdded: Bool) throws {
        var sm = ptpMachine()
        switch state {
        case "idle": break
        case "connecting": _ = sm.start()
        case "connected":
            _ = sm.start()
            _ = sm.connected(sessionID: 1, audioKey: key, receiverAddress: receiver)
        case "sessionSetup": _ = try drive(to: .sessionSetup, &sm)
        case "eventChannel": _ = try drive(to: .eventChannel, &sm)
        case "record": _ = try drive(to: .record, &sm)
        case "setPeers": _ = try drive(to: .setPeers, &sm)
        case "streamSetup": _ = try drive(to: .streamSetup, &sm)
        case "flush": _ = try drive(to: .flush, &sm)
        case "failedAtStreamSetup":
            let streamSetup = try #require(try drive(to: .streamSetup, &sm))
            _ = sm.response(id: streamSetup.id, reply(500))
            #expect(sm.state == .failed)
        default:
            let flush = try #require(try drive(to: .flush, &sm))
            #expect(sm.response(id: flush.id, reply()) == [.ready])
            if state == "streaming" { _ = sm.begin(volumeDB: nil, metadata: nil) }
        }
        #expect(sm.hasSession == owesTeardown && sm.ptpPeerAdded == peerAdded)
        let release: [AirPlay2AudioSessionAction] = peerAdded ? [.removePTPPeer(receiver)] : []
        let actions = sm.teardown(connectionOpen: true, connectionFailed: false)
        if owesTeardown {
            let teardown = try only(actions)
            #expect(actions == release + [.stopFeedback, .markTearingDown, .send(teardown.request, id: teardown.id, .teardown)])
            #expect(sm.response(id: teardown.id, reply()) == [.close])
        } else {
            #expect(actions == release + [.stopFeedback, .close])
        }
        #expect(!sm.ptpPeerAdded)
        // Once: a second teardown releases nothing more.
        #expect(sm.teardown(connectionOpen: true, connectionFailed: false) == [])
    }
}

/// SETPEERS in a group (docs/PTP-AND-BUFFERED-AUDIO.md §3.3): every clock-group member's
/// addresses, newest first, ours last; sent again when a member joins or leaves. Every receiver
/// the reference describes takes it: shairport-sync answers 200 and ignores it, openairplay logs
/// it, Apple receivers learn the group from it; one that refuses it only costs a warning.
@Suite struct AirPlay2ClockGroupMachineTests {
    private static func peers(_ s: Sent) throws -> [String] { try AirPlay2Peers.addresses(fromSetPeers: s.request.body) }

    /// The first SETPEERS waits for the group's answer and lists every member, this one first.
    @Test func setPeersListsEveryMemberNewestFirstAndUsLast() throws {
        var sm = ptpMachine()
        let record = try #require(try drive(to: .record, &sm))
        #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver])])
        #expect(sm.state == .settingUp(.setPeers))
        let members = [[receiver], ["127.0.0.64"], ["127.0.0.65", "fe80::65"]]
        let setPeers = try only(sm.clockGroupJoined(members: members))
        #expect(setPeers.kind == .setPeers && setPeers.request.headers["Content-Type"] == "/peer-list-changed")
        #expect(try Self.peers(setPeers) == [receiver, "127.0.0.64", "127.0.0.65", "fe80::65", ours])
        // Only once during setup.
        #expect(sm.clockGroupJoined(members: members) == [])
        #expect(try only(sm.response(id: setPeers.id, reply())).kind == .streamSetup)
    }

    /// A member joins or leaves: SETPEERS again with the new list; the same list sends nothing;
    /// nothing before this receiver's own SETPEERS or once it tears down.
    @Test func aChangedGroupSendsSETPEERSAgain() throws {
        var sm = ptpMachine()
        #expect(sm.clockGroupChanged(members: [["127.0.0.64"], [receiver]]) == [])
        let first = try #require(try drive(to: .setPeers, &sm))
        #expect(try Self.peers(first) == [receiver, ours])
        // An update while the first SETPEERS is unanswered: its answer does not move the setup on.
        let joined = try only(sm.clockGroupChanged(members: [["127.0.0.64"], [receiver]]))
        #expect(joined.kind == .peersUpdate && joined.request.method == "SETPEERS")
        #expect(try Self.peers(joined) == ["127.0.0.64", receiver, ours])
        #expect(sm.response(id: joined.id, reply()) == [])
        #expect(sm.state == .settingUp(.setPeers))
        let streamSetup = try only(sm.response(id: first.id, reply()))
        #expect(streamSetup.kind == .streamSetup)
        _ = sm.response(id: streamSetup.id, reply(plist: streamReply))
        #expect(sm.clockGroupChanged(members: [["127.0.0.64"], [receiver]]) == [])
        let left = try only(sm.clockGroupChanged(members: [[receiver]]))
        #expect(try Self.peers(left) == [receiver, ours])
        _ = sm.teardown(connectionOpen: true, connectionFailed: false)
        #expect(sm.clockGroupChanged(members: [["127.0.0.66"], [receiver]]) == [])
    }

    /// A receiver that refuses the new list, or does not answer it, keeps playing: a warning.
    @Test(arguments: [true, false]) func aRefusedUpdateOnlyWarns(refused: Bool) throws {
        var sm = ptpMachine()
        let flush = try #require(try drive(to: .flush, &sm))
        #expect(sm.response(id: flush.id, reply()) == [.ready])
        _ = sm.begin(volumeDB: nil, metadata: nil)
        let update = try only(sm.clockGroupChanged(members: [["127.0.0.64"], [receiver]]))
        let actions = refused ? sm.response(id: update.id, reply(501)) : sm.requestFailed(id: update.id, .timeout("SETPEERS"))
        guard case .warning(let text)? = actions.first, actions.count == 1 else { Issue.record("\(actions)"); return }
        #expect(text.contains("SETPEERS"))
        #expect(sm.state == .streaming && sm.failure == nil)
    }

    /// The addresses a member is known by: where the master sends, then the rest of its reply's
    /// `timingPeerInfo.Addresses` (shairport-sync lists every interface), without `%interface`
    /// and never ours; a receiver whose reply has none (openairplay without its PTP master) is
    /// known by its RTSP address alone.
    @Test func theAddressesAMemberIsKnownBy() {
        typealias M = AirPlay2AudioSessionStateMachine
        #expect(M.clockGroupAddresses(ptpPeers: ["192.168.1.20"], timingAddresses: ["192.168.1.20", "10.0.0.5", "fe80::1%en0"],
                                      ours: ["192.168.1.2"]) == ["192.168.1.20", "10.0.0.5", "fe80::1"])
        #expect(M.clockGroupAddresses(ptpPeers: ["10.0.0.9"], timingAddresses: [], ours: ["10.0.0.1"]) == ["10.0.0.9"])
        #expect(M.clockGroupAddresses(ptpPeers: ["127.0.0.2"], timingAddresses: ["127.0.0.2", "127.0.0.1"], ours: ["127.0.0.1"])
                == ["127.0.0.2"])
    }

    /// A reply with every interface: the first SETPEERS names them all.
    @Test func replyAddressesAreListed() throws {
        var sm = ptpMachine()
        _ = sm.start()
        _ = sm.connected(sessionID: 1, audioKey: key, receiverAddress: receiver)
        let setup = try only(sm.setUp(controlPort: 1, timingPort: 2, first: first))
        let all = PlistValue.dict(["eventPort": .int(7000), "timingPort": .int(0),
                                   "timingPeerInfo": .dict(["Addresses": .array([.string(receiver), .string("10.1.2.3"), .string("fe80::7%eth0")]),
                                                            "ID": .string(receiver)])])
        _ = sm.response(id: setup.id, reply(plist: all))
        let record = try only(sm.eventChannelOpened())
        #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver, "10.1.2.3", "fe80::7"])])
        #expect(sm.ptpPeers == [receiver])
    }
}

/// The group's clock group: join order, a retried member becomes the newest, leaving.
@Suite struct GroupClockPeersTests {
    @Test func joinLeaveAndRejoin() {
        var g = GroupClockPeers()
        #expect(g.join("A", addresses: ["127.0.0.121"]) == [["127.0.0.121"]])
        #expect(g.join("B", addresses: ["127.0.0.122", "fe80::122"]) == [["127.0.0.122", "fe80::122"], ["127.0.0.121"]])
        #expect(g.join("C", addresses: ["127.0.0.123"]) == [["127.0.0.123"], ["127.0.0.122", "fe80::122"], ["127.0.0.121"]])
        #expect(g.join("A", addresses: ["127.0.0.121"]) == [["127.0.0.121"], ["127.0.0.123"], ["127.0.0.122", "fe80::122"]])
        let left = g.leave("C"), again = g.leave("C"), never = g.leave("D")
        #expect(left && !again && !never)
        #expect(g.newestFirst == [["127.0.0.121"], ["127.0.0.122", "fe80::122"]])
        #expect(g.entries.map(\.name) == ["B", "A"])
    }
}

/// The 0xD7 sync packets of a PTP session, on an `EmbeddedEventLoop`'s manual time.
@Suite struct PTPSyncPacketTests {
    static let fpp = 352
    static let latency = 88_200
    static let firstRTP: UInt32 = 4_294_960_000  // wraps
    /// The master's timescale: monotonic + this offset (a TAI-like value, as `PTPMaster` fixes it).
    static let offset: Int64 = 1_765_000_000_123_456_789

    @Test func timeAnnouncesMapThePacerOntoTheMasterTimescale() throws {
        let loop = EmbeddedEventLoop()
        let audio = EmbeddedChannel(loop: loop)
        let control = EmbeddedChannel(loop: loop)
        let timeline = PTPTimeline(clockID: clockID, timescaleOffset: Self.offset)
        let clock = SenderClock(now: { loop.now }, networkTime: { _ in NTPTime(unixSeconds: 0, nanoseconds: 0) }, ptp: timeline)
        let streamer = RAOPStreamer(ssrc: 1, initialSequence: 0, initialRTPTime: Self.firstRTP, latencyFrames: Self.latency)
        let live = RAOPLiveState(streamer: streamer, pacer: RAOPPacer(framesPerPacket: Self.fpp, sampleRate: 44_100), clock: clock)
        live.inner.withLock { $0.controlDestination = try? SocketAddress(ipAddress: receiver, port: 6001) }
        let pipe = RAOPPayloadPipe(highWater: 10_000, lowWater: 10)
        let pacer = RAOPPacedSender(
            audio: ChannelAudioOutput(channel: audio, address: try SocketAddress(ipAddress: receiver, port: 6000)), control: control,
            live: live, pipe: pipe, framesPerPacket: Self.fpp, syncInterval: .seconds(1), sendAhead: .milliseconds(40),
            clock: clock, onOutcome: {}, onProgress: {})
        for i in 0..<400 { pipe.offer(.packet(payload: [UInt8(truncatingIfNeeded: i)], sourceFrames: Self.fpp, silence: false)) }
        pipe.offer(.end)

        func announces() throws -> [PTPTimeAnnouncePacket] {
            var out: [PTPTimeAnnouncePacket] = []
            while let e = try control.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) {
                #expect(e.remoteAddress.port == 6001)
                out.append(try PTPTimeAnnouncePacket(decoding: e.data.readableBytesView))
            }
            return out
        }

        loop.advanceTime(to: .uptimeNanoseconds(7_000_000_001))  // an anchor that is not zero
        pacer.startOnLoop()
        let anchor = loop.now
        // The first: 0x90, frame (firstRTP − latency) audible at anchor + offset, frame_1 = that + 11035.
        let firstAnnounce = try announces()
        #expect(firstAnnounce == [PTPTimeAnnouncePacket(
            isFirst: true, rtpTime: Self.firstRTP &- 88_200 &+ 11_035,
            networkTime: UInt64(7_000_000_001 + Self.offset),
            rtpTimeAtSend: Self.firstRTP &- 88_200 &+ 11_035 &+ 77_175, clockID: clockID)])
        // Then one a second on the same schedule NTP syncs use, never earlier.
        for second in 1...3 {
            loop.advanceTime(to: anchor + .seconds(Int64(second)) - .nanoseconds(1))
            #expect(try announces().isEmpty)
            loop.advanceTime(to: anchor + .seconds(Int64(second)))
            let frame = Self.firstRTP &+ UInt32(44_100 * second) &- UInt32(Self.latency)
            let got = try announces()
            #expect(got == [PTPTimeAnnouncePacket(isFirst: false, frame: frame,
                                                  audibleAt: UInt64(7_000_000_001 + Int64(second) * 1_000_000_000 + Self.offset),
                                                  clockID: clockID)])
            #expect(got.first?.audibleFrame() == frame)
        }
        #expect(live.inner.withLock { $0.syncPackets } == 4)

        // Pause/resume: the next announce is a first one again (0x90).
        _ = pacer.pauseOnLoop()
        loop.advanceTime(by: .seconds(2))
        #expect(try announces().isEmpty)
        pacer.resumeOnLoop()
        #expect(try announces().first?.isFirst == true)
        _ = pacer.haltOnLoop()
    }

    /// The exact mapping: PTP ns = NIODeadline's nanoseconds + the master's offset, and a
    /// NIODeadline reads the master's monotonic clock (CLOCK_MONOTONIC): one bracketed by two of
    /// the other, every time.
    @Test func deadlinesAreTheMastersMonotonicClock() {
        let timeline = PTPTimeline(clockID: 1, timescaleOffset: -5)
        #expect(timeline.networkTime(at: .uptimeNanoseconds(1_000)) == 995)
        #expect(PTPTimeline(clockID: 1, timescaleOffset: 37_000_000_000).networkTime(at: .uptimeNanoseconds(3)) == 37_000_000_003)
        for _ in 0..<1000 {
            let a = NIODeadline.now().uptimeNanoseconds
            let m = PTPMaster.monotonicNow()
            let b = NIODeadline.now().uptimeNanoseconds
            #expect(a <= m && m <= b)
        }
    }
}
