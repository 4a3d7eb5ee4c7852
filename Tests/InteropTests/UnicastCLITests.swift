import ATVTestSupport
import Foundation
import Testing

/// `--hosts` on every device command, where multicast cannot be used: each test runs in a private
/// network namespace whose loopback has multicast switched off (so there is no multicast-capable
/// interface and no route to 224.0.0.251, as across a VLAN or out of a container). The virtual
/// devices still answer unicast mDNS queries on port 5353. 192.0.2.9 (TEST-NET-1), behind a veth
/// pair inside the namespace (multicast off too) that nothing answers on, is a host that never answers.
/// Also `atv scan` printing each device as soon as its records are complete (`--stream`).
// Not serialized: every test runs in a namespace of its own (its own lo, ports, mDNS and peers).
@Suite struct UnicastCLITests {
    static let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path

    /// Namespace set-up shared by the scenarios: no multicast anywhere, one silent host.
    static let noMulticast = """
        ip link set lo multicast off
        ip link add atvu0 type veth peer name atvu1 || exit 97
        for l in atvu0 atvu1; do ip link set $l multicast off; ip link set $l up; done
        ip addr add 192.0.2.1/24 dev atvu0
        echo "== route =="; ip route get 224.0.0.251 2>&1; echo "status=$?"

        """

    /// A one-line error on stderr and the exit status, from "CMD 2>&1; echo status=$?".
    func checkOneLineError(_ section: String, contains expected: String, status: String = "status=5",
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = section.split(separator: "\n").map(String.init)
        let errors = lines.filter { $0.hasPrefix("atv: error:") }
        #expect(errors.count == 1 && errors[0].contains(expected), "\(section)", sourceLocation: sourceLocation)
        #expect(lines.filter { !$0.hasPrefix("status=") && !$0.hasPrefix("elapsed_ms=") }.count == 1, "\(section)", sourceLocation: sourceLocation)
        #expect(lines.contains(status), "\(section)", sourceLocation: sourceLocation)
    }

    /// Seconds of "elapsed_ms=MS" in a section.
    func elapsed(_ section: String) -> Double {
        section.split(separator: "\n").first { $0.hasPrefix("elapsed_ms=") }.flatMap { Double($0.dropFirst(11)) }.map { $0 / 1000 } ?? .infinity
    }

    @Test func streamFindsTheSpeakerByUnicastWhereMulticastCannotGo() async throws {
        try Netns.requirePrerequisites(python: false)
        let result = try await Netns.run(Self.noMulticast + """
            "$ATV" simulate speaker --name "Attic" --port 7000 --output "$TMP/out.wav" --sessions 1 > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            timed() { local t0=$(date +%s%N); "$@" 2>&1; echo "status=$?"; echo "elapsed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"; }
            # The silent host's 3 s wait runs beside the rest (it only waits for its timeout).
            timed "$ATV" stream "\(Self.sample)" --to Attic --hosts 192.0.2.9 > "$TMP/silent.out" &
            silent=$!
            echo "== multicast =="; timed "$ATV" stream "\(Self.sample)" --to Attic
            echo "== only =="; "$ATV" device-info --hosts 127.0.0.1 --json 2>&1; echo "status=$?"
            echo "== stream =="; timed "$ATV" stream "\(Self.sample)" --to Attic --hosts 192.0.2.9,127.0.0.1 --latency 500
            wait $silent
            echo "== silent =="; cat "$TMP/silent.out"
            for _ in $(seq 100); do grep -q "Stream ended" "$TMP/sim.out" && break; sleep 0.1; done
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== pcm =="
            ffmpeg -hide_banner -loglevel error -i "\(Self.sample)" -f s16le -ar 44100 -ac 2 "$TMP/src.raw"
            ffmpeg -hide_banner -loglevel error -i "$TMP/out.wav" -f s16le "$TMP/out.raw"
            python3 -c 'import sys
            c = open(sys.argv[1], "rb").read(); s = open(sys.argv[2], "rb").read()
            s0 = next(i for i in range(0, len(s), 4) if any(s[i:i+4]))
            i = c.find(s[s0:s0 + 8192]) - s0
            ok = i >= 0 and i % 4 == 0 and c[i:i + len(s)] == s and not any(c[:i]) and not any(c[i + len(s):])
            print("bitexact" if ok else "differs")' "$TMP/out.raw" "$TMP/src.raw"
            """, timeout: 150)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        // No multicast route at all in this namespace.
        let route = result.section("route")
        #expect(route.contains("status=") && !route.contains("status=0"), "\(route)")
        #expect(route.lowercased().contains("unreachable"), "\(route)")
        // By multicast the speaker cannot be found: one line, naming the cause.
        checkOneLineError(result.section("multicast"), contains: "no network interface supports multicast", status: "status=1")
        // A host that does not answer is named, in one line, within 5 s.
        checkOneLineError(result.section("silent"), contains: "192.0.2.9 did not answer mDNS queries within 3 s")
        #expect(elapsed(result.section("silent")) <= 5, "\(result.section("silent"))")
        // Found at 127.0.0.1 by unicast (the silent host does not hold it up), streamed bit-exact.
        let stream = result.section("stream")
        #expect(stream.contains("status=0"), "\(stream)")
        #expect(elapsed(stream) < 30, "\(stream)")
        #expect(result.section("sim").contains("Stream ended"), "\(result.section("sim"))")
        #expect(result.section("pcm").contains("bitexact"), "\(result.section("pcm"))")
        // A single host and no --to: the only device it answers for (asked before the stream, after
        // which the speaker exits).
        let only = result.section("only")
        #expect(only.contains("\"name\":\"Attic\"") && only.contains("status=0"), "\(only)")
    }

