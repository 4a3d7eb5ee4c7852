import ATVSimulator
import ATVTestSupport
import Foundation
import Testing

// MARK: - The group sender
//
// `startGroup` says how the test's sender streams one file to several receivers at once: one
// `atv stream` with a `--host` per member; each member's route (AirPlay 1 by its features; realtime
// or buffered PTP for the HomePods) is that device's stored preference (`atv group route`).

/// One member of the group under test: its address and RTSP port, and the route the sender must
/// take to it.
struct GroupTestMember {
    enum Route { case airPlay1, realtimePTP, bufferedPTP }
    var name: String
    var host: String
    var port: Int
    var route: Route
}

/// Bash lines, run in the sender's network namespace, that stream `file` to every member as one
/// group with `latencyMs` of receiver buffer, wait until the sender exits, and leave its exit
/// status in "$TMP/sender.rc" and its output in "$TMP/sender.out" / "$TMP/sender.err". ($ATV is
/// the `atv` binary, $TMP a private directory.)
func startGroup(file: String, members: [GroupTestMember], latencyMs: Int) -> String {
    var lines: [String] = []
    for m in members {
        switch m.route {
        case .airPlay1: continue
        case .realtimePTP: lines.append("\"$ATV\" group route \(m.host):\(m.port) --timing ptp --buffered off --storage \"$TMP/s.json\" > /dev/null")
        case .bufferedPTP: lines.append("\"$ATV\" group route \(m.host):\(m.port) --timing ptp --buffered on --storage \"$TMP/s.json\" > /dev/null")
        }
    }
    let hosts = members.map { "--host \($0.host):\($0.port)" }.joined(separator: " ")
    lines.append("\"$ATV\" stream \"\(file)\" \(hosts) --latency \(latencyMs) -v --storage \"$TMP/s.json\" "
        + "> \"$TMP/sender.out\" 2> \"$TMP/sender.err\"")
    lines.append("echo $? > \"$TMP/sender.rc\"")
    return lines.joined(separator: "\n")
}

// MARK: - The harness

/// Multi-room sync, end to end (issue 17): one sender and three receivers, each receiver in a
/// network namespace of its own, all on one LAN (a bridge in the sender's namespace) — an AirPlay 1 virtual
/// speaker (sync packets + NTP timing), a virtual HomePod on realtime PTP and one on buffered PTP
/// (each HomePod's follower on UDP 319/320 of its own namespace, the sender's PTP master on its
/// side of the links). The realtime HomePod's audio goes through scripts/peers/udp-loss-relay.py
/// dropping 5% of its audio datagrams (seeded). Every receiver records when it plays each frame
/// (`--play-instants`, on its CLOCK_MONOTONIC by the clock it follows; one machine, one
/// monotonic clock) and writes what it played; `PlayoutSync` finds the same source frame in each
/// and compares.
@Suite(.serialized) struct MultiRoomSyncTests {
    /// A deterministic test signal: two tones under seeded noise, stereo, never periodic, so any
    /// 256-frame window of it occurs once.
    static func signal(seconds: Int) -> [UInt8] {
        let frames = seconds * 44_100
        var out = [UInt8](repeating: 0, count: frames * 4)
        var s: UInt32 = 0x5EED_0017
        for f in 0 ..< frames {
            s = s &* 1_664_525 &+ 1_013_904_223
            let noise = Double(Int32(bitPattern: s) >> 20)  // ±2048
            let t = Double(f) / 44_100
            let left = Int16(6_000 * sin(2 * .pi * 220 * t) + noise)
            let right = Int16(5_000 * sin(2 * .pi * 331 * t) - noise)
            let l = UInt16(bitPattern: left), r = UInt16(bitPattern: right)
            out[f * 4] = UInt8(l & 0xFF); out[f * 4 + 1] = UInt8(l >> 8)
            out[f * 4 + 2] = UInt8(r & 0xFF); out[f * 4 + 3] = UInt8(r >> 8)
        }
        return out
    }

    /// `pcm` as a 16-bit stereo 44.1 kHz WAV file.
    static func writeWAV(_ pcm: [UInt8], to url: URL) throws {
        var b: [UInt8] = []
        func u32(_ v: Int) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        func u16(_ v: Int) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        b += Array("RIFF".utf8); u32(36 + pcm.count); b += Array("WAVE".utf8)
        b += Array("fmt ".utf8); u32(16); u16(1); u16(2); u32(44_100); u32(44_100 * 4); u16(4); u16(16)
        b += Array("data".utf8); u32(pcm.count)
        try Data(b + pcm).write(to: url)
    }

