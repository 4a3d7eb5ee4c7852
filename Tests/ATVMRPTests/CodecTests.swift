import ATVTestSupport
import ATVCore
import Foundation
import SwiftProtobuf
import Testing
@testable import ATVMRP

@Suite struct CodecTests {
    @Test func decodesHandBuiltSetState() throws {
        let m = try MRPCodec.decode(handBuiltSetState)
        #expect(m.type == .setState)
        #expect(m.hasMRPsetStateMessage)
        let s = m.MRPsetStateMessage
        #expect(s.playbackState == .playing)
        #expect(s.playerPath.client.bundleIdentifier == "com.apple.TVMusic")
        #expect(s.playerPath.player.identifier == "MediaRemote-DefaultPlayer")
        #expect(s.playbackQueue.location == 0)
        #expect(s.playbackQueue.contentItems.count == 1)
        let item = s.playbackQueue.contentItems[0]
        #expect(item.identifier == "id-1")
        #expect(item.metadata.title == "Title")
        #expect(item.metadata.albumName == "Album")
        #expect(item.metadata.trackArtistName == "Artist")
        #expect(item.metadata.duration == 300)
        #expect(item.metadata.elapsedTime == 10)
        #expect(item.metadata.playbackRate == 1)
        #expect(item.metadata.mediaType == .audio)
        #expect(!item.metadata.hasGenre)
        // Field-number order on the wire, so our encoder reproduces the exact bytes.
        #expect(try MRPCodec.encode(m) == handBuiltSetState)
    }

    @Test func withoutExtensionMapTheInnerMessageIsLost() throws {
        // The pitfall the codec exists for: a plain decode puts extension 9 into unknown fields.
        let plain = try MRPProtocolMessage(serializedBytes: handBuiltSetState)
        #expect(plain.type == .setState)
        #expect(!plain.hasMRPsetStateMessage)
        #expect(try MRPCodec.decode(handBuiltSetState).hasMRPsetStateMessage)
    }

    @Test func deviceInfoRoundTripsFramed() throws {
        var info = MRPDeviceInfoMessage()
        info.uniqueIdentifier = "4D797FD3-3538-427E-A47B-A32FC6CF3A6A"
        info.name = "swift-atv"
        info.localizedModelName = "iPhone"
        info.protocolVersion = 1
        info.lastSupportedMessageType = 108
        info.deviceClass = .iphone
        info.logicalDeviceCount = 1
        var grouped = MRPDeviceInfoMessage()
        grouped.name = "Kitchen"
        grouped.deviceUid = "UID-2"
        info.groupedDevices = [grouped]
        var m = MRPProtocolMessage()
        m.type = .deviceInfo
        m.identifier = "ABC"
        m.uniqueIdentifier = "DEF"
        m.MRPdeviceInfoMessage = info

        let framed = try MRPCodec.encodeFramed(m)
        var d = MRPFrameDecoder()
        d.append(framed)
        let back = try #require(try d.nextMessage())
        #expect(back == m)
        #expect(back.MRPdeviceInfoMessage.groupedDevices.first?.deviceUid == "UID-2")
        #expect(try d.nextMessage() == nil)
        // type = 1 (15), identifier = 2 "ABC" at the start of the message.
        #expect(Array(framed.dropFirst(1).prefix(7)) == hex("08 0f 12 03") + utf8("ABC"))
    }

    @Test func extensionFieldNumbersOnTheWire() throws {
        // Each inner message lands on the extension number from the reference table.
        func firstTag(_ fill: (inout MRPProtocolMessage) -> Void) throws -> [UInt8] {
            var m = MRPProtocolMessage()
            fill(&m)
            return Array(try MRPCodec.encode(m).prefix(2))
        }
        #expect(try firstTag { $0.MRPsendCommandMessage = .init() } == hex("32 00"))          // 6
        #expect(try firstTag { $0.MRPsetStateMessage = .init() } == hex("4a 00"))             // 9
        #expect(try firstTag { $0.MRPsendHideventMessage = .init() } == hex("6a 00"))         // 13
        #expect(try firstTag { $0.MRPdeviceInfoMessage = .init() } == hex("a2 01"))           // 20
        #expect(try firstTag { $0.MRPcryptoPairingMessage = .init() } == hex("ba 02"))        // 39
        #expect(try firstTag { $0.MRPsetNowPlayingClientMessage = .init() } == hex("92 03"))  // 50
        #expect(try firstTag { $0.MRPupdateContentItemMessage = .init() } == hex("e2 03"))    // 60
        var m = MRPProtocolMessage()
        m.uniqueIdentifier = "X"
        #expect(try MRPCodec.encode(m) == hex("aa 05 01 58"))                                 // 85
    }

    /// Every input either decodes to a message whose encoding is stable (encode → decode → encode
    /// gives the same bytes, and the decoded message equals the first) or fails with an input error.
    @Test func garbageIsAnErrorNotACrash() throws {
        let seed = TestSeed.value(default: 42)
        var rng = SplitMix64(seed: seed)
        var ok = 0, failed = 0
        func check(_ bytes: [UInt8], _ i: Int) {
            do {
                let m = try MRPCodec.decode(bytes)
                let once = try MRPCodec.encode(m)
                let again = try MRPCodec.decode(once)
                #expect(again == m, "seed \(seed) case \(i): \(hexString(bytes))")
                #expect(try MRPCodec.encode(again) == once, "seed \(seed) case \(i): \(hexString(bytes))")
                ok += 1
            } catch {
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
                failed += 1
            }
        }
        for i in 0..<2000 { check(randomBytes(Int.random(in: 0...200, using: &rng), using: &rng), i) }
        // Mutations of a valid message, too.
        for i in 2000..<4000 {
            var bytes = handBuiltSetState
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes.removeLast(Int.random(in: 1...20, using: &rng)) }
            check(bytes, i)
        }
        #expect(ok > 0, "seed \(seed): nothing decoded")
        #expect(failed > 0, "seed \(seed): nothing rejected")
        // The valid message itself re-encodes byte for byte.
        #expect(try MRPCodec.encode(MRPCodec.decode(handBuiltSetState)) == handBuiltSetState)
    }
}
