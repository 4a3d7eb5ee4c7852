import ATVCore

/// One DNS-SD service to publish.
package struct MDNSService: Sendable, Equatable {
    /// Instance name ("Kitchen", "AABBCCDDEEFF@Kitchen"); may contain dots, spaces and non-ASCII.
    package var instance: String
    /// Service type with domain, e.g. "_raop._tcp.local" (a trailing dot is ignored).
    package var type: String
    package var port: UInt16
    /// TXT record as key/value pairs (written sorted by key).
    package var txt: [String: String]
    /// Host name of the SRV target, e.g. "swift-atv.local" (a trailing dot is ignored).
    package var hostName: String
    /// IPv4 address of the host, dotted.
    package var address: String

    package init(instance: String, type: String, port: UInt16, txt: [String: String] = [:], hostName: String, address: String) {
        self.instance = instance
        self.type = Self.trimDot(type)
        self.port = port
        self.txt = txt
        self.hostName = Self.trimDot(hostName)
        self.address = address
    }

    /// "Instance._type._tcp.local".
    package var fullName: String { "\(instance).\(type)" }

    static func trimDot(_ s: String) -> String { s.hasSuffix(".") ? String(s.dropLast()) : s }
}

/// The logic of an mDNS responder, without I/O: queries in, answers out (RFC 6762/6763).
///
/// - Answers PTR, SRV, TXT, A and ANY questions for its records (names compared
///   case-insensitively), plus `_services._dns-sd._udp.local` enumeration. A PTR answer carries the
///   instance's SRV, TXT and A records as additionals, an SRV answer the A record.
/// - Legacy unicast (source port ≠ 5353): one unicast reply to the source with the query's id, its
///   questions echoed, no cache-flush bits and TTLs of at most 10 s. Such a query is answered even
///   when nothing matches (an empty answer), so one-shot resolvers (pyatv's unicast scan) need not
///   wait for their timeout.
/// - QU questions from port 5353 get a unicast reply to the source; other questions a multicast
///   reply. Answers the query already lists with at least half their TTL left are left out
///   (known-answer suppression).
/// - Announces every record on `start` and again `announceInterval` later (2 announcements);
///   `stop` returns a goodbye (every record with TTL 0).
///
/// Not done: probing and conflict resolution, the 20–120 ms delay of shared multicast answers
/// and per-record multicast rate limiting.
package struct ResponderStateMachine: Sendable {
    package enum Destination: Sendable, Equatable {
        case multicast
        case unicast(host: String, port: Int)
    }

    package struct Outgoing: Sendable, Equatable {
        package var bytes: [UInt8]
        package var destination: Destination
        package init(bytes: [UInt8], destination: Destination) {
            self.bytes = bytes
            self.destination = destination
        }
    }

    package struct Configuration: Sendable {
        /// TTL of host records (SRV, A) in seconds.
        package var hostTTL: UInt32
        /// TTL of other records (PTR, TXT) in seconds.
        package var otherTTL: UInt32
        package var announcements: Int
        package var announceInterval: Double
        package var mdnsPort: Int
        package init(hostTTL: UInt32 = 120, otherTTL: UInt32 = 4500, announcements: Int = 2, announceInterval: Double = 1.0,
                    mdnsPort: Int = 5353) {
            self.hostTTL = hostTTL
            self.otherTTL = otherTTL
            self.announcements = announcements
            self.announceInterval = announceInterval
            self.mdnsPort = mdnsPort
        }
    }

    static let servicesEnumeration = "_services._dns-sd._udp.local"
    static let responseFlags: UInt16 = 0x8400   // QR + AA

    package let services: [MDNSService]
    package let configuration: Configuration
    /// Every record published, in a stable order (PTR, SRV, TXT per service, then A per host).
    package let records: [DNSRecord]
    var announcementsSent = 0
    var nextAnnouncement: Double?
    package private(set) var isStopped = false

    package init(services: [MDNSService], configuration: Configuration = Configuration()) {
        self.services = services
        self.configuration = configuration
        var records: [DNSRecord] = []
        var hosts: [(String, String)] = []
        var types: [String] = []
        for s in services {
            records.append(DNSRecord(name: s.type, type: .ptr, ttl: configuration.otherTTL, data: .ptr(s.fullName)))
            records.append(DNSRecord(name: s.fullName, type: .srv, cacheFlush: true, ttl: configuration.hostTTL,
                                     data: .srv(priority: 0, weight: 0, port: s.port, target: s.hostName)))
            records.append(DNSRecord(name: s.fullName, type: .txt, cacheFlush: true, ttl: configuration.otherTTL,
                                     data: .txt(TXTProperties.encode(s.txt))))
            if !hosts.contains(where: { $0.0.lowercased() == s.hostName.lowercased() && $0.1 == s.address }) {
                hosts.append((s.hostName, s.address))
            }
            if !types.contains(where: { $0.lowercased() == s.type.lowercased() }) { types.append(s.type) }
        }
        for (host, address) in hosts {
            records.append(DNSRecord(name: host, type: .a, cacheFlush: true, ttl: configuration.hostTTL, data: .a(address)))
        }
        for t in types {
            records.append(DNSRecord(name: Self.servicesEnumeration, type: .ptr, ttl: configuration.otherTTL, data: .ptr(t)))
        }
        self.records = records
    }

    // MARK: Announcements

    /// The first announcement.
    package mutating func start(now: Double) -> [Outgoing] {
        guard configuration.announcements > 0, !isStopped else { return [] }
        announcementsSent = 1
        nextAnnouncement = configuration.announcements > 1 ? now + configuration.announceInterval : nil
        return [Outgoing(bytes: announcement(), destination: .multicast)]
    }

    /// When `tick` next has something to do, if ever.
    package var nextDeadline: Double? { isStopped ? nil : nextAnnouncement }

    /// Clock tick: the remaining announcements.
    package mutating func tick(now: Double) -> [Outgoing] {
        guard !isStopped, let next = nextAnnouncement, now >= next else { return [] }
        announcementsSent += 1
        nextAnnouncement = announcementsSent < configuration.announcements ? next + configuration.announceInterval : nil
        return [Outgoing(bytes: announcement(), destination: .multicast)]
    }

    /// Goodbye: every record with TTL 0. Nothing more is sent afterwards.
    package mutating func stop() -> [Outgoing] {
        guard !isStopped else { return [] }
        isStopped = true
        nextAnnouncement = nil
        return [Outgoing(bytes: goodbye(), destination: .multicast)]
    }

    /// An unsolicited response carrying every record (service records as answers).
    package func announcement() -> [UInt8] {
        let answers = records.filter { $0.name.lowercased() != Self.servicesEnumeration }
        return DNSSerializer.serialize(DNSMessage(id: 0, flags: Self.responseFlags, answers: answers))
    }

    package func goodbye() -> [UInt8] {
        let answers = records.filter { $0.name.lowercased() != Self.servicesEnumeration }.map { r -> DNSRecord in
            var r = r
            r.ttl = 0
            return r
        }
        return DNSSerializer.serialize(DNSMessage(id: 0, flags: Self.responseFlags, answers: answers))
    }

    // MARK: Queries

    /// A datagram from host:port. Responses, garbage and queries for other names yield nothing
    /// (except legacy unicast queries, which always get a reply).
    package func received(_ bytes: [UInt8], from host: String, port: Int) -> [Outgoing] {
        guard !isStopped, let query = try? DNSParser.parse(bytes), !query.isResponse,
              query.flags & 0x7800 == 0,                       // opcode 0 (standard query) only
              !query.questions.isEmpty else { return [] }
        let known = Set(query.answers.filter { $0.ttl > 0 }.map(Self.identity))
        let knownTTL = Dictionary(query.answers.map { (Self.identity($0), $0.ttl) }, uniquingKeysWith: max)
        func suppressed(_ r: DNSRecord) -> Bool {
            let id = Self.identity(r)
            guard known.contains(id), let ttl = knownTTL[id] else { return false }
            return ttl >= r.ttl / 2
        }

        if port != configuration.mdnsPort {
            // Legacy unicast: one conventional DNS reply.
            var answers: [DNSRecord] = [], additionals: [DNSRecord] = []
            for q in query.questions {
                let (a, add) = answer(q)
                append(a, to: &answers)
                append(add, to: &additionals)
            }
            additionals.removeAll { r in answers.contains(r) }
            let legacy: (DNSRecord) -> DNSRecord = { r in
                var r = r
                r.cacheFlush = false
                r.ttl = min(r.ttl, 10)
                return r
            }
            let reply = DNSMessage(id: query.id, flags: Self.responseFlags | (query.flags & 0x0100),
                                   questions: query.questions.map { DNSQuestion(name: $0.name, type: $0.type) },
                                   answers: answers.map(legacy), additionals: additionals.map(legacy))
            return [Outgoing(bytes: DNSSerializer.serialize(reply), destination: .unicast(host: host, port: port))]
        }

        var unicast: ([DNSRecord], [DNSRecord]) = ([], [])
        var multicast: ([DNSRecord], [DNSRecord]) = ([], [])
        for q in query.questions {
            let (a, add) = answer(q)
            let kept = a.filter { !suppressed($0) }
            if q.unicastResponse {
                append(kept, to: &unicast.0)
                append(add, to: &unicast.1)
            } else {
                append(kept, to: &multicast.0)
                append(add, to: &multicast.1)
            }
        }
        var out: [Outgoing] = []
        for (section, destination) in [(unicast, Destination.unicast(host: host, port: port)), (multicast, .multicast)] {
            guard !section.0.isEmpty else { continue }
            let additionals = section.1.filter { r in !section.0.contains(r) && !suppressed(r) }
            let reply = DNSMessage(id: 0, flags: Self.responseFlags, answers: section.0, additionals: additionals)
            out.append(Outgoing(bytes: DNSSerializer.serialize(reply), destination: destination))
        }
        return out
    }

    /// Answers and additionals for one question.
    func answer(_ q: DNSQuestion) -> (answers: [DNSRecord], additionals: [DNSRecord]) {
        let name = q.name.lowercased()
        var answers: [DNSRecord] = []
        for r in records where r.name.lowercased() == name && (q.type == .any || q.type == r.type) {
            answers.append(r)
        }
        var additionals: [DNSRecord] = []
        for a in answers {
            switch a.data {
            case .ptr(let target) where a.name.lowercased() != Self.servicesEnumeration:
                let t = target.lowercased()
                additionals += records.filter { $0.name.lowercased() == t }
                additionals += hostRecords(forInstance: t)
            case .srv(_, _, _, let target):
                let t = target.lowercased()
                additionals += records.filter { $0.type == .a && $0.name.lowercased() == t }
            default:
                break
            }
        }
        return (answers, additionals)
    }

    func hostRecords(forInstance instance: String) -> [DNSRecord] {
        var out: [DNSRecord] = []
        for r in records where r.name.lowercased() == instance {
            if case .srv(_, _, _, let target) = r.data {
                out += records.filter { $0.type == .a && $0.name.lowercased() == target.lowercased() }
            }
        }
        return out
    }

    func append(_ records: [DNSRecord], to list: inout [DNSRecord]) {
        for r in records where !list.contains(r) { list.append(r) }
    }

    /// A record's identity for known-answer suppression: name, type and data (not TTL or flags).
    struct Identity: Hashable {
        var name: String
        var type: UInt16
        var data: DNSRecordData
    }

    static func identity(_ r: DNSRecord) -> Identity {
        Identity(name: r.name.lowercased(), type: r.type.rawValue, data: r.data)
    }
}

