import ATVPTP
import ATVTestSupport
import NIOCore
import Testing

/// The master state machine with an injected monotonic clock: cadence, two-step Follow_Up,
/// Delay_Resp, unicast grants, ignored Announces, peers. No sockets, no waiting.
@Suite struct PTPMasterCoreTests {
    static let clock = PTPClockIdentity(0x0242_ACFF_FE11_0002)
    static let follower = PTPPortIdentity(clock: PTPClockIdentity(0x1122_33FF_FE44_5566), port: 1)
    static let ms: UInt64 = 1_000_000
    static let t0: UInt64 = 1_000 * 1_000_000_000  // an uptime of 1000 s

    static func core(offset: Int64 = 0) -> PTPMasterCore {
        var config = PTPMasterConfig(clockIdentity: clock)
        config.timescaleOffset = offset
        return PTPMasterCore(config: config)
    }

    static func messages(_ out: PTPMasterOutput) throws -> [PTPMessage] {
        try out.send.map { try PTPMessage(parsing: $0.bytes) }
    }

    @Test func startSendsAnAnnounceASignalingAndASyncToTheMulticastGroup() throws {
        var core = Self.core()
        let out = core.start(now: Self.t0)
        let m = try Self.messages(out)
        #expect(m.map(\.type) == [.announce, .signaling, .sync])
        #expect(out.send.map(\.socket) == [.general, .general, .event])
        #expect(out.send.map(\.destination) == [.multicast, .multicast, .multicast])
        #expect(out.wakeAt == Self.t0 + 125 * Self.ms)
        for message in m {
            #expect(message.header.majorSdoId == 1)
            #expect(message.header.domain == 0)
            #expect(message.header.source == PTPPortIdentity(clock: Self.clock, port: 0x8005))
            #expect(!message.header.flags.contains(.unicast), "multicast messages carry no unicastFlag")
        }
        guard case .announce(let a) = m[0].body else { Issue.record("no Announce"); return }
        #expect(a.grandmasterIdentity == Self.clock)
        #expect(a.priority1 == 128 && a.clockClass == 6 && a.clockAccuracy == 0x21 && a.offsetScaledLogVariance == 0x436A)
        #expect(a.priority2 == 128 && a.stepsRemoved == 0 && a.timeSource == 0x20)
        #expect(m[0].tlvs == [.pathTrace(Self.clock)])
        #expect(m[2].header.flags.contains(.twoStep))
        #expect(m[2].body == .sync(origin: .zero))
    }

