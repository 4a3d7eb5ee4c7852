// Our sender against the virtual HomePod on the PTP routes when the network misbehaves: 5 % of the
// realtime audio datagrams lost, in the receiver or by scripts/peers/udp-loss-relay.py (repaired
// by retransmits, as on the NTP route), the buffered
// data connection stalled, and a receiver that stops reading it for good.
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
        + "late \(p.playInstants.filter(\.late).count), stalls \(p.dataStalls) (\(p.dataStalledNanoseconds / 1_000_000) ms)"
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

    /// The same through scripts/peers/udp-loss-relay.py in front of the receiver's audio port
    /// (5 % of the audio datagrams dropped, seeded): loss by another program, on the wire.
    @Test func fivePercentLossThroughTheRelayIsRepairedOnThePTPRoute() async throws {
        try Self.requireRoot()
        let audioPort = try AirPlay2LossRelayTests.freeUDPPort()
        let relay = try Child("/usr/bin/python3", [
            AirPlay2LossRelayTests.root.appendingPathComponent("scripts/peers/udp-loss-relay.py").path, "--listen", "0",
            "--bind", receiverAddress, "--target", "\(receiverAddress):\(audioPort)", "--loss", "0.05", "--seed", "16",
            "--only-audio", "--max-seconds", "60"])
        defer { relay.kill() }
        let line = (try? await relay.waitForOutput(timeout: 60) { $0.contains("\n") }) ?? relay.describe()
        let digits = line.drop { !$0.isNumber }.prefix { $0.isNumber }
        let relayPort = try #require(Int(digits), "relay said: \(line)")

        let wav = tempPath("pod.wav")
        var config = VirtualHomePod.Configuration(host: receiverAddress, outputPath: wav)
        config.timing = .ptp
        config.audioPort = audioPort
        config.advertisedAudioPort = relayPort
        let pod = try await VirtualHomePod.start(config)
        defer { Task { await pod.stop() } }
        let packets = 500
        let report = try await RAOPClient(host: receiverAddress, port: pod.port, options: ptpOptions())
            .stream(RampSource(packets: packets, framesPerPacket: 352))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        print("realtime PTP through udp-loss-relay.py at 5 %: requested \(podReport.packetsRequested), recovered "
              + "\(podReport.packetsRecovered), unrecovered \(podReport.unrecoveredPackets), retransmitted "
              + "\(report.retransmittedPackets); \(brief(podReport.ptp))")
        #expect(podReport.packetsRequested >= 10, "\(podReport)")
        try Self.expectRepairedOnOurClock(report, podReport, wav: wav, packets: packets)
    }
}