    struct Outcome {
        var run: Netns.Result
        var logs: [String: PlayoutLog]
        var audio: [String: [UInt8]]
        var relay: [String: Any]
    }

    /// The receivers (one namespace each, on a bridge with the sender) and a sender: `sender` gets the
    /// members and returns the bash lines that stream to them (`startGroup`, or one member's
    /// stream). Returns the receivers' playout logs and audio by member name.
    static func run(seconds: Int, members: [GroupTestMember], lossy: String?, dir: URL,
                    sender: (String, [GroupTestMember]) -> String) async throws -> Outcome {
        try Netns.requirePrerequisites(python: false)
        let file = dir.appendingPathComponent("signal.wav")
        try writeWAV(signal(seconds: seconds), to: file)
        let peers = TestEnv.root.appendingPathComponent("scripts/peers").path
        var script = """
            # One LAN, as at home: a bridge in the sender's namespace holds the sender's address
            # (192.0.2.1/24; one local address, so one PTP master serves every member).
            ip link add br0 type bridge && ip addr add 192.0.2.1/24 dev br0 && ip link set br0 up || exit 89
            # member NS_INDEX MEMBER_ADDR: a namespace (a sleeping process holds it) and a veth from it to the bridge.
            member() {
                ip link add vs$1 type veth peer name vm$1 || exit 90
                unshare --net sleep 600 & eval NS$1=$!
                local pid; eval pid=\\$NS$1
                for _ in $(seq 50); do [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.1; done
                ip link set vm$1 netns $pid || exit 91
                ip link set vs$1 master br0 && ip link set vs$1 up || exit 92
                nsenter --net=/proc/$pid/ns/net sh -c "ip link set lo up && ip addr add $2/24 dev vm$1 && ip link set vm$1 up" || exit 93
            }
            # ns I: the namespace file of member I, for `nsenter --net=$(ns I) CMD &` (nsenter execs CMD, so $! is CMD).
            ns() { eval echo /proc/\\$NS$1/ns/net; }

            """
        for (i, m) in members.enumerated() {
            script += "member \(i) \(m.host)\n"
            let out = dir.appendingPathComponent(m.name).path
            switch m.route {
            case .airPlay1:
                script += "nsenter --net=$(ns \(i)) \"$ATV\" simulate speaker --address \(m.host) --port \(m.port) --output \"\(out).wav\" "
                    + "--play-instants \"\(out).json\" --sessions 1 --no-advertise > \"$TMP/r\(i).out\" 2>&1 & R\(i)=$!\n"
            case .realtimePTP, .bufferedPTP:
                let relay = m.name == lossy ? "--audio-port 6100 --advertised-audio-port 6000" : ""
                script += "nsenter --net=$(ns \(i)) \"$ATV\" simulate homepod --address \(m.host) --port \(m.port) --timing ptp \(relay) "
                    + "--output \"\(out).wav\" --play-instants \"\(out).json\" --sessions 1 --no-advertise > \"$TMP/r\(i).out\" 2>&1 & R\(i)=$!\n"
                if m.name == lossy {
                    script += "nsenter --net=$(ns \(i)) python3 \"\(peers)/udp-loss-relay.py\" --bind \(m.host) --listen 6000 --target \(m.host):6100 "
                        + "--loss 0.05 --seed 17 --only-audio --max-seconds \(seconds + 120) > \"$TMP/relay.out\" 2>&1 & RELAY=$!\n"
                    script += "wait_for \"$TMP/relay.out\" listening 30 || exit 94\n"
                }
            }
            script += "wait_for \"$TMP/r\(i).out\" \"listening on\" 60 || exit 95\n"
        }
        script += sender(file.path, members) + "\n"
        // The receivers end after their session (TEARDOWN + grace); then the relay's counts.
        for i in members.indices {
            script += "for _ in $(seq 300); do kill -0 $R\(i) 2>/dev/null || break; sleep 0.1; done\n"
        }
        if lossy != nil { script += "kill -TERM $RELAY; wait $RELAY\necho \"== relay ==\"; tail -n 1 \"$TMP/relay.out\"\n" }
        script += """
            echo "== rc =="; cat "$TMP/sender.rc"
            echo "== sender stderr =="; tail -c 6000 "$TMP/sender.err"

            """
        for (i, m) in members.enumerated() { script += "echo \"== \(m.name) ==\"; cat \"$TMP/r\(i).out\"\n" }
        let r = try await Netns.run(script, timeout: Double(seconds) + 150)
        var logs: [String: PlayoutLog] = [:], audio: [String: [UInt8]] = [:]
        for m in members {
            let base = dir.appendingPathComponent(m.name).path
            if let data = FileManager.default.contents(atPath: base + ".json") { logs[m.name] = try PlayoutLog.decode(data) }
            audio[m.name] = (try? wavPCM(base + ".wav")) ?? []
        }
        let relay = (try? JSONSerialization.jsonObject(with: Data(r.section("relay").utf8))) as? [String: Any] ?? [:]
        return Outcome(run: r, logs: logs, audio: audio, relay: relay)
    }

