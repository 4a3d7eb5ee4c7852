// The NIO shell around `PTPMasterCore`: per address family, two sockets bound to UDP 319 (event)
// and 320 (general) on one address (plus, for a unicast address, two receive-only sockets on the
// PTP multicast group, joined on that address's interface, for followers that send Delay_Req to
// the group), all on one event loop, which also runs the core's timer. Sync egress times are
// software timestamps taken right before the Sync is written (docs/PTP-AND-BUFFERED-AUDIO.md §2.7:
// no sleep between Sync and Follow_Up). One master per process, shared by every session (`shared`).
import ATVCore
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A running PTP grandmaster.
package final class PTPMaster: Sendable {
    /// The clock identity, the same in every message (and what a session announces:
    /// `timingPeerInfo.ClockID`, `networkTimeTimelineID` = `clockIdentity.value`).
    package let clockIdentity: PTPClockIdentity
    /// The address the master was started on (`addresses` lists every family's).
    package let bindAddress: String
    /// Nanoseconds added to CLOCK_MONOTONIC to get the PTP timescale.
    package let timescaleOffset: Int64
    /// Followers seen, Announces ignored, grants, malformed datagrams.
    package let events: AsyncStream<PTPMasterEvent>

    private let driver: Driver

    /// CLOCK_MONOTONIC in nanoseconds: the master's time base (NTP-disciplined in rate, never
    /// stepped). NIO's `NIODeadline.now()` reads the same clock, so timers and stamps agree.
    package static func monotonicNow() -> UInt64 { SystemClocks.monotonic() }

    /// The PTP timescale now: CLOCK_MONOTONIC plus the offset fixed at start (TAI at that moment).
    package var networkTime: PTPTimestamp { PTPTimestamp(nanoseconds: UInt64(clamping: Int64(clamping: Self.monotonicNow()) &+ timescaleOffset)) }

    /// The PTP time that corresponds to a CLOCK_MONOTONIC reading.
    package func networkTime(atMonotonic ns: UInt64) -> PTPTimestamp {
        PTPTimestamp(nanoseconds: UInt64(clamping: Int64(clamping: ns) &+ timescaleOffset))
    }

    /// Starts a master bound to `bindAddress` (IPv4 or IPv6 literal, link-local ones with or
    /// without `%interface`; "0.0.0.0" for every interface, which also binds "::" when the host has
    /// IPv6). Fails with one line (`PTPPorts.bindError`) when 319/320 cannot be bound.
    /// Prefer `shared`: there is one master per process.
    package static func start(bindAddress: String, clockIdentity: PTPClockIdentity? = nil,
                             multicastWhenNoPeers: Bool = true,
                             logger: Logger = Logger(label: "atv.ptp")) async throws -> PTPMaster {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let identity = clockIdentity ?? Self.deriveClockIdentity(bindAddress: bindAddress)
        var config = PTPMasterConfig(clockIdentity: identity)
        config.timescaleOffset = Self.taiOffset()
        config.multicastGroups = []
        let (events, sink) = AsyncStream.makeStream(of: PTPMasterEvent.self, bufferingPolicy: .bufferingNewest(256))
        let driver = Driver(core: PTPMasterCore(config: config), loop: loop, multicast: multicastWhenNoPeers,
                            events: sink, logger: logger)
        var sets = [try await PTPSocketSet.open(bindAddress, on: loop, logger: logger, received: driver.received)]
        if bindAddress == "0.0.0.0" {
            // Every interface: IPv6 too, when this host has it (a failure only means no IPv6 peers).
            do {
                sets.append(try await PTPSocketSet.open("::", on: loop, logger: logger, received: driver.received))
            } catch {
                logger.debug("PTP master: no IPv6 sockets on [::] (\(error)); IPv6 peers will not be served")
            }
        }
        let all = sets
        try await loop.submit { driver.start(all) }.get()
        return PTPMaster(identity: identity, bindAddress: bindAddress, offset: config.timescaleOffset, events: events, driver: driver)
    }

    private init(identity: PTPClockIdentity, bindAddress: String, offset: Int64, events: AsyncStream<PTPMasterEvent>, driver: Driver) {
        self.clockIdentity = identity
        self.bindAddress = bindAddress
        self.timescaleOffset = offset
        self.events = events
        self.driver = driver
    }

    /// The address each family's sockets are bound to.
    package func addresses() async -> [PTPFamily: String] {
        (try? await driver.loop.submit { self.driver.sets.mapValues(\.bindAddress) }.get()) ?? [:]
    }

    /// Serves `address`'s family too, bound to `address` (an IPv6 session in a process whose
    /// master serves IPv4). Nothing to do when that family is bound to `address` already; an error
    /// when it is bound to another address (one master per process: the ports are the same).
    package func serve(_ address: String) async throws {
        let family = PTPFamily(host: address)
        if let bound = await addresses()[family] {
            guard PTPSocketSet.sameAddress(bound, address) else {
                throw ATVError.invalidState("the PTP master of this process is bound to \(bound), not \(address): one master per process")
            }
            return
        }
        let set = try await PTPSocketSet.open(address, on: driver.loop, logger: driver.logger, received: driver.received)
        let added = try await driver.loop.submit { self.driver.add(set) }.get()
        if !added { await set.closeAll() }
    }

    /// Sends to `host` by unicast (a receiver of a session: SETPEERS) until `removePeer`; it gets
    /// an Announce and a Signaling at once. Peers are never dropped for being silent (nqptp never
    /// answers). A link-local IPv6 host without `%interface` is taken on the interface of the
    /// master's IPv6 address.
    package func addPeer(_ host: String) {
        driver.loop.execute { self.driver.addPeer(host) }
    }

    package func removePeer(_ host: String) {
        driver.loop.execute { self.driver.removePeer(host) }
    }

    /// The unicast peers now.
    package func peers() async -> [String] {
        (try? await driver.loop.submit { self.driver.core.peers }.get()) ?? []
    }

    /// Stops sending and closes every socket.
    package func stop() async {
        let sets = (try? await driver.loop.submit { self.driver.stop() }.get()) ?? []
        for set in sets { await set.closeAll() }
    }

    // MARK: - One per process

    /// The process's master, started on first use and bound to `bindAddress`; each call takes a
    /// reference, `release()` gives it back and the last release stops it. An address of the
    /// other family than the running master's is served too (`serve`); another address of a
    /// family it serves is an error (one master per process: the ports are the same).
    package static func shared(bindAddress: String = "0.0.0.0") async throws -> PTPMaster {
        try await registry.acquire(bindAddress: bindAddress)
    }

    /// Gives back a reference taken with `shared`.
    package func release() async {
        await Self.registry.release(self)
    }

    private static let registry = Registry()

    private actor Registry {
        var starting: Task<PTPMaster, any Error>?
        var count = 0

        func acquire(bindAddress: String) async throws -> PTPMaster {
            // A master on a loopback address serves only this host's unicast peers: no multicast
            // (the group would go out on `lo` for nobody; tests keep multicast in namespaces).
            let multicast = !(bindAddress.hasPrefix("127.") || bindAddress == "::1")
            let task = starting ?? Task { try await PTPMaster.start(bindAddress: bindAddress, multicastWhenNoPeers: multicast) }
            starting = task
            count += 1
            let master: PTPMaster
            do {
                master = try await task.value
            } catch {
                count -= 1
                if count == 0 { starting = nil }
                throw error
            }
            do {
                try await master.serve(bindAddress)
                return master
            } catch {
                await release(master)
                throw error
            }
        }

        func release(_ master: PTPMaster) async {
            guard count > 0 else { return }
            count -= 1
            guard count == 0 else { return }
            starting = nil
            await master.stop()
        }
    }

    /// An IPv4 or IPv6 literal (what `start`, `addPeer` take; "fe80::1%eth0" included).
    package static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }

    // MARK: - Identity and timescale

    /// The clock identity (docs/PTP-AND-BUFFERED-AUDIO.md §2.6): the EUI-64 of the MAC of the
    /// interface that holds `bindAddress`; else (any address, loopback, no MAC) a random 48-bit
    /// value under the 0xFFFF prefix, as OwnTone's master does. Either way fixed for the master's
    /// life.
    package static func deriveClockIdentity(bindAddress: String) -> PTPClockIdentity {
        if let device = PTPSocketSet.device(holding: bindAddress),
           let mac = macAddress(interface: device.name),
           mac.contains(where: { $0 != 0 }),
           let id = PTPClockIdentity(eui64FromMAC: mac) {
            return id
        }
        return PTPClockIdentity(0xFFFF_0000_0000_0000 | UInt64.random(in: 1...0xFFFF_FFFF_FFFF))
    }

    /// The hardware address of `interface`, from getifaddrs' AF_PACKET entry (this network
    /// namespace's view; /sys/class/net may show another namespace's interfaces).
    static func macAddress(interface: String) -> [UInt8]? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let e = entry {
            defer { entry = e.pointee.ifa_next }
            // struct sockaddr_ll (linux/if_packet.h): family at 0, sll_halen at 11, sll_addr at 12.
            guard let addr = e.pointee.ifa_addr, addr.pointee.sa_family == 17 /* AF_PACKET */,
                  String(cString: e.pointee.ifa_name) == interface else { continue }
            let raw = UnsafeRawPointer(addr)
            guard raw.load(fromByteOffset: 11, as: UInt8.self) == 6 else { return nil }
            return (12..<18).map { raw.load(fromByteOffset: $0, as: UInt8.self) }
        }
        return nil
    }

    /// CLOCK_REALTIME − CLOCK_MONOTONIC + 37 s, read once: the timescale then reads as TAI (what
    /// the ptpTimescale flag promises, and what linuxptp compares with UTC + currentUtcOffset),
    /// yet advances with the monotonic clock and never steps.
    static func taiOffset() -> Int64 {
        SystemClocks.realtimeOffset() + 37 * 1_000_000_000
    }
}

