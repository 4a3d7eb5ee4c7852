import ATVTestSupport
import Foundation
import Testing

/// `atv stream` as our own AirPlay 2 sender, against `atv simulate homepod`.
@Suite(.serialized) struct AirPlay2StreamCLITests {
    static let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path

    /// The capture holds the whole source at one place, with only silence before and after it.
    static func checkBitExact(_ wav: String, source: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let captured = try wavPCM(wav)
        var s0 = 0
        while s0 + 4 <= source.count, source[s0..<(s0 + 4)].allSatisfy({ $0 == 0 }) { s0 += 4 }
        let needle = source[s0..<min(source.count, s0 + 8192)]
        let found = try #require(findPCM(needle, in: captured), "start of the source not found in the capture",
                                 sourceLocation: sourceLocation)
        let offset = found - s0
        #expect(offset >= 0, sourceLocation: sourceLocation)
        guard offset >= 0 else { return }
        #expect(captured.count >= offset + source.count, sourceLocation: sourceLocation)
        #expect(captured[..<offset].allSatisfy { $0 == 0 }, "only silence may precede the source", sourceLocation: sourceLocation)
        #expect(captured[offset..<min(captured.count, offset + source.count)].elementsEqual(source), "capture differs from the source",
                sourceLocation: sourceLocation)
        #expect(captured[min(captured.count, offset + source.count)...].allSatisfy { $0 == 0 }, "only silence may follow the source",
                sourceLocation: sourceLocation)
    }

    /// Starts `atv simulate homepod` on a free port (no mDNS) and returns it with its port.
    static func startPod(_ wav: String, _ extra: [String] = []) async throws -> (Child, Int) {
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "1",
                                                "--no-advertise"] + extra)
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("listening on") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(out)") }
        return (pod, port)
    }

    @Test func fileToHomePodBitExact() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let (pod, port) = try await Self.startPod(wav, ["--require-user-agent"])
        defer { pod.kill() }
        let sent = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)",
                                                     "--airplay-version", "2", "--latency", "500", "-v",
                                                     "--storage", dir.appendingPathComponent("s.json").path],
                                 timeout: 90, environment: ["HOME": dir.path])
        #expect(sent.status == 0, "\(sent.stderr.suffix(2000))")
        #expect(sent.stderr.contains("AirPlay 2 (forced by --airplay-version 2)"), "\(sent.stderr.suffix(2000))")
        #expect(sent.stdout.contains("AirPlay 2, alac"), "\(sent.stdout)")
        let result = try await pod.wait(timeout: 30)
        #expect(result.stdout.contains("Paired (transient)"), "\(result.stdout)")
        #expect(result.stdout.contains("Event channel: answered"), "\(result.stdout)")
        #expect(result.stdout.contains("decrypt failures 0"), "\(result.stdout)")
        try Self.checkBitExact(wav, source: try await referencePCM(Self.sample))
    }

    /// `--host`/`--port` alone (no TXT): the route comes from the receiver's `GET /info`.
    @Test func hostAloneTakesAirPlay2FromInfo() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let (pod, port) = try await Self.startPod(wav)
        defer { pod.kill() }
        let sent = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)", "-v",
                                                     "--storage", dir.appendingPathComponent("s.json").path],
                                 timeout: 90, environment: ["HOME": dir.path])
        #expect(sent.status == 0, "\(sent.stderr.suffix(2000))")
        #expect(sent.stderr.contains("AirPlay 2 (GET /info features 0x4A7FCA00,0xBC354BD0 have bit 38+48)"), "\(sent.stderr.suffix(2000))")
        #expect(sent.stdout.contains("AirPlay 2, alac"), "\(sent.stdout)")
        let result = try await pod.wait(timeout: 30)
        #expect(result.stdout.contains("Paired (transient)"), "\(result.stdout)")
        #expect(result.stdout.contains("decrypt failures 0"), "\(result.stdout)")
        #expect(result.stdout.contains("refused unauthenticated: 0"), "no ANNOUNCE-style request before pairing: \(result.stdout)")
        try Self.checkBitExact(wav, source: try await referencePCM(Self.sample))
    }

    @Test func stdinWAVToHomePodBitExact() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let (pod, port) = try await Self.startPod(wav)
        defer { pod.kill() }
        let atv = try TestEnv.atv()
        let sent = try await sh("""
            ffmpeg -hide_banner -loglevel error -i "\(Self.sample)" -f wav - | \
            HOME="\(dir.path)" "\(atv)" stream - --host 127.0.0.1 --port \(port) --airplay-version 2 --latency 500 \
              --storage "\(dir.path)/s.json"
            """, timeout: 90)
        #expect(sent.status == 0, "\(sent.stderr.suffix(2000))")
        let result = try await pod.wait(timeout: 30)
        #expect(result.stdout.contains("decrypt failures 0"), "\(result.stdout)")
        try Self.checkBitExact(wav, source: try await referencePCM(Self.sample))
    }

    /// Each fault: non-zero exit, one clear `atv: error:` line, no hang.
    @Test(arguments: [
        (["--transient-error"], "transient pairing"),
        (["--drop-event-channel-after", "1"], "event channel"),
        (["--no-progress"], "makes no progress: it left"),
    ])
    func faultsAreOneLineErrors(flags: [String], expected: String) async throws {
        let dir = try TestEnv.tempDir()
        let (pod, port) = try await Self.startPod(dir.appendingPathComponent("pod.wav").path, flags)
        defer { pod.kill() }
        let clock = ContinuousClock()
        let start = clock.now
        let sent = try await run(try TestEnv.atv(), ["stream", Self.sample, "--host", "127.0.0.1", "--port", "\(port)",
                                                     "--airplay-version", "2", "--progress-timeout", "1",
                                                     "--storage", dir.appendingPathComponent("s.json").path],
                                 timeout: 60, environment: ["HOME": dir.path])
        // Setup, then at most a keep-alive interval (2 s) + the progress timeout + a short TEARDOWN wait.
        #expect(clock.now - start < .seconds(20))
        #expect(sent.status != 0)
        let errors = sent.stderr.split(separator: "\n").filter { $0.hasPrefix("atv: error:") }
        #expect(errors.count == 1, "\(sent.stderr)")
        #expect(errors.first?.contains(expected) == true, "\(sent.stderr)")
    }

    /// Compares `$TMP/out.wav` with the sample: prints "bitexact" when the source is there whole,
    /// with only silence around it.
    static let bitExactScript = """
        ffmpeg -hide_banner -loglevel error -i "\(Self.sample)" -f s16le -ar 44100 -ac 2 "$TMP/src.raw"
        ffmpeg -hide_banner -loglevel error -i "$TMP/out.wav" -f s16le "$TMP/out.raw"
        python3 -c 'import sys
        c = open(sys.argv[1], "rb").read(); s = open(sys.argv[2], "rb").read()
        s0 = next(i for i in range(0, len(s), 4) if any(s[i:i+4]))
        i = c.find(s[s0:s0 + 8192]) - s0
        ok = i >= 0 and i % 4 == 0 and c[i:i + len(s)] == s and not any(c[:i]) and not any(c[i + len(s):])
        print("bitexact" if ok else "differs")' "$TMP/out.raw" "$TMP/src.raw"
        """

    /// In private network namespaces (one per receiver: both simulators advertise 127.0.0.1, which
    /// a scan would merge into one device): found by name, the HomePod gets AirPlay 2 by itself (its
    /// features have bits 38/48), while the AirPlay-1-only virtual speaker still gets RAOP.
    @Test func routeIsChosenFromTheFeaturesFoundByScanning() async throws {
        try Netns.requirePrerequisites(python: false)
        let compare = Self.bitExactScript
        func scenario(_ simulator: String, name: String) async throws -> Netns.Result {
            try await Netns.run("""
                "$ATV" simulate \(simulator) --output "$TMP/out.wav" --sessions 1 > "$TMP/sim.out" 2>&1 &
                wait_for "$TMP/sim.out" Advertising 60 || exit 98
                echo "== stream =="; "$ATV" stream "\(Self.sample)" --to "\(name)" --latency 500 -v 2>&1; echo "status=$?"
                for _ in $(seq 100); do grep -q "Stream ended" "$TMP/sim.out" && break; sleep 0.1; done
                echo "== sim =="; cat "$TMP/sim.out"
                echo "== pcm =="
                \(compare)
                """, timeout: 120)
        }

        let pod = try await scenario("homepod --port 7000", name: "swift-atv HomePod")
        #expect(!pod.timedOut, "stderr: \(pod.stderr.suffix(1500))")
        let podStream = pod.section("stream")
        #expect(podStream.contains("status=0"), "\(podStream)")
        #expect(podStream.contains("AirPlay 2 (features 0x4A7FCA00,0xBC354BD0 have bit 38+48)"), "\(podStream)")
        #expect(pod.section("sim").contains("Paired (transient)"), "\(pod.section("sim"))")
        #expect(pod.section("sim").contains("decrypt failures 0"), "\(pod.section("sim"))")
        #expect(pod.section("pcm").contains("bitexact"), "\(pod.section("pcm"))")

        let speaker = try await scenario("speaker --port 7000 --name \"Old Speaker\"", name: "Old Speaker")
        #expect(!speaker.timedOut, "stderr: \(speaker.stderr.suffix(1500))")
        let speakerStream = speaker.section("stream")
        #expect(speakerStream.contains("status=0"), "\(speakerStream)")
        #expect(speakerStream.contains("AirPlay 1 (RAOP) (features"), "\(speakerStream)")
        #expect(speaker.section("sim").contains("Stream ended"), "\(speaker.section("sim"))")
        #expect(speaker.section("pcm").contains("bitexact"), "\(speaker.section("pcm"))")
    }

    /// A HomePod found by scanning offers MRP through its AirPlay 2 tunnel, but a stream does not
    /// use it: a receiver whose tunnel is refused gets the stream, bit-exact, and sees no
    /// remote-control SETUP before its first audio packet (nor after). A command that needs MRP
    /// then fails with one line.
    @Test func streamSetsUpNoTunnel() async throws {
        try Netns.requirePrerequisites(python: false)
        let r = try await Netns.run("""
            "$ATV" simulate homepod --port 7000 --no-mrp-tunnel --advance 0 --output "$TMP/out.wav" > "$TMP/sim.out" 2>&1 &
            SIM=$!
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            echo "== stream =="; "$ATV" stream "\(Self.sample)" --to "swift-atv HomePod" --latency 500 -v 2>&1; echo "status=$?"
            for _ in $(seq 100); do grep -q "Stream ended" "$TMP/sim.out" && break; sleep 0.1; done
            echo "== playing =="; "$ATV" playing --to "swift-atv HomePod" 2> "$TMP/err"; echo "status=$?"; cat "$TMP/err"
            kill $SIM
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== pcm =="
            \(Self.bitExactScript)
            """, timeout: 150)
        #expect(!r.timedOut, "stderr: \(r.stderr.suffix(1500))")
        let stream = r.section("stream")
        #expect(stream.contains("status=0"), "\(stream)")
        // The tunnel was on offer: MRP is one of the device's protocols.
        #expect(stream.contains("MRP through the AirPlay 2 remote-control channel"), "\(stream)")
        let sim = r.section("sim")
        #expect(sim.contains("before the first audio packet: control connections 1, remote-control setups 0"), "\(sim)")
        #expect(!sim.contains("remote control: sessions") && !sim.contains("Remote-control data channel"), "\(sim)")
        #expect(sim.contains("decrypt failures 0") && sim.contains("unrecovered 0"), "\(sim)")
        #expect(r.section("pcm").contains("bitexact"), "\(r.section("pcm"))")
        let playing = r.section("playing")
        let lines = playing.split(separator: "\n").filter { $0.hasPrefix("atv:") }
        #expect(playing.contains("status=1") && lines.count == 1, "\(playing)")
        #expect(lines.first?.hasPrefix("atv: error: ") == true && playing.contains("remote control through the AirPlay 2 tunnel")
                && playing.contains("501"), "\(playing)")
    }
}
