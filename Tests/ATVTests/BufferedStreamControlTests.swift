import ATV
import ATVAudio
import ATVCore
import ATVRAOP
import ATVSimulator
import ATVTestSupport
import Foundation
import Synchronization
import Testing

/// Pause, resume, seek and stop on a buffered (type 103) PTP stream, driven through the facade as a
/// library user drives it (`connect` → `stream.streamFile` → `remoteControl.pause/play/setPosition/
/// stop`) and played by the virtual HomePod, which follows our PTP master and records every packet
/// it plays with its play instant (docs/PTP-AND-BUFFERED-AUDIO.md §4.6). The sender connects from
/// 127.0.0.81 (its PTP master binds 319/320 there), the HomePod and its follower use 127.0.0.82:
/// addresses no other suite binds 319/320 on. The source is a WAV whose every frame is distinct
/// (the frame index in its samples), so a frame lost, repeated or out of order cannot go unseen;
/// the first RTP timestamp is 0, so a played packet's RTP time is its stream position.
@Suite(.serialized) struct BufferedStreamControlTests {
    static let sender = "127.0.0.81"
    static let receiver = "127.0.0.82"
    static let fpp = 352

    /// Frame i: left = i's low 16 bits, right = its high bits mixed with a pattern.
    static func source(frames: Int) -> [UInt8] {
        var pcm = [UInt8](repeating: 0, count: frames * 4)
        for i in 0..<frames {
            let l = UInt16(truncatingIfNeeded: i), r = UInt16(truncatingIfNeeded: i >> 16) ^ 0x5A5A
            pcm[i * 4] = UInt8(l & 0xFF); pcm[i * 4 + 1] = UInt8(l >> 8)
            pcm[i * 4 + 2] = UInt8(r & 0xFF); pcm[i * 4 + 3] = UInt8(r >> 8)
        }
        return pcm
    }

    /// A 16-bit stereo 44.1 kHz WAV of `pcm`.
    static func writeWAV(_ pcm: [UInt8], to url: URL) throws {
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        var b = Array("RIFF".utf8) + le32(36 + pcm.count) + Array("WAVEfmt ".utf8) + le32(16)
        b += le16(1) + le16(2) + le32(44_100) + le32(44_100 * 4) + le16(4) + le16(16)
        b += Array("data".utf8) + le32(pcm.count) + pcm
        try Data(b).write(to: url)
    }

    struct Rig {
        var dir: URL
        var pod: VirtualHomePod
        var atv: AppleTV
        var out: URL
        var pcm: [UInt8]
        var file: URL
    }

    /// A HomePod on 127.0.0.82 writing the WAV it plays, a source of `frames` frames, and the
    /// facade connected to it with buffered PTP forced, from 127.0.0.81, first RTP time 0.
    static func rig(frames: Int) async throws -> Rig {
        guard getuid() == 0 else { throw TestFailure("buffered PTP binds UDP 319/320: the test needs root") }
        let dir = try makeTempDir("atv-bufctl")
        let out = dir.appendingPathComponent("pod.wav")
        let file = dir.appendingPathComponent("source.wav")
        let pcm = source(frames: frames)
        try writeWAV(pcm, to: file)
        let pod = try await VirtualHomePod.start(.init(host: receiver, outputPath: out.path))
        let raopTXT = pod.mdnsServices(address: receiver)[1].txt
        let config = DeviceConfig(name: "Pod", address: receiver, services: [
            ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:F0", port: pod.port, properties: raopTXT),
        ])
        var options = RAOPOptions(volume: 40)
        options.buffered = .on
        options.timing = .ptp
        options.initialRTPTime = 0
        options.initialSequence = 0
        options.localAddress = sender
        let atv = try await connect(config, options: ConnectOptions(raop: options, mrpTunnel: .disable))
        return Rig(dir: dir, pod: pod, atv: atv, out: out, pcm: pcm, file: file)
    }

    static func finish(_ rig: Rig) async {
        await rig.atv.close()
        await rig.pod.stop()
    }

    static func played(_ pod: VirtualHomePod) -> Int { pod.report().ptp.playInstants.count }

