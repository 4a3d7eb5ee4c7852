import ATVAuth
import ATVCore
import ATVHTTP
import Foundation
import Testing
@testable import ATVSimulator

/// The virtual HomePod's pairing and encrypted control connection, driven by a Swift controller
/// (issue 5 test 5): transient pair-setup over plain HTTP, then RTSP inside HAP framing.
@Suite(.serialized) struct HomePodPairingTests {
    @Test func transientPairingThenEncryptedRTSP() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        let client = try await HomePodTestClient.connect(port: pod.port)

        // /info in the clear, as a bplist naming the device and AirPlay 2 features.
        let info = try await client.request("GET", "/info")
        #expect(info.status == 200)
        let plist = try BinaryPlistParser.parse(info.body)
        #expect(plist["model"]?.string == "AudioAccessory5,1")
        let features = UInt64(bitPattern: Int64(plist["features"]?.double ?? 0))
        #expect(features & (1 << 38) != 0 && features & (1 << 48) != 0)

        // Before pairing, session requests are refused.
        let early = try await client.request("SETUP", "rtsp://127.0.0.1/1", body: BinaryPlist.encode(.dict(["timingProtocol": .string("NTP")])))
        #expect(early.status == 470)

        try await client.pairTransient()
        let options = try await client.request("OPTIONS", "*")
        #expect(options.status == 200)
        #expect(options.headers["Public"]?.contains("SETUP") == true)
        let volume = try await client.request("GET_PARAMETER", "rtsp://127.0.0.1/1", headers: [("Content-Type", "text/parameters")],
                                              body: Array("volume\r\n".utf8))
        #expect(volume.status == 200)
        #expect(volume.bodyText.hasPrefix("volume: "))
        await client.close()

        let r = pod.report()
        #expect(r.pairings == [.transient])
        #expect(r.encryptedRequests == 2)
        #expect(r.requests == ["GET /info", "SETUP", "POST /pair-pin-start", "POST /pair-setup", "POST /pair-setup",
                               "enc OPTIONS", "enc GET_PARAMETER"])
        #expect(r.refusedUnauthenticated == 1)
    }

    @Test func tamperedEncryptedFrameClosesTheConnection() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        let client = try await HomePodTestClient.connect(port: pod.port)
        let K = try await client.pairTransient()
        // The first frame the controller sends (counter 0), with one ciphertext bit flipped.
        var encoder = HAPFrameEncoder(key: HAPChannel.airPlayControl.keys(sharedSecret: K).output)
        var frame = try encoder.encode(RTSPRequest(method: "OPTIONS", uri: "*", headers: ["CSeq": "9"]).serialized)
        frame[5] ^= 0x01
        try await client.writeRaw(frame)
        #expect(try await client.waitForClose(timeout: .seconds(5)))
        #expect(!pod.report().requests.contains("enc OPTIONS"))

        // The same frame untampered works on a fresh connection with its own keys.
        let other = try await HomePodTestClient.connect(port: pod.port)
        try await other.pairTransient()
        #expect(try await other.request("OPTIONS", "*").status == 200)
        await other.close()
    }

    @Test func wrongTransientPINFailsAtM4() async throws {
        let pod = try await VirtualHomePod.start()
        defer { Task { await pod.stop() } }
        let client = try await HomePodTestClient.connect(port: pod.port)
        await #expect(throws: ATVError.self) { try await client.pairTransient(pin: "1234") }
        let r = pod.report()
        #expect(r.pairings.isEmpty)
        #expect(r.pairingFailures.count == 1)
        // Still unencrypted: a plain request gets the 470 answer, not a decryption failure.
        #expect(try await client.request("RECORD", "rtsp://127.0.0.1/1").status == 470)
        await client.close()
    }

    @Test func pinPairingThenPairVerify() async throws {
        let pod = try await VirtualHomePod.start(.init(pin: "4321"))
        defer { Task { await pod.stop() } }
        let setup = try await HomePodTestClient.connect(port: pod.port)
        await #expect(throws: ATVError.self) { _ = try await setup.pairPIN("1111") }
        await setup.close()

        let setup2 = try await HomePodTestClient.connect(port: pod.port)
        let credentials = try await setup2.pairPIN("4321")
        await setup2.close()
        #expect(credentials.deviceID == pod.configuration.identity.identifier)
        #expect(pod.pairedControllers.map(\.identifier) == [credentials.clientID])

        let client = try await HomePodTestClient.connect(port: pod.port)
        try await client.pairVerify(credentials)
        #expect(try await client.request("OPTIONS", "*").status == 200)
        await client.close()

        // Unknown credentials fail verification.
        var stranger = credentials
        stranger.clientID = Array("not-paired".utf8)
        let bad = try await HomePodTestClient.connect(port: pod.port)
        await #expect(throws: ATVError.self) { try await bad.pairVerify(stranger) }
        await bad.close()
        #expect(pod.report().pairings == [.pinSetup, .verify])
    }

    @Test func transientErrorModeAnswersWithAnInBandError() async throws {
        let pod = try await VirtualHomePod.start(.init(transientError: true))
        defer { Task { await pod.stop() } }
        let client = try await HomePodTestClient.connect(port: pod.port)
        var setup = HAPPairSetupClient.transient()
        let response = try await client.post("/pair-setup", hkp: 4, try setup.start())
        #expect(response.status == 200)
        let tlv = try TLV8.decode(response.body)
        #expect(tlv.byte(.error) == TLV8.ErrorCode.authentication.rawValue)
        #expect(throws: ATVError.self) { _ = try setup.handle(response.body) }
        await client.close()
    }

    @Test func infoNeedsAnAppleUserAgentWhenRequired() async throws {
        let pod = try await VirtualHomePod.start(.init(requireUserAgent: true))
        defer { Task { await pod.stop() } }
        let client = try await HomePodTestClient.connect(port: pod.port)
        #expect(try await client.request("GET", "/info", headers: [("User-Agent", "curl/8.0")]).status == 403)
        #expect(try await client.request("GET", "/info").status == 200)  // AirPlay/550.10
        await client.close()
        #expect(pod.report().infoRejected == 1)
    }
}
