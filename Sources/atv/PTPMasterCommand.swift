import ArgumentParser
import ATVCore
import ATVPTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `atv ptp-master`: the PTP clock master AirPlay 2 sessions use, on its own, so that a PTP
/// follower we did not write (linuxptp's ptp4l, nqptp) can be pointed at it.
struct PTPMasterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptp-master",
        abstract: "Run the PTP clock master (IEEE 1588 over UDP 319/320) that AirPlay 2 receivers follow.",
        usage: "atv ptp-master [--address <address>] [--peer <peer> ...] [<options>]",
        discussion: """
        Sends Announce and Apple's Signaling every second and Sync with Follow_Up every 125 ms (two-step, transportSpecific 1, domain 0) to 224.0.1.129 (FF0E::181 on IPv6), or by unicast to each --peer, from ports 319 and 320 on --address (0.0.0.0: IPv4 and IPv6); answers Delay_Req, sent by unicast or to the group (joined on the interface of --address), and unicast-transmission requests; never yields to another clock's Announce. IPv6 link-local addresses take the interface of --address when given without %interface. The timescale is the monotonic clock, set to TAI at start. It prints its clock identity and runs until --duration ends or Ctrl-C.

        Ports 319 and 320 need privileges. To run it unprivileged, lower the per-namespace limit: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=319, or give the binary the capability: sudo setcap cap_net_bind_service=+ep $(command -v atv). Only one program per network namespace can hold the ports (stop ptp4l or nqptp first).

        Examples:
          atv ptp-master --address 192.168.1.20 -v
          atv ptp-master --address 192.168.1.20 --peer 192.168.1.31 --duration 60
          atv ptp-master --address 192.168.1.20 --address fe80::1%eth0 -v
          ptp4l -i eth0 -4 -S -s --transportSpecific 1 -m   (on a follower)
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Local IPv4 or IPv6 address to bind UDP 319 and 320 on (0.0.0.0: every interface, IPv4 and IPv6); one IPv4 and one IPv6 address may be given.")
    var address: [String] = ["0.0.0.0"]
    @Option(name: .customLong("peer"), help: "Send by unicast to this follower instead of multicast (repeatable).")
    var peers: [String] = []
    @Option(help: "Seconds to run (default: until interrupted).")
    var duration: Double?

    func validate() throws {
        if let duration, !(duration.isFinite && duration > 0 && duration <= 31_536_000) {
            throw ValidationError("--duration must be a positive number of seconds")
        }
        for host in address + peers where !PTPMaster.isIPAddress(host) {
            throw ValidationError("\(host) is not an IP address")
        }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            // One reference per address, as sessions of both families in one process take them.
            let master = try await PTPMaster.shared(bindAddress: address[0])
            var references = 1
            do {
                for other in address.dropFirst() {
                    _ = try await PTPMaster.shared(bindAddress: other)
                    references += 1
                }
            } catch {
                for _ in 0..<references { await master.release() }
                throw error
            }
            for peer in peers { master.addPeer(peer) }
            let bound = await master.addresses()
            let groups = PTPFamily.allCases.filter { bound[$0] != nil }.map(\.multicast.description).joined(separator: " and ")
            let to = peers.isEmpty ? groups : peers.joined(separator: ", ")
            print("PTP master \(master.clockIdentity) (0x\(String(master.clockIdentity.value, radix: 16))) on \(address.joined(separator: ", ")) UDP 319/320, sending to \(to)")
            fflush(nil)
            if let duration {
                try? await Task.sleep(for: .milliseconds(Int64(duration * 1000)))
            } else {
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            }
            for _ in 0..<references { await master.release() }
        }
    }
}
