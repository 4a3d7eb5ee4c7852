import ATVTestSupport
import Foundation
import Testing

/// `atv ptp-master` followed by a PTP implementation we did not write: linuxptp's ptp4l (slave
/// only, software time stamping, UDP IPv4, transportSpecific 1) in a second network namespace
/// across a veth pair. ptp4l must pick our clock as grandmaster, leave LISTENING, and report
/// per-sample offsets within ±100 µs once settled; pmc must name our clock as grandmaster.
///
/// ptp4l runs without CAP_SYS_TIME (setpriv drops it): CLOCK_REALTIME is not namespaced, and a
/// test must never steer the machine's clock. Its clock adjustments fail, so the offsets it prints
/// are the raw difference between our timescale (monotonic, set to TAI at start) and its
/// UTC + 37 s, i.e. how well our Follow_Ups carry the time.
@Suite struct PTPMasterInteropTests {
    static func requireLinuxptp() throws {
        try Netns.requirePrerequisites(python: false)
        for tool in ["/usr/sbin/ptp4l", "/usr/sbin/pmc", "/usr/bin/nsenter", "/usr/bin/setpriv"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw Netns.Failure(description: "\(tool) is missing (scripts/setup installs linuxptp and util-linux)")
        }
    }

    /// ptp4l's "master offset" samples (ns) with their servo state ("s0", "s1", "s2").
    static func offsets(_ log: String) -> [(offset: Int, state: String)] {
        log.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(of: "offset"), i > 0, words[i - 1] == "master", i + 2 < words.count,
                  let value = Int(words[i + 1]) else { return nil }
            return (value, String(words[i + 2]))
        }
    }

    @Test func ptp4lFollowsOurClockWithinAHundredMicroseconds() async throws {
        try Self.requireLinuxptp()
        let r = try await Netns.run("""
            ip link add ptpm type veth peer name ptpf || exit 90
            unshare --net sleep 120 & F=$!
            for _ in $(seq 50); do [ "$(readlink /proc/$F/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.1; done
            f() { nsenter --net=/proc/$F/ns/net "$@"; }
            ip link set ptpf netns $F || exit 91
            ip addr add 192.0.2.1/24 dev ptpm && ip link set ptpm up
            f ip link set lo up && f ip addr add 192.0.2.2/24 dev ptpf && f ip link set ptpf up || exit 92
            cat > "$TMP/ptp4l.conf" <<EOF
            [global]
            transportSpecific 1
            domainNumber 0
            first_step_threshold 0.0
            step_threshold 0.0
            hybrid_e2e 1
            summary_interval -3
            uds_address $TMP/ptp4l
            EOF
            "$ATV" ptp-master --address 192.0.2.1 --duration 60 -v >"$TMP/master.out" 2>"$TMP/master.err" &
            wait_for "$TMP/master.out" "PTP master" 10 || exit 93
            # nsenter and setpriv exec: $! is ptp4l itself, which the exit trap ends.
            nsenter --net=/proc/$F/ns/net setpriv --bounding-set -sys_time ptp4l -f "$TMP/ptp4l.conf" -i ptpf -4 -S -s -m -q >"$TMP/ptp4l.log" 2>&1 & P=$!
            wait_for "$TMP/ptp4l.log" "master offset" 30 || exit 94
            # Settle 5 s, then 15 s of samples.
            sleep 5; : > "$TMP/mark"; n0=$(wc -l < "$TMP/ptp4l.log"); sleep 15
            echo "== pmc parent =="; f pmc -u -b 0 -t 1 -s "$TMP/ptp4l" -i "$TMP/pmc.sock" 'GET PARENT_DATA_SET' 2>&1
            echo "== pmc time =="; f pmc -u -b 0 -t 1 -s "$TMP/ptp4l" -i "$TMP/pmc.sock" 'GET TIME_STATUS_NP' 2>&1
            echo "== window =="; tail -n +$((n0 + 1)) "$TMP/ptp4l.log"
            echo "== ptp4l =="; cat "$TMP/ptp4l.log"
            echo "== master =="; cat "$TMP/master.out"
            echo "== master stderr =="; cat "$TMP/master.err"
            kill $P $F
            """, timeout: 120)
        let master = r.section("master"), log = r.section("ptp4l"), window = r.section("window")
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)\n\(log)")
        // "PTP master 7a3c1e.fffe.0f2a9b (0x7a3c1efffe0f2a9b) on 192.0.2.1 ..."
        let identity = try #require(master.split(separator: " ").dropFirst(2).first.map(String.init), "\(master)")
        #expect(identity.count == 18 && identity.contains(".fffe."), "an EUI-64 of the veth's MAC: \(identity)")
        #expect(log.contains("new foreign master \(identity)"), "\(log)")
        #expect(log.contains("selected best master clock \(identity)"), "\(log)")
        // The port leaves LISTENING. Without CAP_SYS_TIME ptp4l's servo cannot steer the clock
        // and stays in s0, so the port stays UNCALIBRATED (it becomes SLAVE only once the servo
        // locks); either is accepted, and the test prints which it saw.
        #expect(log.contains("LISTENING to UNCALIBRATED"), "\(log)")
        let state = log.contains("UNCALIBRATED to SLAVE") ? "SLAVE" : "UNCALIBRATED"

        let samples = Self.offsets(window)
        // Sync every 125 ms: about 120 samples in 15 s (ptp4l prints each: summary_interval -3).
        #expect(samples.count >= 60, "\(window)")
        let magnitudes = samples.map { abs($0.offset) }.sorted()
        let median = magnitudes.isEmpty ? Int.max : magnitudes[magnitudes.count / 2]
        let within = magnitudes.filter { $0 <= 100_000 }.count
        // Software time stamps on a loaded 2-core machine: a rare sample can catch the sending
        // thread preempted between its stamp and sendto, so the bound is on 95% of them.
        #expect(within * 100 >= magnitudes.count * 95, "95% of offsets within ±100 µs: \(samples.map(\.offset))")
        #expect(median <= 50_000, "median |offset| \(median) ns: \(samples.map(\.offset))")
        print("ptp4l (port \(state), servo states \(Set(samples.map(\.state)).sorted())) over 15 s: \(samples.count) samples, "
              + "median |offset| \(median) ns, \(within) within ±100 µs, worst \(magnitudes.last ?? 0) ns; "
              + "offsets \(samples.map(\.offset))")

        // Delay_Req (hybrid: unicast to us) were answered: ptp4l reports a path delay, and -v
        // logged the follower.
        #expect(window.contains("path delay"), "\(window)")
        #expect(r.section("master stderr").contains("PTP follower 192.0.2.2"), "\(r.section("master stderr"))")

        let parent = r.section("pmc parent"), time = r.section("pmc time")
        #expect(parent.contains("grandmasterIdentity") && parent.contains(identity), "\(parent)")
        #expect(parent.contains("parentPortIdentity") && parent.contains("\(identity)-32773"), "\(parent)")
        #expect(parent.contains("gm.ClockClass                         6"), "\(parent)")
        #expect(time.contains("gmPresent                  true"), "\(time)")
        #expect(time.contains("gmIdentity                 \(identity)"), "\(time)")
    }

    /// ptp4l's "path delay" values (ns) of its per-sample lines.
    static func pathDelays(_ log: String) -> [Int] {
        log.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(of: "delay"), i > 0, words[i - 1] == "path", i + 1 < words.count else { return nil }
            return Int(words[i + 1])
        }
    }

    /// The checks both end-to-end multicast tests make of one run: ptp4l selected our clock, its
    /// Delay_Req (sent to the group) were answered (ptp4l prints path delay 0 until its first
    /// Delay_Resp, and every sample of the window has a non-zero one; -v logged the follower),
    /// and its offsets stayed small. (pmc is not asked here: a second pmc query in a run went
    /// unanswered now and then on this machine; the first test asks it.)
    static func expectFollowedWithPathDelay(_ r: Netns.Result, follower: String, label: String,
                                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let master = r.section("master"), log = r.section("ptp4l"), window = r.section("window")
        #expect(r.status == 0, "\(label): exit \(r.status): \(r.stderr)\n\(log)\n\(r.section("master stderr"))", sourceLocation: sourceLocation)
        let identity = try #require(master.split(separator: " ").dropFirst(2).first.map(String.init), "\(master)", sourceLocation: sourceLocation)
        #expect(log.contains("selected best master clock \(identity)"), "\(label): \(log)", sourceLocation: sourceLocation)
        #expect(log.contains("LISTENING to UNCALIBRATED"), "\(label): \(log)", sourceLocation: sourceLocation)
        let delays = Self.pathDelays(window), samples = Self.offsets(window)
        #expect(samples.count >= 60, "\(label): \(window)", sourceLocation: sourceLocation)
        #expect(!delays.isEmpty && delays.allSatisfy { $0 != 0 }, "\(label): path delays \(delays)", sourceLocation: sourceLocation)
        #expect(r.section("master stderr").contains("PTP follower \(follower)"), "\(label): \(r.section("master stderr"))", sourceLocation: sourceLocation)
        let magnitudes = samples.map { abs($0.offset) }.sorted()
        let median = magnitudes.isEmpty ? Int.max : magnitudes[magnitudes.count / 2]
        let within = magnitudes.filter { $0 <= 100_000 }.count
        #expect(within * 100 >= magnitudes.count * 95, "\(label): 95% of offsets within ±100 µs: \(samples.map(\.offset))", sourceLocation: sourceLocation)
        #expect(median <= 50_000, "\(label): median |offset| \(median) ns", sourceLocation: sourceLocation)
        print("\(label): ptp4l \(samples.count) samples, median |offset| \(median) ns, \(within) within ±100 µs; "
              + "path delays \(delays.min() ?? 0)…\(delays.max() ?? 0) ns")
    }

    /// The tail shared by the multicast tests: wait for samples, settle, 15 s window, logs.
    static let sampleAndReport = """
        wait_for "$TMP/ptp4l.log" "master offset" 30 || exit 94
        sleep 5; n0=$(wc -l < "$TMP/ptp4l.log"); sleep 15
        echo "== window =="; tail -n +$((n0 + 1)) "$TMP/ptp4l.log"
        echo "== ptp4l =="; cat "$TMP/ptp4l.log"
        echo "== master =="; cat "$TMP/master.out"
        echo "== master stderr =="; cat "$TMP/master.err"
        kill $P $F
        """

    /// ptp4l in its default delay mechanism (end to end, Delay_Req to 224.0.1.129): the master,
    /// bound to one address, joined the group on that address's interface, so it receives the
    /// requests and answers each with a Delay_Resp; ptp4l's path delay becomes known.
    @Test func ptp4lEndToEndMulticastDelayRequestsAreAnswered() async throws {
        try Self.requireLinuxptp()
        let r = try await Netns.run("""
            ip link add ptpm type veth peer name ptpf || exit 90
            unshare --net sleep 120 & F=$!
            for _ in $(seq 50); do [ "$(readlink /proc/$F/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.1; done
            f() { nsenter --net=/proc/$F/ns/net "$@"; }
            ip link set ptpf netns $F || exit 91
            ip addr add 192.0.2.1/24 dev ptpm && ip link set ptpm up
            f ip link set lo up && f ip addr add 192.0.2.2/24 dev ptpf && f ip link set ptpf up || exit 92
            cat > "$TMP/ptp4l.conf" <<EOF
            [global]
            transportSpecific 1
            domainNumber 0
            first_step_threshold 0.0
            step_threshold 0.0
            summary_interval -3
            uds_address $TMP/ptp4l
            EOF
            "$ATV" ptp-master --address 192.0.2.1 --duration 60 -v >"$TMP/master.out" 2>"$TMP/master.err" &
            wait_for "$TMP/master.out" "PTP master" 10 || exit 93
            nsenter --net=/proc/$F/ns/net setpriv --bounding-set -sys_time ptp4l -f "$TMP/ptp4l.conf" -i ptpf -4 -S -s -m -q >"$TMP/ptp4l.log" 2>&1 & P=$!
            """ + "\n" + Self.sampleAndReport, timeout: 120)
        try Self.expectFollowedWithPathDelay(r, follower: "192.0.2.2", label: "IPv4 multicast E2E")
    }

    /// IPv6: the master bound to an IPv4 address and then (a second family in the same process, as
    /// a second session would add it) to a link-local address given without its interface; the
    /// follower added as a peer by its link-local address (also without one): Announce, Signaling, Sync and
    /// Follow_Up go by unicast over IPv6 from 319/320; ptp4l -6 in its default end-to-end mode
    /// sends Delay_Req to FF0E::181, which the master joined on that interface, and the answers
    /// reach it at its link-local address.
    @Test func ptp4lOverIPv6LinkLocalFollowsAndGetsDelayResponses() async throws {
        try Self.requireLinuxptp()
        let r = try await Netns.run("""
            ip link add ptpm type veth peer name ptpf || exit 90
            unshare --net sleep 120 & F=$!
            for _ in $(seq 50); do [ "$(readlink /proc/$F/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.1; done
            f() { nsenter --net=/proc/$F/ns/net "$@"; }
            ip link set ptpf netns $F || exit 91
            # Only the addresses given here (no generated link-local ones), usable at once (nodad).
            sysctl -qw net.ipv6.conf.ptpm.addr_gen_mode=1 && f sysctl -qw net.ipv6.conf.ptpf.addr_gen_mode=1 || exit 95
            ip addr add fe80::1/64 dev ptpm nodad && ip addr add 192.0.2.1/24 dev ptpm && ip link set ptpm up || exit 92
            f ip link set lo up && f ip addr add fe80::2/64 dev ptpf nodad && f ip link set ptpf up || exit 92
            cat > "$TMP/ptp4l.conf" <<EOF
            [global]
            transportSpecific 1
            domainNumber 0
            first_step_threshold 0.0
            step_threshold 0.0
            summary_interval -3
            uds_address $TMP/ptp4l
            EOF
            "$ATV" ptp-master --address 192.0.2.1 --address fe80::1 --peer fe80::2 --duration 60 -v >"$TMP/master.out" 2>"$TMP/master.err" &
            wait_for "$TMP/master.out" "PTP master" 10 || exit 93
            nsenter --net=/proc/$F/ns/net setpriv --bounding-set -sys_time ptp4l -f "$TMP/ptp4l.conf" -i ptpf -6 -S -s -m -q >"$TMP/ptp4l.log" 2>&1 & P=$!
            """ + "\n" + Self.sampleAndReport, timeout: 120)
        try Self.expectFollowedWithPathDelay(r, follower: "fe80::2%ptpm", label: "IPv6 link-local")
        #expect(r.section("master").contains("on 192.0.2.1, fe80::1 UDP 319/320, sending to fe80::2"), "\(r.section("master"))")
    }

    @Test func heldOrPrivilegedPortsFailWithOneLineSayingWhatToDo() async throws {
        try Self.requireLinuxptp()
        let r = try await Netns.run("""
            python3 -c 'import socket, time
            a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("0.0.0.0", 319))
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("0.0.0.0", 320))
            print("held", flush=True); time.sleep(60)' > "$TMP/holder" & H=$!
            wait_for "$TMP/holder" held 10 || exit 90
            s0=$(date +%s%N); "$ATV" ptp-master --address 127.0.0.1 --duration 30 >/dev/null 2>"$TMP/err"; st=$?; s1=$(date +%s%N)
            echo "== held status =="; echo $st
            echo "== held ms =="; echo $(( (s1 - s0) / 1000000 ))
            echo "== held stderr =="; cat "$TMP/err"
            kill $H
            cp "$ATV" "$TMP/atv"; chmod 755 "$TMP" "$TMP/atv"; echo "== binary =="; echo "$TMP/atv"
            setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/atv" ptp-master --address 127.0.0.1 --duration 30 >/dev/null 2>"$TMP/err2"; st=$?
            echo "== nobody status =="; echo $st
            echo "== nobody stderr =="; cat "$TMP/err2"
            "$ATV" ptp-master --address 127.0.0.1 --address 127.0.0.2 --duration 30 >/dev/null 2>"$TMP/err3"; st=$?
            echo "== two status =="; echo $st
            echo "== two stderr =="; cat "$TMP/err3"
            """, timeout: 60)
        #expect(r.section("held status") == "1", "\(r.stdout) \(r.stderr)")
        #expect((Int(r.section("held ms")) ?? .max) < 5000)
        #expect(r.section("held stderr").trimmingCharacters(in: .newlines) == "atv: error: connection failed: cannot bind UDP on 127.0.0.1:319: another program holds the port; stop it (only one program per network namespace can hold UDP 319/320: a PTP daemon such as ptp4l or nqptp; ss -ulpn 'sport = :319' names it)")
        #expect(r.section("nobody status") == "1", "\(r.stdout)")
        let binary = r.section("binary")
        // Two addresses of one family: one master per process, one line.
        #expect(r.section("two status") == "1", "\(r.stdout)")
        let two = r.section("two stderr").trimmingCharacters(in: .newlines)
        #expect(two.hasPrefix("atv: error: ") && !two.contains("\n") && two.contains("bound to 127.0.0.1, not 127.0.0.2: one master per process"), "\(two)")
        #expect(r.section("nobody stderr").trimmingCharacters(in: .newlines) == "atv: error: connection failed: cannot bind UDP on 127.0.0.1:319: not permitted (ports below 1024 need privileges); allow it with: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=319 (net.ipv4.ip_unprivileged_port_start is 1024 now), or: sudo setcap cap_net_bind_service=+ep \(binary)")
    }
}
