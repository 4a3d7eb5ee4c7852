import ATVTestSupport
import Foundation
import Testing

/// `atv log` on real debug logs of `atv … -vv` against the virtual devices.
@Suite(.serialized) struct LogCLITests {
    /// MRP: every message is logged at debug level as protobuf hex; `atv log` shows it decoded
    /// (protobuf text form, inner messages included) and filters on the decoded text.
    @Test func mrpMessagesAreDecodedAndFiltered() async throws {
        let dir = try TestEnv.tempDir()
        let sim = try Child(try TestEnv.atv(), ["simulate", "mrp", "--port", "0", "--advance", "0"])
        defer { sim.kill() }
        let out = try await sim.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let port = try #require(out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) })
        let store = dir.appendingPathComponent("devices.json").path
        let pair = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "mrp",
                                                     "--pin", "1111", "--storage", store], timeout: 60)
        #expect(pair.status == 0, "\(pair.stderr)")
        let playing = try await run(try TestEnv.atv(), ["playing", "-vv", "--host", "127.0.0.1", "--protocol", "mrp", "--port", String(port),
                                                         "--storage", store], timeout: 60)
        #expect(playing.status == 0, "\(playing.stderr.suffix(500))")
        #expect(playing.stderr.contains("mrp message out type=deviceInfo protobuf="), "\(playing.stderr.prefix(800))")
        let logFile = dir.appendingPathComponent("mrp.log")
        try Data(playing.stderr.utf8).write(to: logFile)
        let view = try await run(try TestEnv.atv(), ["log", logFile.path, "--include", "First Light", "--no-color"], timeout: 60)
        #expect(view.status == 0, "\(view.stderr)")
        #expect(view.stdout.contains("mrp message in type=setState"), "\(view.stdout.prefix(800))")
        #expect(view.stdout.contains("title: \"First Light\""), "\(view.stdout.prefix(1500))")
        #expect(!view.stdout.contains("type=deviceInfo"), "the filter keeps only entries whose decoded text matches")
    }

    @Test func companionAndDMAPMessagesAreDecodedAndFiltered() async throws {
        let dir = try TestEnv.tempDir()
        let logFile = dir.appendingPathComponent("debug.log")

        // Companion: pair, then list apps with debug logging.
        let (sim, port) = try await CompanionCLITests().startSimulator()
        defer { sim.kill() }
        let store = dir.appendingPathComponent("devices.json").path
        let pair = try await run(try TestEnv.atv(), ["pair", "--host", "127.0.0.1", "--port", String(port), "--protocol", "companion",
                                                     "--pin", "1111", "--storage", store], timeout: 60)
        #expect(pair.status == 0, "\(pair.stderr)")
        let creds = try #require(try CompanionCLITests.storedCompanionCredentials(URL(fileURLWithPath: store)))
        let apps = try await run(try TestEnv.atv(), ["apps", "-vv", "--host", "127.0.0.1", "--port", String(port), "--protocol", "companion",
                                                     "--companion-credentials", creds], timeout: 60)
        #expect(apps.status == 0, "\(apps.stderr.suffix(500))")

        // DMAP: what is playing, with debug logging.
        let dmapSim = try Child(try TestEnv.atv(), ["simulate", "appletv3", "--port", "0", "--guid", DMAPCLITests.guid])
        defer { dmapSim.kill() }
        let out = try await dmapSim.waitForOutput(timeout: 60) { $0.contains("listening on 127.0.0.1:") }
        let dport = try #require(out.split(separator: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) })
        let playing = try await run(try TestEnv.atv(), ["playing", "-vv", "--host", "127.0.0.1", "--protocol", "dmap", "--port", String(dport),
                                                         "--dmap-credentials", DMAPCLITests.guid], timeout: 60)
        #expect(playing.status == 0, "\(playing.stderr.suffix(500))")
        try Data((apps.stderr + playing.stderr).utf8).write(to: logFile)

        let companion = try await run(try TestEnv.atv(), ["log", logFile.path, "--protocol", "companion", "--include", "FetchLaunchable"], timeout: 60)
        #expect(companion.status == 0, "\(companion.stderr)")
        #expect(!companion.stdout.contains("\u{1B}["), "no colours when stdout is not a terminal")
        #expect(companion.stdout.contains("_i: \"FetchLaunchableApplicationsEvent\""), "\(companion.stdout.prefix(1500))")
        #expect(!companion.stdout.contains("[dmap]"))

        let dmap = try await run(try TestEnv.atv(), ["log", logFile.path, "--protocol", "dmap", "--exclude", "dmap request"], timeout: 60)
        #expect(dmap.stdout.contains("cmst:") && dmap.stdout.contains("cann: \"Loopback Sunrise\""), "\(dmap.stdout.prefix(1500))")
        #expect(!dmap.stdout.contains("dmap request"))

        let html = dir.appendingPathComponent("report.html")
        let page = try await run(try TestEnv.atv(), ["log", logFile.path, "--html", html.path], timeout: 60)
        #expect(page.status == 0, "\(page.stderr)")
        let text = try String(contentsOf: html, encoding: .utf8)
        #expect(text.contains("FetchLaunchableApplicationsEvent") && text.contains("Loopback Sunrise") && text.contains("new RegExp"))

        let bad = try await run(try TestEnv.atv(), ["log", logFile.path, "--include", "(["], timeout: 60)
        #expect(bad.status != 0 && bad.stderr.hasPrefix("atv: error: ") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
        let missing = try await run(try TestEnv.atv(), ["log", dir.appendingPathComponent("nope.log").path], timeout: 60)
        #expect(missing.status != 0 && missing.stderr.hasPrefix("atv: error: cannot read"))
    }
}
