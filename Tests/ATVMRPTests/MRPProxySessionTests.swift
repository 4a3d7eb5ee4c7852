import ATVTestSupport
import ATVAuth
import ATVCore
import ATVMRP
import Foundation
import Testing

/// MRPProxySession in memory: a HAP controller pairs (PIN) and verifies with the proxy over
/// CRYPTO_PAIRING, the proxy sends DEVICE_INFO to and pair-verifies with a minimal in-test
/// accessory, and a SEND_COMMAND and its result cross, re-encrypted on each side.
struct MRPProxySessionTests {
    /// A minimal MRP accessory: answers DEVICE_INFO, pair-verify, and SEND_COMMAND.
    struct Device {
        let identity: HAPIdentity
        let controllers: [HAPPairedController]
        var channel = MRPChannel()
        var verify: HAPPairVerifyServer?
        var received: [MRPProtocolMessage] = []

        /// Bytes from the proxy; returns the bytes the device answers with.
        mutating func receive(_ bytes: [UInt8]) throws -> [UInt8] {
            var out: [UInt8] = []
            for m in try channel.receive(bytes) {
                received.append(m)
                switch m.type {
                case .deviceInfo:
                    var r = MRPMessages.message(.deviceInfo)
                    r.identifier = m.identifier
                    r.MRPdeviceInfoMessage.name = "In-memory TV"
                    r.MRPdeviceInfoMessage.uniqueIdentifier = "DEVICE-UID"
                    r.MRPdeviceInfoMessage.deviceUid = "DEVICE-UID"
                    out += try channel.encode(r)
                case .cryptoPairing:
                    let tlv = Array(m.MRPcryptoPairingMessage.pairingData)
                    if (try? TLV8.decode(tlv))?.byte(.state) == 1 { verify = HAPPairVerifyServer(identity: identity, controllers: controllers) }
                    guard var v = verify else { continue }
                    let reply = v.handle(tlv)
                    verify = v
                    out += try channel.encode(MRPMessages.cryptoPairing(reply.message))
                    if case .verified(_, let shared) = reply.event {
                        channel.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared, role: .accessory))
                    }
                case .sendCommand:
                    var r = MRPMessages.message(.sendCommandResult)
                    r.identifier = m.identifier
                    r.MRPsendCommandResultMessage.sendError = 0
                    out += try channel.encode(r)
                default: break
                }
            }
            return out
        }
    }

    /// The proxy, the device, and what came out of the proxy.
    struct Link {
        var proxy: MRPProxySession
        var device: Device
        var proxyControllers: [HAPPairedController] = []
        var messages: [(MRPProxySession.Direction, MRPProtocolMessage)] = []
        var dropped: [MRPProtocolMessage] = []
        var authFailures: [ATVError] = []
        var deviceVerified = false
        var controllerVerified = false

        init() throws {
            let deviceIdentity = try HAPIdentity(identifier: "DEVICE-ID", seed: Array(repeating: 7, count: 32))
            let proxySeed = Array(repeating: UInt8(9), count: 32)
            let proxyAsClient = try HAPIdentity(identifier: "proxy-client", seed: proxySeed)
            let creds = HAPCredentials(deviceLTPK: deviceIdentity.publicKey, clientLTSK: proxySeed,
                                       deviceID: deviceIdentity.identifier, clientID: proxyAsClient.identifier)
            device = Device(identity: deviceIdentity,
                            controllers: [HAPPairedController(identifier: proxyAsClient.identifier, publicKey: proxyAsClient.publicKey)])
            proxy = MRPProxySession(identity: try HAPIdentity.proxy(named: "Test Proxy"), pin: "1111", credentials: creds, name: "Test Proxy")
        }

        /// Runs proxy outputs to completion; returns what reached the controller (raw bytes).
        mutating func pump(_ outputs: [MRPProxySession.Output]) throws -> [UInt8] {
            var toController: [UInt8] = []
            var queue = outputs
            while !queue.isEmpty {
                switch queue.removeFirst() {
                case .sendToController(let b): toController += b
                case .sendToDevice(let b):
                    let reply = try device.receive(b)
                    if !reply.isEmpty { queue += try proxy.fromDevice(reply) }
                case .paired(let c): proxyControllers.append(c)
                case .controllerVerified: controllerVerified = true
                case .deviceVerified: deviceVerified = true
                case .controllerAuthFailed(let e): authFailures.append(e)
                case .message(let d, let m): messages.append((d, m))
                case .dropped(let m): dropped.append(m)
                }
            }
            return toController
        }

        /// One controller request through the proxy; returns the decoded replies.
        mutating func send(_ m: MRPProtocolMessage, with channel: inout MRPChannel) throws -> [MRPProtocolMessage] {
            let back = try pump(try proxy.fromController(try channel.encode(m), controllers: proxyControllers))
            return try channel.receive(back)
        }

        /// CRYPTO_PAIRING exchange for the controller.
        mutating func pairing(_ tlv: [UInt8], m1: Bool = false, with channel: inout MRPChannel) throws -> [UInt8] {
            let replies = try send(MRPMessages.cryptoPairing(tlv, isPairSetupM1: m1), with: &channel)
            let reply = try #require(replies.first { $0.type == .cryptoPairing })
            return Array(reply.MRPcryptoPairingMessage.pairingData)
        }
    }

    @Test func controllerPairsVerifiesAndACommandCrossesBothWays() throws {
        var link = try Link()
        var controller = MRPChannel()
        // The controller speaks first: its DEVICE_INFO waits until the device link is verified.
        var info = MRPMessages.deviceInfo(.init(pairingID: "ctl", name: "pyatv", osBuild: "18M60"))
        info.identifier = "INFO-1"
        #expect(try link.proxy.fromController(try controller.encode(info), controllers: []).isEmpty)
        let back = try link.pump(try link.proxy.start())
        #expect(link.deviceVerified && link.proxy.deviceVerified)
        // The device saw the proxy's own DEVICE_INFO (with the credentials' client id), then pair-verify, never the controller's.
        #expect(link.device.received.map(\.type) == [.deviceInfo, .cryptoPairing, .cryptoPairing])
        #expect(link.device.received.first?.MRPdeviceInfoMessage.uniqueIdentifier == "proxy-client")
        // The proxy answered the controller's DEVICE_INFO itself: the device's, under its own name and identity.
        let infoReply = try #require(try controller.receive(back).first)
        #expect(infoReply.type == .deviceInfo && infoReply.identifier == "INFO-1")
        #expect(infoReply.MRPdeviceInfoMessage.name == "Test Proxy" && infoReply.MRPdeviceInfoMessage.deviceUid == "DEVICE-UID")
        #expect(infoReply.MRPdeviceInfoMessage.uniqueIdentifier == String(decoding: link.proxy.identity.identifier, as: UTF8.self))

        // Before the controller is verified, nothing it sends reaches the device.
        _ = try link.send(MRPMessages.sendCommand(.play), with: &controller)
        #expect(link.dropped.map(\.type) == [.sendCommand] && link.device.received.count == 3)

        // PIN pair-setup over CRYPTO_PAIRING.
        var setup = HAPPairSetupClient(pin: "1111")
        var tlv = try link.pairing(try setup.start(), m1: true, with: &controller)
        var creds: HAPCredentials?
        while creds == nil {
            switch try setup.handle(tlv) {
            case .send(let next): tlv = try link.pairing(next, with: &controller)
            case .paired(let c): creds = c
            case .transient: Issue.record("transient"); return
            }
        }
        let credentials = try #require(creds)
        #expect(link.proxyControllers.map(\.identifier) == [credentials.clientID])
        #expect(credentials.deviceID == link.proxy.identity.identifier)

        // Pair-verify, then encryption on the controller side.
        var verify = HAPPairVerifyClient(credentials: credentials)
        tlv = try link.pairing(try verify.start(), with: &controller)
        guard case .send(let m3) = try verify.handle(tlv) else { Issue.record("no M3"); return }
        tlv = try link.pairing(m3, with: &controller)
        guard case .verified(let shared) = try verify.handle(tlv) else { Issue.record("not verified"); return }
        controller.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared))
        #expect(link.controllerVerified)
        // No CRYPTO_PAIRING of the controller reached the device.
        #expect(link.device.received.count == 3)

        // An encrypted command reaches the device decrypted; its result comes back with the same identifier.
        var command = MRPMessages.sendCommand(.nextTrack)
        command.identifier = "CMD-7"
        let replies = try link.send(command, with: &controller)
        let last = try #require(link.device.received.last)
        #expect(last.type == .sendCommand && last.MRPsendCommandMessage.command == .nextTrack && last.identifier == "CMD-7")
        #expect(replies.map(\.type) == [.sendCommandResult] && replies.first?.identifier == "CMD-7")
        let forwarded = link.messages.filter { $0.0 == .toDevice || $0.0 == .toController }
        #expect(forwarded.map { "\($0.0.rawValue) \($0.1.type)" } == ["controller->device sendCommand", "device->controller sendCommandResult"])
        // The handshake is logged too.
        #expect(link.messages.contains { $0.0 == .controllerToProxy && $0.1.type == .cryptoPairing })
        #expect(link.messages.contains { $0.0 == .deviceToProxy && $0.1.type == .deviceInfo })
    }

    @Test func wrongPINFailsAndUnknownControllerCannotVerify() throws {
        var link = try Link()
        var controller = MRPChannel()
        _ = try link.pump(try link.proxy.start())
        var setup = HAPPairSetupClient(pin: "9999")
        let m2 = try link.pairing(try setup.start(), m1: true, with: &controller)
        guard case .send(let m3) = try setup.handle(m2) else { Issue.record("no M3"); return }
        let m4 = try link.pairing(m3, with: &controller)
        #expect(throws: ATVError.self) { _ = try setup.handle(m4) }
        #expect(link.authFailures.count == 1 && link.proxyControllers.isEmpty)

        // A stranger's credentials do not verify.
        let stranger = try HAPIdentity(identifier: "stranger", seed: Array(repeating: 3, count: 32))
        let fake = HAPCredentials(deviceLTPK: link.proxy.identity.publicKey, clientLTSK: Array(repeating: 3, count: 32),
                                  deviceID: link.proxy.identity.identifier, clientID: stranger.identifier)
        var verify = HAPPairVerifyClient(credentials: fake)
        let v2 = try link.pairing(try verify.start(), with: &controller)
        if case .send(let v3) = try verify.handle(v2) { _ = try link.pairing(v3, with: &controller) }
        #expect(!link.controllerVerified && link.authFailures.count == 2)
    }

    @Test func sameNameSameIdentity() throws {
        let a = try HAPIdentity.proxy(named: "Den Proxy"), b = try HAPIdentity.proxy(named: "Den Proxy")
        let c = try HAPIdentity.proxy(named: "Other Proxy")
        #expect(a.identifier == b.identifier && a.publicKey == b.publicKey)
        #expect(a.publicKey != c.publicKey)
    }

    @Test func describeShowsTypeAndInnerMessage() {
        var m = MRPMessages.sendCommand(.pause)
        m.identifier = "X1"
        let line = MRPProxySession.describe(m)
        #expect(line.hasPrefix("sendCommand {"), "\(line)")
        #expect(line.contains("identifier: \"X1\"") && line.contains("COMMAND_PAUSE") && !line.contains("\n"), "\(line)")
        var big = MRPMessages.message(.setArtwork)
        big.uniqueIdentifier = String(repeating: "A", count: 10_000)
        #expect(MRPProxySession.describe(big).contains("more characters"))
    }

    @Test func garbageFromEitherSideNeverCrashes() throws {
        let seed = TestSeed.value(default: 0x9A0C)
        var rng = SplitMix64(seed: seed)
        for i in 0 ..< 300 {
            var link = try Link()
            _ = try link.pump(try link.proxy.start())
            let bytes = randomBytes(Int.random(in: 1 ... 64, using: &rng), using: &rng)
            for side in ["controller", "device"] {
                do {
                    _ = side == "controller" ? try link.proxy.fromController(bytes, controllers: []) : try link.proxy.fromDevice(bytes)
                } catch {
                    #expect(error.isMalformedInput, "seed \(seed) case \(i) from \(side): \(error)")
                }
            }
        }
    }
}
