@testable import ATVAirPlayCore
import ATVCore
@testable import ATVHTTP
@testable import ATVRAOP
import Testing

private func config(password: String? = nil, volume: Double? = nil, info: Bool = true) -> RAOPSessionConfiguration {
    RAOPSessionConfiguration(localIP: "127.0.0.1", remoteIP: "127.0.0.2", sessionID: 1234, dacpID: "ABCDEF0123456789",
                             activeRemote: 99, format: RAOPAudioFormat(codec: .alac), password: password,
                             controlPort: 50001, timingPort: 50002, initialVolumeDB: volume,
                             initialSequence: 65535, initialRTPTime: 88200, requestInfo: info)
}

private func sent(_ actions: [RAOPSessionAction]) -> [RTSPRequest] {
    actions.compactMap { if case .send(let r, _) = $0 { return r } else { return nil } }
}

private func ok(_ r: RTSPRequest, _ headers: RTSPHeaders = [:], status: Int = 200) -> RTSPResponse {
    var h = headers
    h.add("CSeq", String(r.cseq ?? -1))
    return RTSPResponse(status: status, headers: h)
}

private let setupTransport = "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002"

@Suite struct SessionStateMachineTests {
    @Test func fullSequenceWithVolume() throws {
        var sm = RAOPSessionStateMachine(configuration: config(volume: -20.1))
        var reqs = sent(sm.start())
        #expect(reqs.map(\.method) == ["GET"] && reqs[0].uri == "/info" && reqs[0].cseq == 0)
        #expect(reqs[0].headers["DACP-ID"] == "ABCDEF0123456789" && reqs[0].headers["Client-Instance"] == "ABCDEF0123456789")
        #expect(reqs[0].headers["Active-Remote"] == "99" && reqs[0].headers["User-Agent"] == "AirPlay/550.10")

        // /info 404 is tolerated.
        reqs = sent(sm.receive(ok(reqs[0], status: 404)))
        let announce = try #require(reqs.first)
        #expect(announce.method == "ANNOUNCE" && announce.uri == "rtsp://127.0.0.1/1234" && announce.cseq == 1)
        #expect(announce.headers["Content-Type"] == "application/sdp")
        #expect(announce.bodyText.contains("a=rtpmap:96 AppleLossless\r\n") && announce.bodyText.contains("c=IN IP4 127.0.0.2"))

        reqs = sent(sm.receive(ok(announce)))
        let setup = try #require(reqs.first)
        #expect(setup.method == "SETUP" && setup.cseq == 2)
        #expect(setup.headers["Transport"] == "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;control_port=50001;timing_port=50002")

        let afterSetup = sm.receive(ok(setup, ["Transport": setupTransport, "Session": "DEADBEEF;timeout=60"]))
        #expect(afterSetup.first == .serverPorts(RAOPServerPorts(audioPort: 6000, controlPort: 6001, timingPort: 6002, session: "DEADBEEF")))
        let volume = try #require(sent(afterSetup).first)
        #expect(volume.method == "SET_PARAMETER" && volume.bodyText == "volume: -20.100000\r\n" && volume.headers["Session"] == "DEADBEEF")
        #expect(volume.headers["Content-Type"] == "text/parameters")

        let record = try #require(sent(sm.receive(ok(volume))).first)
        #expect(record.method == "RECORD" && record.headers["RTP-Info"] == "seq=65535;rtptime=88200" && record.headers["Range"] == "npt=0-")
        #expect(sm.state == .recording)

        let streaming = sm.receive(ok(record, ["Audio-Latency": "11025"]))
        #expect(streaming == [.startStreaming(audioLatency: 11025)])
        #expect(sm.isStreaming)

        // While streaming.
        let meta = try #require(sent(sm.setMetadata(RAOPTrackInfo(title: "T"), sequence: 5, rtpTime: 6)).first)
        #expect(meta.headers["Content-Type"] == "application/x-dmap-tagged" && meta.headers["RTP-Info"] == "seq=5;rtptime=6")
        #expect(try RAOPTrackInfo(dmap: meta.body) == RAOPTrackInfo(title: "T"))
        let rejected = sm.receive(ok(meta, status: 400))
        #expect(rejected.count == 1 && { if case .warning = rejected[0] { true } else { false } }())
        #expect(sm.isStreaming)

        let feedback = try #require(sent(sm.feedback()).first)
        #expect(feedback.method == "POST" && feedback.uri == "/feedback")
        let fb = sm.receive(ok(feedback, status: 501))
        #expect(fb.isEmpty)  // tolerated

        let flush = try #require(sent(sm.flush(sequence: 7, rtpTime: 8)).first)
        #expect(flush.method == "FLUSH" && flush.headers["RTP-Info"] == "seq=7;rtptime=8")
        _ = sm.receive(ok(flush))

        let teardown = try #require(sent(sm.teardown()).first)
        #expect(teardown.method == "TEARDOWN" && teardown.headers["Session"] == "DEADBEEF")
        let closed = sm.receive(ok(teardown))
        #expect(closed == [.closed])
        #expect(sm.state == .closed)
    }

