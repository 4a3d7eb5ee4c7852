import ATVAuth
import ATVCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 5: client-side CPU of one transient pair-setup (M1–M4) and one pair-verify (M1–M4),
/// ours against pyatv 0.18's own AirPlay procedures, both talking to the same accessory in the
/// same run: pyatv's server-side HAP code (scripts/peers/hap-accessory.py) over the same
/// envelope transport. Each run opens a new TCP connection; the figure is the calling thread's
/// CPU time for the whole exchange, socket I/O included (pyatv: time.thread_time in its process).
/// Credentials for pair-verify come from one PIN pair-setup first (not measured).
func runPairingBenchmarks() async throws {
    let root = packageRoot()
    let venv = root.appendingPathComponent(".venv-peers").path
    guard FileManager.default.isExecutableFile(atPath: venv + "/bin/python") else {
        throw BenchError("no pyatv venv at \(venv) (run scripts/setup)")
    }
    let runs = 30
    let accessory = try BenchAccessory(python: venv + "/bin/python",
                                       script: root.appendingPathComponent("scripts/peers/hap-accessory.py").path)
    defer { accessory.stop() }

    // Ours.
    var setupClient = HAPPairSetupClient(pin: "1111")
    let credentials: HAPCredentials
    do {
        let conn = try BenchEnvelope(port: accessory.port)
        guard case .paired(let c) = try exchange(conn, kind: 1, start: try setupClient.start(), { try setupClient.handle($0) }) else {
            throw BenchError("PIN pair-setup with pyatv's accessory gave no credentials")
        }
        credentials = c
    }
    var oursTransient: [Double] = [], oursVerify: [Double] = []
    func ours(_ n: Int) throws {
        for _ in 0 ..< n {
            let conn = try BenchEnvelope(port: accessory.port)
            let t0 = threadCPU()
            var client = HAPPairSetupClient.transient(pin: "1111")
            guard case .transient(let k) = try exchange(conn, kind: 1, start: try client.start(), { try client.handle($0) }), k.count == 64 else {
                throw BenchError("transient pair-setup did not produce a 64-byte session key")
            }
            _ = HAPChannel.airPlayControl.keys(sharedSecret: k)
            oursTransient.append((threadCPU() - t0) * 1000)
        }
        for _ in 0 ..< n {
            let conn = try BenchEnvelope(port: accessory.port)
            let t0 = threadCPU()
            var verifier = HAPPairVerifyClient(credentials: credentials)
            try conn.send(kind: 2, try verifier.start())
            var shared: [UInt8]?
            while shared == nil {
                let (kind, tlv) = try conn.receive()
                guard kind == 2 else { throw BenchError("unexpected message kind \(kind)") }
                switch try verifier.handle(tlv) {
                case .send(let m): try conn.send(kind: 2, m)
                case .verified(let s): shared = s
                }
            }
            _ = HAPChannel.airPlayControl.keys(sharedSecret: shared!)
            oursVerify.append((threadCPU() - t0) * 1000)
        }
    }

    // pyatv, against the same accessory process.
    var pyTransient: [Double] = [], pyVerify: [Double] = []
    func theirs(_ n: Int) throws {
        let out = try captureOutput(venv + "/bin/python",
                                    [root.appendingPathComponent("scripts/peers/pyatv-pair-bench.py").path,
                                     "--port", String(accessory.port), "--runs", String(n)])
        guard let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [Double]],
              let t = obj["transient_ms"], let v = obj["verify_ms"] else {
            throw BenchError("unexpected output from pyatv-pair-bench.py: \(out)")
        }
        pyTransient += t
        pyVerify += v
    }
    // Rounds in alternating order, so neither side always runs on a warmer (or busier) machine.
    let rounds = 3
    for r in 0 ..< rounds {
        if r % 2 == 0 { try ours(runs / rounds); try theirs(runs / rounds) } else { try theirs(runs / rounds); try ours(runs / rounds) }
    }
    for (name, ours, theirs) in [("pair_transient_setup_client_cpu", oursTransient, pyTransient),
                                 ("pair_verify_client_cpu", oursVerify, pyVerify)] {
        let a = median(ours), b = median(theirs)
        emit(["bench": name, "unit": "ms", "runs": runs, "ours_ms": round3(a), "pyatv_ms": round3(b),
              "ratio": round3(a / b), "ours_min_ms": round3(ours.min() ?? 0), "pyatv_min_ms": round3(theirs.min() ?? 0),
              "measured": "thread CPU per exchange incl. socket I/O, median of \(runs) in \(rounds) rounds of alternating order; same pyatv accessory (hap-accessory.py)"])
    }
}

private func exchange(_ conn: BenchEnvelope, kind: UInt8, start: [UInt8],
                      _ handle: ([UInt8]) throws -> HAPPairSetupClient.Output) throws -> HAPPairSetupClient.Output {
    try conn.send(kind: kind, start)
    while true {
        let (k, tlv) = try conn.receive()
        guard k == kind else { throw BenchError("unexpected message kind \(k)") }
        let out = try handle(tlv)
        guard case .send(let m) = out else { return out }
        try conn.send(kind: kind, m)
    }
}

private func threadCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}


/// Runs a program to completion and returns its stdout.
private func captureOutput(_ path: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError("\(path) \(args.first ?? "") exited with \(p.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}

/// scripts/peers/hap-accessory.py (pyatv's server-side HAP code); it stops when its stdin closes.
private final class BenchAccessory {
    let process = Process()
    let stdin = Pipe(), stdout = Pipe()
    let port: UInt16

    init(python: String, script: String) throws {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script]
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        let fd = stdout.fileHandleForReading.fileDescriptor
        while !line.contains(UInt8(ascii: "\n")) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 20_000) == 1 else { process.terminate(); throw BenchError("hap-accessory.py did not start within 20 s") }
            var b = [UInt8](repeating: 0, count: 64)
            let n = read(fd, &b, 64)
            guard n > 0 else { throw BenchError("hap-accessory.py exited at start") }
            line += b[0 ..< n]
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("LISTENING "), let p = UInt16(text.dropFirst(10).split(separator: "\n")[0]) else {
            throw BenchError("unexpected hap-accessory.py output: \(text)")
        }
        port = p
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// Blocking loopback client for the accessory's envelope: u32 BE length ‖ kind ‖ payload.
private final class BenchEnvelope {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket() failed") }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { close(fd); throw BenchError("connect to 127.0.0.1:\(port) failed") }
    }

    deinit { close(fd) }

    func send(kind: UInt8, _ payload: [UInt8]) throws {
        let n = UInt32(payload.count + 1)
        let bytes: [UInt8] = [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), kind] + payload
        var off = 0
        while off < bytes.count {
            let w = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard w > 0 else { throw BenchError("send failed") }
            off += w
        }
    }

    func receive() throws -> (UInt8, [UInt8]) {
        let h = try read(5)
        let n = Int(h[0]) << 24 | Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])
        guard n >= 1 else { throw BenchError("bad envelope length") }
        let payload = try read(n - 1)
        if h[4] == 9 { throw BenchError("pyatv's accessory reported: \(String(decoding: payload, as: UTF8.self))") }
        return (h[4], payload)
    }

    private func read(_ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var off = 0
        while off < n {
            let r = out[off...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard r > 0 else { throw BenchError(r == 0 ? "accessory closed the connection" : "receive failed (errno \(errno))") }
            off += r
        }
        return out
    }
}
