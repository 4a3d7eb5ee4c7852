// The NIO shell around `PTPMasterCore`: two sockets bound to UDP 319 (event) and 320 (general) on
// one address, both on one event loop, which also runs the core's timer. Sync egress times are
// software timestamps taken right before the Sync is written (docs/PTP-AND-BUFFERED-AUDIO.md §2.7:
// no sleep between Sync and Follow_Up). One master per process, shared by every session (`shared`).
import ATVCore
import Foundation
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
    /// The address both sockets are bound to.
    package let bindAddress: String
    /// Nanoseconds added to CLOCK_MONOTONIC to get the PTP timescale.
    package let timescaleOffset: Int64
    /// Followers seen, Announces ignored, grants, malformed datagrams.
    package let events: AsyncStream<PTPMasterEvent>

    private let driver: Driver

    /// CLOCK_MONOTONIC in nanoseconds: the master's time base (NTP-disciplined in rate, never
    /// stepped). NIO's `NIODeadline.now()` reads the same clock, so timers and stamps agree.
    package static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The PTP timescale now: CLOCK_MONOTONIC plus the offset fixed at start (TAI at that moment).
    package var networkTime: PTPTimestamp { PTPTimestamp(nanoseconds: UInt64(clamping: Int64(clamping: Self.monotonicNow()) &+ timescaleOffset)) }

    /// The PTP time that corresponds to a CLOCK_MONOTONIC reading.
    package func networkTime(atMonotonic ns: UInt64) -> PTPTimestamp {
        PTPTimestamp(nanoseconds: UInt64(clamping: Int64(clamping: ns) &+ timescaleOffset))
    }

    /// Starts a master bound to `bindAddress` (IPv4 or IPv6 literal; "0.0.0.0" for every
    /// interface). Fails with one line (`PTPPorts.bindError`) when 319/320 cannot be bound.
    /// Prefer `shared`: there is one master per process.
    package static func start(bindAddress: String, clockIdentity: PTPClockIdentity? = nil,
                             multicastWhenNoPeers: Bool = true,
                             logger: Logger = Logger(label: "atv.ptp")) async throws -> PTPMaster {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let identity = clockIdentity ?? Self.deriveClockIdentity(bindAddress: bindAddress)
        var config = PTPMasterConfig(clockIdentity: identity)
        config.timescaleOffset = Self.taiOffset()
        config.multicastWhenNoPeers = multicastWhenNoPeers
        let (events, sink) = AsyncStream.makeStream(of: PTPMasterEvent.self, bufferingPolicy: .bufferingNewest(256))
        let driver = Driver(core: PTPMasterCore(config: config), loop: loop, events: sink, logger: logger)
        let eventFD: CInt, generalFD: CInt
        do {
            eventFD = try PTPKernelSocket.open(host: bindAddress, port: 319)
        } catch {
            throw PTPPorts.bindError(host: bindAddress, port: 319, error)
        }
        do {
            generalFD = try PTPKernelSocket.open(host: bindAddress, port: 320)
        } catch {
            close(eventFD)
            throw PTPPorts.bindError(host: bindAddress, port: 320, error)
        }
        let (event, general) = try await PTPKernelSocket.adopt(eventFD: eventFD, generalFD: generalFD, on: loop,
                                                               bindAddress: bindAddress, received: driver.received)
        try await loop.submit { driver.start(event: event, general: general, eventFD: eventFD) }.get()
        return PTPMaster(identity: identity, bindAddress: bindAddress, offset: config.timescaleOffset, events: events, driver: driver)
    }

    private init(identity: PTPClockIdentity, bindAddress: String, offset: Int64, events: AsyncStream<PTPMasterEvent>, driver: Driver) {
        self.clockIdentity = identity
        self.bindAddress = bindAddress
        self.timescaleOffset = offset
        self.events = events
        self.driver = driver
    }

    /// Sends to `host` by unicast (a receiver of a session: SETPEERS) until `removePeer`; it gets
    /// an Announce at once. Peers are never dropped for being silent (nqptp never answers).
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

    /// Stops sending and closes both sockets.
    package func stop() async {
        try? await driver.loop.submit { self.driver.stop() }.get()
        await driver.endpoints.event?.close()
        await driver.endpoints.general?.close()
    }

    // MARK: - One per process

    /// The process's master, started on first use and bound to `bindAddress`; each call takes a
    /// reference, `release()` gives it back and the last release stops it. Asking for another
    /// address while it runs is an error (one master per process: the ports are the same).
    package static func shared(bindAddress: String = "0.0.0.0") async throws -> PTPMaster {
        try await registry.acquire(bindAddress: bindAddress)
    }

    /// Gives back a reference taken with `shared`.
    package func release() async {
        await Self.registry.release(self)
    }

    private static let registry = Registry()

    private actor Registry {
        var starting: (address: String, task: Task<PTPMaster, any Error>)?
        var count = 0

        func acquire(bindAddress: String) async throws -> PTPMaster {
            if let starting, starting.address != bindAddress {
                throw ATVError.invalidState("the PTP master of this process is bound to \(starting.address), not \(bindAddress): one master per process")
            }
            // A master on a loopback address serves only this host's unicast peers: no multicast
            // (the group would go out on `lo` for nobody; tests keep multicast in namespaces).
            let multicast = !(bindAddress.hasPrefix("127.") || bindAddress == "::1")
            let task = starting?.task ?? Task { try await PTPMaster.start(bindAddress: bindAddress, multicastWhenNoPeers: multicast) }
            starting = (bindAddress, task)
            count += 1
            do {
                return try await task.value
            } catch {
                count -= 1
                if count == 0 { starting = nil }
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

    /// An IPv4 or IPv6 literal (what `start`, `addPeer` take).
    package static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }

    // MARK: - Identity and timescale

    /// The clock identity (docs/PTP-AND-BUFFERED-AUDIO.md §2.6): the EUI-64 of the MAC of the
    /// interface that holds `bindAddress`; else (any address, loopback, no MAC) a random 48-bit
    /// value under the 0xFFFF prefix, as OwnTone's master does. Either way fixed for the master's
    /// life.
    package static func deriveClockIdentity(bindAddress: String) -> PTPClockIdentity {
        let devices = (try? System.enumerateDevices()) ?? []
        if let device = devices.first(where: { $0.address?.ipAddress == bindAddress }),
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
        var best: (spread: Int64, offset: Int64) = (.max, 0)
        for _ in 0..<5 {
            var a = timespec(), r = timespec(), b = timespec()
            clock_gettime(CLOCK_MONOTONIC, &a)
            clock_gettime(CLOCK_REALTIME, &r)
            clock_gettime(CLOCK_MONOTONIC, &b)
            let ns = { (t: timespec) in Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }
            let spread = ns(b) - ns(a)
            if spread < best.spread { best = (spread, ns(r) - (ns(a) + spread / 2)) }
        }
        return best.offset + 37 * 1_000_000_000
    }
}

/// The event-loop side: the core, the timer and the two sockets. Touched only on `loop`.
private final class Driver: @unchecked Sendable {
    var core: PTPMasterCore
    let loop: any EventLoop
    let events: AsyncStream<PTPMasterEvent>.Continuation
    let logger: Logger
    let endpoints = Endpoints()
    private var timer: Scheduled<Void>?
    private var timerAt: UInt64 = .max
    private var stopped = false

    /// The sockets, set once at start (read from any thread when stopping).
    final class Endpoints: @unchecked Sendable {
        private let lock = NIOLock()
        private var _event: UDPEndpoint?
        private var _general: UDPEndpoint?
        var event: UDPEndpoint? { lock.withLock { _event } }
        var general: UDPEndpoint? { lock.withLock { _general } }
        func set(_ e: UDPEndpoint, _ g: UDPEndpoint) { lock.withLock { _event = e; _general = g } }
    }

    init(core: PTPMasterCore, loop: any EventLoop, events: AsyncStream<PTPMasterEvent>.Continuation, logger: Logger) {
        self.core = core
        self.loop = loop
        self.events = events
        self.logger = logger
    }

    /// The event socket's descriptor (owned by its endpoint): Syncs are written on it directly.
    private var eventFD: CInt = -1

    func start(event: UDPEndpoint, general: UDPEndpoint, eventFD: CInt) {
        endpoints.set(event, general)
        self.eventFD = eventFD
        handle(core.start(now: PTPMaster.monotonicNow()))
    }

    func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
        events.finish()
    }

    func addPeer(_ host: String) {
        guard !stopped else { return }
        handle(core.addPeer(host, now: PTPMaster.monotonicNow()))
    }

    func removePeer(_ host: String) { core.removePeer(host) }

    func received(_ bytes: [UInt8], from remote: SocketAddress, on socket: PTPSocket, at now: UInt64) {
        guard !stopped, let host = remote.ipAddress else { return }
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
                guard let address = Self.address(out), stopped == false else { continue }
                let egress = PTPMaster.monotonicNow()
                if PTPKernelSocket.send(eventFD, out.bytes, to: address) {
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
        guard let endpoint = out.socket == .event ? endpoints.event : endpoints.general,
              let address = Self.address(out) else { return }
        endpoint.send(out.bytes, to: address)
    }

    private static func address(_ out: PTPOutgoing) -> SocketAddress? {
        switch out.destination {
        case .multicast: try? SocketAddress(ipAddress: PTPDestination.multicastGroup, port: out.socket.port)
        case .unicast(let host, let port): try? SocketAddress(ipAddress: host, port: port)
        }
    }
}

/// The master's sockets, created here (not by NIO) so that the kernel time-stamps what they
/// receive: a Delay_Req's receive time is the kernel's, not the moment the event loop got to it.
enum PTPKernelSocket {
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
    /// monotonic clock; the moment of the call when the kernel has none.
    static func receiveTime(_ fd: CInt) -> UInt64 {
        var stamp = timespec(), realtime = timespec()
        let now = PTPMaster.monotonicNow()
        guard withUnsafeMutablePointer(to: &stamp, { ioctl(fd, SIOCGSTAMPNS, $0) }) == 0 else { return now }
        clock_gettime(CLOCK_REALTIME, &realtime)
        let ns = { (t: timespec) in Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }
        let age = ns(realtime) - ns(stamp)
        // A stamp from the future or older than a second is not this datagram's.
        guard age >= 0, age < 1_000_000_000, UInt64(age) < now else { return now }
        return now - UInt64(age)
    }
}
