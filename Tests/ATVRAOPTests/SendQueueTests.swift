import ATVTestSupport
import ATVAudio
import ATVCore
@testable import ATVRAOP
import Synchronization
import Testing

private func payload(_ item: RAOPSendItem?) -> [UInt8]? {
    if case .packet(let p, _, _)? = item { return p }
    return nil
}

/// A source of PCM packets of arbitrary sizes (re-chunking), optionally failing at the end.
private struct ChunkedSource: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let frames: [Int]
    var failAtEnd = false
    struct SourceBroke: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: ChunkedSource
        var i = 0
        var frame = 0
        mutating func next() async throws -> PCMPacket? {
            guard i < source.frames.count else {
                if source.failAtEnd { throw SourceBroke() }
                return nil
            }
            let n = source.frames[i]
            i += 1
            var bytes: [UInt8] = []
            for f in frame..<(frame + n) {
                let v = UInt16(truncatingIfNeeded: f &* 13)
                bytes += [UInt8(v & 0xFF), UInt8(v >> 8), UInt8(v >> 3 & 0xFF), 1]
            }
            frame += n
            return PCMPacket(bytes: bytes, frames: n)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}

@Suite struct SendQueueTests {
    @Test func queueKeepsOrderAndWatermarks() {
        var q = RAOPSendQueue(highWater: 8, lowWater: 3)
        #expect(q.isEmpty && q.wantsRefill && !q.isFull)
        for i in 0..<8 { q.push(.packet(payload: [UInt8(i)], sourceFrames: 1, silence: false)) }
        #expect(q.isFull && !q.wantsRefill && q.count == 8)
        // Terminal items may exceed the high-water mark (the ring grows).
        for i in 8..<40 { q.push(.packet(payload: [UInt8(i)], sourceFrames: 1, silence: false)) }
        q.push(.end)
        for i in 0..<40 {
            #expect(payload(q.pop()) == [UInt8(i)])
            #expect(q.wantsRefill == (q.count <= 3))
        }
        if case .end? = q.pop() {} else { Issue.record("expected .end") }
        #expect(q.pop() == nil && q.isEmpty)
    }

    @Test func queueRandomizedAgainstArray() {
        var rng = SplitMix64(seed: 7)
        var q = RAOPSendQueue(highWater: 5, lowWater: 2)
        var model: [UInt8] = []
        var next: UInt8 = 0
        for _ in 0..<5_000 {
            if Bool.random(using: &rng) {
                q.push(.packet(payload: [next], sourceFrames: 0, silence: true))
                model.append(next)
                next &+= 1
            } else {
                let got = payload(q.pop())
                #expect(got == (model.isEmpty ? nil : [model.removeFirst()]))
            }
            #expect(q.count == model.count)
        }
    }

