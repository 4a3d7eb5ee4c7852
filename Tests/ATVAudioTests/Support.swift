import ATVTestSupport
import ATVCore
import Foundation
@testable import ATVAudio

/// Runs a program to its end on ATVTestSupport's runner; returns stdout; throws with stderr on a
/// non-zero exit. Blocking: only for the fixture makers, which run on a thread of their own (`Fixtures.file`).
@discardableResult
func runToolBlocking(_ program: String, _ args: [String]) throws -> Data {
    let child = try Child(program, args)
    let r = child.finishBlocking()
    guard r.status == 0 else {
        throw TestFailure("\(program) \(args.joined(separator: " ")) failed: \(r.stderr)")
    }
    return child.stdoutData
}

/// `runToolBlocking` for tests: waits without holding a thread of the concurrency pool, and kills
/// the program after two minutes.
@discardableResult
func runTool(_ program: String, _ args: [String]) async throws -> Data {
    let child = try Child(program, args)
    let r = await child.finish(timeout: 120)
    guard r.status == 0, !r.timedOut else {
        throw TestFailure("\(program) \(args.joined(separator: " ")) failed\(r.timedOut ? " (killed after 120 s)" : ""): \(r.stderr)")
    }
    return child.stdoutData
}

/// The ffmpeg CLI, for fixture makers (blocking; see `runToolBlocking`).
func ffmpeg(_ args: [String]) throws {
    try runToolBlocking("/usr/bin/ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-y"] + args)
}

/// Fixtures made with the ffmpeg CLI, cached in one temp dir across runs (so repeated runs don't pile up
/// copies). Each is made in a per-process scratch dir and renamed into place, so a killed run never
/// leaves a half-written fixture behind.
final class Fixtures: @unchecked Sendable {
    static let shared = Fixtures()
    let dir: String
    private let scratch: String
    private let lock = NSLock()

    private init() {
        dir = NSTemporaryDirectory() + "atv-audio-test-fixtures-v1"
        scratch = NSTemporaryDirectory() + "atv-audio-test-scratch-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// `name` in the fixture dir, made by `make(path)` if it isn't there yet. `make` (and the wait
    /// for another test making a fixture) runs on a thread of its own, not on the concurrency pool's.
    func file(_ name: String, _ make: @escaping @Sendable (String) throws -> Void) async throws -> String {
        try await offPool { try self.fileBlocking(name, make) }
    }

    private func fileBlocking(_ name: String, _ make: (String) throws -> Void) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let path = dir + "/" + name
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let temp = scratch + "/" + name
            try make(temp)
            guard rename(temp, path) == 0 else { throw TestFailure("cannot move fixture \(name) into place") }
        }
        return path
    }

    /// 3 s stereo 440/660 Hz sine at 44.1 kHz, encoded with `codecArgs`.
    func sine(_ name: String, seconds: Int = 3, rate: Int = 44_100, channels: Int = 2,
              codecArgs: [String], extraInput: [String] = []) async throws -> String {
        try await file(name) { path in
            try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=\(rate):duration=\(seconds)",
                        "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=\(rate):duration=\(seconds)",
                        "-filter_complex", channels == 1 ? "[0:a]anull" : "[0:a][1:a]amerge=inputs=2",
                        "-ar", "\(rate)", "-ac", "\(channels)"] + codecArgs + [path])
        }
    }

    func cover() async throws -> String {
        try await file("cover.png") { path in
            try ffmpeg(["-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", path])
        }
    }
}

/// All packets of a decoder.
func decodeAll(_ decoder: AudioDecoder) async throws -> [PCMPacket] {
    var packets: [PCMPacket] = []
    for try await p in decoder { packets.append(p) }
    return packets
}

func joined(_ packets: [PCMPacket]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(packets.reduce(0) { $0 + $1.bytes.count })
    for p in packets { out += p.bytes }
    return out
}

/// The ffmpeg CLI's own decode of `path` to 44.1 kHz s16le stereo.
func cliPCM(_ path: String) async throws -> [UInt8] {
    [UInt8](try await runTool("/usr/bin/ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", path,
                                        "-f", "s16le", "-ar", "44100", "-ac", "2", "-"]))
}

/// Waits for `process` to exit on a thread of its own (not the concurrency pool's).
func waitForExit(_ process: Process) async {
    let box = UncheckedSendable(process)
    await offPool { box.value.waitUntilExit() }
}

struct UncheckedSendable<T>: @unchecked Sendable { let value: T; init(_ value: T) { self.value = value } }

/// Spawns `cat path` writing into a pipe; returns the read end (the writer's end is closed here).
func catPipe(_ path: String) throws -> (FileHandle, Process) {
    let (reader, writer) = try cloexecPipe()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/cat")
    p.arguments = [path]
    p.standardOutput = writer
    try p.run()
    try writer.close()
    return (reader, p)
}

@_silgen_name("pipe2") private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32   // glibc; needs _GNU_SOURCE in C

/// A pipe whose ends are close-on-exec, so processes spawned concurrently by other tests (which would
/// otherwise inherit the write end) can't keep it open and hide the end of the stream.
func cloexecPipe() throws -> (read: FileHandle, write: FileHandle) {
    var fds: [Int32] = [-1, -1]
    guard c_pipe2(&fds, O_CLOEXEC) == 0 else { throw TestFailure("pipe2 failed: \(errno)") }
    return (FileHandle(fileDescriptor: fds[0], closeOnDealloc: true),
            FileHandle(fileDescriptor: fds[1], closeOnDealloc: true))
}

/// Every packet has exactly `size` frames except possibly the last, which is non-empty.
func wellFormed(_ packets: [PCMPacket], size: Int = 352) -> Bool {
    for (i, p) in packets.enumerated() {
        guard p.bytes.count == p.frames * 4 else { return false }
        if i < packets.count - 1 { guard p.frames == size else { return false } }
        else { guard p.frames > 0 && p.frames <= size else { return false } }
    }
    return true
}

/// Noisy stereo s16le PCM (a sine plus pseudo-random noise): realistic for compression tests.
func noisyPCM(frames: Int, seed: UInt64 = 1) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var out = [UInt8](repeating: 0, count: frames * 4)
    for i in 0..<frames {
        let s = sin(Double(i) * 2 * .pi * 440 / 44_100) * 12_000
        for c in 0..<2 {
            let v = Int16(clamping: Int(s) + Int(rng.next() % 4001) - 2000)
            let u = UInt16(bitPattern: v)
            out[i * 4 + c * 2] = UInt8(u & 0xFF)
            out[i * 4 + c * 2 + 1] = UInt8(u >> 8)
        }
    }
    return out
}

extension ATVError {
    var badInputMessage: String? {
        if case .badInput(let m) = self { return m }
        return nil
    }
}