/// One family's sockets: event (319) and general (320) bound to one address, and the
/// receive-only sockets on the family's PTP group (bound to the group address, joined on the
/// bound address's interface; for a wildcard address the bound sockets join the group on every
/// multicast interface instead). Datagrams from the group sockets go to the core like any other:
/// a Delay_Req sent to the group is answered by unicast from 320 (docs/PTP-AND-BUFFERED-AUDIO.md
/// §2.4).
package final class PTPSocketSet: Sendable {
    let family: PTPFamily
    /// The address bound, with `%interface` for a link-local IPv6 one.
    let bindAddress: String
    /// The interface holding `bindAddress` (nil for a wildcard): its name and index.
    let interface: (name: String, index: UInt32)?
    let event: UDPEndpoint
    let general: UDPEndpoint
    /// The event socket's descriptor (owned by its endpoint): Syncs are written on it directly.
    let eventFD: CInt
    let groups: [UDPEndpoint]

    private init(family: PTPFamily, bindAddress: String, interface: (name: String, index: UInt32)?,
                 event: UDPEndpoint, general: UDPEndpoint, eventFD: CInt, groups: [UDPEndpoint]) {
        self.family = family
        self.bindAddress = bindAddress
        self.interface = interface
        self.event = event
        self.general = general
        self.eventFD = eventFD
        self.groups = groups
    }

    static func isWildcard(_ address: String) -> Bool { address == "0.0.0.0" || address == "::" }

    /// The same address, with or without a `%interface` suffix on one side.
    package static func sameAddress(_ a: String, _ b: String) -> Bool {
        a == b || a.split(separator: "%").first == b.split(separator: "%").first && (!a.contains("%") || !b.contains("%"))
    }

    /// The interface holding `address` (its `%interface`, if any, ignored).
    static func device(holding address: String) -> NIONetworkDevice? {
        let parts = address.split(separator: "%", maxSplits: 1).map(String.init)
        let plain = parts.first ?? ""
        let holding = ((try? System.enumerateDevices()) ?? []).filter { $0.address?.ipAddress == plain }
        // "fe80::1%eth0": the same link-local address may be on several interfaces.
        if parts.count == 2, let named = holding.first(where: { $0.name == parts[1] || String($0.interfaceIndex) == parts[1] }) {
            return named
        }
        return holding.first
    }

    /// Binds `address`'s pair and its group sockets, adopted on `loop`.
    static func open(_ requested: String, on loop: any EventLoop, logger: Logger,
                     received: @escaping @Sendable ([UInt8], SocketAddress, PTPSocket, UInt64) -> Void) async throws -> PTPSocketSet {
        let family = PTPFamily(host: requested)
        var address = requested
        var interface: (name: String, index: UInt32)?
        if !isWildcard(requested), let device = Self.device(holding: requested) {
            interface = (device.name, UInt32(device.interfaceIndex))
            // A link-local IPv6 address binds only with its interface.
            if family == .ipv6, !requested.contains("%"), PTPKernelSocket.isLinkLocal(requested) {
                address = requested + "%" + device.name
            }
        }
        let eventFD: CInt, generalFD: CInt
        do {
            eventFD = try PTPKernelSocket.open(host: address, port: 319)
        } catch {
            throw PTPPorts.bindError(host: address, port: 319, error)
        }
        do {
            generalFD = try PTPKernelSocket.open(host: address, port: 320)
        } catch {
            close(eventFD)
            throw PTPPorts.bindError(host: address, port: 320, error)
        }
        if family == .ipv6, let interface {
            // Sends to the group leave by the bound address's interface.
            for fd in [eventFD, generalFD] { PTPKernelSocket.setMulticastInterfaceIPv6(fd, index: interface.index) }
        }
        // Group sockets before the pair is adopted (a failure here closes only what it opened).
        var groupFDs: [(CInt, PTPSocket)] = []
        if isWildcard(address) {
            var joined: [String] = []
            for device in PTPSocketSet.multicastDevices(family) {
                if PTPKernelSocket.joinGroup(eventFD, family: family, interface: device),
                   PTPKernelSocket.joinGroup(generalFD, family: family, interface: device) {
                    joined.append(device.name)
                }
            }
            logger.debug("PTP master: \(family.multicast) joined on \(joined.isEmpty ? "no interface" : joined.joined(separator: ", "))")
        } else if let interface, let device = Self.device(holding: requested), device.multicastSupported {
            let group = family == .ipv4 ? PTPDestination.multicastGroup : PTPDestination.multicastGroupIPv6
            for socket in [PTPSocket.event, .general] {
                do {
                    let fd = try PTPKernelSocket.open(host: group, port: socket.port)
                    guard PTPKernelSocket.joinGroup(fd, family: family, interface: device) else {
                        close(fd)
                        logger.debug("PTP master: cannot join \(group) on \(interface.name)")
                        break
                    }
                    groupFDs.append((fd, socket))
                } catch {
                    logger.debug("PTP master: no socket on \(group):\(socket.port) (\(error)); Delay_Req sent to the group go unanswered")
                    break
                }
            }
        }
        let (event, general): (UDPEndpoint, UDPEndpoint)
        do {
            (event, general) = try await PTPKernelSocket.adopt(eventFD: eventFD, generalFD: generalFD, on: loop,
                                                               bindAddress: address, received: received)
        } catch {
            for (fd, _) in groupFDs { close(fd) }
            throw error
        }
        var groups: [UDPEndpoint] = []
        for (fd, socket) in groupFDs {
            if let endpoint = try? await UDPEndpoint.adopt(descriptor: fd, on: loop, onPacket: { bytes, remote, _ in
                received(bytes, remote, socket, PTPKernelSocket.receiveTime(fd))
            }) {
                groups.append(endpoint)
            }
        }
        return PTPSocketSet(family: family, bindAddress: address, interface: interface, event: event, general: general,
                            eventFD: eventFD, groups: groups)
    }

    /// Interfaces that are up, can multicast and have an address of `family`: one entry each.
    static func multicastDevices(_ family: PTPFamily) -> [NIONetworkDevice] {
        var seen = Set<String>()
        return ((try? System.enumerateDevices()) ?? []).filter { device in
            guard device.multicastSupported, let a = device.address else { return false }
            switch (a, family) {
            case (.v4, .ipv4), (.v6, .ipv6): return seen.insert(device.name).inserted
            default: return false
            }
        }
    }

    /// The socket address of `host:port`; a link-local IPv6 host without `%interface` takes this
    /// set's interface.
    func address(_ host: String, port: Int) -> SocketAddress? {
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return nil }
        if case .v6(let v6) = address, v6.address.sin6_scope_id == 0, let interface, PTPKernelSocket.isLinkLocal(host) {
            var raw = v6.address
            raw.sin6_scope_id = interface.index
            return SocketAddress(raw, host: "")
        }
        return address
    }

    /// `host` as the core keys it: a link-local IPv6 address gets this set's `%interface`.
    func scoped(_ host: String) -> String {
        guard family == .ipv6, !host.contains("%"), let interface, PTPKernelSocket.isLinkLocal(host) else { return host }
        return host + "%" + interface.name
    }

    func closeAll() async {
        await event.close()
        await general.close()
        for g in groups { await g.close() }
    }
}

