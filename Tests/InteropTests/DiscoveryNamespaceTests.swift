import ATVTestSupport
import Foundation
import Testing

/// `atv scan` and `atv simulate speaker` against real mDNS peers, each test in its own private
/// network namespace (nothing is sent on the host's network).
// Not serialized: every test runs in a namespace of its own (its own lo, ports, mDNS and peers).
@Suite struct DiscoveryNamespaceTests {
    // What scripts/peers/publish-zeroconf.py publishes.
    static let zeroconfDevices = [
        ExpectedDevice(name: "Living Room", address: "127.0.0.2",
                       identifiers: ["6D797FD3-3538-427E-A47B-A32FC6CF3A69", "AA:BB:CC:DD:EE:01", "AABBCCDDEE01"],
                       model: "Gen4K", os: "TvOS", version: "14.7", mac: "AA:BB:CC:DD:EE:01",
                       services: ["mrp": 49152, "airplay": 7000, "raop": 7000, "companion": 49153]),
        ExpectedDevice(name: "Küche", address: "127.0.0.3", identifiers: ["D0:D2:B0:00:00:03", "D0D2B0000003"],
                       model: "HomePodMini", os: "TvOS", version: "17.2", mac: "D0:D2:B0:00:00:03",
                       services: ["airplay": 7000, "raop": 7000, "companion": 49154]),
        ExpectedDevice(name: "Bedroom", address: "127.0.0.4",
                       identifiers: ["0123456789ABCDEF", "58:55:CA:00:00:04", "5855CA000004"],
                       model: "Gen3", os: "Legacy", version: "8.4.4", mac: "58:55:CA:00:00:04",
                       services: ["dmap": 3689, "airplay": 7000, "raop": 49155]),
        ExpectedDevice(name: "Den", address: "127.0.0.5", identifiers: ["AA:00:00:00:00:05", "AA0000000005"],
                       model: "AppleTV4KGen2", os: "TvOS", version: nil, mac: "AA:00:00:00:00:05",
                       services: ["airplay": 0, "raop": 0], deepSleep: true),
    ]

    // What scripts/peers/avahi-services/ publishes.
    static let avahiDevices = [
        ExpectedDevice(name: "Wohnzimmer", address: "127.0.0.6",
                       identifiers: ["4C2E5B66-0F1A-4B9E-8E0B-7D3A2C1B0A99", "AA:BB:CC:00:00:06", "AABBCC000006"],
                       model: "AppleTV4KGen2", os: "TvOS", version: "14.7", mac: "AA:BB:CC:00:00:06",
                       services: ["mrp": 49152, "airplay": 7000, "raop": 7000, "companion": 49153]),
        ExpectedDevice(name: "Schlafzimmer", address: "127.0.0.8",
                       identifiers: ["FEDCBA9876543210", "58:55:CA:00:00:08", "5855CA000008"],
                       model: "Gen3", os: "Legacy", version: "8.4.4", mac: "58:55:CA:00:00:08",
                       services: ["dmap": 3689, "airplay": 7000, "raop": 49155]),
    ]

    static let startZeroconf = """
        "$VENV/bin/python" "$PEERS/publish-zeroconf.py" --add-addresses --sleep-proxy --seconds 40 > "$TMP/pub.out" 2> "$TMP/pub.err" &
        wait_for "$TMP/pub.out" ready 20 || { cat "$TMP/pub.err" >&2; exit 98; }

        """

    func checkAll(_ expected: [ExpectedDevice], _ result: Netns.Result, sections: [String]) throws {
        #expect(!result.timedOut, "namespace script timed out; stderr: \(result.stderr.suffix(800))")
        #expect(result.status == 0, "script failed (\(result.status)): \(result.stderr.suffix(800))")
        for section in sections {
            let devices = try Netns.devices(result.section(section))
            #expect(devices.count == expected.count, "\(section): \(devices.compactMap { $0["name"] as? String })")
            for e in expected { e.check(devices, section) }
        }
    }