    @Test func controlCommandsFindTheAppleTVByUnicastWhereMulticastCannotGo() async throws {
        try Netns.requirePrerequisites(python: false)
        let result = try await Netns.run(Self.noMulticast + """
            "$ATV" simulate appletv --name "Den TV" --advance 0 > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            S="$TMP/devices.json"
            # The two commands that wait 3 s for the silent host run beside the others (the
            # settings file is written atomically under a lock).
            { "$ATV" playing --to "Den TV" --hosts 192.0.2.9 --storage "$S" 2>&1; echo "status=$?"; } > "$TMP/silent.out" &
            silent=$!
            { "$ATV" playing --to "Nowhere" --hosts 127.0.0.1,192.0.2.9 --storage "$S" 2>&1; echo "status=$?"; } > "$TMP/wrongname.out" &
            wrongname=$!
            echo "== pair =="
            "$ATV" pair --to "Den TV" --hosts 127.0.0.1 --protocol mrp --pin 1111 --storage "$S" 2>&1; echo "status=$?"
            "$ATV" pair --to "Den TV" --hosts 127.0.0.1 --protocol companion --pin 1111 --storage "$S" 2>&1; echo "status=$?"
            echo "== playing =="; "$ATV" playing --to "Den TV" --hosts 127.0.0.1 --storage "$S" 2>&1; echo "status=$?"
            echo "== only =="; "$ATV" playing --hosts 127.0.0.1 --storage "$S" --json 2>&1; echo "status=$?"
            echo "== remote =="; "$ATV" remote pause --to "Den TV" --hosts 127.0.0.1 --storage "$S" 2>&1; echo "status=$?"
            echo "== multicast =="; "$ATV" playing --to "Den TV" --storage "$S" 2>&1; echo "status=$?"
            echo "== two =="; "$ATV" playing --hosts 127.0.0.1,192.0.2.9 --storage "$S" 2>&1; echo "status=$?"
            echo "== both =="; "$ATV" playing --host 127.0.0.1 --hosts 127.0.0.1 --storage "$S" 2>&1; echo "status=$?"
            wait $silent $wrongname
            echo "== silent =="; cat "$TMP/silent.out"
            echo "== wrongname =="; cat "$TMP/wrongname.out"
            """, timeout: 150)
        #expect(!result.timedOut, "stderr: \(result.stderr.suffix(1500))")
        let pair = result.section("pair")
        #expect(pair.components(separatedBy: "status=0").count == 3, "\(pair)")
        #expect(pair.contains("Paired with Den TV over MRP") && pair.contains("Paired with Den TV over Companion"), "\(pair)")
        let playing = result.section("playing")
        #expect(playing.contains("status=0") && playing.contains("Title: First Light"), "\(playing)")
        let only = result.section("only")
        #expect(only.contains("status=0") && only.contains("\"title\":\"First Light\""), "\(only)")
        #expect(result.section("remote").contains("status=0"), "\(result.section("remote"))")
        checkOneLineError(result.section("multicast"), contains: "no network interface supports multicast", status: "status=1")
        checkOneLineError(result.section("silent"), contains: "192.0.2.9 did not answer mDNS queries within 3 s")
        checkOneLineError(result.section("wrongname"),
                          contains: "no device named or identified 'Nowhere' at 127.0.0.1, 192.0.2.9 (192.0.2.9 did not answer mDNS queries within 3 s)")
        let two = result.section("two")
        #expect(two.contains("with several --hosts, say which device with --to") && !two.contains("status=0"), "\(two)")
        let both = result.section("both")
        #expect(both.contains("--host and --hosts exclude each other") && !both.contains("status=0"), "\(both)")
    }

