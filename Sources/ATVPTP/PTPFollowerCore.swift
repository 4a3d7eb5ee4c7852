// A PTP follower (slave) as a pure state machine: datagrams with their local receive times in
// (monotonic nanoseconds), the offset of the local clock to the master's timescale out. What the
// virtual receivers use to play frames at the master's time (docs/PTP-AND-BUFFERED-AUDIO.md §2.7,
// §5.1). It follows one master address only, and, as nqptp does, uses no Sync or Follow_Up before
// an Announce from that address has named the grandmaster. Two-step: a Sync's receive time pairs
// with its Follow_Up's preciseOriginTimestamp (a one-step Sync carries the time itself); when the
// Sync is missing the Follow_Up's own receive time stands in (nqptp's only method). Optionally it
// measures the path delay with Delay_Req/Delay_Resp (as goplay2 and linuxptp do; nqptp never does).

/// Where the follower stands.
package enum PTPFollowerState: String, Sendable, Hashable {
    /// No master address to follow.
    case noMaster = "no master"
    /// Following an address that has sent no Announce yet: its Sync and Follow_Up are ignored.
    case waitingForAnnounce = "waiting for Announce"
    /// Announced; no time sample yet.
    case waitingForFollowUp = "waiting for Follow_Up"
    /// At least one time sample: `offset` holds.
    case locked
}

/// The follower's settings.
package struct PTPFollowerConfig: Sendable, Hashable {
    /// Our identity (in Delay_Req).
    package var clockIdentity: PTPClockIdentity
    package var portNumber: UInt16 = 1
    package var domain: UInt8 = 0
    /// Samples the estimate is taken over: the one with the least delay counts (the largest
    /// master − local difference). 16 = 2 s at Apple's 125 ms Sync interval.
    package var window = 16
    /// Drop a datagram whose source port is not the port it arrived on (319→319, 320→320), as
    /// nqptp does (docs/PTP-AND-BUFFERED-AUDIO.md §2.1).
    package var requireMatchingPorts = true
    /// Send a Delay_Req after each Follow_Up and add the measured mean path delay.
    package var delayRequests = false

    package init(clockIdentity: PTPClockIdentity) { self.clockIdentity = clockIdentity }
}

/// A Delay_Req to send to the master's event port; report its egress time with `delayRequestSent`.
package struct PTPDelayRequest: Sendable, Hashable {
    package var host: String
    package var sequenceId: UInt16
    package var bytes: [UInt8]
}

/// Something worth logging or counting.
package enum PTPFollowerEvent: Sendable, Hashable {
    /// The followed address announced a grandmaster (first time, or a new one).
    case grandmaster(PTPClockIdentity, host: String)
    /// The first time sample: the follower is locked.
    case locked(offset: Int64)
    /// A Sync or Follow_Up from the followed address before any Announce (ignored).
    case ignoredBeforeAnnounce(PTPMessageType)
    /// A datagram from another address, or from a source port that is not the port it came to.
    case ignoredSource(host: String, port: Int)
    case malformed(host: String, PTPParseError)
}

/// The follower's view of the master, for reports.
package struct PTPFollowerStatus: Sendable, Hashable {
    package var state: PTPFollowerState
    /// The followed address.
    package var master: String?
    /// The Announce's grandmasterIdentity (what nqptp publishes as the clock).
    package var grandmaster: PTPClockIdentity?
    /// master time − local monotonic time, ns (master time = local + offset).
    package var offset: Int64?
    /// Mean path delay from Delay_Req/Delay_Resp, ns, when measured.
    package var pathDelay: Int64?
    /// Time samples taken (Follow_Ups or one-step Syncs used).
    package var samples: Int
    /// Local time of the first sample since the grandmaster was announced (shairport-sync counts
    /// its clock valid 400 ms after it, docs/PTP-AND-BUFFERED-AUDIO.md §5.1).
    package var lockedSince: UInt64?
}

