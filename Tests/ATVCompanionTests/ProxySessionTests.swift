import ATVTestSupport
import ATVAuth
import ATVCompanion
import ATVCore
import Testing

/// CompanionProxySession in memory: a HAP controller pairs and verifies with the proxy, the proxy
/// verifies with a device (CompanionAccessoryConnection), and a request and its response cross.
struct ProxySessionTests {
    /// Everything needed to run one proxied link without sockets.
    struct Link {
        var proxy: CompanionProxySession
        var device: CompanionAccessoryConnection
        let deviceControllers: [HAPPairedController]
        var proxyControllers: [HAPPairedController] = []
        var controllerEncoder = CompanionFrameEncoder(key: nil)
        var controllerDecoder = CompanionFrameDecoder(key: nil)
        var deviceMessages: [CompanionMessage] = []
        var forwarded: [(CompanionProxySession.Direction, CompanionFrame)] = []
        var deviceVerified = false

        init() throws {
            let deviceIdentity = try HAPIdentity(identifier: "DEVICE-ID", seed: Array(repeating: 7, count: 32))
            let proxySeed = Array(repeating: UInt8(9), count: 32)
            let proxyAsClient = try HAPIdentity(identifier: "proxy-client", seed: proxySeed)
            let creds = HAPCredentials(deviceLTPK: deviceIdentity.publicKey, clientLTSK: proxySeed,
                                       deviceID: deviceIdentity.identifier, clientID: proxyAsClient.identifier)
            deviceControllers = [HAPPairedController(identifier: proxyAsClient.identifier, publicKey: proxyAsClient.publicKey)]
            device = CompanionAccessoryConnection(identity: deviceIdentity, pin: "2222")
            proxy = CompanionProxySession(identity: try HAPIdentity.proxy(named: "Test Proxy"), pin: "1111", credentials: creds)
        }

        /// Runs proxy outputs to completion; returns what reached the controller (raw bytes).
        mutating func pump(_ outputs: [CompanionProxySession.Output]) throws -> [UInt8] {
            var toController: [UInt8] = []
            var queue = outputs
            while !queue.isEmpty {
                let o = queue.removeFirst()
                switch o {
                case .sendToController(let b): toController += b
                case .sendToDevice(let b):
                    for d in try device.receive(b, controllers: deviceControllers) {
                        switch d {
                        case .send(let reply): queue += try proxy.fromDevice(reply)
                        case .message(let m):
                            deviceMessages.append(m)
                            if m.kind == .request {
                                let reply = try device.encode(.response(to: m.xid, .dict(["ok": .string(m.identifier ?? "")])))
                                queue += try proxy.fromDevice(reply)
                            }
                        default: break
                        }
                    }
                case .paired(let c): proxyControllers.append(c)
                case .deviceVerified: deviceVerified = true
                case .forwarded(let d, let f): forwarded.append((d, f))
                case .controllerVerified, .controllerAuthFailed: break
                }
            }
            return toController
        }

        /// A controller auth exchange: send one frame, return the reply's TLV.
        mutating func auth(_ type: CompanionFrameType, _ payload: [UInt8]) throws -> [UInt8] {
            let bytes = try controllerEncoder.encode(CompanionFrame(type: type.rawValue, payload: payload))
            let reply = try pump(try proxy.fromController(bytes, controllers: proxyControllers))
            let frames = try controllerDecoder.decode(reply)
            return try CompanionAuth.tlv(from: try #require(frames.first).payload)
        }
    }

