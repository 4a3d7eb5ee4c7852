import ATVTestSupport
import Crypto
import Testing
@testable import ATVAirPlayCore
import ATVAuth
import ATVCore
@testable import ATVHTTP

/// `AirPlay2ConnectStateMachine` without any socket: the exact requests of each path, and the
/// error of every failure point (the texts `AirPlay2Connection.connect` has always thrown).
@Suite struct AirPlay2ConnectStateMachineTests {
    static let host = "127.0.0.1"
    static let port = 7000
    static let accessory = HAPIdentity.pyatvFakeDevice
    static let srpSecret = [UInt8](repeating: 7, count: 32)
    static let infoPlist: PlistValue = .dict(["model": .string("AudioAccessory5,1"), "features": .int(0x1C340405D4A00)])

    typealias Answer = Result<RTSPResponse, ATVError>

    /// What a run produced: every request in order, every action, and how it ended.
    struct Run {
        var requests: [AirPlay2ConnectRequest] = []
        var actions: [AirPlay2ConnectAction] = []
        var result: AirPlay2ConnectResult? {
            for case .done(let r) in actions { return r }
            return nil
        }
        var failure: ATVError? {
            for case .failed(let e) in actions { return e }
            return nil
        }
        var keys: [ChannelKeys] { actions.compactMap { if case .enableEncryption(let k) = $0 { k } else { nil } } }
        var paths: [String] { requests.map { "\($0.method) \($0.uri)" } }
        var debugLines: [String] { actions.compactMap { if case .debug(let s) = $0 { s } else { nil } } }
    }

    static func options(credentials: HAPCredentials? = nil, requestInfo: Bool = true,
                        clientName: String? = "swift-atv") -> AirPlay2ConnectionOptions {
        AirPlay2ConnectionOptions(credentials: credentials, clientName: clientName, requestInfo: requestInfo)
    }

    static func machine(_ options: AirPlay2ConnectionOptions,
                        verify: HAPPairVerifyClient? = nil) -> AirPlay2ConnectStateMachine {
        AirPlay2ConnectStateMachine(host: host, port: port, options: options, pairVerify: verify,
                                    pairSetup: .transient(pin: options.transientPIN, srpSecret: srpSecret))
    }

    /// Drives `machine` to its end: the TCP outcome, then each request answered by `answer`.
    static func drive(_ machine: inout AirPlay2ConnectStateMachine, connect: ATVError? = nil,
                      answer: (AirPlay2ConnectRequest) -> Answer) -> Run {
        var run = Run()
        var queue = machine.start()
        var steps = 0
        while !queue.isEmpty, steps < 50 {
            steps += 1
            let action = queue.removeFirst()
            run.actions.append(action)
            switch action {
            case .connect:
                queue += connect.map { machine.connectFailed($0) } ?? machine.connected()
            case .send(let request):
                run.requests.append(request)
                switch answer(request) {
                case .success(let r): queue += machine.response(r)
                case .failure(let e): queue += machine.requestFailed(e)
                }
            case .enableEncryption:
                queue += machine.encryptionEnabled()
            case .debug, .done, .failed:
                break
            }
        }
        return run
    }

    /// A receiver of our own accessory code: /info, /pair-pin-start, transient pair-setup, pair-verify.
    final class Receiver {
        var setup: HAPPairSetupServer
        var verify: HAPPairVerifyServer
        var events: [HAPAccessoryReply.Event] = []
        /// Replaces the answer to a path (status, body) after the real one was computed.
        var override: [String: Answer] = [:]
        /// Changes a pairing reply's bytes before they go out.
        var tamper: ((String, inout [UInt8]) -> Void)?

