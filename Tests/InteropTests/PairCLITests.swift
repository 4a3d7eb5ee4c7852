import ATVTestSupport
import Foundation
import Testing

/// `atv pair` and `atv credentials` against peers on loopback.
@Suite(.serialized) struct PairCLITests {
    /// scripts/peers/legacy-pair-device.py: srptools' SRP server with pyatv's AtvSRPContext,
    /// `cryptography` for AES-GCM/CTR and Ed25519 — an accessory side we did not write.
    /// The returned pipe keeps the peer's stdin open (it exits when stdin closes).
    func startDevice(pin: String) async throws -> (Child, Int, Pipe) {
        let python = TestEnv.root.appendingPathComponent(".venv-peers/bin/python").path
        let script = TestEnv.root.appendingPathComponent("scripts/peers/legacy-pair-device.py").path
        let stdin = Pipe()
        let peer = try Child(python, [script, "--pin", pin], stdin: stdin.fileHandleForReading)
        let out = try await peer.waitForOutput(timeout: 20) { $0.contains("LISTENING ") }
        let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("LISTENING ") })
        return (peer, try #require(Int(line.dropFirst(10))), stdin)
    }

    @Test func legacyAirPlayPairStoresPyatvCredentialsPrivately() async throws {
        let (peer, port, stdin) = try await startDevice(pin: "2271")
        defer { try? stdin.fileHandleForWriting.close(); peer.kill() }
        let dir = try TestEnv.tempDir()
        let file = dir.appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                                                  "--pin", "2271", "--storage", file], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("credentials stored in \(file)"))
        // The device saw the pairing and the verification of the same key.
        let seen = try await peer.waitForOutput(timeout: 5) { $0.contains("VERIFIED ") }
        let pairedKey = seen.split(separator: "\n").first { $0.hasPrefix("PAIRED ") }?.dropFirst(7)
        #expect(pairedKey != nil && seen.contains("VERIFIED \(pairedKey!)"))

        let attrs = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let device = try #require((json["devices"] as? [[String: Any]])?.first)
        let airplay = try #require((device["protocols"] as? [String: [String: Any]])?["airplay"])
        #expect(airplay["identifier"] as? String == "127.0.0.1")
        let creds = try #require(airplay["credentials"] as? String)
        // pyatv's legacy form ":<seed 64 hex>::<client id 16 hex>", and pyatv parses it as Legacy.
        let fields = creds.split(separator: ":", omittingEmptySubsequences: false)
        #expect(fields.count == 4 && fields[0].isEmpty && fields[1].count == 64 && fields[2].isEmpty && fields[3].count == 16)
        let python = TestEnv.root.appendingPathComponent(".venv-peers/bin/python").path
        let parsed = try await run(python, ["-c", "import sys; from pyatv.auth.hap_pairing import parse_credentials as p; print(p(sys.argv[1]).type.name)", creds])
        #expect(parsed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "Legacy")

        // atv credentials lists it masked; remove deletes it.
        let list = try await run(try TestEnv.atv(), ["credentials", "--storage", file])
        #expect(list.status == 0)
        #expect(list.stdout.contains("airplay: legacy client-id"))
        #expect(!list.stdout.contains(String(fields[1].prefix(8))))
        let rm = try await run(try TestEnv.atv(), ["credentials", "remove", "127.0.0.1", "--protocol", "airplay", "--storage", file])
        #expect(rm.status == 0, "\(rm.stderr)")
        let after = try await run(try TestEnv.atv(), ["credentials", "--storage", file])
        #expect(after.stdout.contains("No stored credentials"))
        let again = try await run(try TestEnv.atv(), ["credentials", "remove", "127.0.0.1", "--storage", file])
        #expect(again.status != 0 && again.stderr.hasPrefix("atv: error: "))
    }

    @Test func wrongPINIsOneLineErrorAndNothingStored() async throws {
        let (peer, port, stdin) = try await startDevice(pin: "2271")
        defer { try? stdin.fileHandleForWriting.close(); peer.kill() }
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "airplay",
                                                  "--pin", "1234", "--storage", file], timeout: 60)
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("atv: error: pairing failed") && lines[0].contains("PIN"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    @Test func missingPINOnNonInteractiveStdinIsAClearError() async throws {
        let (peer, port, stdin) = try await startDevice(pin: "2271")
        defer { try? stdin.fileHandleForWriting.close(); peer.kill() }
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "raop", "--storage", file])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--pin") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    /// MRP pairing now exists (MRPCLITests): with nothing listening it is a one-line connection error.
    @Test func mrpPairingWithNoDeviceIsAOneLineConnectionError() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", "1", "--protocol", "mrp", "--pin", "1111",
                                                  "--storage", file])
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("MRP at 127.0.0.1:1 refused the connection"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    /// DMAP: we are the Remote; the "Apple TV" (here: curl on loopback) calls GET /pair with the
    /// MD5 code of our GUID and PIN (reference vector 1234ABCDE56789FF + 5555). No mDNS
    /// (--no-publish): never multicast in the main namespace.
    @Test func dmapPairingAcceptsTheRightCodeOnly() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let child = try Child(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--protocol", "dmap", "--pin", "5555",
                                                  "--guid", "1234ABCDE56789FF", "--no-publish", "--timeout", "30", "--storage", file])
        defer { child.kill() }
        let out = try await child.waitForOutput(timeout: 20) { $0.contains("on port ") }
        #expect(out.contains("Enter PIN 5555 on the Apple TV (Settings › Remotes)"))
        let port = try #require(out.split(separator: "\n").first { $0.contains("on port ") }?.split(separator: " ").last.flatMap { Int($0) })
        let wrong = try await sh("curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:\(port)/pair?pairingcode=00000000000000000000000000000000&servicename=ATV'")
        #expect(wrong.stdout == "500")
        #expect(!FileManager.default.fileExists(atPath: file))
        let right = try await sh("curl -s 'http://127.0.0.1:\(port)/pair?pairingcode=58ad1d195b6daa58aa2ea29dc25b81c3&servicename=Living%20Room' | xxd -p | tr -d '\\n'")
        // cmpa{cmpg 0x1234ABCDE56789FF, cmnm "swift-atv", cmty "iPhone"}
        #expect(right.stdout == "636d70610000002f636d7067000000081234abcde56789ff636d6e6d00000009737769667" + "42d617476636d7479000000066950686f6e65")
        let r = try await child.wait(timeout: 20)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Paired with Living Room over DMAP"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let device = try #require((json["devices"] as? [[String: Any]])?.first)
        let dmap = try #require((device["protocols"] as? [String: [String: Any]])?["dmap"])
        #expect(dmap["credentials"] as? String == "0x1234ABCDE56789FF")
    }

    /// DMAP the whole way, in a private network namespace: `atv pair` publishes
    /// `_touch-remote._tcp` with our own mDNS responder; python-zeroconf (a peer we did not write)
    /// browses for it, resolves port and TXT, and plays the Apple TV: it computes the pairing code
    /// from the advertised GUID and the PIN and calls `GET /pair`. Credentials must be stored.
    @Test func dmapPairingIsFoundByZeroconfAndCompletes() async throws {
        try Netns.requirePrerequisites()
        let result = try await Netns.run("""
            "$ATV" pair --host 127.0.0.1 --protocol dmap --pin 4321 --guid 00112233AABBCCDD --name "Test Remote" \
                --timeout 40 --storage "$TMP/devices.json" > "$TMP/pair.out" 2> "$TMP/pair.err" &
            pair=$!
            wait_for "$TMP/pair.out" "on port" 30 || exit 98
            echo "== device =="; "$VENV/bin/python" "$PEERS/touch-remote-device.py" --pin 4321 --servicename "Den TV" --timeout 20
            wait $pair; st=$?; echo "== status =="; echo $st
            echo "== pair =="; cat "$TMP/pair.out"; cat "$TMP/pair.err" >&2
            echo "== stored =="; stat -c %a "$TMP/devices.json"; cat "$TMP/devices.json"
            """, timeout: 90)
        #expect(!result.timedOut, "\(result.stderr.suffix(800))")
        let device = try #require(try JSONSerialization.jsonObject(with: Data(result.section("device").utf8)) as? [String: Any],
                                  "\(result.stdout) \(result.stderr.suffix(800))")
        #expect(device["instance"] as? String == String(repeating: "0", count: 30) + "2130706433._touch-remote._tcp.local.")
        let txt = try #require(device["txt"] as? [String: String])
        #expect(txt["Pair"] == "00112233AABBCCDD")
        #expect(txt["DvNm"] == "Test Remote")
        #expect(txt["RemN"] == "Remote" && txt["DvTy"] == "iPod" && txt["txtvers"] == "1")
        #expect(device["status"] as? Int == 200)
        #expect((device["body"] as? String)?.hasPrefix("636d7061") == true) // cmpa
        #expect(result.section("status").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(result.stderr.suffix(800))")
        #expect(result.section("pair").contains("Paired with Den TV over DMAP"))
        let stored = result.section("stored")
        #expect(stored.hasPrefix("600"))
        #expect(stored.contains("0x00112233AABBCCDD"))
    }

    @Test func dmapTimesOutWithOneLineError() async throws {
        let file = try TestEnv.tempDir().appendingPathComponent("devices.json").path
        let r = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--protocol", "dmap", "--pin", "1234",
                                                  "--no-publish", "--timeout", "1", "--storage", file], timeout: 30)
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("atv: error: timed out") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: file))
    }
}
