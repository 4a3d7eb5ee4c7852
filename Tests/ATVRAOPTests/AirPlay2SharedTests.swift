@testable import ATVAirPlayCore
import ATVAuth
import ATVCore
@testable import ATVRAOP
import ATVTestSupport
import NIOCore
import NIOEmbedded
import Testing

@Suite("AirPlay 2 audio cipher and HAP channel handler")
struct AirPlay2SharedTests {
    static let key = [UInt8](0 ..< 32)
    static let header: [UInt8] = [0x80, 0x60, 0x00, 0x07, 0x00, 0x01, 0x02, 0x03, 0xDE, 0xAD, 0xBE, 0xEF]
    static let payload: [UInt8] = (0 ..< 40).map { UInt8(($0 * 7) & 0xFF) }

    /// Vector made by pyatv 0.18's own `Chacha20Cipher8byteNonce` (the third packet, counter 2),
    /// exactly as its AirPlay 2 sender builds a packet.
    static let pyatvPacket = hex("8060000700010203deadbeefa9a4f040fbc9865ff370793d989503dcb4e7d2ae0820d54015"
        + "08976c096ffe2c70feb442807ee24ab23db15ad53002594a6fc3c4cd1128540200000000000000")

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i ..< j], radix: 16)!)
            i = j
        }
        return out
    }

    @Test func sealMatchesPyatv() throws {
        var cipher = try AirPlay2AudioCipher(key: Self.key)
        var last: [UInt8] = []
        for _ in 0 ..< 3 { last = try cipher.seal(rtpHeader: Self.header, payload: Self.payload) }
        #expect(last == Self.pyatvPacket)
        #expect(cipher.counter == 3)
    }

    @Test func openPyatvPacket() throws {
        let plain = try AirPlay2AudioCipher.open(Self.pyatvPacket, key: Self.key)
        #expect(plain == Self.header + Self.payload)
    }

    @Test func tamperedOrWrongKeyFails() throws {
        for index in [0, 5, 12, 30, Self.pyatvPacket.count - 20, Self.pyatvPacket.count - 1] {
            var p = Self.pyatvPacket
            p[index] ^= 0x01
            if index < 4 { // version/seq bytes are not authenticated; everything else is
                #expect(throws: Never.self) { _ = try AirPlay2AudioCipher.open(p, key: Self.key) }
            } else {
                #expect(throws: ATVError.self) { _ = try AirPlay2AudioCipher.open(p, key: Self.key) }
            }
        }
        var wrong = Self.key
        wrong[0] ^= 1
        #expect(throws: ATVError.self) { _ = try AirPlay2AudioCipher.open(Self.pyatvPacket, key: wrong) }
    }

    @Test func garbageNeverTraps() {
        // Random packets never authenticate: every one is refused with an input error.
        let seed = TestSeed.value(default: 0xA2C1)
        var rng = SplitMix64(seed: seed)
        for i in 0 ..< 2000 {
            let junk = randomBytes(Int.random(in: 0 ..< 80, using: &rng), using: &rng)
            do {
                _ = try AirPlay2AudioCipher.open(junk, key: Self.key)
                Issue.record("seed \(seed) case \(i): a random packet opened")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
        }
        #expect(throws: ATVError.self) { _ = try AirPlay2AudioCipher.open([], key: [1, 2]) }
    }

    /// Two channels joined by hand: plaintext until enabled, then sealed both ways, in ≤1024-byte blocks.
    @Test func handlerEncryptsAfterEnable() throws {
        let a = EmbeddedChannel(handler: HAPEncryptionHandler())
        let b = EmbeddedChannel(handler: HAPEncryptionHandler())
        defer { _ = try? a.finish(); _ = try? b.finish() }

        func pass(_ from: EmbeddedChannel, _ to: EmbeddedChannel) throws -> [UInt8] {
            var wire: [UInt8] = []
            while var buf = try from.readOutbound(as: ByteBuffer.self) { wire += buf.readBytes(length: buf.readableBytes)! }
            try to.writeInbound(to.allocator.buffer(bytes: wire))
            var got: [UInt8] = []
            while var buf = try to.readInbound(as: ByteBuffer.self) { got += buf.readBytes(length: buf.readableBytes)! }
            return got
        }

        let hello = Array("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8)
        try a.writeOutbound(a.allocator.buffer(bytes: hello))
        #expect(try pass(a, b) == hello)

        let keys = ChannelKeys(output: [UInt8](repeating: 1, count: 32), input: [UInt8](repeating: 2, count: 32))
        try a.enableHAPEncryption(keys).wait()
        try b.enableHAPEncryption(keys.swapped).wait()

        let big = (0 ..< 3000).map { UInt8($0 & 0xFF) }
        try a.writeOutbound(a.allocator.buffer(bytes: big))
        var wire: [UInt8] = []
        while var buf = try a.readOutbound(as: ByteBuffer.self) { wire += buf.readBytes(length: buf.readableBytes)! }
        #expect(wire.count == 3000 + 3 * 18) // three blocks: 1024 + 1024 + 952, each len(2) + tag(16)
        #expect(Array(wire[0 ..< 2]) == [0x00, 0x04])
        // Deliver in odd-sized pieces: blocks are reassembled.
        var got: [UInt8] = []
        var i = 0
        while i < wire.count {
            let n = min(333, wire.count - i)
            try b.writeInbound(b.allocator.buffer(bytes: wire[i ..< i + n]))
            while var buf = try b.readInbound(as: ByteBuffer.self) { got += buf.readBytes(length: buf.readableBytes)! }
            i += n
        }
        #expect(got == big)

        try b.writeOutbound(b.allocator.buffer(bytes: hello))
        #expect(try pass(b, a) == hello)
    }

    @Test func handlerClosesOnTamperedFrame() throws {
        let a = EmbeddedChannel(handler: HAPEncryptionHandler())
        let b = EmbeddedChannel(handler: HAPEncryptionHandler())
        let keys = ChannelKeys(output: [UInt8](repeating: 3, count: 32), input: [UInt8](repeating: 4, count: 32))
        try a.enableHAPEncryption(keys).wait()
        try b.enableHAPEncryption(keys.swapped).wait()
        try a.writeOutbound(a.allocator.buffer(bytes: Array("hello".utf8)))
        var buf = try #require(try a.readOutbound(as: ByteBuffer.self))
        var wire = buf.readBytes(length: buf.readableBytes)!
        wire[4] ^= 0x80
        #expect(throws: ATVError.self) { try b.writeInbound(b.allocator.buffer(bytes: wire)) }
        #expect(!b.isActive)
        _ = try? a.finish()
    }
}
