import ArgumentParser
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct SimulateMRP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mrp",
        abstract: "A virtual Apple TV's MRP service: PIN pairing, pair-verify, a scripted now-playing queue, commands, volume.",
        usage: "atv simulate mrp [<options>]",
        discussion: """
        Pairings are kept while it runs. Prints one line per pairing, verification, command, \
        button and volume change.

        Examples:
          atv simulate mrp --port 49152 --pin 1234
          atv pair --host 127.0.0.1 --protocol mrp --pin 1234
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "TCP port (0 = any free port).") var port: Int = 0
    @Option(help: "The PIN pairing expects (what a real device shows on screen).") var pin: String = "1111"
    @Option(help: "Name of the device.") var name: String = "swift-atv Apple TV"
    @Option(help: "The device's UID (DEVICE_INFO deviceUID).") var id: String = "F2204E63-BCAB-4941-80A0-06C46CB71391"
    @Option(help: "The accessory's pairing identifier (default: a random UUID).") var pairingId: String?
    @Option(help: "Seconds of playing before the script moves to the next track (0 = never).") var advance: Double = 10
    @Option(help: "Initial volume in percent.") var volume: Double = 50
    @Flag(help: "Also serve artwork over HTTP and announce its artworkURL (clients fetch it before asking in-band).") var artworkHttp = false
    @Flag(help: "Advertise _mediaremotetv._tcp over mDNS on 127.0.0.1 (use inside a network namespace).") var advertise = false

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard !pin.isEmpty, pin.allSatisfy(\.isNumber) else { throw ValidationError("--pin must be digits") }
        guard advance >= 0, advance.isFinite else { throw ValidationError("--advance must be ≥ 0") }
        guard (0 ... 100).contains(volume) else { throw ValidationError("--volume must be 0...100") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            var config = VirtualMRP.Configuration(port: port, name: name, deviceID: id, pin: pin,
                                                  advanceInterval: advance > 0 ? advance : nil, volume: volume,
                                                  artworkOverHTTP: artworkHttp)
            if let pairingId { config.identity = HAPIdentity(identifier: pairingId) }
            let device = try await VirtualMRP.start(config)
            print("Virtual MRP device \"\(name)\" listening on 127.0.0.1:\(device.port), PIN \(pin), pairing id \(String(decoding: config.identity.identifier, as: UTF8.self))")
            print("Now playing \"\(device.currentTrack.title)\" by \(device.currentTrack.artist)")
            var advertiser: MDNSResponder?
            if advertise {
                do {
                    advertiser = try await MDNSResponder.start(device.mdnsServices(), options: .init(interfaceAddresses: ["127.0.0.1"]))
                    print("Advertising \"\(name)\" (_mediaremotetv._tcp) on 127.0.0.1 via mDNS")
                } catch {
                    print("Warning: not advertising over mDNS: \(error)")
                }
            }
            fflush(nil)
            let responder = advertiser
            let stop = InterruptHandler { Task { await responder?.stop(); await device.stop() } }
            defer { stop.cancel() }
            var printer = MRPReportPrinter(device)
            while !stop.interrupted {
                try? await Task.sleep(for: .milliseconds(100))
                let lines = printer.newLines(device)
                if !lines.isEmpty {
                    print(lines.joined(separator: "\n"))
                    fflush(nil)
                }
            }
            await responder?.stop()
            await device.stop()
        }
    }
}

/// What a virtual MRP device did since the last call, one line each (`atv simulate mrp` and the
/// MRP side of `atv simulate appletv`).
struct MRPReportPrinter {
    private var seen = VirtualMRP.Report()
    private var seenArtwork = 0
    private var lastTrack: String
    private var lastPlaying: Bool

    init(_ device: VirtualMRP) {
        lastTrack = device.currentTrack.title
        lastPlaying = device.nowPlaying.playing
    }

    mutating func newLines(_ device: VirtualMRP) -> [String] {
        var out: [String] = []
        let r = device.report
        for p in r.pairings.dropFirst(seen.pairings.count) { out.append("Paired with \(p)") }
        for v in r.verifications.dropFirst(seen.verifications.count) { out.append("Verified \(v)") }
        for f in r.authFailures.dropFirst(seen.authFailures.count) { out.append("Authentication failed: \(f)") }
        for c in r.commands.dropFirst(seen.commands.count) { out.append("Command \(c)") }
        for b in r.buttons.dropFirst(seen.buttons.count) { out.append("Button \(b)") }
        for v in r.volumes.dropFirst(seen.volumes.count) { out.append("Volume \(v)") }
        for p in r.power.dropFirst(seen.power.count) { out.append("Power \(p)") }
        let art = device.httpArtworkRequests
        for a in art.dropFirst(seenArtwork) { out.append("Artwork GET \(a)") }
        seenArtwork = art.count
        for g in r.outputGroups.dropFirst(seen.outputGroups.count) { out.append("Output devices [\(g.joined(separator: ", "))]") }
        let track = device.currentTrack.title, playing = device.nowPlaying.playing
        if track != lastTrack { out.append("Now playing \"\(track)\" by \(device.currentTrack.artist)") }
        if playing != lastPlaying { out.append(playing ? "State playing" : "State paused") }
        seen = r
        lastTrack = track
        lastPlaying = playing
        return out
    }
}