    /// Each device is printed as soon as its records are complete: on a 5 s multicast scan the
    /// first line arrives within 1 s; `--json --stream` prints one JSON object per device per line.
    @Test func scanPrintsEachDeviceAsSoonAsItIsComplete() async throws {
        try Netns.requirePrerequisites()
        let timer = """
            import json, subprocess, sys, time
            t0 = time.monotonic()
            p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
            for line in p.stdout:
                print(json.dumps({"t": round(time.monotonic() - t0, 3), "line": line.rstrip("\\n")}))
            p.wait()
            print(json.dumps({"t": round(time.monotonic() - t0, 3), "status": p.returncode}))
            """
        let result = try await Netns.run(DiscoveryNamespaceTests.startZeroconf + """
            cat > "$TMP/timer.py" <<'EOF'
            \(timer)
            EOF
            # The two 5 s multicast scans side by side (two processes, two cores); the short ones
            # start once both printed their devices, while those only wait for their timeout.
            python3 "$TMP/timer.py" "$ATV" scan --json --stream --timeout 5 > "$TMP/json.out" &
            json=$!
            python3 "$TMP/timer.py" "$ATV" scan --timeout 5 > "$TMP/text.out" &
            text=$!
            wait_for "$TMP/json.out" '"line"' 5 && wait_for "$TMP/text.out" 'Name: ' 5
            echo "== unicast =="; python3 "$TMP/timer.py" "$ATV" scan --json --stream --hosts 127.0.0.1 --timeout 5
            echo "== find =="; python3 "$TMP/timer.py" "$ATV" device-info --to "Küche" --json
            wait $json $text
            echo "== json =="; cat "$TMP/json.out"
            echo "== text =="; cat "$TMP/text.out"
            """, timeout: 90)
        #expect(!result.timedOut && result.status == 0, "stderr: \(result.stderr.suffix(1500))")
        func timedLines(_ section: String) throws -> [(t: Double, line: String?, status: Int?)] {
            try result.section(section).split(separator: "\n").map { l in
                let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any] ?? [:]
                return (o["t"] as? Double ?? .infinity, o["line"] as? String, o["status"] as? Int)
            }
        }
        let expectedNames: Set<String> = Set(DiscoveryNamespaceTests.zeroconfDevices.map(\.name))

