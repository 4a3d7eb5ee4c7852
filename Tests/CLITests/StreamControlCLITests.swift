import ATVTestSupport
import Foundation
import Testing

/// `atv volume` from another process reaching a running `atv stream` through its control socket,
/// against `atv simulate speaker` on loopback. Each test has its own XDG_RUNTIME_DIR.
@Suite(.serialized) struct StreamControlCLITests {
    func startSpeaker(_ wav: String, address: String = "127.0.0.1") async throws -> (Child, Int) {
        let speaker = try Child(try TestEnv.atv(), ["simulate", "speaker", "--address", address, "--port", "0", "--output", wav,
                                                    "--sessions", "1", "--no-advertise"])
        let line = try await speaker.waitForOutput(timeout: 60) { $0.contains("listening on \(address):") }
        let pattern = address.replacingOccurrences(of: ".", with: "\\.") + #":(\d+)"#
        guard let r = line.range(of: pattern, options: .regularExpression),
              let port = Int(line[r].split(separator: ":")[1]) else { throw TestFailure("no port in: \(line)") }
        return (speaker, port)
    }

    /// Until the stream's control socket exists in `dir`/atv (it opens once the stream started).
    func waitForSocket(in dir: String, _ sender: Child) async throws -> String {
        var found: String?
        guard await poll(timeout: .seconds(20), {
            found = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/atv"))?.first { $0.hasPrefix("stream-") }
            return found != nil
        }), let name = found else { throw TestFailure("no control socket within 20 s; sender: \(sender.describe())") }
        return dir + "/atv/" + name
    }

    @Test func volumeFromAnotherProcessReachesTheRunningStream() async throws {
        let dir = try TestEnv.tempDir()
        let runtime = dir.appendingPathComponent("run").path
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let env = ["XDG_RUNTIME_DIR": runtime]
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sender = try Child(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)", "--volume", "80"], environment: env)
        let socket = try await waitForSocket(in: runtime, sender)
        // Half a second of audio at the speaker: the stream is under way.
        let halfSecond = 44 + 44_100 * 4 / 2
        guard await poll(timeout: .seconds(20), {
            ((try? FileManager.default.attributesOfItem(atPath: wav)[.size] as? Int) ?? 0) >= halfSecond
        }) else { throw TestFailure("no audio reached the speaker within 20 s; sender: \(sender.describe())") }
        let attrs = try FileManager.default.attributesOfItem(atPath: socket)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let dirAttrs = try FileManager.default.attributesOfItem(atPath: runtime + "/atv")
        #expect((dirAttrs[.posixPermissions] as? NSNumber)?.intValue == 0o700)

        let r = try await run(try TestEnv.atv(), ["volume", "30", "--host", "127.0.0.1", "--port", "\(port)"], timeout: 20, environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Volume: 30 (set in the running stream, pid \(sender.pid), to 127.0.0.1)"), "\(r.stdout)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
        let shown = try await run(try TestEnv.atv(), ["volume", "--host", "127.0.0.1", "--port", "\(port)", "--json"], timeout: 20, environment: env)
        #expect(shown.stdout.contains("\"volume\":30"), "\(shown.stdout) \(shown.stderr)")

        let s = try await sender.wait(timeout: 40)
        #expect(s.status == 0, "\(s.stderr)")
        let sp = try await speaker.wait(timeout: 30)
        // 30 % is −21 dB (−30…0 dB); the stream started at 80 % (−6 dB).
        #expect(sp.stdout.contains("volume: -21.0 dB"), "the speaker must have got the volume SET_PARAMETER: \(sp.stdout)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the stream removes its socket when it ends")
    }

    /// A group stream to two speakers (127.0.0.125 and 127.0.0.1, this test's own): `atv volume 30`
    /// for one of them reaches that member of the running stream, and only that one.
    @Test func volumeReachesTheNamedMemberOfARunningGroupStream() async throws {
        let dir = try TestEnv.tempDir()
        let runtime = dir.appendingPathComponent("run").path
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let env = ["XDG_RUNTIME_DIR": runtime]
        let wavA = dir.appendingPathComponent("a.wav").path, wavB = dir.appendingPathComponent("b.wav").path
        let (speakerA, portA) = try await startSpeaker(wavA, address: "127.0.0.125")
        let (speakerB, portB) = try await startSpeaker(wavB)
        defer { speakerA.kill(); speakerB.kill() }
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sender = try Child(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.125:\(portA)", "--host", "127.0.0.1:\(portB)",
                                                   "--volume", "80"], environment: env)
        _ = try await waitForSocket(in: runtime, sender)
        let halfSecond = 44 + 44_100 * 4 / 2
        guard await poll(timeout: .seconds(20), {
            [wavA, wavB].allSatisfy { ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0) >= halfSecond }
        }) else { throw TestFailure("no audio reached both speakers within 20 s; sender: \(sender.describe())") }

        let r = try await run(try TestEnv.atv(), ["volume", "30", "--host", "127.0.0.125", "--port", "\(portA)"], timeout: 20, environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Volume: 30") && r.stdout.contains("running stream"), "\(r.stdout)")
        #expect(r.seconds < 5, "took \(r.seconds) s")

        let s = try await sender.wait(timeout: 40)
        #expect(s.status == 0, "\(s.stderr)")
        let a = try await speakerA.wait(timeout: 30), b = try await speakerB.wait(timeout: 30)
        // 30 % is −21 dB; the stream started at 80 % (−6 dB), which the other member kept.
        #expect(a.stdout.contains("volume: -21.0 dB"), "the named member must have got the volume: \(a.stdout)")
        #expect(b.stdout.contains("volume: -6.0 dB") && !b.stdout.contains("-21.0"), "the other member keeps its volume: \(b.stdout)")
    }

    @Test func aKilledStreamsSocketIsCleanedAndVolumeGoesToTheDevice() async throws {
        let dir = try TestEnv.tempDir()
        let runtime = dir.appendingPathComponent("run").path
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let env = ["XDG_RUNTIME_DIR": runtime]
        let wav = dir.appendingPathComponent("cap.wav").path
        let (speaker, port) = try await startSpeaker(wav)
        defer { speaker.kill() }
        let sample = TestEnv.root.appendingPathComponent("samples/arpeggio.flac").path
        let sender = try Child(try TestEnv.atv(), ["stream", sample, "--host", "127.0.0.1", "--port", "\(port)"], environment: env)
        let socket = try await waitForSocket(in: runtime, sender)
        sender.kill()   // SIGKILL: no chance to remove its socket
        _ = try await sender.wait(timeout: 10)
        #expect(FileManager.default.fileExists(atPath: socket))

        let r = try await run(try TestEnv.atv(), ["volume", "30", "--host", "127.0.0.1", "--port", "\(port)"], timeout: 20, environment: env)
        // With no running stream holding it, the command talks to the device as it always did
        // (the virtual speaker by address offers no volume control: one clear error line).
        #expect(!r.stdout.contains("running stream"), "\(r.stdout)")
        #expect(r.status == 0 || (r.stderr.hasPrefix("atv: error: ") && r.stderr.split(separator: "\n").count == 1), "\(r.stderr)")
        #expect(r.seconds < 5, "took \(r.seconds) s")
        #expect(!FileManager.default.fileExists(atPath: socket), "the dead stream's socket is cleaned")
    }
}
