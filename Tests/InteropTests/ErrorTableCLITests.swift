import ATVTestSupport
import Foundation
import Testing

/// Every way a peer can fail, for every protocol, as the CLI reports it: a non-zero exit, exactly
/// one line on stderr, within 5 s, no library internals. Each case runs 20 times: the first
/// `defaultRuns` with default settings (a 3 s step timeout), the others with `--timeout 1`, so a wait
/// on a silent or blackholed peer is short; both must say which limit ran out. Any run that outlives
/// 5 s fails; so does any run that hangs (a lost continuation). A run's time is its own, from spawn
/// to exit, measured beside it in the namespace.
/// Peers: scripts/peers/misbehaving-peer.py, inside a private network namespace whose 10.99.0.1 is
/// behind a veth that drops every SYN. All six protocols' tables run in one namespace, their runs
/// interleaved (see `allRuns`); each protocol's test case checks its own.
// Serialized: the table starts 840 `atv` processes; six tables at once on a 2-core machine put the
// load average near 100 and the machine, not atv, would decide the 5 s rule.
@Suite(.serialized) struct ErrorTableCLITests {
    static let runs = 20
    /// `atv` processes at once.
    static let maxConcurrent = 10
    /// Runs 1...defaultRuns use the default timeouts; the rest `--timeout 1`.
    static let defaultRuns = 4
    static let limit = 5.0

    /// What goes wrong, and where the command is pointed.
    static let peers: [(name: String, device: String)] = [
        ("refused", "--host 127.0.0.1 --port 41009"),
        ("silent", "--host 127.0.0.1 --port 41001"),
        ("eof", "--host 127.0.0.1 --port 41002"),
        ("garbage", "--host 127.0.0.1 --port 41003"),
        ("http404", "--host 127.0.0.1 --port 41004"),
        ("blackholed", "--host 10.99.0.1 --port 7000"),
        ("not-found", "--to NobodyHasThisName"),
    ]

    /// The command line of each protocol (fake but well-formed credentials where one is needed).
    static let creds = [String](repeating: "11", count: 32).joined() + ":" + [String](repeating: "22", count: 32).joined()
        + ":3333333333333333:4444444444444444"
    static let protocols: [(name: String, command: String)] = [
        ("RAOP", "stream $TMP/tone.wav --airplay-version 1"),
        ("AirPlay 2 audio", "stream $TMP/tone.wav --airplay-version 2"),
        ("AirPlay video", "play-url http://127.0.0.1:9/movie.mp4"),
        ("MRP", "playing --protocol mrp --mrp-credentials \(creds)"),
        ("Companion", "apps --protocol companion --companion-credentials \(creds)"),
        ("DMAP", "playing --protocol dmap --dmap-credentials 0x0000000000000001"),
    ]

    /// Library internals a user must never see.
    static let denied = ["Error(", "NIO", "errno", "descriptor", "Failure(", "SingleConnectionFailure", "IOError",
                         "ChannelError", "invalid constant", "Optional(", "Swift.", "\\(", "DecodingError"]

    /// Sets up lo, the blackholed address and the four peers (ports 41001-41004).
    static let prologue = """
        ip link add v0 type veth peer name v1 && ip addr add 10.99.0.2/24 dev v0 && ip link set v0 up && ip link set v1 up || exit 96
        # A fixed neighbour: SYNs leave v0 and are dropped (v1 has no address), no ARP failure.
        ip neigh add 10.99.0.1 lladdr 02:00:00:00:00:01 dev v0 nud permanent || exit 96
        for m in silent:41001 eof:41002 garbage:41003 http404:41004; do
            python3 "$PEERS/misbehaving-peer.py" ${m%:*} ${m#*:} > "$TMP/peer-${m%:*}" &
        done
        for m in silent eof garbage http404; do wait_for "$TMP/peer-$m" listening 10 || exit 95; done
        ffmpeg -loglevel error -f lavfi -i sine=d=1 -ar 44100 -ac 2 "$TMP/tone.wav" -y || exit 94
        # start_run ID I FAST ARGS: one run of `atv ARGS` in the background (FAST=1: with --timeout 1);
        # prints "RESULT ID I status ms FAST", its stderr in $TMP/ID.I.
        pids=()
        start_run() {
            local id=$1 i=$2 fast=$3 extra=""; shift 3
            [ "$fast" = 1 ] && extra="--timeout 1"
            ( s=$(date +%s%N); eval "timeout -s KILL 30 \\"$ATV\\" $* $extra" > /dev/null 2> "$TMP/$id.$i" < /dev/null; rc=$?
              echo "RESULT $id $i $rc $(( ($(date +%s%N) - s) / 1000000 )) $fast" ) &
            pids+=($!)
        }

        """

