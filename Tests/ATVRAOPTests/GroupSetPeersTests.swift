// SETPEERS in a group stream, end to end: three virtual HomePods on the PTP routes (two realtime,
// one buffered) as members of one `RAOPGroupStream`; each records every SETPEERS list it gets.
// Each list names every PTP member (newest first) and the sender last, and every member is told
// again when one joins or leaves (docs/PTP-AND-BUFFERED-AUDIO.md §3.3).
//
// Host loopback: the sender's connections come from 127.0.0.124 (the process's PTP master binds
// UDP 319/320 there), the HomePods (and their PTP followers) are 127.0.0.121–123; no other suite
// uses 127.0.0.121–125. Serialized: every test binds those PTP ports.
import ATVAirPlayCore
import ATVCore
@testable import ATVRAOP
import ATVSimulator
import ATVTestSupport
import Foundation
import Logging
import Testing

@Suite(.serialized) struct GroupSetPeersTests {
    static let sender = "127.0.0.124"

    /// Realtime members get the CLI's 2 s latency: a loaded machine delays packets, and a member
    /// lost (retried or not) would change what the others are told.
    static func options(buffered: Bool) -> RAOPOptions {
        var o = airPlay2Options()
        o.timing = .ptp
        o.buffered = buffered ? .on : .off
        o.localAddress = sender
        if !buffered { o.latencyFrames = 88_200 }
        return o
    }

    /// A and B (realtime and buffered PTP) start together, C (realtime PTP) joins while they play
    /// and is then removed. Whichever of A and B joined the clock group first (X) is told of the
    /// other (Y), both are told of C and of C leaving; C's one list names all three. Every list
    /// ends with the sender; A and B play the whole stream.
    @Test func everyMemberHearsOfEveryJoinAndLeave() async throws {
        try AirPlay2PTPLossTests.requireRoot()
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func pod(_ host: String) async throws -> VirtualHomePod {
            var config = VirtualHomePod.Configuration(host: host, outputPath: dir.appendingPathComponent("\(host).wav").path)
            config.timing = .ptp
            return try await VirtualHomePod.start(config)
        }
        let a = try await pod("127.0.0.121"), b = try await pod("127.0.0.122"), c = try await pod("127.0.0.123")
        defer { Task { await a.stop(); await b.stop(); await c.stop() } }

        var groupOptions = RAOPGroupOptions(readinessDeadline: .seconds(8), retries: 0)
        groupOptions.stallTolerance = .seconds(3)
        let group = RAOPGroupStream(
            members: [RAOPGroupMember(name: "A", host: "127.0.0.121", port: a.port, options: Self.options(buffered: false)),
                      RAOPGroupMember(name: "B", host: "127.0.0.122", port: b.port, options: Self.options(buffered: true))],
            options: groupOptions, logger: Logger(label: "test.group"))
        let streaming = Task { try await group.stream(RampSource(packets: 2000, framesPerPacket: 352)) }  // ≈ 16 s

        // Both set up and told of each other, then C joins; once it plays, it is removed.
        #expect(await poll(timeout: .seconds(20)) {
            a.report().ptp.setPeers.last?.count == 3 && b.report().ptp.setPeers.last?.count == 3
        }, "A \(a.report().ptp.setPeers), B \(b.report().ptp.setPeers)")
        group.add(RAOPGroupMember(name: "C", host: "127.0.0.123", port: c.port, options: Self.options(buffered: false)))
        #expect(await poll(timeout: .seconds(20)) { c.report().packetsReceived > 50 }, "\(c.report())")
        group.remove(name: "C")
        #expect(await poll(timeout: .seconds(10)) {
            a.report().ptp.setPeers.last?.count == 3 && b.report().ptp.setPeers.count >= 3
        }, "A \(a.report().ptp.setPeers), B \(b.report().ptp.setPeers)")

        let report = try await streaming.value
        let summary = report.members.map { "\($0.name): \($0.state) \($0.route.map { "\($0)" } ?? "-") \($0.error ?? "")" }
        let outcome = Dictionary(uniqueKeysWithValues: report.members.map { ($0.name, $0) })
        #expect(outcome["A"]?.playedWhole == true && outcome["B"]?.playedWhole == true, "\(summary)")
        #expect(outcome["A"]?.route == .realtimePTP && outcome["B"]?.route == .bufferedPTP && outcome["C"]?.route == .realtimePTP,
                "\(summary)")
        #expect(outcome["C"]?.state == .removed, "\(summary)")

        let lists = ["A": a.report().ptp.setPeers, "B": b.report().ptp.setPeers, "C": c.report().ptp.setPeers]
        let address = ["A": "127.0.0.121", "B": "127.0.0.122", "C": "127.0.0.123"]
        // X joined the clock group first: its first list names itself alone.
        let x = lists["A"]?.first == [address["A"]!, Self.sender] ? "A" : "B"
        let y = x == "A" ? "B" : "A"
        let (X, Y, C) = (address[x]!, address[y]!, address["C"]!)
        let us = Self.sender
        #expect(lists[x] == [[X, us], [Y, X, us], [C, Y, X, us], [Y, X, us]], "\(lists)")
        #expect(lists[y] == [[Y, X, us], [C, Y, X, us], [Y, X, us]], "\(lists)")
        #expect(lists["C"] == [[C, Y, X, us]], "\(lists)")
        // Each followed our master at the sender's address, whatever SETPEERS listed.
        for pod in [a, b, c] { #expect(pod.report().ptp.master == us, "\(brief(pod.report().ptp))") }
    }
}
