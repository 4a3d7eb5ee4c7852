// The data-stream channel of an AirPlay 2 remote-control session, which carries MRP to HomePods
// and Apple TVs with tvOS 15 or later: session SETUP with `isRemoteControlOnly` (no timing) →
// event channel → RECORD → stream SETUP `type 130` with a random `seed` → the receiver's
// `dataPort`, a TCP channel HAP-framed with the DataStream keys (from the session's shared secret
// and the seed); `/feedback` every 2 s keeps the session alive.
import ATVAuth
import ATVCore
import ATVHTTP
import Logging

/// An opened data-stream channel: where to connect, its keys, and the session carrying it.
public struct AirPlay2DataStream: Sendable {
    /// The stream `type` of the remote-control data stream.
    public static let type = 130
    public static let clientTypeUUID = "1910A70F-DBC0-4242-AF95-115DB30604E1"

    /// The carrying session (tear it down to end the channel).
    public let connection: AirPlay2Connection
    /// The receiver's address and the `dataPort` of its SETUP reply.
    public let host: String
    public let port: Int
    /// The keys of the HAP framing on the data channel.
    public let keys: ChannelKeys

    /// A handler that HAP-encrypts the data channel with `keys`.
    public func makeEncryptionHandler() -> HAPEncryptionHandler {
        let crypto = HAPEncryptionHandler()
        crypto.enable(keys: keys)
        return crypto
    }

    /// The stream SETUP body. `seed` must be below Int64.max: it travels as a plist integer, which
    /// is signed.
    public static func setupBody(seed: UInt64, channelID: String = randomUUID(), clientUUID: String = randomUUID()) -> PlistValue {
        let stream: PlistValue = .dict([
            "controlType": .int(2), "channelID": .string(channelID), "seed": .int(Int64(seed)),
            "clientUUID": .string(clientUUID), "type": .int(Int64(type)), "wantsDedicatedSocket": .bool(true),
            "clientTypeUUID": .string(clientTypeUUID),
        ])
        return .dict(["streams": .array([stream])])
    }

    /// The `dataPort` of the first stream in the SETUP reply.
    public static func dataPort(fromReply body: [UInt8]) throws(ATVError) -> Int {
        let reply = try? BinaryPlistParser.parse(body)
        guard case .array(let streams)? = reply?["streams"], let first = streams.first,
              let dataPort = first["dataPort"]?.double.map({ Int($0) }), (1...65535).contains(dataPort) else {
            throw ATVError.protocolError("the receiver's remote-control stream SETUP reply has no dataPort")
        }
        return dataPort
    }

    /// Connects, pairs, sets up the remote-control session and its data stream.
    public static func open(host: String, port: Int, options: AirPlay2ConnectionOptions,
                            logger: Logger = Logger(label: "atv.mrp-tunnel")) async throws -> AirPlay2DataStream {
        let ap = try await AirPlay2Connection.connect(host: host, port: port, options: options, logger: logger)
        do {
            try await ap.setupSession(timing: .none, remoteControlOnly: true)
            let record = try await ap.request("RECORD")
            guard record.isSuccess else { throw ATVError.httpError(status: record.status, "RECORD for the remote-control session rejected: \(record.reason)") }
            let seed = UInt64.random(in: 0...UInt64(Int64.max))
            let r = try await ap.request("SETUP", plist: setupBody(seed: seed))
            if r.status == 470 || r.status == 401 || r.status == 403 {
                throw ATVError.authenticationFailed("the receiver refused the remote-control stream SETUP (\(r.status) \(r.reason)); pair with `atv pair --protocol airplay`")
            }
            guard r.isSuccess else { throw ATVError.httpError(status: r.status, "remote-control stream SETUP rejected: \(r.reason)") }
            let dataPort = try dataPort(fromReply: r.body)
            logger.debug("MRP tunnel: data channel on port \(dataPort)")
            ap.startFeedback()
            let keys = HAPChannel.airPlayDataStream(seed: seed).keys(sharedSecret: ap.sharedSecret)
            return AirPlay2DataStream(connection: ap, host: ap.remoteIP, port: dataPort, keys: keys)
        } catch {
            await ap.teardown()
            throw error
        }
    }
}