    struct Run {
        var status: Int32
        var ms: Int
        var stderr: String
        /// Run with `--timeout 1`.
        var fast: Bool
    }

    /// Runs the cases in `cases` (id → atv arguments) in one namespace.
    static func table(_ cases: [(id: String, args: String)]) async throws -> [String: [Run]] {
        try Netns.requirePrerequisites(python: false)
        var script = prologue
        // Runs start 0.1 s apart (20 debug binaries starting at once would measure the machine,
        // not atv), and never more than `maxConcurrent` at once, whatever the load (20 at once on 2
        // cores, beside a build, once took a 3 s timeout to 5.04 s): a run starts when one ends (a
        // window, not a wait for a whole case's slowest run; the four peers are jobs too). The
        // cases interleave, run i of every case before run i + 1 of any, all protocols in one
        // namespace: one setup and one last slow run to wait for instead of one per protocol. (A
        // window of 40, which only the gap would have limited, measured worse on a loaded machine:
        // the runs' own CPU, not their waits, then decided their time.)
        // (A loop in the script: 840 lines written out are more than one argument may hold.)
        script += "ids=(\(cases.map { "'\($0.id)'" }.joined(separator: " ")))\n"
        script += "args=(\(cases.map { "'\($0.args)'" }.joined(separator: " ")))\n"
        script += """
            for i in $(seq \(runs)); do
                for k in "${!ids[@]}"; do
                    while [ $(jobs -rp | wc -l) -ge \(maxConcurrent + 4) ]; do wait -n; done
                    start_run "${ids[k]}" $i $(( i > \(defaultRuns) )) ${args[k]}; sleep 0.1
                done
            done

            """
        script += "wait \"${pids[@]}\"; pids=()\n"
        script += "for f in $TMP/case*.*; do echo \"STDERR $(basename $f) $(base64 -w0 < $f)\"; done\n"
        let result = try await Netns.run(script, timeout: Double(cases.count * runs) * 0.25 + 60)
        guard !result.timedOut, result.status == 0 else {
            throw Netns.Failure(description: "table script failed (\(result.status)): \(result.stderr.suffix(2000))")
        }
        var stderrs: [String: String] = [:]
        var runs: [String: [Run]] = [:]
        for line in result.stdout.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            if f.first == "STDERR", f.count >= 2 {
                stderrs[String(f[1])] = f.count > 2 ? String(decoding: Data(base64Encoded: String(f[2])) ?? Data(), as: UTF8.self) : ""
            }
        }
        for line in result.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.first == "RESULT", f.count == 6, let status = Int32(f[3]), let ms = Int(f[4]) else { continue }
            runs[String(f[1]), default: []].append(Run(status: status, ms: ms, stderr: stderrs["\(f[1]).\(f[2])"] ?? "",
                                                       fast: f[5] == "1"))
        }
        return runs
    }

    static func check(_ runs: [Run]?, _ label: String, limit: Double = limit, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let runs, runs.count == Self.runs else {
            Issue.record("\(label): \(runs?.count ?? 0) of \(Self.runs) runs reported", sourceLocation: sourceLocation)
            return
        }
        for r in runs {
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
            #expect(r.status != 0 && r.status != 137, "\(label): exit \(r.status) (137 = killed: it hung)", sourceLocation: sourceLocation)
            #expect(Double(r.ms) / 1000 <= limit, "\(label): took \(r.ms) ms: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(lines.count == 1 && lines[0].hasPrefix("atv: error: "), "\(label): stderr \(r.stderr.debugDescription)",
                    sourceLocation: sourceLocation)
            for word in denied where r.stderr.contains(word) {
                Issue.record("\(label): stderr shows internals (\(word)): \(r.stderr)", sourceLocation: sourceLocation)
            }
        }
    }

    /// Every protocol against every kind of failure: one table, case ids `caseP-F` (protocol P,
    /// failure F). Started by the first test case that needs it; the others read its result.
    static let allRuns = Task { () async throws -> [String: [Run]] in
        let cases = protocols.indices.flatMap { p in
            peers.enumerated().map { (f, peer) in (id: "case\(p)-\(f)", args: "\(protocols[p].command) \(peer.device)") }
        }
        return try await table(cases)
    }

    /// One protocol against every kind of failure.
    @Test(arguments: 0 ..< 6)
    func everyFailureIsOneLineWithinFiveSeconds(protocolIndex: Int) async throws {
        let proto = Self.protocols[protocolIndex]
        let all = try await Self.allRuns.value
        var runs: [String: [Run]] = [:]
        for i in Self.peers.indices { runs["case\(i)"] = all["case\(protocolIndex)-\(i)"] }
        for (i, p) in Self.peers.enumerated() {
            Self.check(runs["case\(i)"], "\(proto.name) × \(p.name)")
        }
        // What the line says, once per failure (the first run's) with default settings, and for
        // every run the limit it names.
        let first = { (i: Int) in runs["case\(i)"]?.first { !$0.fast }?.stderr ?? "" }
        #expect(first(0).contains("refused the connection"), "\(proto.name) refused: \(first(0))")
        #expect(first(5).contains("10.99.0.1") && first(5).contains("within 3 s"), "\(proto.name) blackholed: \(first(5))")
        #expect(first(6).contains("device not found"), "\(proto.name) not found: \(first(6))")
        #expect(first(1).contains("127.0.0.1:41001"), "\(proto.name) silent: \(first(1))")
        #expect(runs["case5"]?.filter { !$0.fast }.count == Self.defaultRuns, "\(proto.name): default runs")
        for r in runs["case5"] ?? [] {
            let limit = r.fast ? "within 1 s" : "within 3 s"
            #expect(r.stderr.contains("10.99.0.1") && r.stderr.contains(limit), "\(proto.name) blackholed (\(limit)): \(r.stderr)")
        }
        for r in runs["case1"] ?? [] {
            #expect(r.stderr.contains("127.0.0.1:41001"), "\(proto.name) silent: \(r.stderr)")
        }
    }

    /// SIGTERM and SIGINT end a command stuck waiting on a silent peer within 2 s, with or without a
    /// stop hook (play-url has one, `playing` has none); a second signal ends it at once.
    @Test func signalsEndAnyCommandWithinTwoSeconds() async throws {
        try Netns.requirePrerequisites(python: false)
        let script = """
            python3 "$PEERS/misbehaving-peer.py" silent 41001 > "$TMP/peer" &
            wait_for "$TMP/peer" listening 10 || exit 95
            pids=()
            # signal_case NAME SIGNALS ARGS: start atv, wait until it is waiting, send each signal 0.1 s apart, time the exit.
            signal_case() {
                local name=$1 sigs=$2; shift 2
                ( "$ATV" "$@" --timeout 60 > /dev/null 2> "$TMP/$name.err" < /dev/null & pid=$!
                  # Until its handlers are installed (SIGINT caught): a loaded machine may take a while
                  # to start it, and bash starts background commands with SIGINT ignored.
                  for _ in $(seq 200); do
                      mask=$(awk '/^SigCgt/ {print $2}' /proc/$pid/status 2>/dev/null)
                      [ -n "$mask" ] && (( 0x$mask & 2 )) && break
                      sleep 0.05
                  done
                  sleep 0.5
                  s=$(date +%s%N)
                  for sig in $sigs; do kill -$sig $pid; sleep 0.1; done
                  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
                  kill -0 $pid 2>/dev/null && { grep -E "^Sig|^State" /proc/$pid/status >&2; cat "$TMP/$name.err" >&2; kill -KILL $pid; echo "SIGNAL $name hung"; } || {
                    wait $pid; rc=$?; echo "SIGNAL $name $rc $(( ($(date +%s%N) - s) / 1000000 ))"; } ) &
                pids+=($!)
            }
            for i in 1 2 3 4 5; do
                signal_case term-play$i TERM play-url http://127.0.0.1:9/m.mp4 --host 127.0.0.1 --port 41001
                signal_case int-play$i INT play-url http://127.0.0.1:9/m.mp4 --host 127.0.0.1 --port 41001
                signal_case term-playing$i TERM playing --host 127.0.0.1 --port 41001 --protocol dmap --dmap-credentials 0x0000000000000001
                signal_case int-stream$i INT stream "$PEERS/../../samples/arpeggio.flac" --host 127.0.0.1 --port 41001 --airplay-version 1
                signal_case twice-play$i "TERM TERM" play-url http://127.0.0.1:9/m.mp4 --host 127.0.0.1 --port 41001
            done
            wait "${pids[@]}"
            """
        let r = try await Netns.run(script, timeout: 90)
        #expect(!r.timedOut, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("SIGNAL ") }
        #expect(lines.count == 25, "\(r.stdout) \(r.stderr)")
        for line in lines {
            let f = line.split(separator: " ")
            #expect(f.count == 4, "\(line): \(r.stderr)")
            guard f.count == 4, let rc = Int(f[2]), let ms = Int(f[3]) else { continue }
            #expect(rc != 0, "\(line)")
            // Signals are sent 0.1 s apart; the exit is timed from the first.
            #expect(ms <= 2000, "\(line)")
            if f[1].hasPrefix("twice") { #expect(ms <= 1000, "a second signal exits at once: \(line)") }
        }
    }

    /// A device that answers `POST /play` with `200 OK` and no length on a kept-open connection
    /// (item 4): play-url goes on at once and finishes (two polls of the 1 s media at its end).
    @Test func answersWithoutALengthHaveAnEmptyBody() async throws {
        try Netns.requirePrerequisites(python: false)
        let script = """
            python3 "$PEERS/misbehaving-peer.py" nolength 41005 > "$TMP/peer" &
            wait_for "$TMP/peer" listening 10 || exit 95
            pids=()
            for i in 1 2 3 4 5; do
                ( s=$(date +%s%N); "$ATV" play-url http://127.0.0.1:9/m.mp4 --host 127.0.0.1 --port 41005 > "$TMP/out$i" 2>&1; rc=$?
                  echo "PLAY $i $rc $(( ($(date +%s%N) - s) / 1000000 )) $(tr '\\n' ' ' < "$TMP/out$i")" ) &
                pids+=($!)
            done
            wait "${pids[@]}"
            """
        let r = try await Netns.run(script, timeout: 60)
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("PLAY ") }
        #expect(lines.count == 5, "\(r.stdout) \(r.stderr)")
        for line in lines {
            let f = line.split(separator: " ", maxSplits: 4)
            guard f.count >= 4, let rc = Int(f[2]), let ms = Int(f[3]) else { Issue.record("\(line)"); continue }
            #expect(rc == 0, "\(line)")
            // Two polls a second apart, not a 4 s (or 10 s) wait for a body.
            #expect(ms < 3500, "\(line)")
            #expect(line.contains("Finished playing http://127.0.0.1:9/m.mp4"), "\(line)")
        }
    }
}
