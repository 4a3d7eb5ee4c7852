import ATVTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// scripts/peers/hap-accessory.py running pyatv's server-side HAP code; stopped on `stop()`.
final class PyatvAccessory {
    let process = Process()
    let stdin = Pipe()
    let stdout = Pipe()
    let port: UInt16
    let stderrURL: URL

    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func python() throws -> String {
        for p in [repoRoot.appendingPathComponent(".venv-peers/bin/python").path, "/work/main/.venv-peers/bin/python"]
        where FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        throw PeerError("pyatv venv not found: create .venv-peers (pyatv 0.18.0, srptools<2)")
    }

    init() throws {
        stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent("hap-accessory-\(UUID().uuidString.prefix(8)).err")
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: try Self.python())
        process.arguments = [Self.repoRoot.appendingPathComponent("scripts/peers/hap-accessory.py").path]
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
        // First stdout line: "LISTENING <port>", within 20 s.
        let fd = stdout.fileHandleForReading.fileDescriptor
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(20)
        while !line.contains(UInt8(ascii: "\n")) {
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&pfd, 1, left) == 1 else { process.terminate(); throw PeerError("hap-accessory.py did not start in 20 s") }
            var b = [UInt8](repeating: 0, count: 64)
            let n = read(fd, &b, 64)
            guard n > 0 else {
                let err = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
                throw PeerError("hap-accessory.py exited: \(err)")
            }
            line += b[0 ..< n]
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("LISTENING "), let p = UInt16(text.dropFirst(10).split(separator: "\n")[0]) else {
            throw PeerError("unexpected hap-accessory.py output: \(text)")
        }
        port = p
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: stderrURL)
    }
}

/// Blocking loopback TCP client speaking the script's envelope: u32 BE length ‖ kind ‖ payload.
final class EnvelopeConnection {
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

    func readExactly(_ n: Int) throws -> [UInt8] {
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
    func receive() throws -> (kind: UInt8, payload: [UInt8]) {
        let h = try readExactly(5)
        let n = Int(h[0]) << 24 | Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])
        guard n >= 1 else { throw PeerError("bad envelope length") }
        let payload = try readExactly(n - 1)
        if h[4] == 9 { throw PeerError("pyatv accessory reported: \(String(decoding: payload, as: UTF8.self))") }
        return (h[4], payload)
    }
}
