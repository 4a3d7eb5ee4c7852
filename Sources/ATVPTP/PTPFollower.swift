// The NIO shell around `PTPFollowerCore`: UDP 319 and 320 on one address, through the same
// kernel-time-stamped sockets as the master (`PTPKernelSocket`, run by ATVCore's `UDPEndpoint`),
// so a Sync's receive time is the kernel's. What the virtual receivers follow a sender's clock
// with (docs/PTP-AND-BUFFERED-AUDIO.md §5.1). One per network namespace and address: the ports
// are the same as the master's.
import ATVCore
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A running PTP follower.
package final class PTPFollower: Sendable {
    package let bindAddress: String
    package let clockIdentity: PTPClockIdentity
    private let driver: FollowerDriver

    /// Starts a follower on `bindAddress` (an IPv4 or IPv6 literal), following `master` (nil:
    /// nothing until `follow`). `multicastInterface`: also join the PTP group 224.0.1.129 on the
    /// interface holding that IPv4 address (a master such as ptp4l that sends to the group; bind
    /// "0.0.0.0" then). Fails with one line (`PTPPorts.bindError`) when 319/320 cannot be bound.
    package static func start(bindAddress: String, master: String? = nil, delayRequests: Bool = false,
                              multicastInterface: String? = nil,
                              logger: Logger = Logger(label: "atv.ptp.follower")) async throws -> PTPFollower {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let identity = PTPMaster.deriveClockIdentity(bindAddress: bindAddress)
        var config = PTPFollowerConfig(clockIdentity: identity)
        config.delayRequests = delayRequests
        let driver = FollowerDriver(core: PTPFollowerCore(config: config, master: master), loop: loop, logger: logger)
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
        if let multicastInterface {
            guard PTPKernelSocket.joinGroup(eventFD, interface: multicastInterface),
                  PTPKernelSocket.joinGroup(generalFD, interface: multicastInterface) else {
                close(eventFD)
                close(generalFD)
                throw ATVError.invalidValue("cannot join the PTP multicast group on \(multicastInterface)")
            }
        }
        let (event, general) = try await PTPKernelSocket.adopt(eventFD: eventFD, generalFD: generalFD, on: loop,
                                                               bindAddress: bindAddress, received: driver.received)
        driver.set(event: event, general: general, eventFD: eventFD)
        return PTPFollower(bindAddress: bindAddress, identity: identity, driver: driver)
    }

    private init(bindAddress: String, identity: PTPClockIdentity, driver: FollowerDriver) {
        self.bindAddress = bindAddress
        self.clockIdentity = identity
        self.driver = driver
    }

    /// Follows `host` from now on (nil: none); a new address must announce itself first.
    package func follow(_ host: String?) {
        driver.loop.execute { self.driver.follow(host) }
    }

    /// The follower's view now (readable from any thread; updated with every datagram).
    package var status: PTPFollowerStatus { driver.status }

    /// The master's time at a local monotonic instant (`PTPMaster.monotonicNow()`), once locked.
    package func masterTime(atLocal local: UInt64) -> Int64? {
        driver.status.offset.map { Int64(clamping: local) &+ $0 }
    }

    /// Events (grandmaster announced, locked, ignored datagrams).
    package var events: AsyncStream<PTPFollowerEvent> { driver.events }

    package func stop() async {
        try? await driver.loop.submit { self.driver.stop() }.get()
        await driver.endpoints.event?.close()
        await driver.endpoints.general?.close()
    }
}

/// The event-loop side: the core and the two sockets. The core is touched only on `loop`.
private final class FollowerDriver: @unchecked Sendable {
    var core: PTPFollowerCore
    let loop: any EventLoop
    let logger: Logger
    let events: AsyncStream<PTPFollowerEvent>
    private let sink: AsyncStream<PTPFollowerEvent>.Continuation
    private let lock = NIOLock()
    private var _status: PTPFollowerStatus
    private var _endpoints: (event: UDPEndpoint?, general: UDPEndpoint?) = (nil, nil)
    private var eventFD: CInt = -1
    private var stopped = false

    var status: PTPFollowerStatus { lock.withLock { _status } }
    var endpoints: (event: UDPEndpoint?, general: UDPEndpoint?) { lock.withLock { _endpoints } }

    init(core: PTPFollowerCore, loop: any EventLoop, logger: Logger) {
        self.core = core
        self.loop = loop
        self.logger = logger
        self._status = core.status
        (events, sink) = AsyncStream.makeStream(of: PTPFollowerEvent.self, bufferingPolicy: .bufferingNewest(256))
    }

    func set(event: UDPEndpoint, general: UDPEndpoint, eventFD: CInt) {
        lock.withLock {
            _endpoints = (event, general)
            self.eventFD = eventFD
        }
    }

    func follow(_ host: String?) {
        core.follow(host)
        publish()
    }

    func stop() {
        stopped = true
        sink.finish()
    }

    func received(_ bytes: [UInt8], from remote: SocketAddress, on socket: PTPSocket, at now: UInt64) {
        guard !stopped, let host = remote.ipAddress else { return }
        let (events, request) = core.received(bytes, from: host, port: remote.port ?? 0, on: socket, at: now)
        for e in events {
            switch e {
            case .grandmaster(let id, let host): logger.info("PTP follower: \(host) announces grandmaster \(id)")
            case .locked(let offset): logger.info("PTP follower: locked, offset \(offset) ns")
            case .ignoredBeforeAnnounce(let type): logger.debug("PTP follower: \(type) before any Announce ignored")
            case .ignoredSource(let host, let port): logger.trace("PTP follower: datagram from \(host):\(port) ignored")
            case .malformed(let host, let error): logger.debug("PTP follower: datagram from \(host) ignored: \(error)")
            }
            sink.yield(e)
        }
        if let request, let address = try? SocketAddress(ipAddress: request.host, port: 319) {
            let fd = lock.withLock { eventFD }
            let egress = PTPMaster.monotonicNow()
            if PTPKernelSocket.send(fd, request.bytes, to: address) {
                core.delayRequestSent(request.sequenceId, at: egress)
            }
        }
        publish()
    }

    private func publish() {
        let s = core.status
        lock.withLock { _status = s }
    }
}
