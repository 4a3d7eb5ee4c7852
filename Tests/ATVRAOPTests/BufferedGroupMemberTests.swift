// The buffered (type 103) PTP sender as a member of a group stream: its packets come from an
// `EncodedPayloadSource` (here a `RAOPPayloadPipe` filled with ALAC packets beforehand, as the
// group's shared encoded stream would give them) and its first anchor names the instant the group
// chose for its first packet (`GroupMemberSchedule.firstPlayInstant`, on the PTP master's
// timeline), not "now + a start delay". Played by the virtual HomePod, which follows our PTP
// master and records, per packet, the instant it plays it by the anchor on the master's timeline
// and on its own monotonic clock through its follower's offset.
//
// Host loopback: the sender connects from 127.0.0.111 (the process's PTP master binds UDP 319/320
// there), the HomePod and its follower use 127.0.0.112; no other suite uses 127.0.0.111–112.
// Serialized: every test binds those PTP ports.
@testable import ATVAirPlayCore
import ATVAudio
import ATVCore
@testable import ATVRAOP
import ATVSimulator
import NIOCore
import Testing

@Suite(.serialized) struct BufferedGroupMemberTests {
    static let sender = "127.0.0.111"
    static let receiver = "127.0.0.112"

    static func options() -> RAOPOptions {
        var o = airPlay2Options()
        o.timing = .ptp
        o.buffered = .on
        o.localAddress = sender
        o.initialRTPTime = 1_000_000
        o.initialSequence = 100
        return o
    }

    /// A pipe holding `packets` ALAC packets of `NoiseSource` and its end, as a group's cursor gives them.
    static func filledPipe(packets: Int) throws -> RAOPPayloadPipe {
        let pipe = RAOPPayloadPipe(highWater: packets + 8, lowWater: 1)
        let encoder = try ALACEncoder(framesPerPacket: 352)
        for i in 0..<packets {
            let payload = try encoder.encode(PCMPacket(bytes: NoiseSource.pcm(packet: i), frames: 352))
            pipe.offer(.packet(payload: payload, sourceFrames: 352, silence: false))
        }
        pipe.offer(.end)
        return pipe
    }

    struct Run {
        var report: RAOPStreamReport
        var pod: HomePodReport
        var timeline: PTPTimeline
        var schedule: GroupMemberSchedule
        var wav: String
    }

    /// Opens the route, then runs the member with its first play instant `lead` after the call.
    static func run(packets: Int, lead: Duration) async throws -> Run {
        try AirPlay2PTPLossTests.requireRoot()
        let wav = tempPath("member.wav")
        var config = VirtualHomePod.Configuration(host: receiver, outputPath: wav)
        config.timing = .ptp
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let options = Self.options()
        let client = RAOPClient(host: receiver, port: pod.port, options: options)
        let route = try await client.openRoute(options)
        let session = try #require(route as? AirPlay2AudioSession)
        #expect(session.audioRoute.route == .bufferedPTP)
        let timeline = try #require(session.ptpTimeline)
        let schedule = GroupMemberSchedule(firstPacket: 0, firstPlayInstant: .now() + .nanoseconds(Int64(lead.components.seconds) * 1_000_000_000
                                                                                                    + lead.components.attoseconds / 1_000_000_000))
        let report = try await client.runBufferedGroupMember(session: session, source: try filledPipe(packets: packets),
                                                             schedule: schedule, options: options)
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        return Run(report: report, pod: podReport, timeline: timeline, schedule: schedule, wav: wav)
    }

    /// Packet i of the member (RTP `initialRTPTime + 352 i`) plays at firstPlayInstant + i·352/44100 s.
    static func scheduled(_ run: Run, packet i: Int) -> Int64 {
        Int64(run.timeline.networkTime(at: run.schedule.firstPlayInstant)) + Int64(i) * 352 * 1_000_000_000 / 44_100
    }