        init(transientPIN: String = "3939", controllers: [HAPPairedController] = []) {
            setup = HAPPairSetupServer(identity: AirPlay2ConnectStateMachineTests.accessory, pin: "1111",
                                       transientPIN: transientPIN, srpSalt: [UInt8](repeating: 3, count: 16),
                                       srpSecret: [UInt8](repeating: 5, count: 32))
            verify = HAPPairVerifyServer(identity: AirPlay2ConnectStateMachineTests.accessory, controllers: controllers,
                                         ephemeral: try! .init(rawRepresentation: [UInt8](repeating: 9, count: 32)))
        }

        func answer(_ request: AirPlay2ConnectRequest) -> Answer {
            if let o = override[request.uri] { return o }
            var reply: HAPAccessoryReply
            switch request.uri {
            case "/info": return .success(RTSPResponse(body: BinaryPlist.encode(AirPlay2ConnectStateMachineTests.infoPlist)))
            case "/pair-pin-start": return .success(RTSPResponse(version: "HTTP/1.1"))
            case "/pair-setup": reply = setup.handle(request.body)
            case "/pair-verify": reply = verify.handle(request.body)
            default: return .success(RTSPResponse(status: 404))
            }
            if let e = reply.event { events.append(e) }
            tamper?(request.uri, &reply.message)
            return .success(RTSPResponse(version: "HTTP/1.1", body: reply.message))
        }
    }

    /// Stored credentials our accessory knows (PIN pair-setup with it, in memory).
    static func pairedCredentials() throws -> (HAPCredentials, HAPPairedController) {
        var client = HAPPairSetupClient(pin: "1111")
        var server = HAPPairSetupServer(identity: accessory, pin: "1111")
        var message = try client.start()
        while true {
            let reply = server.handle(message)
            switch try client.handle(reply.message) {
            case .send(let next): message = next
            case .paired(let credentials):
                guard case .paired(let controller)? = reply.event else { throw ATVError.protocolError("no controller") }
                return (credentials, controller)
            case .transient: throw ATVError.protocolError("transient")
            }
        }
    }

    static func pairingHeaders(hkp: Int, clientName: String? = "swift-atv") -> RTSPHeaders {
        var h = RTSPHeaders()
        h.add("Content-Type", "application/octet-stream")
        h.add("Connection", "keep-alive")
        h.add("X-Apple-HKP", String(hkp))
        if let clientName { h.add("X-Apple-Client-Name", clientName) }
        return h
    }

    // MARK: The request sequences

