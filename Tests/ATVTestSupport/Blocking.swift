import Foundation

/// Runs a blocking `body` (a socket read with a timeout, a wait for a child process, a
/// synchronous file or FFmpeg job) on a thread of its own and resumes the caller when it returns.
/// Swift's cooperative pool has one thread per core (two on CI): a test that blocks one of them
/// stalls every other test running at the same time, so no test blocks a pool thread; it awaits this.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "atv-test-blocking"
        thread.start()
    }
}

/// `offPool` for a body that does not throw.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = "atv-test-blocking"
        thread.start()
    }
}
