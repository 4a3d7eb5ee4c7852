import Foundation
import ATVTestSupport
import Synchronization
import Testing
@testable import ATVCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory in the test process's temp folder, removed when the test ends.
final class TempDir {
    let path: String
    init() {
        var template = Array((TestTemp.root.path + "/atv-storage-test-XXXXXX").utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    /// Settings file two levels below, so that the storage creates the directories.
    var settingsPath: String { path + "/config/swift-atv/devices.json" }
}

func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeBytes(_ path: String, _ text: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                            withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

func jsonObject(_ path: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(readBytes(path))) as? [String: Any])
}

func mode(_ path: String) -> mode_t {
    var st = stat()
    _ = stat(path, &st)
    return st.st_mode & 0o777
}

func inode(_ path: String) -> UInt64 {
    var st = stat()
    _ = stat(path, &st)
    return UInt64(st.st_ino)
}

/// The file pyatv's atvremote wrote in a reference run of pyatv 0.18, verbatim.
let pyatvExample = """
{"version": 1, "devices": [{"info": {"rp_id": "2fda1147e030"},
  "protocols": {"airplay": {"identifier": "00:01:02:03:04:05"},
   "companion": {"credentials": "e734ea6c…:f5946bf4…:3544…3641:6236…3633"},
   "dmap": {"identifier": "FakeATV", "credentials": "12345678-6789-1111-2222-012345678911"},
   "mrp": {"identifier": "6D797FD3-3538-427E-A47B-A32FC6CF3A69", "credentials": "e734…:348e…:3544…:6630…"},
   "raop": {"identifier": "AA:BB:CC:DD:EE:FF"}}}]}
"""

func fakeATV(credentials: String? = nil) -> DeviceConfig {
    DeviceConfig(name: "Living Room", address: "127.0.0.1", services: [
        ServiceConfig(protocol: .mrp, identifier: "6D797FD3-3538-427E-A47B-A32FC6CF3A69", port: 49152,
                      credentials: credentials),
        ServiceConfig(protocol: .airplay, identifier: "00:01:02:03:04:05", port: 7000),
        ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:FF", port: 7000),
        ServiceConfig(protocol: .companion, port: 49153),
        ServiceConfig(protocol: .dmap, identifier: "FakeATV", port: 3689),
    ])
}

@Suite struct DeviceSettingsTests {
    @Test func defaultsAreOmittedWhenWriting() throws {
        var s = DeviceSettings(info: InfoSettings(rpID: "0123456789ab"))
        s.protocols.mrp.identifier = "M"
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        #expect(json.contains("\"rp_id\":\"0123456789ab\""))
        for key in ["name", "mac", "model", "device_id", "os_name", "os_build", "os_version",
                    "airplay", "raop", "companion", "dmap", "mrp_tunnel", "timing_port", "credentials"] {
            #expect(!json.contains("\"\(key)\""), "\(key) should be omitted")
        }
        #expect(json.contains("\"mrp\":{\"identifier\":\"M\"}"))
    }

    @Test func nonDefaultsUsePyatvKeys() throws {
        var s = DeviceSettings(info: InfoSettings(name: "Kitchen", rpID: "aabbccddeeff", osVersion: "17.0"))
        s.protocols.airplay = AirPlaySettings(identifier: "A", password: "pw", mrpTunnel: .force)
        s.protocols.raop = RAOPSettings(identifier: "R", protocolVersion: .v2, timingPort: 6002, controlPort: 6001)
        let obj = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as? [String: Any])
        let info = try #require(obj["info"] as? [String: Any])
        #expect(info["name"] as? String == "Kitchen")
        #expect(info["os_version"] as? String == "17.0")
        let protos = try #require(obj["protocols"] as? [String: Any])
        let ap = try #require(protos["airplay"] as? [String: Any])
        #expect(ap["mrp_tunnel"] as? String == "force")
        #expect(ap["password"] as? String == "pw")
        let raop = try #require(protos["raop"] as? [String: Any])
        #expect(raop["protocol_version"] as? String == "2")
        #expect(raop["timing_port"] as? Int == 6002)
        #expect(raop["control_port"] as? Int == 6001)
        // And back.
        #expect(try JSONDecoder().decode(DeviceSettings.self, from: JSONEncoder().encode(s)) == s)
    }

