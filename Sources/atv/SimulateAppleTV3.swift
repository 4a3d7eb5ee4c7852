import ArgumentParser
import ATVCore
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct SimulateAppleTV3: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "appletv3",
        abstract: "A virtual Apple TV 3 speaking DMAP/DACP: login, now playing with a long poll, commands, artwork.",
        usage: "atv simulate appletv3 [<options>]",
        discussion: """
        Logins must present the pairing GUID (as `atvremote --dmap-credentials 0x<GUID>` does); \
        others get 503. A script of three songs plays; --advance moves to the next one every N \
        seconds. Prints one line per login, command, button/touch, property and state change.

        Examples:
          atv simulate appletv3 --port 3689 --guid 0x0000000000000001
          atv playing --host 127.0.0.1 --port 3689 --protocol dmap \\
            --dmap-credentials 0x0000000000000001
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "TCP port (0 = any free port).") var port: Int = 0
    @Option(help: "Name of the device (server-info).") var name: String = "swift-atv Apple TV 3"
    @Option(name: [.customLong("guid"), .customLong("credentials")],
            help: "The pairing GUID logins must use (16 hex digits, with or without 0x).") var guid: String = "0x0000000000000001"
    @Option(help: "A Home Sharing id also accepted (hsgid).") var homeSharingId: String?
    @Option(help: "Seconds between scripted item changes (0 = never).") var advance: Double = 0
    @Flag(help: "Start idle (nothing playing until `play`).") var idle = false

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        var g = guid.uppercased()
        if g.hasPrefix("0X") { g.removeFirst(2) }
        guard g.count == 16, g.allSatisfy(\.isHexDigit) else { throw ValidationError("--guid must be 16 hex digits (optionally 0x-prefixed)") }
        guard advance >= 0 else { throw ValidationError("--advance must be ≥ 0") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            let config = VirtualAppleTV3.Configuration(port: port, name: name, pairingGUID: guid, homeSharingID: homeSharingId,
                                                       advanceEvery: advance > 0 ? .milliseconds(Int(advance * 1000)) : nil,
                                                       startPlaying: !idle)
            let device = try await VirtualAppleTV3.start(config)
            let g = guid.uppercased().hasPrefix("0X") ? "0x" + guid.dropFirst(2).uppercased() : "0x" + guid.uppercased()
            print("Virtual Apple TV 3 \"\(name)\" listening on 127.0.0.1:\(device.port) (DMAP), credentials \(g)")
            fflush(nil)
            let stop = InterruptHandler { Task { await device.stop() } }
            defer { stop.cancel() }
            var seen = VirtualAppleTV3.Report()
            var last: VirtualAppleTV3.NowPlaying?
            while !stop.interrupted {
                try? await Task.sleep(for: .milliseconds(100))
                let r = device.report()
                for l in r.logins.dropFirst(seen.logins.count) { print("Login accepted: \(l)") }
                for l in r.refusedLogins.dropFirst(seen.refusedLogins.count) { print("Login refused: \(l)") }
                for c in r.commands.dropFirst(seen.commands.count) { print("Command \(c)") }
                for p in r.prompts.dropFirst(seen.prompts.count) { print("Prompt \(p)") }
                for p in r.properties.dropFirst(seen.properties.count) { print("Property \(p)") }
                var n = device.nowPlaying()
                if n.revision != last?.revision {
                    let title = device.currentItem()?.title ?? "nothing"
                    let state = ["idle", "loading", "stopped", "paused", "playing"][min(Int(n.playState), 4)]
                    print("State revision \(n.revision): \(title), \(state), position \(n.positionMs / 1000) s, shuffle \(n.shuffle), repeat \(n.repeatMode), volume \(n.volume)")
                    n.positionMs = 0
                    last = n
                }
                fflush(nil)
                seen = r
            }
            await device.stop()
        }
    }
}
