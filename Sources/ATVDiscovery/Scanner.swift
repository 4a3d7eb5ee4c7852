import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix

/// How to scan.
public struct ScanOptions: Sendable {
    /// Seconds to scan.
    public var timeout: Double
    /// Hosts to ask directly (unicast); empty means multicast.
    public var hosts: [String]
    /// Stop as soon as a device with one of these identifiers is found.
    public var identifiers: Set<String>
    /// The mDNS port to send to (5353; tests may use another for unicast).
    public var port: Int
    /// Wake sleeping devices with a TCP connect to their usual ports (unicast only).
    public var knock: Bool
    /// Stop as soon as this many devices were found (nil: scan until the timeout, or until every
    /// host answered for unicast).
    public var count: Int?

    public init(timeout: Double = 3, hosts: [String] = [], identifiers: Set<String> = [], port: Int = 5353, knock: Bool = true,
                count: Int? = nil) {
        self.count = count
        self.timeout = timeout
        self.hosts = hosts
        self.identifiers = identifiers
        self.port = port
        self.knock = knock
    }
}

public enum Discovery {
    static let logger = Logger(label: "atv.discovery")
    static let mdnsGroup = "224.0.0.251"

    /// What a scan tells as it goes.
    public enum ScanEvent: Sendable, Equatable {
        /// A device whose records are complete (again, with more services, if it gained some).
        case found(DeviceConfig)
        /// Sent last, when the scan ran its course: the hosts (unicast) that never answered.
        case silentHosts([String])
    }

    /// Devices as soon as their records are complete, then (unicast, if any) the hosts that did
    /// not answer. The stream ends when the scan is complete: at the timeout for multicast, when
    /// every host is done for unicast, or when an identifier (or `count` devices) was found.
    public static func events(_ options: ScanOptions = ScanOptions()) -> AsyncThrowingStream<ScanEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(options) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Devices as they are found (`events` without the silent hosts).
    public static func scan(_ options: ScanOptions = ScanOptions()) -> AsyncThrowingStream<DeviceConfig, Error> {
        let events = events(options)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await case .found(let d) in events { continuation.yield(d) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Every device found (latest version of each).
    public static func scanAll(_ options: ScanOptions = ScanOptions()) async throws -> [DeviceConfig] {
        try await scanAllReportingSilence(options).devices
    }

    /// Every device found (latest version of each), and the hosts (unicast) that never answered.
    public static func scanAllReportingSilence(_ options: ScanOptions = ScanOptions()) async throws
        -> (devices: [DeviceConfig], silentHosts: [String]) {
        var byAddress: [String: DeviceConfig] = [:]
        var order: [String] = []
        var silent: [String] = []
        for try await event in events(options) {
            switch event {
            case .found(let d):
                if byAddress[d.address] == nil { order.append(d.address) }
                byAddress[d.address] = d
            case .silentHosts(let hosts):
                silent = hosts
            }
        }
        return (order.compactMap { byAddress[$0] }, silent)
    }

    /// Find several devices by name or identifier in one scan (a multi-room stream's members):
    /// returns, in the order of `namesOrIDs`, as soon as every one was found; a name no device
    /// answered to by the end of the scan is `ATVError.deviceNotFound` naming all such.
    public static func findAll(_ namesOrIDs: [String], options: ScanOptions = ScanOptions()) async throws -> [DeviceConfig] {
        var found: [Int: DeviceConfig] = [:]
        var silent: [String] = []
        scan: for try await event in events(options) {
            switch event {
            case .found(let d):
                for (i, name) in namesOrIDs.enumerated() where d.matches(name) { found[i] = d }
                if found.count == namesOrIDs.count { break scan }
            case .silentHosts(let hosts):
                silent = hosts
            }
        }
        let missing = namesOrIDs.indices.filter { found[$0] == nil }.map { namesOrIDs[$0] }
        if missing.count == 1 { throw notFound(missing[0], options: options, silentHosts: silent) }
        if !missing.isEmpty {
            let names = missing.map { "'\($0)'" }.joined(separator: ", ")
            var text = "no devices named or identified \(names) answered within \(seconds(options.timeout))"
            if !options.hosts.isEmpty { text += " at \(list(options.hosts))" }
            throw ATVError.deviceNotFound(text)
        }
        return namesOrIDs.indices.compactMap { found[$0] }
    }

    /// Find one device by name or identifier: returns as soon as a matching device's records are
    /// complete (multicast, or unicast to `options.hosts`), without waiting for the rest of the scan.
    public static func find(_ nameOrID: String, options: ScanOptions = ScanOptions()) async throws -> DeviceConfig {
        var silent: [String] = []
        for try await event in events(options) {
            switch event {
            case .found(let d) where d.matches(nameOrID): return d
            case .found: continue
            case .silentHosts(let hosts): silent = hosts
            }
        }
        throw notFound(nameOrID, options: options, silentHosts: silent)
    }

    /// The one-line error for a device that was not found, naming the hosts that did not answer.
    public static func notFound(_ nameOrID: String, options: ScanOptions, silentHosts: [String]) -> ATVError {
        guard !options.hosts.isEmpty else {
            return ATVError.deviceNotFound("no device named or identified '\(nameOrID)' answered within \(seconds(options.timeout))")
        }
        if !silentHosts.isEmpty && silentHosts.count == options.hosts.count {
            return silence(silentHosts, timeout: options.timeout)
        }
        var text = "no device named or identified '\(nameOrID)' at \(list(options.hosts))"
        if !silentHosts.isEmpty {
            text += " (\(list(silentHosts)) did not answer mDNS queries within \(seconds(options.timeout)))"
        }
        return ATVError.deviceNotFound(text)
    }

    /// "A, B did not answer mDNS queries within 3 s" (as `ATVError.deviceNotFound`).
    public static func silence(_ hosts: [String], timeout: Double) -> ATVError {
        ATVError.deviceNotFound(silenceText(hosts, timeout: timeout))
    }

    /// "A, B did not answer mDNS queries within 3 s".
    public static func silenceText(_ hosts: [String], timeout: Double) -> String {
        "\(list(hosts)) did not answer mDNS queries within \(seconds(timeout))"
    }

    static func seconds(_ t: Double) -> String {
        t == t.rounded() ? "\(Int(t)) s" : String(cFormat: "%.1f s", t)
    }

    static func list(_ hosts: [String]) -> String { hosts.joined(separator: ", ") }

    enum Event: Sendable {
        case datagram(Datagram)
        case tick
    }

    static func run(_ options: ScanOptions, emit: (ScanEvent) -> Void) async throws {
        let clock = ContinuousClock()
        let t0 = clock.now
        func now() -> Double {
            let d = clock.now - t0
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        var machine = ScanStateMachine(.init(hosts: options.hosts, identifiers: options.identifiers, timeout: options.timeout,
                                                  count: options.count))

        var senders: [UDPEndpoint] = []
        var listener: UDPEndpoint?
        let unicastSocket = try await UDPEndpoint.receiving(host: "0.0.0.0")
        senders.append(unicastSocket)
        var groupAddresses: [(UDPEndpoint, SocketAddress)] = []
        if options.hosts.isEmpty {
            let interfaces = UDPEndpoint.multicastInterfaces()
            guard !interfaces.isEmpty else {
                await unicastSocket.close()
                throw ATVError.connectionFailed("no network interface supports multicast (scan with --hosts instead)")
            }
            let group = try SocketAddress(ipAddress: mdnsGroup, port: 5353)
            for dev in interfaces {
                let s = try await UDPEndpoint.receiving(host: "0.0.0.0")
                if let a = dev.address { try? await s.setMulticastInterface(a) }
                senders.append(s)
                groupAddresses.append((s, group))
            }
            // Bound to the group address, not 0.0.0.0: a second socket on *:5353 would take
            // unicast datagrams meant for a responder on this machine (the kernel hands each
            // to one of the sockets sharing the port), e.g. our own follow-up queries.
            if let l = try? await UDPEndpoint.receiving(host: mdnsGroup, port: 5353, options: .init(reuse: true)) {
                for dev in interfaces { try? await l.joinMulticast(group, device: dev) }
                listener = l
            }
        }
        let sockets = senders + (listener.map { [$0] } ?? [])
        defer {
            let all = sockets
            Task { for s in all { await s.close() } }
        }

        let (events, eventSink) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(4096))
        var tasks: [Task<Void, Never>] = []
        for s in sockets {
            tasks.append(Task {
                for await d in s.incoming { eventSink.yield(.datagram(d)) }
            })
        }
        tasks.append(Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(25))
                eventSink.yield(.tick)
            }
        })
        if options.knock && !options.hosts.isEmpty {
            for host in options.hosts { tasks.append(Task { await knock(host) }) }
        }
        defer {
            for t in tasks { t.cancel() }
            eventSink.finish()
        }

