// The buffered (type 103) AirPlay 2 session on the sender's side (docs/PTP-AND-BUFFERED-AUDIO.md
// §3.1, §3.5-§3.7, §6.3): the plan (PTP setup, RECORD and SETPEERS before the type-103 stream
// SETUP, no FLUSH), the exact requests with their plist bodies decoded, SETRATEANCHORTIME retried
// while the receiver answers 400 and failing with one clear error after the bounded attempts,
// pause (`{rate: 0}`), resume (a new anchor), seek (FLUSHBUFFERED), and TEARDOWN from each state.
@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
@testable import ATVRAOP
import Testing

private let uuid = "11111111-2222-4333-8444-555555555555"
private let first = RTPPosition(sequence: 1, rtpTime: 1000)
private let key = [UInt8](repeating: 7, count: 32)
private let clockID: UInt64 = 0xE089_7E14_4BB7_0008
private let ours = "127.0.0.1"
private let receiver = "127.0.0.63"

private func bufferedMachine(timing: AirPlay2AudioTimingMode = .ptp(clockID: clockID, addresses: [ours])) -> AirPlay2AudioSessionStateMachine {
    AirPlay2AudioSessionStateMachine(configuration: AirPlay2AudioSessionConfiguration(
        identity: AirPlay2SenderIdentity(), sessionUUID: uuid, codec: .alac, latencyFrames: 88_200,
        timing: timing, stream: .buffered(.alac44100x16Stereo), requestTimeout: .seconds(3), progressTimeout: .seconds(5)))
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

private let sessionReply = PlistValue.dict([
    "eventPort": .int(7000), "timingPort": .int(0),
    "timingPeerInfo": .dict(["Addresses": .array([.string(receiver)]), "ID": .string(receiver)]),
])
/// shairport-sync's answer to a type-103 stream SETUP.
private let bufferedReply = BufferedAudioStreamReply(dataPort: 6100, controlPort: 6101, audioBufferSize: 8_388_608)

/// A fresh machine driven to `ready` (the whole buffered plan checked on the way).
private func ready() throws -> AirPlay2AudioSessionStateMachine {
    var sm = bufferedMachine()
    #expect(sm.start() == [.connect])
    #expect(sm.connected(sessionID: 0x1234, audioKey: key, receiverAddress: receiver) == [])
    let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
    #expect(try BinaryPlistParser.parse(setup.request.body)["timingProtocol"] == .string("PTP"))
    #expect(sm.response(id: setup.id, reply(plist: sessionReply)) == [.sessionEstablished, .openEventChannel(port: 7000)])
    let record = try only(sm.eventChannelOpened())
    #expect(record.kind == .record)
    #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver])])
    let setPeers = try only(sm.clockGroupJoined(members: [[receiver]]))
    #expect(setPeers.kind == .setPeers)
    let streamSetup = try only(sm.response(id: setPeers.id, reply()))
    #expect(streamSetup.kind == .streamSetup)
    let afterStream = sm.response(id: streamSetup.id, reply(plist: bufferedReply.body))
    #expect(afterStream == [
        .serverPorts(RAOPServerPorts(audioPort: 6100, controlPort: 6101, timingPort: 0, session: "4660")),
        .bufferedStream(bufferedReply), .addPTPPeer(receiver), .ready,
    ])
    #expect(sm.state == .ready && sm.bufferedReply == bufferedReply)
    return sm
}