        // JSON lines: one device object per line, the first well before the timeout.
        for section in ["json", "unicast"] {
            let json = try timedLines(section)
            let devices = try json.compactMap(\.line).map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            }
            #expect(json.last?.status == 0, "\(section): \(json)")
            #expect(devices.count == 4, "\(section): \(json)")
            #expect(Set(devices.compactMap { $0["name"] as? String }) == expectedNames, "\(section): \(json)")
            #expect(devices.allSatisfy { $0["services"] is [[String: Any]] && $0["address"] is String }, "\(section)")
            let first = json.first { $0.line != nil }?.t ?? .infinity
            print("atv scan --json --stream (\(section)): device lines at \(json.filter { $0.line != nil }.map(\.t)) s, exit at \(json.last?.t ?? 0) s")
            #expect(first <= 1.0, "\(section): first device after \(first) s: \(json)")
        }
        for e in DiscoveryNamespaceTests.zeroconfDevices {
            let devices = try timedLines("json").compactMap(\.line).compactMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            e.check(devices, "stream")
        }
        // The multicast scan itself still runs its 5 s (devices that answer late are still found).
        #expect((try timedLines("json").last?.t ?? 0) >= 4.9)

        // --to returns as soon as the named device is complete, not after the 3 s scan.
        let find = try timedLines("find")
        #expect(find.last?.status == 0 && find.contains { $0.line?.contains("\"name\":\"Küche\"") == true }, "\(find)")
        #expect((find.last?.t ?? .infinity) <= 1.5, "device-info --to took \(find.last?.t ?? 0) s: \(find)")
        print("atv device-info --to (multicast) exited after \(find.last?.t ?? 0) s")

        // Text: the first device block is printed within 1 s too.
        let text = try timedLines("text")
        let firstName = text.first { $0.line?.hasPrefix("       Name: ") == true }?.t ?? .infinity
        #expect(firstName <= 1.0, "first device after \(firstName) s: \(text)")
        #expect(text.filter { $0.line?.hasPrefix("       Name: ") == true }.count == 4, "\(text)")
    }

    /// A responder that names an instance whose SRV and TXT never come (scripts/peers/
    /// mdns-ghost-instance.py): the follow-up is given up on after 1.5 s and the device reported
    /// then, not at the end of the scan (before, `atv scan` printed nothing for its whole timeout,
    /// and `--to` took its whole 3 s).
    @Test func anInstanceWhoseRecordsNeverComeDoesNotHoldBackItsDevice() async throws {
        try Netns.requirePrerequisites()
        let timer = """
            import json, subprocess, sys, time
            t0 = time.monotonic()
            p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
            first = None
            for line in p.stdout:
                if first is None and ("Name: Porch" in line or '"name":"Porch"' in line):
                    first = round(time.monotonic() - t0, 3)
            p.wait()
            print(json.dumps({"first": first, "exit": round(time.monotonic() - t0, 3), "status": p.returncode}))
            """
        let result = try await Netns.run("""
            "$VENV/bin/python" "$PEERS/mdns-ghost-instance.py" 60 > "$TMP/ghost.out" 2> "$TMP/ghost.err" &
            wait_for "$TMP/ghost.out" ready 20 || { cat "$TMP/ghost.err" >&2; exit 98; }
            cat > "$TMP/timer.py" <<'EOF'
            \(timer)
            EOF
            # The 5 s multicast scan beside the two others, which run one after the other.
            python3 "$TMP/timer.py" "$ATV" scan --timeout 5 > "$TMP/text.out" &
            text=$!
            echo "== unicast =="; python3 "$TMP/timer.py" "$ATV" scan --json --stream --hosts 127.0.0.1 --timeout 5
            echo "== find =="; python3 "$TMP/timer.py" "$ATV" device-info --to Porch --json
            wait $text
            echo "== text =="; cat "$TMP/text.out"
            """, timeout: 60)
        #expect(!result.timedOut && result.status == 0, "stderr: \(result.stderr.suffix(1500))")
        func timing(_ section: String) throws -> (first: Double, exit: Double, status: Int) {
            let o = try JSONSerialization.jsonObject(with: Data(result.section(section).utf8)) as? [String: Any] ?? [:]
            return (o["first"] as? Double ?? .infinity, o["exit"] as? Double ?? .infinity, o["status"] as? Int ?? -1)
        }
        let text = try timing("text"), unicast = try timing("unicast"), find = try timing("find")
        print("ghost instance: scan first device at \(text.first) s; unicast scan done at \(unicast.exit) s; --to at \(find.exit) s")
        #expect(text.status == 0 && text.first <= 2.5, "\(text)")
        #expect(unicast.status == 0 && unicast.first <= 2.5 && unicast.exit <= 2.5, "\(unicast)")
        #expect(find.status == 0 && find.first <= 2.5 && find.exit <= 2.5, "\(find)")
    }
}