/// The event-loop side: the core, the timer and the sockets. Touched only on `loop`.
private final class Driver: @unchecked Sendable {
    var core: PTPMasterCore
    let loop: any EventLoop
    let events: AsyncStream<PTPMasterEvent>.Continuation
    let logger: Logger
    /// Send to the groups while there is no peer.
    let multicast: Bool
    private(set) var sets: [PTPFamily: PTPSocketSet] = [:]
    private var timer: Scheduled<Void>?
    private var timerAt: UInt64 = .max
    private var stopped = false
    /// Unicast hosts the master has no socket for (logged once each).
    private var unserved: Set<String> = []

    init(core: PTPMasterCore, loop: any EventLoop, multicast: Bool, events: AsyncStream<PTPMasterEvent>.Continuation, logger: Logger) {
        self.core = core
        self.loop = loop
        self.multicast = multicast
        self.events = events
        self.logger = logger
    }

    func start(_ sets: [PTPSocketSet]) {
        for set in sets { self.sets[set.family] = set }
        updateGroups()
        handle(core.start(now: PTPMaster.monotonicNow()))
    }

    /// Adds a family's sockets; false when stopped or the family is served already.
    func add(_ set: PTPSocketSet) -> Bool {
        guard !stopped, sets[set.family] == nil else { return false }
        sets[set.family] = set
        updateGroups()
        return true
    }