@Suite struct AirPlay2BufferedSessionMachineTests {
    /// PTP setup, RECORD and SETPEERS before the type-103 stream SETUP; no FLUSH.
    @Test func bufferedPlanSendsTheTypeOneHundredThreeStreamSetup() throws {
        var sm = bufferedMachine()
        #expect(sm.plan == [.sessionSetup, .eventChannel, .feedback, .record, .setPeers, .streamSetup])
        _ = sm.start()
        _ = sm.connected(sessionID: 0x1234, audioKey: key, receiverAddress: receiver)
        let setup = try only(sm.setUp(controlPort: 50001, timingPort: 50002, first: first))
        _ = sm.response(id: setup.id, reply(plist: sessionReply))
        let record = try only(sm.eventChannelOpened())
        #expect(sm.response(id: record.id, reply()) == [.joinClockGroup([receiver])])
        let setPeers = try only(sm.clockGroupJoined(members: [[receiver]]))
        let streamSetup = try only(sm.response(id: setPeers.id, reply()))
        #expect(streamSetup.request.method == "SETUP" && streamSetup.request.uri == nil)
        #expect(streamSetup.request.headers["Content-Type"] == "application/x-apple-binary-plist")
        let body = try BinaryPlistParser.parse(streamSetup.request.body)
        let stream = try #require(body["streams"]?.array?.first)
        #expect(stream == .dict([
            "type": .int(103), "audioFormat": .int(0x4_0000), "ct": .int(2), "spf": .int(352), "sr": .int(44_100),
            "shk": .data(key), "controlPort": .int(50001), "audioMode": .string("default"), "isMedia": .bool(true),
            "streamConnectionID": .int(0x1234), "supportsDynamicStreamID": .bool(false),
        ]))
        #expect(stream["latencyMin"] == nil && stream["latencyMax"] == nil)
        _ = try ready()
    }

    /// Buffered audio without PTP: one clear error at setUp, nothing sent.
    @Test func bufferedNeedsPTP() {
        var sm = bufferedMachine(timing: .ntp)
        _ = sm.start()
        _ = sm.connected(sessionID: 1, audioKey: key, receiverAddress: receiver)
        let actions = sm.setUp(controlPort: 1, timingPort: 2, first: first)
        #expect(sent(actions).isEmpty && sm.state == .failed)
        #expect(sm.failure == .badInput("buffered AirPlay 2 audio needs PTP timing (use --timing ptp or auto)"))
    }

    /// SETRATEANCHORTIME rate 1: integer rate, the anchor, our clock id, flags 0; 200 → anchored.
    @Test func anchorRequestAndAnswer() throws {
        var sm = try ready()
        _ = sm.begin(volumeDB: nil, metadata: nil)
        let anchor = BufferedRateAnchor.play(rtpTime: 1000, networkTimeNanoseconds: 5_890_123_456, timelineID: clockID)
        let request = try only(sm.setRateAnchor(anchor))
        #expect(request.kind == .rateAnchor && request.request.method == "SETRATEANCHORTIME")
        #expect(try BinaryPlistParser.parse(request.request.body) == .dict([
            "rate": .int(1), "rtpTime": .int(1000), "networkTimeSecs": .int(5),
            "networkTimeFrac": .int(Int64(bitPattern: 0xE3DF_217C_EC28_A178)),
            "networkTimeTimelineID": .int(Int64(bitPattern: clockID)), "networkTimeFlags": .int(0),
        ]))
        #expect(sm.response(id: request.id, reply()) == [.anchored])
        #expect(sm.anchored)
    }

    /// 400 (the receiver has not measured our clock): retry every 100 ms; a 200 then anchors.
    @Test func anchorRetriedWhileRefused() throws {
        var sm = try ready()
        _ = sm.begin(volumeDB: nil, metadata: nil)
        let anchor = BufferedRateAnchor.play(rtpTime: 1000, networkTimeNanoseconds: 1, timelineID: clockID)
        for _ in 0..<3 {
            let r = try only(sm.setRateAnchor(anchor))
            #expect(sm.response(id: r.id, reply(400)) == [.retryRateAnchor(after: .milliseconds(100))])
        }
        let r = try only(sm.setRateAnchor(anchor))
        #expect(sm.response(id: r.id, reply()) == [.anchored])
        #expect(sm.anchorRefusals == 0 && sm.state == .streaming)
    }

    /// Bounded: after 50 refusals (about 5 s) the session fails with one clear error.
    @Test func anchorRefusedTooOftenFails() throws {
        var sm = try ready()
        _ = sm.begin(volumeDB: nil, metadata: nil)
        let anchor = BufferedRateAnchor.play(rtpTime: 1000, networkTimeNanoseconds: 1, timelineID: clockID)
        for _ in 0..<(AirPlay2AudioSessionStateMachine.anchorAttempts - 1) {
            let r = try only(sm.setRateAnchor(anchor))
            #expect(sm.response(id: r.id, reply(400)) == [.retryRateAnchor(after: .milliseconds(100))])
        }
        let r = try only(sm.setRateAnchor(anchor))
        let error = ATVError.playbackError(
            "the receiver refused to start buffered playback (SETRATEANCHORTIME answered 400 50 times over 4.9 s): it did not lock onto our PTP clock")
        #expect(sm.response(id: r.id, reply(400)) == [.failed(error)])
        #expect(sm.state == .failed)
    }

    /// The first anchor's start after the receiver joined our PTP master: shairport-sync's
    /// documented 1.5 s (it answers 200 before it trusts our clock); Samsung's reported 3.4 s (not
    /// reported to answer 400); 250 ms for any other receiver (it got an Announce and a Sync at
    /// once; one that needs longer, Sonos and WiiM, answers 400).
    @Test func firstAnchorDelayPerReceiver() {
        func delay(_ traits: AirPlayReceiverTraits) -> Duration { AirPlay2AudioSessionStateMachine.firstAnchorDelay(for: traits) }
        #expect(delay(AirPlayReceiverTraits(txt: [["model": "ShairportSync"]])) == .milliseconds(1500))
        #expect(delay(AirPlayReceiverTraits(model: "HW-LS60D", manufacturer: "Samsung")) == .milliseconds(3400))
        #expect(delay(AirPlayReceiverTraits(model: "Era 100", manufacturer: "Sonos, Inc.")) == .milliseconds(250))
        #expect(delay(AirPlayReceiverTraits(model: "AudioAccessory5,1")) == .milliseconds(250))
        #expect(delay(AirPlayReceiverTraits()) == .milliseconds(250))
    }

    /// Another refusal of a play anchor ends the session; a pause refused only warns.
    @Test func anchorOtherRefusals() throws {
        var sm = try ready()
        _ = sm.begin(volumeDB: nil, metadata: nil)
        let pause = try only(sm.setRateAnchor(.pause))
        #expect(sm.response(id: pause.id, reply(500)) == [.warning("the receiver rejected SETRATEANCHORTIME rate 0 (500 Internal Server Error)")])
        let r = try only(sm.setRateAnchor(.play(rtpTime: 1, networkTimeNanoseconds: 1, timelineID: clockID)))
        #expect(sm.response(id: r.id, reply(500)) == [.failed(.playbackError("the receiver rejected SETRATEANCHORTIME (500 Internal Server Error)"))])
    }

    /// Pause = `{rate: 0}` alone; resume = a new full anchor; seek = immediate FLUSHBUFFERED + anchor.
    @Test func pauseResumeSeek() throws {
        var sm = try ready()
        _ = sm.begin(volumeDB: nil, metadata: nil)
        var window = BufferedSendWindow(configuration: .init(format: .alac44100x16Stereo, clockID: clockID), rtpBase: 1000, firstSequence: 1)
        let start = try only(sm.setRateAnchor(window.start(at: 2_000_000_000)))
        _ = sm.response(id: start.id, reply())
        for _ in 0..<10 { _ = window.write(payloadBytes: 100) }

        let pause = try only(sm.setRateAnchor(window.pause(now: 2_010_000_000)))
        #expect(pause.kind == .pauseAnchor && !sm.anchored)
        #expect(try BinaryPlistParser.parse(pause.request.body) == .dict(["rate": .int(0)]))
        #expect(sm.response(id: pause.id, reply()) == [])

        let resume = try only(sm.setRateAnchor(window.resume(now: 3_000_000_000)))
        // 10 ms played: frame 441 is in the second packet, whose first frame (rtpTime 1352) is
        // audible 300 ms after the resume.
        #expect(try BinaryPlistParser.parse(resume.request.body)["rtpTime"] == .int(1352))
        #expect(try BinaryPlistParser.parse(resume.request.body)["networkTimeSecs"] == .int(3))
        #expect(sm.response(id: resume.id, reply()) == [.anchored])

        let seek = window.seek(toSourceFrame: 44_100 * 90, now: 4_000_000_000)
        let flush = try only(sm.flushBuffered(seek.flush))
        #expect(flush.kind == .flushBuffered && flush.request.method == "FLUSHBUFFERED")
        #expect(try BinaryPlistParser.parse(flush.request.body) == .dict(["flushUntilSeq": .int(11), "flushUntilTS": .int(1000 + 3520)]))
        let anchor = try only(sm.setRateAnchor(try #require(seek.anchor)))
        #expect(try BinaryPlistParser.parse(anchor.request.body)["rtpTime"] == .int(1000 + 3520))
    }

    /// A refused anchor played nothing: the next anchor names the same first frame, later.
    @Test func refusedAnchorKeepsThePlayhead() throws {
        var window = BufferedSendWindow(configuration: .init(format: .alac44100x16Stereo, clockID: clockID), rtpBase: 1000)
        for _ in 0..<10 { _ = window.write(payloadBytes: 100) }
        #expect(window.start(at: 1_000_000_000) == .play(rtpTime: 1000, networkTimeNanoseconds: 1_000_000_000, timelineID: clockID))
        window.anchorRefused()
        #expect(window.playback == .waiting(position: 0))
        #expect(window.start(at: 3_000_000_000) == .play(rtpTime: 1000, networkTimeNanoseconds: 3_000_000_000, timelineID: clockID))
    }

    /// TEARDOWN from every state once a session exists; the PTP peer released when added.
    @Test(arguments: ["ready", "streaming", "anchored", "paused"])
    func teardownFromEachState(state: String) throws {
        var sm = try ready()
        if state != "ready" { _ = sm.begin(volumeDB: nil, metadata: nil) }
        if state == "anchored" || state == "paused" {
            let r = try only(sm.setRateAnchor(.play(rtpTime: 1, networkTimeNanoseconds: 1, timelineID: clockID)))
            _ = sm.response(id: r.id, reply())
        }
        if state == "paused" { _ = sm.setRateAnchor(.pause) }
        let actions = sm.teardown(connectionOpen: true, connectionFailed: false)
        let teardown = try only(actions)
        #expect(actions == [.removePTPPeer(receiver), .stopFeedback, .markTearingDown, .send(teardown.request, id: teardown.id, .teardown)])
        #expect(sm.response(id: teardown.id, reply()) == [.close])
        // No anchor after teardown.
        #expect(sm.setRateAnchor(.pause) == [])
    }
}
