@testable import ATVAuth
import Crypto

// HAP pair-setup / pair-verify (client and accessory sides) and legacy AirPlay pairing, fed
// arbitrary messages. Every secret is fixed so a run is deterministic: the seeds are recorded
// exchanges that, replayed, take each state machine all the way to success.

private let accessory = try! HAPIdentity(identifier: "fuzz-accessory", seed: [UInt8](repeating: 0xAA, count: 32))
private let controller = try! HAPIdentity(identifier: "fuzz-controller", seed: [UInt8](repeating: 0x55, count: 32))
private let clientEphemeral = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 0x11, count: 32))
private let accessoryEphemeral = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 0x22, count: 32))

private func setupClient(transient: Bool) -> HAPPairSetupClient {
    HAPPairSetupClient(pin: transient ? "3939" : "1111", transient: transient, identity: controller, m5Extras: [],
                       srpSecret: [UInt8](repeating: 1, count: 32))
}
private func setupServer() -> HAPPairSetupServer {
    HAPPairSetupServer(identity: accessory, pin: "1111", srpSalt: [UInt8](repeating: 3, count: 16),
                       srpSecret: [UInt8](repeating: 2, count: 32))
}
private func verifyClient() -> HAPPairVerifyClient {
    HAPPairVerifyClient(credentials: HAPCredentials(deviceLTPK: accessory.publicKey, clientLTSK: controller.seed,
                                                    deviceID: accessory.identifier, clientID: controller.identifier),
                        ephemeral: clientEphemeral)
}
private func verifyServer() -> HAPPairVerifyServer {
    HAPPairVerifyServer(identity: accessory, controllers: [HAPPairedController(identifier: controller.identifier,
                                                                                publicKey: controller.publicKey)],
                        ephemeral: accessoryEphemeral)
}

/// Input: one role byte (pair-setup client with PIN, transient client, pair-verify client,
/// pair-setup accessory, pair-verify accessory), then length-prefixed messages (see `messages`).
let hapTarget = FuzzTarget(name: "hap-pairing", run: { data in
    guard let role = data.first else { return }
    let input = messages(Array(data.dropFirst()), max: 4)
    switch role % 5 {
    case 0, 1:
        var c = setupClient(transient: role % 5 == 1)
        guard (try? c.start()) != nil else { return }
        for m in input { guard case .send = try? c.handle(m) else { return } }
    case 2:
        var c = verifyClient()
        guard (try? c.start()) != nil else { return }
        for m in input { guard case .send = try? c.handle(m) else { return } }
    case 3:
        var s = setupServer()
        for m in input { if case .failed = s.handle(m).event { return } }
    default:
        var s = verifyServer()
        for m in input { if case .failed = s.handle(m).event { return } }
    }
}, seeds: {
    let pin = recordSetup(transient: false), transient = recordSetup(transient: true), verify = recordVerify()
    return [[0] + framed(pin.toClient), [1] + framed(transient.toClient), [2] + framed(verify.toClient),
            [3] + framed(pin.toAccessory), [3] + framed(transient.toAccessory), [4] + framed(verify.toAccessory)]
})

private func recordSetup(transient: Bool) -> (toAccessory: [[UInt8]], toClient: [[UInt8]]) {
    var c = setupClient(transient: transient)
    var s = setupServer()
    return record(start: { try! c.start() }, serve: { s.handle($0).message }, answer: { reply in
        if case .send(let next)? = try? c.handle(reply) { return next }
        return nil
    })
}

private func recordVerify() -> (toAccessory: [[UInt8]], toClient: [[UInt8]]) {
    var c = verifyClient()
    var s = verifyServer()
    return record(start: { try! c.start() }, serve: { s.handle($0).message }, answer: { reply in
        if case .send(let next)? = try? c.handle(reply) { return next }
        return nil
    })
}

/// Plays a client against an accessory until the client has nothing more to send.
private func record(start: () -> [UInt8], serve: ([UInt8]) -> [UInt8],
                    answer: ([UInt8]) -> [UInt8]?) -> (toAccessory: [[UInt8]], toClient: [[UInt8]]) {
    var toAccessory = [start()], toClient: [[UInt8]] = []
    while let last = toAccessory.last {
        let reply = serve(last)
        toClient.append(reply)
        guard let next = answer(reply) else { break }
        toAccessory.append(next)
    }
    return (toAccessory, toClient)
}

// MARK: Legacy AirPlay pairing (pair-pin-start / pair-setup-pin / pair-verify)

private let legacyCredentials = try! LegacyCredentials(seed: [UInt8](repeating: 0x44, count: 32),
                                                       clientID: [1, 2, 3, 4, 5, 6, 7, 8])
private let legacyPaths = ["/pair-pin-start", "/pair-setup-pin", "/pair-verify", "/other"]

/// Input: a role byte (setup client, verify client, accessory), then length-prefixed messages.
/// Client sides: each message is a 200 answer's body; the accessory: first byte picks the path.
let legacyPairingTarget = FuzzTarget(name: "legacy-pairing", run: { data in
    guard let role = data.first else { return }
    let input = messages(Array(data.dropFirst()), max: 4)
    switch role % 3 {
    case 0:
        var c = LegacyPairSetupClient(pin: "1111", credentials: legacyCredentials)
        guard (try? c.start()) != nil else { return }
        for m in input { guard case .send = try? c.handle(status: 200, body: m) else { return } }
    case 1:
        var c = LegacyPairVerifyClient(credentials: legacyCredentials, deviceLTPK: accessory.publicKey)
        guard (try? c.start()) != nil else { return }
        for m in input { guard case .send = try? c.handle(status: 200, body: m) else { return } }
    default:
        var a = try! LegacyPairingAccessory(seed: accessory.seed, pin: "1111", controllers: [legacyCredentials.publicKey])
        for m in input {
            let path = legacyPaths[Int(m.first ?? 0) % legacyPaths.count]
            _ = a.handle(path: path, body: Array(m.dropFirst()))
        }
    }
}, seeds: {
    var a = try! LegacyPairingAccessory(seed: accessory.seed, pin: "1111", controllers: [])
    var c = LegacyPairSetupClient(pin: "1111", credentials: legacyCredentials)
    var toAccessory: [[UInt8]] = [[0]], toClient: [[UInt8]] = []
    _ = a.handle(path: "/pair-pin-start", body: [])
    var request = try! c.start()
    while true {
        toAccessory.append([1] + request.body)
        let reply = a.handle(path: request.path, body: request.body)
        toClient.append(reply.body)
        guard reply.status == 200, case .send(let next) = try? c.handle(status: reply.status, body: reply.body) else { break }
        request = next
    }
    var v = LegacyPairVerifyClient(credentials: legacyCredentials, deviceLTPK: a.publicKey)
    var verifyToAccessory: [[UInt8]] = [], verifyToClient: [[UInt8]] = []
    request = try! v.start()
    while true {
        verifyToAccessory.append([2] + request.body)
        let reply = a.handle(path: request.path, body: request.body)
        verifyToClient.append(reply.body)
        guard reply.status == 200, case .send(let next) = try? v.handle(status: reply.status, body: reply.body) else { break }
        request = next
    }
    return [[0] + framed(toClient), [1] + framed(verifyToClient), [2] + framed(toAccessory),
            [2] + framed(verifyToAccessory)]
})
