import ATVAirPlayCore
import ATVAudio
import ATVAuth
import ATVCore
import ATVHTTP
import Logging
import NIOCore
import Synchronization

/// AirPlay 1 (RAOP): the pure `RAOPSessionStateMachine` driven by `RAOPRTSPDriver` over an
/// `RTSPConnection` (GET /info → ANNOUNCE → SETUP → volume → RECORD, FLUSH, SET_PARAMETER,
/// `/feedback`, TEARDOWN). Audio goes in the clear.
final class RAOPRouteSession: AudioRouteSession {
    let connection: RTSPConnection
    let ssrc: UInt32
    private let host: String
    private let port: Int
    private let wakeup: RAOPWakeup
    private let logger: Logger
    private let requestTimeout: Duration
    let defaultSendAhead: Duration
    /// Setup must finish by this time (counted from before the connection was opened).
    private let setupDeadline: ContinuousClock.Instant
    private let state = Mutex<(driver: RAOPRTSPDriver?, pump: Task<Void, Never>?)>((nil, nil))

    private init(connection: RTSPConnection, host: String, port: Int, options: RAOPOptions, setupDeadline: ContinuousClock.Instant,
                 wakeup: RAOPWakeup, logger: Logger) {
        self.connection = connection
        self.host = host
        self.port = port
        self.wakeup = wakeup
        self.logger = logger
        requestTimeout = options.requestTimeout
        defaultSendAhead = RAOPBurstRule.defaultSendAhead(options.receiverTraits)
        self.setupDeadline = setupDeadline
        ssrc = UInt32.random(in: 1...UInt32.max)
    }

    static func open(host: String, port: Int, options: RAOPOptions, wakeup: RAOPWakeup,
                     logger: Logger) async throws -> RAOPRouteSession {
        let t0 = ContinuousClock.now
        let connection = try await RTSPConnection.connect(host: host, port: port, timeout: options.connectTimeout)
        return RAOPRouteSession(connection: connection, host: host, port: port, options: options,
                                setupDeadline: t0 + options.requestTimeout * 6 + options.connectTimeout,
                                wakeup: wakeup, logger: logger)
    }

    var localIP: String { connection.localIP }
    var remoteIP: String { connection.remoteIP }
    func makeAudioCipher() throws -> AirPlay2AudioCipher? { nil }
    var audioRoute: AirPlayAudioRouteChoice { AirPlayAudioRouteChoice(route: .airPlay1, reason: "AirPlay 1 receiver") }
    var ptpTimeline: PTPTimeline? { nil }
    var takesVolumeDuringSetup: Bool { true }
    var sessionFailureExplainsErrors: Bool { false }
    private var driver: RAOPRTSPDriver? { state.withLock { $0.driver } }

    func setUp(controlPort: Int, timingPort: Int, next: RTPPosition, options: RAOPOptions) async throws -> RAOPServerPorts {
        let configuration = RAOPSessionConfiguration(
            localIP: connection.localIP, remoteIP: connection.remoteIP, sessionID: ssrc,
            dacpID: String(UInt64.random(in: 1...UInt64.max), radix: 16, uppercase: true),
            activeRemote: UInt32.random(in: 1...UInt32.max), format: RAOPAudioFormat(codec: options.codec),
            username: options.username, password: options.password,
            controlPort: controlPort, timingPort: timingPort,
            initialVolumeDB: options.volume.map { RAOPVolume.dB(fromPercent: $0) },
            initialSequence: next.sequence, initialRTPTime: next.rtpTime, requestInfo: options.requestInfo)
        let driver = RAOPRTSPDriver(configuration: configuration, connection: connection,
                                    requestTimeout: options.requestTimeout, logger: logger, onChange: wakeup.signal)
        state.withLock { $0 = (driver, Task { await driver.pump() }) }

        // Setup: GET /info → ANNOUNCE → SETUP → volume → RECORD.
        await driver.start()
        let clock = ContinuousClock()
        while true {
            let generation = wakeup.generation
            if let failure = await driver.failure { throw failure }
            if await driver.streaming { break }
            try Task.checkCancellation()
            if clock.now > setupDeadline {
                throw ATVError.timeout("the receiver at \(host):\(port) did not finish RTSP setup")
            }
            await wakeup.wait(since: generation, until: setupDeadline)
        }
        guard let ports = await driver.serverPorts else {
            throw ATVError.protocolError("cannot address the receiver's UDP ports")
        }
        return ports
    }

    func begin(volume: Double?, metadata: MediaMetadata?, next: RTPPosition) async throws {
        if let metadata { await sendMetadata(metadata, start: next.rtpTime, next: next) }
    }

    func keepAlive(interval: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            await driver?.run { $0.feedback() }
        }
    }

    func failure() async -> ATVError? { await driver?.failure }

    func check(now: ContinuousClock.Instant, volume: Double?) throws -> ContinuousClock.Instant? { nil }
    func audioStarted(now: ContinuousClock.Instant) {}
    func noteContact() {}

    func flush(next: RTPPosition) async {
        await driver?.run { $0.flush(sequence: next.sequence, rtpTime: next.rtpTime) }
    }

    func setVolume(dB: Double) async {
        await driver?.run { $0.setVolume(dB: dB) }
    }

    func sendMetadata(_ metadata: MediaMetadata, start: UInt32?, next: RTPPosition) async {
        guard let driver else { return }
        let info = RAOPTrackInfo(metadata)
        let (sequence, rtpTime) = (next.sequence, next.rtpTime)
        if info.title != nil || info.artist != nil || info.album != nil {
            await driver.run { $0.setMetadata(info, sequence: sequence, rtpTime: rtpTime) }
        }
        if let artwork = metadata.artwork, !artwork.isEmpty {
            let type = artwork.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "image/png" : "image/jpeg"
            await driver.run { $0.setArtwork(artwork, contentType: type, sequence: sequence, rtpTime: rtpTime) }
        }
        if let start, let duration = metadata.duration, duration > 0 {
            let end = start &+ UInt32(truncatingIfNeeded: Int64(duration * 44_100))
            await driver.run { $0.setProgress(RAOPProgress(start: start, current: start, end: end)) }
        }
    }

    func teardown(failed: Bool) async -> ATVError? {
        guard let driver else {
            await close()
            return nil
        }
        await driver.teardown()
        let clock = ContinuousClock()
        let teardownStart = clock.now
        // After a failure the receiver is likely gone: wait for the TEARDOWN answer only briefly.
        let driverFailure = await driver.failure
        let hadFailure = failed || driverFailure != nil
        let teardownWait = hadFailure ? min(requestTimeout, .seconds(1)) : requestTimeout + .milliseconds(500)
        while true {
            let generation = wakeup.generation
            guard !(await driver.closed), await driver.connectionOpen, clock.now - teardownStart < teardownWait else { break }
            await wakeup.wait(since: generation, until: teardownStart + teardownWait)
        }
        await close()
        return await driver.failure
    }

    func close() async {
        await connection.close()
        await state.withLock { $0.pump }?.value
    }

    var warnings: [String] {
        get async { await driver?.warnings ?? [] }
    }
}