    /// The schedule 2.5 s ahead (beyond `bufferedMinimumLead` for a HomePod): one anchor naming the
    /// first packet's RTP time at the master time of firstPlayInstant; the HomePod plays that
    /// packet's first frame then (by the anchor, and by its own clock through its PTP follower
    /// within 1 ms), every packet in order on that line, none late, the WAV bit-exact.
    @Test func firstFramePlaysAtTheScheduledInstant() async throws {
        let packets = 500
        #expect(RAOPClient.bufferedMinimumLead(for: AirPlayReceiverTraits()) < .milliseconds(2500))
        let run = try await Self.run(packets: packets, lead: .milliseconds(2500))
        let ptp = run.pod.ptp
        print("buffered group member, 2.5 s lead: \(brief(ptp)); warnings \(run.report.warnings)")
        #expect(run.report.route.route == .bufferedPTP)
        #expect(ptp.master == Self.sender, "\(brief(ptp))")
        #expect(ptp.rateAnchors == ["play"], "\(ptp.rateAnchors)")
        #expect(ptp.anchorFrame == 1_000_000)
        let target = Self.scheduled(run, packet: 0)
        #expect(ptp.anchorTime.map { abs($0 - target) <= 1 } == true, "anchor \(String(describing: ptp.anchorTime)), scheduled \(target)")
        let played = ptp.playInstants
        #expect(played.count == packets, "\(played.count) of \(packets) played; \(brief(ptp))")
        let first = try #require(played.first)
        #expect(first.rtpTime == 1_000_000)
        // By the master's timeline (the anchor) and by the HomePod's clock (its follower's offset).
        #expect(abs(first.masterTime - target) <= 1_000_000, "first frame at \(first.masterTime), scheduled \(target)")
        let local = try #require(first.localTime)
        let scheduledLocal = Int64(run.schedule.firstPlayInstant.uptimeNanoseconds)
        let offBy = local - scheduledLocal
        #expect(abs(offBy) <= 1_000_000, "first frame at \(local) by the HomePod's clock, scheduled \(scheduledLocal): \(offBy / 1000) µs off")
        for (i, p) in played.enumerated() {
            if p.rtpTime != 1_000_000 &+ UInt32(i * 352) { Issue.record("packet \(i): RTP \(p.rtpTime)"); break }
            if abs(p.masterTime - Self.scheduled(run, packet: i)) > 1 { Issue.record("packet \(i) at \(p.masterTime), scheduled \(Self.scheduled(run, packet: i))"); break }
        }
        #expect(played.filter(\.late).isEmpty, "\(played.filter(\.late).count) late")
        #expect(ptp.packetsBeforeAnchor == 0 && ptp.packetsNotPlayed == 0 && ptp.packetsFlushed == 0, "\(brief(ptp))")
        #expect(run.report.warnings.isEmpty, "\(run.report.warnings)")
        #expect(run.report.packetsSent == packets)
        #expect(try wavData(run.wav) == (0..<packets).flatMap { NoiseSource.pcm(packet: $0) })
    }

    /// A first play instant closer than the receiver allows (0.1 s: less than the anchor's
    /// 0.2 s start delay once set up): the member still keeps the group's line, from the first
    /// packet whose instant on it is far enough; the earlier packets come before the anchor and
    /// are not played; the report says it joined late.
    @Test func tooCloseAnInstantJoinsLaterOnTheSameLine() async throws {
        let packets = 400
        let run = try await Self.run(packets: packets, lead: .milliseconds(100))
        let ptp = run.pod.ptp
        print("buffered group member, 0.1 s lead: \(brief(ptp)); warnings \(run.report.warnings)")
        #expect(ptp.rateAnchors == ["play"], "\(ptp.rateAnchors)")
        let anchorFrame = try #require(ptp.anchorFrame)
        let skipped = Int(anchorFrame &- 1_000_000) / 352
        #expect(skipped > 0 && Int(anchorFrame &- 1_000_000) % 352 == 0, "anchor frame \(anchorFrame)")
        #expect(ptp.anchorTime.map { abs($0 - Self.scheduled(run, packet: skipped)) <= 1 } == true)
        let played = ptp.playInstants
        #expect(played.count == packets - skipped, "\(played.count) played, \(skipped) skipped; \(brief(ptp))")
        for (i, p) in played.enumerated() where abs(p.masterTime - Self.scheduled(run, packet: skipped + i)) > 1 {
            Issue.record("packet \(skipped + i) at \(p.masterTime), scheduled \(Self.scheduled(run, packet: skipped + i))")
            break
        }
        #expect(played.filter(\.late).isEmpty)
        #expect(run.report.warnings.contains { $0.contains("after the scheduled start") }, "\(run.report.warnings)")
        #expect(try wavData(run.wav) == (skipped..<packets).flatMap { NoiseSource.pcm(packet: $0) })
    }
}