    private func updateGroups() {
        core.setMulticastGroups(multicast ? PTPFamily.allCases.filter { sets[$0] != nil }.map(\.multicast) : [])
    }

    /// Stops; the sockets to close.
    func stop() -> [PTPSocketSet] {
        stopped = true
        timer?.cancel()
        timer = nil
        events.finish()
        defer { sets = [:] }
        return Array(sets.values)
    }

    func addPeer(_ host: String) {
        guard !stopped else { return }
        let family = PTPFamily(host: host)
        guard let set = sets[family] else {
            logger.warning("PTP master: no \(family == .ipv4 ? "IPv4" : "IPv6") socket, \(host) is not sent to")
            return
        }
        handle(core.addPeer(set.scoped(host), now: PTPMaster.monotonicNow()))
    }

    func removePeer(_ host: String) {
        core.removePeer(sets[PTPFamily(host: host)]?.scoped(host) ?? host)
    }

    func received(_ bytes: [UInt8], from remote: SocketAddress, on socket: PTPSocket, at now: UInt64) {
        // On `loop`: every socket is adopted there.
        guard !stopped, let host = PTPKernelSocket.host(remote) else { return }
        handle(core.received(bytes, from: host, port: remote.port ?? 0, on: socket, at: now))
    }

    private func tick() {
        timerAt = .max
        guard !stopped else { return }
        handle(core.tick(now: PTPMaster.monotonicNow()))
    }

