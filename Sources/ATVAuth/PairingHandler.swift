// Pairing as a library API, shaped like pyatv's `pyatv.pair(config, protocol)`: a handler with
// begin / PIN / finish that each protocol module implements and the facade's `pair` returns.
import ATVCore

/// What `pair` needs besides the device and the protocol.
public struct PairingOptions: Sendable {
    /// Our name as the device shows it (Companion, AirPlay 2, MRP) or as a Remote (DMAP).
    public var name: String
    /// The longest wait for the device: connecting and each answer take at most the smaller of this
    /// and 15 s; the PIN exchange (a person typing) and DMAP's wait for the device take all of it.
    public var timeout: Duration
    /// AirPlay/RAOP: `.auto` takes HAP pairing when the device's features say AirPlay 2 (bit 38 or
    /// 48, pyatv's rule), legacy AirPlay pairing otherwise; `.v1`/`.v2` force one.
    public var airPlayVersion: AirPlayVersion
    /// DMAP: our pairing GUID (16 hex digits); random when nil.
    public var guid: String?
    /// DMAP: IPv4 addresses of the interfaces to publish `_touch-remote._tcp` on; empty: the one
    /// facing the device.
    public var publishOn: [String]
    /// DMAP: publish over mDNS (false: the device must learn our port some other way).
    public var publish: Bool

    public init(name: String = "swift-atv", timeout: Duration = .seconds(60), airPlayVersion: AirPlayVersion = .auto,
                guid: String? = nil, publishOn: [String] = [], publish: Bool = true) {
        self.name = name
        self.timeout = timeout
        self.airPlayVersion = airPlayVersion
        self.guid = guid
        self.publishOn = publishOn
        self.publish = publish
    }

    /// The wait for one connection or one answer.
    public var stepTimeout: Duration { min(timeout, .seconds(15)) }
}

/// One pairing in progress. Call `begin()`; when `deviceProvidesPIN`, give the PIN the device shows
/// with `pin(_:)` (otherwise show the user `pinToEnter`, which they type on the device); then
/// `finish()` pairs, checks the new credentials with a verify on a fresh connection (so nothing
/// unusable is returned) and returns them. `close()` always.
public protocol PairingHandler: AnyObject, Sendable {
    /// The protocol being paired.
    var pairingProtocol: ATVProtocol { get }
    /// true: the device shows a PIN that `pin(_:)` must pass before `finish()`. false (DMAP): we
    /// choose the PIN and the user enters it on the device.
    var deviceProvidesPIN: Bool { get }
    /// DMAP: the PIN the user must enter on the device (set with `pin(_:)` before `begin()`, or
    /// random); nil where the device provides it.
    var pinToEnter: String? { get async }
    /// A line for the user about what happens now (e.g. where we wait), or nil.
    var waitingMessage: String? { get async }
    /// Starts pairing: the device shows its PIN, or (DMAP) we start listening and publish ourselves.
    func begin() async throws
    /// The PIN shown on the device (or, DMAP, the one the user will enter there).
    func pin(_ pin: String) async throws
    /// Completes pairing and returns verified credentials. Throws on a wrong PIN, a refusal or a timeout.
    func finish() async throws -> ATVCredentials
    /// The name the device gave for itself while pairing (DMAP's pairing request), or nil.
    var pairedDeviceName: String? { get async }
    /// Whether `finish()` succeeded.
    var hasPaired: Bool { get async }
    /// Releases connections, listeners and mDNS announcements; safe to call more than once.
    func close() async
}

extension FileStorage {
    /// Stores `credentials` for `proto` of the device `config` describes (creating its settings
    /// from `config` when there are none) and saves the file (atomically, mode 0600). Returns the path.
    @discardableResult
    public func storeCredentials(_ credentials: ATVCredentials, for proto: ATVProtocol, of config: DeviceConfig) throws -> String {
        var settings = try settings(for: config)
        settings.fill(from: config, overwrite: false)
        settings.protocols.setCredentials(credentials.stringValue, for: proto)
        try store(settings)
        try save()
        return path
    }
}

/// HAP pair-setup with the PIN the device shows over one connection, then a verify with the new
/// credentials on a fresh connection (so nothing unusable is returned): what Companion and MRP
/// pairing share. Each protocol module supplies its four steps.
package actor HAPPINPairingHandler<Connection: Sendable>: PairingHandler {
    /// The protocol's own steps.
    package struct Steps: Sendable {
        /// Opens the connection pairing runs on (the device shows its PIN once pairing starts).
        package var connect: @Sendable () async throws -> Connection
        /// Pair-setup M1–M6 with the PIN; returns the new credentials.
        package var pairSetup: @Sendable (Connection, String) async throws -> HAPCredentials
        package var close: @Sendable (Connection) async -> Void
        /// A full verify with the credentials on a connection of its own, closed afterwards.
        package var verify: @Sendable (HAPCredentials) async throws -> Void

        package init(connect: @escaping @Sendable () async throws -> Connection,
                    pairSetup: @escaping @Sendable (Connection, String) async throws -> HAPCredentials,
                    close: @escaping @Sendable (Connection) async -> Void,
                    verify: @escaping @Sendable (HAPCredentials) async throws -> Void) {
            self.connect = connect
            self.pairSetup = pairSetup
            self.close = close
            self.verify = verify
        }
    }

    package nonisolated let pairingProtocol: ATVProtocol
    package nonisolated let deviceProvidesPIN = true
    package var pinToEnter: String? { nil }
    package var waitingMessage: String? { nil }
    package var pairedDeviceName: String? { nil }
    package private(set) var hasPaired = false

    private let steps: Steps
    private var pinCode: String?
    private var connection: Connection?

    package init(protocol proto: ATVProtocol, steps: Steps) {
        pairingProtocol = proto
        self.steps = steps
    }

    package func begin() async throws { connection = try await steps.connect() }

    package func pin(_ pin: String) async throws { pinCode = pin }

    package func finish() async throws -> ATVCredentials {
        guard let pinCode else { throw ATVError.badInput("no PIN given: pass the PIN the device shows") }
        guard let connection else { throw ATVError.badInput("pairing was not begun") }
        let hap = try await steps.pairSetup(connection, pinCode)
        await steps.close(connection)
        self.connection = nil
        try await steps.verify(hap)
        hasPaired = true
        return .hap(hap)
    }

    package func close() async {
        if let connection { await steps.close(connection) }
        connection = nil
    }
}
