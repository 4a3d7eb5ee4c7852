import ATVAirPlayCore
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVPTP
import ATVRAOP
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// A virtual HomePod: the AirPlay 2 receiver side as pyatv 0.18 and real HomePods speak it
/// (transient or PIN HAP pairing, encrypted RTSP, realtime audio). One TCP port serves
/// `GET /info`, HAP pairing
/// (`/pair-pin-start`, transient and PIN `/pair-setup`, `/pair-verify`), then RTSP over the
/// HAP-encrypted connection: session SETUP (event channel, NTP timing), stream SETUP (type 96
/// real-time audio, `ct` 1 PCM or 2 ALAC, key `shk`), RECORD, FLUSH, SET_PARAMETER, GET_PARAMETER,
/// `/feedback`, TEARDOWN. Audio arrives over UDP encrypted per packet; it is decrypted, put in
/// order (retransmit requests on the control port), decoded and written to a WAV file.
///
/// Loopback only by default (`127.0.0.1`). Each control connection holds at most one session.
package final class VirtualHomePod: Sendable {
    package struct Configuration: AudioReceiverConfiguration {
        package var host: String
        /// TCP port for HTTP/RTSP; 0 picks a free port (see `port`).
        package var port: Int
        package var name: String
        /// MAC style, e.g. "AA:BB:CC:DD:EE:FF".
        package var deviceID: String
        package var model: String
        /// AirTunes version (`srcvers`, `Server: AirTunes/…`).
        package var sourceVersion: String
        package var osVersion: String
        /// Features word (TXT `features`/`ft`, /info `features`); default: a HomePod mini's
        /// `0x4A7FCA00,0xBC354BD0` (bits 38 and 48 set: pyatv takes its AirPlay 2 path).
        package var features: UInt64
        /// The accessory's long-term identity (pairing identifier and Ed25519 key; TXT `pk`).
        package var identity: HAPIdentity
        /// PIN for normal (non-transient) pair-setup.
        package var pin: String
        /// PIN of transient pair-setup (HomePods: 3939).
        package var transientPIN: String
        /// Controllers that may pair-verify from the start (more are added by PIN pair-setup).
        package var pairedControllers: [HAPPairedController]
        /// WAV file of the first session; session n > 1 writes `<stem>-n.wav`. nil: no file.
        package var outputPath: String?
        package var jitter: JitterBuffer.Configuration
        /// Interval between NTP timing requests to the sender (first one right after session SETUP).
        package var timingInterval: Duration
        /// After TEARDOWN (or a closed connection) wait this long for in-flight UDP before finishing.
        package var endGrace: Duration

        // Behaviour switches (fault injection for senders' tests).
        /// Answer `GET /info` with 403 unless the User-Agent looks like an Apple AirPlay sender
        /// (`AirPlay/…`), as HomePod software 27 does.
        package var requireUserAgent: Bool
        /// Refuse session requests (SETUP, RECORD, ...) on an unencrypted connection with 470.
        package var requirePairing: Bool
        /// Answer transient pair-setup M1 with 200 and an in-band TLV8 error (kTLVError), as some receivers do.
        package var transientError: Bool
        /// Close the event channel this long after the sender connected to it.
        package var dropEventChannelAfter: Duration?
        /// A stuck receiver, as every sender can see one: the session is accepted, but once audio
        /// arrives it is discarded (nothing decrypted or written) and no request on the control
        /// connection is answered any more (`/feedback`, SET_PARAMETER, TEARDOWN…); after the first
        /// timing exchange it asks for timing no more.
        package var noProgress: Bool
        /// Send NTP timing requests to the sender (every `timingInterval`). False: never — a
        /// receiver that plays by its own clock (or follows PTP) need not ask.
        package var timingRequests: Bool = true
        /// End the session when the sender has not answered the event channel's `POST /command`
        /// within this time (a real HomePod drops it after ~30 s).
        package var eventReplyTimeout: Duration
        /// UDP port for audio data (0 = any free port), and the port announced in the stream SETUP
        /// reply instead of it (to put a loss relay in front of it).
        package var audioPort: Int
        package var advertisedAudioPort: Int?
        /// Test hook to simulate loss: return true to drop the n-th audio datagram (0-based) on arrival.
        package var dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)?
        /// Now playing behind the MRP tunnel (name, deviceID and model are taken from this configuration).
        package var remoteControl: VirtualMRP.Configuration = VirtualMRP.Configuration()
        /// Offer MRP over the AirPlay 2 remote-control channel. False: a remote-control session SETUP
        /// (`isRemoteControlOnly`) or stream SETUP type 130 is answered 501 Not Implemented.
        package var remoteControlTunnel = true
        /// Session timing accepted (`timingProtocol`): NTP, PTP, or both as a HomePod does.
        package var timing: TimingAccepted = .both
        /// A HomePod, or shairport-sync's AirPlay 2 mode (PTP only and strict; docs/PTP-AND-BUFFERED-AUDIO.md §5.1).
        package var profile: Profile = .homepod
        /// The address the PTP follower binds UDP 319/320 on (nil: `host`). Tests put the
        /// sender's master on 127.0.0.1 and this on 127.0.0.2: both need the ports.
        package var ptpAddress: String?
        /// The buffered (type 103) formats `/info` lists in `supportedFormats.bufferStream` and
        /// the stream SETUP accepts (others: 400); nil lists none and accepts every known one.
        package var bufferedFormats: [BufferedAudioFormat]?
        /// Buffered (type 103): stop reading the data connection once `afterPackets` packets
        /// arrived, for `duration` (nil: for good) — the receiver's side of TCP back-pressure, as a
        /// receiver whose buffer is full or that hangs does; the RTSP connection is still answered.
        package var dataStall: DataStall?
        /// Buffered: SO_RCVBUF of the data connection (nil: the system's), so that a stall reaches
        /// the sender as back-pressure after little data.
        package var dataReceiveBuffer: Int?

        package struct DataStall: Sendable, Equatable {
            package var afterPackets: Int
            package var duration: Duration?
            package init(afterPackets: Int, duration: Duration?) {
                self.afterPackets = afterPackets
                self.duration = duration
            }
        }

        package enum TimingAccepted: String, Sendable, CaseIterable {
            case ntp, ptp, both
        }

        package enum Profile: String, Sendable, CaseIterable {
            case homepod
            /// shairport-sync 5.2.1 with nqptp in AirPlay 2 mode: refuses NTP (501), needs
            /// `timingPeerInfo`, follows only the RTSP peer from the stream SETUP on, no time
            /// before an Announce, drops type-103 packets with an unknown SSRC, reads `rate` only
            /// as an integer, and (as Sonos and WiiM do) answers 400 to SETRATEANCHORTIME until it
            /// has measured the master's clock.
            case shairportAP2 = "shairport-ap2"
        }

        /// Whether a session may ask for this timing.
        var acceptsNTP: Bool { profile == .homepod && timing != .ptp }
        var acceptsPTP: Bool { profile == .shairportAP2 || timing != .ntp }

        package init(host: String = "127.0.0.1", port: Int = 0, name: String = "swift-atv HomePod",
                    deviceID: String = "AA:BB:CC:DD:EE:F0", model: String = "AudioAccessory5,1",
                    sourceVersion: String = "870.14.1", osVersion: String = "18.4",
                    features: UInt64 = 0xBC35_4BD0_4A7F_CA00,
                    identity: HAPIdentity = HAPIdentity(identifier: UUID().uuidString),
                    pin: String = "1111", transientPIN: String = "3939",
                    pairedControllers: [HAPPairedController] = [], outputPath: String? = nil,
                    jitter: JitterBuffer.Configuration = .init(), timingInterval: Duration = .seconds(3),
                    endGrace: Duration = .milliseconds(250), requireUserAgent: Bool = false,
                    requirePairing: Bool = true, transientError: Bool = false,
                    dropEventChannelAfter: Duration? = nil, noProgress: Bool = false,
                    eventReplyTimeout: Duration = .seconds(30), audioPort: Int = 0, advertisedAudioPort: Int? = nil,
                    dropAudioPacket: (@Sendable (_ index: Int, _ seq: UInt16) -> Bool)? = nil) {
            self.host = host
            self.port = port
            self.name = name
            self.deviceID = deviceID
            self.model = model
            self.sourceVersion = sourceVersion
            self.osVersion = osVersion
            self.features = features
            self.identity = identity
            self.pin = pin
            self.transientPIN = transientPIN
            self.pairedControllers = pairedControllers
            self.outputPath = outputPath
            self.jitter = jitter
            self.timingInterval = timingInterval
            self.endGrace = endGrace
            self.requireUserAgent = requireUserAgent
            self.requirePairing = requirePairing
            self.transientError = transientError
            self.dropEventChannelAfter = dropEventChannelAfter
            self.noProgress = noProgress
            self.eventReplyTimeout = eventReplyTimeout
            self.audioPort = audioPort
            self.advertisedAudioPort = advertisedAudioPort
            self.dropAudioPacket = dropAudioPacket
        }

        /// `0xLLLLLLLL,0xHHHHHHHH` as in TXT records.
        package var featuresString: String { AirPlayFeatureFlags(rawValue: features).text }
    }

    package let configuration: Configuration
    /// The bound HTTP/RTSP port.
    package let port: Int
    private let server: Channel
    let shared: HomePodShared

    private init(configuration: Configuration, server: Channel, shared: HomePodShared) {
        self.configuration = configuration
        self.server = server
        self.shared = shared
        self.port = server.localAddress?.port ?? configuration.port
    }

    /// Starts listening. Throws `ATVError.connectionFailed` if the address cannot be bound.
    package static func start(_ configuration: Configuration = Configuration()) async throws -> VirtualHomePod {
        let shared = try HomePodShared(configuration: configuration)
        let server = try await TCPListener.bind(host: configuration.host, port: configuration.port) { channel, pipeline in
            let crypto = HAPEncryptionHandler()
            let connection = HomePodConnection(channel: channel, shared: shared, crypto: crypto)
            try pipeline.addHandler(crypto)
            try pipeline.addHandler(connection.serverHandler())
        }
        return VirtualHomePod(configuration: configuration, server: server, shared: shared)
    }

    /// A snapshot of everything seen so far.
    package func report() -> HomePodReport { shared.report.withLock { $0 } }

    /// The PTP follower's view now (nil until a PTP session started it).
    package func ptpStatus() -> PTPFollowerStatus? { shared.extra.ptp.current?.status }

    /// Events from now on (each call gives an independent stream).
    package func events() -> AsyncStream<HomePodEvent> { shared.events.subscribe() }

    /// Controllers that may pair-verify (configured ones plus those paired with the PIN).
    package var pairedControllers: [HAPPairedController] { shared.extra.controllers.withLock { $0 } }

    /// Waits until `sessions` sessions have ended and returns the report.
    package func waitForSessionEnd(sessions: Int = 1, timeout: Duration) async throws -> HomePodReport {
        try await shared.waitForSessionEnd(sessions: sessions, timeout: timeout, what: "AirPlay 2 session ended on the virtual HomePod") {
            if case .sessionEnded(_, let r) = $0 { r } else { nil }
        }
    }

    /// The MRP device behind the remote-control tunnel (stream type 130): its scripted now-playing
    /// state, what controllers sent, and `dropConnections()` to close every data channel.
    package var remoteControl: VirtualMRP { shared.mrp }

    /// Stops listening, closes open connections and ends `events()` streams.
    package func stop() async {
        try? await server.close()
        await shared.mrp.stop()
        await shared.extra.ptp.stop()
        shared.closeAll()
        shared.events.finish()
    }

    /// `_airplay._tcp` and `_raop._tcp` like a HomePod advertises them; with
    /// `raop: false` only `_airplay._tcp`, as several third-party AirPlay 2 receivers do.
    package func mdnsServices(address: String = "127.0.0.1", raop includeRAOP: Bool = true) -> [MDNSService] {
        let c = configuration
        let compact = c.deviceID.filter { $0 != ":" }.uppercased()
        let host = "swift-atv-homepod-\(compact.lowercased()).local"
        let pk = c.identity.publicKey.map { String(cFormat: "%02x", $0) }.joined()
        let features = c.featuresString
        let airplay: [String: String] = [
            "acl": "0", "deviceid": c.deviceID.uppercased(), "features": features, "flags": "0x4",
            "gcgl": "1", "igl": "1", "model": c.model, "osvers": c.osVersion, "pk": pk,
            "pi": String(decoding: c.identity.identifier, as: UTF8.self).lowercased(),
            "protovers": "1.1", "srcvers": c.sourceVersion, "vv": "2",
        ]
        let raop: [String: String] = [
            "am": c.model, "ch": "2", "cn": "0,1,2,3", "da": "true", "et": "0,4", "ft": features, "md": "0,1,2",
            "ov": c.osVersion, "pk": pk, "sf": "0x4", "sr": "44100", "ss": "16", "tp": "UDP", "txtvers": "1",
            "vn": "65537", "vs": c.sourceVersion, "vv": "2",
        ]
        let services = [
            MDNSService(instance: c.name, type: ServiceType.airplay, port: UInt16(port), txt: airplay, hostName: host, address: address),
            MDNSService(instance: "\(compact)@\(c.name)", type: ServiceType.raop, port: UInt16(port), txt: raop, hostName: host, address: address),
        ]
        return includeRAOP ? services : [services[0]]
    }

    /// The same TXT as `--service-properties` for pyatv's `atvremote --manual` (first character is
    /// the separator).
    package func raopServicePropertiesArgument() -> String {
        let txt = mdnsServices()[1].txt
        return ";" + txt.keys.sorted().map { "\($0)=\(txt[$0] ?? "")" }.joined(separator: ";")
    }
}

