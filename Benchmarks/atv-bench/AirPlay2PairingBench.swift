import ATVAirPlayCore
import ATVAuth
import ATVCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 5, over real AirPlay 2 HTTP against the virtual HomePod (`atv simulate homepod` in its own
/// process, so its CPU is not counted): client CPU of one transient pair-setup and of one
/// pair-verify, each on a new TCP connection, up to encrypting the control channel. Ours:
/// `AirPlay2Connection.connect` (`/pair-pin-start` + M1–M4, or pair-verify M1–M4; no `GET /info`),
/// measured as the bench process's CPU (user + system, all threads: NIO runs on its own threads).
/// pyatv 0.18: `http_connect` + `verify_connection` (its own AirPlay procedures), measured with
/// `time.process_time()` in its process. Same HomePod, same run, same credentials (one PIN pairing
/// first, not measured).
func runAirPlay2PairingBenchmarks() async throws {
    let root = packageRoot()
    let venv = root.appendingPathComponent(".venv-peers").path
    guard FileManager.default.isExecutableFile(atPath: venv + "/bin/python") else {
        throw BenchError("no pyatv venv at \(venv) (run scripts/setup)")
    }
    let runs = 30
    let pod = try HomePodProcess(atv: try siblingATV())
    defer { pod.stop() }

    let credentials = try await pairAirPlay2(host: "127.0.0.1", port: pod.port, pin: "1111")
    let options = { (c: HAPCredentials?) in
        AirPlay2ConnectionOptions(credentials: c, requestInfo: false)
    }
    // Warm-up (first use of the crypto and NIO paths), not measured.
    await (try AirPlay2Connection.connect(host: "127.0.0.1", port: pod.port, options: options(nil))).close()

    var oursTransient: [Double] = [], oursVerify: [Double] = []
    func ours(_ n: Int) async throws {
        for verify in [false, true] {
            for _ in 0 ..< n {
                let t0 = processCPU()
                let c = try await AirPlay2Connection.connect(host: "127.0.0.1", port: pod.port, options: options(verify ? credentials : nil))
                let ms = (processCPU() - t0) * 1000
                await c.close()
                if verify { oursVerify.append(ms) } else { oursTransient.append(ms) }
            }
        }
    }
    var pyTransient: [Double] = [], pyVerify: [Double] = []
    func theirs(_ n: Int) throws {
        let out = try runPython(venv + "/bin/python", pyatvScript,
                                ["--port", String(pod.port), "--runs", String(n), "--credentials", credentials.stringValue])
        guard let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [Double]],
              let t = obj["transient_ms"], let v = obj["verify_ms"] else {
            throw BenchError("unexpected output from the pyatv AirPlay 2 pairing script: \(out)")
        }
        pyTransient += t
        pyVerify += v
    }
    // Rounds in alternating order, so neither side always runs on a warmer (or busier) machine.
    let rounds = 3
    for r in 0 ..< rounds {
        if r % 2 == 0 { try await ours(runs / rounds); try theirs(runs / rounds) } else { try theirs(runs / rounds); try await ours(runs / rounds) }
    }
    for (name, ours, theirs) in [("ap2_transient_pair_setup_client_cpu", oursTransient, pyTransient),
                                 ("ap2_pair_verify_client_cpu", oursVerify, pyVerify)] {
        let a = median(ours), b = median(theirs)
        emit(["bench": name, "unit": "ms", "runs": runs, "ours_ms": round3(a), "pyatv_ms": round3(b), "ratio": round3(a / b),
              "ours_min_ms": round3(ours.min() ?? 0), "pyatv_min_ms": round3(theirs.min() ?? 0),
              "measured": "client process CPU per connect+pair+encrypt over HTTP, median of \(runs) in \(rounds) rounds of alternating order; same virtual HomePod process"])
    }
}

/// pyatv's own AirPlay 2 code path: `http_connect` then `verify_connection` (transient credentials
/// → /pair-pin-start + transient pair-setup; HAP credentials → pair-verify), Control encryption on.
private let pyatvScript = #"""
import argparse, asyncio, json, time
from pyatv.auth.hap_pairing import TRANSIENT_CREDENTIALS, parse_credentials
from pyatv.protocols.airplay.auth import verify_connection
from pyatv.support.http import http_connect

async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--credentials", required=True)
    a = ap.parse_args()
    creds = parse_credentials(a.credentials)
    c = await http_connect("127.0.0.1", a.port)  # warm-up
    await verify_connection(TRANSIENT_CREDENTIALS, c)
    c.close()
    out = {"transient_ms": [], "verify_ms": []}
    for key, cr in (("transient_ms", TRANSIENT_CREDENTIALS), ("verify_ms", creds)):
        for _ in range(a.runs):
            t0 = time.process_time()
            c = await http_connect("127.0.0.1", a.port)
            await verify_connection(cr, c)
            out[key].append((time.process_time() - t0) * 1000)
            c.close()
            await asyncio.sleep(0.01)
    print(json.dumps(out))

asyncio.run(main())
"""#

/// `atv simulate homepod --no-advertise --port 0 --pin 1111` as a child process.
private final class HomePodProcess {
    let process = Process()
    let port: Int

    init(atv: String) throws {
        process.executableURL = URL(fileURLWithPath: atv)
        process.arguments = ["simulate", "homepod", "--port", "0", "--no-advertise", "--pin", "1111",
                             "--output", FileManager.default.temporaryDirectory.appendingPathComponent("bench-pod.wav").path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while !text.contains("listening on"), Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let r = text.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let p = Int(text[r].split(separator: ":")[1]) else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            throw BenchError("atv simulate homepod did not start: \(text)")
        }
        port = p
    }

    func stop() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

private func processCPU() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}


private func runPython(_ python: String, _ script: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = ["-c", script] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw BenchError("pyatv AirPlay 2 pairing script failed: \(String(decoding: errData, as: UTF8.self).suffix(800))")
    }
    return String(decoding: data, as: UTF8.self)
}
