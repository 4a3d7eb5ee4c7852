// The group stream end to end, in process: virtual AirPlay 1 speakers (ATVSimulator) and the
// tests' FakeReceiver on loopback. Addresses 127.0.0.101–103 are this suite's alone.
import ATVAirPlayCore
import ATVAudio
import ATVCore
@testable import ATVRAOP
import ATVSimulator
import ATVTestSupport
import Foundation
import Logging
import Synchronization
import Testing

private let packetBytes = 352 * 4

private func memberOptions(latency: Int = 11_025) -> RAOPOptions {
    RAOPOptions(latencyFrames: latency, requestTimeout: .seconds(2), feedbackInterval: .milliseconds(300),
                syncInterval: .milliseconds(250))
}

private func source(_ packets: Int) -> [UInt8] {
    (0..<packets).flatMap { RampSource.pcm(packet: $0, frames: 352) }
}

/// Seconds of an NTP time.
private func seconds(_ t: NTPTime) -> Double { Double(t.raw >> 32) + Double(t.raw & 0xFFFF_FFFF) / 4_294_967_296 }

@Suite(.serialized) struct GroupStreamTests {
    /// Three speakers: A and B from the start, C added while it plays, B's receiver dies. A plays
    /// the whole stream bit-exact, C the rest of it from where it joined, B is lost, retried and
    /// fails; the others finish.
    @Test func membersPlayBitExactALateOneJoinsAtTheCurrentPositionAndADeadOneIsLost() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func speaker(_ n: Int) async throws -> VirtualSpeaker {
            try await VirtualSpeaker.start(.init(host: "127.0.0.10\(n)", name: "Speaker \(n)",
                                                 outputPath: dir.appendingPathComponent("s\(n).wav").path))
        }
        let a = try await speaker(1), b = try await speaker(2), c = try await speaker(3)
        defer { Task { await a.stop(); await c.stop() } }

        let packets = 750  // ≈ 6 s
        let group = RAOPGroupStream(
            members: [RAOPGroupMember(name: "A", host: "127.0.0.101", port: a.port, options: memberOptions()),
                      RAOPGroupMember(name: "B", host: "127.0.0.102", port: b.port, options: memberOptions())],
            options: RAOPGroupOptions(readinessDeadline: .seconds(5), retries: 1, retryDelay: .milliseconds(500)),
            logger: Logger(label: "test.group"))
        let states = Mutex<[String: Set<RAOPGroupMemberStatus.State>]>([:])
        let updates = group.progressUpdates()
        let watcher = Task {
            for await p in updates {
                states.withLock { s in for m in p.members { s[m.name, default: []].insert(m.state) } }
            }
        }
        let streaming = Task { try await group.stream(RampSource(packets: packets, framesPerPacket: 352)) }

        // C joins once A has played a while; then B's receiver goes away.
        #expect(await poll(timeout: .seconds(20)) { a.report().packetsReceived > 150 })
        group.add(RAOPGroupMember(name: "C", host: "127.0.0.103", port: c.port, options: memberOptions()))
        #expect(await poll(timeout: .seconds(20)) { c.report().packetsReceived > 50 })
        await b.stop()

        let report = try await streaming.value
        watcher.cancel()
        let outcome = Dictionary(uniqueKeysWithValues: report.members.map { ($0.name, $0) })
        #expect(report.anyPlayedWhole)
        #expect(!report.stopped)
        #expect(outcome["A"]?.playedWhole == true)
        #expect(outcome["A"]?.state == .finished)
        #expect(outcome["C"]?.state == .finished)
        #expect(outcome["C"]?.playedWhole == false)  // it joined late
        #expect(outcome["B"]?.state == .failed)
        #expect(outcome["B"]?.playedWhole == false)
        #expect(outcome["B"]?.error != nil)
        #expect(states.withLock { $0["B"]?.contains(.lost) } == true, "B was never reported lost")
        #expect(outcome["A"]?.route == .airPlay1)

        // A: lead-in silence, then the whole source bit-exact.
        let leadIn = 9 * packetBytes
        let expected = source(packets)
        _ = try await a.waitForSessionEnd(timeout: .seconds(10))
        let wavA = try Harness.wavPCM(dir.appendingPathComponent("s1.wav"))
        #expect(wavA.count >= leadIn + expected.count)
        #expect(wavA.prefix(leadIn).allSatisfy { $0 == 0 })
        #expect(Array(wavA[leadIn..<min(wavA.count, leadIn + expected.count)]) == expected)

