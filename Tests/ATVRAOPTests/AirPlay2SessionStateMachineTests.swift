// AirPlay2AudioSessionStateMachine, event by event: every setup step, refusals and timeouts at
// each step (one ATVError each), the streaming commands, the stall rule, the volume re-send and
// teardown from every state. No sockets, no clock: instants are made from one base.
@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
@testable import ATVRAOP
import Testing

private let uuid = "11111111-2222-4333-8444-555555555555"
private let first = RTPPosition(sequence: 65535, rtpTime: 88200)
private let key = [UInt8](repeating: 7, count: 32)

private func machine(codec: RAOPCodec = .alac, latency: Int = 88_200) -> AirPlay2AudioSessionStateMachine {
    AirPlay2AudioSessionStateMachine(configuration: AirPlay2AudioSessionConfiguration(
        identity: AirPlay2SenderIdentity(), sessionUUID: uuid, codec: codec, latencyFrames: latency,
        requestTimeout: .seconds(3), progressTimeout: .seconds(5)))
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

private func reply(_ status: Int = 200, reason: String? = nil, plist: PlistValue? = nil) -> RTSPResponse {
    RTSPResponse(status: status, reason: reason, body: plist.map { BinaryPlist.encode($0) } ?? [])
}

private let sessionReply = PlistValue.dict(["eventPort": .int(7000), "timingPort": .int(7001)])
private let streamReply = PlistValue.dict(["streams": .array([.dict([
    "type": .int(96), "dataPort": .int(6000), "controlPort": .int(6001), "audioBufferSize": .int(8_388_608),
])])])
private let ports = RAOPServerPorts(audioPort: 6000, controlPort: 6001, timingPort: 0, session: "4660")

/// Drives a fresh machine up to (and including sending the request of) `step`; returns that
/// request (nil for the event channel, which is no request).
private func drive(to step: AirPlay2AudioSetupStep,
                   _ sm: inout AirPlay2AudioSessionStateMachine) throws -> Sent? {
    #expect(sm.start() == [.connect])
    #expect(sm.connected(sessionID: 0x1234, audioKey: key) == [])
    let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
    if step == .sessionSetup { return setup }
    #expect(sm.response(id: setup.id, reply(plist: sessionReply)) == [.sessionEstablished, .openEventChannel(port: 7000)])
    if step == .eventChannel { return nil }
    let opened = sm.eventChannelOpened()
    #expect(opened.first == .startFeedback)
    let record = try only(opened)
    if step == .record || step == .feedback { return record }
    let streamSetup = try only(sm.response(id: record.id, reply()))
    if step == .streamSetup { return streamSetup }
    let afterStream = sm.response(id: streamSetup.id, reply(plist: streamReply))
    #expect(afterStream.first == .serverPorts(ports))
    return try only(afterStream)
}

private func streaming(_ sm: inout AirPlay2AudioSessionStateMachine) throws {
    let flush = try #require(try drive(to: .flush, &sm))
    #expect(sm.response(id: flush.id, reply()) == [.ready])
    #expect(sm.begin(volumeDB: nil, metadata: nil) == [])
    #expect(sm.state == .streaming)
}

@Suite struct AirPlay2SessionStateMachineTests {
    @Test func fullSequenceSendsTheRequestsInOrder() throws {
        var sm = machine()
        #expect(sm.plan == [.sessionSetup, .eventChannel, .feedback, .record, .streamSetup, .flush])
        #expect(sm.start() == [.connect])
        #expect(sm.state == .connecting)
        #expect(sm.connected(sessionID: 0x1234, audioKey: key) == [])
        #expect(sm.state == .connected)

        // Session SETUP: NTP timing on our timing port, our identity, the given sessionUUID.
        let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
        #expect(setup.kind == .sessionSetup && setup.request.method == "SETUP" && setup.request.uri == nil)
        #expect(setup.request.headers["Content-Type"] == "application/x-apple-binary-plist")
        let setupBody = try BinaryPlistParser.parse(setup.request.body)
        #expect(setupBody == AirPlay2SessionSetup.body(timing: .ntp(timingPort: 50002), sessionUUID: uuid,
                                                       identity: AirPlay2SenderIdentity()))
        #expect(setupBody["timingPort"] == .int(50002) && setupBody["timingProtocol"] == .string("NTP"))
        #expect(setupBody["sessionUUID"] == .string(uuid))
        #expect(sm.state == .settingUp(.sessionSetup) && !sm.hasSession)

        // Answer → TEARDOWN owed, event channel on its eventPort.
        #expect(sm.response(id: setup.id, reply(plist: sessionReply)) == [.sessionEstablished, .openEventChannel(port: 7000)])
        #expect(sm.hasSession && sm.state == .settingUp(.eventChannel))

        // Event channel up → /feedback starts, RECORD (no headers, no body, the session URI).
        let opened = sm.eventChannelOpened()
        #expect(opened.first == .startFeedback)
        let record = try only(opened)
        #expect(record.request == AirPlay2AudioRequest("RECORD") && record.kind == .record)

        // RECORD answered → audio stream SETUP, type 96 with our control port and the audio key.
        let streamSetup = try only(sm.response(id: record.id, reply()))
        #expect(streamSetup.kind == .streamSetup && streamSetup.request.method == "SETUP")
        let expected = AirPlay2AudioStreamRequest(codec: .alac, controlPort: 50001, sharedKey: key, framesPerPacket: 352,
                                                  sampleRate: 44_100, latencyMin: 11_025, latencyMax: 88_200,
                                                  streamConnectionID: 0x1234)
        #expect(streamSetup.request.body == BinaryPlist.encode(expected.body))
        let stream = try BinaryPlistParser.parse(streamSetup.request.body)["streams"]
        guard case .array(let streams)? = stream else { Issue.record("no streams"); return }
        #expect(streams[0]["type"] == .int(96) && streams[0]["ct"] == .int(2) && streams[0]["audioFormat"] == .int(0x40000))
        #expect(streams[0]["shk"] == .data(key) && streams[0]["controlPort"] == .int(50001))

        // Its answer → the receiver's ports, then FLUSH naming the first packet.
        let afterStream = sm.response(id: streamSetup.id, reply(plist: streamReply))
        #expect(afterStream.first == .serverPorts(ports))
        #expect(sm.serverPorts == ports)
        let flush = try only(afterStream)
        #expect(flush.kind == .flush && flush.request.method == "FLUSH")
        #expect(flush.request.headers == ["Range": "npt=0-", "RTP-Info": "seq=65535;rtptime=88200"])
        #expect(sm.response(id: flush.id, reply()) == [.ready])
        #expect(sm.state == .ready && sm.pending.isEmpty)

        // begin: volume, then title, artwork, progress (all named by the first packet).
        var metadata = MediaMetadata()
        metadata.title = "Song"
        metadata.artwork = [0x89, 0x50, 0x4E, 0x47, 1]
        metadata.duration = 2
        let begun = sent(sm.begin(volumeDB: -20, metadata: metadata))
        #expect(begun.map(\.kind) == [.volume, .metadata, .artwork, .progress])
        #expect(begun[0].request.body == Array("volume: -20.000000\r\n".utf8))
        #expect(begun[0].request.headers == ["Content-Type": "text/parameters"])
        #expect(begun[1].request.headers == ["Content-Type": "application/x-dmap-tagged", "RTP-Info": "seq=65535;rtptime=88200"])
        #expect(begun[1].request.body == RAOPTrackInfo(metadata).dmapBytes)
        #expect(begun[2].request.headers["Content-Type"] == "image/png" && begun[2].request.body == [0x89, 0x50, 0x4E, 0x47, 1])
        #expect(begun[3].request.body == Array("progress: 88200/88200/176400\r\n".utf8))
        #expect(sm.state == .streaming)
        for b in begun { #expect(sm.response(id: b.id, reply()) == []) }

        // TEARDOWN, answered → close.
        let down = sm.teardown(connectionOpen: true, connectionFailed: false)
        #expect(Array(down.prefix(2)) == [.stopFeedback, .markTearingDown])
        let teardown = try only(down)
        #expect(teardown.request == AirPlay2AudioRequest("TEARDOWN", timeout: .seconds(3)))
        #expect(sm.state == .tearingDown)
        #expect(sm.teardown(connectionOpen: true, connectionFailed: false) == [])
        #expect(sm.response(id: teardown.id, reply()) == [.close])
        #expect(sm.state == .closed && sm.isFinished)
    }

    @Test func l16AndALargerLatencyGoIntoTheStreamSetup() throws {
        var sm = machine(codec: .l16, latency: 100_000)
        let streamSetup = try #require(try drive(to: .streamSetup, &sm))
        let expected = AirPlay2AudioStreamRequest(codec: .l16, controlPort: 50001, sharedKey: key, framesPerPacket: 352,
                                                  sampleRate: 44_100, latencyMin: 11_025, latencyMax: 100_000,
                                                  streamConnectionID: 0x1234)
        #expect(streamSetup.request.body == BinaryPlist.encode(expected.body))
    }

    /// Each critical step refused: one error, with the step's name, and the session fails.
    @Test(arguments: [
        (AirPlay2AudioSetupStep.sessionSetup, 403, ATVError.authenticationFailed("the receiver refused session SETUP (403 Nope)")),
        (.sessionSetup, 470, .authenticationFailed("the receiver refused session SETUP (470 Nope)")),
        (.sessionSetup, 500, .httpError(status: 500, "session SETUP rejected: Nope")),
        (.record, 401, .authenticationFailed("the receiver refused RECORD (401 Nope)")),
        (.record, 453, .httpError(status: 453, "RECORD rejected: Nope")),
        (.streamSetup, 403, .authenticationFailed("the receiver refused audio stream SETUP (403 Nope)")),
        (.streamSetup, 400, .httpError(status: 400, "audio stream SETUP rejected: Nope")),
        (.streamSetup, 503, .httpError(status: 503, "audio stream SETUP rejected: Nope")),
    ])
    func refusalAtEachStepFails(step: AirPlay2AudioSetupStep, status: Int, error: ATVError) throws {
        var sm = machine()
        let request = try #require(try drive(to: step, &sm))
        #expect(sm.response(id: request.id, reply(status, reason: "Nope")) == [.failed(error)])
        #expect(sm.state == .failed && sm.failure == error)
        // No more requests once failed.
        #expect(sm.setVolume(dB: -10) == [] && sm.flush(next: first) == [] && sm.begin(volumeDB: -10, metadata: nil) == [])
    }

    /// Each critical step unanswered (or its connection gone): that error, unchanged.
    @Test(arguments: [AirPlay2AudioSetupStep.sessionSetup, .record, .streamSetup])
    func timeoutAtEachStepFails(step: AirPlay2AudioSetupStep) throws {
        var sm = machine()
        let request = try #require(try drive(to: step, &sm))
        let error = ATVError.timeout("the receiver at 127.0.0.1:7000 did not answer \(request.kind.rawValue) within 3 s")
        #expect(sm.requestFailed(id: request.id, error) == [.failed(error)])
        #expect(sm.state == .failed)
        // A late answer changes nothing.
        #expect(sm.response(id: request.id, reply()) == [])
    }

    @Test func unusableAnswersFail() throws {
        // A session SETUP answer without eventPort: the session exists (TEARDOWN owed) but fails.
        var sm = machine()
        var request = try #require(try drive(to: .sessionSetup, &sm))
        #expect(sm.response(id: request.id, reply(plist: .dict([:])))
            == [.sessionEstablished, .failed(.protocolError("the session SETUP reply has no valid eventPort"))])
        #expect(try only(sm.teardown(connectionOpen: true, connectionFailed: true)).request
            == AirPlay2AudioRequest("TEARDOWN", timeout: .seconds(1)))

        // A stream SETUP answer without streams, or without a data port.
        sm = machine()
        request = try #require(try drive(to: .streamSetup, &sm))
        #expect(sm.response(id: request.id, reply(plist: .dict(["streams": .array([])])))
            == [.failed(.protocolError("the audio stream SETUP reply has no streams"))])
        sm = machine()
        request = try #require(try drive(to: .streamSetup, &sm))
        #expect(sm.response(id: request.id, reply(plist: .dict(["streams": .array([.dict(["controlPort": .int(1)])])])))
            == [.failed(.protocolError("the audio stream SETUP reply has no valid dataPort"))])
        sm = machine()
        request = try #require(try drive(to: .streamSetup, &sm))
        #expect(sm.response(id: request.id, reply())
            == [.failed(.protocolError("the audio stream SETUP reply has an empty body (expected a binary plist)"))])
    }

    @Test func eventChannelFailureAndConnectFailureFail() throws {
        var sm = machine()
        #expect(try drive(to: .eventChannel, &sm) == nil)
        let error = ATVError.connectionFailed("cannot open the AirPlay 2 event channel to 127.0.0.1:7000 (refused)")
        #expect(sm.eventChannelFailed(error) == [.failed(error)])
        #expect(sm.state == .failed && sm.hasSession)

        var connecting = machine()
        #expect(connecting.start() == [.connect])
        #expect(connecting.start() == [.warning("session already started")])
        let refused = ATVError.pairingFailed("pair-verify failed")
        #expect(connecting.connectFailed(refused) == [.failed(refused)])
        #expect(connecting.failure == refused)
        #expect(connecting.teardown(connectionOpen: false, connectionFailed: true) == [.stopFeedback, .close])
    }

    /// FLUSH during setup is no reason to fail: refused or unanswered, setup completes.
    @Test func setupFlushRefusedOrUnansweredOnlyWarns() throws {
        var sm = machine()
        var flush = try #require(try drive(to: .flush, &sm))
        #expect(sm.response(id: flush.id, reply(501, reason: "Not Implemented"))
            == [.warning("the receiver rejected FLUSH (501 Not Implemented)"), .ready])
        sm = machine()
        flush = try #require(try drive(to: .flush, &sm))
        #expect(sm.requestFailed(id: flush.id, .timeout("no answer"))
            == [.warning("FLUSH failed: \(ATVError.timeout("no answer"))"), .ready])
        #expect(sm.state == .ready)
    }

    @Test func streamingCommandsOnlyWarnOnRefusal() throws {
        var sm = machine()
        try streaming(&sm)
        let volume = try only(sm.setVolume(dB: -30))
        #expect(volume.request.method == "SET_PARAMETER" && volume.request.body == Array("volume: -30.000000\r\n".utf8))
        #expect(sm.response(id: volume.id, reply(400, reason: "Bad Request"))
            == [.warning("the receiver rejected SET_PARAMETER volume (400 Bad Request)")])
        let flush = try only(sm.flush(next: RTPPosition(sequence: 5, rtpTime: 1760)))
        #expect(flush.request.headers == ["Range": "npt=0-", "RTP-Info": "seq=5;rtptime=1760"])
        #expect(sm.requestFailed(id: flush.id, .timeout("late")) == [.warning("FLUSH failed: \(ATVError.timeout("late"))")])
        var metadata = MediaMetadata()
        metadata.artist = "Band"
        let meta = try only(sm.sendMetadata(metadata, start: nil, next: first))
        #expect(sm.response(id: meta.id, reply(500, reason: "Oops")) == [.warning("the receiver rejected SET_PARAMETER metadata (500 Oops)")])
        #expect(sm.state == .streaming && sm.failure == nil)

        // A lost connection ends it; TEARDOWN is not sent on a closed connection.
        let lost = ATVError.connectionLost("the receiver closed the connection")
        #expect(sm.connectionLost(lost) == [.failed(lost)])
        #expect(sm.setVolume(dB: -10) == [])
        #expect(sm.teardown(connectionOpen: false, connectionFailed: true) == [.stopFeedback, .close])
        #expect(sm.state == .failed)
    }

    @Test func volumeIsSentAgainOneSecondAfterAudioStarts() throws {
        var sm = machine()
        try streaming(&sm)
        let t0 = ContinuousClock.now
        sm.audioStarted(now: t0)
        var (actions, recheck) = sm.check(now: t0 + .milliseconds(400), liveness: AirPlay2Liveness(), otherSigns: nil,
                                          volumeDB: -15, endpoint: "h:7000")
        #expect(actions == [] && recheck == t0 + .seconds(1))
        (actions, recheck) = sm.check(now: t0 + .seconds(1), liveness: AirPlay2Liveness(), otherSigns: nil,
                                      volumeDB: -15, endpoint: "h:7000")
        #expect(try only(actions).request.body == Array("volume: -15.000000\r\n".utf8) && recheck == nil)
        // Once only.
        (actions, recheck) = sm.check(now: t0 + .seconds(3), liveness: AirPlay2Liveness(), otherSigns: nil,
                                      volumeDB: -15, endpoint: "h:7000")
        #expect(actions == [] && recheck == nil)

        // Without a volume set, nothing is re-sent.
        var quiet = machine()
        try streaming(&quiet)
        quiet.audioStarted(now: t0)
        #expect(quiet.check(now: t0 + .seconds(2), liveness: AirPlay2Liveness(), otherSigns: nil, volumeDB: nil,
                            endpoint: "h:7000").actions == [])
    }

    @Test func stallRuleFailsTheSessionAndTheConnection() throws {
        var sm = machine()
        try streaming(&sm)
        let t0 = ContinuousClock.now
        let waiting = AirPlay2Liveness(oldestUnanswered: ("POST /feedback", t0))
        // Alive until the timeout; a sign of life (a timing request) moves the deadline.
        var result = sm.check(now: t0 + .seconds(4), liveness: waiting, otherSigns: nil, volumeDB: nil, endpoint: "h:7000")
        #expect(result.actions == [] && result.recheckAt == t0 + .seconds(5))
        result = sm.check(now: t0 + .seconds(5), liveness: waiting, otherSigns: t0 + .seconds(2), volumeDB: nil, endpoint: "h:7000")
        #expect(result.actions == [] && result.recheckAt == t0 + .seconds(7))
        result = sm.check(now: t0 + .milliseconds(7500), liveness: waiting, otherSigns: t0 + .seconds(2), volumeDB: nil,
                          endpoint: "h:7000")
        let error = ATVError.playbackError("h:7000 makes no progress: it left POST /feedback unanswered for 7.5 s")
        #expect(result.actions == [.failConnection(error), .failed(error)] && result.recheckAt == nil)
        #expect(sm.state == .failed && sm.failure == error)
        // Nothing more is checked; TEARDOWN still goes out, waiting at most 1 s.
        #expect(sm.check(now: t0 + .seconds(9), liveness: waiting, otherSigns: nil, volumeDB: -1, endpoint: "h:7000").actions == [])
        let teardown = try only(sm.teardown(connectionOpen: true, connectionFailed: true))
        #expect(teardown.request.timeout == .seconds(1))
        #expect(sm.requestFailed(id: teardown.id, .timeout("TEARDOWN")) == [.close])
        #expect(sm.state == .closed)
    }

    /// Teardown from every state: TEARDOWN once the session SETUP succeeded and the connection is
    /// open, else close at once.
    @Test(arguments: [
        ("idle", false), ("connecting", false), ("connected", false), ("sessionSetup", false),
        ("eventChannel", true), ("record", true), ("streamSetup", true), ("flush", true), ("ready", true),
        ("streaming", true),
    ])
    func teardownFromEachState(state: String, owesTeardown: Bool) throws {
        var sm = machine()
        switch state {
        case "idle": break
        case "connecting": _ = sm.start()
        case "connected":
            _ = sm.start()
            _ = sm.connected(sessionID: 1, audioKey: key)
        case "sessionSetup": _ = try drive(to: .sessionSetup, &sm)
        case "eventChannel": _ = try drive(to: .eventChannel, &sm)
        case "record": _ = try drive(to: .record, &sm)
        case "streamSetup": _ = try drive(to: .streamSetup, &sm)
        case "flush": _ = try drive(to: .flush, &sm)
        case "ready":
            let flush = try #require(try drive(to: .flush, &sm))
            _ = sm.response(id: flush.id, reply())
        default: try streaming(&sm)
        }
        #expect(sm.hasSession == owesTeardown)
        var copy = sm
        let actions = sm.teardown(connectionOpen: true, connectionFailed: false)
        if owesTeardown {
            let teardown = try only(actions)
            #expect(actions == [.stopFeedback, .markTearingDown, .send(teardown.request, id: teardown.id, .teardown)])
            #expect(teardown.request == AirPlay2AudioRequest("TEARDOWN", timeout: .seconds(3)))
            #expect(sm.state == .tearingDown)
            // A setup answer arriving now changes nothing; the TEARDOWN answer (any status) closes.
            #expect(sm.setVolume(dB: 0) == [])
            #expect(sm.response(id: teardown.id, reply(404)) == [.close])
            // The connection closed under us: no TEARDOWN.
            #expect(copy.teardown(connectionOpen: false, connectionFailed: true) == [.stopFeedback, .close])
        } else {
            #expect(actions == [.stopFeedback, .close])
        }
        #expect(sm.state == .closed)
        #expect(sm.teardown(connectionOpen: true, connectionFailed: false) == [])
    }
}