    @Test func infoThenTransientPairing() throws {
        var m = Self.machine(Self.options())
        let receiver = Receiver()
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["GET /info", "POST /pair-pin-start", "POST /pair-setup", "POST /pair-setup"])
        #expect(run.failure == nil)
        #expect(m.state == .done)
        // The bytes each request is made of (the connection then adds CSeq, User-Agent, DACP-ID,
        // Active-Remote, Client-Instance).
        #expect(run.requests[0] == AirPlay2ConnectRequest(method: "GET", uri: "/info"))
        #expect(String(decoding: RTSPRequest(method: run.requests[1].method, uri: run.requests[1].uri, version: run.requests[1].version,
                                             headers: run.requests[1].headers, body: run.requests[1].body).serialized, as: UTF8.self)
                == "POST /pair-pin-start HTTP/1.1\r\nContent-Type: application/octet-stream\r\nConnection: keep-alive\r\n"
                + "X-Apple-HKP: 4\r\nX-Apple-Client-Name: swift-atv\r\n\r\n")
        #expect(run.requests[2] == AirPlay2ConnectRequest(method: "POST", uri: "/pair-setup", version: "HTTP/1.1",
                                                          headers: Self.pairingHeaders(hkp: 4), body: hex("000100 060101 130110")))
        // M3: state 3, the SRP public key A (384 bytes, fragmented) and the proof M1 (64 bytes).
        let m3 = try TLV8.decode(run.requests[3].body)
        #expect(m3[.state] == [3] && m3[.publicKey]?.count == 384 && m3[.proof]?.count == 64)
        #expect(run.requests[3].headers == Self.pairingHeaders(hkp: 4))
        // The keys are those of the receiver's session key: both ends derive the same Control keys.
        guard case .transient(let k)? = receiver.events.last else { Issue.record("\(receiver.events)"); return }
        #expect(run.keys == [HAPChannel.airPlayControl.keys(sharedSecret: k)])
        #expect(run.result == AirPlay2ConnectResult(info: Self.infoPlist, pairing: .transient, sharedSecret: k))
        #expect(run.debugLines == ["AirPlay 2: GET /info → 200", "AirPlay 2: /pair-pin-start → 200",
                                   "AirPlay 2: transient pairing done, control channel encrypted"])
        // Encryption is switched on before the connection is handed out.
        let order = run.actions.map { if case .enableEncryption = $0 { "encrypt" } else if case .done = $0 { "done" } else { "" } }
            .filter { !$0.isEmpty }
        #expect(order == ["encrypt", "done"])
    }

    @Test func sameInputsSameBytes() {
        var a = Self.machine(Self.options()), b = Self.machine(Self.options())
        let ra = Self.drive(&a) { Receiver().answer($0) }
        let rb = Self.drive(&b) { Receiver().answer($0) }
        #expect(ra.requests.count == 4 && ra.requests == rb.requests)
    }

    @Test func storedCredentialsVerifyWithoutInfo() throws {
        let (credentials, controller) = try Self.pairedCredentials()
        let ephemeral = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 4, count: 32))
        var m = Self.machine(Self.options(credentials: credentials, requestInfo: false, clientName: nil),
                             verify: HAPPairVerifyClient(credentials: credentials, ephemeral: ephemeral))
        let receiver = Receiver(controllers: [controller])
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["POST /pair-verify", "POST /pair-verify"])
        #expect(run.requests[0] == AirPlay2ConnectRequest(
            method: "POST", uri: "/pair-verify", version: "HTTP/1.1", headers: Self.pairingHeaders(hkp: 3, clientName: nil),
            body: hex("060101 0320") + Array(ephemeral.publicKey.rawRepresentation)))
        let m3 = try TLV8.decode(run.requests[1].body)
        #expect(m3[.state] == [3] && m3[.encryptedData] != nil)
        guard case .verified(let who, let secret)? = receiver.events.last else { Issue.record("\(receiver.events)"); return }
        #expect(who == controller)
        #expect(run.keys == [HAPChannel.airPlayControl.keys(sharedSecret: secret)])
        #expect(run.result == AirPlay2ConnectResult(info: nil, pairing: .verified, sharedSecret: secret))
    }

    @Test func infoThenStoredCredentials() throws {
        let (credentials, controller) = try Self.pairedCredentials()
        var m = Self.machine(Self.options(credentials: credentials))
        let receiver = Receiver(controllers: [controller])
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["GET /info", "POST /pair-verify", "POST /pair-verify"])
        #expect(run.requests[1].headers == Self.pairingHeaders(hkp: 3))
        #expect(run.result?.pairing == .verified && run.result?.info == Self.infoPlist)
    }

    // MARK: /info answers that do not end the connection

    @Test(arguments: [
        RTSPResponse(status: 404),
        RTSPResponse(status: 500),
        RTSPResponse(body: Array("not a plist".utf8)),
        RTSPResponse(),
    ]) func infoWithoutAPlistStillPairs(answer: RTSPResponse) {
        var m = Self.machine(Self.options())
        let receiver = Receiver()
        receiver.override["/info"] = .success(answer)
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths.first == "GET /info" && run.paths.count == 4)
        #expect(run.result?.pairing == .transient)
        #expect(run.result != nil && run.result?.info == nil)
        #expect(run.debugLines.first == "AirPlay 2: GET /info → \(answer.status)")
    }

    // MARK: Failure points: the errors `connect` throws

    @Test func refusedConnectionIsReportedAsItCame() {
        var m = Self.machine(Self.options())
        let refused = ATVError.connectionFailed("cannot connect to 127.0.0.1:7000: connection refused")
        let run = Self.drive(&m, connect: refused) { _ in Issue.record("no request expected"); return .failure(refused) }
        #expect(run.requests.isEmpty)
        #expect(run.actions == [.connect, .failed(refused)])
        #expect(m.state == .failed)
    }

    @Test func infoRefusedWith403() {
        var m = Self.machine(Self.options())
        let run = Self.drive(&m) { _ in .success(RTSPResponse(status: 403)) }
        #expect(run.paths == ["GET /info"])
        #expect(run.failure == .authenticationFailed(
            "127.0.0.1:7000 refused GET /info with 403 (it only talks to Apple AirPlay senders; User-Agent was \"AirPlay/550.10\")"))
    }

    @Test func timeoutAtEachStepEndsTheConnection() throws {
        let timeout = ATVError.timeout("the receiver at 127.0.0.1:7000 did not answer X within 6 s")
        // GET /info.
        var m = Self.machine(Self.options())
        var run = Self.drive(&m) { _ in .failure(timeout) }
        #expect(run.paths == ["GET /info"] && run.failure == timeout)
        // The first and the second /pair-setup.
        for n in 1...2 {
            var m = Self.machine(Self.options())
            let receiver = Receiver()
            var setups = 0
            run = Self.drive(&m) { request in
                if request.uri == "/pair-setup" {
                    setups += 1
                    if setups == n { return .failure(timeout) }
                }
                return receiver.answer(request)
            }
            #expect(run.paths.filter { $0 == "POST /pair-setup" }.count == n)
            #expect(run.failure == timeout && run.keys.isEmpty)
        }
        // Each /pair-verify.
        let (credentials, controller) = try Self.pairedCredentials()
        for n in 1...2 {
            var m = Self.machine(Self.options(credentials: credentials, requestInfo: false))
            let receiver = Receiver(controllers: [controller])
            var verifies = 0
            run = Self.drive(&m) { request in
                verifies += 1
                return verifies == n ? .failure(timeout) : receiver.answer(request)
            }
            #expect(run.requests.count == n && run.failure == timeout && run.keys.isEmpty)
        }
    }

    /// `/pair-pin-start` is optional: not known, an error status or no answer go on to pair-setup;
    /// only a refusal ends the connection.
    @Test func pinStartFailuresThatAreIgnored() {
        let answers: [Answer] = [
            .success(RTSPResponse(version: "HTTP/1.1", status: 404)),
            .success(RTSPResponse(version: "HTTP/1.1", status: 500)),
            .failure(.timeout("the receiver at 127.0.0.1:7000 did not answer POST /pair-pin-start within 6 s")),
        ]
        for answer in answers {
            var m = Self.machine(Self.options())
            let receiver = Receiver()
            receiver.override["/pair-pin-start"] = answer
            let run = Self.drive(&m) { receiver.answer($0) }
            #expect(run.paths == ["GET /info", "POST /pair-pin-start", "POST /pair-setup", "POST /pair-setup"])
            #expect(run.result?.pairing == .transient)
            let expected: ATVError = switch answer {
            case .success(let r): .httpError(status: r.status, "/pair-pin-start rejected: \(r.reason)")
            case .failure(let e): e
            }
            #expect(run.debugLines.contains("AirPlay 2: /pair-pin-start failed (\(expected)); continuing"))
        }
    }

    @Test(arguments: ["/pair-pin-start", "/pair-setup"]) func refusalsDuringTransientPairing(path: String) {
        let cases: [(Int, ATVError)] = [
            (470, .authenticationFailed("127.0.0.1 requires a paired sender (\(path) answered 470); pair with `atv pair --protocol airplay`")),
            (403, .authenticationFailed("127.0.0.1 refused \(path) (403 Forbidden); check its speaker access settings")),
            (401, .authenticationFailed("127.0.0.1 refused \(path) (401 Unauthorized); check its speaker access settings")),
        ]
        for (status, error) in cases {
            var m = Self.machine(Self.options())
            let receiver = Receiver()
            receiver.override[path] = .success(RTSPResponse(version: "HTTP/1.1", status: status))
            let run = Self.drive(&m) { receiver.answer($0) }
            #expect(run.paths.last == "POST \(path)")
            #expect(run.failure == error)
            #expect(run.keys.isEmpty && run.result == nil)
        }
    }

    /// An AirPlay 1 receiver: no pairing endpoints.
    @Test func pairSetupNotFound() {
        var m = Self.machine(Self.options())
        let run = Self.drive(&m) { _ in .success(RTSPResponse(version: "HTTP/1.1", status: 404)) }
        #expect(run.paths == ["GET /info", "POST /pair-pin-start", "POST /pair-setup"])
        #expect(run.failure == .httpError(status: 404, "/pair-setup rejected: Not Found"))
    }

    @Test func refusalsDuringPairVerify() throws {
        let (credentials, controller) = try Self.pairedCredentials()
        let cases: [(Int, ATVError)] = [
            (470, .authenticationFailed("127.0.0.1 requires a paired sender (/pair-verify answered 470); pair with `atv pair --protocol airplay`")),
            (403, .authenticationFailed("127.0.0.1 refused /pair-verify (403 Forbidden); check its speaker access settings")),
            (500, .httpError(status: 500, "/pair-verify rejected: Internal Server Error")),
        ]
        for (status, error) in cases {
            var m = Self.machine(Self.options(credentials: credentials, requestInfo: false))
            let receiver = Receiver(controllers: [controller])
            receiver.override["/pair-verify"] = .success(RTSPResponse(version: "HTTP/1.1", status: status))
            let run = Self.drive(&m) { receiver.answer($0) }
            #expect(run.paths == ["POST /pair-verify"])
            #expect(run.failure == error)
        }
    }

    @Test func garbagePairSetupBodyIsARefusedTransientPairing() {
        var m = Self.machine(Self.options())
        let receiver = Receiver()
        receiver.override["/pair-setup"] = .success(RTSPResponse(version: "HTTP/1.1", body: [0xFF, 0x10, 0x01]))
        let run = Self.drive(&m) { receiver.answer($0) }
        guard case .authenticationFailed(let text)? = run.failure else { Issue.record("\(String(describing: run.failure))"); return }
        #expect(text.hasPrefix("transient pairing with 127.0.0.1 was refused ("))
        #expect(text.hasSuffix("); if it shows a PIN, pair with `atv pair --protocol airplay`"))
        #expect(run.keys.isEmpty)
    }

    /// A receiver whose transient PIN is not 3939: its M4 carries an error, nothing is encrypted.
    @Test func wrongTransientPINFailsClosed() {
        var m = Self.machine(Self.options())
        let receiver = Receiver(transientPIN: "1234")
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["GET /info", "POST /pair-pin-start", "POST /pair-setup", "POST /pair-setup"])
        guard case .authenticationFailed(let text)? = run.failure else { Issue.record("\(String(describing: run.failure))"); return }
        #expect(text.hasPrefix("transient pairing with 127.0.0.1 was refused ("))
        #expect(run.keys.isEmpty && run.result == nil)
        #expect(m.state == .failed)
    }

    /// The receiver's SRP proof (M4) altered: the proof check fails, no keys come out.
    @Test func wrongServerProofFailsClosed() {
        var m = Self.machine(Self.options())
        let receiver = Receiver()
        receiver.tamper = { path, bytes in
            if path == "/pair-setup", bytes.count > 64, bytes[2] == 4 { bytes[bytes.count - 1] ^= 0x01 }
        }
        let run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.failure == .authenticationFailed(
            "transient pairing with 127.0.0.1 was refused (authentication failed: the device's SRP proof is wrong (it does not know the PIN, or the exchange was tampered with)); "
            + "if it shows a PIN, pair with `atv pair --protocol airplay`"))
        #expect(run.keys.isEmpty && run.result == nil)
    }

    /// Pair-verify against an accessory that does not hold the controller, or signs with another
    /// key: the ATVAuth error ends the connection unchanged, nothing is encrypted.
    @Test func pairVerifyWithWrongProofFailsClosed() throws {
        let (credentials, controller) = try Self.pairedCredentials()
        // The accessory does not know us: its M4 carries an error.
        var m = Self.machine(Self.options(credentials: credentials, requestInfo: false))
        var receiver = Receiver(controllers: [])
        var run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["POST /pair-verify", "POST /pair-verify"])
        guard case .authenticationFailed? = run.failure else { Issue.record("\(String(describing: run.failure))"); return }
        #expect(run.keys.isEmpty)
        // M2 altered (its sealed signature): the client rejects it before M3.
        m = Self.machine(Self.options(credentials: credentials, requestInfo: false))
        receiver = Receiver(controllers: [controller])
        receiver.tamper = { _, bytes in bytes[bytes.count - 1] ^= 0x01 }
        run = Self.drive(&m) { receiver.answer($0) }
        #expect(run.paths == ["POST /pair-verify"])
        guard case .authenticationFailed? = run.failure else { Issue.record("\(String(describing: run.failure))"); return }
        #expect(run.keys.isEmpty && run.result == nil)
    }

    @Test func inputsAfterTheEndAreIgnored() {
        var m = Self.machine(Self.options())
        _ = Self.drive(&m) { _ in .success(RTSPResponse(status: 403)) }
        #expect(m.state == .failed)
        #expect(m.response(RTSPResponse()).isEmpty)
        #expect(m.requestFailed(.timeout("late")).isEmpty)
        #expect(m.encryptionEnabled().isEmpty)
        #expect(m.connected().isEmpty)
        #expect(m.start().isEmpty)
        // Encryption is acknowledged only once it was asked for.
        var fresh = Self.machine(Self.options())
        #expect(fresh.encryptionEnabled().isEmpty)
        #expect(fresh.response(RTSPResponse()).isEmpty)
    }
}