/// State shared by all connections of one HomePod.
typealias HomePodShared = ReceiverShared<VirtualHomePod.Configuration, HomePodReport, HomePodEvent, HomePodExtra>

/// What only a HomePod keeps for all its connections: the controllers that may pair-verify and
/// the MRP device behind the remote-control tunnel (stream SETUP type 130).
final class HomePodExtra: Sendable {
    let controllers: Mutex<[HAPPairedController]>
    let mrp: VirtualMRP
    /// The PTP follower, started at the first PTP session.
    let ptp = HomePodPTPFollower()

    init(controllers: [HAPPairedController], mrp: VirtualMRP) {
        self.controllers = Mutex(controllers)
        self.mrp = mrp
    }
}

extension ReceiverShared where Configuration == VirtualHomePod.Configuration, Report == HomePodReport, Extra == HomePodExtra {
    convenience init(configuration: VirtualHomePod.Configuration) throws {
        var rc = configuration.remoteControl
        rc.name = configuration.name
        rc.deviceID = configuration.deviceID
        rc.model = configuration.model
        let mrp = try VirtualMRP.embedded(rc)
        self.init(configuration: configuration, report: HomePodReport(),
                  extra: HomePodExtra(controllers: configuration.pairedControllers, mrp: mrp))
    }

    var mrp: VirtualMRP { extra.mrp }

    func addController(_ c: HAPPairedController) {
        extra.controllers.withLock { list in
            list.removeAll { $0.identifier == c.identifier }
            list.append(c)
        }
    }
}
