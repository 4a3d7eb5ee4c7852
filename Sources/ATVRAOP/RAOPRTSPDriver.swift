import ATVCore
import ATVHTTP
import Logging

/// Runs `RAOPSessionStateMachine` over an `RTSPConnection`: writes its requests, feeds it the
/// responses, arms a timeout per request, and records the outcome for the streaming shell.
actor RAOPRTSPDriver {
    private var machine: RAOPSessionStateMachine
    private let connection: RTSPConnection
    private let requestTimeout: Duration
    private let logger: Logger
    private var timeouts: [Int: Task<Void, Never>] = [:]
    /// Called after every event and command, so the shell can wait for state without polling.
    private let onChange: @Sendable () -> Void

    private(set) var failure: ATVError?
    private(set) var streaming = false
    private(set) var audioLatency: Int?
    private(set) var serverPorts: RAOPServerPorts?
    private(set) var closed = false
    private(set) var connectionOpen = true
    private(set) var warnings: [String] = []

    init(configuration: RAOPSessionConfiguration, connection: RTSPConnection, requestTimeout: Duration, logger: Logger,
         onChange: @escaping @Sendable () -> Void = {}) {
        self.onChange = onChange
        machine = RAOPSessionStateMachine(configuration: configuration)
        self.connection = connection
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    var state: RAOPSessionStateMachine.State { machine.state }

    func start() {
        perform(machine.start())
        onChange()
    }

    /// Consumes connection events until the connection ends.
    func pump() async {
        for await event in connection.events {
            handle(event)
        }
        if connectionOpen { handle(.closed(nil)) }
        onChange()
    }

    func run(_ command: @Sendable (inout RAOPSessionStateMachine) -> [RAOPSessionAction]) {
        perform(command(&machine))
        onChange()
    }

    /// TEARDOWN if the connection is still usable; else just mark closed.
    func teardown() {
        defer { onChange() }
        guard connectionOpen else {
            closed = true
            return
        }
        perform(machine.teardown())
        if machine.state != .tearingDown { closed = true }
    }

    private func handle(_ event: RTSPConnectionEvent) {
        defer { onChange() }
        switch event {
        case .response(let response):
            if let cseq = response.cseq { timeouts.removeValue(forKey: cseq)?.cancel() }
            logger.debug("RTSP <- \(response.status) \(response.reason) CSeq \(response.cseq ?? -1)")
            perform(machine.receive(response))
        case .closed(let error):
            guard connectionOpen else { return }
            connectionOpen = false
            if let error, failure == nil, !closed, machine.state != .tearingDown {
                failure = error
                cancelTimeouts()
            } else {
                perform(machine.connectionClosed())
            }
            if machine.state == .closed || machine.state == .failed { closed = closed || machine.state == .closed }
        }
    }

    private func timedOut(_ cseq: Int) {
        timeouts[cseq] = nil
        perform(machine.timedOut(cseq: cseq))
        onChange()
    }

    private func perform(_ actions: [RAOPSessionAction]) {
        for action in actions {
            switch action {
            case .send(let request, let kind):
                guard connectionOpen else {
                    if failure == nil, kind != .teardown {
                        failure = .connectionLost("the RTSP connection is closed (cannot send \(kind.rawValue))")
                    }
                    continue
                }
                logger.debug("RTSP -> \(request.method) \(request.uri) CSeq \(request.cseq ?? -1)")
                connection.send(request)
                if let cseq = request.cseq {
                    let timeout = requestTimeout
                    timeouts[cseq] = Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        guard !Task.isCancelled else { return }
                        await self?.timedOut(cseq)
                    }
                }
            case .serverPorts(let ports):
                serverPorts = ports
            case .startStreaming(let latency):
                streaming = true
                audioLatency = latency
            case .warning(let text):
                logger.info("RAOP: \(text)")
                warnings.append(text)
            case .closed:
                closed = true
                cancelTimeouts()
            case .failed(let error):
                if failure == nil {
                    var e = error.naming(connection.endpoint)
                    if case .timeout(let s) = e { e = .timeout("\(s) within \(ATVError.seconds(requestTimeout)) s") }
                    failure = e
                }
                cancelTimeouts()
            }
        }
    }

    private func cancelTimeouts() {
        for task in timeouts.values { task.cancel() }
        timeouts.removeAll()
    }
}