    @Test func digestRetryOnAnnounce() throws {
        var sm = RAOPSessionStateMachine(configuration: config(password: "secret", info: false))
        let first = try #require(sent(sm.start()).first)
        #expect(first.method == "ANNOUNCE" && first.headers["Authorization"] == nil)
        let retry = try #require(sent(sm.receive(ok(first, ["WWW-Authenticate": "Digest realm=\"raop\", nonce=\"abc\""], status: 401))).first)
        #expect(retry.method == "ANNOUNCE" && retry.cseq == 1)
        let auth = try #require(retry.headers["Authorization"])
        #expect(RTSPDigest.verify(authorization: auth, password: "secret", challenge: RTSPDigestChallenge(realm: "raop", nonce: "abc"), method: "ANNOUNCE"))
        let setup = try #require(sent(sm.receive(ok(retry))).first)
        // Later requests carry their own digest (method-specific).
        let setupAuth = try #require(setup.headers["Authorization"])
        #expect(RTSPDigest.verify(authorization: setupAuth, password: "secret", challenge: RTSPDigestChallenge(realm: "raop", nonce: "abc"), method: "SETUP"))
        // Wrong password → second 401 fails clearly.
        var sm2 = RAOPSessionStateMachine(configuration: config(password: "bad", info: false))
        let a = try #require(sent(sm2.start()).first)
        let b = try #require(sent(sm2.receive(ok(a, ["WWW-Authenticate": "Digest realm=\"r\", nonce=\"n\""], status: 401))).first)
        let result = sm2.receive(ok(b, ["WWW-Authenticate": "Digest realm=\"r\", nonce=\"n\""], status: 401))
        guard case .failed(.authenticationFailed(let msg))? = result.first else { Issue.record("\(result)"); return }
        #expect(msg.contains("password"))
    }

    @Test func passwordMissingAndBadStatusesNameTheRequest() throws {
        var sm = RAOPSessionStateMachine(configuration: config(info: false))
        let a = try #require(sent(sm.start()).first)
        guard case .failed(.authenticationFailed)? = sm.receive(ok(a, ["WWW-Authenticate": "Digest realm=\"r\", nonce=\"n\""], status: 401)).first else {
            Issue.record("expected auth failure"); return
        }
        #expect(sm.state == .failed)

        var sm2 = RAOPSessionStateMachine(configuration: config(info: false))
        let b = try #require(sent(sm2.start()).first)
        let setup = try #require(sent(sm2.receive(ok(b))).first)
        let r = sm2.receive(ok(setup, status: 453))
        #expect(r == [.failed(.httpError(status: 453, "SETUP rejected: Not Enough Bandwidth"))])

        var sm3 = RAOPSessionStateMachine(configuration: config(info: false))
        let c = try #require(sent(sm3.start()).first)
        let setup3 = try #require(sent(sm3.receive(ok(c))).first)
        guard case .failed(.protocolError(let m))? = sm3.receive(ok(setup3, ["Transport": "RTP/AVP/UDP;unicast"])).first else {
            Issue.record("expected protocol error"); return
        }
        #expect(m.contains("server_port"))
    }

