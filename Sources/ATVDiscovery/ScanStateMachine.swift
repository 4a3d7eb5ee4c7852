import ATVCore

/// The logic of one scan, without I/O. Feed it datagrams and clock ticks; it says what to send
/// and which devices are found.
///
/// - Queries carry `typesPerQuery` service types (default 1: avahi cuts legacy unicast answers at
///   512 bytes *without* setting TC and silently drops what does not fit, so a query for several
///   types can lose whole services; one type per query keeps each answer small).
/// - Records are kept per responder (source address). A record sent again with another TTL or
///   cache-flush bit is the same record (it is not "news" that delays a report).
/// - **Completeness** (`Peer.isComplete`): a responder's devices are complete when every service
///   instance it announced has its SRV and TXT record, or was asked for them directly and the
///   question was answered or given up on (`followUpGiveUp` after it was first sent), and no
///   other follow-up is outstanding. Complete devices are reported at once (unicast: when the
///   host is done, see below; multicast: after `settle` without new records from that
///   responder, since a responder may still be answering the other service types).
/// - Unicast (hosts given): every query message goes to each host and is resent each second until
///   answered. A truncated answer is followed by one query per service type of that message, and
///   instances seen without SRV or TXT are asked for directly, so a responder that cuts answers
///   at 512 bytes still yields every service. Responders do not answer questions they have no
///   records for (avahi, mDNSResponder), so a host that answered and then stayed quiet is taken
///   not to have what it did not answer, but only after those questions were asked again
///   (`unicastReasks` times): a query or its answer is a plain UDP datagram and may be lost (a
///   full socket buffer), and one lost answer would otherwise lose that service. The host is
///   quiet for `unicastSettle` after its last answer before the first re-ask, and for
///   k × max(`unicastSettle`, 2 × its slowest round trip) after re-ask k (follow-ups still
///   pending do not hold this up). A host is done once it has answered, its records are complete
///   and every query was answered or given up on; its devices are reported then, and the scan
///   ends when every host is done. Hosts that never answered are `silentHosts`.
/// - Multicast: queries go to 224.0.0.251 each second until the timeout. Answers are grouped per
///   source address; follow-ups go to that address by unicast.
/// - With identifiers, the scan ends as soon as a matching device is reported.
/// - With `count`, the scan ends as soon as that many devices have been reported.
package struct ScanStateMachine: Sendable {
    package enum Destination: Sendable, Equatable { case multicast, host(String) }

    package enum Action: Sendable, Equatable {
        case send([UInt8], to: Destination)
        case found(DeviceConfig)
        case finished
    }

    package struct Configuration: Sendable {
        package var hosts: [String]
        package var identifiers: Set<String>
        package var serviceTypes: [String]
        package var typesPerQuery: Int
        package var resendInterval: Double
        package var settle: Double
        /// Unicast: how long a host that answered some queries may stay quiet before its other
        /// (initial) queries are asked again (and, after the last re-ask, count as "nothing of
        /// that type").
        package var unicastSettle: Double
        /// Unicast: how many times the questions a host that answered others left unanswered are
        /// asked again before they count as "nothing of that type".
        package var unicastReasks: Int
        package var timeout: Double
        /// A follow-up question (SRV/TXT of one instance, or one type after a truncated answer)
        /// still unanswered this long after it was first sent is given up on: the instance is
        /// reported with what is known, and the scan does not wait for it any longer.
        package var followUpGiveUp: Double
        /// Stop once this many devices were reported (nil: scan until the timeout / all hosts answered).
        package var count: Int?
        package init(hosts: [String] = [], identifiers: Set<String> = [], serviceTypes: [String] = ServiceType.scanned,
                    typesPerQuery: Int = 1, resendInterval: Double = 1.0, settle: Double = 0.15, timeout: Double = 3,
                    count: Int? = nil, unicastSettle: Double = 0.1, unicastReasks: Int = 2, followUpGiveUp: Double = 1.5) {
            self.followUpGiveUp = followUpGiveUp
            self.unicastSettle = unicastSettle
            self.unicastReasks = unicastReasks
            self.count = count
            self.hosts = hosts
            self.identifiers = identifiers
            self.serviceTypes = serviceTypes
            self.typesPerQuery = typesPerQuery
            self.resendInterval = resendInterval
            self.settle = settle
            self.timeout = timeout
        }
    }

    struct Query {
        var message: DNSMessage
        var bytes: [UInt8]
        var lastSent: Double
        var firstSent: Double
        /// A follow-up (not one of the first round's queries): given up after `followUpGiveUp`.
        var followUp: Bool
        init(message: DNSMessage, bytes: [UInt8], lastSent: Double, followUp: Bool = true) {
            self.message = message
            self.bytes = bytes
            self.lastSent = lastSent
            self.firstSent = lastSent
            self.followUp = followUp
        }
    }

    /// A record's identity for "have we seen it": everything but the TTL and cache-flush bit.
    struct RecordKey: Hashable {
        var name: String
        var type: DNSType
        var data: DNSRecordData
        init(_ r: DNSRecord) {
            name = r.name.lowercased()
            type = r.type
            data = r.data
        }
    }

    struct Peer {
        var records: [DNSRecord] = []
        var recordSet: Set<RecordKey> = []
        var outstanding: [UInt16: Query] = [:]
        var askedInstances: Set<String> = []
        var askedTypes: Set<String> = []
        var lastNew: Double = 0
        var lastAnswer: Double = 0
        var answeredAny = false
        /// Ids of the first-round queries (unicast): unanswered ones may mean "no such service".
        var initialIDs: Set<UInt16> = []
        /// Unicast: how often the unanswered first-round queries were asked again after the host
        /// went quiet, and when last.
        var reasks = 0
        var lastReask: Double = 0
        /// The slowest time from sending a query to its answer seen from this responder.
        var roundTrip: Double = 0

        /// The completeness rule: this responder answered, no question to it is outstanding (so
        /// every instance it announced without SRV or TXT was asked for directly, and that
        /// question was answered or given up on), and every incomplete instance was asked for.
        var isComplete: Bool {
            answeredAny && outstanding.isEmpty
                && ScanStateMachine.incompleteInstances(records).allSatisfy { askedInstances.contains($0.lowercased()) }
        }
    }

    package let configuration: Configuration
    var peers: [String: Peer] = [:]
    var peerOrder: [String] = []
    /// Reported devices by device address (one responder may publish several devices).
    var reported: [String: DeviceConfig] = [:]
    var reportedOrder: [String] = []
    var multicastQueries: [DNSMessage] = []
    var nextID: UInt16 = 0x3500
    var startTime: Double = 0
    var lastMulticast: Double = -1
    package private(set) var isFinished = false

    package init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    var isUnicast: Bool { !configuration.hosts.isEmpty }

    mutating func makeQuery(_ questions: [DNSQuestion]) -> DNSMessage {
        nextID &+= 1
        return DNSMessage(id: nextID, flags: 0, questions: questions)
    }

    func chunks() -> [[String]] {
        let types = configuration.serviceTypes
        return stride(from: 0, to: types.count, by: configuration.typesPerQuery).map {
            Array(types[$0..<min($0 + configuration.typesPerQuery, types.count)])
        }
    }

    package mutating func start(now: Double) -> [Action] {
        startTime = now
        var actions: [Action] = []
        if isUnicast {
            for host in configuration.hosts {
                var peer = Peer()
                for chunk in chunks() {
                    let q = makeQuery(chunk.map { DNSQuestion(name: $0, type: .ptr, unicastResponse: true) })
                    let bytes = DNSSerializer.serialize(q)
                    peer.outstanding[q.id] = Query(message: q, bytes: bytes, lastSent: now, followUp: false)
                    peer.initialIDs.insert(q.id)
                    actions.append(.send(bytes, to: .host(host)))
                }
                peers[host] = peer
                peerOrder.append(host)
            }
        } else {
            multicastQueries = chunks().map { chunk in makeQuery(chunk.map { DNSQuestion(name: $0, type: .ptr, unicastResponse: true) }) }
            actions += sendMulticast(now: now)
        }
        return actions
    }

    mutating func sendMulticast(now: Double) -> [Action] {
        lastMulticast = now
        return multicastQueries.map { .send(DNSSerializer.serialize($0), to: .multicast) }
    }

    /// A datagram from `address`. Anything that does not parse is ignored.
    package mutating func received(_ bytes: [UInt8], from address: String, now: Double) -> [Action] {
        guard !isFinished, let msg = try? DNSParser.parse(bytes), msg.isResponse else { return [] }
        if isUnicast && peers[address] == nil { return [] }
        let relevant = msg.allRecords.contains { r in
            DeviceBuilder.split(r.name) != nil || configuration.serviceTypes.contains { $0.lowercased() == r.name.lowercased() }
        }
        var peer = peers[address] ?? Peer()
        let answeredQuery = peer.outstanding.removeValue(forKey: msg.id)
        if answeredQuery == nil && !relevant { return [] }
        if peers[address] == nil { peerOrder.append(address) }
        peer.answeredAny = true
        if let q = answeredQuery {
            peer.lastAnswer = now
            peer.roundTrip = max(peer.roundTrip, now - q.lastSent)
        }
        for r in msg.allRecords where !peer.recordSet.contains(RecordKey(r)) {
            peer.recordSet.insert(RecordKey(r))
            peer.records.append(r)
            peer.lastNew = now
        }
        var actions: [Action] = []
        // Truncated: ask again, one service type per message.
        if msg.isTruncated {
            let types = (answeredQuery?.message.questions.map(\.name) ?? configuration.serviceTypes)
            for t in types where answeredQuery?.message.questions.count ?? 2 > 1 && !peer.askedTypes.contains(t) {
                peer.askedTypes.insert(t)
                let q = makeQuery([DNSQuestion(name: t, type: .ptr, unicastResponse: true)])
                let b = DNSSerializer.serialize(q)
                peer.outstanding[q.id] = Query(message: q, bytes: b, lastSent: now)
                actions.append(.send(b, to: .host(address)))
            }
        }
        // Instances without SRV or TXT: ask for them directly.
        for instance in Self.incompleteInstances(peer.records) where !peer.askedInstances.contains(instance.lowercased()) {
            peer.askedInstances.insert(instance.lowercased())
            for type in [DNSType.srv, .txt] {
                let q = makeQuery([DNSQuestion(name: instance, type: type, unicastResponse: true)])
                let b = DNSSerializer.serialize(q)
                peer.outstanding[q.id] = Query(message: q, bytes: b, lastSent: now)
                actions.append(.send(b, to: .host(address)))
            }
        }
        peers[address] = peer
        return actions + check(now: now)
    }

    /// The instances (full names) announced in `records` that still lack their SRV or TXT record.
    /// Sleep proxy instances are not counted: they carry nothing we use.
    package static func incompleteInstances(_ records: [DNSRecord]) -> [String] {
        var instances: [String] = []
        var haveSRV = Set<String>(), haveTXT = Set<String>()
        for r in records {
            switch r.data {
            case .ptr(let target) where r.name.hasPrefix("_") && DeviceBuilder.split(target) != nil:
                if !instances.contains(where: { $0.lowercased() == target.lowercased() }) { instances.append(target) }
            case .srv: haveSRV.insert(r.name.lowercased())
            case .txt: haveTXT.insert(r.name.lowercased())
            default: break
            }
        }
        // Sleep proxy records carry no useful SRV/TXT for us.
        return instances.filter { i in
            !i.lowercased().hasSuffix(ServiceType.sleepProxy) && (!haveSRV.contains(i.lowercased()) || !haveTXT.contains(i.lowercased()))
        }
    }

    /// Clock tick: resend, report settled devices, finish.
    package mutating func tick(now: Double) -> [Action] {
        guard !isFinished else { return [] }
        var actions: [Action] = []
        if now - startTime >= configuration.timeout {
            return finish(reportAll: true)
        }
        for addr in peerOrder {
            guard var peer = peers[addr] else { continue }
            for (id, q) in peer.outstanding where q.followUp && now - q.firstSent >= configuration.followUpGiveUp {
                peer.outstanding.removeValue(forKey: id)
            }
            for (id, var q) in peer.outstanding where now - q.lastSent >= configuration.resendInterval {
                q.lastSent = now
                peer.outstanding[id] = q
                actions.append(.send(q.bytes, to: .host(addr)))
            }
            peers[addr] = peer
        }
        if !isUnicast, now - lastMulticast >= configuration.resendInterval {
            actions += sendMulticast(now: now)
        }
        return actions + check(now: now)
    }

    mutating func check(now: Double) -> [Action] {
        var actions: [Action] = []
        for addr in peerOrder where isUnicast {
            // A host that answered and then stayed quiet: the first-round questions it did not
            // answer are asked again (the query or its answer may have been lost), and after the
            // last re-ask taken as "nothing of that type". (Follow-ups have their own limit.)
            guard var peer = peers[addr], peer.answeredAny else { continue }
            let unanswered = peer.outstanding.keys.filter(peer.initialIDs.contains).sorted()
            guard !unanswered.isEmpty else { continue }
            let quiet = peer.reasks == 0
                ? configuration.unicastSettle
                : Double(peer.reasks) * max(configuration.unicastSettle, 2 * peer.roundTrip)
            guard now - max(peer.lastAnswer, peer.lastReask) >= quiet else { continue }
            if peer.reasks < configuration.unicastReasks {
                peer.reasks += 1
                peer.lastReask = now
                for id in unanswered {
                    guard var q = peer.outstanding[id] else { continue }
                    q.lastSent = now
                    peer.outstanding[id] = q
                    actions.append(.send(q.bytes, to: .host(addr)))
                }
            } else {
                for id in unanswered { peer.outstanding.removeValue(forKey: id) }
            }
            peers[addr] = peer
        }
        for addr in peerOrder {
            guard let peer = peers[addr], peer.isComplete else { continue }
            if !isUnicast && now - peer.lastNew < configuration.settle { continue }
            actions += report(devices(addr, peer))
        }
        if !configuration.identifiers.isEmpty {
            let wanted = Set(configuration.identifiers.map { $0.lowercased() })
            if reported.values.contains(where: { d in d.allIdentifiers.contains { wanted.contains($0.lowercased()) } }) {
                return actions + finish(reportAll: false)
            }
        }
        if let count = configuration.count, reported.count >= count {
            return actions + finish(reportAll: false)
        }
        if isUnicast, configuration.hosts.allSatisfy({ peers[$0]?.outstanding.isEmpty ?? true }) {
            return actions + finish(reportAll: true)
        }
        return actions
    }

    /// Report new devices, and devices that gained services since they were reported.
    mutating func report(_ devices: [DeviceConfig]) -> [Action] {
        var actions: [Action] = []
        let wanted = Set(configuration.identifiers.map { $0.lowercased() })
        for d in devices {
            if !wanted.isEmpty && !d.allIdentifiers.contains(where: { wanted.contains($0.lowercased()) }) { continue }
            if let old = reported[d.address], old.services.count >= d.services.count { continue }
            if reported[d.address] == nil { reportedOrder.append(d.address) }
            reported[d.address] = d
            actions.append(.found(d))
        }
        return actions
    }

    /// Hosts (unicast) that have not answered a single query.
    package var silentHosts: [String] {
        configuration.hosts.filter { !(peers[$0]?.answeredAny ?? false) }
    }

    /// Every device reported so far, latest version of each.
    package var devices: [DeviceConfig] { reportedOrder.compactMap { reported[$0] } }

    mutating func finish(reportAll: Bool) -> [Action] {
        var actions: [Action] = []
        if reportAll {
            for addr in peerOrder {
                guard let peer = peers[addr] else { continue }
                actions += report(devices(addr, peer))
            }
        }
        isFinished = true
        return actions + [.finished]
    }

    func devices(_ source: String, _ peer: Peer) -> [DeviceConfig] {
        let services = DeviceBuilder.serviceRecords(from: peer.records, sourceAddress: source)
        return DeviceBuilder.devices(from: services).filter { $0.ready || $0.deepSleep }
    }
}