    private func handle(_ output: PTPMasterOutput) {
        for out in output.send {
            if let token = out.syncToken {
                // A Sync goes out with one sendto on the event socket, time-stamped just before
                // (as OwnTone's master does; a stamp after the call would include the receive
                // processing the kernel does inside it on a veth or loopback path, and NIO's write
                // path would add its own time), then its Follow_Up at once.
                guard let set = sets[out.destination.family], let address = self.address(out, set), stopped == false else { continue }
                let egress = PTPMaster.monotonicNow()
                if PTPKernelSocket.send(set.eventFD, out.bytes, to: address) {
                    send(core.syncSent(token, at: egress))
                }
            } else {
                send(out)
            }
        }
        for e in output.events {
            events.yield(e)
            switch e {
            case .followerSeen(let host, let port):
                logger.info("PTP follower \(host) (clock \(port.clock), port \(port.port)) sent a Delay_Req")
            case .announceIgnored(let host, let gm, let p1):
                logger.debug("PTP Announce from \(host) (grandmaster \(gm), priority1 \(p1)) ignored: this process stays master")
            case .granted(let host, let types, let duration):
                logger.info("PTP unicast transmission granted to \(host) for message types \(types) for \(duration) s")
            case .malformed(let host, let error):
                logger.debug("PTP datagram from \(host) ignored: \(error)")
            }
        }
        schedule(output.wakeAt)
    }

