import ArgumentParser
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVPTP
import ATVRAOP
import ATVSimulator
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct SimulateHomePod: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "homepod",
        abstract: "A virtual HomePod (AirPlay 2 receiver) that writes what it plays to a WAV file.",
        discussion: """
        Accepts transient pairing (PIN 3939, like a HomePod) or PIN pairing + pair-verify, \
        HAP-encrypted RTSP, an event channel, NTP timing and encrypted real-time audio (PCM or \
        ALAC), and MRP over the AirPlay 2 remote-control channel (stream type 130) with a \
        scripted now-playing queue.

        Examples:
          atv simulate homepod --port 7000 --output got.wav
          atv stream song.flac --host 127.0.0.1 --port 7000
          atv playing --host 127.0.0.1 --protocol airplay --mrp-tunnel force

        Timing: NTP and PTP sessions are both accepted, as a HomePod does (--timing narrows it). A PTP session binds UDP 319/320 on --ptp-address (default --address; privileges as for atv ptp-master), follows the clock of the sender's RTSP address, and records when each frame plays by that clock. A sender on the same machine runs its master on 127.0.0.1, so give the HomePod another loopback address. --profile shairport-ap2 behaves as shairport-sync's AirPlay 2 mode with nqptp: PTP only, strict about the clock and the anchors.

          atv simulate homepod --address 127.0.0.2 --port 7000 --profile shairport-ap2
          atv stream song.flac --host 127.0.0.2 --port 7000 --timing ptp

        With pyatv as the sender (it opens the MRP tunnel by itself for a HomePod model; \
        `playing` instead of `stream_file=…` for remote control):
          atvremote --manual --address 127.0.0.1 --port 7000 --protocol raop \\
            --id AA:BB:CC:DD:EE:F0 stream_file=song.flac --service-properties \\
            ";features=0x4A7FCA00,0xBC354BD0;model=AudioAccessory5,1"
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on: loopback (127.0.0.0/8), or a test address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) of a private network namespace.")
    var address: String = "127.0.0.1"
    @Option(help: "JSON file to write, at the end of each session, with when each packet played (by the clock followed, PTP or the sender's NTP, and the local monotonic clock) and its place in the WAV file.")
    var playInstants: String?
    @Option(help: "Real-time streams: UDP port of the audio data socket (0 = any free port).") var audioPort: Int = 0
    @Option(help: "Real-time streams: the audio data port named in the stream SETUP reply instead of the real one (a relay in front of it).")
    var advertisedAudioPort: Int?
    @Option(help: "HTTP/RTSP port (0 = any free port).") var port: Int = 0
    @Option(help: "WAV file to write (session n > 1 writes NAME-n.wav).") var output: String = "homepod.wav"
    @Option(help: "Name of the HomePod.") var name: String = "swift-atv HomePod"
    @Option(name: .customLong("id"), help: "Device id (MAC style).") var deviceId: String = "AA:BB:CC:DD:EE:F0"
    @Option(help: "PIN for normal pair-setup (transient pairing always uses 3939).") var pin: String = "1111"
    @Option(help: "Exit after this many streams (0 = run until Ctrl-C).") var sessions: Int = 0
    @Flag(help: "Answer GET /info with 403 unless the User-Agent is an Apple AirPlay sender's (HomePod 27).")
    var requireUserAgent = false
    @Option(help: "Close the event channel this many seconds after the sender opened it.")
    var dropEventChannelAfter: Double?
    @Flag(help: "A stuck receiver: once audio arrives, discard it and answer no more RTSP requests (/feedback, SET_PARAMETER, TEARDOWN), nor ask for timing.") var noProgress = false
    @Flag(help: "Never send NTP timing requests (a receiver that plays by its own clock).") var noTimingRequests = false
    @Flag(help: "Advertise only _airplay._tcp, no _raop._tcp (as several third-party AirPlay 2 receivers do).") var noRaop = false
    @Flag(help: "Answer transient pair-setup with 200 and an in-band TLV error.") var transientError = false
    @Flag(help: "Do not advertise over mDNS (_airplay._tcp, _raop._tcp on 127.0.0.1).") var noAdvertise = false
    @Flag(help: "Offer no MRP tunnel: answer a remote-control SETUP (session isRemoteControlOnly, stream type 130) with 501.")
    var noMrpTunnel = false
    @Option(help: "Remote control (MRP over the AirPlay tunnel): seconds of playing before the next track (0 = never).")
    var advance: Double = 10
    @Option(help: "Session timing accepted: ntp, ptp or both.")
    var timing: String = "both"
    @Option(help: "Receiver behaviour: homepod, or shairport-ap2 (PTP only, strict, as shairport-sync with nqptp).")
    var profile: String = "homepod"
    @Option(help: "Address the PTP follower binds UDP 319/320 on (default: --address).")
    var ptpAddress: String?
    @Option(help: "Buffered (type 103) formats to list in /info supportedFormats.bufferStream and accept, comma-separated: alac (44.1 kHz 16-bit), aac (AAC-LC 44.1 kHz). Default: none listed, both accepted.")
    var bufferedFormats: String?

    /// `--buffered-formats` as formats; nil when not given or not valid.
    static func bufferedFormats(_ text: String) -> [BufferedAudioFormat]? {
        let names = text.split(separator: ",").map { $0.trimmingWhitespace() }
        let formats = names.compactMap { ["alac": BufferedAudioFormat.alac44100x16Stereo, "aac": .aacLC44100Stereo][$0] }
        return !names.isEmpty && formats.count == names.count ? formats : nil
    }
    @Option(help: "Buffered streams: stop reading the audio data connection after this many packets, for good, while still answering RTSP (a hung receiver; its receive buffer is made small, 16 KiB).")
    var stopReadingAfter: Int?

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        let parts = deviceId.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
            throw ValidationError("--id must look like AA:BB:CC:DD:EE:FF")
        }
        guard !pin.isEmpty, pin.allSatisfy(\.isNumber) else { throw ValidationError("--pin must be digits") }
        guard advance >= 0, advance < 86_400 else { throw ValidationError("--advance must be 0 (never) or a number of seconds") }
        try SimulatedAddress.validate(address)
        guard (0 ... 65535).contains(audioPort), (1 ... 65535).contains(advertisedAudioPort ?? 1) else {
            throw ValidationError("--audio-port and --advertised-audio-port must be UDP ports")
        }
        guard VirtualHomePod.Configuration.TimingAccepted(rawValue: timing) != nil else {
            throw ValidationError("--timing must be ntp, ptp or both")
        }
        guard VirtualHomePod.Configuration.Profile(rawValue: profile) != nil else {
            throw ValidationError("--profile must be homepod or shairport-ap2")
        }
        if let ptpAddress, !PTPMaster.isIPAddress(ptpAddress) {
            throw ValidationError("--ptp-address must be an IP address")
        }
        if let bufferedFormats, Self.bufferedFormats(bufferedFormats) == nil {
            throw ValidationError("--buffered-formats must be alac, aac or alac,aac")
        }
        if let n = stopReadingAfter, n < 1 {
            throw ValidationError("--stop-reading-after must be a number of packets (1 or more)")
        }
        if let d = dropEventChannelAfter, !(d > 0 && d < 86_400) {
            throw ValidationError("--drop-event-channel-after must be a positive number of seconds")
        }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors {
            var config = VirtualHomePod.Configuration(
                host: address, port: port, name: name, deviceID: deviceId.uppercased(), pin: pin, outputPath: output,
                requireUserAgent: requireUserAgent, transientError: transientError,
                dropEventChannelAfter: dropEventChannelAfter.map { .milliseconds(Int64($0 * 1000)) }, noProgress: noProgress)
            config.timingRequests = !noTimingRequests
            config.remoteControl = VirtualMRP.Configuration(advanceInterval: advance > 0 ? advance : nil)
            config.remoteControlTunnel = !noMrpTunnel
            config.timing = VirtualHomePod.Configuration.TimingAccepted(rawValue: timing) ?? .both
            config.profile = VirtualHomePod.Configuration.Profile(rawValue: profile) ?? .homepod
            config.ptpAddress = ptpAddress
            config.audioPort = audioPort
            config.advertisedAudioPort = advertisedAudioPort
            config.bufferedFormats = bufferedFormats.flatMap(Self.bufferedFormats)
            if let stopReadingAfter {
                config.dataStall = .init(afterPackets: stopReadingAfter, duration: nil)
                config.dataReceiveBuffer = 16_384
            }
            let pod = try await VirtualHomePod.start(config)
            print("Virtual HomePod \"\(name)\" listening on \(address):\(pod.port) (AirPlay 2), writing \(output)")
            print("TXT for atvremote --manual: --service-properties \"\(pod.raopServicePropertiesArgument())\"")
            var responder: MDNSResponder?
            if !noAdvertise {
                do {
                    let r = try await MDNSResponder.start(pod.mdnsServices(address: address, raop: !noRaop), options: .init(interfaceAddresses: [address]))
                    print("Advertising \"\(name)\" (\(noRaop ? "_airplay._tcp only" : "_airplay._tcp, _raop._tcp")) on \(address) via mDNS")
                    responder = r
                } catch {
                    print("Warning: not advertising over mDNS: \(error)")
                }
            }
            fflush(nil)
            let advertiser = responder
            let stop = InterruptHandler { Task { await advertiser?.stop(); await pod.stop() } }
            defer { stop.cancel() }
            var ended = 0
            for await event in pod.events() {
                switch event {
                case .paired(let mode):
                    print("Paired (\(mode.rawValue))")
                case .eventChannel(let state):
                    print("Event channel: \(state.rawValue)")
                case .sessionEnded(let wav, let report):
                    ended += 1
                    print("Stream ended: \(wav ?? "-")")
                    print(report.description.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
                    if let playInstants { SimulatedAddress.write(PlayoutLog(homePod: report, wav: wav), to: playInstants) }
                case .dataChannel(let open):
                    print("Remote-control data channel: \(open ? "opened" : "closed")")
                case .request:
                    break
                }
                fflush(nil)
                if sessions > 0 && ended >= sessions { break }
            }
            await advertiser?.stop()
            await pod.stop()
        }
    }
}
