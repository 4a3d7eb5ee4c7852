import Synchronization

/// Fans one stream of values out to any number of `AsyncStream` subscribers. Finishing it ends
/// every current subscription, and later subscriptions end at once.
package final class Broadcaster<Element: Sendable>: Sendable {
    private struct State {
        var next = 0
        var continuations: [Int: AsyncStream<Element>.Continuation] = [:]
        var finished = false
    }
    private let state = Mutex(State())
    private let bufferingPolicy: AsyncStream<Element>.Continuation.BufferingPolicy

    package init(bufferingPolicy: AsyncStream<Element>.Continuation.BufferingPolicy = .bufferingNewest(256)) {
        self.bufferingPolicy = bufferingPolicy
    }

    package func subscribe() -> AsyncStream<Element> {
        let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: bufferingPolicy)
        let id: Int? = state.withLock { s in
            if s.finished { return nil }
            let id = s.next
            s.next += 1
            s.continuations[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    package func yield(_ value: Element) {
        let conts = state.withLock { Array($0.continuations.values) }
        for c in conts { c.yield(value) }
    }

    package func finish() {
        let conts = state.withLock { s -> [AsyncStream<Element>.Continuation] in
            s.finished = true
            defer { s.continuations.removeAll() }
            return Array(s.continuations.values)
        }
        for c in conts { c.finish() }
    }

    package var subscriberCount: Int { state.withLock { $0.continuations.count } }
}
