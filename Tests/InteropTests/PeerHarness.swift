import ATVTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A Python peer script of scripts/peers in the pyatv venv, on ATVTestSupport's runner: started
/// with arguments, its stdout read as lines, stopped by closing its stdin.
final class PythonPeer: @unchecked Sendable {
    let child: Child
    private let stdinPipe = Pipe()

    static func python() throws -> String { try TestEnv.venvTool("python") }

    init(script: String, _ args: [String]) throws {
        child = try Child(try Self.python(), [TestEnv.root.appendingPathComponent("scripts/peers/\(script)").path] + args,
                          stdin: stdinPipe.fileHandleForReading, environment: ["PYTHONUNBUFFERED": "1"])
    }

    var stdout: String { child.stdout }
    var stderr: String { child.stderr }

    private func line(_ prefix: String) -> String? {
        child.stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }).map(String.init)
    }

    /// The first stdout line starting with `prefix`, waited for (async) up to `timeout` seconds.
    func waitFor(_ prefix: String, timeout: Double = 20) async throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let l = line(prefix) { return l }
            if !child.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if let l = line(prefix) { return l }
        throw PeerError("no '\(prefix)' from peer; stdout: \(stdout) stderr: \(stderr)")
    }

    /// Closes its stdin (the scripts exit on EOF); kills it if it is still there after 5 s. Returns
    /// at once: the kill is scheduled, no thread waits for it.
    func stop() {
        try? stdinPipe.fileHandleForWriting.close()
        let child = self.child
        DispatchQueue.global().asyncAfter(deadline: .now() + 5) { child.kill() }
    }
}

/// scripts/peers/hap-accessory.py running pyatv's server-side HAP code; stopped on `stop()`.
final class PyatvAccessory {
    let peer: PythonPeer
    let port: UInt16

    init() async throws {
        peer = try PythonPeer(script: "hap-accessory.py", [])
        // First stdout line: "LISTENING <port>", within 20 s.
        let text = try await peer.waitFor("LISTENING ")
        guard let p = UInt16(text.dropFirst(10)) else {
            peer.stop()
            throw PeerError("unexpected hap-accessory.py output: \(text)")
        }
        port = p
    }

    func stop() { peer.stop() }
}

/// Loopback TCP client speaking the script's envelope: u32 BE length ‖ kind ‖ payload. Its reads
/// block (with a timeout) on a thread of their own (`offPool`), never on the concurrency pool's.
final class EnvelopeConnection: @unchecked Sendable {
    let fd: Int32

    init(port: UInt16, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PeerError("socket() failed") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { close(fd); throw PeerError("connect to 127.0.0.1:\(port) failed") }
    }

    deinit { close(fd) }

    func send(kind: UInt8, _ payload: [UInt8]) throws {
        let n = UInt32(payload.count + 1)
        let bytes: [UInt8] = [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), kind] + payload
        var off = 0
        while off < bytes.count {
            let w = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard w > 0 else { throw PeerError("send failed") }
            off += w
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var off = 0
        while off < n {
            let r = out[off...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard r > 0 else { throw PeerError(r == 0 ? "peer closed the connection" : "receive timed out or failed (errno \(errno))") }
            off += r
        }
        return out
    }

    /// Next message; a kind-9 message (the peer reports a problem) is thrown.
    func receive() async throws -> (kind: UInt8, payload: [UInt8]) {
        let (kind, payload) = try await offPool { try self.receiveBlocking() }
        return (kind, payload)
    }

    private func receiveBlocking() throws -> (kind: UInt8, payload: [UInt8]) {
        let h = try readExactly(5)
        let n = Int(h[0]) << 24 | Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])
        guard n >= 1 else { throw PeerError("bad envelope length") }
        let payload = try readExactly(n - 1)
        if h[4] == 9 { throw PeerError("pyatv accessory reported: \(String(decoding: payload, as: UTF8.self))") }
        return (h[4], payload)
    }
}
