import Foundation

/// Discovery benchmark: time to a complete result (all three devices of
/// scripts/peers/publish-zeroconf.py) for our `atv scan` and pyatv's `atvremote scan`, multicast
/// and unicast, in one private network namespace and one run. Prints JSON lines.
///
/// What is measured, per tool and mode, as wall time of a process from spawn to the moment it is
/// known to have the complete result (median and min of `rounds` runs, alternating tools):
/// - ours multicast: `atv scan --json --count 3` until it exits (it stops at the third device);
///   also, separately, `atv scan` (no --count, plain output) until its third "Name:" line appears
///   (it keeps scanning until its 3 s timeout after that);
/// - pyatv multicast: `atvremote scan` until it exits (it prints at the end of its 3 s scan);
/// - ours unicast: `atv scan --json --hosts 127.0.0.1` until it exits (ends when the host answered);
/// - pyatv unicast: `atvremote --scan-hosts 127.0.0.1 scan` until it exits.
/// Every run's output is checked for all three device names; a run that misses one is reported
/// as incomplete (and counts as a failure in the JSON, not as a time).
/// Needs root and unshare (it skips with a JSON line saying so otherwise).
func runDiscoveryBenchmarks() async throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let atv = root.appendingPathComponent(".build/debug/atv").path
    let release = root.appendingPathComponent(".build/release/atv").path
    let binary = FileManager.default.isExecutableFile(atPath: release) ? release : atv
    var venv = root.appendingPathComponent(".venv-peers").path
    if !FileManager.default.isExecutableFile(atPath: venv + "/bin/python") { venv = "/work/main/.venv-peers" }
    func skip(_ why: String) {
        print(#"{"bench":"discovery","skipped":"\#(why)"}"#)
    }
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
        return skip("needs root and unshare")
    }
    guard FileManager.default.isExecutableFile(atPath: binary) else { return skip("\(atv) missing: swift build first") }
    guard FileManager.default.isExecutableFile(atPath: venv + "/bin/atvremote") else { return skip("no pyatv venv at \(venv)") }

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

    cases = {
        "ours_multicast_count": lambda: until_exit([atv, "scan", "--json", "--count", "3"]),
        "ours_multicast_third_line": lambda: until_third_name([atv, "scan"]),
        "pyatv_multicast": lambda: until_exit([venv + "/bin/atvremote", "scan"]),
        "ours_unicast": lambda: until_exit([atv, "scan", "--json", "--hosts", "127.0.0.1"]),
        "pyatv_unicast": lambda: until_exit([venv + "/bin/atvremote", "--scan-hosts", "127.0.0.1", "scan"]),
    }
    results = {k: [] for k in cases}
    bad = {k: 0 for k in cases}
    for r in range(rounds):
        for k, f in cases.items():
            dt, ok = f()
            if ok: results[k].append(dt)
            else: bad[k] += 1
            time.sleep(0.3)
    print(json.dumps({k: {"median": statistics.median(v) if v else None, "min": min(v) if v else None,
                          "runs": len(v), "incomplete": bad[k]} for k, v in results.items()}))
    """#
    let script = """
        set -u
        ip link set lo up && ip link set lo multicast on
        cleanup() { p=$(jobs -p); [ -n "$p" ] && kill $p 2>/dev/null; sleep 0.3; [ -n "$p" ] && kill -KILL $p 2>/dev/null; true; }
        trap cleanup EXIT
        "$VENV/bin/python" "$ROOT/scripts/peers/publish-zeroconf.py" --add-addresses --seconds 300 > "$TMPD/pub.out" 2>&1 &
        for _ in $(seq 200); do grep -q ready "$TMPD/pub.out" && break; sleep 0.1; done
        grep -q ready "$TMPD/pub.out" || { cat "$TMPD/pub.out" >&2; exit 1; }
        sleep 1
        "$VENV/bin/python" "$TMPD/harness.py" "$ATV" "$VENV" 5
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
        print(#"{"bench":"discovery","error":"namespace run failed (status \#(status))"}"#)
        return
    }
    func median(_ k: String) -> Double? { obj[k]?["median"] as? Double }
    func emit(_ name: String, ours: String, pyatv: String, goal: Double, measured: String) {
        var o: [String: Any] = ["bench": name, "measured": measured, "goal_s": goal, "binary": binary.hasSuffix("release/atv") ? "release" : "debug"]
        o["ours_s"] = median(ours).map { ($0 * 1000).rounded() / 1000 } ?? NSNull()
        o["pyatv_s"] = median(pyatv).map { ($0 * 1000).rounded() / 1000 } ?? NSNull()
        o["ours_min_s"] = (obj[ours]?["min"] as? Double).map { ($0 * 1000).rounded() / 1000 } ?? NSNull()
        o["incomplete_runs"] = ["ours": obj[ours]?["incomplete"] ?? 0, "pyatv": obj[pyatv]?["incomplete"] ?? 0]
        if let a = median(ours), let b = median(pyatv), a > 0 {
            o["speedup"] = (b / a * 100).rounded() / 100
            o["meets_goal"] = a <= goal
        }
        if let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        }
    }
    emit("discovery_multicast", ours: "ours_multicast_count", pyatv: "pyatv_multicast", goal: 1.0,
         measured: "median wall time of 5 runs from spawn to exit: atv scan --json --count 3 vs atvremote scan (3 s scan); all 3 devices checked")
    emit("discovery_multicast_third_line", ours: "ours_multicast_third_line", pyatv: "pyatv_multicast", goal: 1.0,
         measured: "median time from spawn until atv scan printed its third device (it keeps scanning to its timeout) vs atvremote scan to exit")
    emit("discovery_unicast", ours: "ours_unicast", pyatv: "pyatv_unicast", goal: 0.2,
         measured: "median wall time of 5 runs from spawn to exit: atv scan --json --hosts 127.0.0.1 vs atvremote --scan-hosts 127.0.0.1 scan; all 3 devices checked")
}
