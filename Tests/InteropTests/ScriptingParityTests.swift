import ATVTestSupport
import Foundation
import Testing

/// `atv … --json` against pyatv's `atvscript` on the same virtual devices, inside private network
/// namespaces (both discover by unicast mDNS on 127.0.0.1): same keys, same values where both know them.
@Suite(.serialized) struct ScriptingParityTests {
    /// Every JSON object printed on stdout, one per line.
    static func objects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    static func one(_ r: Netns.Result, _ section: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any] {
        let list = objects(r.section(section))
        #expect(list.count == 1, "\(section): \(r.section(section))", sourceLocation: sourceLocation)
        return list.first ?? [:]
    }

    /// "2026-11-21T16:35:01.247376+00:00": what Python's isoformat() of an aware datetime prints.
    static func isPythonISODate(_ v: Any?) -> Bool {
        guard let s = v as? String else { return false }
        return s.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$"#, options: .regularExpression) != nil
    }

    /// Compares two objects: same keys (but `allowedExtra` in ours), same values for `fields`.
    static func compare(_ ours: [String: Any], _ theirs: [String: Any], fields: [String], allowedExtra: Set<String> = [],
                        _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Set(ours.keys).subtracting(allowedExtra) == Set(theirs.keys), "\(label) keys: ours \(ours.keys.sorted()) theirs \(theirs.keys.sorted())",
                sourceLocation: sourceLocation)
        for f in fields {
            let a = ours[f].map { "\($0)" } ?? "missing", b = theirs[f].map { "\($0)" } ?? "missing"
            #expect(a == b, "\(label).\(f): ours \(a) theirs \(b)", sourceLocation: sourceLocation)
        }
        #expect(isPythonISODate(ours["datetime"]), "\(label) datetime \(ours["datetime"] ?? "missing")", sourceLocation: sourceLocation)
        #expect(isPythonISODate(theirs["datetime"]), "\(label) their datetime", sourceLocation: sourceLocation)
    }

    static let dmapAdvertiser = """
        cat > "$TMP/adv.py" <<'PY'
        import sys, time, socket
        from zeroconf import Zeroconf, ServiceInfo
        zc = Zeroconf(interfaces=["127.0.0.1"])
        zc.register_service(ServiceInfo("_touch-able._tcp.local.", "ABCDEF0123456789._touch-able._tcp.local.", port=int(sys.argv[1]),
            properties={"CtlN": "Virtual Three", "DvTy": "AppleTV", "DvSv": "2848"},
            addresses=[socket.inet_aton("127.0.0.1")], server="virtual-three.local."))
        print("advertised", flush=True)
        while True: time.sleep(1)
        PY
        """

    /// DMAP (`atv simulate appletv3`, advertised as _touch-able._tcp by zeroconf): scan, playing,
    /// a remote command and the unknown-device failure, from atvscript and from atv.
    @Test func dmapScanPlayingCommandAndFailureMatchAtvscript() async throws {
        try Netns.requirePrerequisites()
        let g = "0x1234ABCDE56789FF"
        let r = try await Netns.run(Self.dmapAdvertiser + """

            "$ATV" simulate appletv3 --port 0 --guid \(g) > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" "listening on" 60 || exit 98
            PORT=$(grep -o '127.0.0.1:[0-9]*' "$TMP/sim.out" | head -1 | cut -d: -f2)
            "$VENV/bin/python" "$TMP/adv.py" "$PORT" > "$TMP/adv.out" 2>&1 &
            wait_for "$TMP/adv.out" advertised 30 || exit 98
            S="$VENV/bin/atvscript -s 127.0.0.1"
            A="--to ABCDEF0123456789 --dmap-credentials \(g) --json"
            echo "== s scan =="; $S scan
            echo "== a scan =="; "$ATV" scan --hosts 127.0.0.1 --json
            echo "== s playing =="; $S --dmap-credentials \(g) playing
            echo "== a playing =="; "$ATV" playing $A
            echo "== s pause =="; $S --dmap-credentials \(g) pause
            echo "== a pause =="; "$ATV" remote pause $A
            echo "== s missing =="; $S -i nope playing
            echo "== a missing =="; "$ATV" playing --to nope --json 2>"$TMP/err"; echo "status=$?"
            echo "== a stderr =="; cat "$TMP/err"
            """, timeout: 150)
        #expect(!r.timedOut && r.status == 0, "\(r.stderr.suffix(800))")

        let sScan = Self.one(r, "s scan"), aScan = Self.one(r, "a scan")
        Self.compare(aScan, sScan, fields: ["result"], "scan")
        let sDev = (sScan["devices"] as? [[String: Any]])?.first ?? [:], aDev = (aScan["devices"] as? [[String: Any]])?.first ?? [:]
        // deep_sleep is ours alone (atvremote prints it; atvscript does not).
        #expect(Set(aDev.keys).subtracting(["deep_sleep"]) == Set(sDev.keys), "\(aDev.keys.sorted()) vs \(sDev.keys.sorted())")
        for f in ["name", "address", "identifier", "all_identifiers", "device_info", "services"] {
            #expect(NSDictionary(dictionary: [f: aDev[f] ?? NSNull()]).isEqual(to: [f: sDev[f] ?? NSNull()]), "scan \(f): \(aDev[f] ?? "nil") vs \(sDev[f] ?? "nil")")
        }

        let sPlay = Self.one(r, "s playing"), aPlay = Self.one(r, "a playing")
        Self.compare(aPlay, sPlay, fields: ["result", "hash", "media_type", "device_state", "title", "artist", "album", "genre", "total_time",
                                            "shuffle", "repeat", "series_name", "season_number", "episode_number", "content_identifier",
                                            "itunes_store_identifier", "app", "app_id"], "playing")
        #expect(aPlay["title"] as? String == "Loopback Sunrise")

        Self.compare(Self.one(r, "a pause"), Self.one(r, "s pause"), fields: ["result", "command"], "pause")
        #expect(Self.one(r, "a pause")["command"] as? String == "pause")

        let sMiss = Self.one(r, "s missing"), aMiss = Self.one(r, "a missing")
        // Ours adds the message as "exception" (atvscript has one only for exceptions).
        Self.compare(aMiss, sMiss, fields: ["result", "error"], allowedExtra: ["exception"], "missing")
        #expect(aMiss["error"] as? String == "device_not_found")
        #expect(r.section("a missing").contains("status=5"))
        let err = r.section("a stderr").split(separator: "\n")
        #expect(err.count == 1 && err[0].hasPrefix("atv: error: device not found"), "\(err)")
    }

    /// Companion (`atv simulate companion`, paired by pyatv): scan, power state (atvscript's
    /// push_updates starts with it), a button, and an unsupported call.
    @Test func companionScanPowerAndCommandMatchAtvscript() async throws {
        try Netns.requirePrerequisites()
        let r = try await Netns.run("""
            "$ATV" simulate companion --port 0 --name "Virtual Den" > "$TMP/sim.out" 2>&1 &
            wait_for "$TMP/sim.out" Advertising 60 || exit 98
            CREDS=$(echo 1111 | "$VENV/bin/atvremote" -t 2 -s 127.0.0.1 -n "Virtual Den" --protocol companion pair | grep -o 'credentials: [0-9a-f:]*' | cut -d' ' -f2)
            [ -n "$CREDS" ] || exit 96
            S="$VENV/bin/atvscript -s 127.0.0.1"
            A="--to Virtual\\ Den"
            echo "== s scan =="; $S scan
            echo "== a scan =="; "$ATV" scan --hosts 127.0.0.1 --json
            echo "== s push =="; $S push_updates < /dev/null
            echo "== a power =="; "$ATV" power state --to "Virtual Den" --companion-credentials "$CREDS" --json
            echo "== s home =="; $S home
            echo "== a home =="; "$ATV" remote home --to "Virtual Den" --companion-credentials "$CREDS" --json
            echo "== s playing =="; $S playing
            echo "== a playing =="; "$ATV" playing --to "Virtual Den" --companion-credentials "$CREDS" --json; echo "status=$?"
            sleep 0.5; echo "== sim =="; cat "$TMP/sim.out"
            """, timeout: 150)
        #expect(!r.timedOut && r.status == 0, "\(r.stdout.suffix(800)) \(r.stderr.suffix(800))")
        let sDev = (Self.one(r, "s scan")["devices"] as? [[String: Any]])?.first ?? [:]
        let aDev = (Self.one(r, "a scan")["devices"] as? [[String: Any]])?.first ?? [:]
        for f in ["name", "address", "identifier", "all_identifiers", "device_info", "services"] {
            #expect(NSDictionary(dictionary: [f: aDev[f] ?? NSNull()]).isEqual(to: [f: sDev[f] ?? NSNull()]), "scan \(f): \(aDev[f] ?? "nil") vs \(sDev[f] ?? "nil")")
        }
        let sPower = try #require(Self.objects(r.section("s push")).first)
        Self.compare(Self.one(r, "a power"), sPower, fields: ["result", "power_state"], "power")
        #expect(sPower["power_state"] as? String == "on")
        Self.compare(Self.one(r, "a home"), Self.one(r, "s home"), fields: ["result", "command"], "home")
        // Neither can read what is playing over Companion alone: both fail, ours names the error.
        let sPlay = Self.one(r, "s playing"), aPlay = Self.one(r, "a playing")
        #expect(sPlay["result"] as? String == "failure" && aPlay["result"] as? String == "failure")
        #expect(aPlay["error"] as? String == "unsupported_command" && aPlay["exception"] is String, "\(aPlay)")
        #expect(r.section("sim").contains("Button home down"))
    }

    /// A command line that does not parse still answers a script with one failure object.
    @Test func invalidArgumentsWithJSONPrintAFailureObject() async throws {
        let r = try await run(try TestEnv.atv(), ["playing", "--json"], timeout: 60)
        #expect(r.status != 0)
        let objects = Self.objects(r.stdout)
        #expect(objects.count == 1, "\(r.stdout)")
        #expect(objects.first?["result"] as? String == "failure" && objects.first?["error"] as? String == "invalid_arguments")
        #expect((objects.first?["exception"] as? String)?.contains("say which device: --to NAME|ID") == true)
        #expect(Self.isPythonISODate(objects.first?["datetime"]))
        // Without --json stdout stays empty; help is not an error.
        #expect(try await run(try TestEnv.atv(), ["playing"], timeout: 60).stdout.isEmpty)
        let help = try await run(try TestEnv.atv(), ["playing", "--help", "--json"], timeout: 60)
        #expect(help.status == 0 && Self.objects(help.stdout).isEmpty)
    }
}
