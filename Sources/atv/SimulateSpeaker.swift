import ArgumentParser
import ATVCore
import ATVDiscovery
import ATVPTP
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct SimulateSpeaker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "speaker",
        abstract: "A virtual AirPlay 1 speaker that writes what it plays to a WAV file.",
        usage: "atv simulate speaker [<options>]",
        discussion: """
        It records when it plays each frame by the sender's clock: from the sync packets (the frame they name plays at their NTP time) and its NTP timing exchange with the sender (the offset between the two clocks, from the reply with the shortest round trip). --play-instants writes them with the WAV's frame positions as JSON, the same form as atv simulate homepod --play-instants.

        Examples:
          atv simulate speaker --port 7000 --output got.wav --sessions 1
          atv stream song.flac --host 127.0.0.1 --port 7000
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on: loopback (127.0.0.0/8), or a test address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) of a private network namespace.")
    var address: String = "127.0.0.1"
    @Option(help: "RTSP port (0 = any free port).") var port: Int = 0
    @Option(help: "WAV file to write (session n > 1 writes NAME-n.wav).") var output: String = "speaker.wav"
    @Option(help: "JSON file to write, at the end of each session, with when each packet played (by the sender's clock and the local monotonic clock) and its place in the WAV file.")
    var playInstants: String?
    @Option(help: "Name of the speaker.") var name: String = "swift-atv speaker"
    @Option(help: "Exit after this many streams (0 = run until Ctrl-C).") var sessions: Int = 0
    @Option(help: "Device id (MAC style) used in the RAOP name and AirPlay TXT.") var deviceId: String = "AA:BB:CC:DD:EE:FF"
    @Flag(help: "Do not advertise the speaker over mDNS (_raop._tcp, _airplay._tcp on --address).") var noAdvertise = false

    func validate() throws {
        let parts = deviceId.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
            throw ValidationError("--device-id must look like AA:BB:CC:DD:EE:FF")
        }
        try SimulatedAddress.validate(address)
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            let speaker = try await VirtualSpeaker.start(.init(host: address, port: port, name: name, deviceID: deviceId.uppercased(), outputPath: output))
            print("Virtual speaker \"\(name)\" listening on \(address):\(speaker.port) (RAOP), writing \(output)")
            let responder = noAdvertise ? nil : await advertise(port: speaker.port)
            fflush(nil)
            let stop = InterruptHandler { Task { await responder?.stop(); await speaker.stop() } }
            defer { stop.cancel() }
            var ended = 0
            for await event in speaker.events() {
                if case .sessionEnded(let wav, let report) = event {
                    ended += 1
                    print("Stream ended: \(wav ?? "-")")
                    print(report.description.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
                    if let playInstants { SimulatedAddress.write(PlayoutLog(speaker: report, wav: wav), to: playInstants) }
                    fflush(nil)
                    if sessions > 0 && ended >= sessions { break }
                }
            }
            await responder?.stop()
            await speaker.stop()
        }
    }

    /// Publishes the speaker on --address; a port that cannot be bound is one warning line.
    func advertise(port: Int) async -> MDNSResponder? {
        let services = MDNSService.airPlay1Speaker(name: name, deviceID: deviceId, port: UInt16(port))
        do {
            let r = try await MDNSResponder.start(services, options: .init(interfaceAddresses: [address]))
            let interface = address.hasPrefix("127.") ? "lo" : "the interface of \(address)"
            let how = r.multicastInterfaces.isEmpty ? "unicast queries only (\(interface) has no multicast)" : "also multicast on \(interface)"
            print("Advertising \"\(services[0].instance)\" (_raop._tcp) and \"\(name)\" (_airplay._tcp) on \(address) via mDNS, \(how)")
            return r
        } catch {
            print("Warning: not advertising over mDNS: \(error)")
            return nil
        }
    }
}

/// Where the virtual receivers may listen, and how they write their play instants.
enum SimulatedAddress {
    /// Loopback (127.0.0.0/8), or a documentation address (RFC 5737: 192.0.2.0/24,
    /// 198.51.100.0/24, 203.0.113.0/24), which no real network routes: what tests give the veth
    /// links of their private network namespaces. Never the machine's own network.
    static func validate(_ address: String, option: String = "--address") throws {
        guard PTPMaster.isIPAddress(address) else { throw ValidationError("\(option) must be an IP address") }
        guard isAllowed(address) else {
            throw ValidationError("\(option) must be a loopback address (127.0.0.0/8) or a test address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)")
        }
    }

    static func isAllowed(_ address: String) -> Bool {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        let prefix = parts.prefix(3).joined(separator: ".")
        return parts[0] == "127" || ["192.0.2", "198.51.100", "203.0.113"].contains(prefix)
    }

    /// Writes a playout log (atomically); a failure is one warning line.
    static func write(_ log: PlayoutLog, to path: String) {
        do {
            try log.encoded().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            print("Warning: could not write \(path): \(PathName.describe(error))")
        }
    }
}