        func perform(_ actions: [ScanStateMachine.Action]) async -> Bool {
            for a in actions {
                switch a {
                case .send(let bytes, .multicast):
                    for (s, group) in groupAddresses { try? await s.write(bytes, to: group) }
                case .send(let bytes, .host(let host)):
                    logger.trace("mDNS query to \(host): \((try? DNSParser.parse(bytes))?.questions.map { "\($0.type) \($0.name)" } ?? [])")
                    if let addr = try? SocketAddress.makeAddressResolvingHost(host, port: options.port) {
                        try? await unicastSocket.write(bytes, to: addr)
                    }
                case .found(let d):
                    emit(.found(d))
                case .finished:
                    let silent = machine.silentHosts
                    if !silent.isEmpty { emit(.silentHosts(silent)) }
                    return true
                }
            }
            return false
        }

        if await perform(machine.start(now: now())) { return }
        for await event in events {
            try Task.checkCancellation()
            let actions: [ScanStateMachine.Action]
            switch event {
            case .datagram(let d):
                guard let ip = d.remote.ipAddress else { continue }
                if logger.logLevel <= .trace, let m = try? DNSParser.parse(d.bytes) {
                    logger.trace("mDNS from \(ip):\(d.remote.port ?? 0) id=\(m.id) flags=\(m.flags) q=\(m.questions.count) records: \(m.allRecords.map { "\($0.type) \($0.name)" }.joined(separator: ", "))")
                }
                actions = machine.received(d.bytes, from: ip, now: now())
            case .tick:
                actions = machine.tick(now: now())
            }
            if await perform(actions) { return }
        }
    }

    /// TCP connects to the ports Apple devices listen on, to wake one behind a sleep proxy.
    static func knock(_ host: String) async {
        for port in [3689, 7000, 49152, 32498] {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(300))
            if let ch = try? await bootstrap.connect(host: host, port: port).get() {
                try? await Task.sleep(for: .milliseconds(100))
                try? await ch.close().get()
            }
        }
    }
}