    /// Pause for a second mid-stream and resume, through `remoteControl`: the receiver plays the
    /// whole source, every frame once and in order, nothing while paused, and the packets after the
    /// resume exactly by the resume anchor.
    @Test func pauseAndResumePlayEveryFrameOnceAndNothingWhilePaused() async throws {
        let packets = 752  // 6 s
        let rig = try await Self.rig(frames: packets * Self.fpp)
        defer { try? FileManager.default.removeItem(at: rig.dir) }
        let pod = rig.pod, atv = rig.atv
        let streaming = Task { try await atv.stream.streamFile(.file(rig.file.path), metadata: MediaMetadata(title: "Frames")) }
        #expect(await poll(timeout: .seconds(20)) { Self.played(pod) >= 125 }, "\(pod.report())")
        try await atv.remoteControl.pause()
        #expect(try await atv.metadata.playing().deviceState == .paused)
        #expect(await poll(timeout: .seconds(5)) { pod.report().ptp.rateAnchors.count == 2 }, "\(pod.report())")
        try await Task.sleep(for: .seconds(1))
        try await atv.remoteControl.play()
        try await streaming.value
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await Self.finish(rig)

        #expect(report.ptp.rateAnchors == ["play", "pause", "play"])
        #expect(report.ptp.anchorsRejected == 0 && report.ptp.packetsBeforeAnchor == 0 && report.ptp.flushes == 0)
        let instants = report.ptp.playInstants
        // Every packet once, in order (RTP time = stream position).
        #expect(instants.map(\.rtpTime) == (0..<packets).map { UInt32($0 * Self.fpp) })
        #expect(try wavPCM(rig.out.path) == rig.pcm)

        // Nothing played between the pause's arrival and the resume anchor's time.
        let events = report.ptp.anchorEvents
        try #require(events.count == 3 && events[1].rtpTime == nil)
        let pausedAt = events[1].arrivedAt
        let resumeFrame = try #require(events[2].rtpTime), resumeTime = try #require(events[2].masterTime)
        let before = instants.prefix { ($0.localTime ?? .max) <= pausedAt }.count
        #expect(before >= 125 && before < packets, "\(before) packets before the pause")
        for p in instants.dropFirst(before) {
            #expect(p.masterTime >= resumeTime, "packet \(p.rtpTime) played during the pause")
            #expect(p.masterTime == resumeTime + Int64(Int32(bitPattern: p.rtpTime &- resumeFrame)) * 1_000_000_000 / 44_100)
        }
        // The resume anchor: a packet boundary the receiver had reached when the pause arrived
        // (at or before the first packet it had not played), so nothing before it was dropped.
        #expect(resumeFrame % UInt32(Self.fpp) == 0)
        #expect(resumeFrame <= instants[before].rtpTime)
        let offset = try #require(report.ptp.offset)
        #expect(resumeTime - (pausedAt + offset) > 900_000_000, "paused for a second")
    }

    /// Pause, resume, then a seek forward and one backward with `remoteControl.setPosition`, in one
    /// RTSP session: the receiver plays source[0..<b) ++ source[X1..<X1 + (c − b)) ++
    /// source[X2..<end), where b and c are what it had played when each FLUSHBUFFERED arrived; the
    /// RTP numbering goes on across each seek from the flush's `flushUntilTS`; nothing lost or
    /// repeated around the pause; progress (the facade's and SET_PARAMETER's) follows the seeks.
    @Test func seekForwardAndBackInOneSession() async throws {
        let frames = 8 * 44_100
        let rig = try await Self.rig(frames: frames)
        defer { try? FileManager.default.removeItem(at: rig.dir) }
        let pod = rig.pod, atv = rig.atv
        let positions = Mutex<[Double]>([])
        let progress = atv.stream.progress()
        let watcher = Task { for await p in progress { positions.withLock { $0.append(p.position) } } }
        let streaming = Task {
            try await atv.stream.streamFile(.file(rig.file.path), metadata: MediaMetadata(title: "Frames"))
        }
        #expect(await poll(timeout: .seconds(20)) { Self.played(pod) >= 60 }, "\(pod.report())")
        #expect(atv.features.feature(.setPosition).state == .available)
        try await atv.remoteControl.pause()
        #expect(await poll(timeout: .seconds(5)) { pod.report().ptp.rateAnchors.count == 2 }, "\(pod.report())")
        try await Task.sleep(for: .milliseconds(300))
        try await atv.remoteControl.play()
        let resumed = Self.played(pod)
        #expect(await poll(timeout: .seconds(10)) { Self.played(pod) >= resumed + 40 }, "\(pod.report())")

        let x1 = 5 * 44_100, x2 = 2 * 44_100
        try await atv.remoteControl.setPosition(5)
        #expect(await poll(timeout: .seconds(5)) { pod.report().ptp.flushRequests.count == 1 }, "\(pod.report())")
        let first = pod.report().ptp.flushRequests[0].packetsPlayedBefore
        #expect(await poll(timeout: .seconds(10)) { Self.played(pod) >= first + 40 }, "\(pod.report())")
        try await atv.remoteControl.setPosition(2)
        try await streaming.value
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        watcher.cancel()
        await Self.finish(rig)

        #expect(report.sessions == 1 && report.requests.filter { $0 == "enc SETUP" }.count == 2, "one session SETUP, one stream SETUP")
        #expect(report.ptp.rateAnchors == ["play", "pause", "play", "play", "play"])
        let flushes = report.ptp.flushRequests
        try #require(flushes.count == 2)
        #expect(flushes.allSatisfy { $0.fromSequence == nil })
        let b = flushes[0].packetsPlayedBefore, c = flushes[1].packetsPlayedBefore
        let p1 = Int(flushes[0].untilTimestamp), p2 = Int(flushes[1].untilTimestamp)
        // The played RTP times: 0.. up to b, then from each flush's timestamp on.
        let tail = (frames - x2 + Self.fpp - 1) / Self.fpp
        let expectedRTP = (0..<b).map { $0 * Self.fpp } + (0..<(c - b)).map { p1 + $0 * Self.fpp } + (0..<tail).map { p2 + $0 * Self.fpp }
        #expect(report.ptp.playInstants.map { Int($0.rtpTime) } == expectedRTP)
        #expect(b > resumed + 40 - 1 && c > b + 39)
        #expect(p1 > b * Self.fpp && p2 > p1 + (c - b - 1) * Self.fpp, "a seek flushes what was written ahead")
        // The frames: source[0..<b) ++ source[x1..<x1 + (c − b)) ++ source[x2..<end), the last packet padded.
        let pcm = rig.pcm
        func range(_ from: Int, _ count: Int) -> ArraySlice<UInt8> { pcm[(from * 4)..<((from + count) * 4)] }
        var expected = Array(range(0, b * Self.fpp)) + Array(range(x1, (c - b) * Self.fpp)) + Array(range(x2, frames - x2))
        expected += [UInt8](repeating: 0, count: (tail * Self.fpp - (frames - x2)) * 4)
        #expect(try wavPCM(rig.out.path) == expected)
        // SET_PARAMETER progress after the last seek: programme start and current on the RTP timeline.
        let progressParts = (report.progress ?? "").split(separator: "/").compactMap { Int($0) }
        #expect(progressParts.count == 3 && progressParts[0] == p2 - x2 && progressParts[1] == p2, "\(report.progress ?? "-")")
        // The facade's progress: positions from the source, the seek targets among them, near the end at last.
        let seen = positions.withLock { $0 }
        #expect(seen.contains(5.0) && seen.contains(2.0), "\(seen)")
        #expect((seen.max() ?? 0) > 7, "\(seen)")
    }

