import ATVPTP
import ATVTestSupport
import Testing

/// The follower state machine with injected receive times: byte vectors of docs/PTP-AND-BUFFERED-
/// AUDIO.md Appendix A, and our own master core's traffic (Announce, Sync, Follow_Up, Delay_Resp)
/// fed across a simulated path with a known delay.
@Suite struct PTPFollowerCoreTests {
    static let ours = PTPClockIdentity(0x1122_33FF_FE44_5566)
    static let masterClock = PTPClockIdentity(0x0242_ACFF_FE11_0002)
    static let ms: UInt64 = 1_000_000
    static let t0: UInt64 = 1_000 * 1_000_000_000

    static func follower(delayRequests: Bool = false, master: String? = "192.0.2.1") -> PTPFollowerCore {
        var config = PTPFollowerConfig(clockIdentity: ours)
        config.delayRequests = delayRequests
        return PTPFollowerCore(config: config, master: master)
    }

    /// Appendix A: Announce, then Sync and Follow_Up (sequence 0x0123, precise origin
    /// 1234567.890123456 s). Received at local 1000 s: master − local = 1233567.890123456 s.
    @Test func appendixVectorsLockOnTheGrandmasterAndTheFollowUpTime() throws {
        var f = Self.follower()
        #expect(f.state == .waitingForAnnounce)
        let a = f.received(hex(PTPMessageTests.announceHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        #expect(a.events == [.grandmaster(Self.masterClock, host: "192.0.2.1")])
        #expect(f.state == .waitingForFollowUp)
        _ = f.received(hex(PTPMessageTests.syncHex), from: "192.0.2.1", port: 319, on: .event, at: Self.t0 + Self.ms)
        let r = f.received(hex(PTPMessageTests.followUpHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0 + 2 * Self.ms)
        let expected: Int64 = 1_234_567_890_123_456 - Int64(Self.t0 + Self.ms)  // the Sync's receive time
        #expect(r.events == [.locked(offset: expected)])
        #expect(r.delayRequest == nil)
        #expect(f.state == .locked)
        #expect(f.offset == expected)
        #expect(f.grandmaster == Self.masterClock)
        #expect(f.status.lockedSince == Self.t0 + Self.ms)
        #expect(f.masterTime(atLocal: Self.t0 + Self.ms) == 1_234_567_890_123_456)
        #expect(f.localTime(atMaster: 1_234_567_890_123_456) == Int64(Self.t0 + Self.ms))
    }

    /// nqptp's rule (docs/PTP-AND-BUFFERED-AUDIO.md §5.1 row 5): no Announce, no time.
    @Test func syncAndFollowUpBeforeAnAnnounceAreIgnored() {
        var f = Self.follower()
        let s = f.received(hex(PTPMessageTests.syncHex), from: "192.0.2.1", port: 319, on: .event, at: Self.t0)
        let u = f.received(hex(PTPMessageTests.followUpHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        #expect(s.events == [.ignoredBeforeAnnounce(.sync)])
        #expect(u.events == [.ignoredBeforeAnnounce(.followUp)])
        #expect(f.state == .waitingForAnnounce)
        #expect(f.offset == nil && f.samples == 0)
    }

    /// Only the chosen address, only from port 319 to 319 and 320 to 320; no address: no master.
    @Test func onlyTheChosenMasterFromTheWellKnownPortsIsFollowed() {
        var f = Self.follower()
        let other = f.received(hex(PTPMessageTests.announceHex), from: "192.0.2.9", port: 320, on: .general, at: Self.t0)
        #expect(other.events == [.ignoredSource(host: "192.0.2.9", port: 320)])
        let ephemeral = f.received(hex(PTPMessageTests.announceHex), from: "192.0.2.1", port: 40_000, on: .general, at: Self.t0)
        #expect(ephemeral.events == [.ignoredSource(host: "192.0.2.1", port: 40_000)])
        #expect(f.state == .waitingForAnnounce)
        var none = Self.follower(master: nil)
        #expect(none.state == .noMaster)
        _ = none.received(hex(PTPMessageTests.announceHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        #expect(none.state == .noMaster)
        none.follow("192.0.2.1")
        _ = none.received(hex(PTPMessageTests.announceHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        #expect(none.state == .waitingForFollowUp)
        // Another address starts over.
        none.follow("192.0.2.7")
        #expect(none.state == .waitingForAnnounce && none.grandmaster == nil)
        let garbage = none.received([1, 2, 3], from: "192.0.2.7", port: 320, on: .general, at: Self.t0)
        if case .malformed = garbage.events.first {} else { Issue.record("garbage: \(garbage.events)") }
    }

    /// Our master core → a path of `delay` ns (+ jitter on some Syncs) → the follower. Without
    /// Delay_Req the estimate is the least-delayed sample of the window (offset − delay); with it
    /// the path delay is measured and the estimate is the true offset.
    @Test func followsOurMasterCoreAcrossADelayedPathAndMeasuresTheDelay() throws {
        let timescale: Int64 = 1_700_000_037 * 1_000_000_000
        for delayRequests in [false, true] {
            var config = PTPMasterConfig(clockIdentity: Self.masterClock)
            config.timescaleOffset = timescale
            config.multicastWhenNoPeers = false
            var master = PTPMasterCore(config: config)
            var f = Self.follower(delayRequests: delayRequests)
            let delay: UInt64 = 80_000
            var now = Self.t0
            var out = master.start(now: now)
            out = master.addPeer("192.0.2.2", now: now)
            var requests = 0
            for step in 0..<40 {
                for datagram in out.send {
                    // Every third Sync is queued 300 µs longer.
                    let extra: UInt64 = (datagram.syncToken != nil && step % 3 == 0) ? 300_000 : 0
                    let egress = now + 10_000
                    let arrival = egress + delay + extra
                    let r = f.received(datagram.bytes, from: "192.0.2.1", port: datagram.socket.port, on: datagram.socket, at: arrival)
                    if let token = datagram.syncToken {
                        let follow = master.syncSent(token, at: egress)
                        let rf = f.received(follow.bytes, from: "192.0.2.1", port: 320, on: .general, at: egress + delay + 5_000)
                        if let request = rf.delayRequest {
                            requests += 1
                            #expect(request.host == "192.0.2.1")
                            let sent = egress + 200_000
                            f.delayRequestSent(request.sequenceId, at: sent)
                            let answer = master.received(request.bytes, from: "192.0.2.2", port: 319, on: .event, at: sent + delay)
                            for resp in answer.send {
                                _ = f.received(resp.bytes, from: "192.0.2.1", port: 320, on: .general, at: sent + 2 * delay)
                            }
                        }
                    }
                    #expect(r.delayRequest == nil)
                }
                now += 125 * Self.ms
                out = master.tick(now: now)
            }
            #expect(f.state == .locked)
            #expect(f.grandmaster == Self.masterClock)
            #expect(f.samples >= 35)
            if delayRequests {
                #expect(requests >= 35)
                #expect(f.pathDelay == Int64(delay))
                #expect(f.offset == timescale)
            } else {
                #expect(requests == 0)
                #expect(f.pathDelay == nil)
                #expect(f.offset == timescale - Int64(delay))
            }
        }
    }

    /// A new grandmaster in the Announce is a new timeline: the samples start over.
    @Test func aNewGrandmasterStartsOver() throws {
        var f = Self.follower()
        _ = f.received(hex(PTPMessageTests.announceHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        _ = f.received(hex(PTPMessageTests.followUpHex), from: "192.0.2.1", port: 320, on: .general, at: Self.t0)
        #expect(f.state == .locked)
        var other = try PTPMessage(parsing: hex(PTPMessageTests.announceHex))
        guard case .announce(var body) = other.body else { Issue.record("not an Announce"); return }
        body.grandmasterIdentity = PTPClockIdentity(0xAABB_CCFF_FEDD_EEFF)
        other.body = .announce(body)
        let r = f.received(other.encoded(), from: "192.0.2.1", port: 320, on: .general, at: Self.t0 + Self.ms)
        #expect(r.events == [.grandmaster(PTPClockIdentity(0xAABB_CCFF_FEDD_EEFF), host: "192.0.2.1")])
        #expect(f.state == .waitingForFollowUp && f.offset == nil && f.samples == 0)
    }
}
