#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import NIOCore
import NIOPosix
import Synchronization

/// What went wrong on a connection, read from a socket or NIO error without naming library types.
/// The one place the shells turn such errors into `ATVError`s (`ATVError.connecting`, `.connection`).
package enum NetworkFailure: Sendable, Equatable {
    /// Nothing listens there (ECONNREFUSED).
    case refused
    /// No route, network or host down (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN).
    case unreachable
    /// The connection attempt got no answer in time.
    case timedOut
    /// The peer reset the connection (ECONNRESET).
    case reset
    /// The connection was closed (EOF, EPIPE, a write on a closed channel).
    case closed
    /// Something else; callers say what they were doing instead of showing it.
    case other

    package init(_ error: any Error) {
        // NIO's own types first: their errno and cases say exactly what happened.
        if let io = error as? IOError {
            self = Self(errno: io.errnoCode)
        } else if let channel = error as? ChannelError {
            switch channel {
            case .connectTimeout: self = .timedOut
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed, .eof: self = .closed
            case .writeHostUnreachable: self = .unreachable
            default: self = .other
            }
        } else if let connection = error as? NIOConnectionError {
            // One failure per address tried: the most telling one speaks for all.
            let each = connection.connectionErrors.map { Self($0.error) }
            let order: [NetworkFailure] = [.refused, .unreachable, .timedOut, .reset, .closed]
            if let first = order.first(where: each.contains) {
                self = first
            } else if connection.dnsAError != nil || connection.dnsAAAAError != nil {
                self = .unreachable  // the name did not resolve
            } else {
                self = .other
            }
        } else {
            self = Self(text: String(describing: error))
        }
    }

    /// From a POSIX errno.
    package init(errno code: Int32) {
        switch code {
        case ECONNREFUSED: self = .refused
        case EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, EADDRNOTAVAIL, ENETDOWN: self = .unreachable
        case ETIMEDOUT: self = .timedOut
        case ECONNRESET, ECONNABORTED: self = .reset
        case EPIPE, ENOTCONN, ESHUTDOWN: self = .closed
        default: self = .other
        }
    }

    /// From an error's text, for errors of other libraries that carry no errno.
    init(text: String) {
        let text = text.lowercased()
        func has(_ words: String...) -> Bool { words.contains { text.contains($0) } }
        if has("connection refused") { self = .refused }
        else if has("no route to host", "network is unreachable", "host is down", "address not available") { self = .unreachable }
        else if has("connecttimeout", "connect timeout", "connection timed out") { self = .timedOut }
        else if has("connection reset") { self = .reset }
        else if has("broken pipe", "i/o on closed channel", "already closed", "output closed", "input closed", "eof") { self = .closed }
        else { self = .other }
    }
}

extension ATVError {
    /// Connecting to `endpoint` ("host:port", or a longer name like "the Apple TV at host:port")
    /// failed with `error`. An `ATVError` passes through unchanged.
    package static func connecting(_ endpoint: String, _ error: any Error, timeout: Duration? = nil) -> ATVError {
        if let e = error as? ATVError { return e }
        switch NetworkFailure(error) {
        case .refused: return .connectionFailed("\(endpoint) refused the connection (nothing listens on that port)")
        case .unreachable: return .connectionFailed("\(endpoint) is unreachable (no route to it)")
        case .timedOut:
            return .timeout("\(endpoint) did not accept the connection\(timeout.map { " within \(seconds($0)) s" } ?? "") (check the address and that the device is on)")
        case .reset: return .connectionFailed("\(endpoint) reset the connection")
        case .closed: return .connectionFailed("\(endpoint) closed the connection")
        case .other: return .connectionFailed("cannot connect to \(endpoint)")
        }
    }

