import ATVTestSupport
import Foundation
import Testing

/// End to end: `atv stream --timing ptp` (our sender with its PTP master) → `atv simulate homepod`
/// following that master, in a network namespace of their own (UDP 319/320 are per namespace).
/// The HomePod listens on 127.0.0.2 and its follower holds 127.0.0.2's PTP ports; the sender
/// connects from 127.0.0.1, where its master runs. The receiver must lock on the sender's clock
/// with the offset of the sender's timescale (CLOCK_MONOTONIC set to TAI: realtime − monotonic +
/// 37 s, read here from the same kernel), place the packets on that timeline from the 0xD7
/// announces, and write the audio bit-exact.
@Suite(.serialized) struct HomePodPTPStreamCLITests {
    static let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path

    struct PTPLine {
        var state: String
        var offset: Int64?
        var announces: Int
        var rejected: Int
        var placed: Int
        var dropped: Int
    }

    /// The pod's "ptp: master …, state …, offset N ns, …, packets placed P" report line.
    static func ptpLine(_ out: String) -> PTPLine? {
        guard let line = out.split(separator: "\n").first(where: { $0.contains("ptp: master") }) else { return nil }
        func field(_ name: String) -> String? {
            line.components(separatedBy: ", ").first { $0.hasPrefix(name + " ") || $0.contains("ptp: " + name + " ") }
                .map { $0.components(separatedBy: name + " ").last ?? "" }
        }
        func int(_ name: String) -> Int { Int(field(name)?.split(separator: " ").first ?? "") ?? 0 }
        return PTPLine(state: field("state") ?? "", offset: field("offset").flatMap { Int64($0.split(separator: " ").first ?? "") },
                       announces: int("time announces"), rejected: int("anchors rejected"), placed: int("packets placed"),
                       dropped: int("frames dropped without a valid clock"))
    }

    static func run(profile: String) async throws -> (Netns.Result, PTPLine?) {
        try Netns.requirePrerequisites(python: false)
        let r = try await Netns.run("""
            "$ATV" simulate homepod --address 127.0.0.2 --port 7000 --output "$TMP/pod.wav" --sessions 1 --no-advertise \\
                --profile \(profile) > "$TMP/pod.out" 2>&1 & POD=$!
            wait_for "$TMP/pod.out" "listening on" 60 || exit 90
            "$ATV" stream "\(sample)" --host 127.0.0.2 --port 7000 --latency 500 --timing ptp -v --storage "$TMP/s.json" \\
                > "$TMP/stream.out" 2> "$TMP/stream.err"
            echo "== rc =="; echo $?
            for _ in $(seq 300); do kill -0 $POD 2>/dev/null || break; sleep 0.1; done
            echo "== truth =="; python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 37000000000)'
            echo "== pod =="; cat "$TMP/pod.out"
            echo "== stream =="; cat "$TMP/stream.out"
            echo "== stream stderr =="; tail -c 3000 "$TMP/stream.err"
            echo "== wav =="; echo "$TMP/pod.wav"
            cp "$TMP/pod.wav" "$TMP/../\(profile)-ptp-pod.wav" 2>/dev/null
            """, timeout: 150)
        return (r, ptpLine(r.section("pod")))
    }

    @Test func atvStreamWithPTPTimingToAHomePodIsBitExactOnTheSendersClock() async throws {
        let (r, ptp) = try await Self.run(profile: "homepod")
        let pod = r.section("pod"), err = r.section("stream stderr")
        #expect(r.section("rc") == "0", "\(err)\n\(pod)")
        #expect(err.contains("AirPlay 2 realtime, PTP timing (forced by --timing ptp)"), "\(err)")
        #expect(pod.contains("timing: PTP"), "\(pod)")
        let line = try #require(ptp, "no ptp line: \(pod)")
        #expect(line.state == "locked", "\(pod)")
        #expect(line.announces >= 2 && line.placed > 0, "\(pod)")
        let truth = try #require(Int64(r.section("truth").trimmingCharacters(in: .whitespacesAndNewlines)))
        let offset = try #require(line.offset, "\(pod)")
        #expect(abs(offset - truth) < 1_000_000, "offset \(offset) ns vs the sender's timescale \(truth) ns")
        print("atv stream --timing ptp → virtual HomePod: offset error \(offset - truth) ns, time announces \(line.announces), "
              + "anchors rejected \(line.rejected), packets placed \(line.placed)")
        // The script copied the WAV next to its temporary directory, which is gone now.
        let wav = URL(fileURLWithPath: r.section("wav").trimmingCharacters(in: .whitespacesAndNewlines))
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("homepod-ptp-pod.wav").path
        defer { try? FileManager.default.removeItem(atPath: wav) }
        try AirPlay2StreamCLITests.checkBitExact(wav, source: try await referencePCM(Self.sample))
    }

    /// The shairport-sync-like profile: the sender's session is accepted (PTP with
    /// timingPeerInfo, RECORD, stream SETUP), the receiver locks on its clock and plays what its
    /// anchors cover. Frames before the clock is valid (400 ms after lock) are dropped, as
    /// shairport-sync drops them; the test reports how many.
    @Test func atvStreamWithPTPTimingToTheStrictProfilePlays() async throws {
        let (r, ptp) = try await Self.run(profile: "shairport-ap2")
        let pod = r.section("pod"), err = r.section("stream stderr")
        #expect(r.section("rc") == "0", "\(err)\n\(pod)")
        let line = try #require(ptp, "no ptp line: \(pod)")
        #expect(line.state == "locked", "\(pod)")
        #expect(line.placed > 0, "audio played: \(pod)")
        let truth = try #require(Int64(r.section("truth").trimmingCharacters(in: .whitespacesAndNewlines)))
        let offset = try #require(line.offset, "\(pod)")
        #expect(abs(offset - truth) < 1_000_000, "offset \(offset) ns vs the sender's timescale \(truth) ns")
        print("atv stream --timing ptp → shairport-ap2 profile: offset error \(offset - truth) ns, time announces \(line.announces), "
              + "anchors rejected \(line.rejected), packets placed \(line.placed), frames dropped before a valid clock \(line.dropped)")
        let wav = URL(fileURLWithPath: r.section("wav").trimmingCharacters(in: .whitespacesAndNewlines))
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shairport-ap2-ptp-pod.wav").path
        try? FileManager.default.removeItem(atPath: wav)
    }
}
