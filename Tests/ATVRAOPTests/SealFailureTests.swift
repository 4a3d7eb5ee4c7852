import ATVCore
import NIOCore
import NIOPosix
@testable import ATVRAOP
import Synchronization
import Testing

/// AirPlay 2 audio is never sent in the clear: a packet that can't be sealed ends the stream with an
/// error. The failure is forced the one way a correct cipher can fail without a broken OpenSSL: its
/// nonce counter is exhausted (a wrapped counter would repeat a nonce under the stream key).
@Suite struct SealFailureTests {
    static let key = [UInt8](0..<32)

    @Test func exhaustedCounterRefusesToSeal() throws {
        var cipher = try AirPlay2AudioCipher(key: Self.key, counter: UInt64.max - 1)
        let last = try cipher.seal(rtpHeader: [UInt8](repeating: 0, count: 12), payload: [1, 2, 3])
        #expect(last.suffix(8) == [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ATVError.self) { try cipher.seal(rtpHeader: [UInt8](repeating: 0, count: 12), payload: [1, 2, 3]) }
        // Still refused: the counter never wraps to a used value.
        #expect(throws: ATVError.self) { try cipher.seal(rtpHeader: [UInt8](repeating: 0, count: 12), payload: [1, 2, 3]) }
    }

    @Test func packetizeFailsInsteadOfSendingPlaintext() throws {
        var streamer = RAOPStreamer(ssrc: 7, initialSequence: 10, initialRTPTime: 100, latencyFrames: 4410)
        streamer.audioCipher = try AirPlay2AudioCipher(key: Self.key, counter: UInt64.max - 1)
        let payload = [UInt8](repeating: 0x5A, count: 40)
        let sealed = try streamer.packetize(payload: payload, frames: 352)
        #expect(try AirPlay2AudioCipher.open(sealed, key: Self.key) == sealed[0..<12] + payload)
        #expect(throws: ATVError.self) { try streamer.packetize(payload: payload, frames: 352) }
        // Nothing was stored or counted for the packet that could not be sealed.
        #expect(streamer.nextSequence == 11)
        #expect(streamer.packetsSent == 1)
        #expect(streamer.retransmissions(for: RAOPRetransmitRequest(firstSequence: 11, count: 1)).isEmpty)
    }

    /// The paced sender on real UDP sockets: the stream ends with the sealing error, and every
    /// datagram that reached the receiver is a sealed packet that opens with the key.
    @Test func pacedSenderEndsTheStreamOnASealFailure() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let received = Mutex<[[UInt8]]>([])
        let receiver = try await UDPEndpoint.bind(host: "127.0.0.1", on: loop) { bytes, _, _ in
            received.withLock { $0.append(bytes) }
        }
        let audio = try UDPBatchSender.bind(host: "127.0.0.1", on: loop)
        let control = try await UDPEndpoint.bind(host: "127.0.0.1", on: loop)

        var streamer = RAOPStreamer(ssrc: 9, initialSequence: 0, initialRTPTime: 0, latencyFrames: 4410)
        streamer.audioCipher = try AirPlay2AudioCipher(key: Self.key, counter: UInt64.max - 3)
        let live = RAOPLiveState(streamer: streamer, pacer: RAOPPacer(framesPerPacket: 352, sampleRate: 44_100))
        let pipe = RAOPPayloadPipe(highWater: 64, lowWater: 16)
        let ended = AsyncStream<Void>.makeStream()
        let pacer = RAOPPacedSender(
            audio: BatchedAudioOutput(sender: audio, to: try SocketAddress(ipAddress: "127.0.0.1", port: receiver.localPort)),
            control: control.channel, live: live, pipe: pipe, framesPerPacket: 352, syncInterval: .seconds(1),
            sendAhead: .milliseconds(40), t0: .now(),
            onOutcome: { ended.continuation.yield() }, onProgress: {})
        for i in 0..<10 {
            _ = await pipe.push(.packet(payload: [UInt8](repeating: UInt8(i), count: 64), sourceFrames: 352, silence: false))
        }
        _ = await pipe.push(.end)
        await pacer.start()
        var iterator = ended.stream.makeAsyncIterator()
        await iterator.next()
        let outcome = pacer.outcome
        guard case .failed(let error)? = outcome else {
            Issue.record("expected the stream to fail, got \(String(describing: outcome))")
            return
        }
        #expect("\(error)".contains("encryption"))
        _ = await pacer.halt()
        // The datagrams written before the failure arrive on the same loop, right after it.
        for _ in 0..<200 where received.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        let packets = received.withLock { $0 }
        #expect(packets.count == 3)
        for packet in packets {
            #expect(packet.count == 12 + 64 + AirPlay2AudioCipher.overhead)
            #expect((try? AirPlay2AudioCipher.open(packet, key: Self.key)) != nil)
        }
        try await loop.submit { audio.close() }.get()
        await receiver.close(); await control.close()
        try await group.shutdownGracefully()
    }
}
