import ATVTestSupport
import Testing
@testable import ATVAuth
import ATVCore

/// Our controller against pyatv 0.18's own server-side HAP code (scripts/peers/hap-accessory.py).
@Suite(.serialized) struct PyatvInteropTests {
    static let serverID = Array("5D797FD3-3538-427E-A47B-A32FC6CF3A6A".utf8)

    func pairSetup(_ conn: EnvelopeConnection, _ client: inout HAPPairSetupClient) async throws -> HAPPairSetupClient.Output {
        try conn.send(kind: 1, try client.start())
        while true {
            let (kind, tlv) = try await conn.receive()
            #expect(kind == 1)
            let out = try client.handle(tlv)
            guard case .send(let m) = out else { return out }
            try conn.send(kind: 1, m)
        }
    }

    func pairVerify(_ conn: EnvelopeConnection, _ creds: HAPCredentials) async throws -> [UInt8] {
        var v = HAPPairVerifyClient(credentials: creds)
        try conn.send(kind: 2, try v.start())
        while true {
            let (kind, tlv) = try await conn.receive()
            #expect(kind == 2)
            switch try v.handle(tlv) {
            case .send(let m): try conn.send(kind: 2, m)
            case .verified(let shared): return shared
            }
        }
    }

    /// HAP-framed round trips on the AirPlay control keys; pyatv's HAPSession answers.
    func hapExchange(_ conn: EnvelopeConnection, secret: [UInt8], rounds: Int = 2) async throws {
        var session = HAPSession(keys: HAPChannel.airPlayControl.keys(sharedSecret: secret))
        for round in 0 ..< rounds {
            let msg = Array("round \(round) from swift: ".utf8) + (0 ..< 3000).map { UInt8(($0 * 7 + round) & 0xFF) }
            try conn.send(kind: 4, try session.encrypt(msg))
            let (kind, wire) = try await conn.receive()
            #expect(kind == 4)
            // Feed the reply in two uneven parts to exercise the incremental decoder.
            var plain = try session.decrypt(Array(wire.prefix(700)))
            plain += try session.decrypt(Array(wire.dropFirst(700)))
            #expect(plain == Array("pyatv got: ".utf8) + msg + [UInt8](repeating: UInt8(ascii: "z"), count: 2000))
        }
    }

    @Test func pinPairSetupThenPairVerifyThenEncryptedFramesBothWays() async throws {
        let peer = try await PyatvAccessory()
        defer { peer.stop() }

        // 1. Pair-setup with the PIN of pyatv's fake device.
        var client = HAPPairSetupClient(pin: "1111")
        let creds: HAPCredentials
        do {
            let conn = try EnvelopeConnection(port: peer.port)
            guard case .paired(let c) = try await pairSetup(conn, &client) else { Issue.record("no credentials"); return }
            creds = c
        }
        #expect(creds.deviceLTPK == hex("e734ea6c2b6257de72355e472aa05a4c487e6b463c029ed306df2f01b5636b58"))
        #expect(creds.deviceID == Self.serverID)
        let stored = creds.stringValue  // what the lead's storage would keep

        // 2. New connection: pair-verify from the stored string, then Companion frames with pyatv's
        //    Chacha20Cipher on the other end, then HAP frames with pyatv's HAPSession.
        let conn = try EnvelopeConnection(port: peer.port)
        let shared = try await pairVerify(conn, try HAPCredentials(parsing: stored))
        let keys = HAPChannel.companion.keys(sharedSecret: shared)
        var enc = CompanionFrameEncoder(key: keys.output)
        var dec = CompanionFrameDecoder(key: keys.input)
        let big = [UInt8](repeating: 0xA5, count: 5000)
        for round in 0 ..< 2 {
            let hello = Array("hello \(round) from swift-atv".utf8)
            try conn.send(kind: 3, try enc.encode(CompanionFrame(type: 8, payload: hello)) + (try enc.encode(CompanionFrame(type: 8, payload: big))))
            let (kind, wire) = try await conn.receive()
            #expect(kind == 3)
            let frames = try dec.decode(wire)
            #expect(frames == [CompanionFrame(type: 8, payload: Array("pyatv got: ".utf8) + hello),
                               CompanionFrame(type: 8, payload: Array("pyatv got: ".utf8) + big)])
        }
        try await hapExchange(conn, secret: shared)
    }

    @Test func transientPairSetupKeysMatchPyatv() async throws {
        // pyatv's fake server ignores the transient flag and always uses PIN 1111; our client takes
        // the PIN as a parameter (3939 by default), so it can run M1–M4 against it and both sides
        // derive the control-channel keys from K.
        let peer = try await PyatvAccessory()
        defer { peer.stop() }
        let conn = try EnvelopeConnection(port: peer.port)
        var client = HAPPairSetupClient.transient(pin: "1111")
        guard case .transient(let k) = try await pairSetup(conn, &client) else { Issue.record("not transient"); return }
        #expect(k.count == 64)
        try await hapExchange(conn, secret: k)
    }

    @Test func wrongPINIsRejectedByPyatvAndReportedClearly() async throws {
        let peer = try await PyatvAccessory()
        defer { peer.stop() }
        let conn = try EnvelopeConnection(port: peer.port)
        var client = HAPPairSetupClient(pin: "4321")
        await #expect(throws: ATVError.authenticationFailed("pair-setup M4: the device answered authentication error (wrong PIN or bad proof)")) {
            _ = try await pairSetup(conn, &client)
        }
    }

    @Test func pairVerifyWithWrongStoredKeyRejectsPyatvsSignature() async throws {
        let peer = try await PyatvAccessory()
        defer { peer.stop() }
        // pyatv's ready-made CLIENT_CREDENTIALS, with the device key replaced by another one.
        var creds = try HAPCredentials(parsing:
            "E734EA6C2B6257DE72355E472AA05A4C487E6B463C029ED306DF2F01B5636B58:"
            + "80FD8265B0748DA90BC5C5294DABE394D3D47199994AE96AC73EE45C783537B1:"
            + "35443739374644332D333533382D343237452D413437422D413332464336434633413641:"
            + "34443739374644332D333533382D343237452D413437422D413332464336434633413641")
        creds.deviceLTPK = HAPIdentity(identifier: "impostor").publicKey
        let conn = try EnvelopeConnection(port: peer.port)
        await #expect(throws: ATVError.authenticationFailed("pair-verify M2: the device's Ed25519 signature is invalid")) {
            _ = try await pairVerify(conn, creds)
        }
    }
}
