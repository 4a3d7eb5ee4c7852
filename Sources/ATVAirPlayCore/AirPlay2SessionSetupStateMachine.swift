// The session SETUP of an AirPlay 2 connection and its event channel, without I/O: what
// `AirPlay2Connection.setupSession` (AirPlay video, the MRP tunnel) drives. Inputs: the SETUP's
// answer or failure, the event channel's outcome; outputs: send, TEARDOWN owed, open the event
// channel (now or after a pause), done with the reply, failed.
// The audio session runs the same steps inside its own plan (ATVRAOP's
// `AirPlay2AudioSessionStateMachine`); both open the event channel under `AirPlay2EventChannelAttempts`.
import ATVCore
import ATVHTTP

/// Connecting to the event port: refused connections are retried `attempts` times, 1 s apart
/// (a receiver may open the port just after answering SETUP); any other failure, or the last
/// refusal, ends it.
package struct AirPlay2EventChannelAttempts: Sendable, Equatable {
    package enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case fail(ATVError)
    }

    package let attempts: Int
    package let host: String
    package let port: Int
    private(set) package var failed = 0

    package init(attempts: Int, host: String, port: Int) {
        self.attempts = max(1, attempts)
        self.host = host
        self.port = port
    }

    package mutating func connectFailed(_ error: ATVError) -> Decision {
        failed += 1
        guard case .connectionFailed = error, failed < attempts else {
            return .fail(.connectionFailed("cannot open the AirPlay 2 event channel to \(host):\(port) (\(error.description))"))
        }
        return .retry(after: .seconds(1))
    }
}

/// What the driver of `AirPlay2SessionSetupStateMachine` must do.
package enum AirPlay2SessionSetupAction: Sendable, Equatable {
    /// Send this request on the session URI; answer with `response(_:)` or `requestFailed(_:)`.
    case send(method: String, headers: RTSPHeaders, body: [UInt8])
    /// The SETUP succeeded: TEARDOWN is owed from now on.
    case sessionEstablished
    /// Connect to the event port (after waiting `after`); answer with `eventChannelOpened()` or
    /// `eventChannelFailed(_:)`.
    case openEventChannel(port: Int, after: Duration?)
    case debug(String)
    case done(AirPlay2SessionReply)
    case failed(ATVError)
}

/// Session SETUP → event channel (pure).
package struct AirPlay2SessionSetupStateMachine: Sendable {
    package enum State: Sendable, Equatable { case idle, setup, eventChannel, done, failed }

    let body: PlistValue
    let eventHost: String
    let eventConnectAttempts: Int
    private(set) package var state: State = .idle
    private var reply: AirPlay2SessionReply?
    private var attempts: AirPlay2EventChannelAttempts?

    /// `eventHost`: the receiver's address as the control connection sees it.
    package init(timing: AirPlay2Timing, sessionUUID: String, identity: AirPlay2SenderIdentity, remoteControlOnly: Bool,
                 eventHost: String, eventConnectAttempts: Int) {
        body = AirPlay2SessionSetup.body(timing: timing, sessionUUID: sessionUUID, identity: identity,
                                         remoteControlOnly: remoteControlOnly)
        self.eventHost = eventHost
        self.eventConnectAttempts = eventConnectAttempts
    }

    package mutating func start() -> [AirPlay2SessionSetupAction] {
        guard state == .idle else { return [] }
        state = .setup
        var h = RTSPHeaders()
        h.set("Content-Type", "application/x-apple-binary-plist")
        return [.send(method: "SETUP", headers: h, body: BinaryPlist.encode(body))]
    }

    package mutating func response(_ r: RTSPResponse) -> [AirPlay2SessionSetupAction] {
        guard state == .setup else { return [] }
        do throws(ATVError) {
            try AirPlay2Connection.check(r, "session SETUP")
        } catch {
            return fail(error)
        }
        do throws(ATVError) {
            let reply = try AirPlay2SessionReply(parsing: r.body)
            self.reply = reply
            state = .eventChannel
            attempts = AirPlay2EventChannelAttempts(attempts: eventConnectAttempts, host: eventHost, port: reply.eventPort)
            return [.sessionEstablished, .debug("AirPlay 2: session SETUP → eventPort \(reply.eventPort)"),
                    .openEventChannel(port: reply.eventPort, after: nil)]
        } catch {
            return [.sessionEstablished] + fail(error)
        }
    }

    package mutating func requestFailed(_ error: ATVError) -> [AirPlay2SessionSetupAction] {
        guard state == .setup else { return [] }
        return fail(error)
    }

    package mutating func eventChannelOpened() -> [AirPlay2SessionSetupAction] {
        guard state == .eventChannel, let reply else { return [] }
        state = .done
        return [.done(reply)]
    }

    package mutating func eventChannelFailed(_ error: ATVError) -> [AirPlay2SessionSetupAction] {
        guard state == .eventChannel, var a = attempts else { return [] }
        let decision = a.connectFailed(error)
        attempts = a
        switch decision {
        case .retry(let pause): return [.openEventChannel(port: a.port, after: pause)]
        case .fail(let e): return fail(e)
        }
    }

    private mutating func fail(_ error: ATVError) -> [AirPlay2SessionSetupAction] {
        state = .failed
        return [.failed(error)]
    }
}