    @Test func missingRPIDIsGeneratedAndDefaultsFilled() throws {
        let a = try JSONDecoder().decode(DeviceSettings.self, from: Data("{}".utf8))
        let b = try JSONDecoder().decode(DeviceSettings.self, from: Data(#"{"info": {"rp_id": null}}"#.utf8))
        for s in [a, b] {
            #expect(s.info.rpID.count == 12)
            #expect(s.info.rpID.allSatisfy { $0.isHexDigit })
            #expect(s.info.name == "swift-atv")
            #expect(s.info.model == "iPhone10,6")
            #expect(s.protocols.raop.protocolVersion == .auto)
        }
        #expect(a.info.rpID != b.info.rpID)
    }

    @Test func lenientScalarsLikePydantic() throws {
        let s = try JSONDecoder().decode(DeviceSettings.self, from: Data(
            #"{"protocols": {"raop": {"protocol_version": 1, "timing_port": "6002"}}}"#.utf8))
        #expect(s.protocols.raop.protocolVersion == .v1)
        #expect(s.protocols.raop.timingPort == 6002)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(DeviceSettings.self, from: Data(#"{"protocols": {"raop": {"timing_port": 70000}}}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(DeviceSettings.self, from: Data(#"{"protocols": {"airplay": {"mrp_tunnel": "x"}}}"#.utf8))
        }
    }

    @Test func applyCopiesCredentialsAndPasswords() {
        var s = DeviceSettings()
        s.protocols.mrp.credentials = "mrp-creds"
        s.protocols.raop.password = "secret"
        s.protocols.companion.credentials = "comp-creds"  // no Companion service → ignored
        var config = DeviceConfig(name: "x", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .mrp, identifier: "M", port: 1, credentials: "old"),
            ServiceConfig(protocol: .raop, identifier: "R", port: 2, credentials: "keep"),
        ])
        FileStorage(path: "/nonexistent/x.json").apply(s, to: &config)
        #expect(config.service(.mrp)?.credentials == "mrp-creds")
        #expect(config.service(.raop)?.credentials == "keep")  // nil in settings: not erased
        #expect(config.service(.raop)?.password == "secret")
        #expect(config.services.count == 2)
    }
}

@Suite struct FileStorageTests {
    @Test func defaultPathFollowsXDG() {
        #expect(FileStorage.defaultPath(environment: ["XDG_CONFIG_HOME": "/x/cfg", "HOME": "/h"])
            == "/x/cfg/swift-atv/devices.json")
        #expect(FileStorage.defaultPath(environment: ["HOME": "/h"]) == "/h/.config/swift-atv/devices.json")
        #expect(FileStorage.defaultPath(environment: ["XDG_CONFIG_HOME": "", "HOME": "/h"])
            == "/h/.config/swift-atv/devices.json")
    }

    @Test func roundTripAndPermissions() throws {
        let tmp = TempDir()
        let storage = FileStorage(path: tmp.settingsPath)
        try storage.load()  // no file yet: empty
        #expect(try storage.allSettings.isEmpty)

        var s = try storage.settings(for: fakeATV())
        #expect(s.protocols.mrp.identifier == "6D797FD3-3538-427E-A47B-A32FC6CF3A69")
        #expect(s.protocols.dmap.identifier == "FakeATV")
        s.protocols.raop.password = "pw"
        s.protocols.raop.timingPort = 6002
        s.info.name = "Test Remote"
        try storage.store(s)
        try storage.save()

        #expect(mode(tmp.settingsPath) == 0o600)
        #expect(mode(tmp.path + "/config/swift-atv") == 0o700)
        #expect(mode(tmp.path + "/config") == 0o700)

        let again = FileStorage(path: tmp.settingsPath)
        try again.load()
        #expect(try again.allSettings == [s])
        let obj = try jsonObject(tmp.settingsPath)
        #expect(obj["version"] as? Int == 1)
        #expect((obj["devices"] as? [Any])?.count == 1)
    }

    @Test func settingsLookupByAnyIdentifier() throws {
        let tmp = TempDir()
        let storage = FileStorage(path: tmp.settingsPath)
        let first = try storage.settings(for: fakeATV())
        // Same device seen through only its RAOP service.
        let raopOnly = DeviceConfig(name: "y", address: "127.0.0.1",
                                    services: [ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:FF", port: 7000)])
        #expect(try storage.settings(for: raopOnly) == first)
        #expect(try storage.allSettings.count == 1)
        // Another device gets its own entry.
        let other = DeviceConfig(name: "z", address: "127.0.0.1",
                                 services: [ServiceConfig(protocol: .airplay, identifier: "11:22", port: 7000)])
        #expect(try storage.settings(for: other).protocols.airplay.identifier == "11:22")
        #expect(try storage.allSettings.count == 2)
        // No identifiers at all.
        let anonymous = DeviceConfig(name: "a", address: "127.0.0.1", services: [ServiceConfig(protocol: .raop, port: 7000)])
        #expect(throws: ATVError.deviceIdMissing) { try storage.settings(for: anonymous) }
    }

    @Test func updateCopiesCredentialsFromConfigAndRemoveWorks() throws {
        let tmp = TempDir()
        let storage = FileStorage(path: tmp.settingsPath)
        var config = fakeATV()
        _ = try storage.settings(for: config)
        config.setCredentials(.companion, "comp-creds")
        config.updateService(.airplay) { $0.password = "ap-pw" }
        try storage.update(config)
        try storage.save()

        let reread = FileStorage(path: tmp.settingsPath)
        let s = try reread.settings(for: fakeATV())
        #expect(s.protocols.companion.credentials == "comp-creds")
        #expect(s.protocols.airplay.password == "ap-pw")

        // The stored credentials flow back into a freshly scanned config.
        var scanned = fakeATV()
        reread.apply(s, to: &scanned)
        #expect(scanned.service(.companion)?.credentials == "comp-creds")
        #expect(scanned.service(.airplay)?.password == "ap-pw")

        #expect(try reread.remove(s))
        #expect(try !reread.remove(s))
        try reread.save()
        #expect(try FileStorage(path: tmp.settingsPath).allSettings.isEmpty)
    }

    @Test func saveWritesOnlyWhenChanged() throws {
        let tmp = TempDir()
        let storage = FileStorage(path: tmp.settingsPath)
        _ = try storage.settings(for: fakeATV())
        try storage.save()
        let ino = inode(tmp.settingsPath)
        let bytes = try readBytes(tmp.settingsPath)
        try storage.save()
        try FileStorage(path: tmp.settingsPath).save()  // a fresh instance with nothing to add
        #expect(inode(tmp.settingsPath) == ino)  // every write is a rename to a new inode
        #expect(try readBytes(tmp.settingsPath) == bytes)
        try storage.update(fakeATV(credentials: "new"))
        try storage.save()
        #expect(inode(tmp.settingsPath) != ino)
    }

    @Test func savesMergeChangesOfTwoInstances() throws {
        let tmp = TempDir()
        let a = FileStorage(path: tmp.settingsPath)
        let b = FileStorage(path: tmp.settingsPath)
        try a.load()
        try b.load()
        _ = try a.settings(for: fakeATV(credentials: "from-a"))
        let other = DeviceConfig(name: "z", address: "127.0.0.1",
                                 services: [ServiceConfig(protocol: .raop, identifier: "11:22", port: 7000, password: "b")])
        _ = try b.settings(for: other)
        try a.save()
        try b.save()  // must not drop a's device
        let all = try FileStorage(path: tmp.settingsPath).allSettings
        #expect(all.count == 2)
        #expect(all.contains { $0.protocols.mrp.credentials == "from-a" })
        #expect(all.contains { $0.protocols.raop.password == "b" })
    }

    @Test func unknownKeysArePreserved() throws {
        let tmp = TempDir()
        try writeBytes(tmp.settingsPath, """
            {"version": 1, "comment": "hand edited", "devices": [
              {"info": {"rp_id": "aabbccddeeff", "future_info": 7},
               "protocols": {"mrp": {"identifier": "M", "future_field": [1, 2.5, null, true]},
                             "hdmi": {"identifier": "H"}},
               "notes": {"a": "b"}}]}
            """)
        let storage = FileStorage(path: tmp.settingsPath)
        let config = DeviceConfig(name: "x", address: "127.0.0.1",
                                  services: [ServiceConfig(protocol: .mrp, identifier: "M", port: 1, credentials: "c")])
        _ = try storage.settings(for: config)
        try storage.update(config)
        try storage.save()

        let obj = try jsonObject(tmp.settingsPath)
        #expect(obj["comment"] as? String == "hand edited")
        let dev = try #require((obj["devices"] as? [[String: Any]])?.first)
        #expect((dev["notes"] as? [String: String]) == ["a": "b"])
        #expect((dev["info"] as? [String: Any])?["future_info"] as? Int == 7)
        let protos = try #require(dev["protocols"] as? [String: Any])
        #expect((protos["hdmi"] as? [String: String]) == ["identifier": "H"])
        let mrp = try #require(protos["mrp"] as? [String: Any])
        #expect(mrp["credentials"] as? String == "c")
        #expect((mrp["future_field"] as? [Any])?.count == 4)
    }

    @Test(arguments: [
        ("{\"version\": 1, \"devices\": [", "not JSON"),
        ("{\"version\": 2, \"devices\": []}", "unsupported version 2"),
        ("{\"devices\": []}", "no version"),
        ("[1, 2]", "not a JSON object"),
        ("{\"version\": 1, \"devices\": [{\"protocols\": {\"mrp\": {\"identifier\": 5}}}]}", "devices[0].protocols.mrp.identifier"),
    ])
    func corruptFileIsReportedAndNeverOverwritten(content: String, detail: String) throws {
        let tmp = TempDir()
        try writeBytes(tmp.settingsPath, content)
        let before = try readBytes(tmp.settingsPath)
        let storage = FileStorage(path: tmp.settingsPath)

        func check(_ body: () throws -> Void) {
            do {
                try body()
                Issue.record("expected a settings error")
            } catch let ATVError.settings(msg) {
                #expect(msg.hasPrefix("\(tmp.settingsPath) is not a valid settings file ("))
                #expect(msg.hasSuffix("); fix or move it away"))
                #expect(msg.contains(detail))
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        check { try storage.load() }
        check { _ = try storage.settings(for: fakeATV()) }
        check { try storage.save() }
        check { try storage.modify { $0 = [] } }
        check { try storage.importPyatv(from: tmp.settingsPath) }  // also refused as a source
        #expect(try readBytes(tmp.settingsPath) == before)
        let left = try FileManager.default.contentsOfDirectory(atPath: tmp.path + "/config/swift-atv")
        #expect(left.allSatisfy { $0 == "devices.json" || $0 == "devices.json.lock" }, "\(left)")
    }

    @Test func emptyFileCountsAsNoDevices() throws {
        let tmp = TempDir()
        try writeBytes(tmp.settingsPath, "")
        let storage = FileStorage(path: tmp.settingsPath)
        #expect(try storage.allSettings.isEmpty)
        _ = try storage.settings(for: fakeATV())
        try storage.save()
        #expect(try FileStorage(path: tmp.settingsPath).allSettings.count == 1)
    }

    @Test func importsPyatvExampleWithAllCredentials() throws {
        let tmp = TempDir()
        let pyatvConf = tmp.path + "/home/.pyatv.conf"
        try writeBytes(pyatvConf, pyatvExample)
        let storage = FileStorage(path: tmp.settingsPath)
        #expect(try storage.importPyatv(from: pyatvConf) == 1)

        // Written at once, readable by a new instance.
        let reread = FileStorage(path: tmp.settingsPath)
        var config = fakeATV()
        let s = try reread.settings(for: config)
        #expect(try reread.allSettings.count == 1)
        #expect(s.info.rpID == "2fda1147e030")
        #expect(s.protocols.airplay.identifier == "00:01:02:03:04:05")
        #expect(s.protocols.companion.credentials == "e734ea6c…:f5946bf4…:3544…3641:6236…3633")
        #expect(s.protocols.dmap.identifier == "FakeATV")
        #expect(s.protocols.dmap.credentials == "12345678-6789-1111-2222-012345678911")
        #expect(s.protocols.mrp.identifier == "6D797FD3-3538-427E-A47B-A32FC6CF3A69")
        #expect(s.protocols.mrp.credentials == "e734…:348e…:3544…:6630…")
        #expect(s.protocols.raop.identifier == "AA:BB:CC:DD:EE:FF")
        reread.apply(s, to: &config)
        #expect(config.service(.companion)?.credentials == "e734ea6c…:f5946bf4…:3544…3641:6236…3633")
        #expect(config.service(.dmap)?.credentials == "12345678-6789-1111-2222-012345678911")
        #expect(config.service(.mrp)?.credentials == "e734…:348e…:3544…:6630…")

        // Importing again changes nothing.
        #expect(try reread.importPyatv(from: pyatvConf) == 0)
        #expect(try FileStorage(path: tmp.settingsPath).allSettings.count == 1)
    }

    @Test func importFillsOnlyMissingValuesOfAKnownDevice() throws {
        let tmp = TempDir()
        let pyatvConf = tmp.path + "/.pyatv.conf"
        try writeBytes(pyatvConf, pyatvExample)
        let storage = FileStorage(path: tmp.settingsPath)
        // We know the device by its RAOP id only, with our own MRP credentials.
        let known = DeviceConfig(name: "x", address: "127.0.0.1", services: [
            ServiceConfig(protocol: .raop, identifier: "AA:BB:CC:DD:EE:FF", port: 7000),
            ServiceConfig(protocol: .mrp, port: 1, credentials: "ours"),
        ])
        let mine = try storage.settings(for: known)
        try storage.save()
        #expect(try storage.importPyatv(from: pyatvConf) == 1)
        let all = try storage.allSettings
        #expect(all.count == 1)
        let s = try #require(all.first)
        #expect(s.info.rpID == mine.info.rpID)  // our identity is kept
        #expect(s.protocols.mrp.credentials == "ours")  // not overwritten
        #expect(s.protocols.mrp.identifier == "6D797FD3-3538-427E-A47B-A32FC6CF3A69")
        #expect(s.protocols.dmap.credentials == "12345678-6789-1111-2222-012345678911")
        #expect(s.protocols.companion.credentials != nil)
    }

    @Test func importOfMissingFileFails() throws {
        let tmp = TempDir()
        let storage = FileStorage(path: tmp.settingsPath)
        #expect(throws: ATVError.self) { try storage.importPyatv(from: tmp.path + "/nope.conf") }
        #expect(!FileManager.default.fileExists(atPath: tmp.settingsPath))
    }

    /// Separate FileStorage instances on separate threads: each `modify` opens its own lock file
    /// description, so flock serialises them just as it serialises processes.
    @Test func concurrentWritersLoseNoUpdate() async throws {
        let tmp = TempDir()
        let path = tmp.settingsPath
        let writers = 6
        let increments = 40
        let counterKey = "counter"
        @Sendable func counter(_ devices: [DeviceSettings]) -> Int64 {
            guard let d = devices.first(where: { $0.protocols.mrp.identifier == "COUNTER" }),
                  case .int(let n)? = d.extra[counterKey] else { return 0 }
            return n
        }

        let errors = Mutex<[String]>([])
        let invalidReads = Atomic<Int>(0)
        let validReads = Atomic<Int>(0)
        let writersDone = Atomic<Int>(0)
        let group = DispatchGroup()

        for w in 0..<writers {
            group.enter()
            Thread.detachNewThread {
                defer { writersDone.add(1, ordering: .sequentiallyConsistent); group.leave() }
                let storage = FileStorage(path: path)
                do {
                    for i in 0..<increments {
                        try storage.modify { devices in
                            let n = counter(devices)
                            devices.removeAll { $0.protocols.mrp.identifier == "COUNTER" }
                            var d = DeviceSettings(info: InfoSettings(rpID: "000000000000"))
                            d.protocols.mrp.identifier = "COUNTER"
                            d.extra[counterKey] = .int(n + 1)
                            devices.insert(d, at: 0)
                            // Each writer also keeps one device of its own up to date.
                            let id = "writer-\(w)"
                            if let j = devices.firstIndex(where: { $0.protocols.raop.identifier == id }) {
                                devices[j].protocols.raop.timingPort = i + 1
                            } else {
                                devices.append(DeviceSettings(protocols: ProtocolSettings(
                                    raop: RAOPSettings(identifier: id, timingPort: i + 1))))
                            }
                        }
                    }
                } catch {
                    errors.withLock { $0.append("writer \(w): \(error)") }
                }
            }
        }
        // A reader checks that the file is valid whenever it looks.
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while writersDone.load(ordering: .sequentiallyConsistent) < writers {
                guard case .success(let bytes?) = FileStorage.readAll(path) else { continue }
                if (try? FileStorage.decode(bytes, path: path)) != nil, !bytes.isEmpty {
                    validReads.add(1, ordering: .relaxed)
                } else {
                    invalidReads.add(1, ordering: .relaxed)
                }
            }
        }
        // Waited for on a thread of its own, not on one of the concurrency pool's.
        #expect(await offPool { group.wait(timeout: .now() + 120) } == .success)

        #expect(errors.withLock { $0 } == [])
        #expect(invalidReads.load(ordering: .relaxed) == 0)
        #expect(validReads.load(ordering: .relaxed) > 0)
        let final = FileStorage(path: path)
        let devices = try final.allSettings
        #expect(counter(devices) == Int64(writers * increments))
        #expect(devices.count == writers + 1)
        for w in 0..<writers {
            #expect(devices.first { $0.protocols.raop.identifier == "writer-\(w)" }?.protocols.raop.timingPort == increments)
        }
        // Atomic writes leave no temporary files behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
        #expect(left.sorted() == ["devices.json", "devices.json.lock"])
        #expect(mode(path) == 0o600)
    }

    @Test func lockTimeoutIsReported() throws {
        let tmp = TempDir()
        let holder = FileStorage(path: tmp.settingsPath)
        let waiter = FileStorage(path: tmp.settingsPath, lockTimeout: .milliseconds(100))
        try holder.modify { _ in
            do {
                try waiter.modify { _ in }
                Issue.record("expected a lock timeout")
            } catch let ATVError.settings(msg) {
                #expect(msg.contains("locked"))
            }
        }
    }
}
