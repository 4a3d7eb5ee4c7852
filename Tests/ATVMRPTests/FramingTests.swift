import ATVTestSupport
import ATVCore
import Testing
@testable import ATVMRP

@Suite struct VarintTests {
    @Test func referenceVectors() throws {
        #expect(MRPVarint.encode(8757) == hex("b5 44"))
        #expect(MRPVarint.encode(18757) == hex("c5 92 01"))
        #expect(try MRPVarint.decode(hex("b5 44")) == 8757)
        #expect(try MRPVarint.decode(hex("c5 92 01")) == 18757)
    }

    @Test func loneContinuationByteIsInvalid() throws {
        #expect(throws: ATVError.self) { try MRPVarint.decode([0x80]) }
        // As a stream prefix it is merely incomplete.
        #expect(try MRPVarint.decodePrefix([0x80]) == nil)
    }

    @Test func edgeValuesRoundTrip() throws {
        for v: UInt64 in [0, 1, 127, 128, 16383, 16384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max] {
            let bytes = MRPVarint.encode(v)
            #expect(try MRPVarint.decode(bytes) == v)
        }
        #expect(MRPVarint.encode(0) == [0])
        #expect(MRPVarint.encode(127) == [0x7f])
        #expect(MRPVarint.encode(128) == [0x80, 0x01])
        #expect(MRPVarint.encode(UInt64.max).count == 10)
    }

    @Test func overlongAndTrailingRejected() {
        #expect(throws: ATVError.self) { try MRPVarint.decodePrefix([UInt8](repeating: 0xff, count: 11)) }
        #expect(throws: ATVError.self) { try MRPVarint.decodePrefix([UInt8](repeating: 0xff, count: 9) + [0x02]) }
        #expect(throws: ATVError.self) { try MRPVarint.decode(hex("b5 44 00")) }
    }
}

@Suite struct FrameDecoderTests {
    @Test func decodesMessagesSplitAtEveryByte() throws {
        let a = utf8("hello"), b = [UInt8](repeating: 7, count: 300), c: [UInt8] = []
        let stream = MRPFraming.frame(a) + MRPFraming.frame(b) + MRPFraming.frame(c)
        #expect(Array(MRPFraming.frame(b).prefix(2)) == hex("ac 02"))
        for split in 0...stream.count {
            var d = MRPFrameDecoder()
            var out: [[UInt8]] = []
            d.append(stream[..<split])
            while let m = try d.next() { out.append(m) }
            d.append(stream[split...])
            while let m = try d.next() { out.append(m) }
            #expect(out == [a, b, c])
            #expect(d.bufferedByteCount == 0)
        }
    }

    @Test func byteByByte() throws {
        var rng = SplitMix64(seed: 1)
        let payloads = (0..<20).map { _ in randomBytes(Int.random(in: 0...400, using: &rng), using: &rng) }
        var d = MRPFrameDecoder()
        var out: [[UInt8]] = []
        for byte in payloads.flatMap(MRPFraming.frame) {
            d.append([byte])
            while let m = try d.next() { out.append(m) }
        }
        #expect(out == payloads)
    }

    @Test func sizeLimit() throws {
        var d = MRPFrameDecoder(maxMessageSize: 100)
        d.append(MRPFraming.frame([UInt8](repeating: 1, count: 100)))
        #expect(try d.next()?.count == 100)
        d.append(MRPVarint.encode(101))
        #expect(throws: ATVError.self) { try d.next() }
        // A huge announced length is rejected before any payload arrives.
        var e = MRPFrameDecoder()
        e.append(MRPVarint.encode(UInt64.max))
        #expect(throws: ATVError.self) { try e.next() }
    }

    /// Frames never exceed the limit, the decoder only ever holds bytes it was given, and a
    /// rejected stream is an input error.
    @Test func fuzzGarbageNeverCrashes() {
        let seed = TestSeed.value(default: 0xA7F)
        var rng = SplitMix64(seed: seed)
        var frames = 0, errors = 0
        for _ in 0..<500 {
            var d = MRPFrameDecoder(maxMessageSize: 4096)
            let data = randomBytes(Int.random(in: 0...2000, using: &rng), using: &rng)
            var i = 0, framed = 0
            feeding: while i < data.count {
                let n = Int.random(in: 1...64, using: &rng)
                d.append(data[i..<min(data.count, i + n)])
                i += n
                do {
                    while let m = try d.next() {
                        frames += 1
                        framed += m.count
                        #expect(m.count <= 4096, "seed \(seed)")
                        // A frame's payload and its length prefix re-frame to exactly the bytes consumed.
                        #expect(MRPFraming.frame(m).count == MRPVarint.encode(UInt64(m.count)).count + m.count)
                    }
                    #expect(framed + d.bufferedByteCount <= min(i, data.count), "seed \(seed)")
                } catch {
                    errors += 1
                    #expect(error.isMalformedInput, "seed \(seed): \(error)")
                    break feeding
                }
            }
        }
        #expect(frames > 0 && errors > 0, "seed \(seed): frames \(frames) errors \(errors)")
    }
}
