import Synchronization

/// "Something changed": a generation counter plus waiting tasks, used by the streaming shell to wait
/// for the RTSP driver, `pause()`/`resume()`/`stop()` and the pacer without polling.
///
///     let g = wakeup.generation
///     if condition { … }               // check after reading the generation…
///     await wakeup.wait(since: g)      // …so a signal in between is not lost
final class RAOPWakeup: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    init() {}

    var generation: UInt64 { state.withLock { $0.generation } }

    /// Wakes every waiter (and makes the next `wait(since:)` with an older generation return at once).
    func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation &+= 1
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns when a signal arrives after `generation` was read, when `deadline` passes, or when the
    /// task is cancelled.
    func wait(since generation: UInt64, until deadline: ContinuousClock.Instant? = nil) async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        let timer: Task<Void, Never>? = deadline.map { deadline in
            Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                resume(id)
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.generation != generation || Task.isCancelled { return true }
                    if let deadline, deadline <= .now { return true }
                    s.waiters[id] = cont
                    return false
                }
                if now { cont.resume() }
            }
        } onCancel: {
            resume(id)
        }
        timer?.cancel()
    }

    private func resume(_ id: Int) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.resume()
    }
}