    @Test func controllerPairsVerifiesAndTalksToTheDeviceThroughTheProxy() throws {
        var link = try Link()
        _ = try link.pump(try link.proxy.start())
        #expect(link.deviceVerified)

        // Pair-setup with the proxy's PIN.
        var setup = HAPPairSetupClient(pin: "1111")
        var tlv = try link.auth(.pairSetupStart, CompanionAuth.pairSetupPayload(try setup.start()))
        var creds: HAPCredentials?
        while creds == nil {
            switch try setup.handle(tlv) {
            case .send(let next): tlv = try link.auth(.pairSetupNext, CompanionAuth.pairSetupPayload(next))
            case .paired(let c): creds = c
            case .transient: Issue.record("unexpected transient pairing"); return
            }
        }
        #expect(link.proxyControllers.count == 1)
        let proxyIdentity = try HAPIdentity.proxy(named: "Test Proxy")
        #expect(creds?.deviceID == proxyIdentity.identifier)

        // Pair-verify, then an encrypted request crosses to the device and its response comes back.
        var verify = HAPPairVerifyClient(credentials: try #require(creds))
        tlv = try link.auth(.pairVerifyStart, CompanionAuth.pairVerifyPayload(try verify.start(), first: true))
        guard case .send(let m3) = try verify.handle(tlv) else { Issue.record("no M3"); return }
        tlv = try link.auth(.pairVerifyNext, CompanionAuth.pairVerifyPayload(m3, first: false))
        guard case .verified(let shared) = try verify.handle(tlv) else { Issue.record("not verified"); return }
        let keys = HAPChannel.companion.keys(sharedSecret: shared)
        link.controllerEncoder.enableEncryption(key: keys.output)
        link.controllerDecoder.enableEncryption(key: keys.input)

        let request = CompanionMessage.request("_launchApp", .dict(["_bundleID": .string("com.example.app")]), xid: 42)
        let sealed = try link.controllerEncoder.encode(CompanionFrame(type: CompanionFrameType.encryptedOPACK.rawValue, payload: request.encoded()))
        let back = try link.pump(try link.proxy.fromController(sealed, controllers: link.proxyControllers))
        #expect(link.deviceMessages == [request])
        let frames = try link.controllerDecoder.decode(back)
        let response = try CompanionMessage(decoding: try #require(frames.first).payload)
        #expect(response.kind == .response && response.xid == 42 && response.content["ok"]?.stringValue == "_launchApp")
        #expect(link.forwarded.map(\.0) == [.toDevice, .toController])
        #expect(CompanionProxy.describe(link.forwarded[0].1).contains("request _launchApp x=42"))
    }

    @Test func aWrongPINIsRefusedAndNothingIsForwarded() throws {
        var link = try Link()
        _ = try link.pump(try link.proxy.start())
        var setup = HAPPairSetupClient(pin: "9999")
        var tlv = try link.auth(.pairSetupStart, CompanionAuth.pairSetupPayload(try setup.start()))
        if case .send(let m3) = try setup.handle(tlv) { tlv = try link.auth(.pairSetupNext, CompanionAuth.pairSetupPayload(m3)) }
        #expect(throws: ATVError.self) { _ = try setup.handle(tlv) }
        #expect(link.proxyControllers.isEmpty)
        // Messages before pair-verify are dropped, not forwarded.
        let plain = try link.controllerEncoder.encode(CompanionFrame(type: CompanionFrameType.encryptedOPACK.rawValue,
                                                                     payload: CompanionMessage.request("_launchApp", xid: 1).encoded()))
        _ = try link.pump(try link.proxy.fromController(plain, controllers: []))
        #expect(link.forwarded.isEmpty && link.deviceMessages.isEmpty)
    }

    /// Garbage from either side throws or is ignored; it never traps.
    @Test func fuzz() throws {
        let seed = TestSeed.value(default: 0xC0F2)
        var rng = SplitMix64(seed: seed)
        for i in 0 ..< 500 {
            var link = try Link()
            if i % 2 == 0 { _ = try link.pump(try link.proxy.start()) }
            let n = Int.random(in: 0 ... 80, using: &rng)
            var bytes = (0 ..< n).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            if i % 3 == 0, bytes.count > 4 { bytes[0] = UInt8.random(in: 3 ... 9, using: &rng); bytes[1] = 0; bytes[2] = 0; bytes[3] = UInt8(bytes.count - 4) }
            do { _ = try link.proxy.fromController(bytes, controllers: []) } catch {
                #expect(error.isMalformedInput, "seed \(seed) case \(i) from the controller: \(error)")
            }
            do { _ = try link.proxy.fromDevice(bytes) } catch {
                #expect(error.isMalformedInput, "seed \(seed) case \(i) from the device: \(error)")
            }
        }
    }
}
