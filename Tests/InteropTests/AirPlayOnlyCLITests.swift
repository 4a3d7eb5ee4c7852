import ATVTestSupport
import Foundation
import Testing

/// An AirPlay 2 receiver that advertises only `_airplay._tcp` (no `_raop._tcp`, as several
/// third-party receivers do) and never asks the sender for timing (it plays by its own clock):
/// `atv simulate homepod --no-raop --no-timing-requests`, found by mDNS in a private network namespace.
// Not serialized: every test runs in a namespace of its own (its own lo, ports, mDNS and peers).
@Suite struct AirPlayOnlyCLITests {
    static let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path

    /// Python that prints "bitexact" when $TMP/out.raw holds $TMP/src.raw at one place with only
    /// silence around it.
    static let compare = """
        python3 -c 'import sys
        c = open(sys.argv[1], "rb").read(); s = open(sys.argv[2], "rb").read()
        s0 = next(i for i in range(0, len(s), 4) if any(s[i:i+4]))
        i = c.find(s[s0:s0 + 8192]) - s0
        ok = i >= 0 and i % 4 == 0 and c[i:i + len(s)] == s and not any(c[:i]) and not any(c[i + len(s):])
        print("bitexact" if ok else "differs", len(s), len(c), i)' "$TMP/out.raw" "$TMP/src.raw"
        """