    @Test func pipeSuspendsProducerUntilLowWater() async throws {
        let pipe = RAOPPayloadPipe(highWater: 10, lowWater: 4)
        let pushed = Mutex(0)
        let producer = Task {
            for i in 0..<30 {
                guard await pipe.push(.packet(payload: [UInt8(i)], sourceFrames: 1, silence: false)) else { return }
                pushed.withLock { $0 += 1 }
            }
        }
        // The producer stops at the high-water mark.
        try await eventually("9 pushes", interval: .milliseconds(1)) { pushed.withLock { $0 } >= 9 }
        try await Task.sleep(for: .milliseconds(50))  // a window: no push may complete in it
        #expect(pipe.count == 10 && pushed.withLock { $0 } == 9)
        // Draining to just above the low-water mark does not wake it…
        for i in 0..<5 { #expect(payload(pipe.pop()) == [UInt8(i)]) }
        try await Task.sleep(for: .milliseconds(50))  // a window: the producer must stay asleep
        #expect(pipe.count == 5)
        // …reaching it does: it refills up to the high-water mark.
        #expect(payload(pipe.pop()) == [5])
        try await eventually("the refill to 10", interval: .milliseconds(1)) { pipe.count >= 10 }
        try await Task.sleep(for: .milliseconds(20))  // a window: no push beyond the high-water mark
        #expect(pipe.count == 10)
        // Closing ends the producer; its push returns false.
        pipe.close()
        await producer.value
        #expect(pipe.count == 0 && pipe.pop() == nil)
    }

    @Test func pipeTellsAWaitingConsumerOnce() async {
        let pipe = RAOPPayloadPipe(highWater: 4, lowWater: 1)
        let calls = Mutex(0)
        pipe.setOnAvailable { calls.withLock { $0 += 1 } }
        #expect(await pipe.push(.end))
        #expect(calls.withLock { $0 } == 0)  // nobody was waiting
        #expect(pipe.pop() != nil)
        #expect(pipe.pop() == nil)           // now the consumer waits
        #expect(await pipe.push(.end))
        #expect(await pipe.push(.end))
        #expect(calls.withLock { $0 } == 1)
    }

    @Test func cancellingTheProducerWhileItWaits() async throws {
        let pipe = RAOPPayloadPipe(highWater: 2, lowWater: 0)
        let result = Mutex<Bool?>(nil)
        let producer = Task {
            var ok = true
            while ok { ok = await pipe.push(.end) }
            result.withLock { $0 = ok }
        }
        try await eventually("2 queued", interval: .milliseconds(1)) { pipe.count >= 2 }
        producer.cancel()
        await producer.value
        #expect(result.withLock { $0 } == false)
    }

    /// Odd-sized source packets are cut into the same full packets as whole ones; the last is
    /// padded with zeros; lead-in and padding silence surround them; `.end` closes the queue.
    @Test func producerRechunksPadsAndEnds() async throws {
        let fpp = 352
        func run(_ source: ChunkedSource) async -> [RAOPSendItem] {
            let pipe = RAOPPayloadPipe(highWater: 1_000, lowWater: 10)
            await RAOPClient.produce(source, into: pipe, codec: .l16, framesPerPacket: fpp, leadIn: 2, padding: 3)
            var items: [RAOPSendItem] = []
            while let item = pipe.pop() { items.append(item) }
            return items
        }
        let total = 10 * fpp + 100
        let whole = await run(ChunkedSource(frames: Array(repeating: fpp, count: 10) + [100]))
        var sizes: [Int] = []
        var left = total
        var rng = SplitMix64(seed: 3)
        while left > 0 {
            let n = min(left, Int.random(in: 1...900, using: &rng))
            sizes.append(n)
            left -= n
        }
        let odd = await run(ChunkedSource(frames: sizes))
        #expect(whole.count == 2 + 11 + 3 + 1 && odd.count == whole.count)
        for (a, b) in zip(whole, odd) { #expect(payload(a) == payload(b)) }
        let counts = whole.map { item -> Int in
            if case .packet(_, let frames, _) = item { return frames }
            return -1
        }
        #expect(counts == [0, 0] + Array(repeating: fpp, count: 10) + [100, 0, 0, 0, -1])
        let last = try #require(payload(whole[12]))
        #expect(last.count == fpp * 4 && last[(100 * 4)...].allSatisfy { $0 == 0 })
        if case .end = whole.last! {} else { Issue.record("expected .end last") }
        // A failing source queues everything read, then the failure.
        var failing = ChunkedSource(frames: [fpp, fpp])
        failing.failAtEnd = true
        let failed = await run(failing)
        #expect(failed.count == 2 + 2 + 1)
        if case .failure(let e) = failed.last!, e is ChunkedSource.SourceBroke {} else { Issue.record("expected .failure last") }
    }

    /// AAC (buffered AirPlay 2): 1024-frame units, the encoder's priming unit first (no source
    /// frames) and one more unit at the end, so each unit's count is the source frames its decoded
    /// output carries (the last one the 100-frame tail); odd-sized source packets give the same
    /// units; every unit decodes to 1024 frames.
    @Test func producerAACUnitsCarryThePrimingFirst() async throws {
        let fpp = 1024
        func run(_ source: ChunkedSource) async -> [RAOPSendItem] {
            let pipe = RAOPPayloadPipe(highWater: 1_000, lowWater: 10)
            await RAOPClient.produce(source, into: pipe, codec: .alac, framesPerPacket: fpp, leadIn: 0, padding: 0, aac: true)
            var items: [RAOPSendItem] = []
            while let item = pipe.pop() { items.append(item) }
            return items
        }
        let whole = await run(ChunkedSource(frames: Array(repeating: fpp, count: 5) + [100]))
        let odd = await run(ChunkedSource(frames: [700, 900, 1500, 333, 1787]))
        #expect(whole.count == 1 + 6 + 1 && odd.count == whole.count)
        for (a, b) in zip(whole, odd) { #expect(payload(a) == payload(b)) }
        let counts = whole.map { item -> Int in
            if case .packet(_, let frames, _) = item { return frames }
            return -1
        }
        #expect(counts == [0] + Array(repeating: fpp, count: 5) + [100, -1])
        let decoder = try AACDecoder()
        for item in whole.dropLast() {
            #expect(try decoder.decode(try #require(payload(item))).frames == fpp)
        }
    }
}

/// A source that fails after some packets.
private struct FailingSource: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let packets: Int
    struct AsyncIterator: AsyncIteratorProtocol {
        var i = 0
        let packets: Int
        mutating func next() async throws -> PCMPacket? {
            guard i < packets else { throw ATVError.badInput("source broke") }
            i += 1
            return PCMPacket(bytes: RampSource.pcm(packet: i - 1, frames: 352), frames: 352)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(packets: packets) }
}

@Suite(.serialized) struct RAOPClientQueueTests {
    @Test func sourceFailureSurfacesAfterQueuedPacketsAreSent() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.close() } }
        let options = RAOPOptions(codec: .l16, latencyFrames: 4410, requestTimeout: .seconds(2),
                                  feedbackInterval: .milliseconds(300), syncInterval: .milliseconds(200), leadInPackets: 3)
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: FailingSource(packets: 12), options: options)
        } throws: { error in
            guard case .badInput(let m) = error as? ATVError else { return false }
            return m.contains("source broke")
        }
        _ = await poll(timeout: .seconds(5)) { receiver.log.withLock { $0.audio.count } >= 3 + 12 }
        let log = receiver.log.withLock { $0 }
        // Lead-in + every packet read before the failure, in order; then TEARDOWN.
        #expect(log.audio.count == 3 + 12)
        for i in 0..<12 {
            #expect(log.audio[3 + i].payload == RAOPPayload.l16(RampSource.pcm(packet: i, frames: 352), paddedToFrames: 352))
        }
        #expect(log.requests.last?.method == "TEARDOWN")
    }
}