    /// Stop sends FLUSHBUFFERED before TEARDOWN: nothing plays after it. A source that cannot be
    /// opened again (a PCM sequence) cannot seek: one clear error, and the stream goes on.
    @Test func stopFlushesFirstAndAPCMSequenceCannotSeek() async throws {
        let rig = try await Self.rig(frames: 352)
        defer { try? FileManager.default.removeItem(at: rig.dir) }
        let pod = rig.pod, atv = rig.atv
        let pcm = Self.source(frames: 10 * 44_100)
        let packets = (0..<(pcm.count / (Self.fpp * 4))).map { i in
            PCMPacket(bytes: Array(pcm[(i * Self.fpp * 4)..<((i + 1) * Self.fpp * 4)]), frames: Self.fpp)
        }
        let streaming = Task { try await atv.stream.streamAudio(PCMPackets(packets: packets)) }
        #expect(await poll(timeout: .seconds(20)) { Self.played(pod) >= 60 }, "\(pod.report())")
        #expect(atv.features.feature(.setPosition).state == .unavailable)
        do {
            try await atv.remoteControl.setPosition(3)
            Issue.record("a PCM sequence seeked")
        } catch let error as ATVError {
            #expect("\(error)".contains("seeking is not supported for this stream"), "\(error)")
        }
        try await atv.remoteControl.stop()
        let result = try await streaming.value
        #expect(result.details.stopped)
        let report = try await pod.waitForSessionEnd(timeout: .seconds(10))
        await Self.finish(rig)

        let flush = try #require(report.ptp.flushRequests.first)
        let requests = report.requests
        let f = try #require(requests.lastIndex(of: "enc FLUSHBUFFERED")), t = try #require(requests.lastIndex(of: "enc TEARDOWN"))
        #expect(f < t)
        #expect(flush.fromSequence == nil && Int(flush.untilSequence) == result.details.packetsSent)
        #expect(report.ptp.playInstants.count == flush.packetsPlayedBefore, "nothing plays after the flush")
        #expect(report.ptp.playInstants.map(\.rtpTime) == (0..<flush.packetsPlayedBefore).map { UInt32($0 * Self.fpp) })
    }
}

/// A finite PCM sequence (not a file: it cannot be opened again).
struct PCMPackets: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let packets: [PCMPacket]
    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<PCMPacket>
        mutating func next() async throws -> PCMPacket? { rest.popFirst() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: packets[...]) }
}
