import ATVTestSupport
import Foundation
import Testing

/// Runs shell scripts inside a private network namespace (`unshare --net --mount`, lo up with
/// multicast on) with a hard time limit, and locates the package's `atv` binary and peer scripts.
enum Netns {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool
        /// Lines between "== NAME ==" markers the script printed.
        func section(_ name: String) -> String {
            var out: [Substring] = []
            var inside = false
            for line in stdout.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("== ") && line.hasSuffix(" ==") {
                    inside = line == "== \(name) =="
                    continue
                }
                if inside { out.append(line) }
            }
            return out.joined(separator: "\n")
        }
    }

    static var atv: String { TestEnv.atvPath }
    static var peers: String { TestEnv.root.appendingPathComponent("scripts/peers").path }
    static var venv: String { TestEnv.venv }

    /// Fails with a clear message when a prerequisite is missing.
    static func requirePrerequisites(python: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: atv) else {
            throw Failure(description: "\(atv) is missing: run `swift build` (scripts/test builds it before swift test)")
        }
        guard getuid() == 0 else { throw Failure(description: "namespace tests need root (unshare --net)") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
            throw Failure(description: "unshare is missing (util-linux)")
        }
        if python, !FileManager.default.isExecutableFile(atPath: venv + "/bin/python") {
            throw Failure(description: "no peer venv at \(venv) (run scripts/setup)")
        }
    }

    /// Runs `script` with bash inside a fresh network + mount namespace. The script starts with lo
    /// up and multicast on, `$ATV`, `$PEERS`, `$VENV` and `$TMP` (a private temp dir) set, and a
    /// trap that kills its background jobs on exit. The whole thing is killed after `timeout`
    /// seconds (GNU timeout signals the process group, then SIGKILL 2 s later).
    static func run(_ script: String, timeout: Double) async throws -> Result {
        let tmp = try makeTempDir("atv-netns")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let prologue = """
            set -u
            cleanup() { local p; p=$(jobs -p); [ -n "$p" ] || return 0; kill $p 2>/dev/null; for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 $p 2>/dev/null || return 0; sleep 0.1; done; kill -KILL $p 2>/dev/null; return 0; }
            trap cleanup EXIT
            ip link set lo up && ip link set lo multicast on || { echo "cannot set up lo" >&2; exit 97; }
            # wait_for FILE TEXT SECONDS: until FILE contains TEXT
            wait_for() { for _ in $(seq $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1; }

            """
        // The test process may ignore SIGTERM (ignored signals survive exec, and bash cannot trap
        // them): give the namespace its default dispositions back, so cleanup traps work.
        let args = ["--default-signal=TERM,INT,HUP", "timeout", "--kill-after=2", String(format: "%.1f", timeout),
                    "unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", prologue + script]
        let env = ["ATV": atv, "PEERS": peers, "VENV": venv, "TMP": tmp.path, "TMPDIR": tmp.path, "HOME": tmp.path, "PYTHONUNBUFFERED": "1"]
        let child = try Child("/usr/bin/env", args, environment: env, in: tmp, workingDirectory: tmp)
        // GNU timeout ends it; the runner's own limit is only a backstop.
        let r = await child.finish(timeout: timeout + 15)
        let status = r.timedOut ? 137 : r.status
        let out = r.stdout, err = r.stderr
        return Result(status: status, stdout: out, stderr: err, timedOut: status == 124 || status == 137)
    }

    /// The `devices` array of an `atv scan --json` line.
    static func devices(_ json: String) throws -> [[String: Any]] {
        guard let line = json.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let devices = obj["devices"] as? [[String: Any]] else {
            throw Failure(description: "no scan JSON in output: \(json.prefix(500))")
        }
        return devices
    }
}

/// What a test expects of one device in `atv scan --json`.
struct ExpectedDevice {
    var name: String
    var address: String
    var identifiers: Set<String>
    var model: String
    var os: String
    var version: String?
    var mac: String?
    var services: [String: Int]
    var deepSleep = false

    func check(_ devices: [[String: Any]], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let d = devices.first(where: { $0["name"] as? String == name }) else {
            Issue.record("\(label): \(name) not found among \(devices.compactMap { $0["name"] as? String })", sourceLocation: sourceLocation)
            return
        }
        let info = d["device_info"] as? [String: Any] ?? [:]
        #expect(d["address"] as? String == address, "\(label) \(name) address", sourceLocation: sourceLocation)
        #expect(Set(d["all_identifiers"] as? [String] ?? []) == identifiers, "\(label) \(name) identifiers", sourceLocation: sourceLocation)
        #expect(info["model"] as? String == model, "\(label) \(name) model", sourceLocation: sourceLocation)
        #expect(info["operating_system"] as? String == os, "\(label) \(name) OS", sourceLocation: sourceLocation)
        #expect(info["version"] as? String == version, "\(label) \(name) version", sourceLocation: sourceLocation)
        #expect(info["mac"] as? String == mac, "\(label) \(name) MAC", sourceLocation: sourceLocation)
        #expect(d["deep_sleep"] as? Bool == deepSleep, "\(label) \(name) deep_sleep", sourceLocation: sourceLocation)
        var services: [String: Int] = [:]
        for s in d["services"] as? [[String: Any]] ?? [] {
            if let p = s["protocol"] as? String, let port = s["port"] as? Int { services[p] = port }
        }
        #expect(services == self.services, "\(label) \(name) services", sourceLocation: sourceLocation)
    }
}
