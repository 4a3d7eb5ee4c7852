// The PTP grandmaster as a pure state machine: monotonic nanoseconds and received datagrams in;
// datagrams to send and the next time to be woken out. Two-step: each Sync is followed by a
// Follow_Up carrying the Sync's egress time, which the I/O shell reports (`syncSent`) right after
// writing the Sync. docs/PTP-AND-BUFFERED-AUDIO.md §2 (and §5.1 for nqptp).

/// Which of the master's two sockets: event (UDP 319: Sync, Delay_Req) or general (UDP 320:
/// Announce, Follow_Up, Delay_Resp, Signaling).
package enum PTPSocket: Sendable, Hashable {
    case event, general

    /// The well-known port (and the port a receiver expects the datagram to come from).
    package var port: Int { self == .event ? 319 : 320 }

    init(_ type: PTPMessageType) { self = type.isEvent ? .event : .general }
}

/// IPv4 or IPv6: the master has one pair of sockets per family it serves.
package enum PTPFamily: Sendable, Hashable, CaseIterable {
    case ipv4, ipv6

    /// The family of an address literal ("fe80::1%eth0" is IPv6).
    package init(host: String) { self = host.contains(":") ? .ipv6 : .ipv4 }

    /// The PTP primary multicast group of the family, at the socket's well-known port.
    package var multicast: PTPDestination { self == .ipv4 ? .multicast : .multicastIPv6 }
}

