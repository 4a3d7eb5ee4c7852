import ATVTestSupport
import Testing
@testable import ATVSimulator

private func payload(_ seq: UInt16) -> [UInt8] { [UInt8(seq >> 8), UInt8(seq & 0xFF)] }
private let ms: UInt64 = 1_000_000

private func played(_ outputs: [JitterBuffer.Output]) -> [UInt16] {
    outputs.compactMap { if case .play(let s, _, _) = $0 { s } else { nil } }
}
private func requests(_ outputs: [JitterBuffer.Output]) -> [(UInt16, UInt16)] {
    outputs.compactMap { if case .requestRetransmit(let f, let c) = $0 { (f, c) } else { nil } }
}
private func lost(_ outputs: [JitterBuffer.Output]) -> [(UInt16, Int)] {
    outputs.compactMap { if case .lost(let f, let c) = $0 { (f, c) } else { nil } }
}

@Suite struct JitterBufferTests {
    @Test func inOrderPacketsPlayImmediately() {
        var jb = JitterBuffer()
        var out: [JitterBuffer.Output] = []
        for s in UInt16(100)..<110 { out += jb.insert(seq: s, payload: payload(s), now: 0) }
        #expect(played(out) == Array(100..<110))
        #expect(requests(out).isEmpty)
        #expect(jb.statistics.received == 10)
        #expect(jb.statistics.lost == 0)
    }

