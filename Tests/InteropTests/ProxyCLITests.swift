import ATVTestSupport
import Foundation
import Testing

/// `atv proxy companion` between pyatv (controller) and our virtual Companion device, in a private
/// network namespace: pyatv discovers the proxy by mDNS, pairs with it by PIN, and its commands
/// reach the device through the proxy, which logs every message decoded.
@Suite(.serialized) struct ProxyCLITests {
    @Test func pyatvPairsWithTheProxyAndItsCommandsReachTheDeviceAcrossARestart() async throws {
        try Netns.requirePrerequisites()
        let r = try await Netns.run("""
            "$ATV" simulate companion --port 0 --name "Virtual Den" --no-advertise > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" "listening on" 60 || exit 98
            PORT=$(grep -o '127.0.0.1:[0-9]*' "$TMP/sim.out" | head -1 | cut -d: -f2)
            "$ATV" pair --host 127.0.0.1 --port "$PORT" --protocol companion --pin 1111 --storage "$TMP/devices.json" > /dev/null || exit 96
            CREDS=$("$VENV/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['devices'][0]['protocols']['companion']['credentials'])" "$TMP/devices.json")
            "$ATV" proxy companion --host 127.0.0.1 --port "$PORT" --credentials "$CREDS" --name "Den Proxy" --pairings "$TMP/pairings.json" > "$TMP/proxy1.out" 2>&1 &
            FIRST=$!
            wait_for "$TMP/proxy1.out" Advertising 60 || exit 95
            mkdir -p "$TMP/home"; export HOME="$TMP/home"
            echo "== scan =="; "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 scan
            echo "== pair =="; echo 1111 | "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Den Proxy" --protocol companion pair; echo "status=$?"
            # A restarted proxy (same name: same identity; pairings from the file) still knows pyatv.
            kill -INT $FIRST; wait $FIRST
            echo "== pairings =="; cat "$TMP/pairings.json"; echo
            "$ATV" proxy companion -vv --host 127.0.0.1 --port "$PORT" --credentials "$CREDS" --name "Den Proxy" --pairings "$TMP/pairings.json" --log "$TMP/proxy.log" > "$TMP/proxy.out" 2> "$TMP/proxy.err" &
            wait_for "$TMP/proxy.out" Advertising 60 || exit 94
            echo "== use =="; "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Den Proxy" app_list launch_app=com.netflix.Netflix turn_off; echo "status=$?"
            sleep 0.5
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== log =="; cat "$TMP/proxy.log"
            echo "== err =="; cat "$TMP/proxy.err"
            """, timeout: 150)
        #expect(!r.timedOut && r.status == 0, "\(r.stdout.suffix(1500)) \(r.stderr.suffix(800))")
        let scan = r.section("scan")
        #expect(scan.contains("Name: Den Proxy") && scan.contains("Protocol: Companion") && scan.contains("Pairing: Mandatory"), "\(scan)")
        #expect(r.section("pair").contains("Pairing seems to have succeeded") && r.section("pair").contains("status=0"), "\(r.section("pair"))")
        #expect(r.section("pairings").contains("\"public_key\""), "\(r.section("pairings"))")
        let use = r.section("use")
        #expect(use.contains("App: Netflix (com.netflix.Netflix)") && use.contains("status=0"), "\(use)")
        // The device saw what pyatv asked the proxy for.
        let sim = r.section("sim")
        for line in ["Launched com.netflix.Netflix", "Power off", "Message FetchLaunchableApplicationsEvent", "Message _launchApp"] {
            #expect(sim.contains(line), "\(line) missing in \(sim)")
        }
        // The proxy logged every message decoded, both ways (file and stderr).
        let log = r.section("log")
        #expect(log.contains("proxy: verified with the device") && log.contains("verified"), "\(log.prefix(1000))")
        #expect(!log.contains("paired"), "the second proxy only verifies: \(log.prefix(1000))")
        #expect(log.contains("controller->device encryptedOPACK request FetchLaunchableApplicationsEvent"), "\(log.prefix(2000))")
        #expect(log.contains("device->controller encryptedOPACK response") && log.contains("\"com.netflix.Netflix\": \"Netflix\""), "\(log.prefix(3000))")
        #expect(log.contains("controller->device encryptedOPACK request _launchApp") && log.contains("\"_bundleID\": \"com.netflix.Netflix\""), "\(log.prefix(3000))")
        #expect(r.section("err").contains("request _launchApp"))
        // -vv: debug lines carry the decrypted OPACK payloads as hex for `atv log`.
        #expect(r.section("err").contains("companion frame controller->device type=8 opack="))
    }

    @Test func relayForwardsAndDumpsBytes() async throws {
        let (sim, port) = try await CompanionCLITests().startSimulator()
        defer { sim.kill() }
        let relay = try Child(try TestEnv.atv(), ["proxy", "relay", "0", "127.0.0.1", String(port)])
        defer { relay.kill() }
        let out = try await relay.waitForOutput(timeout: 60) { $0.contains("Relaying 127.0.0.1:") }
        let local = try #require(out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) })
        let home = try TestEnv.tempDir()
        let pair = try await Child(try TestEnv.venvTool("atvremote"),
                                   ["--manual", "--address", "127.0.0.1", "--port", String(local), "--protocol", "companion", "--id", "RELAYTEST", "pair"],
                                   stdin: { let p = Pipe(); p.fileHandleForWriting.write(Data("1111\n".utf8)); try? p.fileHandleForWriting.close(); return p.fileHandleForReading }(),
                                   environment: ["HOME": home.path]).wait(timeout: 60)
        #expect(pair.status == 0 && pair.stdout.contains("Pairing seems to have succeeded"), "\(pair.stdout) \(pair.stderr)")
        _ = try await sim.waitForOutput(timeout: 10) { $0.contains("Paired with") }
        // Pair-setup frames are plain: the dump shows frame type 0x03 (PS_Start) and the _pd key.
        let dump = relay.stderr
        #expect(dump.contains("local->remote") && dump.contains("remote->local"), "\(dump.prefix(500))")
        #expect(dump.contains("00000000  03 "), "\(dump.prefix(500))")
        #expect(dump.contains("_pd"), "\(dump.prefix(800))")
    }
}
