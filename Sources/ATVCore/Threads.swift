#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Blocking threads of our own (FFmpeg's decoding, file reads) and what they wait on, from the C
// library: FoundationEssentials has neither Thread nor NSCondition, and full Foundation (with ICU)
// costs the `atv` process megabytes of private memory for them alone.

/// A mutex with one condition variable (pthread): `lock`, `wait` (caller holds the lock), `signal`,
/// `broadcast`, `unlock`. For threads of our own, never the cooperative pool.
package final class ConditionMutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }
    /// Caller holds the lock; it holds it again on return (wake-ups may be spurious: wait in a loop).
    package func wait() { pthread_cond_wait(condition, mutex) }
    package func signal() { pthread_cond_signal(condition) }
    package func broadcast() { pthread_cond_broadcast(condition) }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

private final class ThreadStart {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Runs `body` on a new detached thread named `name` (the kernel keeps 15 bytes of it). A thread
/// that cannot be created stops the process, as Foundation's `Thread.start()` does.
package func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let start = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attributes) }
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { argument in
        let start = Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue()
        // pthread_setname_np is a GNU extension the Glibc module leaves out: the kernel's own file.
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if fd >= 0 {
            _ = StandardStream.write(fd, Array(start.name.utf8.prefix(15)))
            close(fd)
        }
        start.body()
        return nil
    }, start)
    if rc != 0 {
        Unmanaged<ThreadStart>.fromOpaque(start).release()
        fatalError("cannot start thread \(name): \(String(cString: strerror(rc)))")
    }
}
