@testable import atv
import Testing

/// Which running stream `atv volume` asks (its control socket) before talking to the device.
struct RunningStreamQueryTests {
    func query(_ args: [String]) throws -> (reference: String, port: Int?)? {
        let cmd = try VolumeCommand.parse(["30"] + args)
        return try runningStreamQuery(cmd.device, cmd.connection)
    }

    @Test func aDeviceByNameOrAddressAsksTheStreamsWithPortAsAFilter() throws {
        #expect(try query(["--to", "Kitchen"]).map { "\($0.reference) \($0.port.map(String.init) ?? "-")" } == "Kitchen -")
        #expect(try query(["--host", "10.0.0.5"])?.reference == "10.0.0.5")
        #expect(try query(["--host", "10.0.0.5", "--port", "5000"])?.port == 5000)
        #expect(try query(["--hosts", "10.0.0.5"])?.reference == "10.0.0.5")
    }

    @Test func explicitProtocolsAskAStreamOnlyWhenOneOfThemIsRAOPOrAirPlay() throws {
        // A stream plays over RAOP or AirPlay: MRP and Companion go to the device itself, even
        // while a stream to that address plays (on loopback, every test device shares the address).
        #expect(try query(["--host", "127.0.0.1", "--service", "companion:49153", "--service", "mrp:49152"]) == nil)
        #expect(try query(["--host", "127.0.0.1", "--protocol", "mrp", "--port", "49152"]) == nil)
        #expect(try query(["--host", "127.0.0.1", "--service", "mrp:49152", "--service", "raop:5000"])?.port == 5000)
        #expect(try query(["--host", "127.0.0.1", "--service", "airplay:7000"])?.port == 7000)
        #expect(try query(["--host", "127.0.0.1", "--protocol", "raop", "--port", "5001"])?.port == 5001)
        #expect(try query(["--host", "127.0.0.1", "--protocol", "airplay", "--port", "7001", "--service", "mrp:49152"])?.port == 7001)
    }
}
