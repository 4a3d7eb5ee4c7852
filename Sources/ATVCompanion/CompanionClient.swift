// Controller side of Companion over TCP (SwiftNIO shell around the sans-I/O pieces): PIN
// pair-setup, pair-verify from stored credentials, then encrypted E_OPACK requests and events.
import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

package actor CompanionClient {
    package static let defaultTimeout: Duration = .seconds(5)

    let channel: Channel
    let host: String
    let port: Int
    var encoder = CompanionFrameEncoder(key: nil)
    var decoder = CompanionFrameDecoder(key: nil)
    var authWaiter: (id: Int, continuation: CheckedContinuation<[UInt8], Error>)?
    var authSeq = 0
    var pending: [Int64: CheckedContinuation<CompanionMessage, Error>] = [:]
    var xid: Int64 = Int64.random(in: 0 ... 65536)
    var closedError: ATVError?
    var reader: Task<Void, Never>?
    package private(set) var isVerified = false
    /// `_sid` of the session started by `startSession` (remote << 32 | local).
    package private(set) var sessionID: UInt64?
    nonisolated let eventStream: AsyncStream<CompanionMessage>
    let eventContinuation: AsyncStream<CompanionMessage>.Continuation

    /// Events the device pushes (`_t` = 1), e.g. `SystemStatus`, `_iMC`; ends when the connection closes.
    package nonisolated var events: AsyncStream<CompanionMessage> { eventStream }

    init(channel: Channel, host: String, port: Int) {
        self.channel = channel
        self.host = host
        self.port = port
        (eventStream, eventContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    /// Open a TCP connection (no authentication yet).
    package static func connect(host: String, port: Int, timeout: Duration = .seconds(10)) async throws(ATVError) -> CompanionClient {
        let (stream, cont) = AsyncStream<[UInt8]?>.makeStream()
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ByteForwarder(cont)) }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw ATVError.connecting("Companion at \(host):\(port)", error, timeout: timeout)
        }
        let client = CompanionClient(channel: channel, host: host, port: port)
        await client.startReading(stream)
        return client
    }

    func startReading(_ stream: AsyncStream<[UInt8]?>) {
        reader = Task { [weak self] in
            for await chunk in stream {
                guard let self else { return }
                guard let chunk else { break }
                if await !self.received(chunk) { break }
            }
            await self?.failAll(ATVError.connectionFailed("the device at \(self?.host ?? "?"):\(self?.port ?? 0) closed the Companion connection"))
        }
    }

    /// Decode and dispatch; false when the stream is unusable.
    func received(_ bytes: [UInt8]) -> Bool {
        let frames: [CompanionFrame]
        do {
            frames = try decoder.decode(bytes)
            // A frame type no Companion device sends: not a Companion port (known from the first byte).
            if let t = decoder.pendingFrameType, CompanionFrameType(rawValue: t) == nil {
                throw ATVError.protocolError("unknown frame type")
            }
        } catch {
            failAll(ATVError.protocolError("Companion at \(host):\(port) sent something that is not a Companion frame"))
            channel.close(promise: nil)
            return false
        }
        for f in frames {
            CompanionLog.frame("device->controller", f.type, f.payload)
            guard let type = CompanionFrameType(rawValue: f.type) else { continue }
            if type.isAuth {
                if let w = authWaiter { authWaiter = nil; w.continuation.resume(returning: f.payload) }
            } else if type.isOPACK, !f.payload.isEmpty {
                guard let m = try? CompanionMessage(decoding: f.payload) else { continue }
                switch m.kind {
                case .event: eventContinuation.yield(m)
                case .response:
                    if let x = m.xid, let c = pending.removeValue(forKey: x) { c.resume(returning: m) }
                case .request:
                    // We handle no requests from the device; answer as a device would.
                    // A frame that can't be sealed ends the connection (nothing unsealed is sent).
                    let data: [UInt8]
                    do {
                        data = try encoder.encode(CompanionFrame(type: CompanionFrameType.encryptedOPACK.rawValue,
                                                                 payload: CompanionMessage.noHandler(for: m.xid).encoded()))
                    } catch {
                        failAll(ATVError.protocolError("Companion: a reply could not be encrypted; the connection was closed"))
                        channel.close(promise: nil)
                        return false
                    }
                    channel.writeAndFlush(channel.allocator.buffer(bytes: data), promise: nil)
                }
            }
        }
        return true
    }

    func failAll(_ error: ATVError) {
        if closedError == nil { closedError = error }
        if let w = authWaiter { authWaiter = nil; w.continuation.resume(throwing: error) }
        for (_, c) in pending { c.resume(throwing: error) }
        pending = [:]
        eventContinuation.finish()
    }

    func write(_ type: CompanionFrameType, _ payload: [UInt8]) throws(ATVError) {
        if let closedError { throw closedError }
        CompanionLog.frame("controller->device", type.rawValue, payload)
        let bytes = try encoder.encode(CompanionFrame(type: type.rawValue, payload: payload))
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    /// Send an auth frame and wait for the device's auth frame; returns its TLV.
    func exchangeAuth(_ type: CompanionFrameType, _ payload: [UInt8], timeout: Duration) async throws -> [UInt8] {
        if let closedError { throw closedError }
        authSeq += 1
        let id = authSeq
        let reply: [UInt8] = try await withCheckedThrowingContinuation { c in
            authWaiter = (id, c)
            do { try write(type, payload) } catch {
                authWaiter = nil
                c.resume(throwing: error)
                return
            }
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expireAuth(id)
            }
        }
        return try CompanionAuth.tlv(from: reply)
    }

    func expireAuth(_ id: Int) {
        guard let w = authWaiter, w.id == id else { return }
        authWaiter = nil
        w.continuation.resume(throwing: ATVError.timeout("Companion at \(host):\(port) did not answer the pairing step in time"))
    }

    /// PIN pair-setup (M1–M6). Returns credentials in pyatv's format; the device's M4 proof and M6
    /// signature are verified. `name` is shown on the device (OPACK `{"name": …}` in M5).
    package func pair(pin: String, name: String = "swift-atv", timeout: Duration = .seconds(30)) async throws -> HAPCredentials {
        let nameItem = TLV8.Item(.name, OPACK.dict(["name": .string(name)]).encoded())
        var setup = HAPPairSetupClient(pin: pin, m5Extras: [nameItem])
        var tlv = try await exchangeAuth(.pairSetupStart, CompanionAuth.pairSetupPayload(try setup.start()), timeout: timeout)
        while true {
            switch try setup.handle(tlv) {
            case .send(let next): tlv = try await exchangeAuth(.pairSetupNext, CompanionAuth.pairSetupPayload(next), timeout: timeout)
            case .paired(let creds): return creds
            case .transient: throw ATVError.protocolError("Companion pair-setup ended as transient")
            }
        }
    }

    /// Pair-verify with stored credentials; afterwards every frame is encrypted.
    package func verify(_ credentials: HAPCredentials, timeout: Duration = CompanionClient.defaultTimeout) async throws {
        var v = HAPPairVerifyClient(credentials: credentials)
        var tlv = try await exchangeAuth(.pairVerifyStart, CompanionAuth.pairVerifyPayload(try v.start(), first: true), timeout: timeout)
        while true {
            switch try v.handle(tlv) {
            case .send(let next): tlv = try await exchangeAuth(.pairVerifyNext, CompanionAuth.pairVerifyPayload(next, first: false), timeout: timeout)
            case .verified(let shared):
                let keys = HAPChannel.companion.keys(sharedSecret: shared)
                encoder.enableEncryption(key: keys.output)
                decoder.enableEncryption(key: keys.input)
                isVerified = true
                return
            }
        }
    }

    /// Send a request and return the response's `_c`; a response with `_em` is an error.
    @discardableResult
    package func request(_ name: String, _ content: OPACK = .dictionary([]), timeout: Duration = CompanionClient.defaultTimeout) async throws -> OPACK {
        guard isVerified else { throw ATVError.invalidState("Companion: pair-verify first") }
        if let closedError { throw closedError }
        let x = xid
        xid += 1
        let message = CompanionMessage.request(name, content, xid: x)
        let reply: CompanionMessage = try await withCheckedThrowingContinuation { c in
            pending[x] = c
            do { try write(.encryptedOPACK, message.encoded()) } catch {
                pending[x] = nil
                c.resume(throwing: error)
                return
            }
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expire(x, name)
            }
        }
        if let em = reply.errorMessage {
            throw ATVError.protocolError("Companion \(name) failed: \(em)\(reply.errorCode.map { " (\($0))" } ?? "")")
        }
        return reply.content
    }

    func expire(_ x: Int64, _ name: String) {
        pending.removeValue(forKey: x)?.resume(throwing: ATVError.timeout("the device did not answer \(name) within the time limit"))
    }

    /// Send an event (no response).
    package func sendEvent(_ name: String, _ content: OPACK = .dictionary([])) throws(ATVError) {
        guard isVerified else { throw ATVError.invalidState("Companion: pair-verify first") }
        let x = xid
        xid += 1
        try write(.encryptedOPACK, CompanionMessage.event(name, content, xid: x).encoded())
    }

    /// The connection sequence after pair-verify: system info, touch, session, TV remote
    /// session (errors ignored), text input, and interest in media-control and power events.
    package func startSession(name: String = "swift-atv", model: String = "swift-atv", clientID: [UInt8] = [],
                             deviceID: String = "AA:BB:CC:00:00:01") async throws {
        try await request("_systemInfo", .dict([
            "_bf": .int(0), "_cf": .int(512), "_clFl": .int(128),
            "_i": .string(deviceID.filter { $0 != ":" }.lowercased()), "_idsID": .data(clientID),
            "_pubID": .string(deviceID), "_sf": .int(256), "_sv": .string("170.18"),
            "model": .string(model), "name": .string(name),
        ]))
        try await request("_touchStart", .dict(["_height": .double(1000), "_tFl": .int(0), "_width": .double(1000)]))
        let local = UInt32.random(in: 0 ... .max)
        let c = try await request("_sessionStart", .dict(["_srvT": .string("com.apple.tvremoteservices"), "_sid": .int(Int64(local))]))
        guard let remote = c["_sid"]?.intValue else { throw ATVError.protocolError("Companion _sessionStart: no _sid in the response") }
        sessionID = UInt64(truncatingIfNeeded: remote) << 32 | UInt64(local)
        _ = try? await request("TVRCSessionStart", .dict(["ProtocolVersionKey": .string("1.2")]))
        try await request("_tiStart")
        try sendEvent("_interest", .dict(["_regEvents": .array([.string("_iMC"), .string("SystemStatus"), .string("TVSystemStatus")])]))
    }

    package func appList() async throws -> [(bundleID: String, name: String)] {
        try await request("FetchLaunchableApplicationsEvent").stringDictionary.map { ($0.key, $0.value) }
    }

    /// Launch by bundle id, or open a URL when the argument has a scheme.
    package func launchApp(_ bundleIDOrURL: String) async throws {
        try await request("_launchApp", .dict([Self.hasURLScheme(bundleIDOrURL) ? "_urlS" : "_bundleID": .string(bundleIDOrURL)]))
    }

    /// "scheme:…" with an RFC 3986 scheme (a letter, then letters, digits, + - .), as pyatv decides.
    package static func hasURLScheme(_ s: String) -> Bool {
        guard let colon = s.firstIndex(of: ":") else { return false }
        let scheme = s[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter else { return false }
        return scheme.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }

    package func accounts() async throws -> [(id: String, name: String)] {
        try await request("FetchUserAccountsEvent").stringDictionary.map { ($0.key, $0.value) }
    }

    package func switchAccount(_ id: String) async throws {
        try await request("SwitchUserAccountEvent", .dict(["SwitchAccountID": .string(id)]))
    }

    /// A HID button: tap = down + up.
    package func press(_ button: CompanionHIDButton, down: Bool) async throws {
        try await request("_hidC", .dict(["_hBtS": .int(down ? 1 : 2), "_hidC": .int(button.rawValue)]))
    }

    /// Power as pyatv does it: only the button-up event of Wake/Sleep.
    package func setPower(on: Bool) async throws { try await press(on ? .wake : .sleep, down: false) }

    package func systemStatus() async throws -> CompanionSystemStatus? {
        try await request("FetchAttentionState")["state"]?.intValue.flatMap(CompanionSystemStatus.init(rawValue:))
    }

    package func mediaControl(_ command: CompanionMediaCommand, _ extra: [(String, OPACK)] = []) async throws -> OPACK {
        try await request("_mcc", .dict([("_mcc", .int(command.rawValue))] + extra))
    }

    // MARK: Text input (RTI): every call restarts the text-input session, as pyatv does.

    /// The focused text field's content; nil when no text field has focus.
    package func textGet() async throws -> String? { try await textInput(nil, clear: false) }
    /// Replace the text; nil when no text field has focus.
    @discardableResult package func textSet(_ text: String) async throws -> String? { try await textInput(text, clear: true) }
    @discardableResult package func textAppend(_ text: String) async throws -> String? { try await textInput(text, clear: false) }
    @discardableResult package func textClear() async throws -> String? { try await textInput(nil, clear: true) }

    func textInput(_ text: String?, clear: Bool) async throws -> String? {
        _ = try? await request("_tiStop")
        let c = try await request("_tiStart")
        guard let archive = c["_tiD"]?.dataValue else { return nil }
        guard case .data(let session)? = RTIArchive.property(archive, ["sessionUUID"]) else {
            throw ATVError.protocolError("Companion _tiStart: the text-input archive has no session UUID")
        }
        var current: String
        if case .string(let s)? = RTIArchive.property(archive, ["documentState", "docSt", "contextBeforeInput"]) { current = s } else { current = "" }
        if clear {
            try sendEvent("_tiC", .dict(["_tiV": .int(1), "_tiD": .data(RTIArchive.clear(session: session))]))
            current = ""
        }
        if let text, !text.isEmpty {
            try sendEvent("_tiC", .dict(["_tiV": .int(1), "_tiD": .data(RTIArchive.insert(session: session, text: text))]))
            current += text
        }
        return current
    }

    /// The end of a session as pyatv does it: `_sessionStop`, `_touchStop`, `_tiStop` (errors ignored).
    package func stopSession() async {
        try? sendEvent("_interest", .dict(["_deregEvents": .array([.string("_iMC"), .string("SystemStatus"), .string("TVSystemStatus")])]))
        if let sid = sessionID {
            _ = try? await request("_sessionStop", .dict(["_srvT": .string("com.apple.tvremoteservices"), "_sid": .int(Int64(bitPattern: sid))]))
        }
        _ = try? await request("_touchStop", .dict(["_i": .int(1)]))
        _ = try? await request("_tiStop")
        sessionID = nil
    }

    /// A touch event (`_hidT`): coordinates 0...1000, phase as pyatv's TouchAction (1 press, 3 hold, 4 release, 5 click).
    package func touch(x: Int, y: Int, phase: Int64, nanoseconds: Int64) throws(ATVError) {
        try sendEvent("_hidT", .dict(["_ns": .int(nanoseconds), "_tFg": .int(1), "_cx": .int(Int64(min(max(x, 0), 1000))),
                                      "_tPh": .int(phase), "_cy": .int(Int64(min(max(y, 0), 1000)))]))
    }

    package func close() async {
        failAll(ATVError.connectionFailed("the Companion connection was closed"))
        try? await channel.close()
        reader?.cancel()
    }
}
