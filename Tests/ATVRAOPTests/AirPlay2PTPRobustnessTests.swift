// Our sender against the virtual HomePod on the PTP routes when the network misbehaves: 5 % of the
// realtime audio datagrams lost (repaired by retransmits, as on the NTP route).
//
// Host loopback: the sender's control connection comes from 127.0.0.91, so the process's PTP
// master binds 127.0.0.91's UDP 319/320 (the connection's local address) and the receiver, at
// 127.0.0.92, follows it there (it follows the RTSP peer). No other suite uses 127.0.0.91–93.
// Serialized: every test binds those PTP ports.
@testable import ATVAirPlayCore
import ATVAudio
import ATVCore
import ATVPTP
@testable import ATVRAOP
import ATVSimulator
import ATVTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

private let senderAddress = "127.0.0.91"
private let receiverAddress = "127.0.0.92"

/// The receiver's PTP view in one line (the play instants counted, not listed).
func brief(_ p: PTPReception) -> String {
    "master \(p.master ?? "-"), state \(p.state ?? "-"), grandmaster \(p.grandmaster.map { "\($0)" } ?? "-"), samples \(p.samples), "
        + "time announces \(p.timeAnnounces), anchors \(p.rateAnchors), packets placed \(p.playInstants.count), "
        + "late \(p.playInstants.filter(\.late).count)"
}

/// Seeded pseudo-random drops: about `permille`/1000 of the audio datagrams (by arrival index).
func seededDrop(permille: Int, seed: UInt64) -> @Sendable (Int, UInt16) -> Bool {
    { index, _ in
        var z = (UInt64(index) &+ seed) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 29)) &* 0xBF58_476D_1CE4_E5B9
        return Int((z ^ (z >> 32)) % 1000) < permille
    }
}

func ptpOptions(buffered: Bool = false) -> RAOPOptions {
    var o = airPlay2Options()
    o.timing = .ptp
    o.buffered = buffered ? .on : .off
    o.localAddress = senderAddress
    return o
}

@Suite(.serialized) struct AirPlay2PTPLossTests {
    static func requireRoot() throws {
        guard getuid() == 0 else { throw ATVError.invalidState("PTP tests bind UDP 319/320: they need root") }
    }

    /// The checks every lossy PTP run shares: the receiver followed our master (the RTSP peer,
    /// our clock as grandmaster, an offset measured), placed every packet on our timeline in
    /// order and on time, repaired every lost packet, and wrote the source bit-exact.
    static func expectRepairedOnOurClock(_ report: RAOPStreamReport, _ pod: HomePodReport, wav: String, packets: Int) throws {
        #expect(report.route.route == .realtimePTP)
        #expect(pod.timingProtocol == "PTP")
        #expect(pod.ptp.master == senderAddress, "\(brief(pod.ptp))")
        #expect(pod.ptp.state == "locked", "\(brief(pod.ptp))")
        #expect(pod.ptp.grandmaster != nil && pod.ptp.offset != nil && pod.ptp.samples > 5, "\(brief(pod.ptp))")
        #expect(pod.ptp.anchorsRejected == 0 && pod.ptp.framesWithoutAnchor == 0, "\(brief(pod.ptp))")
        #expect(report.retransmittedPackets > 0, "\(pod)")
        #expect(pod.packetsRecovered > 0, "\(pod)")
        #expect(pod.decryptFailures == 0)
        // Every frame, no packet left unrecovered (the README's claim, as on the NTP route).
        #expect(pod.unrecoveredPackets == 0, "\(pod)")
        let matched = matchedFraction(source: rampPCM(packets: packets), captured: try wavData(wav))
        #expect(matched == 1.0, "\(pod)")
        // Each source packet placed once on the master's timeline, 352 frames apart, none late
        // (repairs arrive within the latency).
        let instants = pod.ptp.playInstants
        #expect(instants.count >= packets, "\(instants.count) placed")
        for (a, b) in zip(instants, instants.dropFirst()) where b.rtpTime &- a.rtpTime != 352 {
            Issue.record("not consecutive: \(a.rtpTime) then \(b.rtpTime)")
            break
        }
        let late = instants.filter(\.late).count
        #expect(late == 0, "\(late) of \(instants.count) packets arrived after their play instant")
    }

    /// Realtime PTP, 5 % of the audio datagrams dropped by the receiver (seeded): the retransmit
    /// requests on the control port are answered from the backlog as on the NTP route.
    @Test func fivePercentLossIsRepairedOnThePTPRoute() async throws {
        try Self.requireRoot()
        let wav = tempPath("pod.wav")
        var config = VirtualHomePod.Configuration(host: receiverAddress, outputPath: wav)
        config.timing = .ptp
        config.dropAudioPacket = seededDrop(permille: 50, seed: 16)
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let packets = 500
        let report = try await RAOPClient(host: receiverAddress, port: pod.port, options: ptpOptions())
            .stream(RampSource(packets: packets, framesPerPacket: 352))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        print("realtime PTP, 5 % dropped: requested \(podReport.packetsRequested), recovered \(podReport.packetsRecovered), "
              + "unrecovered \(podReport.unrecoveredPackets), retransmitted \(report.retransmittedPackets); \(brief(podReport.ptp))")
        #expect(podReport.packetsRequested >= 15, "\(podReport)")  // ~5 % of 500+ datagrams
        try Self.expectRepairedOnOurClock(report, podReport, wav: wav, packets: packets)
    }
}
