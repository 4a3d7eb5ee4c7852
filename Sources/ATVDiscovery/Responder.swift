import ATVCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Publishes DNS-SD services over mDNS: the I/O shell around `ResponderStateMachine`.
///
/// Binds 0.0.0.0:5353 (SO_REUSEADDR + SO_REUSEPORT, so other responders on the machine keep
/// working), joins 224.0.0.251 on the chosen multicast interfaces and sends multicast out of each
/// of them from a socket bound to that interface's address and port 5353. Announces on start (twice,
/// 1 s apart) and says goodbye (TTL 0) on `stop`.
///
/// With `interfaceAddresses` set, only interfaces with one of those IPv4 addresses are used and
/// only queries from those interfaces' subnets are answered (the virtual devices restrict
/// themselves to loopback this way). Without a multicast-capable interface it still answers
/// unicast queries sent to port 5353.
package final class MDNSResponder: Sendable {
    package struct Options: Sendable {
        /// The port to bind (5353; tests of the unicast path may use another).
        package var port: Int
        /// IPv4 addresses of the interfaces to use; nil = every multicast-capable IPv4 interface.
        package var interfaceAddresses: [String]?
        package var configuration: ResponderStateMachine.Configuration
        package init(port: Int = 5353, interfaceAddresses: [String]? = nil,
                    configuration: ResponderStateMachine.Configuration = .init()) {
            self.port = port
            self.interfaceAddresses = interfaceAddresses
            self.configuration = configuration
        }
    }

    static let logger = Logger(label: "atv.mdns.responder")

    struct Subnet: Sendable {
        var address: UInt32
        var mask: UInt32
        func contains(_ ip: UInt32) -> Bool { ip & mask == address & mask }
    }

    private let machine: Mutex<ResponderStateMachine>
    private let listener: UDPEndpoint
    /// Per-interface multicast senders.
    private let senders: [UDPEndpoint]
    private let allowed: [Subnet]?
    private let tasks: Mutex<[Task<Void, Never>]>
    private let group: SocketAddress
    private let stopped = Mutex(false)
    /// Addresses of the interfaces multicast goes out of (empty: unicast only).
    package let multicastInterfaces: [String]
    /// The bound UDP port (5353 unless `Options.port` said otherwise).
    package var port: Int { listener.localPort }

    private init(machine: ResponderStateMachine, listener: UDPEndpoint, senders: [UDPEndpoint], allowed: [Subnet]?,
                 multicastInterfaces: [String], group: SocketAddress) {
        self.machine = Mutex(machine)
        self.listener = listener
        self.senders = senders
        self.allowed = allowed
        self.multicastInterfaces = multicastInterfaces
        self.group = group
        self.tasks = Mutex([])
    }

    /// Starts answering and announces. Throws `ATVError.connectionFailed` when the port cannot be bound.
    package static func start(_ services: [MDNSService], options: Options = Options()) async throws -> MDNSResponder {
        let group = try SocketAddress(ipAddress: Discovery.mdnsGroup, port: 5353)
        let all = (try? System.enumerateDevices()) ?? []
        let chosen = all.filter { dev in
            guard case .v4? = dev.address, let ip = dev.address?.ipAddress else { return false }
            return options.interfaceAddresses.map { $0.contains(ip) } ?? true
        }
        let allowed: [Subnet]? = options.interfaceAddresses.map { _ in
            chosen.compactMap { dev -> Subnet? in
                guard let a = dev.address?.ipAddress.flatMap(ipv4), let m = dev.netmask?.ipAddress.flatMap(ipv4) else { return nil }
                return Subnet(address: a, mask: m)
            }
        }
        let listener = try await UDPEndpoint.receiving(host: "0.0.0.0", port: options.port, options: .init(reuse: true))
        var senders: [UDPEndpoint] = []
        var interfaces: [String] = []
        var joined = Set<String>()
        for dev in chosen where dev.multicastSupported && !joined.contains(dev.name) {
            guard let address = dev.address, let ip = address.ipAddress else { continue }
            do {
                try await listener.joinMulticast(group, device: dev)
            } catch {
                logger.debug("cannot join \(Discovery.mdnsGroup) on \(dev.name): \(error)")
                continue
            }
            let sender: UDPEndpoint
            if let s = try? await UDPEndpoint.receiving(host: ip, port: options.port, options: .init(reuse: true)) {
                sender = s
            } else if let s = try? await UDPEndpoint.receiving(host: ip) {
                sender = s
            } else { continue }
            try? await sender.setMulticastInterface(address)
            senders.append(sender)
            interfaces.append(ip)
            joined.insert(dev.name)
        }
        var config = options.configuration
        config.mdnsPort = 5353
        let responder = MDNSResponder(machine: ResponderStateMachine(services: services, configuration: config),
                                      listener: listener, senders: senders, allowed: allowed,
                                      multicastInterfaces: interfaces, group: group)
        responder.run()
        return responder
    }

    private static let clock = ContinuousClock()
    private static let epoch = ContinuousClock.now
    private static func now() -> Double {
        let d = clock.now - epoch
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func run() {
        var started: [Task<Void, Never>] = []
        for socket in [listener] + senders {
            started.append(Task { [self] in
                for await d in socket.incoming {
                    guard let host = d.remote.ipAddress, let port = d.remote.port else { continue }
                    if let allowed, let ip = ipv4(host), !allowed.contains(where: { $0.contains(ip) }) { continue }
                    let out = machine.withLock { $0.received(d.bytes, from: host, port: port) }
                    await send(out, via: socket)
                }
            })
        }
        started.append(Task { [self] in
            let first = machine.withLock { $0.start(now: Self.now()) }
            await send(first, via: listener)
            while !Task.isCancelled {
                guard let deadline = machine.withLock({ $0.nextDeadline }) else { return }
                let wait = max(0, deadline - Self.now())
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000) + 1))
                if Task.isCancelled { return }
                let out = machine.withLock { $0.tick(now: Self.now()) }
                await send(out, via: listener)
            }
        })
        tasks.withLock { $0 = started }
    }

    private func send(_ out: [ResponderStateMachine.Outgoing], via socket: UDPEndpoint) async {
        for o in out {
            switch o.destination {
            case .multicast:
                for s in senders { try? await s.write(o.bytes, to: group) }
            case .unicast(let host, let port):
                if let addr = try? SocketAddress(ipAddress: host, port: port) {
                    try? await socket.write(o.bytes, to: addr)
                }
            }
        }
    }

    /// Sends the goodbye, stops answering and closes the sockets. Safe to call more than once.
    package func stop() async {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard first else { return }
        let bye = machine.withLock { $0.stop() }
        await send(bye, via: listener)
        for t in tasks.withLock({ $0 }) { t.cancel() }
        for s in [listener] + senders { await s.close() }
    }
}

/// "a.b.c.d" → host-order UInt32.
func ipv4(_ s: String) -> UInt32? {
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var v: UInt32 = 0
    for p in parts {
        guard let b = UInt8(p) else { return nil }
        v = v << 8 | UInt32(b)
    }
    return v
}
