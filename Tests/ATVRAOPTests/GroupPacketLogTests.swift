@testable import ATVRAOP
import ATVCore
import Testing

private func packet(_ i: Int) -> RAOPSendItem { .packet(payload: [UInt8(truncatingIfNeeded: i), UInt8(truncatingIfNeeded: i >> 8)], sourceFrames: 352, silence: false) }

private func index(_ read: GroupPacketLog.Read) -> Int? {
    guard case .item(.packet(let p, _, _)) = read else { return nil }
    return Int(p[0]) | Int(p[1]) << 8
}

private func isEnd(_ read: GroupPacketLog.Read) -> Bool {
    if case .item(.end) = read { return true }
    return false
}

private func isLost(_ read: GroupPacketLog.Read) -> Bool {
    if case .lost = read { return true }
    return false
}

@Suite struct GroupPacketLogTests {
    @Test func everyCursorReadsTheSameSharedPayloadsFromItsOwnPosition() {
        var log = GroupPacketLog(highWater: 100, lowWater: 20)
        let a = log.attach(at: 0)
        for i in 0..<10 { _ = log.append(packet(i)) }
        let b = log.attach(at: 4)  // a late member joins at packet 4
        for i in 0..<10 { #expect(index(log.read(a)) == i) }
        for i in 4..<10 { #expect(index(log.read(b)) == i) }
        if case .wait = log.read(a) {} else { Issue.record("a read past the head must wait") }
        _ = log.append(.end)
        #expect(isEnd(log.read(a)))
        #expect(isEnd(log.read(a)))  // the end repeats
        #expect(isEnd(log.read(b)))
    }

    @Test func payloadArraysAreSharedNotCopied() {
        var log = GroupPacketLog(highWater: 10, lowWater: 2)
        let a = log.attach(at: 0), b = log.attach(at: 0)
        _ = log.append(.packet(payload: [UInt8](repeating: 7, count: 1000), sourceFrames: 352, silence: false))
        guard case .item(.packet(let pa, _, _)) = log.read(a), case .item(.packet(let pb, _, _)) = log.read(b) else {
            Issue.record("no packet")
            return
        }
        pa.withUnsafeBufferPointer { x in
            pb.withUnsafeBufferPointer { y in #expect(x.baseAddress == y.baseAddress) }
        }
    }

    @Test func aCursorAheadOfTheHeadIsNotifiedWhenItsPacketArrives() {
        var log = GroupPacketLog(highWater: 100, lowWater: 20)
        let a = log.attach(at: 3)
        if case .wait = log.read(a) {} else { Issue.record("must wait") }
        #expect(log.append(packet(0)) == [])
        #expect(log.append(packet(1)) == [])
        #expect(log.append(packet(2)) == [])
        #expect(log.append(packet(3)) == [a])
        #expect(index(log.read(a)) == 3)
    }

    @Test func producerStaysHighWaterAheadOfTheSlowestHealthyCursor() {
        var log = GroupPacketLog(highWater: 8, lowWater: 2)
        let slow = log.attach(at: 0), fast = log.attach(at: 0)
        var produced = 0
        while !log.producerMustWait { _ = log.append(packet(produced)); produced += 1 }
        #expect(produced == 8)
        for _ in 0..<8 { _ = log.read(fast) }
        #expect(log.producerMustWait)  // the slow one still holds it
        for _ in 0..<5 { _ = log.read(slow) }
        #expect(!log.producerMayResume)  // 3 ahead > lowWater
        _ = log.read(slow)
        #expect(log.producerMayResume)
        #expect(!log.producerMustWait)
    }

    @Test func aStalledCursorIsLostAndNeverBlocksTheProducerOrTheOthers() {
        var log = GroupPacketLog(highWater: 8, lowWater: 2)
        let stalled = log.attach(at: 0), healthy = log.attach(at: 0)
        var produced = 0
        func produce() { while !log.producerMustWait { _ = log.append(packet(produced)); produced += 1 } }
        produce()
        #expect(produced == 8)
        // Time goes on: the healthy member reads on schedule, the stalled one does not read at all.
        for heard in stride(from: 2, through: 40, by: 2) {
            for _ in 0..<2 { #expect(index(log.read(healthy)) != nil) }
            _ = log.advanceFloor(to: Int64(heard - 1))
            produce()
        }
        // The producer kept going (held only by the healthy one and the floor)…
        #expect(produced >= 40)
        #expect(log.cursors[stalled]?.lost == true)
        #expect(log.cursors[healthy]?.lost == false)
        // …the stalled one's next read says it is lost, and the history it needed is gone.
        #expect(isLost(log.read(stalled)))
        #expect(log.base > 0)
        // The healthy one reads on without a gap.
        #expect(index(log.read(healthy)) == 40)
    }

    @Test func aWaitingCursorThatFallsBehindTheFloorIsWokenToReadLost() {
        var log = GroupPacketLog(highWater: 8, lowWater: 2)
        let a = log.attach(at: 0)
        if case .wait = log.read(a) {} else { Issue.record("must wait") }
        #expect(log.advanceFloor(to: 5) == [a])
        #expect(isLost(log.read(a)))
    }

    @Test func detachedCursorsReleaseTheHistory() {
        var log = GroupPacketLog(highWater: 1000, lowWater: 10)
        let a = log.attach(at: 0)
        for i in 0..<600 { _ = log.append(packet(i)) }
        _ = log.advanceFloor(to: 500)
        #expect(log.base == 0 || log.cursors[a]?.lost == true)
        log.detach(a)
        #expect(log.base == 500)
        let late = log.attach(at: 520)
        #expect(index(log.read(late)) == 520)
        let tooOld = log.attach(at: 100)
        #expect(isLost(log.read(tooOld)))
    }

    @Test func feedProducerWaitsAndCursorsResumeIt() async {
        let feed = GroupPacketFeed(highWater: 4, lowWater: 1)
        let cursor = feed.cursor(at: 0)
        let producer = Task {
            for i in 0..<20 {
                guard await feed.push(packet(i)) else { return false }
            }
            return await feed.push(.end)
        }
        var got: [Int] = []
        var end = false
        while !end {
            switch cursor.pop() {
            case .packet(let p, _, _)?: got.append(Int(p[0]))
            case .end?: end = true
            case .failure?: Issue.record("unexpected failure"); end = true
            case nil: await Task.yield()
            }
        }
        #expect(got == Array(0..<20))
        #expect(await producer.value)
        #expect(feed.produced.head == 20 && feed.produced.ended)
        cursor.close()
    }

    @Test func feedReportsALostCursorAsAFailure() {
        let feed = GroupPacketFeed(highWater: 4, lowWater: 1)
        let cursor = feed.cursor(at: 0)
        feed.advanceFloor(to: 10)
        guard case .failure(let e)? = cursor.pop() else {
            Issue.record("a lost cursor must read a failure")
            return
        }
        #expect((e as? ATVError)?.description.contains("fell behind") == true)
    }
}