    /// Listening or binding on `host:port` failed with `error` (what: "listen", "bind UDP"): the
    /// cause in words the user can act on, never the socket call or errno text. An `ATVError`
    /// passes through unchanged.
    package static func listening(_ host: String, _ port: Int, _ error: any Error, what: String = "listen") -> ATVError {
        if let e = error as? ATVError { return e }
        let endpoint = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let code = (error as? IOError)?.errnoCode
        switch code {
        case EADDRINUSE?:
            return .connectionFailed("cannot \(what) on \(endpoint): the port is in use (choose another port, or stop what uses it)")
        case EACCES?, EPERM?:
            return .connectionFailed("cannot \(what) on \(endpoint): not permitted (ports below 1024 need privileges)")
        case EADDRNOTAVAIL?:
            return .connectionFailed("cannot \(what) on \(endpoint): \(host) is not an address of this machine")
        default:
            if case .unreachable? = code.map(NetworkFailure.init(errno:)) {
                return .connectionFailed("cannot \(what) on \(endpoint): the network is unreachable")
            }
            return .connectionFailed("cannot \(what) on \(endpoint)")
        }
    }

    /// An established connection to `endpoint` failed with `error` while doing `during` (e.g.
    /// "POST /play"). An `ATVError` passes through unchanged.
    package static func connection(_ endpoint: String, _ error: any Error, during: String? = nil) -> ATVError {
        if let e = error as? ATVError { return e }
        let doing = during.map { " during \($0)" } ?? ""
        switch NetworkFailure(error) {
        case .reset: return .connectionLost("\(endpoint) reset the connection\(doing)")
        case .closed, .refused, .unreachable, .timedOut: return .connectionLost("\(endpoint) closed the connection\(doing)")
        case .other: return .connectionLost("the connection to \(endpoint) failed\(doing)")
        }
    }

    /// The same error with its message passed through `f` (e.g. to name the device).
    package func mapMessage(_ f: (String) -> String) -> ATVError {
        switch self {
        case .invalidValue(let s): .invalidValue(f(s))
        case .invalidState(let s): .invalidState(f(s))
        case .connectionFailed(let s): .connectionFailed(f(s))
        case .connectionLost(let s): .connectionLost(f(s))
        case .timeout(let s): .timeout(f(s))
        case .pairingFailed(let s): .pairingFailed(f(s))
        case .authenticationFailed(let s): .authenticationFailed(f(s))
        case .invalidCredentials(let s): .invalidCredentials(f(s))
        case .protocolError(let s): .protocolError(f(s))
        case .httpError(let status, let s): .httpError(status: status, f(s))
        case .playbackError(let s): .playbackError(f(s))
        default: self
        }
    }

    /// "the receiver …" / "the device …" at the start of the message becomes "… at host:port …".
    package func naming(_ endpoint: String) -> ATVError {
        mapMessage { s in
            for who in ["the receiver ", "the device "] where s.hasPrefix(who) && !s.contains(endpoint) {
                return who + "at " + endpoint + " " + s.dropFirst(who.count)
            }
            return s
        }
    }

    /// A duration as seconds for messages: "5", "2.5".
    package static func seconds(_ d: Duration) -> String {
        let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return s == s.rounded() ? String(Int(s)) : String(cFormat: "%.1f", s)
    }
}

/// Runs `body`, but returns (throwing `error()`) once `limit` has passed, without waiting for the
/// body: a body stuck on a lost continuation cannot hold its caller. The body is cancelled then.
/// Cancelling the caller cancels the body and ends the wait at once.
package func withDeadline<T: Sendable>(_ limit: Duration, _ error: @escaping @Sendable () -> ATVError,
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            race.start(c)
            if Task.isCancelled { race.finish(.failure(CancellationError())); return }
            race.add(Task { do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) } })
            race.add(Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled { race.finish(.failure(error())) }
            })
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of a body and a timer to finish resumes the waiter; the other is cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var done = false
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    func start(_ c: CheckedContinuation<T, any Error>) { state.withLock { $0.continuation = c } }

    func add(_ task: Task<Void, Never>) {
        let cancel = state.withLock { s -> Bool in
            if s.done { return true }
            s.tasks.append(task)
            return false
        }
        if cancel { task.cancel() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (c, tasks) = state.withLock { s -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            if s.done { return (nil, []) }
            s.done = true
            defer { s.continuation = nil; s.tasks = [] }
            return (s.continuation, s.tasks)
        }
        for t in tasks { t.cancel() }
        c?.resume(with: result)
    }
}