    @Test func gapTriggersRequestAndLateArrivalFills() {
        var jb = JitterBuffer()
        _ = jb.insert(seq: 10, payload: payload(10), now: 0)
        let afterGap = jb.insert(seq: 14, payload: payload(14), now: 1 * ms)
        #expect(played(afterGap).isEmpty)
        let req = requests(afterGap)
        #expect(req.count == 1)
        #expect(req.first?.0 == 11 && req.first?.1 == 3)
        #expect(jb.missingCount == 3)

        // 12 and 13 arrive as retransmissions, then 11 arrives late; everything plays in order.
        #expect(played(jb.insert(seq: 12, payload: payload(12), isRetransmission: true, now: 5 * ms)).isEmpty)
        #expect(played(jb.insert(seq: 13, payload: payload(13), isRetransmission: true, now: 6 * ms)).isEmpty)
        let fill = jb.insert(seq: 11, payload: payload(11), now: 7 * ms)
        #expect(played(fill) == [11, 12, 13, 14])
        if case .play(_, let p, let recovered) = fill[0] { #expect(p == payload(11)); #expect(recovered) }
        #expect(jb.statistics.recovered == 3)
        #expect(jb.statistics.lost == 0)
        #expect(jb.missingCount == 0)
    }

    @Test func retriesThenDeclaresLostAfterTimeout() {
        let cfg = JitterBuffer.Configuration(lossTimeout: 500 * ms, retryInterval: 100 * ms, maxRequests: 3)
        var jb = JitterBuffer(configuration: cfg)
        _ = jb.insert(seq: 1, payload: payload(1), now: 0)
        #expect(requests(jb.insert(seq: 4, payload: payload(4), now: 0)).map { $0.1 } == [2])
        #expect(requests(jb.tick(now: 50 * ms)).isEmpty)          // too early to retry
        #expect(requests(jb.tick(now: 100 * ms)).map { $0.0 } == [2])  // second request
        #expect(requests(jb.tick(now: 200 * ms)).map { $0.0 } == [2])  // third request
        #expect(requests(jb.tick(now: 300 * ms)).isEmpty)         // maxRequests reached
        #expect(jb.statistics.requests == 3)
        let gaveUp = jb.tick(now: 500 * ms)
        #expect(lost(gaveUp).map { $0.0 } == [2])
        #expect(lost(gaveUp).map { $0.1 } == [2])
        #expect(played(gaveUp) == [4])
        #expect(jb.statistics.lost == 2)
        // The late packet now comes too late and is discarded.
        #expect(jb.insert(seq: 3, payload: payload(3), now: 600 * ms).isEmpty)
        #expect(jb.statistics.discarded == 1)
    }

    @Test func sequenceWrapIsContinuous() {
        var jb = JitterBuffer()
        var out: [JitterBuffer.Output] = []
        for s: UInt16 in [65533, 65534, 65535, 0, 1] { out += jb.insert(seq: s, payload: payload(s), now: 0) }
        #expect(played(out) == [65533, 65534, 65535, 0, 1])
        #expect(requests(out).isEmpty)
    }

    @Test func gapAcrossWrap() {
        var jb = JitterBuffer()
        _ = jb.insert(seq: 65534, payload: payload(65534), now: 0)
        let out = jb.insert(seq: 2, payload: payload(2), now: 0)
        #expect(requests(out).count == 1)
        #expect(requests(out).first?.0 == 65535 && requests(out).first?.1 == 3)
        var fill: [JitterBuffer.Output] = []
        for s: UInt16 in [1, 0, 65535] { fill += jb.insert(seq: s, payload: payload(s), isRetransmission: true, now: 0) }
        #expect(played(fill) == [65535, 0, 1, 2])
    }

    @Test func reorderedPacketsAreSorted() {
        var jb = JitterBuffer()
        var out: [JitterBuffer.Output] = []
        for s: UInt16 in [20, 22, 21, 24, 23, 25] { out += jb.insert(seq: s, payload: payload(s), now: 0) }
        #expect(played(out) == [20, 21, 22, 23, 24, 25])
        #expect(jb.statistics.recovered == 2)  // 21 and 23 were reported missing, then arrived
    }

    @Test func duplicatesAreDiscarded() {
        var jb = JitterBuffer()
        _ = jb.insert(seq: 5, payload: payload(5), now: 0)
        _ = jb.insert(seq: 7, payload: payload(7), now: 0)
        #expect(jb.insert(seq: 7, payload: payload(7), now: 0).isEmpty)
        #expect(jb.insert(seq: 5, payload: payload(5), now: 0).isEmpty)
        #expect(jb.statistics.discarded == 2)
    }

    @Test func tooMuchQueuedDeclaresGapLost() {
        let cfg = JitterBuffer.Configuration(lossTimeout: 10_000 * ms, maxQueued: 4)
        var jb = JitterBuffer(configuration: cfg)
        _ = jb.insert(seq: 0, payload: payload(0), now: 0)
        var out: [JitterBuffer.Output] = []
        for s: UInt16 in 2...6 { out += jb.insert(seq: s, payload: payload(s), now: 0) }
        #expect(lost(out).map { $0.0 } == [1])
        #expect(played(out) == [2, 3, 4, 5, 6])
    }

    @Test func finishFlushesQueueAndDeclaresGaps() {
        var jb = JitterBuffer()
        _ = jb.insert(seq: 0, payload: payload(0), now: 0)
        _ = jb.insert(seq: 3, payload: payload(3), now: 0)
        let out = jb.finish()
        #expect(lost(out).map { $0.1 } == [2])
        #expect(played(out) == [3])
        // After finish the buffer starts over at any sequence number.
        #expect(played(jb.insert(seq: 900, payload: payload(900), now: 0)) == [900])
    }

    @Test func expectedFirstPacketLostIsRequested() {
        var jb = JitterBuffer()
        jb.expect(firstSeq: 0)  // 0 - 1 wraps to 65535 internally
        let out = jb.insert(seq: 1, payload: payload(1), now: 0)
        #expect(requests(out).first?.0 == 0 && requests(out).first?.1 == 1)
        #expect(played(out).isEmpty)
        #expect(played(jb.insert(seq: 0, payload: payload(0), isRetransmission: true, now: 1)) == [0, 1])
        #expect(jb.statistics.recovered == 1)
    }

    @Test func discontinuityRestarts() {
        var jb = JitterBuffer()
        _ = jb.insert(seq: 100, payload: payload(100), now: 0)
        let out = jb.insert(seq: 30000, payload: payload(30000), now: 0)
        #expect(requests(out).isEmpty)
        #expect(played(out) == [30000])
        #expect(jb.statistics.discontinuities == 1)
    }

    /// Random loss + reordering + retransmission: every packet comes out exactly once, in order,
    /// either played or declared lost, and everything recovered is counted.
    @Test func randomizedLossAndRecovery() {
        let seed = TestSeed.value(default: 0x717E)
        var rng = SplitMix64(seed: seed)
        for _ in 0..<20 {
            var jb = JitterBuffer(configuration: .init(lossTimeout: 400 * ms, retryInterval: 50 * ms))
            let start = UInt16.random(in: 0...UInt16.max, using: &rng)
            let total = 2000
            var sent: [UInt16: Bool] = [:]    // seq -> delivered originally
            var outputs: [JitterBuffer.Output] = []
            var now: UInt64 = 0
            var pendingRetransmits: [UInt16] = []
            for i in 0..<total {
                let s = start &+ UInt16(truncatingIfNeeded: i)
                now += 8 * ms
                let dropped = i > 0 && i < total - 1 && Int.random(in: 0..<100, using: &rng) < 5
                sent[s] = !dropped
                if !dropped {
                    let o = jb.insert(seq: s, payload: payload(s), now: now)
                    outputs += o
                    for case .requestRetransmit(let f, let c) in o {
                        for k in 0..<c where Bool.random(using: &rng) { pendingRetransmits.append(f &+ k) }
                    }
                }
                if i % 3 == 0, !pendingRetransmits.isEmpty {
                    let r = pendingRetransmits.removeFirst()
                    outputs += jb.insert(seq: r, payload: payload(r), isRetransmission: true, now: now)
                }
                outputs += jb.tick(now: now)
            }
            outputs += jb.finish()
            var seen: [UInt16] = []
            for o in outputs {
                switch o {
                case .play(let s, let p, _): seen.append(s); #expect(p == payload(s), "seed \(seed)")
                case .lost(let f, let c): for k in 0..<c { seen.append(f &+ UInt16(k)) }
                case .requestRetransmit: break
                }
            }
            #expect(seen.count == total, "seed \(seed)")
            guard seen.count == total else { return }
            let inOrder = seen == (0..<total).map { start &+ UInt16($0) }
            #expect(inOrder, "seed \(seed): output not in sequence order")
            let st = jb.statistics
            let playedCount = played(outputs).count
            #expect(playedCount == total - st.lost, "seed \(seed)")
            #expect(st.received == playedCount, "seed \(seed)")
            #expect(st.recovered <= sent.values.filter { !$0 }.count, "seed \(seed)")
        }
    }
}
