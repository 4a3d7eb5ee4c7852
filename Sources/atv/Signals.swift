import ATVCore
import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM for every command. The first signal runs the stop hook of the running
/// command, if it has one (a stream sends TEARDOWN, play-url stops the playback), and the process
/// exits at the latest `grace` later; without a hook it exits at once. A second signal exits at
/// once. Both signals are unblocked first: a parent may have left them blocked in our mask.
///
/// The C handler only writes the signal number to a pipe; a dedicated thread does the rest (no
/// Swift runtime work in signal context, independent of the cooperative pool and the main queue).
enum Signals {
    /// How long a stop hook may take before the process exits anyway.
    static let grace: Duration = .milliseconds(1700)

    private struct State {
        var hooks: [Int: @Sendable () -> Void] = [:]
        var nextID = 0
        var received = 0
    }
    private static let state = Mutex(State())
    nonisolated(unsafe) private static var writeFD: Int32 = -1

    /// Installs the handlers; call once at startup.
    static func install() {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        writeFD = fds[1]
        _ = state.withLock { $0.received }  // initialise before any signal can arrive
        let readFD = fds[0]
        startThread(name: "atv.signals") { run(readFD) }
        for sig in [SIGINT, SIGTERM] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(Signals.writeFD, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Registers a stop hook for the first signal; returns its id for `remove`.
    static func add(_ hook: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            s.nextID += 1
            s.hooks[s.nextID] = hook
            return s.nextID
        }
    }

    static func remove(_ id: Int) { _ = state.withLock { $0.hooks.removeValue(forKey: id) } }

    /// A signal arrived.
    static var interrupted: Bool { state.withLock { $0.received > 0 } }

    private static func exitCode(_ sig: Int32) -> Int32 { 128 + sig }

    private static func run(_ fd: Int32) {
        while true {
            var byte: UInt8 = 0
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return }
            let sig = Int32(byte)
            let (count, hooks) = state.withLock { s -> (Int, [@Sendable () -> Void]) in
                s.received += 1
                return (s.received, Array(s.hooks.values))
            }
            if count > 1 || hooks.isEmpty { quit(exitCode(sig)) }
            // The deadline first, then the hooks on their own thread: a hook that blocks can
            // delay neither the exit nor a second signal.
            let code = exitCode(sig)
            startThread(name: "atv.signal-exit") {
                var pause = timespec(tv_sec: Int(grace.components.seconds), tv_nsec: Int(grace.components.attoseconds / 1_000_000_000))
                var left = timespec()
                while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
                quit(code)
            }
            if sig == SIGINT {
                let text = Array("\natv: stopping (Ctrl-C again to quit at once)\n".utf8)
                _ = text.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            }
            startThread(name: "atv.signal-hooks") { for h in hooks { h() } }
        }
    }

    /// Exits now, flushing what was printed.
    private static func quit(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }
}

/// A command's stop hook for SIGINT/SIGTERM (see `Signals`): `cancel()` removes it.
final class InterruptHandler: Sendable {
    private let id: Int

    init(_ onFirst: @escaping @Sendable () -> Void) {
        id = Signals.add(onFirst)
    }

    var interrupted: Bool { Signals.interrupted }

    func cancel() { Signals.remove(id) }
}
