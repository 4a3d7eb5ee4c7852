// HAP credentials in pyatv's string format: `ltpk:ltsk:atv_id:client_id`,
// each field hex (lower case written, any case read).
import ATVCore
import Crypto

public struct HAPCredentials: Sendable, Equatable, CustomStringConvertible {
    /// The device's long-term Ed25519 public key (32 bytes).
    public var deviceLTPK: [UInt8]
    /// Our long-term Ed25519 private key seed (32 bytes).
    public var clientLTSK: [UInt8]
    /// The device's pairing identifier (ASCII bytes, e.g. a UUID string).
    public var deviceID: [UInt8]
    /// Our pairing identifier (ASCII bytes).
    public var clientID: [UInt8]

    public init(deviceLTPK: [UInt8], clientLTSK: [UInt8], deviceID: [UInt8], clientID: [UInt8]) {
        self.deviceLTPK = deviceLTPK
        self.clientLTSK = clientLTSK
        self.deviceID = deviceID
        self.clientID = clientID
    }

    /// Parse pyatv's `ltpk:ltsk:atv_id:client_id` form; throws `.invalidCredentials` otherwise.
    public init(parsing string: String) throws(ATVError) {
        let parts = string.trimmingWhitespace().split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4 else {
            throw ATVError.invalidCredentials("expected 4 hex fields ltpk:ltsk:atv_id:client_id, got \(parts.count)")
        }
        var f: [[UInt8]] = []
        for (i, p) in parts.enumerated() {
            guard let b = Hex.decode(String(p)), !b.isEmpty else {
                throw ATVError.invalidCredentials("field \(i + 1) of ltpk:ltsk:atv_id:client_id is not hex or is empty")
            }
            f.append(b)
        }
        guard f[0].count == 32, f[1].count == 32 else {
            throw ATVError.invalidCredentials("ltpk and ltsk must be 32 bytes each (got \(f[0].count) and \(f[1].count))")
        }
        self.init(deviceLTPK: f[0], clientLTSK: f[1], deviceID: f[2], clientID: f[3])
    }

    /// pyatv's string form.
    public var stringValue: String {
        [deviceLTPK, clientLTSK, deviceID, clientID].map { Hex.encode($0) }.joined(separator: ":")
    }

    /// Does not print the secret key.
    public var description: String {
        "HAPCredentials(device \(String(decoding: deviceID, as: UTF8.self)), client \(String(decoding: clientID, as: UTF8.self)))"
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

/// A long-term identity: Ed25519 key and pairing identifier (ours as a controller, or an accessory's).
package struct HAPIdentity: Sendable {
    package var identifier: [UInt8]
    package var signingKey: Curve25519.Signing.PrivateKey

    package init(identifier: String, seed: [UInt8]) throws(ATVError) {
        do {
            signingKey = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        } catch {
            throw ATVError.invalidCredentials("an Ed25519 seed must be 32 bytes (got \(seed.count))")
        }
        self.identifier = Array(identifier.utf8)
    }

    package init(identifier: String) {
        self.identifier = Array(identifier.utf8)
        signingKey = Curve25519.Signing.PrivateKey()
    }

    package var publicKey: [UInt8] { Array(signingKey.publicKey.rawRepresentation) }
    package var seed: [UInt8] { Array(signingKey.rawRepresentation) }

    /// The identity of pyatv's fake HAP servers (server_auth.py): seed aa×32, PIN 1111.
    package static let pyatvFakeDevice = try! HAPIdentity(identifier: "5D797FD3-3538-427E-A47B-A32FC6CF3A6A",
                                                        seed: [UInt8](repeating: 0xAA, count: 32))
}