/// Deterministic white noise: ALAC cannot compress it (about 1.4 KB a packet), so a stalled data
/// connection fills the kernel's buffers quickly and the sender feels the back-pressure.
struct NoiseSource: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let packets: Int

    static func pcm(packet i: Int) -> [UInt8] {
        var rng = SplitMix64(seed: 0x5EED_0000 &+ UInt64(i))
        return (0..<(352 * 4)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var i = 0
        let packets: Int
        mutating func next() async throws -> PCMPacket? {
            guard i < packets else { return nil }
            defer { i += 1 }
            return PCMPacket(bytes: NoiseSource.pcm(packet: i), frames: 352)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(packets: packets) }
}

/// Buffered PTP (type 103) when the receiver stops reading its data connection: the virtual
/// HomePod's `dataStall` hook stops reading the socket (NIO autoRead off) after N packets, for a
/// while or for good, as a receiver with a full buffer or a hung one does; the sender sees the
/// same TCP back-pressure a relay that stops forwarding would give. Both sides' socket buffers are
/// small (16 KiB) so that the back-pressure reaches the sender's writes within a fraction of a second.
@Suite(.serialized) struct AirPlay2BufferedStallTests {
    static func pod(_ wav: String, stall: VirtualHomePod.Configuration.DataStall) async throws -> VirtualHomePod {
        var config = VirtualHomePod.Configuration(host: receiverAddress, outputPath: wav)
        config.timing = .ptp
        config.dataStall = stall
        config.dataReceiveBuffer = 16_384
        return try await VirtualHomePod.start(config)
    }

    static func options() -> RAOPOptions {
        var o = ptpOptions(buffered: true)
        o.bufferedSendBuffer = 16_384
        return o
    }

    /// Every packet of the source played once, in order, each at its anchor-derived instant on
    /// our master's timeline (one anchor: no restart), none arriving after that instant (a
    /// packet that came late would be a gap), and the WAV bit-exact.
    static func expectNoGap(_ report: RAOPStreamReport, _ pod: HomePodReport, wav: String, packets: Int) throws {
        #expect(report.route.route == .bufferedPTP)
        #expect(pod.ptp.master == senderAddress, "\(brief(pod.ptp))")
        #expect(pod.ptp.rateAnchors == ["play"], "\(pod.ptp.rateAnchors)")
        let anchorFrame = try #require(pod.ptp.anchorFrame)
        let anchorTime = try #require(pod.ptp.anchorTime)
        let played = pod.ptp.playInstants
        #expect(played.count == packets, "\(played.count) of \(packets) played; \(brief(pod.ptp))")
        #expect(pod.ptp.packetsBeforeAnchor == 0 && pod.ptp.packetsNotPlayed == 0 && pod.ptp.packetsFlushed == 0, "\(brief(pod.ptp))")
        var late = 0
        for (i, p) in played.enumerated() {
            let rtp = played[0].rtpTime &+ UInt32(i * 352)
            if p.rtpTime != rtp { Issue.record("packet \(i): RTP \(p.rtpTime), expected \(rtp)"); break }
            let expected = anchorTime + Int64(Int32(bitPattern: rtp &- anchorFrame)) * 1_000_000_000 / 44_100
            if p.masterTime != expected { Issue.record("packet \(i) at \(p.masterTime), expected \(expected)"); break }
            if p.late { late += 1 }
        }
        let lateIndices = played.indices.filter { played[$0].late }
        #expect(late == 0, "\(late) packets arrived after their play instant: \(lateIndices.first ?? -1)…\(lateIndices.last ?? -1)")
        #expect(try wavData(wav) == (0..<packets).flatMap { NoiseSource.pcm(packet: $0) })
    }

    /// 500 ms without a read in the middle of the stream (after 600 packets; ~375 go before the
    /// first anchor): the sender's writes wait (back-pressure), the receiver plays on from what it
    /// holds, and nothing is missing or late.
    @Test func halfSecondStallMidStreamLeavesNoGap() async throws {
        try AirPlay2PTPLossTests.requireRoot()
        let wav = tempPath("pod.wav")
        let pod = try await Self.pod(wav, stall: .init(afterPackets: 600, duration: .milliseconds(500)))
        defer { Task { await pod.stop() } }
        let packets = 1000
        let report = try await RAOPClient(host: receiverAddress, port: pod.port, options: Self.options())
            .stream(NoiseSource(packets: packets))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        print("buffered, 500 ms stall: longest write wait \(report.longestDataWriteWait), \(brief(podReport.ptp))")
        #expect(podReport.ptp.dataStalls == 1)
        #expect(podReport.ptp.dataStalledNanoseconds >= 500_000_000)
        // The stall reached the sender as back-pressure.
        #expect(report.longestDataWriteWait >= .milliseconds(50), "\(report.longestDataWriteWait)")
        try Self.expectNoGap(report, podReport, wav: wav, packets: packets)
    }

    /// A 2 s stall is back-pressure, not a dead receiver: the write deadline (what the receiver
    /// had left to play, ~3 s, plus 3 s) is not reached; the stream plays to the end, no gap.
    @Test func twoSecondStallDoesNotTripTheWriteDeadline() async throws {
        try AirPlay2PTPLossTests.requireRoot()
        let wav = tempPath("pod.wav")
        let pod = try await Self.pod(wav, stall: .init(afterPackets: 600, duration: .seconds(2)))
        defer { Task { await pod.stop() } }
        let packets = 1000
        let report = try await RAOPClient(host: receiverAddress, port: pod.port, options: Self.options())
            .stream(NoiseSource(packets: packets))
        let podReport = try await pod.waitForSessionEnd(timeout: .seconds(20))
        print("buffered, 2 s stall: longest write wait \(report.longestDataWriteWait); \(brief(podReport.ptp))")
        #expect(podReport.ptp.dataStalledNanoseconds >= 2_000_000_000)
        #expect(report.longestDataWriteWait >= .milliseconds(1200), "\(report.longestDataWriteWait)")
        try Self.expectNoGap(report, podReport, wav: wav, packets: packets)
    }

    /// A receiver that stops reading for good while it still answers RTSP: the stream fails with
    /// one line naming its buffered audio port, within the deadline of the write that hung, and
    /// the session is torn down (TEARDOWN).
    @Test func receiverThatStopsReadingEndsTheStream() async throws {
        try AirPlay2PTPLossTests.requireRoot()
        let wav = tempPath("pod.wav")
        let pod = try await Self.pod(wav, stall: .init(afterPackets: 600, duration: nil))
        defer { Task { await pod.stop() } }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: ATVError.self) {
            _ = try await RAOPClient(host: receiverAddress, port: pod.port, options: Self.options())
                .stream(NoiseSource(packets: 100_000))
        }
        let elapsed = clock.now - start
        let dataPort = pod.report().dataPort ?? 0
        let text = error.map { "\($0)" } ?? ""
        print("buffered, reads stopped for good: failed after \(elapsed): \(text)")
        guard case .timeout? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(text.contains("the receiver's buffered audio port \(receiverAddress):\(dataPort) stopped taking audio"), "\(text)")
        #expect(!text.contains("\n") && !text.contains("NIO") && !text.contains("errno"), "\(text)")
        // Setup and ~600 packets (~2 s of playing), then what the receiver held (≤ 3 s) + 3 s.
        #expect(elapsed < .seconds(20), "\(elapsed)")
        #expect(await poll(timeout: .seconds(5)) { pod.report().requests.contains("enc TEARDOWN") }, "\(pod.report().requests)")
        #expect(pod.report().ptp.dataStalls == 1)
    }
}

