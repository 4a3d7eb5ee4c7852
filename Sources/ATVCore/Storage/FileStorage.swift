import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Device settings kept in one JSON file, by default `$XDG_CONFIG_HOME/swift-atv/devices.json`
/// (or `$HOME/.config/swift-atv/devices.json`). The layout is pyatv's (`{"version": 1, "devices": […]}`).
///
/// - Writes are atomic (temporary file in the same directory, fsync, mode 0600, rename, fsync of
///   the directory); the directory is created with mode 0700.
/// - Writers in different processes are serialised by an exclusive `flock` on `<file>.lock`.
///   `modify(_:)` is a locked read-modify-write; `save()` merges this instance's changes into
///   whatever is on disk at that moment, entry by entry.
/// - A file that is not a valid settings file is reported with `ATVError.settings` and never overwritten.
public final class FileStorage: Sendable {
    /// The settings file.
    public let path: String
    /// How long to wait for another process holding the lock.
    public let lockTimeout: Duration

    private struct State {
        var loaded = false
        /// This instance's view of the devices.
        var devices: [DeviceSettings] = []
        /// The devices as last read from or written to disk (base of the merge in `save()`).
        var baseline: [DeviceSettings] = []
        /// Unknown top-level keys of the file, kept on write.
        var fileExtra: [String: JSONValue] = [:]
    }
    private let state = Mutex(State())

    public init(path: String? = nil, lockTimeout: Duration = .seconds(30)) {
        self.path = path ?? FileStorage.defaultPath()
        self.lockTimeout = lockTimeout
    }