/// Where a datagram goes.
package enum PTPDestination: Sendable, Hashable, CustomStringConvertible {
    /// 224.0.1.129 (the PTP primary multicast group), at the socket's well-known port.
    case multicast
    /// FF0E::181 (the IPv6 PTP primary group, global scope, as linuxptp's `-6` default).
    case multicastIPv6
    /// A host (IPv4 or IPv6 literal, link-local ones with their `%scope`) and port.
    case unicast(host: String, port: Int)

    package static let multicastGroup = "224.0.1.129"
    package static let multicastGroupIPv6 = "ff0e::181"

    package var family: PTPFamily {
        switch self {
        case .multicast: .ipv4
        case .multicastIPv6: .ipv6
        case .unicast(let host, _): PTPFamily(host: host)
        }
    }

    package var isMulticast: Bool { self == .multicast || self == .multicastIPv6 }

    package var description: String {
        switch self {
        case .multicast: "\(Self.multicastGroup)"
        case .multicastIPv6: "\(Self.multicastGroupIPv6)"
        case .unicast(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// One datagram for the shell to send.
package struct PTPOutgoing: Sendable, Hashable {
    /// The socket to send from (so the source port equals the well-known destination port).
    package var socket: PTPSocket
    package var destination: PTPDestination
    package var bytes: [UInt8]
    /// For a Sync: report its egress time with `syncSent(_:at:)` to get the Follow_Up.
    package var syncToken: PTPMasterCore.SyncToken?
}

/// Something worth logging.
package enum PTPMasterEvent: Sendable, Hashable {
    /// A follower's first Delay_Req (from that host).
    case followerSeen(host: String, port: PTPPortIdentity)
    /// An Announce from another clock (nqptp's "awakening" burst, a receiver's own master):
    /// ignored, the master never yields.
    case announceIgnored(host: String, grandmaster: PTPClockIdentity, priority1: UInt8)
    /// A unicast-transmission request answered with a grant.
    case granted(host: String, messageTypes: [UInt8], duration: UInt32)
    /// A datagram that is not a PTP message we understand.
    case malformed(host: String, PTPParseError)
}

/// What a call returns: datagrams to send now, events, and when to call `tick` next.
package struct PTPMasterOutput: Sendable {
    package var send: [PTPOutgoing] = []
    package var events: [PTPMasterEvent] = []
    /// Monotonic nanoseconds at which `tick` has something to do.
    package var wakeAt: UInt64
}

/// The master's settings: its identity, the Announce dataset and the intervals.
package struct PTPMasterConfig: Sendable, Hashable {
    package var clockIdentity: PTPClockIdentity
    /// sourcePortIdentity.portNumber: 0x8005 as OwnTone's and airplay-cli's masters send ("as iOS").
    package var portNumber: UInt16 = 0x8005
    package var domain: UInt8 = 0
    /// majorSdoId / transportSpecific: 1 (gPTP / AirPlay).
    package var majorSdoId: UInt8 = 1
    /// The Announce dataset (docs/PTP-AND-BUFFERED-AUDIO.md §2.4, what OwnTone's and airplay-cli's
    /// masters copy from iOS): priority1 128, clockClass 6 (synchronized to a primary reference),
    /// accuracy 0x21 (within 100 ns), variance 0x436A, priority2 128, timeSource GPS. It out-ranks
    /// every receiver default (clockClass 248), and the master never yields to a better Announce
    /// anyway (same doc, §2.9).
    package var priority1: UInt8 = 128
    package var clockClass: UInt8 = 6
    package var clockAccuracy: UInt8 = 0x21
    package var offsetScaledLogVariance: UInt16 = 0x436A
    package var priority2: UInt8 = 128
    package var timeSource: UInt8 = 0x20
    /// Announce's currentUtcOffset (TAI − UTC) and whether to flag it valid (not by default:
    /// flags 0x0408 as iOS sends; linuxptp then assumes 37 s, which the TAI timescale matches).
    package var currentUtcOffset: Int16 = 37
    package var utcOffsetValid = false
    /// log2 seconds: Sync/Follow_Up every 125 ms (−3), Announce every 1 s (0), Apple's periodic
    /// Signaling every 1 s (0; its header says −128, "no change", as iOS's does).
    package var logSyncInterval: Int8 = -3
    package var logAnnounceInterval: Int8 = 0
    package var logSignalingInterval: Int8 = 0
    /// Send iOS's periodic Signaling (`PTPTLV.applePeriodicSignaling`) to every destination, as
    /// OwnTone's and airplay-cli's masters do (docs/PTP-AND-BUFFERED-AUDIO.md §2.4–§2.5).
    package var appleSignaling = true
    /// Nanoseconds added to the monotonic clock to get the PTP timescale (the shell sets TAI at
    /// start; any constant keeps the timescale monotonic).
    package var timescaleOffset: Int64 = 0
    /// Where to send while no unicast peer is known: the groups of the families the shell serves
    /// (airplay-cli's fallback to 224.0.1.129; OwnTone's master never does: empty).
    package var multicastGroups: [PTPDestination] = [.multicast]
    /// Whether to send to a group while no unicast peer is known (false: `multicastGroups` empty).
    package var multicastWhenNoPeers: Bool {
        get { !multicastGroups.isEmpty }
        set { multicastGroups = newValue ? [.multicast] : [] }
    }

    package init(clockIdentity: PTPClockIdentity) { self.clockIdentity = clockIdentity }

    var syncInterval: UInt64 { Self.nanoseconds(log: logSyncInterval) }
    var announceInterval: UInt64 { Self.nanoseconds(log: logAnnounceInterval) }
    var signalingInterval: UInt64 { Self.nanoseconds(log: logSignalingInterval) }

    static func nanoseconds(log: Int8) -> UInt64 {
        let l = max(-10, min(10, Int(log)))
        return l >= 0 ? 1_000_000_000 << UInt64(l) : 1_000_000_000 >> UInt64(-l)
    }
}

/// The master.
package struct PTPMasterCore: Sendable {
    /// Identifies a Sync awaiting its egress time.
    package struct SyncToken: Sendable, Hashable {
        package var sequenceId: UInt16
        package var destination: PTPDestination
    }

    package private(set) var config: PTPMasterConfig
    package var identity: PTPPortIdentity { PTPPortIdentity(clock: config.clockIdentity, port: config.portNumber) }

    /// Unicast peers added by the session layer (SETPEERS): sent to until removed, silent or not.
    package private(set) var peers: [String] = []
    /// Peers that asked for unicast transmission, with the grant's end (monotonic ns).
    package private(set) var granted: [String: UInt64] = [:]
    /// Hosts whose Delay_Req we answered.
    package private(set) var followers: Set<String> = []

    private var syncSequence: UInt16 = 0
    private var announceSequence: UInt16 = 0
    private var signalingSequence: UInt16 = 0
    private var nextSync: UInt64?
    private var nextAnnounce: UInt64?
    private var nextSignaling: UInt64?

    package init(config: PTPMasterConfig) { self.config = config }

    /// The PTP timescale at monotonic time `now`.
    package func ptpTime(_ now: UInt64) -> PTPTimestamp {
        PTPTimestamp(nanoseconds: UInt64(clamping: Int64(clamping: now) &+ config.timescaleOffset))
    }

    /// Where periodic messages go now: every peer and granted host (unicast to the socket's
    /// port), or the multicast group when there is none.
    package var destinations: [PTPDestination] {
        let hosts = peers + granted.keys.sorted().filter { !peers.contains($0) }
        if hosts.isEmpty { return config.multicastGroups }
        return hosts.map { .unicast(host: $0, port: 0) }
    }

    /// Where to send while there is no unicast peer (the shell serves another family: its group
    /// joins).
    package mutating func setMulticastGroups(_ groups: [PTPDestination]) {
        config.multicastGroups = groups
    }

    /// Starts: an Announce and a Signaling at once, then the first Sync.
    package mutating func start(now: UInt64) -> PTPMasterOutput {
        nextAnnounce = now
        nextSync = now
        if config.appleSignaling { nextSignaling = now }
        return tick(now: now)
    }

    private var nextWake: UInt64 { min(nextAnnounce ?? .max, nextSync ?? .max, nextSignaling ?? .max) }

    /// Sends what is due at `now`.
    package mutating func tick(now: UInt64) -> PTPMasterOutput {
        var out = PTPMasterOutput(wakeAt: now)
        granted = granted.filter { $0.value > now }
        let targets = destinations
        if let due = nextAnnounce, due <= now {
            for d in targets { out.send.append(announce(to: d)) }
            announceSequence &+= 1
            nextAnnounce = Self.advance(due, by: config.announceInterval, past: now)
        }
        if let due = nextSignaling, due <= now {
            for d in targets { out.send.append(signaling(to: d)) }
            signalingSequence &+= 1
            nextSignaling = Self.advance(due, by: config.signalingInterval, past: now)
        }
        if let due = nextSync, due <= now {
            for d in targets { out.send.append(sync(to: d)) }
            syncSequence &+= 1
            nextSync = Self.advance(due, by: config.syncInterval, past: now)
        }
        out.wakeAt = nextWake
        return out
    }

    /// The next slot after `now` on the cadence that started at `due` (slots missed while the
    /// process was stalled are skipped, not sent in a burst).
    static func advance(_ due: UInt64, by interval: UInt64, past now: UInt64) -> UInt64 {
        let next = due &+ interval
        return next > now ? next : now &+ interval - (now &- due) % interval
    }

    /// The Sync with `token` left at monotonic `egress`: its Follow_Up, to send at once.
    package func syncSent(_ token: SyncToken, at egress: UInt64) -> PTPOutgoing {
        let header = header(.followUp, sequence: token.sequenceId, flags: Self.flags([.ptpTimescale], token.destination),
                            log: config.logSyncInterval)
        let message = PTPMessage(header: header, body: .followUp(preciseOrigin: ptpTime(egress)),
                                 tlvs: [.followUpInformation, .appleClockIdentity(config.clockIdentity)])
        return PTPOutgoing(socket: .general, destination: Self.on(.general, token.destination), bytes: message.encoded())
    }

    /// Adds a unicast peer (a receiver of the session); it gets `welcome` at once, then every
    /// Sync of the running cadence.
    package mutating func addPeer(_ host: String, now: UInt64) -> PTPMasterOutput {
        var out = PTPMasterOutput(wakeAt: nextWake)
        guard !peers.contains(host) else { return out }
        let known = granted[host] != nil
        peers.append(host)
        if !known { out.send += welcome(host) }
        return out
    }

    /// What a new unicast destination gets at once (once the master runs): an Announce (nqptp
    /// uses nothing before one), a Sync and the periodic Signaling.
    private mutating func welcome(_ host: String) -> [PTPOutgoing] {
        var send: [PTPOutgoing] = []
        if nextAnnounce != nil {
            send.append(announce(to: .unicast(host: host, port: 0)))
            announceSequence &+= 1
        }
        if nextSync != nil {
            // A Sync now (its Follow_Up follows at once): a follower that locks on its first
            // Follow_Up is locked now rather than at the next slot.
            send.append(sync(to: .unicast(host: host, port: 0)))
            syncSequence &+= 1
        }
        if nextSignaling != nil {
            send.append(signaling(to: .unicast(host: host, port: 0)))
            signalingSequence &+= 1
        }
        return send
    }

    /// Stops sending to `host` (unless it holds a unicast grant).
    package mutating func removePeer(_ host: String) {
        peers.removeAll { $0 == host }
    }

    /// A datagram that arrived on `socket` from `host:port` at monotonic `now` (the receive
    /// timestamp of a Delay_Req).
    package mutating func received(_ bytes: [UInt8], from host: String, port: Int, on socket: PTPSocket,
                                  at now: UInt64) -> PTPMasterOutput {
        var out = PTPMasterOutput(wakeAt: nextWake)
        let message: PTPMessage
        do {
            message = try PTPMessage(parsing: bytes)
        } catch {
            out.events.append(.malformed(host: host, error))
            return out
        }
        // Our own multicast looped back, or another domain: not for us.
        guard message.header.source.clock != config.clockIdentity, message.header.domain == config.domain else { return out }
        switch message.body {
        case .delayReq:
            // Delay_Resp from 320 to the follower's general port: 320 when it sent from a PTP
            // port, else (a follower on an ephemeral port) back to where the request came from.
            let replyPort = (port == 319 || port == 320) ? 320 : port
            let header = header(.delayResp, sequence: message.header.sequenceId, flags: [.twoStep, .unicast, .ptpTimescale],
                                log: config.logSyncInterval)
            var h = header
            h.correction = message.header.correction
            let response = PTPMessage(header: h, body: .delayResp(receive: ptpTime(now), requesting: message.header.source))
            out.send.append(PTPOutgoing(socket: .general, destination: .unicast(host: host, port: replyPort), bytes: response.encoded()))
            if followers.insert(host).inserted {
                out.events.append(.followerSeen(host: host, port: message.header.source))
            }
        case .announce(let a):
            out.events.append(.announceIgnored(host: host, grandmaster: a.grandmasterIdentity, priority1: a.priority1))
        case .signaling:
            let requests = message.unicastRequests
            guard !requests.isEmpty else { break }
            var grants: [PTPTLV] = []
            var longest: UInt32 = 0
            for r in requests {
                let duration = r.duration == 0 ? 300 : r.duration
                longest = max(longest, duration)
                grants.append(PTPUnicastTransmission(messageType: r.messageType, logInterMessagePeriod: r.logInterMessagePeriod,
                                                     duration: duration, renewalInvited: true).grantTLV)
            }
            // Sync and Announce grants put the host on the unicast list until they end.
            if requests.contains(where: { $0.messageType == PTPMessageType.sync.rawValue || $0.messageType == PTPMessageType.announce.rawValue }) {
                let end = now &+ UInt64(longest) * 1_000_000_000
                let isNew = granted[host] == nil && !peers.contains(host)
                granted[host] = max(granted[host] ?? 0, end)
                if isNew { out.send += welcome(host) }
            }
            var h = header(.signaling, sequence: message.header.sequenceId, flags: [.unicast], log: 0x7F)
            h.controlField = 5
            let reply = PTPMessage(header: h, body: .signaling(target: message.header.source), tlvs: grants)
            let replyPort = (port == 319 || port == 320) ? 320 : port
            out.send.insert(PTPOutgoing(socket: .general, destination: .unicast(host: host, port: replyPort), bytes: reply.encoded()), at: 0)
            out.events.append(.granted(host: host, messageTypes: requests.map(\.messageType), duration: longest))
        default:
            // Sync / Follow_Up of another master, Pdelay, Management (pmc): nothing to answer.
            break
        }
        return out
    }

    // MARK: - Messages

    func header(_ type: PTPMessageType, sequence: UInt16, flags: PTPFlags, log: Int8) -> PTPHeader {
        PTPHeader(type: type, source: identity, sequenceId: sequence, flags: flags, logMessageInterval: log,
                  majorSdoId: config.majorSdoId, domain: config.domain)
    }

    /// The Announce dataset.
    package var announceBody: PTPAnnounce {
        PTPAnnounce(priority1: config.priority1, clockClass: config.clockClass, clockAccuracy: config.clockAccuracy,
                    offsetScaledLogVariance: config.offsetScaledLogVariance, priority2: config.priority2,
                    grandmasterIdentity: config.clockIdentity, timeSource: config.timeSource,
                    currentUtcOffset: config.currentUtcOffset)
    }

    func announce(to destination: PTPDestination) -> PTPOutgoing {
        var flags = Self.flags([.ptpTimescale], destination)
        if config.utcOffsetValid { flags.insert(.currentUtcOffsetValid) }
        let message = PTPMessage(header: header(.announce, sequence: announceSequence, flags: flags, log: config.logAnnounceInterval),
                                 body: .announce(announceBody), tlvs: [.pathTrace(config.clockIdentity)])
        return PTPOutgoing(socket: .general, destination: Self.on(.general, destination), bytes: message.encoded())
    }

    /// iOS's periodic Signaling: flags unicast|ptpTimescale (no unicastFlag to a group),
    /// controlField 5, logMessageInterval −128, targetPortIdentity zero, Apple's two TLVs; 106 bytes.
    func signaling(to destination: PTPDestination) -> PTPOutgoing {
        var h = header(.signaling, sequence: signalingSequence, flags: Self.flags([.ptpTimescale], destination), log: -128)
        h.controlField = 5
        let message = PTPMessage(header: h, body: .signaling(target: .zero), tlvs: PTPTLV.applePeriodicSignaling)
        return PTPOutgoing(socket: .general, destination: Self.on(.general, destination), bytes: message.encoded())
    }

    func sync(to destination: PTPDestination) -> PTPOutgoing {
        let message = PTPMessage(header: header(.sync, sequence: syncSequence, flags: Self.flags([.twoStep, .ptpTimescale], destination), log: config.logSyncInterval),
                                 body: .sync(origin: .zero))
        return PTPOutgoing(socket: .event, destination: Self.on(.event, destination), bytes: message.encoded(),
                           syncToken: SyncToken(sequenceId: syncSequence, destination: destination))
    }

    /// `flags` plus unicastFlag for a unicast destination.
    static func flags(_ flags: PTPFlags, _ destination: PTPDestination) -> PTPFlags {
        destination.isMulticast ? flags : flags.union(.unicast)
    }

    /// A destination on the socket's well-known port.
    static func on(_ socket: PTPSocket, _ destination: PTPDestination) -> PTPDestination {
        switch destination {
        case .multicast, .multicastIPv6: destination
        case .unicast(let host, _): .unicast(host: host, port: socket.port)
        }
    }
}