extension MDNSService {
    /// The `_raop._tcp` and `_airplay._tcp` services of an AirPlay 1 speaker (audio only, no
    /// AirPlay 2 bits): RAOP instance "<DEVICEID without colons>@<name>", TXT like a real receiver.
    /// `deviceID` is "AA:BB:CC:DD:EE:FF".
    package static func airPlay1Speaker(name: String, deviceID: String, port: UInt16, model: String = "swift-atv,1",
                                       hostName: String? = nil, address: String = "127.0.0.1",
                                       sourceVersion: String = "366.0") -> [MDNSService] {
        let compactID = deviceID.filter { $0 != ":" }.uppercased()
        let host = hostName ?? "swift-atv-\(compactID.lowercased()).local"
        let features = "0x5A7FFFF7,0xE"
        let raop: [String: String] = [
            "am": model, "ch": "2", "cn": "0,1", "et": "0", "md": "0,1,2", "sr": "44100", "ss": "16",
            "tp": "UDP", "vn": "65537", "vs": sourceVersion, "txtvers": "1", "da": "true", "sf": "0x4", "ft": features,
        ]
        let airplay: [String: String] = [
            "deviceid": deviceID.uppercased(), "features": features, "model": model, "srcvers": sourceVersion,
            "flags": "0x4", "vv": "1",
        ]
        return [
            MDNSService(instance: "\(compactID)@\(name)", type: ServiceType.raop, port: port, txt: raop, hostName: host, address: address),
            MDNSService(instance: name, type: ServiceType.airplay, port: port, txt: airplay, hostName: host, address: address),
        ]
    }
}
