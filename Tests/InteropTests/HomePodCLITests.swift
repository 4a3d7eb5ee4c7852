import ATVTestSupport
import Foundation
import Testing

/// `atv simulate homepod` as users run it, with pyatv's atvremote as the AirPlay 2 sender.
@Suite(.serialized) struct HomePodCLITests {
    static func checkBitExact(_ wav: String, source: [UInt8]) throws {
        let captured = try wavPCM(wav)
        let offset = try #require(findPCM(source.prefix(4096), in: captured), "start of the source not found in the capture")
        #expect(offset == 0, "pyatv's first packet carries the first frame")
        #expect(captured.count >= offset + source.count)
        #expect(captured[offset..<min(captured.count, offset + source.count)].elementsEqual(source), "capture differs from the source")
        #expect(captured[min(captured.count, offset + source.count)...].allSatisfy { $0 == 0 }, "only silence may follow the source")
    }

    /// `--manual` with the TXT the simulator prints: pyatv picks AirPlay 2 from the features word.
    @Test func pyatvStreamsToSimulatedHomePod() async throws {
        let dir = try TestEnv.tempDir()
        let wav = dir.appendingPathComponent("pod.wav").path
        let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "1",
                                                "--no-advertise", "--require-user-agent"])
        defer { pod.kill() }
        let out = try await pod.waitForOutput(timeout: 60) { $0.contains("--service-properties") }
        guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(out[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(out)") }
        guard let p = out.range(of: #"--service-properties "([^"]+)""#, options: .regularExpression) else {
            throw TestFailure("no TXT line in: \(out)")
        }
        let properties = String(out[p].dropFirst("--service-properties \"".count).dropLast())

        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        let sent = try await run(try TestEnv.venvTool("atvremote"),
                                 ["--manual", "--address", "127.0.0.1", "--port", "\(port)", "--protocol", "raop",
                                  "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", properties, "stream_file=\(sample)"],
                                 timeout: 60, environment: env)
        #expect(sent.status == 0, "atvremote: \(sent.stderr.suffix(2000))")
        let result = try await pod.wait(timeout: 20)
        #expect(result.status == 0)
        #expect(result.stdout.contains("Paired (transient)"), "\(result.stdout)")
        #expect(result.stdout.contains("Event channel: answered"), "\(result.stdout)")
        #expect(result.stdout.contains("Stream ended: \(wav)"))
        #expect(result.stdout.contains("decrypt failures 0"))
        try Self.checkBitExact(wav, source: try await referencePCM(sample))
    }

    /// In a private network namespace: the simulator advertises `_airplay._tcp` + `_raop._tcp` by
    /// mDNS, atvremote finds it by scanning and streams to it over AirPlay 2.
    @Test func pyatvFindsTheHomePodByMDNSAndStreams() async throws {
        try Netns.requirePrerequisites()
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let result = try await Netns.run("""
            "$ATV" simulate homepod --port 7000 --output "$TMP/pod.wav" --sessions 1 > "$TMP/pod.out" 2>&1 &
            wait_for "$TMP/pod.out" Advertising 60 || exit 98
            echo "== scan =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 scan
            # Found by scan, pyatv would also open its MRP tunnel over AirPlay (remote-control
            # session, stream type 130); this test is about streaming only, so turn it off
            # (HomePodTunnelCLITests covers the tunnel).
            echo '{"version": 1, "devices": [{"protocols": {"airplay": {"identifier": "AA:BB:CC:DD:EE:F0", "mrp_tunnel": "disable"}}}]}' > "$HOME/.pyatv.conf"
            echo "== stream =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 --id AA:BB:CC:DD:EE:F0 --protocol raop stream_file="\(sample)"; echo "status=$?"
            for _ in $(seq 100); do grep -q "Stream ended" "$TMP/pod.out" && break; sleep 0.1; done
            echo "== pod =="; cat "$TMP/pod.out"
            echo "== pcm =="
            ffmpeg -hide_banner -loglevel error -i "$TMP/pod.wav" -f s16le "$TMP/cap.raw"
            ffmpeg -hide_banner -loglevel error -i "\(sample)" -f s16le -ar 44100 -ac 2 "$TMP/src.raw"
            python3 -c 'import sys; c=open(sys.argv[1],"rb").read(); s=open(sys.argv[2],"rb").read(); print("bitexact=" + ("yes" if c[:len(s)]==s and not any(c[len(s):]) else "no"), len(s), len(c))' "$TMP/cap.raw" "$TMP/src.raw"
            """, timeout: 120)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        let scan = result.section("scan")
        #expect(scan.contains("swift-atv HomePod"), "\(scan)")
        #expect(scan.contains("AudioAccessory5,1") || scan.contains("HomePod"), "\(scan)")
        #expect(result.section("stream").contains("status=0"), "\(result.section("stream")) \(result.stderr.suffix(1500))")
        let podOut = result.section("pod")
        #expect(podOut.contains("Paired (transient)"), "\(podOut)")
        #expect(podOut.contains("decrypt failures 0"), "\(podOut)")
        #expect(result.section("pcm").contains("bitexact=yes"), "\(result.section("pcm"))")
    }
    /// The fault flags as pyatv meets them: `--transient-error` makes its pairing fail (it reads the
    /// salt from M2, which is not there), `--drop-event-channel-after` does not stop its stream.
    @Test func faultFlagsAgainstPyatv() async throws {
        let dir = try TestEnv.tempDir()
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        func start(_ flags: [String], wav: String) async throws -> (Child, Int, String) {
            let pod = try Child(try TestEnv.atv(), ["simulate", "homepod", "--port", "0", "--output", wav, "--sessions", "1",
                                                    "--no-advertise"] + flags)
            let out = try await pod.waitForOutput(timeout: 60) { $0.contains("--service-properties") }
            guard let r = out.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
                  let port = Int(out[r].split(separator: ":")[1]),
                  let p = out.range(of: #"--service-properties "([^"]+)""#, options: .regularExpression) else {
                throw TestFailure("no port/TXT in: \(out)")
            }
            return (pod, port, String(out[p].dropFirst("--service-properties \"".count).dropLast()))
        }
        func stream(_ port: Int, _ properties: String) async throws -> ProcessResult {
            try await run(try TestEnv.venvTool("atvremote"),
                          ["--manual", "--address", "127.0.0.1", "--port", "\(port)", "--protocol", "raop",
                           "--id", "AA:BB:CC:DD:EE:F0", "--service-properties", properties, "stream_file=\(sample)"],
                          timeout: 60, environment: env)
        }

        let (refusing, port1, props1) = try await start(["--transient-error"], wav: dir.appendingPathComponent("a.wav").path)
        defer { refusing.kill() }
        let failed = try await stream(port1, props1)
        #expect(failed.status != 0, "pyatv should not stream after an in-band pairing error")
        refusing.kill()

        let wav = dir.appendingPathComponent("b.wav").path
        let (dropping, port2, props2) = try await start(["--drop-event-channel-after", "1"], wav: wav)
        defer { dropping.kill() }
        let streamed = try await stream(port2, props2)
        #expect(streamed.status == 0, "atvremote: \(streamed.stderr.suffix(1500))")
        let result = try await dropping.wait(timeout: 20)
        #expect(result.stdout.contains("Event channel: dropped"), "\(result.stdout)")
        try Self.checkBitExact(wav, source: try await referencePCM(sample))
    }
}
