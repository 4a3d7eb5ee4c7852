import ATVTestSupport
import Foundation
import Synchronization
import Testing
@testable import ATV
@testable import ATVCore
#if canImport(Glibc)
import Glibc
#endif

/// The control socket of a running stream (`atv volume 30 --to Kitchen` from another terminal),
/// server and client in this process, each test in its own directory.
@Suite struct StreamControlTests {
    static let kitchen = StreamControlDevice(name: "Kitchen", address: "10.0.0.2", port: 7000, identifiers: ["AA:BB:CC:DD:EE:01"])
    static let bedroom = StreamControlDevice(name: "Bedroom", address: "10.0.0.3", port: 7000, identifiers: [])

    /// A stream's actions recording the volumes set; `fail` makes setting one fail.
    final class FakeStream: Sendable {
        let volumes = Mutex<[String: Double]>([:])
        let fail: Bool
        init(fail: Bool = false) { self.fail = fail }
        var actions: StreamControlActions {
            StreamControlActions(
                setVolume: { device, percent in
                    if self.fail { throw ATVError.connectionLost("the receiver closed the connection") }
                    self.volumes.withLock { $0[device.name] = percent }
                },
                status: {
                    let v = self.volumes.withLock { $0 }
                    return [kitchen, bedroom].map { StreamControlMemberStatus(device: $0, volume: v[$0.name], state: "playing") }
                })
        }
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test func devicesMatchByNameAddressIdentifierAndPort() {
        let k = Self.kitchen
        #expect(k.matches("kitchen") && k.matches("10.0.0.2") && k.matches("aa:bb:cc:dd:ee:01") && k.matches("10.0.0.2:7000"))
        #expect(k.matches("10.0.0.2", port: 7000))
        #expect(!k.matches("10.0.0.2", port: 7001), "another port is another receiver")
        #expect(!k.matches("10.0.0.2:7001") && !k.matches("Kitch") && !k.matches("10.0.0.20"))
    }

    @Test func directoryIsPrivate() throws {
        #expect(StreamControl.defaultDirectory(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"]) == "/run/user/1000/atv")
        #expect(StreamControl.defaultDirectory(environment: ["XDG_RUNTIME_DIR": "relative"]) == "/tmp/atv-\(getuid())")
        #expect(StreamControl.defaultDirectory(environment: [:]) == "/tmp/atv-\(getuid())")
        let dir = try TestEnv.tempDir().appendingPathComponent("atv").path
        try StreamControl.prepareDirectory(dir)
        #expect(mode(dir) == 0o700)
        chmod(dir, 0o755)
        try StreamControl.prepareDirectory(dir)
        #expect(mode(dir) == 0o700, "a directory others could enter is made private")
        let file = dir + "/plain"
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        #expect(throws: ATVError.self) { try StreamControl.prepareDirectory(file) }
    }

    @Test func volumeIsSetInTheStreamHoldingTheDevice() async throws {
        let dir = try TestEnv.tempDir().appendingPathComponent("atv").path
        let stream = FakeStream()
        let server = try await StreamControlServer.start(devices: [Self.kitchen, Self.bedroom], actions: stream.actions, directory: dir)
        #expect(mode(server.path) == 0o600)
        #expect(mode(dir) == 0o700)

        let set = try #require(try await StreamControl.setVolume(30, device: "kitchen", directory: dir))
        #expect(set.volume == 30 && set.device == Self.kitchen && set.pid == getpid())
        #expect(stream.volumes.withLock { $0 } == ["Kitchen": 30])

        let up = try #require(try await StreamControl.setVolume(delta: 5, device: "10.0.0.2:7000", directory: dir))
        #expect(up.volume == 35)
        let down = try #require(try await StreamControl.setVolume(delta: -50, device: "Kitchen", directory: dir))
        #expect(down.volume == 0, "a step stops at 0")
        #expect(await StreamControl.volume(device: "AA:BB:CC:DD:EE:01", directory: dir)?.volume == 0)

        #expect(try await StreamControl.setVolume(30, device: "Attic", directory: dir) == nil, "no stream holds Attic")
        #expect(try await StreamControl.setVolume(30, device: "10.0.0.2", port: 7001, directory: dir) == nil)

        let status = await StreamControl.status(directory: dir)
        #expect(status.count == 1)
        #expect(status.first?.devices.map(\.device.name) == ["Kitchen", "Bedroom"])
        #expect(status.first?.devices.first?.state == "playing")

        await server.stop()
        #expect(!FileManager.default.fileExists(atPath: server.path), "stop removes the socket")
        #expect(try await StreamControl.setVolume(30, device: "Kitchen", directory: dir) == nil)
    }

