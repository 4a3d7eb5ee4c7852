// Binding UDP 319/320: the one place that says what to do when it fails (`atv ptp-master`, the
// PTP master of AirPlay sessions and `atv doctor` all use it). docs/PTP-AND-BUFFERED-AUDIO.md §2.8.
import ATVCore
import FoundationEssentials
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

package enum PTPPorts {
    /// The event and general ports.
    package static let all = [319, 320]

    /// Why a bind failed.
    package enum Problem: Sendable, Hashable {
        /// EACCES / EPERM: a privileged port and no privilege.
        case notPermitted
        /// EADDRINUSE: another process (a PTP daemon) holds it.
        case inUse
        case other
    }

    package static func problem(_ error: any Error) -> Problem {
        switch (error as? IOError)?.errnoCode {
        case EACCES?, EPERM?: .notPermitted
        case EADDRINUSE?: .inUse
        default: .other
        }
    }

    /// What to do about `problem` (nil when there is nothing specific to say).
    package static func advice(_ problem: Problem) -> String? {
        switch problem {
        case .notPermitted:
            let exe = executablePath() ?? "$(command -v atv)"
            let start = unprivilegedPortStart()
            let sysctl = start.map { $0 > 319 ? "sudo sysctl -w net.ipv4.ip_unprivileged_port_start=319 (net.ipv4.ip_unprivileged_port_start is \($0) now), or: " : "" } ?? ""
            return "allow it with: \(sysctl)sudo setcap cap_net_bind_service=+ep \(exe)"
        case .inUse:
            return "stop it (only one program per network namespace can hold UDP 319/320: a PTP daemon such as ptp4l or nqptp; ss -ulpn 'sport = :319' names it)"
        case .other:
            return nil
        }
    }

    /// What failed, without the advice: "cannot bind UDP on HOST:PORT: why".
    static func failure(host: String, port: Int, _ error: any Error) -> (text: String, problem: Problem) {
        let problem = problem(error)
        if problem == .inUse {
            let endpoint = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            return ("cannot bind UDP on \(endpoint): another program holds the port", problem)
        }
        let base = ATVError.listening(host, port, error, what: "bind UDP")
        if case .connectionFailed(let message) = base { return (message, problem) }
        return (base.description, problem)
    }

    /// The one-line error of a failed bind of `host:port`: the failure and what to do.
    package static func bindError(host: String, port: Int, _ error: any Error) -> ATVError {
        if let e = error as? ATVError { return e }
        let (text, problem) = failure(host: host, port: port, error)
        return .connectionFailed(text + (advice(problem).map { "; " + $0 } ?? ""))
    }

    /// Binds and closes 319 and 320 on `host` as the master does: nil when both can be bound,
    /// else one line saying what failed and what to do (for `atv doctor`).
    package static func check(host: String = "0.0.0.0") -> String? {
        var failures: [(port: Int, text: String, problem: Problem)] = []
        for port in all {
            do {
                close(try PTPKernelSocket.open(host: host, port: port))
            } catch {
                let (text, problem) = failure(host: host, port: port, error)
                failures.append((port, text, problem))
            }
        }
        guard let first = failures.first else { return nil }
        var text = first.text + (failures.count > 1 ? "; \(failures[1].port) too" : "")
        if let advice = advice(first.problem) { text += "; " + advice }
        return text
    }

    /// net.ipv4.ip_unprivileged_port_start of this network namespace (nil when unreadable).
    package static func unprivilegedPortStart() -> Int? {
        // Read to the end: /proc files report size 0, so a size-based read returns nothing.
        StandardStream.readFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .map { String(decoding: $0, as: UTF8.self) }
            .flatMap { Int($0.trimmingWhitespaceAndNewlines()) }
    }

    static func executablePath() -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }
}