    private func schedule(_ at: UInt64) {
        guard !stopped, at != .max, at < timerAt else { return }
        timer?.cancel()
        timerAt = at
        timer = loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(at)) { [self] in tick() }
    }

    private func send(_ out: PTPOutgoing) {
        guard let set = sets[out.destination.family], let address = self.address(out, set) else { return }
        (out.socket == .event ? set.event : set.general).send(out.bytes, to: address)
    }

    private func address(_ out: PTPOutgoing, _ set: PTPSocketSet) -> SocketAddress? {
        switch out.destination {
        case .multicast: return try? SocketAddress(ipAddress: PTPDestination.multicastGroup, port: out.socket.port)
        case .multicastIPv6: return try? SocketAddress(ipAddress: PTPDestination.multicastGroupIPv6, port: out.socket.port)
        case .unicast(let host, let port):
            let address = set.address(host, port: port)
            if address == nil, unserved.insert(host).inserted {
                logger.warning("PTP master: \(host) is not an address it can send to")
            }
            return address
        }
    }
}

/// The master's sockets, created here (not by NIO) so that the kernel time-stamps what they
/// receive: a Delay_Req's receive time is the kernel's, not the moment the event loop got to it.
package enum PTPKernelSocket {
    static let SIOCGSTAMPNS: UInt = 0x8907

    /// A UDP socket bound to `host:port` with receive timestamps on. Throws the socket's
    /// `IOError` (`PTPPorts.bindError` makes the line a user reads of it).
    static func open(host: String, port: Int) throws -> CInt {
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw ATVError.invalidValue("\(host) is not an IP address")
        }
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        if family == AF_INET6 {
            var on: CInt = 1
            setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<CInt>.size))
        }
        let bound = address.withSockAddr { sockaddr, size in bind(fd, sockaddr, socklen_t(size)) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw IOError(errnoCode: code, reason: "bind")
        }
        // The first SIOCGSTAMPNS turns receive time-stamping on (it answers ENOENT: no packet yet).
        var ts = timespec()
        _ = withUnsafeMutablePointer(to: &ts) { ioctl(fd, SIOCGSTAMPNS, $0) }
        return fd
    }

    /// Hands the bound event (319) and general (320) sockets to `UDPEndpoint`s; every datagram goes
    /// to `received` with its kernel receive time. On failure both descriptors are closed (NIO owns
    /// a descriptor it was given, even when adopting it failed) and the error is `PTPPorts`' line.
    static func adopt(eventFD: CInt, generalFD: CInt, on loop: any EventLoop, bindAddress: String,
                      received: @escaping @Sendable ([UInt8], SocketAddress, PTPSocket, UInt64) -> Void)
        async throws -> (event: UDPEndpoint, general: UDPEndpoint) {
        let event: UDPEndpoint
        do {
            event = try await UDPEndpoint.adopt(descriptor: eventFD, on: loop) { bytes, remote, _ in
                received(bytes, remote, .event, receiveTime(eventFD))
            }
        } catch {
            close(generalFD)
            throw PTPPorts.bindError(host: bindAddress, port: 319, error)
        }
        do {
            let general = try await UDPEndpoint.adopt(descriptor: generalFD, on: loop) { bytes, remote, _ in
                received(bytes, remote, .general, receiveTime(generalFD))
            }
            return (event, general)
        } catch {
            await event.close()
            throw PTPPorts.bindError(host: bindAddress, port: 320, error)
        }
    }

    /// Joins the PTP primary multicast group (224.0.1.129) on the interface holding the IPv4
    /// address `interface` (a follower of a master that sends to the group). True on success.
    static func joinGroup(_ fd: CInt, interface: String) -> Bool {
        var request = ip_mreq()
        guard inet_pton(AF_INET, PTPDestination.multicastGroup, &request.imr_multiaddr) == 1,
              inet_pton(AF_INET, interface, &request.imr_interface) == 1 else { return false }
        return setsockopt(fd, CInt(IPPROTO_IP), IP_ADD_MEMBERSHIP, &request, socklen_t(MemoryLayout<ip_mreq>.size)) == 0
    }

    /// Joins the family's PTP primary group (224.0.1.129 / FF0E::181) on `interface`. True on success.
    static func joinGroup(_ fd: CInt, family: PTPFamily, interface: NIONetworkDevice) -> Bool {
        switch family {
        case .ipv4:
            guard let address = interface.address?.ipAddress else { return false }
            return joinGroup(fd, interface: address)
        case .ipv6:
            var request = ipv6_mreq()
            guard inet_pton(AF_INET6, PTPDestination.multicastGroupIPv6, &request.ipv6mr_multiaddr) == 1 else { return false }
            request.ipv6mr_interface = UInt32(interface.interfaceIndex)
            return setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_ADD_MEMBERSHIP, &request, socklen_t(MemoryLayout<ipv6_mreq>.size)) == 0
        }
    }

    /// IPv6 multicast leaves by the interface with this index.
    static func setMulticastInterfaceIPv6(_ fd: CInt, index: UInt32) {
        var i = CInt(bitPattern: index)
        setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_MULTICAST_IF, &i, socklen_t(MemoryLayout<CInt>.size))
    }

    /// fe80::/10.
    package static func isLinkLocal(_ host: String) -> Bool {
        var a = in6_addr()
        let plain = String(host.split(separator: "%").first ?? "")
        guard inet_pton(AF_INET6, plain, &a) == 1 else { return false }
        return withUnsafeBytes(of: &a) { $0[0] == 0xFE && $0[1] & 0xC0 == 0x80 }
    }

    /// A datagram source as the core keys hosts: the literal, with `%interface` when it is a
    /// link-local IPv6 address (a reply needs the interface).
    package static func host(_ remote: SocketAddress) -> String? {
        guard let ip = remote.ipAddress else { return nil }
        guard case .v6(let v6) = remote, v6.address.sin6_scope_id != 0, isLinkLocal(ip) else { return ip }
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(v6.address.sin6_scope_id, &name) != nil else { return ip + "%\(v6.address.sin6_scope_id)" }
        return ip + "%" + String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One datagram with sendto (non-blocking: a full socket buffer drops it, and the next Sync
    /// follows 125 ms later). True when the kernel took it.
    static func send(_ fd: CInt, _ bytes: [UInt8], to address: SocketAddress) -> Bool {
        guard fd >= 0 else { return false }
        let sent = bytes.withUnsafeBytes { buffer in
            address.withSockAddr { sockaddr, size in
                sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), sockaddr, socklen_t(size))
            }
        }
        return sent == bytes.count
    }

    /// The kernel's receive time (CLOCK_REALTIME) of the datagram just read from `fd`, on the
    /// monotonic clock (`SystemClocks`: not "now − the stamp's age" from two clock reads, which a
    /// preemption between them would move by the preemption, and a follower keeping the sample
    /// with the least delay would keep exactly that wrong one); the moment of the call when the
    /// kernel has none.
    static func receiveTime(_ fd: CInt) -> UInt64 {
        var stamp = timespec()
        guard withUnsafeMutablePointer(to: &stamp, { ioctl(fd, SIOCGSTAMPNS, $0) }) == 0 else { return PTPMaster.monotonicNow() }
        let kernel = SystemClocks.monotonic(atRealtime: Int64(stamp.tv_sec) * 1_000_000_000 + Int64(stamp.tv_nsec))
        let now = PTPMaster.monotonicNow()
        // A stamp from the future or older than a second is not this datagram's.
        guard kernel > 0, UInt64(kernel) <= now, now - UInt64(kernel) < 1_000_000_000 else { return now }
        return UInt64(kernel)
    }
}