    /// `$XDG_CONFIG_HOME/swift-atv/devices.json`, else `$HOME/.config/swift-atv/devices.json`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") {
            return xdg + "/swift-atv/devices.json"
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? PathName.homeDirectory()
        return home + "/.config/swift-atv/devices.json"
    }

    /// pyatv's default file, `$HOME/.pyatv.conf`.
    public static var pyatvDefaultPath: String { expand("$HOME/.pyatv.conf") }

    // MARK: - Reading and querying

    /// Read the file (a missing file means no devices). Discards unsaved changes.
    public func load() throws {
        let file = try readFile()
        state.withLock { s in
            s.devices = file.devices
            s.baseline = file.devices
            s.fileExtra = file.extra
            s.loaded = true
        }
    }

    /// Every stored device (loads the file on first use).
    public var allSettings: [DeviceSettings] {
        get throws {
            try ensureLoaded()
            return state.withLock { $0.devices }
        }
    }

    /// The settings of a device: the first entry sharing any identifier with the config; otherwise
    /// a new entry filled from the config's services is added (in memory; `save()` writes it).
    public func settings(for config: DeviceConfig) throws -> DeviceSettings {
        try ensureLoaded()
        let ids = Set(config.allIdentifiers)
        guard !ids.isEmpty else { throw ATVError.deviceIdMissing }
        return state.withLock { s in
            if let i = s.devices.firstIndex(where: { !$0.identifiers.isDisjoint(with: ids) }) {
                return s.devices[i]
            }
            let new = DeviceSettings(from: config)
            s.devices.append(new)
            return new
        }
    }

    /// Copy identifiers, credentials and passwords of the config into its entry (created if needed).
    public func update(_ config: DeviceConfig) throws {
        try ensureLoaded()
        let ids = Set(config.allIdentifiers)
        guard !ids.isEmpty else { throw ATVError.deviceIdMissing }
        state.withLock { s in
            if let i = s.devices.firstIndex(where: { !$0.identifiers.isDisjoint(with: ids) }) {
                s.devices[i].fill(from: config, overwrite: true)
            } else {
                s.devices.append(DeviceSettings(from: config))
            }
        }
    }

    /// Replace the stored entry that shares an identifier with `settings` (or add it).
    public func store(_ settings: DeviceSettings) throws {
        try ensureLoaded()
        state.withLock { s in
            if let i = s.devices.firstIndex(where: { Self.sameDevice($0, settings) }) {
                s.devices[i] = settings
            } else {
                s.devices.append(settings)
            }
        }
    }

    /// Remove an entry (compared by value). Returns false if it was not stored.
    @discardableResult
    public func remove(_ settings: DeviceSettings) throws -> Bool {
        try ensureLoaded()
        return state.withLock { s in
            guard let i = s.devices.firstIndex(of: settings) else { return false }
            s.devices.remove(at: i)
            return true
        }
    }

    /// Remove every entry sharing an identifier with the config. Returns how many were removed.
    @discardableResult
    public func remove(_ config: DeviceConfig) throws -> Int {
        try ensureLoaded()
        let ids = Set(config.allIdentifiers)
        return state.withLock { s in
            let before = s.devices.count
            s.devices.removeAll { !$0.identifiers.isDisjoint(with: ids) }
            return before - s.devices.count
        }
    }

    /// Copy non-nil credentials and passwords per protocol into the config's services.
    public func apply(_ settings: DeviceSettings, to config: inout DeviceConfig) {
        config.apply(settings)
    }

    // MARK: - Writing

    /// Write this instance's changes since the last load/save. Under the file lock the file is
    /// re-read and the changes are merged into it entry by entry (entries changed by another
    /// process and not by us are kept). Nothing is written if the result equals the file.
    public func save() throws {
        try ensureLoaded()
        try withFileLock {
            let disk = try readFile()
            let (ours, baseline, extra) = state.withLock { ($0.devices, $0.baseline, $0.fileExtra) }
            let merged = Self.merge(base: baseline, ours: ours, theirs: disk.devices)
            var mergedExtra = disk.extra
            mergedExtra.merge(extra) { disk, _ in disk }
            try writeIfChanged(SettingsFile(devices: merged, extra: mergedExtra), current: disk.bytes)
            state.withLock { s in
                s.devices = merged
                s.baseline = merged
                s.fileExtra = mergedExtra
                s.loaded = true
            }
        }
    }

    /// Locked read-modify-write: takes the file lock, re-reads the file, runs `body` on the
    /// devices and writes the result (if it changed). This instance's state becomes the result;
    /// unsaved in-memory changes are dropped.
    public func modify(_ body: (inout [DeviceSettings]) throws -> Void) throws {
        try modifyFile { devices, _ in try body(&devices) }
    }

    /// `modify` with the file's top-level keys besides `devices` too (groups, audio offsets).
    func modifyFile<T>(_ body: (inout [DeviceSettings], inout [String: JSONValue]) throws -> T) throws -> T {
        try withFileLock {
            let disk = try readFile()
            var devices = disk.devices
            var extra = disk.extra
            let result = try body(&devices, &extra)
            try writeIfChanged(SettingsFile(devices: devices, extra: extra), current: disk.bytes)
            state.withLock { s in
                s.devices = devices
                s.baseline = devices
                s.fileExtra = extra
                s.loaded = true
            }
            return result
        }
    }

    /// The file's top-level keys besides `version` and `devices`, as on disk now (no lock: the
    /// file is replaced atomically, so a read sees one whole version).
    func fileExtras() throws -> [String: JSONValue] {
        try readFile().extra
    }

    /// Merge pyatv's settings file into ours: a device that shares an identifier with one of ours
    /// gets its missing identifiers, credentials and passwords filled; others are added. The
    /// result is written at once. Returns how many devices were added or updated.
    @discardableResult
    public func importPyatv(from path: String = "$HOME/.pyatv.conf") throws -> Int {
        let source = Self.expand(path)
        let bytes: [UInt8]
        switch Self.readAll(source) {
        case .success(let b?): bytes = b
        case .success(nil): throw ATVError.settings("\(source) does not exist: nothing to import")
        case .failure(let e): throw ATVError.settings("cannot read \(source): \(e)")
        }
        let theirs = try Self.decode(bytes, path: source).devices
        var count = 0
        try modify { devices in
            for entry in theirs {
                let ids = entry.identifiers
                guard !ids.isEmpty else { continue }
                if let i = devices.firstIndex(where: { !$0.identifiers.isDisjoint(with: ids) }) {
                    if devices[i].fillMissing(from: entry) { count += 1 }
                } else {
                    devices.append(entry)
                    count += 1
                }
            }
        }
        return count
    }

    // MARK: - Internals

    private func ensureLoaded() throws {
        if !state.withLock({ $0.loaded }) { try load() }
    }

    static func sameDevice(_ a: DeviceSettings, _ b: DeviceSettings) -> Bool {
        let ia = a.identifiers
        if ia.isEmpty { return a.info.rpID == b.info.rpID }
        return !ia.isDisjoint(with: b.identifiers)
    }

    /// Three-way merge at entry level: start from `theirs` (the file now), drop what we removed
    /// since `base` (if still unchanged there) and put in what we added or changed.
    static func merge(base: [DeviceSettings], ours: [DeviceSettings], theirs: [DeviceSettings]) -> [DeviceSettings] {
        if theirs == base { return ours }
        var result = theirs
        for old in base where !ours.contains(old) {
            if let i = result.firstIndex(of: old) { result.remove(at: i) }
        }
        for new in ours where !base.contains(new) {
            if let i = result.firstIndex(where: { sameDevice($0, new) }) {
                result[i] = new
            } else {
                result.append(new)
            }
        }
        return result
    }

    struct SettingsFile {
        var devices: [DeviceSettings] = []
        var extra: [String: JSONValue] = [:]
        /// The bytes read (nil if there was no file).
        var bytes: [UInt8]? = nil
    }

    private struct FileLayout: Codable {
        var version: Int?
        var devices: [DeviceSettings]
        var extra: [String: JSONValue]

        init(version: Int, devices: [DeviceSettings], extra: [String: JSONValue]) {
            self.version = version
            self.devices = devices
            self.extra = extra
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            version = try c.decodeIfPresent(Int.self, forKey: AnyKey("version"))
            devices = try c.decodeIfPresent([DeviceSettings].self, forKey: AnyKey("devices")) ?? []
            extra = try c.extras(excluding: ["version", "devices"])
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            try c.encode(version ?? 1, forKey: AnyKey("version"))
            try c.encode(devices, forKey: AnyKey("devices"))
            try c.encodeExtras(extra)
        }
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> SettingsFile {
        // An empty file holds nothing worth keeping (e.g. created by `touch`).
        if bytes.allSatisfy({ [0x20, 0x0A, 0x0D, 0x09].contains($0) }) { return SettingsFile(bytes: bytes) }
        func invalid(_ detail: String) -> ATVError {
            .settings("\(path) is not a valid settings file (\(detail)); fix or move it away")
        }
        let layout: FileLayout
        do {
            layout = try JSONDecoder().decode(FileLayout.self, from: Data(bytes))
        } catch let e as DecodingError {
            throw invalid(describe(e))
        } catch {
            throw invalid("\(error)")
        }
        guard layout.version == 1 else {
            throw invalid(layout.version.map { "unsupported version \($0), expected 1" } ?? "no version")
        }
        return SettingsFile(devices: layout.devices, extra: layout.extra, bytes: bytes)
    }

    static func describe(_ e: DecodingError) -> String {
        func at(_ ctx: DecodingError.Context) -> String {
            let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "" : "at \(p.hasPrefix(".") ? String(p.dropFirst()) : p): "
        }
        switch e {
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not JSON" : at(ctx) + ctx.debugDescription
        case .typeMismatch(let t, let ctx):
            return ctx.codingPath.isEmpty ? "not a JSON object" : at(ctx) + "expected \(t)"
        case .valueNotFound(let t, let ctx): return at(ctx) + "missing \(t)"
        case .keyNotFound(let k, let ctx): return at(ctx) + "missing key \(k.stringValue)"
        @unknown default: return "\(e)"
        }
    }

    static func encode(_ file: SettingsFile) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var bytes = Array(try enc.encode(FileLayout(version: 1, devices: file.devices, extra: file.extra)))
        bytes.append(0x0A)
        return bytes
    }

    private func readFile() throws -> SettingsFile {
        switch Self.readAll(path) {
        case .success(nil): return SettingsFile()
        case .success(let bytes?): return try Self.decode(bytes, path: path)
        case .failure(let e): throw ATVError.settings("cannot read \(path): \(e)")
        }
    }

    private func writeIfChanged(_ file: SettingsFile, current: [UInt8]?) throws {
        let bytes = try Self.encode(file)
        if let current, current == bytes { return }
        try atomicWrite(bytes)
    }

    // MARK: - POSIX file handling

    struct POSIXError: Error, CustomStringConvertible {
        let op: String
        let code: Int32
        var description: String { "\(op): \(String(cString: strerror(code)))" }
    }

    /// The whole file, nil if it does not exist.
    static func readAll(_ path: String) -> Result<[UInt8]?, POSIXError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            return errno == ENOENT ? .success(nil) : .failure(POSIXError(op: "open", code: errno))
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(POSIXError(op: "read", code: errno))
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return .success(out)
    }

    private var directory: String {
        let d = PathName.directory(path)
        return d.isEmpty ? "." : d
    }

    /// mkdir -p, new directories with mode 0700.
    private func makeDirectory(_ dir: String) throws {
        var st = stat()
        if stat(dir, &st) == 0 { return }
        let parent = PathName.directory(dir)
        if !parent.isEmpty && parent != dir { try makeDirectory(parent) }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw ATVError.settings("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        _ = chmod(dir, 0o700)
    }

    private func atomicWrite(_ bytes: [UInt8]) throws {
        let dir = directory
        try makeDirectory(dir)
        let name = PathName.lastComponent(path)
        let tmp = "\(dir)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func fail(_ op: String) -> ATVError {
            .settings("cannot write \(path): \(op): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 { throw fail("create temporary file") }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        do {
            defer { close(fd) }
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("write")
                }
                off += n
            }
            if fchmod(fd, 0o600) != 0 { throw fail("fchmod") }
            if fsync(fd) != 0 { throw fail("fsync") }
        }
        if rename(tmp, path) != 0 { throw fail("rename") }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Run `body` holding an exclusive flock on `<path>.lock` (a fresh open file description each
    /// time, so it also excludes other instances in this process).
    private func withFileLock<T>(_ body: () throws -> T) throws -> T {
        try makeDirectory(directory)
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw ATVError.settings("cannot open lock file \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }  // closing releases the lock
        let clock = ContinuousClock()
        let deadline = clock.now + lockTimeout
        var pause: UInt32 = 200  // µs
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw ATVError.settings("cannot lock \(lockPath): \(String(cString: strerror(errno)))")
            }
            if clock.now >= deadline {
                throw ATVError.settings("\(lockPath) is locked by another process; try again")
            }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
        return try body()
    }

    static func expand(_ path: String) -> String {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? PathName.homeDirectory()
        if path.hasPrefix("$HOME") { return home + path.dropFirst(5) }
        if path == "~" || path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }
}