    @Test func aFailedVolumeChangeIsOneClearError() async throws {
        let dir = try TestEnv.tempDir().appendingPathComponent("atv").path
        let server = try await StreamControlServer.start(devices: [Self.kitchen], actions: FakeStream(fail: true).actions, directory: dir)
        defer { Task { await server.stop() } }
        await #expect {
            _ = try await StreamControl.setVolume(30, device: "Kitchen", directory: dir)
        } throws: { error in
            let text = "\(error)"
            return text.contains("could not set the volume of Kitchen") && text.contains("the receiver closed the connection")
                && !text.contains("\n")
        }
        await #expect(throws: ATVError.self) { _ = try await StreamControl.setVolume(101, device: "Kitchen", directory: dir) }
    }

    @Test func aDeadStreamsSocketIsRemovedAndIgnored() async throws {
        let dir = try TestEnv.tempDir().appendingPathComponent("atv").path
        try StreamControl.prepareDirectory(dir)
        // The pid of a process that has exited.
        let gone = try Child("/bin/sh", ["-c", "echo $$"])
        let pid = try #require(Int32(try await gone.wait(timeout: 10).stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let stale = dir + "/" + StreamControl.socketName(pid: pid)
        try bindUnixSocket(stale, listen: false)
        let other = dir + "/notes.txt"  // not ours: left alone
        _ = FileManager.default.createFile(atPath: other, contents: Data())

        let stream = FakeStream()
        let server = try await StreamControlServer.start(devices: [Self.kitchen], actions: stream.actions, directory: dir)
        defer { Task { await server.stop() } }
        let set = try #require(try await StreamControl.setVolume(40, device: "Kitchen", directory: dir))
        #expect(set.volume == 40)
        #expect(!FileManager.default.fileExists(atPath: stale), "the dead stream's socket is cleaned")
        #expect(FileManager.default.fileExists(atPath: other))
    }

    @Test func aStreamThatDoesNotAnswerIsSkippedWithinTheTimeout() async throws {
        let dir = try TestEnv.tempDir().appendingPathComponent("atv").path
        try StreamControl.prepareDirectory(dir)
        // A live process's name, a socket that accepts (backlog) and never answers.
        let sleeper = try Child("/bin/sleep", ["30"])
        defer { sleeper.kill() }
        let silent = dir + "/" + StreamControl.socketName(pid: sleeper.pid)
        let fd = try bindUnixSocket(silent, listen: true)
        defer { close(fd) }
        let start = ContinuousClock.now
        #expect(try await StreamControl.setVolume(30, device: "Kitchen", directory: dir, timeout: .milliseconds(500)) == nil)
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(await StreamControl.status(directory: dir, timeout: .milliseconds(500)).isEmpty)
        #expect(FileManager.default.fileExists(atPath: silent), "a live process's socket is not removed")
    }

    @Test func requestsAreAnsweredByThePureLogic() async {
        let stream = FakeStream()
        let devices = [Self.kitchen]
        let holds = await StreamControl.answer(StreamControlRequest(op: "holds", device: "KITCHEN"), devices: devices, actions: stream.actions)
        #expect(holds.ok && holds.holds == true && holds.device == Self.kitchen)
        let not = await StreamControl.answer(StreamControlRequest(op: "holds", device: "Attic"), devices: devices, actions: stream.actions)
        #expect(not.ok && not.holds == false && not.device == nil)
        let set = await StreamControl.answer(StreamControlRequest(op: "setVolume", device: "Kitchen", percent: 120), devices: devices, actions: stream.actions)
        #expect(set.ok && set.volume == 100, "clamped to 0...100")
        let refused = await StreamControl.answer(StreamControlRequest(op: "setVolume", device: "Attic", percent: 10), devices: devices, actions: stream.actions)
        #expect(!refused.ok && refused.holds == false)
        let unknown = await StreamControl.answer(StreamControlRequest(op: "reboot"), devices: devices, actions: stream.actions)
        #expect(!unknown.ok && unknown.error == "unknown request reboot")
    }

    /// A unix socket bound at `path` (listening, or closed at once: a socket file nobody serves).
    @discardableResult
    func bindUnixSocket(_ path: String, listen doListen: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw TestFailure("path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else { close(fd); throw TestFailure("bind \(path) failed") }
        if doListen {
            guard listen(fd, 8) == 0 else { close(fd); throw TestFailure("listen failed") }
            return fd
        }
        close(fd)
        return -1
    }
}
