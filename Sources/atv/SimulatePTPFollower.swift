import ArgumentParser
import ATVCore
import ATVPTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `atv simulate ptp-follower`: the PTP follower the virtual receivers use, on its own, so that a
/// master we did not write (linuxptp's ptp4l) or ours can be followed and the offset checked.
struct SimulatePTPFollower: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptp-follower",
        abstract: "Follow a PTP clock master (UDP 319/320) and print the offset to it.",
        usage: "atv simulate ptp-follower --master <ip> [--address <ip>] [<options>]",
        discussion: """
        Follows one master address the way the virtual HomePod does: nothing counts before an Announce from it, each Sync's kernel receive time pairs with its Follow_Up, and the estimate is the least-delayed sample of the last 2 s (plus the path delay measured with Delay_Req when --delay-requests is given). Prints the state, the grandmaster and the offset of the local monotonic clock to the master's time every --interval seconds.

        Ports 319 and 320 need privileges (see atv ptp-master --help), and only one program per network namespace can hold them.

        Examples:
          atv simulate ptp-follower --address 127.0.0.2 --master 127.0.0.1
          atv simulate ptp-follower --address 0.0.0.0 --multicast 192.0.2.2 \\
            --master 192.0.2.1 --delay-requests --json
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Local IPv4 or IPv6 address to bind UDP 319 and 320 on.")
    var address: String = "0.0.0.0"
    @Option(help: "The master's address: only its messages count.")
    var master: String
    @Option(help: "Also join 224.0.1.129 on the interface with this IPv4 address (a master that multicasts).")
    var multicast: String?
    @Flag(help: "Measure the path delay with Delay_Req after each Follow_Up.")
    var delayRequests = false
    @Option(help: "Seconds between status lines.")
    var interval: Double = 1
    @Option(help: "Seconds to run (default: until interrupted).")
    var duration: Double?
    @Flag(help: "One JSON object per status line.")
    var json = false

    func validate() throws {
        if let duration, !(duration.isFinite && duration > 0 && duration <= 31_536_000) {
            throw ValidationError("--duration must be a positive number of seconds")
        }
        guard interval.isFinite, interval >= 0.1, interval <= 3600 else {
            throw ValidationError("--interval must be 0.1...3600 seconds")
        }
        for host in [address, master] + (multicast.map { [$0] } ?? []) where !PTPMaster.isIPAddress(host) {
            throw ValidationError("\(host) is not an IP address")
        }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            let follower = try await PTPFollower.start(bindAddress: address, master: master, delayRequests: delayRequests,
                                                       multicastInterface: multicast)
            print("PTP follower on \(address) UDP 319/320, following \(master)")
            fflush(nil)
            let stop = InterruptHandler { Task { await follower.stop() } }
            defer { stop.cancel() }
            let start = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                print(Self.line(follower.status, json: json))
                fflush(nil)
                if let duration, ContinuousClock.now - start >= .milliseconds(Int64(duration * 1000)) { break }
            }
            await follower.stop()
        }
    }

    /// One status line; with `json`, also CLOCK_REALTIME − CLOCK_MONOTONIC (ns) read now, so a
    /// test can compare the offset with a master that runs on the realtime clock.
    static func line(_ s: PTPFollowerStatus, json: Bool) -> String {
        if json {
            var fields = ["\"state\": \"\(s.state.rawValue)\"", "\"samples\": \(s.samples)",
                          "\"realtimeMinusMonotonic\": \(realtimeMinusMonotonic())"]
            if let g = s.grandmaster { fields.append("\"grandmaster\": \"\(g)\"") }
            if let o = s.offset { fields.append("\"offset\": \(o)") }
            if let d = s.pathDelay { fields.append("\"pathDelay\": \(d)") }
            return "{" + fields.joined(separator: ", ") + "}"
        }
        var text = "state \(s.state.rawValue)"
        if let g = s.grandmaster { text += ", grandmaster \(g)" }
        if let o = s.offset { text += ", offset \(o) ns" }
        if let d = s.pathDelay { text += ", path delay \(d) ns" }
        return text + ", \(s.samples) samples"
    }

    /// realtime − monotonic, read robustly (SystemClocks: not split by a preemption).
    static func realtimeMinusMonotonic() -> Int64 { SystemClocks.realtimeOffset() }
}