    @Test func cseqMatchingTimeoutsAndClose() throws {
        var sm = RAOPSessionStateMachine(configuration: config())
        let info = try #require(sent(sm.start()).first)
        // Unknown CSeq ignored.
        let ignored = sm.receive(RTSPResponse(status: 200, headers: ["CSeq": "77"]))
        #expect(ignored.count == 1 && sm.state == .info)
        // Timeout of /info is fatal and names it.
        let timedOut = sm.timedOut(cseq: info.cseq!)
        #expect(timedOut == [.failed(.timeout("the receiver did not answer GET /info"))])

        var sm2 = RAOPSessionStateMachine(configuration: config(info: false))
        _ = sm2.start()
        guard case .failed(.connectionLost(let m))? = sm2.connectionClosed().first else { Issue.record("close"); return }
        #expect(m.contains("ANNOUNCE"))
        // Teardown before SETUP closes at once.
        var sm3 = RAOPSessionStateMachine(configuration: config(info: false))
        _ = sm3.start()
        let td = sm3.teardown()
        #expect(td == [.closed])
    }

    @Test func volumeBeforeStreamingIsDeferred() throws {
        var sm = RAOPSessionStateMachine(configuration: config(info: false))
        let a = try #require(sent(sm.start()).first)
        let deferred = sm.setVolume(dB: -10)
        #expect(deferred.isEmpty)
        let setup = try #require(sent(sm.receive(ok(a))).first)
        let vol = try #require(sent(sm.receive(ok(setup, ["Transport": setupTransport, "Session": "1"]))).first)
        #expect(vol.bodyText == "volume: -10.000000\r\n")
    }
}

@Suite struct StreamerTests {
    @Test func packetizerWrapsAndMarksFirst() throws {
        var s = RAOPStreamer(ssrc: 0xAABBCCDD, initialSequence: 65534, initialRTPTime: UInt32.max - 100, latencyFrames: 88200)
        let p1 = try RAOPAudioPacket(decoding: try s.packetize(payload: [1], frames: 352))
        let p2 = try RAOPAudioPacket(decoding: try s.packetize(payload: [2], frames: 352))
        let p3 = try RAOPAudioPacket(decoding: try s.packetize(payload: [3], frames: 352))
        #expect(p1.marker && !p2.marker && !p3.marker)
        #expect([p1.sequenceNumber, p2.sequenceNumber, p3.sequenceNumber] == [65534, 65535, 0])
        #expect(p1.timestamp == UInt32.max - 100 && p2.timestamp == 251 && p3.timestamp == 603)
        #expect(p1.header.ssrc == 0xAABBCCDD)
        #expect(s.bytesSentCheck(p1, p2, p3))
        // Retransmit across the wrap.
        let answers = s.retransmissions(for: RAOPRetransmitRequest(firstSequence: 65535, count: 3))
        let misses = s.retransmitMisses
        #expect(answers.count == 2 && misses == 1)
        guard case .retransmitResponse(let r)? = try? RAOPControlPacket(decoding: answers[1]) else { Issue.record("decode"); return }
        #expect(r.packet == p3)
        s.flushed()
        let afterFlush = try s.packetize(payload: [], frames: 352)
        #expect(try RAOPAudioPacket(decoding: afterFlush).marker)
    }

    @Test func backlogHoldsAtLeast1000AndForgetsOlder() throws {
        var s = RAOPStreamer(ssrc: 1, initialSequence: 60000, initialRTPTime: 0, backlogCapacity: 1000)
        for i in 0..<3000 { _ = try s.packetize(payload: [UInt8(i & 0xFF)], frames: 352) }
        // Last 1000 (60000+2000 … 60000+2999, wrapping) are available; the oldest are gone.
        let newest = UInt16(truncatingIfNeeded: 60000 + 2999)
        let oldestKept = UInt16(truncatingIfNeeded: 60000 + 2000)
        #expect(s.backlog.packet(sequence: newest) != nil)
        #expect(s.backlog.packet(sequence: oldestKept) != nil)
        #expect(s.backlog.packet(sequence: 60000) == nil)
        #expect(s.backlog.capacity >= 1000)
    }

