import ATVTestSupport
import Foundation
import Testing

/// `atv proxy mrp` between pyatv (controller) and our virtual Apple TV (`atv simulate mrp`), in a
/// private network namespace: the proxy advertises _mediaremotetv._tcp, pyatv pairs with it by
/// PIN, and pyatv's `playing`, `pause`, `next` reach the device through the proxy, which logs every
/// ProtocolMessage decoded in both directions.
@Suite(.serialized) struct ProxyMRPCLITests {
    @Test func pyatvPairsWithTheMRPProxyAndItsCommandsReachTheDevice() async throws {
        try Netns.requirePrerequisites()
        let r = try await Netns.run("""
            "$ATV" simulate mrp --port 0 --name "Virtual Den" --advance 0 > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" "listening on" 60 || exit 98
            PORT=$(grep -o '127.0.0.1:[0-9]*' "$TMP/sim.out" | head -1 | cut -d: -f2)
            "$ATV" pair --host 127.0.0.1 --port "$PORT" --protocol mrp --pin 1111 --storage "$TMP/devices.json" > /dev/null || exit 96
            CREDS=$("$VENV/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['devices'][0]['protocols']['mrp']['credentials'])" "$TMP/devices.json")
            "$ATV" proxy mrp -vv --host 127.0.0.1 --port "$PORT" --credentials "$CREDS" --name "Den MRP Proxy" --pairings "$TMP/pairings.json" --log "$TMP/proxy.log" > "$TMP/proxy.out" 2> "$TMP/proxy.err" &
            FIRST=$!
            wait_for "$TMP/proxy.out" Advertising 60 || exit 95
            PP=$(grep -o '127.0.0.1:[0-9]*' "$TMP/proxy.out" | head -1 | cut -d: -f2)
            mkdir -p "$TMP/home"; export HOME="$TMP/home"
            echo "== scan =="; "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 scan
            echo "== pair =="; echo 1111 | "$VENV/bin/atvremote" --manual --address 127.0.0.1 --port "$PP" --protocol mrp --id PROXYTEST pair; echo "status=$?"
            PYCREDS=$("$VENV/bin/python" -c "import json,sys; print([d['protocols']['mrp']['credentials'] for d in json.load(open(sys.argv[1]))['devices'] if d.get('protocols', {}).get('mrp', {}).get('credentials')][0])" "$TMP/home/.pyatv.conf")
            echo "== use =="; "$VENV/bin/atvremote" --manual --address 127.0.0.1 --port "$PP" --protocol mrp --id PROXYTEST --mrp-credentials "$PYCREDS" playing pause next; echo "status=$?"
            # A restarted proxy (same name: same identity; pairings from the file) still knows pyatv.
            kill -INT $FIRST; wait $FIRST
            "$ATV" proxy mrp --host 127.0.0.1 --port "$PORT" --credentials "$CREDS" --name "Den MRP Proxy" --pairings "$TMP/pairings.json" --no-advertise --listen-port "$PP" > "$TMP/proxy2.out" 2> "$TMP/proxy2.err" &
            wait_for "$TMP/proxy2.out" "listening on" 60 || { cat "$TMP/proxy2.out" "$TMP/proxy2.err"; exit 94; }
            echo "== again =="; "$VENV/bin/atvremote" --manual --address 127.0.0.1 --port "$PP" --protocol mrp --id PROXYTEST --mrp-credentials "$PYCREDS" play; echo "status=$?"
            sleep 0.5
            echo "== err2 =="; cat "$TMP/proxy2.err"
            echo "== pairings =="; cat "$TMP/pairings.json"; echo
            echo "== sim =="; cat "$TMP/sim.out"
            echo "== log =="; cat "$TMP/proxy.log"
            echo "== err =="; cat "$TMP/proxy.err"
            """, timeout: 150)
        #expect(!r.timedOut && r.status == 0, "\(r.stdout.suffix(1500)) \(r.stderr.suffix(800))")
        let scan = r.section("scan")
        #expect(scan.contains("Name: Den MRP Proxy") && scan.contains("Protocol: MRP"), "\(scan)")
        #expect(r.section("pair").contains("Pairing seems to have succeeded") && r.section("pair").contains("status=0"), "\(r.section("pair"))")
        #expect(r.section("pairings").contains("\"public_key\""), "\(r.section("pairings"))")
        // pyatv printed the device's scripted title, fetched through the proxy.
        let use = r.section("use")
        #expect(use.contains("Title: First Light") && use.contains("Artist: The Virtuals") && use.contains("status=0"), "\(use)")
        // The device recorded the commands pyatv sent the proxy, and verified the proxy (not pyatv).
        let sim = r.section("sim")
        #expect(sim.contains("Command pause") && sim.contains("Command nextTrack"), "\(sim)")
        #expect(sim.contains("Verified") && !sim.contains("Authentication failed"), "\(sim)")
        // After the restart pyatv only pair-verifies, and its command still reaches the device.
        #expect(r.section("again").contains("status=0"), "\(r.section("again"))")
        #expect(sim.contains("Command play"), "\(sim)")
        let err2 = r.section("err2")
        #expect(err2.contains("verified") && !err2.contains("paired") && err2.contains("command: COMMAND_PLAY"), "\(err2.prefix(2000))")
        // The proxy logged each message decoded, both ways, and its own handshakes.
        let log = r.section("log")
        #expect(log.contains("proxy: verified with the device \"Virtual Den\""), "\(log.prefix(1500))")
        #expect(log.contains("paired") && log.contains("verified"), "\(log.prefix(1500))")
        #expect(log.contains("controller->proxy cryptoPairing") && log.contains("proxy->device deviceInfo"), "\(log.prefix(1500))")
        #expect(log.contains("controller->device sendCommand") && log.contains("command: COMMAND_PAUSE") && log.contains("command: COMMAND_NEXT_TRACK"), "\(log.prefix(4000))")
        #expect(log.contains("device->controller setState") && log.contains("title: \"First Light\""), "\(log.prefix(4000))")
        #expect(log.contains("device->controller sendCommandResult"), "\(log.prefix(4000))")
        // stderr carries the same lines, and with -vv the protobuf bytes as hex.
        let err = r.section("err")
        #expect(err.contains("controller->device sendCommand") && err.contains("mrp message controller->device type=sendCommand protobuf="), "\(err.prefix(2000))")
    }
}
