import ATVAirPlayCore
@testable import ATVAuth
import ATVCore
import ATVHTTP
import ATVTestSupport
import Foundation
import Synchronization
import Testing

/// Drive a legacy pair-setup and verification over HTTP with our client.
func pairAndVerifyOverHTTP(port: Int, pin: String) async throws -> LegacyPairingResult {
    let http = try await HTTPClientConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(10))
    defer { http.close() }
    let start = try await http.send(LegacyPairSetupClient.pinStartRequest, timeout: .seconds(10))
    #expect(start.status == 200)
    var client = LegacyPairSetupClient(pin: pin)
    var req = try client.start()
    while true {
        let r = try await http.send(req, timeout: .seconds(10))
        switch try client.handle(status: r.status, body: r.body) {
        case .send(let next): req = next
        case .paired(let result):
            var v = LegacyPairVerifyClient(credentials: result.credentials, deviceLTPK: result.deviceLTPK)
            var vreq = try v.start()
            while true {
                let vr = try await http.send(vreq, timeout: .seconds(10))
                switch try v.handle(status: vr.status, body: vr.body) {
                case .send(let n): vreq = n
                case .verified: return result
                }
            }
        }
    }
}

/// The HTTP answer for what our legacy accessory replied.
func accessoryResponse(_ reply: LegacyAccessoryReply) -> HTTPServerResponse {
    var headers = RTSPHeaders()
    if let type = reply.contentType { headers.add("Content-Type", type) }
    return HTTPServerResponse(status: reply.status, headers: headers, bytes: reply.body)
}

@Suite(.serialized) struct LegacyInteropTests {
    /// pyatv's own legacy client pairs with and verifies against our accessory side.
    @Test func pyatvClientPairsWithOurAccessory() async throws {
        let device = Mutex(try LegacyPairingAccessory(pin: "2271"))
        let events = Mutex<[LegacyAccessoryReply.Event]>([])
        let server = try await HTTPServer.start(host: "127.0.0.1") { req in
            let path = req.message.uri
            let reply = device.withLock { $0.handle(path: path, body: req.message.body) }
            if let e = reply.event { events.withLock { $0.append(e) } }
            return accessoryResponse(reply)
        }
        defer { Task { await server.stop() } }
        let peer = try PythonPeer(script: "legacy-pair-client.py", [String(server.port), "2271"])
        defer { peer.stop() }
        let line = try await peer.waitFor("VERIFIED")
        #expect(line == "VERIFIED")
        let credLine = try await peer.waitFor("CREDENTIALS ")
        let parsed = try ATVCredentials(parsing: String(credLine.dropFirst("CREDENTIALS ".count)))
        guard case .legacy(let creds) = parsed else { Issue.record("pyatv printed \(credLine)"); return }
        let ev = events.withLock { $0 }
        #expect(ev.contains(.paired(controllerKey: creds.publicKey)))
        #expect(ev.contains(.verified(controllerKey: creds.publicKey)))
    }

    /// pyatv's client with the wrong PIN is refused (470) and nothing is paired.
    @Test func pyatvClientWithWrongPINIsRefused() async throws {
        let device = Mutex(try LegacyPairingAccessory(pin: "2271"))
        let server = try await HTTPServer.start(host: "127.0.0.1") { req in
            accessoryResponse(device.withLock { $0.handle(path: req.message.uri, body: req.message.body) })
        }
        defer { Task { await server.stop() } }
        let peer = try PythonPeer(script: "legacy-pair-client.py", [String(server.port), "1111"])
        defer { peer.stop() }
        let exit = await peer.child.finish(timeout: 60)
        #expect(!exit.timedOut && exit.status != 0)
        #expect(!peer.stdout.contains("CREDENTIALS"))
        #expect(device.withLock { $0.controllers.isEmpty })
    }

    /// Our client against the Python accessory (srptools + pyatv's AtvSRPContext + cryptography).
    @Test func ourClientPairsWithPythonAccessory() async throws {
        let peer = try PythonPeer(script: "legacy-pair-device.py", ["--pin", "2271"])
        defer { peer.stop() }
        let port = try #require(Int(try await peer.waitFor("LISTENING ").dropFirst(10)))
        let result = try await pairAndVerifyOverHTTP(port: port, pin: "2271")
        #expect(result.deviceLTPK?.count == 32)
        let paired = try await peer.waitFor("PAIRED ")
        #expect(paired == "PAIRED " + Hex.encode(result.credentials.publicKey))
        #expect(try await peer.waitFor("VERIFIED ") == "VERIFIED " + Hex.encode(result.credentials.publicKey))
        // Wrong PIN: a clear pairing error.
        await #expect { try await pairAndVerifyOverHTTP(port: port, pin: "1234") } throws: { e in
            guard case ATVError.pairingFailed(let m) = e else { return false }
            return m.contains("PIN")
        }
    }

    /// pyatv's parse_credentials reads every string we print, to the same type and fields.
    @Test func pyatvParsesOurCredentialStrings() async throws {
        let legacy = ATVCredentials.legacy(RecordedLegacySession.credentials)
        let hap = ATVCredentials.hap(HAPCredentials(deviceLTPK: Array(repeating: 0xE7, count: 32), clientLTSK: Array(repeating: 0x80, count: 32),
                                                    deviceID: Array("5D797FD3-3538-427E-A47B-A32FC6CF3A6A".utf8),
                                                    clientID: Array("4d797fd3-3538-427e-a47b-a32fc6cf3a6a".utf8)))
        let strings = [legacy, hap, .transient, .null].map(\.stringValue)
        let script = """
        import sys
        from pyatv.auth.hap_pairing import parse_credentials
        for s in sys.argv[1:]:
            c = parse_credentials(s)
            print(c.type.name, str(c), c.ltsk.hex(), c.client_id.hex())
        """
        let p = try await run(try PythonPeer.python(), ["-c", script] + strings, timeout: 60)
        #expect(p.status == 0, "\(p.stderr)")
        let lines = p.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        try #require(lines.count == 4)
        #expect(lines[0] == ["Legacy", strings[0], RecordedLegacySession.seed.lowercased(), RecordedLegacySession.clientID.lowercased()])
        #expect(lines[1][0] == "HAP" && lines[1][1] == strings[1])
        #expect(lines[2][0] == "Transient" && lines[2][1] == strings[2])
        #expect(lines[3][0] == "Null" && lines[3][1] == strings[3])
        // And pyatv's two-field legacy form reads back here to the same credentials.
        #expect(try ATVCredentials(parsing: "\(RecordedLegacySession.clientID):\(RecordedLegacySession.seed)") == legacy)
    }
}

/// The identity of the legacy pairing session ATVAuthTests replays byte for byte (pyatv's
/// tests/fake_device/airplay.py: client id 75FBEEC773CFC563, seed 8F06…1493).
enum RecordedLegacySession {
    static let clientID = "75FBEEC773CFC563"
    static let seed = "8F06696F2542D70DF59286C761695C485F815BE3D152849E1361282D46AB1493"
    static var credentials: LegacyCredentials { try! LegacyCredentials(seed: hex(seed), clientID: hex(clientID)) }
}
