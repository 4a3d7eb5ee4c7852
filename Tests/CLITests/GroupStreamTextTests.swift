import ATVCore
import ATVRAOP
import Testing
@testable import atv

/// What `atv stream` prints for several receivers and how it reads its targets (pure functions).
@Suite struct GroupStreamTextTests {
    func member(_ name: String, _ route: AirPlayAudioRoute?, _ state: RAOPGroupMemberStatus.State, attempts: Int = 1,
                error: String? = nil) -> RAOPGroupMemberStatus {
        RAOPGroupMemberStatus(name: name, route: route, state: state, attempts: attempts, error: error)
    }

    @Test func progressLineNamesEveryMemberWithRouteAndState() {
        let p = RAOPGroupProgress(position: 12.7, duration: nil, members: [
            member("Kitchen", .airPlay1, .playing),
            member("Living Room", .bufferedPTP, .rejoined, attempts: 2),
            member("Bedroom", nil, .joining),
            member("Attic", .realtimeNTP, .lost, attempts: 3, error: "connection refused"),
        ])
        #expect(GroupStreamText.progressLine(title: "Song", progress: p, duration: 225)
                == "▶ Song  0:12 / 3:45  Kitchen: playing (AirPlay 1) · Living Room: rejoined (buffered PTP, attempt 2) · "
                + "Bedroom: joining · Attic: lost (realtime NTP, attempt 3, connection refused)")
        #expect(GroupStreamText.progressLine(title: "a\u{1B}b", progress: RAOPGroupProgress(position: -1, duration: nil, members: []), duration: nil)
                == "▶ a\\x1bb  0:00  ", "control characters from tags never reach the terminal")
    }

    func outcome(_ name: String, _ whole: Bool, _ state: RAOPGroupMemberStatus.State, attempts: Int = 1,
                 error: String? = nil) -> RAOPGroupMemberOutcome {
        RAOPGroupMemberOutcome(name: name, route: .airPlay1, playedWhole: whole, state: state, error: error, report: nil, attempts: attempts)
    }

    @Test func finalLinesAndExitStatus() {
        let mixed = RAOPGroupReport(members: [outcome("Kitchen", true, .finished),
                                              outcome("Attic", false, .failed, attempts: 3, error: "connection refused")],
                                    stopped: false, seconds: 225.4)
        #expect(GroupStreamText.outcomeLines(mixed) == [
            "Streamed 3:45 to 2 receivers: 1 of 2 played the whole stream",
            "  Kitchen: played the whole stream (AirPlay 1)",
            "  Attic: did not play the whole stream: failed after 3 attempts (AirPlay 1, connection refused)",
        ])
        #expect(GroupStreamText.exitStatus(mixed, interrupted: false) == 0, "one member that played it all is success")

        let none = RAOPGroupReport(members: [outcome("Kitchen", false, .lost), outcome("Attic", false, .failed)], stopped: false, seconds: 10)
        #expect(GroupStreamText.exitStatus(none, interrupted: false) == 1, "non-zero only when no member played the whole stream")
        #expect(GroupStreamText.outcomeLines(none)[0] == "Streamed 0:10 to 2 receivers: 0 of 2 played the whole stream")

        let stopped = RAOPGroupReport(members: [outcome("Kitchen", false, .finished)], stopped: true, seconds: 61)
        #expect(GroupStreamText.outcomeLines(stopped)[0] == "Stopped after 1:01 to 1 receiver: 0 of 1 played without a break")
        #expect(GroupStreamText.exitStatus(stopped, interrupted: true) == 130)
    }

    @Test func memberNamesAreMadeUnique() {
        #expect(GroupStreamText.uniqueNames([("Kitchen", "10.0.0.2:7000"), ("Speaker", "10.0.0.3:7000"), ("speaker", "10.0.0.4:7000")])
                == ["Kitchen", "Speaker (10.0.0.3:7000)", "speaker (10.0.0.4:7000)"])
        #expect(GroupStreamText.uniqueNames([("127.0.0.1", "127.0.0.1:7001"), ("127.0.0.1", "127.0.0.1:7002")])
                == ["127.0.0.1 (127.0.0.1:7001)", "127.0.0.1 (127.0.0.1:7002)"])
    }

    func plan(_ args: [String], expanded: [String]? = nil) throws -> StreamTargetPlan {
        let options = try StreamTargetOptions.parse(args)
        return try StreamTargetPlan.make(options, expandedNames: expanded ?? options.to)
    }

    @Test func oneTargetStaysTheSingleStreamAndSeveralAreAGroup() throws {
        #expect(try plan(["--to", "Kitchen"]) == .single(arguments: ["--to", "Kitchen"]))
        #expect(try plan(["--to", "Kitchen", "--hosts", "10.0.0.2", "--timeout", "5"])
                == .single(arguments: ["--to", "Kitchen", "--hosts", "10.0.0.2", "--timeout", "5.0"]))
        #expect(try plan(["--host", "127.0.0.1", "--port", "7001"]) == .single(arguments: ["--host", "127.0.0.1", "--port", "7001"]))
        #expect(try plan(["--host", "127.0.0.1:7001"]) == .single(arguments: ["--host", "127.0.0.1", "--port", "7001"]))
        #expect(try plan(["--hosts", "10.0.0.2"]) == .single(arguments: ["--hosts", "10.0.0.2"]))
        // A group of one member is one receiver.
        #expect(try plan(["--to", "Solo"], expanded: ["Kitchen"]) == .single(arguments: ["--to", "Kitchen"]))

        #expect(try plan(["--to", "Kitchen", "--to", "Living Room"])
                == .several(names: ["Kitchen", "Living Room"], addresses: [], queryHosts: []))
        #expect(try plan(["--to", "Downstairs"], expanded: ["Kitchen", "Living Room"])
                == .several(names: ["Kitchen", "Living Room"], addresses: [], queryHosts: []))
        #expect(try plan(["--host", "127.0.0.1:7001", "--host", "127.0.0.1:7002"])
                == .several(names: [], addresses: [.init(host: "127.0.0.1", port: 7001), .init(host: "127.0.0.1", port: 7002)], queryHosts: []))
        #expect(try plan(["--hosts", "10.0.0.2,10.0.0.3"]) == .several(names: [], addresses: [], queryHosts: ["10.0.0.2", "10.0.0.3"]))
        #expect(try plan(["--to", "A", "--to", "B", "--hosts", "10.0.0.2,10.0.0.3"])
                == .several(names: ["A", "B"], addresses: [], queryHosts: ["10.0.0.2", "10.0.0.3"]))
        #expect(try plan(["--to", "A", "--host", "10.0.0.9"])
                == .several(names: ["A"], addresses: [.init(host: "10.0.0.9")], queryHosts: []))
    }

    @Test func hostPortForms() throws {
        #expect(try StreamTargetPlan.splitHostPort("10.0.0.2") == .init(host: "10.0.0.2"))
        #expect(try StreamTargetPlan.splitHostPort("[fe80::1]:7000") == .init(host: "fe80::1", port: 7000))
        #expect(try StreamTargetPlan.splitHostPort("fe80::1") == .init(host: "fe80::1"))
        for bad in ["10.0.0.2:0", "10.0.0.2:x", ":7000", "[fe80::1]:99999", ""] {
            #expect(throws: (any Error).self) { try StreamTargetPlan.splitHostPort(bad) }
        }
    }

    @Test func badTargetOptionsAreRefused() {
        for args in [[String](), ["--host", "a", "--hosts", "b"], ["--host", "a", "--host", "b", "--port", "7000"],
                     ["--to", "A", "--to", "B", "--port", "7000"], ["--host", "10.0.0.2:0"], ["--to", "A", "--timeout", "0"]] {
            #expect(throws: (any Error).self, "\(args)") { _ = try StreamTargetOptions.parse(args) }
        }
    }
}