package struct PTPFollowerCore: Sendable {
    package let config: PTPFollowerConfig
    package private(set) var master: String?
    package private(set) var grandmaster: PTPClockIdentity?
    /// The master's port identity (from its Announce): Syncs and Follow_Ups from another port
    /// identity at the same address are not paired with its own.
    package private(set) var masterPort: PTPPortIdentity?
    package private(set) var samples = 0
    package private(set) var lockedSince: UInt64?
    private var window: [Int64] = []
    private var pathDelays: [Int64] = []
    /// Recent Syncs: sequence id → (local receive time, correction ns).
    private var syncs: [(sequence: UInt16, at: UInt64, correction: Int64)] = []
    /// The last paired Sync: (t1 master origin, t2 local receive).
    private var lastPair: (t1: Int64, t2: Int64)?
    private var delaySequence: UInt16 = 0
    /// Delay_Req in flight: sequence → local egress time (nil until reported).
    private var pendingDelay: (sequence: UInt16, sent: UInt64?, pair: (t1: Int64, t2: Int64))?

    package init(config: PTPFollowerConfig, master: String? = nil) {
        self.config = config
        self.master = master
    }

    package var state: PTPFollowerState {
        if master == nil { return .noMaster }
        if grandmaster == nil { return .waitingForAnnounce }
        return samples == 0 ? .waitingForFollowUp : .locked
    }

    /// master − local, ns: the best sample of the window plus the path delay when measured.
    package var offset: Int64? {
        guard let best = window.max() else { return nil }
        return best + (pathDelay ?? 0)
    }

    package var pathDelay: Int64? {
        pathDelays.isEmpty ? nil : pathDelays.sorted()[pathDelays.count / 2]
    }

    package var status: PTPFollowerStatus {
        PTPFollowerStatus(state: state, master: master, grandmaster: grandmaster, offset: offset,
                          pathDelay: pathDelay, samples: samples, lockedSince: lockedSince)
    }

    /// The master's time at a local monotonic instant, once locked.
    package func masterTime(atLocal local: UInt64) -> Int64? {
        offset.map { Int64(clamping: local) &+ $0 }
    }

    /// The local monotonic instant of a master time, once locked.
    package func localTime(atMaster ns: Int64) -> Int64? {
        offset.map { ns &- $0 }
    }

    /// Follows `host` from now on (nil: none). A new address starts over: it must announce first.
    package mutating func follow(_ host: String?) {
        guard host != master else { return }
        master = host
        reset()
    }

    private mutating func reset() {
        grandmaster = nil
        masterPort = nil
        samples = 0
        lockedSince = nil
        window = []
        pathDelays = []
        syncs = []
        lastPair = nil
        pendingDelay = nil
    }

    /// One datagram from `host:port` on our `socket`, received at local monotonic `now`.
    package mutating func received(_ bytes: [UInt8], from host: String, port: Int, on socket: PTPSocket,
                                   at now: UInt64) -> (events: [PTPFollowerEvent], delayRequest: PTPDelayRequest?) {
        guard let master, host == master, !config.requireMatchingPorts || port == socket.port else {
            return ([.ignoredSource(host: host, port: port)], nil)
        }
        let message: PTPMessage
        do {
            message = try PTPMessage(parsing: bytes)
        } catch {
            return ([.malformed(host: host, error)], nil)
        }
        guard message.header.domain == config.domain,
              message.header.source.clock != config.clockIdentity else { return ([], nil) }
        var events: [PTPFollowerEvent] = []
        switch message.body {
        case .announce(let announce):
            if announce.grandmasterIdentity != grandmaster {
                // A new grandmaster is a new timeline: earlier samples are not its.
                reset()
                grandmaster = announce.grandmasterIdentity
                events.append(.grandmaster(announce.grandmasterIdentity, host: host))
            }
            masterPort = message.header.source
        case .sync(let origin):
            guard grandmaster != nil, message.header.source == masterPort else {
                return ([.ignoredBeforeAnnounce(.sync)], nil)
            }
            let correction = message.header.correction >> 16
            if message.header.flags.contains(.twoStep) {
                syncs.append((message.header.sequenceId, now, correction))
                if syncs.count > 8 { syncs.removeFirst(syncs.count - 8) }
            } else {
                events += sample(t1: Int64(clamping: origin.totalNanoseconds) &+ correction, t2: Int64(clamping: now))
            }
        case .followUp(let precise):
            guard grandmaster != nil, message.header.source == masterPort else {
                return ([.ignoredBeforeAnnounce(.followUp)], nil)
            }
            var t2 = Int64(clamping: now)
            var correction = message.header.correction >> 16
            if let i = syncs.lastIndex(where: { $0.sequence == message.header.sequenceId }) {
                t2 = Int64(clamping: syncs[i].at)
                correction &+= syncs[i].correction
                syncs.remove(at: i)
            }
            events += sample(t1: Int64(clamping: precise.totalNanoseconds) &+ correction, t2: t2)
            if config.delayRequests, let pair = lastPair {
                delaySequence &+= 1
                pendingDelay = (delaySequence, nil, pair)
                let header = PTPHeader(type: .delayReq, source: PTPPortIdentity(clock: config.clockIdentity, port: config.portNumber),
                                       sequenceId: delaySequence, flags: [.unicast], logMessageInterval: 0x7F,
                                       majorSdoId: message.header.majorSdoId, domain: config.domain)
                let request = PTPMessage(header: header, body: .delayReq(origin: .zero)).encoded()
                return (events, PTPDelayRequest(host: host, sequenceId: delaySequence, bytes: request))
            }
        case .delayResp(let receive, let requesting):
            guard requesting == PTPPortIdentity(clock: config.clockIdentity, port: config.portNumber),
                  let pending = pendingDelay, pending.sequence == message.header.sequenceId,
                  let sent = pending.sent else { break }
            pendingDelay = nil
            let t4 = Int64(clamping: receive.totalNanoseconds) &- (message.header.correction >> 16)
            let t3 = Int64(clamping: sent)
            // meanPathDelay = ((t2 − t1) + (t4 − t3)) / 2, local and master differences.
            let delay = ((pending.pair.t2 &- pending.pair.t1) &+ (t4 &- t3)) / 2
            guard delay >= 0 else { break }
            pathDelays.append(delay)
            if pathDelays.count > config.window { pathDelays.removeFirst(pathDelays.count - config.window) }
        default:
            break
        }
        return (events, nil)
    }

    /// The Delay_Req `sequenceId` left at local monotonic `egress`.
    package mutating func delayRequestSent(_ sequenceId: UInt16, at egress: UInt64) {
        guard pendingDelay?.sequence == sequenceId else { return }
        pendingDelay?.sent = egress
    }

    private mutating func sample(t1: Int64, t2: Int64) -> [PTPFollowerEvent] {
        lastPair = (t1, t2)
        window.append(t1 &- t2)
        if window.count > max(1, config.window) { window.removeFirst(window.count - max(1, config.window)) }
        samples += 1
        guard lockedSince == nil else { return [] }
        lockedSince = UInt64(clamping: t2)
        return [.locked(offset: t1 &- t2)]
    }
}
