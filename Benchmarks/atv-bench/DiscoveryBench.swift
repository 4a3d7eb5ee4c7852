import Foundation

/// Discovery benchmark: time to a complete result (all three devices of
/// scripts/peers/publish-zeroconf.py) for our `atv scan` and pyatv's `atvremote scan`, multicast
/// and unicast, in one private network namespace and one run. Prints JSON lines.
///
/// The comparisons give both tools the same end condition, as wall time of a process from spawn
/// to exit (median and min of `rounds` runs, the order of the two tools alternating per round):
/// - multicast: `atv scan --json --timeout 3` vs `atvremote --scan-timeout 3 scan` (both scan for
///   the full 3 s and exit; pyatv has no way to stop at a device count, so neither does ours here);
/// - unicast: `atv scan --json --hosts 127.0.0.1 --timeout 3` vs
///   `atvremote --scan-hosts 127.0.0.1 --scan-timeout 3 scan` (each ends when it has its answer).
/// Reported for ours alone (no pyatv equivalent, so no ratio): `atv scan --json --count 3` to
/// exit, and the time until plain `atv scan` printed its third device.
/// Every run's output is checked for all three device names; a run that misses one is reported
/// as incomplete (and counts as a failure in the JSON, not as a time). Needs root and unshare, the
/// built `atv` and pyatv: without them it fails (non-zero exit), it does not skip.
func runDiscoveryBenchmarks(rounds: Int = 5) async throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let atv = root.appendingPathComponent(".build/debug/atv").path
    let release = root.appendingPathComponent(".build/release/atv").path
    let binary = FileManager.default.isExecutableFile(atPath: release) ? release : atv
    var venv = root.appendingPathComponent(".venv-peers").path
    if !FileManager.default.isExecutableFile(atPath: venv + "/bin/python") { venv = "/work/main/.venv-peers" }
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
        throw BenchError("discovery needs root and unshare (a private network namespace)")
    }
    guard FileManager.default.isExecutableFile(atPath: binary) else { throw BenchError("\(atv) missing: swift build first") }
    guard FileManager.default.isExecutableFile(atPath: venv + "/bin/atvremote") else {
        throw BenchError("no pyatv venv at \(venv): run scripts/setup (the baseline is required)")
    }

    let harness = #"""
    import json, os, statistics, subprocess, sys, tempfile, time
    atv, venv, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = ["Living Room", "Küche", "Bedroom"]
    env = dict(os.environ, HOME=tempfile.mkdtemp())

    def complete(text):
        return all(n in text for n in names)

    def until_exit(cmd):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
        dt = time.perf_counter() - t0
        return dt, complete(p.stdout)

    def until_third_name(cmd):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        seen, dt = [], None
        for line in p.stdout:
            if "Name:" in line:
                seen.append(line)
                if len(seen) == 3:
                    dt = time.perf_counter() - t0
                    break
        p.kill(); p.wait(timeout=10)
        return (dt if dt is not None else time.perf_counter() - t0), dt is not None and complete("".join(seen))

    # Pairs compared with each other (same end condition); their order alternates per round.
    pairs = [
        ("ours_multicast", lambda: until_exit([atv, "scan", "--json", "--timeout", "3"]),
         "pyatv_multicast", lambda: until_exit([venv + "/bin/atvremote", "--scan-timeout", "3", "scan"])),
        ("ours_unicast", lambda: until_exit([atv, "scan", "--json", "--hosts", "127.0.0.1", "--timeout", "3"]),
         "pyatv_unicast", lambda: until_exit([venv + "/bin/atvremote", "--scan-hosts", "127.0.0.1", "--scan-timeout", "3", "scan"])),
    ]
    alone = {
        "ours_multicast_count": lambda: until_exit([atv, "scan", "--json", "--count", "3"]),
        "ours_multicast_third_line": lambda: until_third_name([atv, "scan"]),
    }
    keys = [k for a, _, b, _ in pairs for k in (a, b)] + list(alone)
    results = {k: [] for k in keys}
    bad = {k: 0 for k in keys}
    def record(k, f):
        dt, ok = f()
        if ok: results[k].append(dt)
        else: bad[k] += 1
        time.sleep(0.3)
    for r in range(rounds):
        for a, fa, b, fb in pairs:
            for k, f in ([(a, fa), (b, fb)] if r % 2 == 0 else [(b, fb), (a, fa)]):
                record(k, f)
        for k, f in alone.items():
            record(k, f)
    print(json.dumps({k: {"median": statistics.median(v) if v else None, "min": min(v) if v else None,
                          "runs": len(v), "incomplete": bad[k]} for k, v in results.items()}))
    """#
    let script = """
        set -u
        # pyatv scans only from interfaces with a private-range address (10/8, 172.16/12,
        # 192.168/16), so the namespace gets a veth pair with 10.99.0.1/.2 and the multicast route
        # through it; the devices stay on 127.0.0.x.
        ip link set lo up && ip link add v0 type veth peer name v1 \
            && ip addr add 10.99.0.1/24 dev v0 && ip addr add 10.99.0.2/24 dev v1 \
            && ip link set v0 up && ip link set v1 up && ip route add 224.0.0.0/4 dev v0
        cleanup() { p=$(jobs -p); [ -n "$p" ] && kill $p 2>/dev/null; sleep 0.3; [ -n "$p" ] && kill -KILL $p 2>/dev/null; true; }
        trap cleanup EXIT
        "$VENV/bin/python" "$ROOT/scripts/peers/publish-zeroconf.py" --add-addresses --seconds 300 > "$TMPD/pub.out" 2>&1 &
        for _ in $(seq 200); do grep -q ready "$TMPD/pub.out" && break; sleep 0.1; done
        grep -q ready "$TMPD/pub.out" || { cat "$TMPD/pub.out" >&2; exit 1; }
        sleep 1
        "$VENV/bin/python" "$TMPD/harness.py" "$ATV" "$VENV" "$ROUNDS"
        """
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("atv-bench-mdns-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    try harness.write(to: tmp.appendingPathComponent("harness.py"), atomically: true, encoding: .utf8)
    let outURL = tmp.appendingPathComponent("out")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    process.arguments = ["--kill-after=2", "280", "unshare", "--net", "bash", "-c", script]
    var env = ProcessInfo.processInfo.environment
    env["ATV"] = binary
    env["VENV"] = venv
    env["ROOT"] = root.path
    env["TMPD"] = tmp.path
    env["ROUNDS"] = String(max(rounds, 3))
    process.environment = env
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    let status: Int32 = try await withCheckedThrowingContinuation { cont in
        process.terminationHandler = { cont.resume(returning: $0.terminationStatus) }
        do { try process.run() } catch {
            process.terminationHandler = nil
            cont.resume(throwing: error)
        }
    }
    let text = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    guard status == 0, let line = text.split(separator: "\n").last,
          let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [String: Any]] else {
        throw BenchError("discovery: the namespace run failed (status \(status)): \(text.suffix(400))")
    }
    func median(_ k: String) -> Double? { obj[k]?["median"] as? Double }
    let runs = max(rounds, 3)
    func emitLine(_ name: String, ours: String, pyatv: String?, goal: Double?, measured: String) {
        var o: [String: Any] = ["bench": name, "measured": measured, "runs": runs, "binary": binary.hasSuffix("release/atv") ? "release" : "debug"]
        if let goal { o["goal_s"] = goal }
        o["ours_s"] = median(ours).map(round3) ?? NSNull()
        o["ours_min_s"] = (obj[ours]?["min"] as? Double).map(round3) ?? NSNull()
        var incomplete: [String: Any] = ["ours": obj[ours]?["incomplete"] ?? 0]
        if let pyatv {
            o["pyatv_s"] = median(pyatv).map(round3) ?? NSNull()
            incomplete["pyatv"] = obj[pyatv]?["incomplete"] ?? 0
            if let a = median(ours), let b = median(pyatv), a > 0 {
                o["speedup"] = (b / a * 100).rounded() / 100
                if let goal { o["meets_goal"] = a <= goal }
            }
        }
        o["incomplete_runs"] = incomplete
        emit(o)
    }
    emitLine("discovery_multicast", ours: "ours_multicast", pyatv: "pyatv_multicast", goal: nil,
             measured: "median wall time of \(runs) runs (alternating order) from spawn to exit, both scanning 3 s: atv scan --json --timeout 3 vs atvremote --scan-timeout 3 scan; all 3 devices checked")
    emitLine("discovery_unicast", ours: "ours_unicast", pyatv: "pyatv_unicast", goal: 0.2,
             measured: "median wall time of \(runs) runs (alternating order) from spawn to exit: atv scan --json --hosts 127.0.0.1 vs atvremote --scan-hosts 127.0.0.1 scan (both --timeout/--scan-timeout 3); all 3 devices checked")
    emitLine("discovery_multicast_count", ours: "ours_multicast_count", pyatv: nil, goal: 1.0,
             measured: "ours alone (pyatv cannot stop at a device count): median wall time from spawn to exit of atv scan --json --count 3")
    emitLine("discovery_multicast_third_line", ours: "ours_multicast_third_line", pyatv: nil, goal: 1.0,
             measured: "ours alone: median time from spawn until plain atv scan printed its third device")
    // A comparison needs at least 3 complete runs (all 3 devices found) on each side; otherwise it
    // is a failure, not a partial result.
    let short = ["ours_multicast", "pyatv_multicast", "ours_unicast", "pyatv_unicast"].filter { (obj[$0]?["runs"] as? Int ?? 0) < 3 }
    if !short.isEmpty {
        let detail = short.map { "\($0) \(obj[$0]?["runs"] as? Int ?? 0) of \(runs)" }.joined(separator: ", ")
        throw BenchError("discovery: fewer than 3 complete runs (all 3 devices found): \(detail); no comparison")
    }
}