    @Test func followUpCarriesTheSyncEgressTimeOnTheTimescale() throws {
        // Timescale = monotonic + offset (the shell sets TAI at start).
        let offset: Int64 = 1_700_000_037 * 1_000_000_000
        var core = Self.core(offset: offset)
        let out = core.start(now: Self.t0)
        let sync = try #require(out.send.first { $0.syncToken != nil })
        let egress = Self.t0 + 42_000
        let follow = core.syncSent(try #require(sync.syncToken), at: egress)
        #expect(follow.socket == .general)
        #expect(follow.destination == .multicast)
        let m = try PTPMessage(parsing: follow.bytes)
        #expect(m.type == .followUp)
        #expect(m.header.sequenceId == (try PTPMessage(parsing: sync.bytes)).header.sequenceId)
        #expect(m.body == .followUp(preciseOrigin: PTPTimestamp(nanoseconds: UInt64(Int64(egress) + offset))))
        #expect(m.tlvs == [.followUpInformation, .appleClockIdentity(Self.clock)])
        #expect(follow.bytes.count == 96)
        #expect(core.ptpTime(egress) == PTPTimestamp(nanoseconds: UInt64(Int64(egress) + offset)))
    }

    @Test func tenSecondsGiveEightySyncsAndTenAnnouncesInSequence() throws {
        var core = Self.core()
        var out = core.start(now: Self.t0)
        var all = try Self.messages(out)
        let end = Self.t0 + 10_000 * Self.ms
        while out.wakeAt < end {
            // The timer fires a little late, as a loaded machine's does.
            out = core.tick(now: out.wakeAt + 3 * Self.ms)
            all += try Self.messages(out)
        }
        let syncs = all.filter { $0.type == .sync }, announces = all.filter { $0.type == .announce }
        let signalings = all.filter { $0.type == .signaling }
        #expect(syncs.count == 80)
        #expect(announces.count == 10)
        #expect(signalings.count == 10, "Apple's Signaling once a second")
        #expect(syncs.map(\.header.sequenceId) == (0..<80).map(UInt16.init))
        #expect(announces.map(\.header.sequenceId) == (0..<10).map(UInt16.init))
        #expect(signalings.map(\.header.sequenceId) == (0..<10).map(UInt16.init))
        #expect(Set(signalings.map(\.header.logMessageInterval)) == [-128])
        #expect(Set(syncs.map(\.header.logMessageInterval)) == [-3])
        #expect(Set(announces.map(\.header.logMessageInterval)) == [0])
    }

    @Test func aStalledProcessSkipsMissedSlotsInsteadOfBursting() throws {
        var core = Self.core()
        _ = core.start(now: Self.t0)
        let out = core.tick(now: Self.t0 + 5_000 * Self.ms)
        let m = try Self.messages(out)
        #expect(m.filter { $0.type == .sync }.count == 1)
        #expect(m.filter { $0.type == .announce }.count == 1)
        #expect(m.filter { $0.type == .signaling }.count == 1)
        #expect(out.wakeAt > Self.t0 + 5_000 * Self.ms && out.wakeAt <= Self.t0 + 5_125 * Self.ms)
        // Nothing is due before wakeAt.
        #expect(core.tick(now: out.wakeAt - 1).send.isEmpty)
    }

    @Test func delayRequestIsAnsweredFromTheGeneralPortEchoingSequenceAndRequester() throws {
        var core = Self.core(offset: 5_000_000_000)
        _ = core.start(now: Self.t0)
        let req = PTPMessage(header: PTPHeader(type: .delayReq, source: Self.follower, sequenceId: 0xBEEF, flags: [],
                                               logMessageInterval: 0x7F, correction: 0x10000),
                             body: .delayReq(origin: .zero)).encoded()
        let rx = Self.t0 + 7 * Self.ms
        let out = core.received(req, from: "192.0.2.2", port: 319, on: .event, at: rx)
        #expect(out.send.count == 1)
        let reply = try #require(out.send.first)
        #expect(reply.socket == .general)
        #expect(reply.destination == .unicast(host: "192.0.2.2", port: 320))
        let m = try PTPMessage(parsing: reply.bytes)
        #expect(m.type == .delayResp)
        #expect(m.header.sequenceId == 0xBEEF)
        #expect(m.header.correction == 0x10000)
        #expect(m.header.flags == [.twoStep, .unicast, .ptpTimescale])
        #expect(m.body == .delayResp(receive: PTPTimestamp(nanoseconds: rx + 5_000_000_000), requesting: Self.follower))
        #expect(out.events == [.followerSeen(host: "192.0.2.2", port: Self.follower)])
        // Also on the general socket; a second request from the same host is not news.
        let again = core.received(req, from: "192.0.2.2", port: 320, on: .general, at: rx + Self.ms)
        #expect(again.send.map(\.destination) == [.unicast(host: "192.0.2.2", port: 320)])
        #expect(again.events.isEmpty)
        // A follower on an ephemeral port gets the answer there.
        let ephemeral = core.received(req, from: "192.0.2.3", port: 40_000, on: .event, at: rx)
        #expect(ephemeral.send.map(\.destination) == [.unicast(host: "192.0.2.3", port: 40_000)])
        #expect(core.followers == ["192.0.2.2", "192.0.2.3"])
    }

    /// nqptp's "awakening" Announce (priority1 one better than ours, its own EUI-64 as grandmaster;
    /// docs/PTP-AND-BUFFERED-AUDIO.md §2.9) changes nothing: no answer, and we keep announcing
    /// ourselves.
    @Test func betterAnnouncesAreIgnored() throws {
        var core = Self.core()
        let first = core.start(now: Self.t0)
        let nq = PTPClockIdentity(0xAABB_CCFF_FEDD_EEFF)
        var header = PTPHeader(type: .announce, source: PTPPortIdentity(clock: nq, port: 32776), sequenceId: 1,
                               flags: [.unicast, .ptpTimescale], logMessageInterval: -2)
        header.controlField = 5
        let awakening = PTPMessage(header: header, body: .announce(PTPAnnounce(
            priority1: 127, clockClass: 0xF8, clockAccuracy: 0xFE, offsetScaledLogVariance: 0x436A, priority2: 128,
            grandmasterIdentity: nq, timeSource: 0xA0, currentUtcOffset: 37))).encoded()
        let out = core.received(awakening, from: "192.0.2.9", port: 320, on: .general, at: Self.t0 + Self.ms)
        #expect(out.send.isEmpty)
        #expect(out.events == [.announceIgnored(host: "192.0.2.9", grandmaster: nq, priority1: 127)])
        #expect(out.wakeAt == first.wakeAt)
        let later = try Self.messages(core.tick(now: Self.t0 + 1_000 * Self.ms))
        guard case .announce(let a)? = later.first(where: { $0.type == .announce })?.body else { Issue.record("no Announce"); return }
        #expect(a.grandmasterIdentity == Self.clock)
    }

    @Test func unicastRequestsAreGrantedAndTheRequesterGetsUnicastUntilTheGrantEnds() throws {
        var core = Self.core()
        _ = core.start(now: Self.t0)
        let requests = [PTPUnicastTransmission(messageType: 0xB, logInterMessagePeriod: 0, duration: 60),
                        PTPUnicastTransmission(messageType: 0x0, logInterMessagePeriod: -3, duration: 60),
                        PTPUnicastTransmission(messageType: 0x9, logInterMessagePeriod: -3, duration: 0)]
        let signaling = PTPMessage(header: PTPHeader(type: .signaling, source: Self.follower, sequenceId: 77, flags: [.unicast],
                                                     logMessageInterval: 0x7F),
                                   body: .signaling(target: .all), tlvs: requests.map(\.requestTLV)).encoded()
        let now = Self.t0 + 10 * Self.ms
        let out = core.received(signaling, from: "192.0.2.2", port: 320, on: .general, at: now)
        let m = try Self.messages(out)
        // The grant, then what a new unicast destination gets at once: Announce, Sync, Signaling.
        #expect(m.map(\.type) == [.signaling, .announce, .sync, .signaling])
        #expect(m[3].unicastGrants.isEmpty && m[3].tlvs == PTPTLV.applePeriodicSignaling)
        #expect(out.send.map(\.destination) == [.unicast(host: "192.0.2.2", port: 320), .unicast(host: "192.0.2.2", port: 320),
                                                .unicast(host: "192.0.2.2", port: 319), .unicast(host: "192.0.2.2", port: 320)])
        #expect(m[0].header.sequenceId == 77)
        #expect(m[0].header.logMessageInterval == 0x7F)
        #expect(m[0].header.flags == [.unicast])
        #expect(m[0].body == .signaling(target: Self.follower))
        #expect(m[0].unicastGrants == [
            PTPUnicastTransmission(messageType: 0xB, logInterMessagePeriod: 0, duration: 60, renewalInvited: true),
            PTPUnicastTransmission(messageType: 0x0, logInterMessagePeriod: -3, duration: 60, renewalInvited: true),
            PTPUnicastTransmission(messageType: 0x9, logInterMessagePeriod: -3, duration: 300, renewalInvited: true),
        ])
        #expect(out.events == [.granted(host: "192.0.2.2", messageTypes: [0xB, 0, 9], duration: 300)])
        #expect(core.destinations == [.unicast(host: "192.0.2.2", port: 0)])
        let next = core.tick(now: Self.t0 + 125 * Self.ms)
        #expect(next.send.map(\.destination) == [.unicast(host: "192.0.2.2", port: 319)])
        // After the grant (300 s) the master falls back to multicast.
        let after = core.tick(now: now + 301_000 * Self.ms)
        #expect(Set(after.send.map(\.destination)) == [.multicast])
    }

    /// A new peer gets an Announce and a Sync at once (its Follow_Up follows the Sync's egress), so
    /// a follower that locks on its first Follow_Up is locked without waiting for the next slot.
    @Test func peersGetUnicastAndAnImmediateAnnounceAndSyncAndAreKeptWhileSilent() throws {
        var core = Self.core()
        _ = core.start(now: Self.t0)
        let added = core.addPeer("192.0.2.5", now: Self.t0 + Self.ms)
        let m = try Self.messages(added)
        #expect(m.map(\.type) == [.announce, .sync, .signaling])
        #expect(added.send.map(\.destination) == [.unicast(host: "192.0.2.5", port: 320), .unicast(host: "192.0.2.5", port: 319),
                                                  .unicast(host: "192.0.2.5", port: 320)])
        #expect(m[0].header.flags == [.unicast, .ptpTimescale])
        #expect(m[1].header.flags == [.twoStep, .unicast, .ptpTimescale])
        #expect(m[2].header.flags == [.unicast, .ptpTimescale])
        let token = try #require(added.send[1].syncToken)
        #expect(core.syncSent(token, at: Self.t0 + Self.ms).destination == .unicast(host: "192.0.2.5", port: 320))
        _ = core.addPeer("2001:db8::5", now: Self.t0 + 2 * Self.ms)
        #expect(core.addPeer("192.0.2.5", now: Self.t0 + 3 * Self.ms).send.isEmpty)
        // An hour later, with nothing ever heard from them, both still get every Sync.
        var out = core.tick(now: Self.t0 + 3_600_000 * Self.ms)
        #expect(out.send.filter { $0.syncToken != nil }.map(\.destination) ==
                [.unicast(host: "192.0.2.5", port: 319), .unicast(host: "2001:db8::5", port: 319)])
        let follow = core.syncSent(try #require(out.send.first { $0.syncToken != nil }?.syncToken), at: Self.t0)
        #expect(follow.destination == .unicast(host: "192.0.2.5", port: 320))
        #expect(try PTPMessage(parsing: follow.bytes).header.flags == [.unicast, .ptpTimescale])
        core.removePeer("192.0.2.5")
        core.removePeer("2001:db8::5")
        out = core.tick(now: out.wakeAt)
        #expect(Set(out.send.map(\.destination)) == [.multicast])
    }

    /// With the parameters of docs/PTP-AND-BUFFERED-AUDIO.md Appendix A, the master's unicast
    /// Announce is that appendix's byte for byte (but for the sequenceId, which starts at 0).
    @Test func unicastAnnounceIsTheReferenceAnnounce() throws {
        var config = PTPMasterConfig(clockIdentity: Self.clock)
        config.currentUtcOffset = 0
        var core = PTPMasterCore(config: config)
        _ = core.addPeer("192.0.2.5", now: Self.t0)
        let out = core.start(now: Self.t0)
        var expected = hex(PTPMessageTests.announceHex)
        expected[30] = 0
        expected[31] = 0
        #expect(out.send.first.map { hexString($0.bytes) } == hexString(expected))
        var sync = hex(PTPMessageTests.syncHex)
        sync[30] = 0
        sync[31] = 0
        #expect(out.send.last.map { hexString($0.bytes) } == hexString(sync))
    }

    @Test func garbageOurOwnEchoAndOtherDomainsAreIgnored() throws {
        var core = Self.core()
        let start = core.start(now: Self.t0)
        var rng = SplitMix64(seed: TestSeed.value(default: 0x5054_5032))
        for _ in 0..<2_000 {
            let bytes = randomBytes(Int.random(in: 0...100, using: &rng), using: &rng)
            let out = core.received(bytes, from: "192.0.2.2", port: 319, on: .event, at: Self.t0)
            // Whatever it answers (a Delay_Resp, a grant) is a well-formed message.
            #expect(out.send.allSatisfy { (try? PTPMessage(parsing: $0.bytes)) != nil })
        }
        // Our own multicast Sync looped back: no answer.
        for out in start.send {
            #expect(core.received(out.bytes, from: "192.0.2.1", port: out.socket.port, on: out.socket, at: Self.t0).send.isEmpty)
        }
        var other = PTPHeader(type: .delayReq, source: Self.follower, sequenceId: 1, flags: [], logMessageInterval: 0x7F)
        other.domain = 4
        let req = PTPMessage(header: other, body: .delayReq(origin: .zero)).encoded()
        #expect(core.received(req, from: "192.0.2.2", port: 319, on: .event, at: Self.t0).send.isEmpty)
        let bad = core.received([0x10, 0x02], from: "192.0.2.2", port: 319, on: .event, at: Self.t0)
        #expect(bad.events == [.malformed(host: "192.0.2.2", .truncated(needed: 34, have: 2))])
    }

    /// docs/PTP-AND-BUFFERED-AUDIO.md §2.4: iOS's periodic Signaling, 106 bytes: flags 0x0408,
    /// controlField 5, logMessageInterval −128, targetPortIdentity zero, then Apple's two
    /// ORGANIZATION_EXTENSION TLVs (00-0D-93 subtype 1, 22 bytes; subtype 5, 32 bytes).
    static let signalingHex = """
        1c 02 00 6a 00 00 04 08 00 00 00 00 00 00 00 00
        00 00 00 00 02 42 ac ff fe 11 00 02 80 05 00 00
        05 80 00 00 00 00 00 00 00 00 00 00 00 03 00 16
        00 0d 93 00 00 01 00 00 03 01 00 00 00 00 00 00
        00 00 00 00 00 00 00 03 00 20 00 0d 93 00 00 05
        00 00 03 01 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00
        """

    @Test func aPeersSignalingIsTheReferenceSignalingEverySecond() throws {
        var core = Self.core()
        _ = core.addPeer("192.0.2.5", now: Self.t0)
        let out = core.start(now: Self.t0)
        let signaling = try #require(out.send.first { (try? PTPMessage(parsing: $0.bytes))?.type == .signaling })
        #expect(signaling.socket == .general)
        #expect(signaling.destination == .unicast(host: "192.0.2.5", port: 320))
        #expect(signaling.bytes.count == 106)
        #expect(hexString(signaling.bytes) == hexString(hex(Self.signalingHex)))
        // The next one a second later, the sequence advanced; none in between.
        var next = core.tick(now: Self.t0 + 500 * Self.ms)
        #expect(try Self.messages(next).allSatisfy { $0.type == .sync })
        next = core.tick(now: Self.t0 + 1_000 * Self.ms)
        let second = try #require(try Self.messages(next).first { $0.type == .signaling })
        #expect(second.header.sequenceId == 1)
        #expect(second.tlvs == PTPTLV.applePeriodicSignaling)
        // Off when configured so (the timer then has only Announce and Sync to do).
        var config = PTPMasterConfig(clockIdentity: Self.clock)
        config.appleSignaling = false
        var quiet = PTPMasterCore(config: config)
        #expect(try Self.messages(quiet.start(now: Self.t0)).map(\.type) == [.announce, .sync])
        #expect(try Self.messages(quiet.addPeer("192.0.2.5", now: Self.t0)).map(\.type) == [.announce, .sync])
    }

    /// A master serving both families sends to both PTP groups while it has no peer (no
    /// unicastFlag there), and IPv6 peers — link-local ones with their interface — by unicast.
    @Test func bothFamiliesGroupsAndIPv6PeersIncludingLinkLocal() throws {
        var config = PTPMasterConfig(clockIdentity: Self.clock)
        config.multicastGroups = [PTPFamily.ipv4.multicast, PTPFamily.ipv6.multicast]
        var core = PTPMasterCore(config: config)
        let out = core.start(now: Self.t0)
        #expect(out.send.map(\.destination) == [.multicast, .multicastIPv6, .multicast, .multicastIPv6, .multicast, .multicastIPv6])
        #expect(try Self.messages(out).allSatisfy { !$0.header.flags.contains(.unicast) })
        let sync = try #require(out.send.last)
        #expect(sync.destination == .multicastIPv6 && sync.socket == .event)
        #expect(core.syncSent(try #require(sync.syncToken), at: Self.t0).destination == .multicastIPv6)
        #expect(PTPDestination.multicastIPv6.description == "ff0e::181")
        #expect(PTPDestination.multicastIPv6.family == .ipv6 && PTPDestination.multicast.family == .ipv4)

        _ = core.addPeer("fe80::2%ptpm", now: Self.t0 + Self.ms)
        let next = core.tick(now: Self.t0 + 125 * Self.ms)
        #expect(next.send.map(\.destination) == [.unicast(host: "fe80::2%ptpm", port: 319)])
        #expect(PTPDestination.unicast(host: "fe80::2%ptpm", port: 319).family == .ipv6)
        #expect(PTPDestination.unicast(host: "fe80::2%ptpm", port: 319).description == "[fe80::2%ptpm]:319")
        let follow = core.syncSent(try #require(next.send.first?.syncToken), at: Self.t0 + 125 * Self.ms)
        #expect(follow.destination == .unicast(host: "fe80::2%ptpm", port: 320))
        #expect(try PTPMessage(parsing: follow.bytes).header.flags == [.unicast, .ptpTimescale])
    }

    /// A Delay_Req sent to the group (linuxptp's default end-to-end mode) reaches the core like a
    /// unicast one, from the follower's address: the answer goes by unicast to that host's 320,
    /// with the request's sequenceId, the kernel receive time and the requester's port identity.
    /// An IPv6 link-local requester keeps its interface.
    @Test func delayRequestsFromTheGroupAndFromIPv6AreAnsweredByUnicast() throws {
        var core = Self.core(offset: 37_000_000_000)
        _ = core.start(now: Self.t0)
        var header = PTPHeader(type: .delayReq, source: Self.follower, sequenceId: 9, flags: [], logMessageInterval: 0x7F)
        header.majorSdoId = 1
        let req = PTPMessage(header: header, body: .delayReq(origin: .zero)).encoded()
        for (host, rx) in [("192.0.2.2", Self.t0 + 3 * Self.ms), ("fe80::2%ptpm", Self.t0 + 4 * Self.ms)] {
            let out = core.received(req, from: host, port: 319, on: .event, at: rx)
            #expect(out.send.map(\.destination) == [.unicast(host: host, port: 320)])
            #expect(out.send.map(\.socket) == [.general])
            let m = try PTPMessage(parsing: try #require(out.send.first).bytes)
            #expect(m.header.sequenceId == 9)
            #expect(m.header.flags == [.twoStep, .unicast, .ptpTimescale])
            #expect(m.body == .delayResp(receive: PTPTimestamp(nanoseconds: rx + 37_000_000_000), requesting: Self.follower))
            #expect(out.events == [.followerSeen(host: host, port: Self.follower)])
        }
    }

    /// Pdelay_Req is not answered: no receiver the reference describes sends one (nqptp sends
    /// none, goplay2 and Sonos measure end to end with Delay_Req); docs/PTP-AND-BUFFERED-AUDIO.md §2.4.
    @Test func peerDelayRequestsAreNotAnswered() throws {
        var core = Self.core()
        _ = core.start(now: Self.t0)
        let req = PTPMessage(header: PTPHeader(type: .pdelayReq, source: Self.follower, sequenceId: 3, flags: [],
                                               logMessageInterval: 0x7F),
                             body: .pdelayReq(origin: .zero)).encoded()
        let out = core.received(req, from: "192.0.2.2", port: 319, on: .event, at: Self.t0)
        #expect(out.send.isEmpty && out.events.isEmpty)
    }
}

/// The socket shell's address rules (no socket opened): which addresses are link-local, how a
/// datagram's source is named (a link-local one with its interface, so the reply can go back),
/// and when two spellings are the same bind address.
@Suite struct PTPMasterAddressTests {
    @Test func linkLocalAddressesAndTheirInterface() throws {
        #expect(PTPKernelSocket.isLinkLocal("fe80::1"))
        #expect(PTPKernelSocket.isLinkLocal("fe80::1%lo"))
        #expect(PTPKernelSocket.isLinkLocal("febf::1"))
        #expect(!PTPKernelSocket.isLinkLocal("fec0::1"))
        #expect(!PTPKernelSocket.isLinkLocal("2001:db8::1"))
        #expect(!PTPKernelSocket.isLinkLocal("192.0.2.1"))
        #expect(!PTPKernelSocket.isLinkLocal("ff0e::181"))

        #expect(PTPKernelSocket.host(try SocketAddress(ipAddress: "192.0.2.2", port: 319)) == "192.0.2.2")
        #expect(PTPKernelSocket.host(try SocketAddress(ipAddress: "2001:db8::2", port: 319)) == "2001:db8::2")
        // lo exists in every namespace: a link-local source on it is named with it.
        #expect(PTPKernelSocket.host(try SocketAddress(ipAddress: "fe80::2%lo", port: 320)) == "fe80::2%lo")
        #expect(PTPKernelSocket.host(try SocketAddress(ipAddress: "fe80::2", port: 320)) == "fe80::2")

        #expect(PTPSocketSet.sameAddress("fe80::1%eth0", "fe80::1"))
        #expect(PTPSocketSet.sameAddress("192.0.2.1", "192.0.2.1"))
        #expect(!PTPSocketSet.sameAddress("fe80::1%eth0", "fe80::1%eth1"))
        #expect(!PTPSocketSet.sameAddress("192.0.2.1", "192.0.2.2"))
        #expect(PTPFamily(host: "fe80::1%eth0") == .ipv6 && PTPFamily(host: "0.0.0.0") == .ipv4)
    }
}
