import ATVTestSupport
import ATVAuth
import ATVCore
import Testing
@testable import ATVMRP

@Suite struct ChannelTests {
    private let keys = HAPChannel.mrp.keys(sharedSecret: [UInt8](repeating: 0x11, count: 32))

    @Test func plainRoundTrip() throws {
        var a = MRPChannel(), b = MRPChannel()
        let m = MRPMessages.deviceInfo(.init(pairingID: "P", name: "n", osBuild: "b"))
        let bytes = try a.encode(m) + a.encode(MRPMessages.generic())
        #expect(try MRPVarint.decodePrefix(bytes)?.value == UInt64(try MRPCodec.encode(m).count))
        var got: [MRPProtocolMessage] = []
        for byte in bytes { got += try b.receive([byte]) }
        #expect(got.count == 2 && got[0] == m && got[1].type == .generic)
    }

    @Test func encryptedRoundTripBothWays() throws {
        var client = MRPChannel(), device = MRPChannel()
        client.enableEncryption(keys)
        device.enableEncryption(keys.swapped)
        #expect(client.isEncrypted)
        let m = MRPHID.event(.select, down: true)
        let wire = try client.encode(m)
        let plainLength = try MRPCodec.encode(m).count
        // varint(length incl. 16-byte tag) ‖ ciphertext ‖ tag; the plaintext does not appear.
        #expect(try MRPVarint.decodePrefix(wire)?.value == UInt64(plainLength + 16))
        #expect(!wire.containsSubsequence(MRPHID.eventData(usagePage: 1, usage: 0x89, down: true)))
        #expect(try device.receive(wire) == [m])
        // Counters advance per message in each direction.
        let second = try client.encode(m)
        #expect(second != wire)
        #expect(try device.receive(second) == [m])
        let back = MRPMessages.generic()
        #expect(try client.receive(try device.encode(back)) == [back])
    }

    @Test func tamperedOrUnencryptedInputFails() throws {
        var client = MRPChannel(), device = MRPChannel()
        client.enableEncryption(keys)
        device.enableEncryption(keys.swapped)
        var wire = try client.encode(MRPMessages.generic())
        wire[wire.count - 1] ^= 1
        #expect(throws: ATVError.self) { try device.receive(wire) }

        var plain = MRPChannel(), enc = MRPChannel()
        enc.enableEncryption(keys.swapped)
        #expect(throws: ATVError.self) { try enc.receive(try plain.encode(MRPMessages.generic())) }
    }

    /// Random bytes never authenticate: an encrypted channel yields no message from them (it waits
    /// for more bytes or fails with an input error). A plain channel yields only messages whose
    /// re-encoding is stable, and a rejected frame is an input error.
    @Test func fuzzEncryptedReceiverNeverCrashes() {
        let seed = TestSeed.value(default: 9)
        var rng = SplitMix64(seed: seed)
        var rejected = 0
        for i in 0..<300 {
            var ch = MRPChannel(maxMessageSize: 1024)
            let encrypted = Bool.random(using: &rng)
            if encrypted { ch.enableEncryption(keys) }
            let bytes = randomBytes(Int.random(in: 0...600, using: &rng), using: &rng)
            do {
                let messages = try ch.receive(bytes)
                if encrypted { #expect(messages.isEmpty, "seed \(seed) case \(i): random bytes authenticated") }
                for m in messages {
                    let once = try MRPCodec.encode(m)
                    #expect(try MRPCodec.encode(MRPCodec.decode(once)) == once, "seed \(seed) case \(i)")
                }
                #expect(ch.bufferedByteCount <= bytes.count, "seed \(seed) case \(i)")
            } catch {
                rejected += 1
                #expect(error.isMalformedInput, "seed \(seed) case \(i): \(error)")
            }
        }
        #expect(rejected > 0, "seed \(seed): no input was rejected")
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
