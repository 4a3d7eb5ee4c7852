import ATVTestSupport
import Foundation
import Testing

/// `atv doctor` in private network namespaces (so the interfaces, the PTP ports and the
/// unprivileged-port sysctl are the test's own): one line per check, exit 1 when any fails.
@Suite struct DoctorCLITests {
    static let checks = ["ffmpeg", "multicast", "storage", "ptp ports", "clock"]

    /// The report lines by check name ("ok" or "FAIL" and the text).
    static func lines(_ section: String) -> [String: (ok: Bool, text: String)] {
        var out: [String: (ok: Bool, text: String)] = [:]
        for line in section.split(separator: "\n") {
            let ok = line.hasPrefix("ok   ")
            guard ok || line.hasPrefix("FAIL ") else { continue }
            let rest = line.dropFirst(5)
            guard let colon = rest.firstIndex(of: ":") else { continue }
            out[String(rest[..<colon])] = (ok, String(rest[rest.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        return out
    }

    @Test func everyCheckPassesOnAMachineThatHasWhatAtvNeeds() async throws {
        try Netns.requirePrerequisites(python: false)
        let r = try await Netns.run("""
            ip link add atv0 type veth peer name atv1 && ip link set atv0 up && ip link set atv1 up
            ip addr add 192.0.2.1/24 dev atv0
            echo "== doctor =="; "$ATV" doctor --storage "$TMP/cfg/devices.json" 2>"$TMP/err"; s=$?; echo "== status =="; echo $s
            echo "== stderr =="; cat "$TMP/err"
            """, timeout: 60)
        let report = Self.lines(r.section("doctor"))
        #expect(r.section("status") == "0", "\(r.stdout) \(r.stderr)")
        #expect(r.section("stderr").isEmpty)
        #expect(r.section("doctor").split(separator: "\n").count == Self.checks.count, "\(r.stdout)")
        for name in Self.checks { #expect(report[name]?.ok == true, "\(name): \(r.stdout)") }
        #expect(report["ffmpeg"]?.text.contains("libavformat ") == true)
        #expect(report["ffmpeg"]?.text.contains("libswresample ") == true)
        #expect(report["multicast"]?.text == "possible on atv0 (192.0.2.1)")
        #expect(report["storage"]?.text.contains("does not exist yet") == true)
        #expect(report["ptp ports"]?.text == "UDP 319 and 320 can be bound")
    }

    @Test func aReadableSettingsFileAndLoopbackOnlyMulticastFailWithWhatToDo() async throws {
        try Netns.requirePrerequisites(python: false)
        // The namespace has only lo (multicast on): scanning would find nothing on a network.
        let r = try await Netns.run("""
            f="$TMP/devices.json"
            printf '{"version": 1, "devices": []}\\n' > "$f"; chmod 0644 "$f"
            echo "== loose =="; "$ATV" doctor --storage "$f" 2>"$TMP/err"; s=$?; echo "== loose status =="; echo $s
            echo "== loose stderr =="; cat "$TMP/err"
            chmod 0600 "$f"
            echo "== private =="; "$ATV" doctor --storage "$f" 2>/dev/null
            printf '{"version": 1, "devices": [ oops' > "$f"
            echo "== corrupt =="; "$ATV" doctor --storage "$f" 2>/dev/null
            """, timeout: 60)
        let loose = Self.lines(r.section("loose"))
        let path = try #require(loose["storage"]?.text.components(separatedBy: " has mode").first)
        #expect(loose["storage"]?.ok == false)
        #expect(loose["storage"]?.text == "\(path) has mode 0644: other users can read the credentials in it; run: chmod 600 \(path)")
        #expect(loose["multicast"]?.ok == false)
        #expect(loose["multicast"]?.text.hasPrefix("only on loopback (lo (127.0.0.1)): scanning finds no device") == true, "\(r.stdout)")
        for name in ["ffmpeg", "ptp ports", "clock"] { #expect(loose[name]?.ok == true, "\(name): \(r.stdout)") }
        #expect(r.section("loose status") == "1")
        #expect(r.section("loose stderr") == "atv: error: 2 of 5 checks failed (the FAIL lines above say what to do)")

        let tight = Self.lines(r.section("private"))
        #expect(tight["storage"]?.ok == true)
        #expect(tight["storage"]?.text == "\(path) is readable, mode 0600, 0 devices")

        let corrupt = Self.lines(r.section("corrupt"))
        #expect(corrupt["storage"]?.ok == false)
        #expect(corrupt["storage"]?.text.contains("not a valid settings file") == true, "\(r.stdout)")
    }

    @Test func ptpPortsNeedAPrivilegeAndTheSysctlItNamesGivesIt() async throws {
        try Netns.requirePrerequisites(python: false)
        // An unprivileged user (nobody) with the default net.ipv4.ip_unprivileged_port_start
        // (1024, per namespace) cannot bind 319/320; the sysctl the line names lets it.
        let r = try await Netns.run("""
            cp "$ATV" "$TMP/atv"; chmod 755 "$TMP" "$TMP/atv"; echo "== binary =="; echo "$TMP/atv"
            as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/atv" doctor --storage /nonexistent/devices.json 2>/dev/null; }
            echo "== before =="; as_nobody; s=$?; echo "== before status =="; echo $s
            sysctl -q -w net.ipv4.ip_unprivileged_port_start=319
            echo "== after =="; as_nobody
            """, timeout: 90)
        let before = Self.lines(r.section("before"))
        let text = before["ptp ports"]?.text ?? ""
        #expect(before["ptp ports"]?.ok == false, "\(r.stdout) \(r.stderr)")
        #expect(text.hasPrefix("cannot bind UDP on 0.0.0.0:319: not permitted (ports below 1024 need privileges); 320 too; allow it with: "), "\(text)")
        #expect(text.contains("sudo sysctl -w net.ipv4.ip_unprivileged_port_start=319 (net.ipv4.ip_unprivileged_port_start is 1024 now)"), "\(text)")
        #expect(text.hasSuffix("or: sudo setcap cap_net_bind_service=+ep \(r.section("binary"))"), "the setcap advice names the binary: \(text)")
        #expect(r.section("before status") == "1")
        #expect(before["storage"]?.ok == true)
        let after = Self.lines(r.section("after"))
        #expect(after["ptp ports"]?.ok == true, "\(r.stdout)")
    }
}