        // C: from its first packet (programme packet k) to the end, bit-exact.
        let starts = group.memberStarts
        let k = try #require(starts["C"]?.schedule.firstPacket)
        #expect(k > 150)
        _ = try await c.waitForSessionEnd(timeout: .seconds(10))
        let wavC = try Harness.wavPCM(dir.appendingPathComponent("s3.wav"))
        let rest = Array(expected[((Int(k) * packetBytes) - leadIn)...])
        #expect(wavC.count >= rest.count)
        #expect(Array(wavC.prefix(rest.count)) == rest)

        // A and C hear programme packet k at the same instant: their programme anchors differ by
        // nothing (same latency, no offsets).
        let anchorA = try #require(starts["A"]?.programmeAnchor), anchorC = try #require(starts["C"]?.programmeAnchor)
        #expect(anchorA == anchorC)
    }

    /// The sync packets of members with different latencies and offsets map programme frame 0 to
    /// the same instant (less each member's offset), as the receivers see them.
    @Test func syncPacketsOfEveryMemberMapTheSameFrameToTheSameInstant() async throws {
        let r1 = try await FakeReceiver.start(), r2 = try await FakeReceiver.start(), r3 = try await FakeReceiver.start()
        defer { Task { await r1.close(); await r2.close(); await r3.close() } }
        let group = RAOPGroupStream(
            members: [RAOPGroupMember(name: "one", host: "127.0.0.1", port: r1.port, options: memberOptions(latency: 4410)),
                      RAOPGroupMember(name: "two", host: "127.0.0.1", port: r2.port, options: memberOptions(latency: 22_050)),
                      RAOPGroupMember(name: "three", host: "127.0.0.1", port: r3.port, options: memberOptions(latency: 11_025),
                                      offsetMilliseconds: 20)],
            logger: Logger(label: "test.group"))
        let report = try await group.stream(RampSource(packets: 250, framesPerPacket: 352))
        let summary = report.members.map { "\($0.name): \($0.state) \($0.error ?? "")" }
        #expect(report.members.allSatisfy { $0.playedWhole }, "\(summary)")

        /// When each receiver is told programme frame 0 plays, from every sync packet it got.
        func playTimes(_ r: FakeReceiver) throws -> [Double] {
            let log = r.log.withLock { $0 }
            let first = try #require(log.audio.first)
            #expect(first.marker)
            return log.syncs.map { s in
                seconds(s.ntpTime) + Double(Int32(bitPattern: first.timestamp &- s.rtpTimeLessLatency)) / 44_100
            }
        }
        _ = await poll(timeout: .seconds(5)) { [r1, r2, r3].allSatisfy { r in r.log.withLock { $0.syncs.count >= 3 } } }
        let t1 = try playTimes(r1), t2 = try playTimes(r2), t3 = try playTimes(r3)
        #expect(t1.count >= 3 && t2.count >= 3 && t3.count >= 3)
        // Every member's first packet is programme packet 0, with the same payload.
        let payloads = [r1, r2, r3].map { r in r.log.withLock { $0.audio.first?.payload } }
        #expect(payloads[0] != nil && payloads[0] == payloads[1] && payloads[1] == payloads[2])
        // Every sync of a member agrees with its first one (a steady schedule)…
        for t in [t1, t2, t3] { #expect(t.allSatisfy { abs($0 - t[0]) < 0.000_5 }, "\(t)") }
        // …and the members agree with each other (the offset one 20 ms earlier).
        #expect(abs(t1[0] - t2[0]) < 0.001, "\(t1[0]) vs \(t2[0])")
        #expect(abs((t3[0] + 0.020) - t1[0]) < 0.001, "\(t3[0]) vs \(t1[0])")
        // The members on one local address send their audio from the group's one socket (one
        // sendmmsg for every member's burst); each keeps its own control port, where its receiver's
        // retransmit request went and was answered.
        let logs = [r1, r2, r3].map { r in r.log.withLock { $0 } }
        let sources = logs.map(\.audioSourcePorts)
        #expect(sources[0].count == 1 && sources.allSatisfy { $0 == sources[0] }, "\(sources)")
        let controls = logs.compactMap(\.senderControlPort)
        #expect(Set(controls).count == 3 && !controls.contains { sources[0].contains($0) }, "\(controls) \(sources)")
        #expect(logs.allSatisfy { $0.retransmitAsked && !$0.retransmitted.isEmpty })
    }

    /// An AirPlay 2 realtime member (the virtual HomePod) beside an AirPlay 1 one: both get the
    /// whole stream bit-exact from the one encode.
    @Test func anAirPlay2RealtimeMemberBesideAnAirPlay1One() async throws {
        let dir = try Harness.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let speaker = try await VirtualSpeaker.start(.init(host: "127.0.0.101", outputPath: dir.appendingPathComponent("s.wav").path))
        let pod = try await VirtualHomePod.start(.init(outputPath: dir.appendingPathComponent("pod.wav").path))
        defer { Task { await speaker.stop(); await pod.stop() } }
        var ap2 = airPlay2Options()
        ap2.buffered = .off
        let packets = 250
        let group = RAOPGroupStream(
            members: [RAOPGroupMember(name: "speaker", host: "127.0.0.101", port: speaker.port, options: memberOptions()),
                      RAOPGroupMember(name: "pod", host: "127.0.0.1", port: pod.port, options: ap2)],
            logger: Logger(label: "test.group"))
        let report = try await group.stream(RampSource(packets: packets, framesPerPacket: 352))
        let summary = report.members.map { "\($0.name): \($0.state) \($0.error ?? "")" }
        #expect(report.members.allSatisfy { $0.playedWhole }, "\(summary)")
        let route = report.members.first { $0.name == "pod" }?.route
        #expect(route == .realtimeNTP || route == .realtimePTP, "\(String(describing: route))")
        _ = try await speaker.waitForSessionEnd(timeout: .seconds(10))
        _ = try await pod.waitForSessionEnd(timeout: .seconds(10))
        let leadIn = 9 * packetBytes
        let expected = source(packets)
        for file in ["s.wav", "pod.wav"] {
            let wav = try Harness.wavPCM(dir.appendingPathComponent(file))
            #expect(wav.count >= leadIn + expected.count, "\(file)")
            #expect(Array(wav[min(wav.count, leadIn)..<min(wav.count, leadIn + expected.count)]) == expected, "\(file)")
        }
    }

    /// The source fails mid-stream: the member ends with that failure, is not retried, and the
    /// stream returns with the source's error.
    @Test func aFailingSourceEndsEveryMemberWithoutRetries() async throws {
        let r = try await FakeReceiver.start()
        defer { Task { await r.close() } }
        let group = RAOPGroupStream(
            members: [RAOPGroupMember(name: "one", host: "127.0.0.1", port: r.port, options: memberOptions())],
            options: RAOPGroupOptions(retries: 3, retryDelay: .milliseconds(200)), logger: Logger(label: "test.group"))
        let clock = ContinuousClock()
        let start = clock.now
        let report = try await group.stream(FailingSource(after: 60))
        #expect(clock.now - start < .seconds(10))
        let one = try #require(report.members.first)
        #expect(one.state == .failed)
        #expect(!one.playedWhole)
        #expect(one.error != nil)
        #expect(!report.anyPlayedWhole)
        // The report names the source's own error (the CLI prints it as a single stream would).
        #expect(report.sourceError is FailingSource.SourceBroke, "\(String(describing: report.sourceError))")
    }

    @Test func aBufferedMemberFailsWithOneClearErrorAndStreamNeedsMembers() async throws {
        let empty = RAOPGroupStream(members: [], logger: Logger(label: "test.group"))
        await #expect(throws: ATVError.self) { _ = try await empty.stream(RampSource(packets: 1, framesPerPacket: 352)) }
        let group = RAOPGroupStream(members: [], logger: Logger(label: "test.group"))
        await #expect(throws: ATVError.invalidValue("volume 120.0 is outside 0…100")) { try await group.setVolume(120, member: "x") }
        await #expect(throws: ATVError.self) { try await group.setVolume(20, member: "x") }
    }
}

/// `packets` ramp packets, then a decoding failure.
private struct FailingSource: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let after: Int
    struct SourceBroke: Error {}
    struct AsyncIterator: AsyncIteratorProtocol {
        var i = 0
        let after: Int
        mutating func next() async throws -> PCMPacket? {
            guard i < after else { throw SourceBroke() }
            defer { i += 1 }
            return PCMPacket(bytes: RampSource.pcm(packet: i, frames: 352), frames: 352)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(after: after) }
}