/// The write deadline's rule, on injected master times.
@Suite struct BufferedWriteDeadlineTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_765_000_000 * second

    /// Before the first anchor (and paused) the playhead stands still: a whole window plus the margin.
    @Test func waitingOrPausedAllowsAWindowAndTheMargin() {
        var w = BufferedSendWindow(configuration: .init(clockID: 1))
        for _ in 0..<100 { _ = w.write(payloadBytes: 1000) }
        #expect(w.writeLimit(packetAt: w.nextPosition, now: Self.t0) == 6 * Self.second)
        _ = w.start(at: Self.t0)
        _ = w.pause(now: Self.t0 + Self.second)
        #expect(w.writeLimit(packetAt: w.nextPosition, now: Self.t0 + 100 * Self.second) == 6 * Self.second)
    }

    /// Playing: the time until the playhead reaches the packet, plus 3 s. A receiver that stops
    /// reading for 2 s while it holds ~3 s is inside it; one that stopped for good is caught
    /// 3 s after it played the last byte it took.
    @Test func playingAllowsWhatIsQueuedPlusTheMargin() {
        var w = BufferedSendWindow(configuration: .init(clockID: 1))
        _ = w.start(at: Self.t0 + Self.second / 2)  // frame 0 plays 0.5 s from now
        #expect(w.writeLimit(packetAt: 0, now: Self.t0) == Self.second / 2 + 3 * Self.second)
        // Steady state: write what the window allows at t0 + 10 s.
        let now = Self.t0 + 10 * Self.second
        while w.packetsAllowed(now: now) > 0 { _ = w.write(payloadBytes: 1400) }
        let position = w.nextPosition
        let lead = w.writeLimit(packetAt: position, now: now) - BufferedSendWindow.writeMargin
        #expect(lead > 2_990_000_000 && lead <= 3 * Self.second + 10_000_000, "\(lead)")
        // A 2 s stall of the receiver: the write that began at `now` is still within its limit.
        #expect(2 * Self.second < w.writeLimit(packetAt: position, now: now))
        // Never more than a window plus the margin; the playhead past the packet: the margin alone.
        #expect(w.writeLimit(packetAt: position, now: now) <= 6 * Self.second + 10_000_000)
        #expect(w.writeLimit(packetAt: position, now: now + 20 * Self.second) == BufferedSendWindow.writeMargin)
    }
}