    @Test func zeroconfDevicesByMulticastAndUnicast() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run(Self.startZeroconf + """
            echo "== multicast =="; "$ATV" scan --json --timeout 3
            echo "== unicast =="; "$ATV" scan --json --hosts 127.0.0.1 --timeout 3
            echo "== count =="; "$ATV" scan --json --count 4 --timeout 5
            """, timeout: 60)
        try checkAll(Self.zeroconfDevices, result, sections: ["multicast", "unicast", "count"])
    }

    /// Device commands take --to NAME|ID: a name with a non-ASCII character, and an identifier.
    @Test func deviceInfoFindsADeviceByNameOrIdentifier() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run(Self.startZeroconf + """
            echo "== name =="; "$ATV" device-info --to "Küche" --json
            echo "== id =="; "$ATV" device-info --to 0123456789ABCDEF --json
            echo "== missing =="; "$ATV" device-info --to "Nowhere" 2>&1; echo "status=$?"
            """, timeout: 60)
        func device(_ section: String) throws -> [String: Any] {
            let line = result.section(section).split(separator: "\n").last.map(String.init) ?? ""
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return obj["device"] as? [String: Any] ?? [:]
        }
        #expect(try device("name")["name"] as? String == "Küche")
        #expect(try device("name")["address"] as? String == "127.0.0.3")
        #expect(try device("id")["name"] as? String == "Bedroom")
        let missing = result.section("missing")
        #expect(missing.contains("atv: error: device not found"), "\(missing)")
        #expect(missing.contains("status=5"), "\(missing)")
    }

    @Test func avahiDevicesDespiteLegacyUnicastTruncation() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            AVAHI_LOG="$TMP/avahi.log" "$PEERS/avahi-publish-netns.sh" --seconds 12 > "$TMP/pub.out" &
            wait_for "$TMP/pub.out" ready 20 || exit 98
            # One query for four types, as a scanner asking several types at once would send it.
            echo "== combined =="; "$PEERS/avahi-legacy-query.py" 127.0.0.1 _airplay._tcp.local _companion-link._tcp.local _raop._tcp.local _airport._tcp.local
            echo "== unicast =="; "$ATV" scan --json --hosts 127.0.0.1 --timeout 3
            echo "== multicast =="; "$ATV" scan --json --timeout 3
            """, timeout: 60)
        try checkAll(Self.avahiDevices, result, sections: ["unicast", "multicast"])
        // The truncation really bites: the combined answer is cut without TC and misses services.
        let combined = result.section("combined").split(separator: "\n").last.map(String.init) ?? ""
        let obj = try JSONSerialization.jsonObject(with: Data(combined.utf8)) as? [String: Any] ?? [:]
        let ptrs = obj["ptr"] as? [String] ?? []
        #expect((obj["bytes"] as? Int ?? 999) <= 512)
        #expect(obj["tc"] as? Bool == false)
        #expect(!ptrs.isEmpty && ptrs.count < 6, "avahi answered every PTR of 4 types in one packet: \(ptrs)")
    }

    @Test func garbageOnTheSocketsDoesNotDisturbTheScan() async throws {
        try Netns.requirePrerequisites()
        let sprayer = """
            import os, random, socket, struct, subprocess, sys, time
            rng = random.Random(int(sys.argv[1]))
            def name(n):
                return b"".join(bytes([len(l)]) + l for l in (x.encode() for x in n.split("."))) + b"\\0"
            # A plausible response about an unrelated service, cut at random places, and broken variants.
            rr = name("_junk._tcp.local") + struct.pack(">HHIH", 12, 1, 120, 20) + name("x._junk._tcp.local")
            resp = struct.pack(">HHHHHH", 0x3501, 0x8400, 0, 3, 0, 0) + rr * 3
            loops = struct.pack(">HHHHHH", 0, 0x8400, 1, 1, 0, 0) + b"\\xc0\\x0c" + b"\\x00\\x0c\\x00\\x01" + b"\\xc0\\x12"
            tc = struct.pack(">HHHHHH", 0x3502, 0x8600, 0, 40, 0, 0) + rr[:17]
            query = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + name("_raop._tcp.local")[:9]
            senders = []
            for src in ("127.0.0.1", "127.0.0.9"):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((src, 0))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
                senders.append(s)
            def atv_ports():
                out = subprocess.run(["ss", "-uanpH"], capture_output=True, text=True).stdout
                return {int(l.split()[3].rsplit(":", 1)[1]) for l in out.splitlines() if '"atv"' in l}
            end = time.time() + float(sys.argv[2])
            sent = 0
            while time.time() < end and not os.path.exists(sys.argv[3]):
                ports = atv_ports() | {5353}
                for _ in range(200):
                    kind = rng.randrange(5)
                    data = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60))),
                            resp[:rng.randrange(len(resp) + 1)], loops, tc, query][kind]
                    for port in ports:
                        for s in senders:
                            for dst in ("127.0.0.1", "224.0.0.251"):
                                try:
                                    s.sendto(data, (dst, port)); sent += 1
                                except OSError:
                                    pass
                time.sleep(0.005)
            print("sent", sent)
            """
        let result = try await Netns.run(Self.startZeroconf + """
            cat > "$TMP/spray.py" <<'EOF'
            \(sprayer)
            EOF
            command -v ss >/dev/null || { echo "ss (iproute2) is missing" >&2; exit 96; }
            # Sprays for at most 12 s, until the scans are done.
            python3 "$TMP/spray.py" 7 12 "$TMP/stop" > "$TMP/spray.out" 2> "$TMP/spray.err" &
            sleep 0.3
            echo "== multicast =="; "$ATV" scan --json --timeout 3
            echo "== unicast =="; "$ATV" scan --json --hosts 127.0.0.1 --timeout 3
            touch "$TMP/stop"
            wait %2 2>/dev/null
            echo "== spray =="; cat "$TMP/spray.out" "$TMP/spray.err"
            """, timeout: 60)
        try checkAll(Self.zeroconfDevices, result, sections: ["multicast", "unicast"])
        let sent = result.section("spray").split(separator: " ").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        #expect(sent > 1000, "the sprayer sent \(sent) datagrams: \(result.section("spray").prefix(400))")
    }

    @Test func pyatvFindsOurVirtualSpeaker() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" simulate speaker --name "Swift Büro" --device-id 02:11:22:33:44:55 --port 47010 --output "$TMP/s.wav" > "$TMP/spk.out" 2>&1 &
            wait_for "$TMP/spk.out" "Advertising" 10 || exit 98
            echo "== pyatv =="; "$VENV/bin/atvremote" --scan-hosts 127.0.0.1 scan
            echo "== ours =="; "$ATV" scan --json --hosts 127.0.0.1 --timeout 3
            echo "== oursmc =="; "$ATV" scan --json --timeout 2
            echo "== speaker =="; cat "$TMP/spk.out"
            """, timeout: 60)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr.suffix(800))")
        let speaker = result.section("speaker")
        #expect(speaker.contains("also multicast on lo"), "\(speaker)")
        let pyatv = result.section("pyatv")
        #expect(pyatv.contains("Name: Swift Büro"), "\(pyatv)")
        #expect(pyatv.contains("Address: 127.0.0.1"), "\(pyatv)")
        #expect(pyatv.contains(" - 02:11:22:33:44:55"), "\(pyatv)")
        #expect(pyatv.contains(" - 021122334455"), "\(pyatv)")
        #expect(pyatv.contains("Protocol: RAOP, Port: 47010"), "\(pyatv)")
        #expect(pyatv.contains("Protocol: AirPlay, Port: 47010"), "\(pyatv)")
        let expected = ExpectedDevice(name: "Swift Büro", address: "127.0.0.1", identifiers: ["02:11:22:33:44:55", "021122334455"],
                                      model: "Unknown", os: "Unknown", version: nil, mac: "02:11:22:33:44:55",
                                      services: ["raop": 47010, "airplay": 47010])
        expected.check(try Netns.devices(result.section("ours")), "unicast")
        expected.check(try Netns.devices(result.section("oursmc")), "multicast")
    }

    @Test func speakerWithoutAdvertisingIsNotFound() async throws {
        try Netns.requirePrerequisites(python: false)
        let result = try await Netns.run("""
            "$ATV" simulate speaker --no-advertise --port 47011 --output "$TMP/s.wav" > "$TMP/spk.out" 2>&1 &
            wait_for "$TMP/spk.out" "listening" 10 || exit 98
            echo "== ours =="; "$ATV" scan --json --hosts 127.0.0.1 --timeout 1
            echo "== speaker =="; cat "$TMP/spk.out"
            """, timeout: 30)
        #expect(result.status == 0, "\(result.stderr.suffix(800))")
        #expect(try Netns.devices(result.section("ours")).isEmpty)
        #expect(result.section("speaker").contains("listening"), "\(result.section("speaker"))")
        #expect(!result.section("speaker").contains("Advertising"), "\(result.section("speaker"))")
    }
}