    static func describe(_ o: Outcome, _ members: [GroupTestMember]) -> String {
        (["exit \(o.run.status), rc \(o.run.section("rc"))", "stderr: \(o.run.stderr.suffix(2000))",
          "sender: \(o.run.section("sender stderr").suffix(3000))"] + members.map { "\($0.name): \(o.run.section($0.name))" })
            .joined(separator: "\n")
    }

    /// Issue 17's measure: 60 s to three members, one through 5% loss. The same source frame
    /// plays within 1 ms on all three (their CLOCK_MONOTONIC instants), every member plays the
    /// source bit-exact (≥ 99.99% of its frames on the lossy one).
    @Test func threeMembersPlayTheSameFrameWithinAMillisecond() async throws {
        let dir = try makeTempDir("atv-multiroom")
        defer { try? FileManager.default.removeItem(at: dir) }
        let members = [
            GroupTestMember(name: "speaker", host: "192.0.2.2", port: 5000, route: .airPlay1),
            GroupTestMember(name: "realtime", host: "192.0.2.3", port: 7000, route: .realtimePTP),
            GroupTestMember(name: "buffered", host: "192.0.2.4", port: 7000, route: .bufferedPTP),
        ]
        let seconds = 60
        let o = try await Self.run(seconds: seconds, members: members, lossy: "realtime", dir: dir) { file, members in
            startGroup(file: file, members: members, latencyMs: 2000)
        }
        let info = Self.describe(o, members)
        #expect(o.run.section("rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(info)")
        let dropped = o.relay["dropped"] as? Int ?? 0, forwarded = o.relay["forwarded"] as? Int ?? 0
        #expect(dropped > 0 && Double(dropped) / Double(max(1, dropped + forwarded)) > 0.03, "the relay dropped \(dropped) of \(dropped + forwarded): \(info)")
        let source = PlayoutSync.frames(s16le: Self.signal(seconds: seconds))
        var inputs: [PlayoutSync.Member] = []
        for m in members {
            let log = try #require(o.logs[m.name], "\(m.name) wrote no play instants: \(info)")
            #expect(log.instants.count > 7_000, "\(m.name): \(log.instants.count) packets placed, \(log.unplaced) unplaced")
            inputs.append(.init(name: m.name, audio: PlayoutSync.frames(s16le: o.audio[m.name] ?? []), instants: log.instants))
        }
        let result = PlayoutSync.analyze(source: source, members: inputs)
        print("multi-room (\(seconds) s, realtime member through 5% loss: \(dropped) of \(dropped + forwarded) dropped): \(result.summary)")
        #expect(result.framesCompared > source.count / 441 * 9 / 10, "\(result.summary)")
        // Issue 17's bound: the largest spread ≤ 1 ms, under CPU load too (two CPU hogs beside it:
        // 0.11-0.22 ms; the 1.5-3.0 ms spikes were clock reads split by a preemption, SystemClocks).
        #expect(result.maxSpread <= 1_000_000, "max spread \(result.maxSpread) ns: \(result.summary)")
        for r in result.members {
            let needed = r.name == "realtime" ? 0.9999 : 1.0
            #expect(r.bitExactFraction >= needed, "\(r.name): \(result.summary)")
        }
    }