    @Test func syncIsRepeatedAfterFirstTimingReply() throws {
        var s = RAOPStreamer(ssrc: 1, initialSequence: 0, initialRTPTime: 1000, latencyFrames: 88200)
        let first = try RAOPSyncPacket(decoding: s.syncPacket(rtpTime: 100_000, ntpTime: NTPTime(raw: 5)))
        #expect(first.isFirst && first.rtpTime == 100_000 && first.rtpTimeLessLatency == 100_000 - 88200)
        let second = try RAOPSyncPacket(decoding: s.syncPacket(rtpTime: 144_100, ntpTime: NTPTime(raw: 6)))
        #expect(!second.isFirst)
        // A sync went out before any timing reply → resend once right after the first reply.
        let resend = s.timingReplySent()
        #expect(resend)
        let again = s.syncPacket(rtpTime: 150_000, ntpTime: NTPTime(raw: 7))
        #expect(try RAOPSyncPacket(decoding: again).isFirst)
        let resend2 = s.timingReplySent()
        #expect(!resend2)
        // If timing came first, nothing extra is needed.
        var t = RAOPStreamer(ssrc: 1, initialSequence: 0, initialRTPTime: 0)
        let tr = t.timingReplySent()
        #expect(!tr)
        let ts = t.syncPacket(rtpTime: 0, ntpTime: NTPTime(raw: 1))
        #expect(try RAOPSyncPacket(decoding: ts).isFirst)
        // Latency wraps correctly at the bottom of the RTP range.
        let low = t.syncPacket(rtpTime: 10, ntpTime: NTPTime(raw: 1))
        #expect(try RAOPSyncPacket(decoding: low).rtpTimeLessLatency == 10 &- 88200)
    }

    @Test func timingResponder() throws {
        let req = RAOPTimingPacket(isReply: false, sendTime: NTPTime(raw: 0x1122_3344_5566_7788)).bytes
        let reply = try #require(NTPTimingResponder.reply(to: req, receivedAt: NTPTime(raw: 10), now: NTPTime(raw: 11)))
        let p = try RAOPTimingPacket(decoding: reply)
        #expect(p.isReply && p.referenceTime.raw == 0x1122_3344_5566_7788 && p.receiveTime.raw == 10 && p.sendTime.raw == 11)
        #expect(reply[0] == 0x80 && reply[1] == 0xD3)
        #expect(NTPTimingResponder.reply(to: reply, receivedAt: NTPTime(raw: 0), now: NTPTime(raw: 0)) == nil)
        #expect(NTPTimingResponder.reply(to: [0x80], receivedAt: NTPTime(raw: 0), now: NTPTime(raw: 0)) == nil)
    }

    @Test func pacerIsAbsoluteAndDriftFree() {
        let p = RAOPPacer(framesPerPacket: 352, sampleRate: 44100)
        #expect(p.offset(ofPacket: 0) == .zero)
        #expect(p.offset(ofPacket: 1) == .nanoseconds(7_981_859))          // 352/44100 s, floor
        // After an hour of packets the schedule is exact (no accumulated rounding).
        let n: Int64 = 451_000                                            // ≈ 3600 s
        let exactNs = n * 352 * 1_000_000_000 / 44100
        #expect(p.offset(ofPacket: n) == .nanoseconds(exactNs))
        #expect(p.offset(ofPacket: 44100) == .seconds(352))
        #expect(p.frames(at: .seconds(2)) == 88200)
        #expect(p.frames(at: .milliseconds(500)) == 22050)
    }

    @Test func l16PayloadIsByteSwappedAndPadded() {
        let out = RAOPPayload.l16([0x01, 0x02, 0x03, 0x04], paddedToFrames: 2)
        #expect(out == [0x02, 0x01, 0x04, 0x03, 0, 0, 0, 0])
    }
}

extension RAOPStreamer {
    fileprivate func bytesSentCheck(_ p: RAOPAudioPacket...) -> Bool {
        packetsSent == p.count && framesSent == Int64(352 * p.count)
    }
}
