// Control of a running stream from another process: each running `atv stream` listens on a unix
// socket in a private directory; `atv volume 30 --to Kitchen` asks every socket there whether its
// stream holds Kitchen and, if one does, has that stream set the volume (a second connection to
// the receiver would start a second session). One JSON object per line each way, one request per
// connection, every wait bounded.
import ATVCore
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A device a running stream plays to, as other processes find it: by name, address (optionally
/// with the port), or any identifier.
public struct StreamControlDevice: Sendable, Codable, Equatable {
    /// The device's name (its address when it was given by address).
    public var name: String
    /// Its IP address.
    public var address: String
    /// The port the stream talks to (RTSP), when known.
    public var port: Int?
    /// Every identifier of the device (MAC-style, UUIDs …).
    public var identifiers: [String]

    /// A device `name` at `address`:`port` with `identifiers`.
    public init(name: String, address: String, port: Int? = nil, identifiers: [String] = []) {
        self.name = name
        self.address = address
        self.port = port
        self.identifiers = identifiers
    }

    /// The device of a configuration, streamed to on `port`.
    public init(config: DeviceConfig, port: Int?) {
        self.init(name: config.name, address: config.address, port: port, identifiers: config.allIdentifiers)
    }

    /// Whether `reference` (a name, identifier, address or "address:port"; without regard to
    /// case) names this device; with `port`, the device's port must be that port too.
    public func matches(_ reference: String, port: Int? = nil) -> Bool {
        if let port, let own = self.port, own != port { return false }
        let r = reference.lowercased()
        if r == name.lowercased() || r == address.lowercased() || identifiers.contains(where: { $0.lowercased() == r }) {
            return true
        }
        if let own = self.port { return r == "\(address.lowercased()):\(own)" }
        return false
    }
}

extension StreamControlDevice {
    enum CodingKeys: String, CodingKey { case name, address, port, identifiers }

    /// A device as the control socket's JSON carries it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), address: try c.decode(String.self, forKey: .address),
                  port: try c.decodeIfPresent(Int.self, forKey: .port),
                  identifiers: try c.decodeIfPresent([String].self, forKey: .identifiers) ?? [])
    }
}

/// One device of a running stream as `status` reports it.
public struct StreamControlMemberStatus: Sendable, Codable, Equatable {
    /// The device.
    public var device: StreamControlDevice
    /// Its volume 0...100, when known.
    public var volume: Double?
    /// What the stream is doing with it ("playing", "paused", "joining" …), when known.
    public var state: String?

    /// A status line of `device`.
    public init(device: StreamControlDevice, volume: Double? = nil, state: String? = nil) {
        self.device = device
        self.volume = volume
        self.state = state
    }
}

extension StreamControlMemberStatus {
    enum CodingKeys: String, CodingKey { case device, volume, state }

    /// A device's status as the control socket's JSON carries it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(device: try c.decode(StreamControlDevice.self, forKey: .device),
                  volume: try c.decodeIfPresent(Double.self, forKey: .volume),
                  state: try c.decodeIfPresent(String.self, forKey: .state))
    }
}

/// A running stream, from `StreamControl.status`.
public struct StreamControlStreamStatus: Sendable, Equatable {
    /// The process running it.
    public var pid: Int32
    /// Its devices.
    public var devices: [StreamControlMemberStatus]
}

/// What a volume change through a running stream did (`StreamControl.setVolume`).
public struct StreamControlVolumeResult: Sendable, Equatable {
    /// The process whose stream holds the device.
    public var pid: Int32
    /// The device, as that stream knows it.
    public var device: StreamControlDevice
    /// The volume now, 0...100.
    public var volume: Double
}

/// What a running stream does when asked: the calls of its stream (the facade's volume for one
/// device, the group stream's per-member volume for several).
public struct StreamControlActions: Sendable {
    /// Set the volume (0...100) of one of the stream's devices.
    public var setVolume: @Sendable (_ device: StreamControlDevice, _ percent: Double) async throws -> Void
    /// The current status of each device.
    public var status: @Sendable () async -> [StreamControlMemberStatus]

    /// Actions from the stream's calls.
    public init(setVolume: @escaping @Sendable (_ device: StreamControlDevice, _ percent: Double) async throws -> Void,
                status: @escaping @Sendable () async -> [StreamControlMemberStatus]) {
        self.setVolume = setVolume
        self.status = status
    }
}