    /// The issue's acceptance device: scan and device-info show it as the HomePod speaker it is
    /// (model, OS, its one AirPlay service), and `atv stream FILE --to NAME` plays a whole minute
    /// to it over AirPlay 2, bit-exact, although it never sends a timing request.
    @Test func streamsAMinuteToAnAirPlayOnlyReceiverThatNeverAsksForTiming() async throws {
        try Netns.requirePrerequisites(python: false)
        let result = try await Netns.run("""
            ffmpeg -hide_banner -loglevel error -f lavfi -i "anoisesrc=d=60:c=pink:a=0.3:seed=14" \
              -f lavfi -i "sine=frequency=330:duration=60:sample_rate=44100" \
              -filter_complex "[0:a][1:a]amerge=inputs=2[a]" -map "[a]" -ar 44100 -ac 2 -sample_fmt s16 -c:a flac -y "$TMP/minute.flac" || exit 96
            "$ATV" simulate homepod --port 7000 --name "Garden Speaker" --no-raop --no-timing-requests \
              --output "$TMP/out.wav" --sessions 1 > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            echo "== scan =="; "$ATV" scan --timeout 2
            echo "== scanjson =="; "$ATV" scan --timeout 2 --json
            echo "== info =="; "$ATV" device-info --to "Garden Speaker"
            echo "== infojson =="; "$ATV" device-info --to "Garden Speaker" --json
            echo "== stream =="; "$ATV" stream "$TMP/minute.flac" --to "Garden Speaker" -v 2>&1; echo "status=$?"
            for _ in $(seq 100); do grep -q "Stream ended" "$TMP/sim.out" && break; sleep 0.1; done
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== pcm =="
            ffmpeg -hide_banner -loglevel error -i "$TMP/minute.flac" -f s16le -ar 44100 -ac 2 "$TMP/src.raw"
            ffmpeg -hide_banner -loglevel error -i "$TMP/out.wav" -f s16le "$TMP/out.raw"
            \(Self.compare)
            """, timeout: 240)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        #expect(result.status == 0, "status \(result.status), stderr: \(result.stderr.suffix(1500))")

        let scan = result.section("scan")
        #expect(scan.contains("Name: Garden Speaker"), "\(scan)")
        #expect(scan.contains("Model/SW: HomePod Mini, tvOS 18.4"), "\(scan)")
        #expect(scan.contains("Protocol: AirPlay, Port: 7000"), "\(scan)")
        #expect(!scan.contains("Protocol: RAOP"), "only _airplay._tcp is advertised: \(scan)")
        let expected = ExpectedDevice(name: "Garden Speaker", address: "127.0.0.1", identifiers: ["AA:BB:CC:DD:EE:F0"],
                                      model: "HomePodMini", os: "TvOS", version: "18.4", mac: "AA:BB:CC:DD:EE:F0",
                                      services: ["airplay": 7000])
        expected.check(try Netns.devices(result.section("scanjson")), "scan --json")
        let info = result.section("info")
        #expect(info.contains("Model/SW: HomePod Mini, tvOS 18.4") && info.contains("Protocol: AirPlay, Port: 7000"), "\(info)")
        let infoJSON = result.section("infojson")
        let device = try #require(try JSONSerialization.jsonObject(with: Data(infoJSON.utf8)) as? [String: Any], "\(infoJSON)")["device"]
        expected.check([try #require(device as? [String: Any])], "device-info --json")

        let stream = result.section("stream")
        #expect(stream.contains("status=0"), "\(stream.suffix(3000))")
        #expect(stream.contains("advertises no RAOP service: audio streams go to its AirPlay service (port 7000)"), "\(stream.suffix(3000))")
        #expect(stream.contains("AirPlay 2 (features 0x4A7FCA00,0xBC354BD0 have bit 38+48)"), "\(stream.suffix(3000))")
        #expect(stream.contains("Streamed 1:00 to 127.0.0.1:7000 (AirPlay 2, alac"), "\(stream.suffix(3000))")
        #expect(!stream.contains("atv: error"), "\(stream.suffix(3000))")
        let sim = result.section("sim")
        #expect(sim.contains("Advertising \"Garden Speaker\" (_airplay._tcp only)"), "\(sim)")
        #expect(sim.contains("timing requests/replies: 0/0"), "\(sim)")
        #expect(sim.contains("decrypt failures 0"), "\(sim)")
        #expect(result.section("pcm").hasPrefix("bitexact"), "\(result.section("pcm"))")
    }

    /// pyatv streams to the same kind of receiver through its AirPlay service (bit 30,
    /// HasUnifiedAdvertiserInfo): evidence that the simulator mode is a realistic receiver.
    @Test func pyatvStreamsToTheAirPlayOnlyReceiver() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate homepod --port 7000 --no-raop --no-timing-requests --output "$TMP/out.wav" --sessions 1 > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            # Found by scan pyatv would also open its MRP tunnel over AirPlay; this is about streaming.
            echo '{"version": 1, "devices": [{"protocols": {"airplay": {"identifier": "AA:BB:CC:DD:EE:F0", "mrp_tunnel": "disable"}}}]}' > "$HOME/.pyatv.conf"
            echo "== scan =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 scan
            echo "== stream =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 --id AA:BB:CC:DD:EE:F0 stream_file="\(Self.sample)" 2>&1; echo "status=$?"
            for _ in $(seq 100); do grep -q "Stream ended" "$TMP/sim.out" && break; sleep 0.1; done
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== pcm =="
            ffmpeg -hide_banner -loglevel error -i "\(Self.sample)" -f s16le -ar 44100 -ac 2 "$TMP/src.raw"
            ffmpeg -hide_banner -loglevel error -i "$TMP/out.wav" -f s16le "$TMP/out.raw"
            \(Self.compare)
            """, timeout: 150)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        let scan = result.section("scan")
        #expect(scan.contains("Protocol: AirPlay, Port: 7000"), "\(scan)")
        #expect(!scan.contains("Protocol: RAOP"), "\(scan)")
        #expect(result.section("stream").contains("status=0"), "\(result.section("stream").suffix(2000))")
        let sim = result.section("sim")
        #expect(sim.contains("Paired (transient)"), "\(sim)")
        #expect(sim.contains("timing requests/replies: 0/0"), "\(sim)")
        #expect(sim.contains("decrypt failures 0"), "\(sim)")
        #expect(result.section("pcm").hasPrefix("bitexact"), "\(result.section("pcm"))")
    }
}
