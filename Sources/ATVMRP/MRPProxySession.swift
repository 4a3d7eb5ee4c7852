// One proxied MRP connection, sans-I/O (atvproxy's MRP mode): a controller (the Remote app,
// pyatv) pairs and pair-verifies with us over CRYPTO_PAIRING as if we were the Apple TV; we send
// DEVICE_INFO to the real device and pair-verify with it using stored credentials; then every
// ProtocolMessage is decrypted on one side and re-encrypted on the other, and surfaced for logging.
//
// As in atvproxy, DEVICE_INFO and CRYPTO_PAIRING from the controller belong to its own handshake
// with the proxy (answered here, never forwarded), and the proxy's own DEVICE_INFO and
// pair-verify with the device are not shown to the controller. Controller bytes wait until the
// device link is verified (atvproxy reads the controller only once its device connection is up).
import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

package struct MRPProxySession: Sendable {
    package enum Direction: String, Sendable {
        case toDevice = "controller->device"
        case toController = "device->controller"
        /// Handshake messages that end at the proxy or start there.
        case controllerToProxy = "controller->proxy"
        case proxyToController = "proxy->controller"
        case deviceToProxy = "device->proxy"
        case proxyToDevice = "proxy->device"
    }

    package enum Output: Sendable, Equatable {
        case sendToController([UInt8])
        case sendToDevice([UInt8])
        /// A controller paired with us (remember it for its next pair-verify).
        case paired(HAPPairedController)
        /// The controller pair-verified with us; the controller link is encrypted from now on.
        case controllerVerified(HAPPairedController)
        /// We pair-verified with the device (its DEVICE_INFO).
        case deviceVerified(MRPDeviceInfoMessage)
        /// Pair-setup or pair-verify of the controller failed (the error reply was queued).
        case controllerAuthFailed(ATVError)
        /// A decrypted message: forwarded (`toDevice`/`toController`) or part of a handshake.
        case message(Direction, MRPProtocolMessage)
        /// A message the controller sent before it was verified: not forwarded.
        case dropped(MRPProtocolMessage)
    }

    enum Upstream: Sendable { case idle, awaitingDeviceInfo, verifying(HAPPairVerifyClient), ready }
    enum Auth: Sendable { case none, setup(HAPPairSetupServer), verify(HAPPairVerifyServer) }

    /// Device messages kept while the controller is not verified yet (beyond this, dropped).
    package static let maxPendingToController = 1024

    package let identity: HAPIdentity
    package let pin: String
    package let name: String
    let credentials: HAPCredentials
    var upstream: Upstream = .idle
    var auth: Auth = .none
    var controllerChannel = MRPChannel()
    var deviceChannel = MRPChannel()
    var pendingControllerBytes: [UInt8] = []
    var pendingToController: [MRPProtocolMessage] = []
    var knownControllers: [HAPPairedController] = []
    package private(set) var deviceInfo: MRPDeviceInfoMessage?
    package private(set) var controllerVerified = false
    package var deviceVerified: Bool { if case .ready = upstream { return true } else { return false } }

    /// - Parameters:
    ///   - identity: the proxy's accessory identity (what controllers pair with).
    ///   - name: the name the proxy reports in its DEVICE_INFO (and to the device as client name).
    package init(identity: HAPIdentity, pin: String, credentials: HAPCredentials, name: String) {
        self.identity = identity
        self.pin = pin
        self.credentials = credentials
        self.name = name
    }

    /// Sends DEVICE_INFO to the device (call once, when the device connection is up); pair-verify
    /// follows its reply.
    package mutating func start() throws(ATVError) -> [Output] {
        guard case .idle = upstream else { throw ATVError.invalidState("the MRP proxy session was already started") }
        let client = MRPMessages.ClientInfo(pairingID: String(decoding: credentials.clientID, as: UTF8.self), name: name, osBuild: "18M60")
        var m = MRPMessages.deviceInfo(client)
        m.identifier = UUID().uuidString.uppercased()
        upstream = .awaitingDeviceInfo
        return [.message(.proxyToDevice, m), .sendToDevice(try deviceChannel.encode(m))]
    }

    /// Bytes from the device.
    package mutating func fromDevice(_ bytes: [UInt8]) throws(ATVError) -> [Output] {
        var out: [Output] = []
        for m in try deviceChannel.receive(bytes) {
            switch upstream {
            case .idle, .awaitingDeviceInfo:
                out.append(.message(.deviceToProxy, m))
                guard m.type == .deviceInfo, m.hasMRPdeviceInfoMessage else { continue }
                deviceInfo = m.MRPdeviceInfoMessage
                var v = HAPPairVerifyClient(credentials: credentials)
                let m1 = MRPMessages.cryptoPairing(try v.start())
                upstream = .verifying(v)
                out += [.message(.proxyToDevice, m1), .sendToDevice(try deviceChannel.encode(m1))]
            case .verifying(var v):
                out.append(.message(.deviceToProxy, m))
                guard m.type == .cryptoPairing else { continue }
                switch try v.handle(Array(m.MRPcryptoPairingMessage.pairingData)) {
                case .send(let next):
                    upstream = .verifying(v)
                    let reply = MRPMessages.cryptoPairing(next)
                    out += [.message(.proxyToDevice, reply), .sendToDevice(try deviceChannel.encode(reply))]
                case .verified(let shared):
                    deviceChannel.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared))
                    upstream = .ready
                    out.append(.deviceVerified(deviceInfo ?? MRPDeviceInfoMessage()))
                    let waiting = pendingControllerBytes
                    pendingControllerBytes = []
                    if !waiting.isEmpty { out += try fromController(waiting, controllers: knownControllers) }
                }
            case .ready:
                out.append(.message(.toController, m))
                if controllerVerified {
                    out.append(.sendToController(try controllerChannel.encode(m)))
                } else if pendingToController.count < Self.maxPendingToController {
                    pendingToController.append(m)
                }
            }
        }
        return out
    }

    /// Bytes from the controller; `controllers` are the pairings known now.
    package mutating func fromController(_ bytes: [UInt8], controllers: [HAPPairedController]) throws(ATVError) -> [Output] {
        knownControllers = controllers
        guard case .ready = upstream else {
            guard pendingControllerBytes.count + bytes.count <= MRPFraming.defaultMaxMessageSize else {
                throw ATVError.protocolError("the controller sent too much before the device link was up")
            }
            pendingControllerBytes += bytes
            return []
        }
        var out: [Output] = []
        for m in try controllerChannel.receive(bytes) {
            switch m.type {
            case .deviceInfo:
                out.append(.message(.controllerToProxy, m))
                var reply = ownDeviceInfo()
                if m.hasIdentifier { reply.identifier = m.identifier }
                out += [.message(.proxyToController, reply), .sendToController(try controllerChannel.encode(reply))]
            case .cryptoPairing:
                out.append(.message(.controllerToProxy, m))
                out += try pairing(Array(m.MRPcryptoPairingMessage.pairingData))
            default:
                guard controllerVerified else { out.append(.dropped(m)); continue }
                out += [.message(.toDevice, m), .sendToDevice(try deviceChannel.encode(m))]
            }
        }
        return out
    }

    /// Our DEVICE_INFO for the controller: the device's, under the proxy's name and pairing identity.
    func ownDeviceInfo() -> MRPProtocolMessage {
        var info = deviceInfo ?? MRPDeviceInfoMessage()
        info.uniqueIdentifier = String(decoding: identity.identifier, as: UTF8.self)
        info.name = name
        info.allowsPairing = true
        info.supportsSystemPairing = true
        if !info.hasProtocolVersion { info.protocolVersion = 1 }
        var m = MRPMessages.message(.deviceInfo)
        m.MRPdeviceInfoMessage = info
        return m
    }

    /// CRYPTO_PAIRING from the controller: we are the accessory (PIN pair-setup or pair-verify).
    mutating func pairing(_ tlvBytes: [UInt8]) throws(ATVError) -> [Output] {
        if let tlv = try? TLV8.decode(tlvBytes), tlv.byte(.state) == 1 {
            auth = tlv[.method] != nil
                ? .setup(HAPPairSetupServer(identity: identity, pin: pin))
                : .verify(HAPPairVerifyServer(identity: identity, controllers: knownControllers))
        }
        let reply: HAPAccessoryReply
        switch auth {
        case .setup(var s):
            reply = s.handle(tlvBytes)
            auth = .setup(s)
        case .verify(var v):
            reply = v.handle(tlvBytes)
            auth = .verify(v)
        case .none:
            // Not after an M1: a fresh pair-setup answers with an error item.
            var s = HAPPairSetupServer(identity: identity, pin: pin)
            reply = s.handle(tlvBytes)
        }
        let m = MRPMessages.cryptoPairing(reply.message)
        // The reply goes out under the old keys (plain during the handshake).
        var out: [Output] = [.message(.proxyToController, m), .sendToController(try controllerChannel.encode(m))]
        switch reply.event {
        case .paired(let c):
            knownControllers.removeAll { $0.identifier == c.identifier }
            knownControllers.append(c)
            auth = .none
            out.append(.paired(c))
        case .verified(let c, let shared):
            controllerChannel.enableEncryption(HAPChannel.mrp.keys(sharedSecret: shared, role: .accessory))
            controllerVerified = true
            auth = .none
            out.append(.controllerVerified(c))
            let waiting = pendingToController
            pendingToController = []
            for p in waiting { out.append(.sendToController(try controllerChannel.encode(p))) }
        case .failed(let e):
            auth = .none
            out.append(.controllerAuthFailed(e))
        case .transient, nil:
            break
        }
        return out
    }
}

extension MRPProxySession {
    /// One line for a message: its type and its protobuf text form (inner message included),
    /// cut after `limit` characters (artwork replies can be megabytes).
    package static func describe(_ message: MRPProtocolMessage, limit: Int = 4000) -> String {
        let text = message.textFormatString().split(whereSeparator: \.isNewline)
            .map { $0.trimmingWhitespace() }.joined(separator: " ")
        let head = "\(message.type) {\(text.isEmpty ? "" : " \(text) ")}"
        guard head.count > limit else { return head }
        return String(head.prefix(limit)) + "… (\(head.count - limit) more characters)"
    }
}
