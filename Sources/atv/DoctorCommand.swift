import ArgumentParser
import ATVAudio
import ATVCore
import ATVDiscovery
import ATVPTP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `atv doctor`: what this machine needs, one line per check, each saying what is wrong and what
/// to do. Sends nothing on the network: it binds and closes local sockets and reads local state.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check what atv needs on this machine: FFmpeg, multicast, the settings file, the PTP ports, the clock.",
        discussion: """
        Prints one line per check (ok or FAIL, with what to do) and exits 1 if any check fails. Nothing is sent on the network.

        Examples:
          atv doctor
          atv doctor --storage ~/.config/swift-atv/devices.json
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Settings file to check (default $XDG_CONFIG_HOME/swift-atv/devices.json).") var storage: String?

    struct Check {
        var name: String
        var ok: Bool
        var text: String
    }

    func run() async throws {
        global.bootstrapLogging()
        let checks = [Self.ffmpeg(), Self.multicast(), Self.storageFile(storage ?? FileStorage.defaultPath()),
                      Self.ptpPorts(), Self.clock()]
        for c in checks {
            print("\(c.ok ? "ok  " : "FAIL") \(c.name): \(printable(c.text))")
        }
        let failed = checks.filter { !$0.ok }.count
        if failed > 0 {
            StandardStream.writeError("atv: error: \(failed) of \(checks.count) checks failed (the FAIL lines above say what to do)\n")
            throw ExitCode(1)
        }
    }

    /// The FFmpeg libraries: names, versions and where they were loaded from; a major version other
    /// than the one atv was built against fails.
    static func ffmpeg() -> Check {
        let libs = FFmpegLibraries.loaded()
        let list = libs.map { "\($0.name) \($0.version)" }.joined(separator: ", ")
        let dirs = Set(libs.compactMap { $0.path.map { PathName.directory($0) } }).sorted()
        if let bad = libs.first(where: { !$0.compatible }) {
            return Check(name: "ffmpeg", ok: false, text: "\(bad.name) \(bad.version) is loaded but atv was built against major version \(bad.builtAgainstMajor): install the FFmpeg libraries atv was built with, or rebuild atv (scripts/install)")
        }
        let from = dirs.isEmpty ? "" : " from \(dirs.joined(separator: ", "))"
        return Check(name: "ffmpeg", ok: true, text: "\(list) (FFmpeg \(FFmpegLibraries.release)) loaded\(from)")
    }

    /// Interfaces the scanner would send mDNS queries out of (IPv4, multicast-capable).
    static func multicast() -> Check {
        let all = UDPEndpoint.multicastInterfaces().map { (name: $0.name, address: $0.address?.ipAddress ?? "?") }
        func describe(_ d: [(name: String, address: String)]) -> String { d.map { "\($0.name) (\($0.address))" }.joined(separator: ", ") }
        let outside = all.filter { !$0.address.hasPrefix("127.") }
        if !outside.isEmpty {
            return Check(name: "multicast", ok: true, text: "possible on \(describe(outside))")
        }
        if !all.isEmpty {
            return Check(name: "multicast", ok: false, text: "only on loopback (\(describe(all))): scanning finds no device on the network; connect a network interface with multicast, or name devices with --host/--hosts")
        }
        return Check(name: "multicast", ok: false, text: "no IPv4 interface can do multicast: scanning finds no device; bring up a network interface with multicast (ip link set DEV multicast on), or name devices with --host/--hosts")
    }

    /// The settings file: absent is fine; else a regular file that only its owner can read, and
    /// that parses.
    static func storageFile(_ path: String) -> Check {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT {
                return Check(name: "storage", ok: true, text: "\(path) does not exist yet (pairing creates it with mode 0600)")
            }
            return Check(name: "storage", ok: false, text: "cannot look at \(path) (\(errno == EACCES ? "permission denied" : "unreadable")): make its folder accessible to this user, or pass --storage")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return Check(name: "storage", ok: false, text: "\(path) is not a regular file: move it away (pairing creates a new one)")
        }
        let mode = st.st_mode & 0o777
        if mode & 0o077 != 0 {
            return Check(name: "storage", ok: false, text: "\(path) has mode \(String(cFormat: "%04o", mode)): other users can read the credentials in it; run: chmod 600 \(path)")
        }
        guard access(path, R_OK) == 0 else {
            return Check(name: "storage", ok: false, text: "\(path) is not readable by this user (it belongs to uid \(st.st_uid)): run atv as that user, or pass --storage")
        }
        do {
            let store = FileStorage(path: path)
            try store.load()
            let n = try store.allSettings.count
            return Check(name: "storage", ok: true, text: "\(path) is readable, mode 0600, \(n) device\(n == 1 ? "" : "s")")
        } catch let error as ATVError {
            return Check(name: "storage", ok: false, text: "\(error.description): fix or move the file away (pairing creates a new one)")
        } catch {
            return Check(name: "storage", ok: false, text: "\(path) cannot be read: fix or move it away (pairing creates a new one)")
        }
    }

    /// UDP 319 (event) and 320 (general), the ports a PTP timing master listens on: bound and
    /// closed at once; a failure says what to do as `atv ptp-master` does (ATVPTP's PTPPorts).
    static func ptpPorts() -> Check {
        guard let problem = PTPPorts.check(host: "0.0.0.0") else {
            return Check(name: "ptp ports", ok: true, text: "UDP 319 and 320 can be bound")
        }
        return Check(name: "ptp ports", ok: false, text: problem)
    }

    /// CLOCK_MONOTONIC: readable, never going back, with at most 1 ms resolution.
    static func clock() -> Check {
        var a = timespec(), b = timespec(), res = timespec()
        guard clock_gettime(CLOCK_MONOTONIC, &a) == 0, clock_gettime(CLOCK_MONOTONIC, &b) == 0,
              clock_getres(CLOCK_MONOTONIC, &res) == 0 else {
            return Check(name: "clock", ok: false, text: "the monotonic clock (CLOCK_MONOTONIC) cannot be read: atv needs a Linux kernel that provides it")
        }
        let ns = { (t: timespec) in Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }
        guard ns(b) >= ns(a) else {
            return Check(name: "clock", ok: false, text: "the monotonic clock went backwards: audio timing would be wrong; check the kernel's clock source (/sys/devices/system/clocksource)")
        }
        guard ns(res) <= 1_000_000 else {
            return Check(name: "clock", ok: false, text: "the monotonic clock ticks only every \(ns(res) / 1000) µs: audio pacing needs 1 ms or finer; check the kernel's clock source")
        }
        return Check(name: "clock", ok: true, text: "monotonic, resolution \(ns(res)) ns")
    }
}