/// The wire format: one JSON object per line.
struct StreamControlRequest: Codable, Equatable {
    /// "holds", "setVolume" or "status".
    var op: String
    var device: String?
    var port: Int?
    var percent: Double?
    /// Volume step (up/down) instead of `percent`.
    var delta: Double?
}

struct StreamControlResponse: Codable, Equatable {
    var ok: Bool
    var pid: Int32
    var holds: Bool?
    var device: StreamControlDevice?
    var volume: Double?
    var devices: [StreamControlMemberStatus]?
    var error: String?
}

/// Finding and talking to running streams (client side) and the directory they listen in.
public enum StreamControl {
    /// The longest a request line may be.
    static let maxLine = 16 * 1024

    /// `$XDG_RUNTIME_DIR/atv` (when set to an absolute path), else `/tmp/atv-UID`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_RUNTIME_DIR"], xdg.hasPrefix("/") { return xdg + "/atv" }
        return "/tmp/atv-\(getuid())"
    }

    /// The socket of the stream in process `pid`.
    static func socketName(pid: Int32) -> String { "stream-\(pid).sock" }

    /// The pid in a socket's name, nil for a file that is not one of ours.
    static func pid(fromSocketName name: String) -> Int32? {
        guard name.hasPrefix("stream-"), name.hasSuffix(".sock") else { return nil }
        return Int32(name.dropFirst("stream-".count).dropLast(".sock".count))
    }

    /// Creates `directory` with mode 0700 if needed; refuses one that is not a directory owned
    /// by this user or that others can enter (a socket there would be open to them).
    static func prepareDirectory(_ directory: String) throws {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw ATVError.settings("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else {
            throw ATVError.settings("\(directory) is not a directory of this user; remove it")
        }
        if st.st_mode & 0o077 != 0, chmod(directory, 0o700) != 0 {
            throw ATVError.settings("\(directory) is open to other users and cannot be made private")
        }
    }

    /// Every running stream's socket in `directory`; sockets of processes that are gone are
    /// removed (a stream killed before it could clean up).
    static func liveSockets(in directory: String) -> [(pid: Int32, path: String)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [(pid: Int32, path: String)] = []
        for name in names.sorted() {
            guard let pid = pid(fromSocketName: name) else { continue }
            let path = directory + "/" + name
            if kill(pid, 0) != 0 && errno == ESRCH {
                unlink(path)
                continue
            }
            out.append((pid, path))
        }
        return out
    }

    /// Sends one request to the socket at `path` and reads the answer, within `timeout`. nil
    /// when nobody answers (a socket left behind by a process whose pid was reused, a stream
    /// that is stuck): such a stream is treated as holding nothing.
    static func ask(_ path: String, _ request: StreamControlRequest, timeout: Duration) async -> StreamControlResponse? {
        do {
            return try await withDeadline(timeout, { ATVError.timeout("the stream at \(path) did not answer") }) {
                try await exchange(path, request, timeout: timeout)
            }
        } catch {
            return nil
        }
    }

    private static func exchange(_ path: String, _ request: StreamControlRequest, timeout: Duration) async throws -> StreamControlResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)))
            .connect(unixDomainSocketPath: path) { ch in
                ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var line = Array(try JSONEncoder().encode(request))
            line.append(0x0A)
            try await outbound.write(ByteBuffer(bytes: line))
            let answer = try await readLine(inbound)
            return try JSONDecoder().decode(StreamControlResponse.self, from: Data(answer))
        }
    }

    /// The bytes up to the first newline (without it); throws at end of stream or past `maxLine`.
    static func readLine(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await var buffer in inbound {
            let chunk = buffer.readBytes(length: buffer.readableBytes) ?? []
            if let nl = chunk.firstIndex(of: 0x0A) {
                bytes += chunk[..<nl]
                return bytes
            }
            bytes += chunk
            if bytes.count > maxLine { throw ATVError.protocolError("stream control line too long") }
        }
        throw ATVError.connectionLost("the stream control connection closed mid-line")
    }

    /// The running stream that holds a device, asking every one at once; nil if none does.
    static func holder(of reference: String, port: Int?, directory: String, timeout: Duration)
        async -> (pid: Int32, path: String, device: StreamControlDevice)? {
        let sockets = liveSockets(in: directory)
        guard !sockets.isEmpty else { return nil }
        return await withTaskGroup(of: (Int32, String, StreamControlDevice)?.self) { group in
            for s in sockets {
                group.addTask {
                    let r = await ask(s.path, StreamControlRequest(op: "holds", device: reference, port: port), timeout: timeout)
                    guard let r, r.ok, r.holds == true, let d = r.device else { return nil }
                    return (s.pid, s.path, d)
                }
            }
            for await found in group {
                if let found {
                    group.cancelAll()
                    return (found.0, found.1, found.2)
                }
            }
            return nil
        }
    }

    /// Sets the volume of `device` (a name, identifier, address or "address:port"; with `port`,
    /// only a stream to that port) in the running stream that holds it: `percent` (0...100), or
    /// the current volume plus `delta`. Returns nil when no running stream holds the device (then
    /// talk to the device as usual). Throws when the holding stream could not set it. Each
    /// stream gets `timeout` to answer.
    public static func setVolume(_ percent: Double? = nil, delta: Double? = nil, device: String, port: Int? = nil,
                                 directory: String = defaultDirectory(), timeout: Duration = .seconds(2))
        async throws -> StreamControlVolumeResult? {
        if let percent, !(percent.isFinite && (0...100).contains(percent)) {
            throw ATVError.invalidValue("volume \(percent) is outside 0...100")
        }
        guard percent != nil || delta != nil else { throw ATVError.invalidValue("say a volume or a step") }
        guard let holder = await holder(of: device, port: port, directory: directory, timeout: timeout) else { return nil }
        let request = StreamControlRequest(op: "setVolume", device: device, port: port, percent: percent, delta: delta)
        // Setting the volume waits for the receiver's answer: give it the request timeout too.
        guard let r = await ask(holder.path, request, timeout: timeout * 3) else {
            throw ATVError.timeout("the running stream (pid \(holder.pid)) holding \(holder.device.name) did not answer")
        }
        guard r.ok, let volume = r.volume else {
            throw ATVError.invalidState("the running stream (pid \(holder.pid)) could not set the volume of "
                                        + "\(holder.device.name): \(r.error ?? "no reason given")")
        }
        return StreamControlVolumeResult(pid: r.pid, device: r.device ?? holder.device, volume: volume)
    }

    /// The volume of `device` in the running stream that holds it; nil when none does.
    public static func volume(device: String, port: Int? = nil, directory: String = defaultDirectory(),
                              timeout: Duration = .seconds(2)) async -> StreamControlVolumeResult? {
        guard let holder = await holder(of: device, port: port, directory: directory, timeout: timeout),
              let r = await ask(holder.path, StreamControlRequest(op: "status"), timeout: timeout),
              let member = r.devices?.first(where: { $0.device == holder.device }), let v = member.volume else { return nil }
        return StreamControlVolumeResult(pid: r.pid, device: holder.device, volume: v)
    }

    /// Every running stream and its devices (streams that do not answer within `timeout` are
    /// left out).
    public static func status(directory: String = defaultDirectory(), timeout: Duration = .seconds(2)) async -> [StreamControlStreamStatus] {
        await withTaskGroup(of: StreamControlStreamStatus?.self) { group in
            for s in liveSockets(in: directory) {
                group.addTask {
                    guard let r = await ask(s.path, StreamControlRequest(op: "status"), timeout: timeout), r.ok else { return nil }
                    return StreamControlStreamStatus(pid: r.pid, devices: r.devices ?? [])
                }
            }
            var out: [StreamControlStreamStatus] = []
            for await s in group { if let s { out.append(s) } }
            return out.sorted { $0.pid < $1.pid }
        }
    }

    /// The answer of a stream holding `devices` to `request` (the server's logic, without I/O).
    static func answer(_ request: StreamControlRequest, devices: [StreamControlDevice], actions: StreamControlActions) async -> StreamControlResponse {
        let pid = getpid()
        func match() -> StreamControlDevice? {
            guard let reference = request.device else { return nil }
            return devices.first { $0.matches(reference, port: request.port) }
        }
        switch request.op {
        case "holds":
            let d = match()
            return StreamControlResponse(ok: true, pid: pid, holds: d != nil, device: d)
        case "status":
            return StreamControlResponse(ok: true, pid: pid, devices: await actions.status())
        case "setVolume":
            guard let d = match() else {
                return StreamControlResponse(ok: false, pid: pid, holds: false, error: "this stream does not hold \(request.device ?? "-")")
            }
            var target: Double
            if let p = request.percent {
                target = p
            } else if let delta = request.delta {
                let now = await actions.status().first { $0.device == d }?.volume ?? 50
                target = now + delta
            } else {
                return StreamControlResponse(ok: false, pid: pid, holds: true, device: d, error: "no volume given")
            }
            guard target.isFinite else { return StreamControlResponse(ok: false, pid: pid, holds: true, device: d, error: "volume is not a number") }
            target = min(100, max(0, target))
            do {
                try await actions.setVolume(d, target)
                return StreamControlResponse(ok: true, pid: pid, holds: true, device: d, volume: target)
            } catch let e as ATVError {
                return StreamControlResponse(ok: false, pid: pid, holds: true, device: d, error: e.description)
            } catch {
                return StreamControlResponse(ok: false, pid: pid, holds: true, device: d, error: "the receiver did not take the volume")
            }
        default:
            return StreamControlResponse(ok: false, pid: pid, error: "unknown request \(request.op)")
        }
    }
}