    /// The harness on one member: an AirPlay 1 speaker in its own namespace measures the
    /// sender's clock over NTP (the offset ≈ 0: the sender's clock is this machine's
    /// CLOCK_REALTIME, computed, not assumed), plays the source bit-exact, places every packet
    /// 352 frames after the one before on both clocks, and each packet plays `--latency` after
    /// the sender sent it (RAOP sends one packet per wake-up, each when it is `latency` ahead of
    /// its play instant): on the speaker's monotonic clock, play instant − arrival = 1 s within
    /// 1 ms at the median.
    @Test func oneAirPlay1SpeakerPlaysEachFrameAtTheSendersAnchor() async throws {
        let dir = try makeTempDir("atv-multiroom1")
        defer { try? FileManager.default.removeItem(at: dir) }
        let members = [GroupTestMember(name: "speaker", host: "192.0.2.2", port: 5000, route: .airPlay1)]
        let seconds = 8
        let o = try await Self.run(seconds: seconds, members: members, lossy: nil, dir: dir) { file, members in
            startGroup(file: file, members: members, latencyMs: 1000)
        }
        let info = Self.describe(o, members)
        #expect(o.run.section("rc").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(info)")
        let log = try #require(o.logs["speaker"], "no play instants: \(info)")
        let offset = try #require(log.senderClockOffset, "no timing reply: \(info)")
        #expect(abs(offset) < 1_000_000, "the sender's clock is this machine's: offset \(offset) ns")
        let source = PlayoutSync.frames(s16le: Self.signal(seconds: seconds))
        let audio = PlayoutSync.frames(s16le: o.audio["speaker"] ?? [])
        let start = try #require(PlayoutSync.locate(source, in: audio), "the source is not in the speaker's audio: \(info)")
        let r = PlayoutSync.analyze(source: source, members: [.init(name: "speaker", audio: audio, instants: log.instants)])
        #expect(r.members[0].bitExactFraction == 1, "\(r.summary)")
        #expect(log.unplaced == 0 && log.instants.count >= seconds * 44_100 / 352, "\(log.instants.count) placed, \(log.unplaced) unplaced")
        // Consecutive packets: 352 frames apart on the sender's clock and on ours. Each new sync
        // packet (one a second) re-anchors with the sender's clock at the instant its RTP time is
        // for, a few µs off its RTP schedule; the carry between CLOCK_REALTIME and CLOCK_MONOTONIC
        // is measured per packet (SystemClocks); a better timing exchange during playback moves
        // the speaker's instants one frame per packet (NTPPlacement.follow: as a receiver that
        // corrects by single frames plays). Both stay far below 1 ms.
        var worstMaster: Int64 = 0, worst: Int64 = 0
        for (a, b) in zip(log.instants, log.instants.dropFirst()) where b.framesBefore == a.framesBefore + a.frames {
            let expected = Int64(b.rtpTime &- a.rtpTime) * 1_000_000_000 / 44_100
            worstMaster = max(worstMaster, abs(b.masterTime - a.masterTime - expected))
            worst = max(worst, abs((b.localTime ?? 0) - (a.localTime ?? 0) - expected))
        }
        #expect(worstMaster < 200_000, "sender-clock instants step off 352 frames by up to \(worstMaster) ns")
        #expect(worst < 1_000_000, "local instants drift from the sender's by \(worst) ns between packets")
        let leads = log.instants.compactMap { p in p.localTime.flatMap { l in p.arrivedAt.map { l - $0 } } }.sorted()
        let lead = leads.isEmpty ? 0 : leads[leads.count / 2]
        let first = try #require(log.instants.first { $0.framesBefore <= start && start < $0.framesBefore + $0.frames })
        print("one AirPlay 1 speaker in its own namespace: offset \(offset) ns, \(log.instants.count) packets placed, "
              + "worst step error \(worstMaster) ns (sender's clock), \(worst) ns (local), source at WAV frame \(start), play − arrival: median \(lead) ns, "
              + "min \(leads.first ?? 0) ns, max \(leads.last ?? 0) ns")
        #expect(!first.late, "the first frame arrived after its instant")
        // AirPlay 1 sends bursts of up to 4 packets, each at most 24 ms before it is due
        // (`RAOPOptions.raopDefaultSendAhead`): the 1 s latency plus at most that.
        #expect(lead > 999_000_000 && lead < 1_025_000_000,
                "median play − arrival \(lead) ns, expected the 1 s latency plus at most the 24 ms send-ahead")
    }
}
