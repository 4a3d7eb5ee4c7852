import ATVTestSupport
import ATVAuth
import ATVCore
import Testing
@testable import ATVMRP

@Suite struct DataStreamTests {
    /// The data-stream reply header: size 32 ‖ "rply" + 8 zero bytes ‖ 4 zero bytes ‖ seqno u64 BE ‖ padding 0.
    @Test func replyHeaderBytes() {
        let bytes = MRPDataStreamFrame.reply(seqno: 0x1_2345_6789).encoded()
        #expect(bytes == hex("00000020 72706c79 0000000000000000 00000000 0000000123456789 00000000"))
    }

    @Test func syncHeaderBytesAndSize() throws {
        let payload: [UInt8] = [1, 2, 3]
        let frame = MRPDataStreamFrame.sync(command: MRPDataStreamFrame.controllerCommand, seqno: 0x1_0000_0001, payload: payload)
        let bytes = frame.encoded()
        #expect(Array(bytes.prefix(32)) == hex("00000023 73796e63 0000000000000000 636f6d6d 0000000100000001 00000000"))
        #expect(Array(bytes.suffix(3)) == payload)
        var d = MRPDataStreamDecoder()
        d.append(bytes)
        #expect(try d.next() == frame)
        #expect(try d.next() == nil)
    }

    @Test func decoderWaitsForWholeFramesAndRejectsBadSizes() throws {
        let a = MRPDataStreamFrame.sync(command: MRPDataStreamFrame.deviceCommand, seqno: 7, payload: Array(repeating: 9, count: 40))
        let b = MRPDataStreamFrame.reply(seqno: 7)
        let bytes = a.encoded() + b.encoded()
        var d = MRPDataStreamDecoder()
        var got: [MRPDataStreamFrame] = []
        for byte in bytes {
            d.append([byte])
            while let f = try d.next() { got.append(f) }
        }
        #expect(got == [a, b])
        #expect(got[0].isSync && !got[0].isReply && got[1].isReply)
        var small = MRPDataStreamDecoder()
        small.append(hex("0000001f") + [UInt8](repeating: 0, count: 28))
        #expect(throws: ATVError.self) { try small.next() }
        var big = MRPDataStreamDecoder(maxFrameSize: 100)
        big.append(hex("00000065") + [UInt8](repeating: 0, count: 28))
        #expect(throws: ATVError.self) { try big.next() }
    }

    /// The payload is `{"params": {"data": varint(len) ‖ message ‖ …}}`.
    @Test func payloadCarriesPrefixedMessages() throws {
        let m1 = MRPMessages.generic(), m2 = MRPMessages.message(.getKeyboardSession)
        let plist = try MRPDataStreamPayload.encode([m1, m2])
        let parsed = try BinaryPlistParser.parse(plist)
        guard case .data(let data)? = parsed["params"]?["data"] else {
            Issue.record("no params.data in \(parsed)")
            return
        }
        let e1 = try MRPCodec.encode(m1), e2 = try MRPCodec.encode(m2)
        #expect(data == MRPVarint.encode(UInt64(e1.count)) + e1 + MRPVarint.encode(UInt64(e2.count)) + e2)
        #expect(try MRPDataStreamPayload.decode(plist) == [m1, m2])
    }

    /// Quirk: data starting with 0x08 is one message without a length prefix.
    @Test func unprefixedConfigureConnection() throws {
        let m = MRPMessages.message(.configureConnection)
        let raw = try MRPCodec.encode(m)
        #expect(raw.first == 0x08)
        let plist = BinaryPlist.encode(.dict(["params": .dict(["data": .data(raw)])]))
        #expect(try MRPDataStreamPayload.decode(plist) == [m])
        // A plist without params.data, and an empty payload, carry nothing.
        #expect(try MRPDataStreamPayload.decode(BinaryPlist.encode(.dict(["other": .int(1)]))).isEmpty)
        #expect(try MRPDataStreamPayload.decode([]).isEmpty)
        #expect(throws: ATVError.self) { try MRPDataStreamPayload.split([0x20, 1, 2]) }
        #expect(throws: ATVError.self) { try MRPDataStreamPayload.decode([1, 2, 3]) }
    }

    /// Both ends: every "sync" gets a "rply" with its seqno; replies carry no messages.
    @Test func controllerAndDeviceTalk() throws {
        var controller = MRPDataStream(role: .controller, seqno: 0x1_0000_00AA)
        var device = MRPDataStream(role: .device, seqno: 5)
        let m = MRPMessages.generic()
        let wire = try controller.encode(m) + controller.encode(m)
        #expect(Array(wire[16..<20]) == Array("comm".utf8))
        let (got, answer) = try device.receive(wire)
        #expect(got == [m, m])
        #expect(answer == MRPDataStreamFrame.reply(seqno: 0x1_0000_00AA).encoded() + MRPDataStreamFrame.reply(seqno: 0x1_0000_00AA).encoded())
        let (none, nothing) = try controller.receive(answer)
        #expect(none.isEmpty && nothing.isEmpty && controller.repliesReceived == 2)
        let push = try device.encode(MRPMessages.message(.setState))
        #expect(Array(push[16..<20]) == Array("cmnd".utf8))
        #expect(device.seqno == 6)
        let (pushed, reply) = try controller.receive(push)
        #expect(pushed.map(\.type) == [.setState])
        #expect(reply == MRPDataStreamFrame.reply(seqno: 5).encoded())
    }

    /// Whatever the device side accepts is made of messages with a stable encoding, and whatever
    /// it rejects is an input error; the same for the payload codec on its own.
    @Test func fuzzNeverCrashes() {
        let seed = TestSeed.value(default: 0xD57A)
        var rng = SplitMix64(seed: seed)
        var encoder = MRPDataStream(role: .controller, seqno: 1)
        let valid = (try? encoder.encode(MRPMessages.generic())) ?? []
        for i in 0..<3000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = valid
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            } else {
                bytes = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            var s = MRPDataStream(role: .device, maxFrameSize: 4096)
            do {
                let (messages, _) = try s.receive(bytes)
                for m in messages { stable(m, i) }
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            do {
                let parts = try MRPDataStreamPayload.split(bytes)
                #expect(parts.reduce(0) { $0 + $1.count } <= bytes.count, "seed \(seed) case \(i)")
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
            do {
                for m in try MRPDataStreamPayload.decode(bytes) { stable(m, i) }
            } catch { #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)") }
        }
        func stable(_ m: MRPProtocolMessage, _ i: Int) {
            do {
                let once = try MRPCodec.encode(m)
                #expect(try MRPCodec.encode(MRPCodec.decode(once)) == once, "seed \(seed) case \(i)")
            } catch { Issue.record("seed \(seed) case \(i): a decoded message does not re-encode: \(error)") }
        }
    }
}