/// The control socket of a running stream: other processes find it in
/// `StreamControl.defaultDirectory()` (mode 0700; the socket 0600) as `stream-PID.sock` and ask
/// it for `devices` (holds?, setVolume, status), answered with `actions`. `stop()` removes it.
public final class StreamControlServer: Sendable {
    /// The socket's path.
    public let path: String
    private let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let task: Task<Void, Never>

    private init(path: String, channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, task: Task<Void, Never>) {
        self.path = path
        self.channel = channel
        self.task = task
    }

    /// Listens for requests about `devices`. Throws `ATVError.settings` when the directory or
    /// socket cannot be made (the stream can go on without it).
    public static func start(devices: [StreamControlDevice], actions: StreamControlActions,
                             directory: String = StreamControl.defaultDirectory(),
                             requestTimeout: Duration = .seconds(2), logger: Logger = Logger(label: "atv.stream-control")) async throws -> StreamControlServer {
        try StreamControl.prepareDirectory(directory)
        let path = directory + "/" + StreamControl.socketName(pid: getpid())
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { ch in
                    ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
                }
        } catch {
            throw ATVError.settings("cannot listen on \(path) for stream control")
        }
        if chmod(path, 0o600) != 0 {
            try? await server.channel.close()
            unlink(path)
            throw ATVError.settings("cannot make \(path) private")
        }
        logger.info("stream control: listening on \(path)")
        let task = Task<Void, Never> {
            _ = try? await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await serve(connection, devices: devices, actions: actions, timeout: requestTimeout, logger: logger) }
                    }
                }
            }
        }
        return StreamControlServer(path: path, channel: server, task: task)
    }

    /// One request, one answer; a client that says nothing within `timeout` is dropped. The
    /// action itself (the receiver's answer to a volume change) gets three times as long.
    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, devices: [StreamControlDevice],
                              actions: StreamControlActions, timeout: Duration, logger: Logger) async {
        try? await withDeadline(timeout * 4, { ATVError.timeout("stream control client") }) {
            try await connection.executeThenClose { inbound, outbound in
                let line = try await withDeadline(timeout, { ATVError.timeout("stream control client said nothing") }) {
                    try await StreamControl.readLine(inbound)
                }
                let response: StreamControlResponse
                if let request = try? JSONDecoder().decode(StreamControlRequest.self, from: Data(line)) {
                    logger.info("stream control: \(request.op) \(request.device ?? "")")
                    response = await StreamControl.answer(request, devices: devices, actions: actions)
                } else {
                    response = StreamControlResponse(ok: false, pid: getpid(), error: "not a stream control request")
                }
                var bytes = Array(try JSONEncoder().encode(response))
                bytes.append(0x0A)
                try await outbound.write(ByteBuffer(bytes: bytes))
            }
        }
    }

    /// Stops listening and removes the socket.
    public func stop() async {
        unlink(path)
        try? await channel.channel.close()
        task.cancel()
        await task.value
    }
}
