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

    @Test func fuzzEncryptedReceiverNeverCrashes() {
        var rng = SplitMix64(seed: 9)
        for _ in 0..<300 {
            var ch = MRPChannel(maxMessageSize: 1024)
            if Bool.random(using: &rng) { ch.enableEncryption(keys) }
            _ = try? ch.receive(randomBytes(Int.random(in: 0...600, using: &rng), using: &rng))
        }
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
