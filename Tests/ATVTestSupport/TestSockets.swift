import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tiny loopback sockets for tests. Every receive has a timeout and waits on a thread of its own
/// (`offPool`), never on one of the concurrency pool's. Sendable: only the descriptor is stored.
public final class TestSocket: @unchecked Sendable {
    public let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    private func setTimeout(_ ms: Int) {
        var tv = timeval(tv_sec: ms / 1000, tv_usec: Int((ms % 1000) * 1000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public static func tcp(port: Int) throws -> TestSocket {
        let s = TestSocket(fd: socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        var addr = loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestFailure("connect to 127.0.0.1:\(port) failed: errno \(errno)") }
        return s
    }

    public static func udp() throws -> TestSocket {
        let s = TestSocket(fd: socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0))
        var addr = loopback(port: 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestFailure("bind failed: errno \(errno)") }
        return s
    }

    public var port: Int {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    public func send(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            done += n
        }
    }

    public func sendTo(port: Int, _ bytes: [UInt8]) {
        var addr = Self.loopback(port: port)
        _ = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, bytes.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    /// One read (TCP) or one datagram (UDP); nil on timeout or close.
    public func receive(timeoutMs: Int = 2000) async -> [UInt8]? {
        await offPool { self.receiveBlocking(timeoutMs: timeoutMs) }
    }

    /// One datagram and the loopback port it came from; nil on timeout.
    public func receiveFrom(timeoutMs: Int = 2000) async -> (bytes: [UInt8], port: Int)? {
        await offPool { () -> (bytes: [UInt8], port: Int)? in
            self.setTimeout(timeoutMs)
            var buf = [UInt8](repeating: 0, count: 65536)
            var from = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buf.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) { f in
                    f.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(self.fd, b.baseAddress, b.count, 0, $0, &len) }
                }
            }
            guard n > 0 else { return nil }
            return (Array(buf[0..<n]), Int(UInt16(bigEndian: from.sin_port)))
        }
    }

    private func receiveBlocking(timeoutMs: Int) -> [UInt8]? {
        setTimeout(timeoutMs)
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Array(buf[0..<n])
    }
}
