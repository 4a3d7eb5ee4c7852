// One proxied Companion connection, sans-I/O (atvproxy's companion mode):
// a controller (the Remote app, pyatv) pairs and pair-verifies with us as an accessory; we
// pair-verify with the real device using stored credentials; then every frame is decrypted on one
// side and re-encrypted on the other, and surfaced to the caller for logging.
import ATVAuth
import ATVCore

package struct CompanionProxySession: Sendable {
    package enum Direction: String, Sendable { case toDevice = "controller->device", toController = "device->controller" }

    package enum Output: Sendable, Equatable {
        case sendToController([UInt8])
        case sendToDevice([UInt8])
        /// A controller paired with us (remember it for its next pair-verify).
        case paired(HAPPairedController)
        /// The controller pair-verified with us.
        case controllerVerified(HAPPairedController)
        /// We pair-verified with the device.
        case deviceVerified
        /// Pair-setup or pair-verify of the controller failed (the error reply was queued).
        case controllerAuthFailed(ATVError)
        /// A decrypted frame that was (or will be, once both sides are verified) forwarded.
        case forwarded(Direction, CompanionFrame)
    }

    let identity: HAPIdentity
    let pin: String
    let credentials: HAPCredentials
    var setup: HAPPairSetupServer?
    var verify: HAPPairVerifyServer?
    var upstreamVerify: HAPPairVerifyClient
    var controllerEncoder = CompanionFrameEncoder(key: nil)
    var controllerDecoder = CompanionFrameDecoder(key: nil)
    var deviceEncoder = CompanionFrameEncoder(key: nil)
    var deviceDecoder = CompanionFrameDecoder(key: nil)
    package private(set) var controllerEncrypted = false
    package private(set) var deviceEncrypted = false
    var pendingToDevice: [CompanionFrame] = []
    var pendingToController: [CompanionFrame] = []

    package init(identity: HAPIdentity, pin: String, credentials: HAPCredentials) {
        self.identity = identity
        self.pin = pin
        self.credentials = credentials
        upstreamVerify = HAPPairVerifyClient(credentials: credentials)
    }

    /// Starts pair-verify with the device (call once, when the device connection is up).
    package mutating func start() throws(ATVError) -> [Output] {
        let m1 = try upstreamVerify.start()
        return [.sendToDevice(try deviceEncoder.encode(CompanionFrame(type: CompanionFrameType.pairVerifyStart.rawValue,
                                                                      payload: CompanionAuth.pairVerifyPayload(m1, first: true))))]
    }

    /// Bytes from the controller; `controllers` are the pairings known now.
    package mutating func fromController(_ bytes: [UInt8], controllers: [HAPPairedController]) throws(ATVError) -> [Output] {
        var out: [Output] = []
        for frame in try controllerDecoder.decode(bytes) {
            let type = CompanionFrameType(rawValue: frame.type)
            switch type {
            case .pairSetupStart?, .pairSetupNext?:
                if type == .pairSetupStart || setup == nil { setup = HAPPairSetupServer(identity: identity, pin: pin) }
                let tlv: [UInt8]
                do { tlv = try CompanionAuth.tlv(from: frame.payload) } catch { out.append(.controllerAuthFailed(error)); continue }
                guard var s = setup else { continue }
                let reply = s.handle(tlv)
                setup = s
                out.append(.sendToController(try controllerEncoder.encode(CompanionFrame(type: CompanionFrameType.pairSetupNext.rawValue,
                                                                                         payload: CompanionAuth.replyPayload(reply.message)))))
                switch reply.event {
                case .paired(let c): out.append(.paired(c)); setup = nil
                case .failed(let e): out.append(.controllerAuthFailed(e)); setup = nil
                default: break
                }
            case .pairVerifyStart?, .pairVerifyNext?:
                if type == .pairVerifyStart || verify == nil { verify = HAPPairVerifyServer(identity: identity, controllers: controllers) }
                let tlv: [UInt8]
                do { tlv = try CompanionAuth.tlv(from: frame.payload) } catch { out.append(.controllerAuthFailed(error)); continue }
                guard var v = verify else { continue }
                let reply = v.handle(tlv)
                verify = v
                out.append(.sendToController(try controllerEncoder.encode(CompanionFrame(type: CompanionFrameType.pairVerifyNext.rawValue,
                                                                                         payload: CompanionAuth.replyPayload(reply.message)))))
                switch reply.event {
                case .verified(let c, let shared):
                    let keys = HAPChannel.companion.keys(sharedSecret: shared, role: .accessory)
                    controllerEncoder.enableEncryption(key: keys.output)
                    controllerDecoder.enableEncryption(key: keys.input)
                    controllerEncrypted = true
                    verify = nil
                    out.append(.controllerVerified(c))
                    out += try flushToController()
                case .failed(let e): out.append(.controllerAuthFailed(e)); verify = nil
                default: break
                }
            default:
                // Anything else is only accepted on a verified channel, and forwarded.
                guard controllerEncrypted else { continue }
                out.append(.forwarded(.toDevice, frame))
                if deviceEncrypted {
                    out.append(.sendToDevice(try deviceEncoder.encode(frame)))
                } else {
                    pendingToDevice.append(frame)
                }
            }
        }
        return out
    }

    /// Bytes from the device.
    package mutating func fromDevice(_ bytes: [UInt8]) throws(ATVError) -> [Output] {
        var out: [Output] = []
        for frame in try deviceDecoder.decode(bytes) {
            let type = CompanionFrameType(rawValue: frame.type)
            if !deviceEncrypted {
                guard type == .pairVerifyNext else { continue }
                let tlv = try CompanionAuth.tlv(from: frame.payload)
                switch try upstreamVerify.handle(tlv) {
                case .send(let m3):
                    out.append(.sendToDevice(try deviceEncoder.encode(CompanionFrame(type: CompanionFrameType.pairVerifyNext.rawValue,
                                                                                     payload: CompanionAuth.pairVerifyPayload(m3, first: false)))))
                case .verified(let shared):
                    let keys = HAPChannel.companion.keys(sharedSecret: shared)
                    deviceEncoder.enableEncryption(key: keys.output)
                    deviceDecoder.enableEncryption(key: keys.input)
                    deviceEncrypted = true
                    out.append(.deviceVerified)
                    let pending = pendingToDevice
                    pendingToDevice = []
                    for f in pending { out.append(.sendToDevice(try deviceEncoder.encode(f))) }
                }
                continue
            }
            out.append(.forwarded(.toController, frame))
            if controllerEncrypted {
                out.append(.sendToController(try controllerEncoder.encode(frame)))
            } else {
                pendingToController.append(frame)
            }
        }
        return out
    }

    mutating func flushToController() throws(ATVError) -> [Output] {
        let pending = pendingToController
        pendingToController = []
        return try pending.map { f throws(ATVError) in .sendToController(try controllerEncoder.encode(f)) }
    }
}
