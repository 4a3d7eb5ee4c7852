// `pair` for DMAP: we act as a Remote. We listen for the Apple TV's pairing request, publish
// `_touch-remote._tcp` over mDNS, and the user enters our PIN on the Apple TV (Settings › Remotes);
// the pairing GUID we answer with is the credential.
import ATVAuth
import ATVCore
import ATVDiscovery
import ATVHTTP

package actor DMAPPairingServer: PairingHandler {
    package nonisolated let pairingProtocol = ATVProtocol.dmap
    package nonisolated let deviceProvidesPIN = false
    package private(set) var hasPaired = false
    /// The device name that paired (from its request), after `finish()`.
    package private(set) var pairedDeviceName: String?

    private let host: String
    private let options: PairingOptions
    private var chosenPIN: String?
    private var handler: DMAPPairingHandler?
    private var server: HTTPServer?
    private var responder: MDNSResponder?
    private let requests = AsyncStream<String>.makeStream()

    /// `host`: the device's address (to find the interface facing it).
    package init(host: String, options: PairingOptions) {
        self.host = host
        self.options = options
    }

    /// The port we listen on for the Apple TV's pairing request, once begun.
    package var port: Int? { server?.port }
    package var pinToEnter: String? { handler?.pin ?? chosenPIN }
    package var waitingMessage: String? {
        server.map { "Waiting up to \(Int(options.timeout.components.seconds)) s for the Apple TV on port \($0.port)" }
    }

    package func pin(_ pin: String) async throws {
        guard handler == nil else { throw ATVError.badInput("the DMAP PIN must be set before pairing begins") }
        chosenPIN = pin
    }

    package func begin() async throws {
        let handler = try DMAPPairingHandler(guid: options.guid ?? DMAPPairing.randomGUID(),
                                             pin: chosenPIN ?? fourDigits(Int.random(in: 0 ... 9999)), name: options.name)
        self.handler = handler
        let requests = requests.continuation
        let server = try await HTTPServer.start(host: "0.0.0.0") { req in
            let r = handler.handle(method: req.message.method, target: req.message.uri)
            // Pairing is done (and the server stops) only once the Apple TV could read our answer.
            var response = HTTPServerResponse(status: r.status, bytes: r.body)
            if let who = r.pairedWith {
                response.afterSent = { requests.yield(who) }
            }
            return response
        }
        self.server = server
        guard options.publish else { return }
        let addresses = options.publishOn.isEmpty ? [try await Discovery.localIPv4Address(facing: host)] : options.publishOn
        var services: [MDNSService] = []
        for a in addresses {
            guard let instance = DMAPPairing.serviceInstanceName(ipv4: a) else {
                throw ATVError.invalidValue("--publish-on \(a) is not an IPv4 address")
            }
            services.append(MDNSService(instance: instance, type: "_touch-remote._tcp.local", port: UInt16(server.port),
                                        txt: DMAPPairing.txtRecord(name: options.name, guid: handler.guid),
                                        hostName: "swift-atv-\(handler.guid.prefix(6).lowercased()).local", address: a))
        }
        responder = try await MDNSResponder.start(services, options: .init(interfaceAddresses: addresses))
    }

    /// Waits (up to the options' timeout) for the Apple TV's pairing request with our PIN.
    package func finish() async throws -> ATVCredentials {
        guard let handler else { throw ATVError.badInput("pairing was not begun") }
        let timeout = options.timeout
        let stream = requests.stream
        let who: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask { for await w in stream { return w }; return nil }
            group.addTask { try? await Task.sleep(for: timeout); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        await stopListening()
        guard let who else {
            throw ATVError.timeout("the Apple TV did not send a pairing request within \(Int(timeout.components.seconds)) s")
        }
        pairedDeviceName = who
        hasPaired = true
        return handler.credentials
    }

    package func close() async { await stopListening() }

    private func stopListening() async {
        requests.continuation.finish()
        await responder?.stop()
        responder = nil
        await server?.stop()
        server = nil
    }
}

/// Four digits, zero-padded.
private func fourDigits(_ n: Int) -> String {
    let s = "\(n)"
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}