/// `AirPlay2SessionSetupStateMachine`: the session SETUP of play-url and the MRP tunnel, and the
/// event channel with its retries, without sockets.
@Suite struct AirPlay2SessionSetupStateMachineTests {
    static func machine(attempts: Int = 5, remoteControlOnly: Bool = true) -> AirPlay2SessionSetupStateMachine {
        AirPlay2SessionSetupStateMachine(timing: .none, sessionUUID: "0F0E0D0C-0B0A-4908-8706-050403020100",
                                         identity: AirPlay2SenderIdentity(), remoteControlOnly: remoteControlOnly,
                                         eventHost: "127.0.0.1", eventConnectAttempts: attempts)
    }

    static let reply = RTSPResponse(body: BinaryPlist.encode(.dict(["eventPort": .int(51000), "timingPort": .int(0)])))

    @Test func setupThenEventChannel() throws {
        var m = Self.machine()
        let start = m.start()
        guard case .send(let method, let headers, let body)? = start.first, start.count == 1 else { Issue.record("\(start)"); return }
        #expect(method == "SETUP")
        #expect(headers == ["Content-Type": "application/x-apple-binary-plist"])
        // The body as `request(_:plist:)` has always sent it.
        #expect(body == BinaryPlist.encode(AirPlay2SessionSetup.body(
            timing: .none, sessionUUID: "0F0E0D0C-0B0A-4908-8706-050403020100", identity: AirPlay2SenderIdentity(),
            remoteControlOnly: true)))
        let plist = try BinaryPlistParser.parse(body)
        #expect(plist["sessionUUID"]?.string == "0F0E0D0C-0B0A-4908-8706-050403020100")
        #expect(m.response(Self.reply) == [.sessionEstablished, .debug("AirPlay 2: session SETUP → eventPort 51000"),
                                           .openEventChannel(port: 51000, after: nil)])
        let done = m.eventChannelOpened()
        guard case .done(let r)? = done.first else { Issue.record("\(done)"); return }
        #expect(r.eventPort == 51000)
        #expect(m.state == .done)
        #expect(m.response(Self.reply).isEmpty && m.eventChannelOpened().isEmpty)
    }

    @Test func refusedOrRejectedSetup() {
        let cases: [(Int, ATVError)] = [
            (470, .authenticationFailed("the receiver refused session SETUP (470 Connection Authorization Required)")),
            (403, .authenticationFailed("the receiver refused session SETUP (403 Forbidden)")),
            (401, .authenticationFailed("the receiver refused session SETUP (401 Unauthorized)")),
            (500, .httpError(status: 500, "session SETUP rejected: Internal Server Error")),
        ]
        for (status, error) in cases {
            var m = Self.machine()
            _ = m.start()
            // Refused: no session exists, so no TEARDOWN is owed.
            #expect(m.response(RTSPResponse(status: status)) == [.failed(error)])
            #expect(m.state == .failed)
        }
    }

    @Test func unreadableReplyStillOwesTeardown() {
        var m = Self.machine()
        _ = m.start()
        let actions = m.response(RTSPResponse(body: Array("garbage".utf8)))
        #expect(actions.first == .sessionEstablished && actions.count == 2)
        guard case .failed(.protocolError)? = actions.last else { Issue.record("\(actions)"); return }
        var noPort = Self.machine()
        _ = noPort.start()
        #expect(noPort.response(RTSPResponse(body: BinaryPlist.encode(.dict(["timingPort": .int(0)]))))
                == [.sessionEstablished, .failed(.protocolError("the session SETUP reply has no valid eventPort"))])
    }

    @Test func setupTimeout() {
        var m = Self.machine()
        _ = m.start()
        let timeout = ATVError.timeout("the receiver at 127.0.0.1:7000 did not answer SETUP within 6 s")
        #expect(m.requestFailed(timeout) == [.failed(timeout)])
        #expect(m.eventChannelFailed(timeout).isEmpty)
    }

    /// A refused event port is tried again 1 s later, `attempts` times in all; then the error
    /// names the port.
    @Test func eventChannelRetriesWhileRefused() {
        let refused = ATVError.connectionFailed("cannot connect to 127.0.0.1:51000: connection refused")
        var m = Self.machine(attempts: 3)
        _ = m.start()
        _ = m.response(Self.reply)
        #expect(m.eventChannelFailed(refused) == [.openEventChannel(port: 51000, after: .seconds(1))])
        #expect(m.eventChannelFailed(refused) == [.openEventChannel(port: 51000, after: .seconds(1))])
        #expect(m.eventChannelFailed(refused) == [.failed(.connectionFailed(
            "cannot open the AirPlay 2 event channel to 127.0.0.1:51000 (connection failed: cannot connect to 127.0.0.1:51000: connection refused)"))])
        #expect(m.state == .failed)
        // Opened on a retry.
        var again = Self.machine(attempts: 3)
        _ = again.start()
        _ = again.response(Self.reply)
        _ = again.eventChannelFailed(refused)
        guard case .done? = again.eventChannelOpened().first else { Issue.record("not done"); return }
    }

    @Test func eventChannelOtherFailureEndsAtOnce() {
        let timeout = ATVError.timeout("connecting to 127.0.0.1:51000 timed out after 5 s")
        var m = Self.machine(attempts: 5)
        _ = m.start()
        _ = m.response(Self.reply)
        #expect(m.eventChannelFailed(timeout) == [.failed(.connectionFailed(
            "cannot open the AirPlay 2 event channel to 127.0.0.1:51000 (\(timeout.description))"))])
    }
}
