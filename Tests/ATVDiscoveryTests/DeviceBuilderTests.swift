import ATVAirPlayCore
import ATVCore
@testable import ATVDiscovery
import Testing

func txt(_ d: [String: String]) -> DNSRecordData { .txt(TXTProperties.encode(d)) }

/// Records as an Apple TV 4K on tvOS 14 would answer, with its own A record.
func appleTV4KRecords(address: String = "10.0.0.2") -> [DNSRecord] {
    let host = "Living-Room.local"
    var r: [DNSRecord] = []
    func add(_ type: String, _ instance: String, port: UInt16, _ props: [String: String]) {
        let full = "\(instance).\(type)"
        r.append(DNSRecord(name: type, type: .ptr, data: .ptr(full)))
        r.append(DNSRecord(name: full, type: .srv, data: .srv(priority: 0, weight: 0, port: port, target: host)))
        r.append(DNSRecord(name: full, type: .txt, data: txt(props)))
    }
    add(ServiceType.mrp, "Living Room", port: 49152, ["Name": "Living Room", "UniqueIdentifier": "6D797FD3-3538-427E-A47B-A32FC6CF3A69",
        "SystemBuildVersion": "18M60", "macAddress": "aa:bb:cc:dd:ee:ff", "AllowPairing": "YES", "ModelName": "Apple TV"])
    add(ServiceType.airplay, "Living Room", port: 7000, ["deviceid": "AA:BB:CC:DD:EE:FF", "features": "0x5A7FDFD5,0x3C155FDE",
        "model": "AppleTV6,2", "osvers": "14.7", "pi": "4ddd5c1b-1a3c-4a4b-9a6e-3c1c4c1d5e6f", "flags": "0x244"])
    add(ServiceType.raop, "AABBCCDDEEFF@Living Room", port: 7000, ["am": "AppleTV6,2", "et": "0,3,5", "md": "0,1,2", "ov": "14.7",
        "sf": "0x44", "ch": "2", "sr": "44100", "ss": "16"])
    add(ServiceType.companion, "Living Room", port: 49153, ["rpMd": "AppleTV6,2", "rpFl": "0x36782", "rpMRtID": "6D797FD3-3538-427E-A47B-A32FC6CF3A69"])
    add(ServiceType.deviceInfo, "Living Room", port: 0, ["model": "J105aAP"])
    r.append(DNSRecord(name: host, type: .a, data: .a(address)))
    r.append(DNSRecord(name: host, type: .a, data: .a("169.254.3.4")))
    return r
}

@Suite struct DeviceBuilderTests {
    @Test func appleTV4KIsOneDeviceWithFourServices() throws {
        let services = DeviceBuilder.serviceRecords(from: appleTV4KRecords(), sourceAddress: "10.0.0.99")
        #expect(services.count == 5)
        #expect(services.allSatisfy { $0.address == "10.0.0.2" })   // from the A record, link-local skipped
        let devices = DeviceBuilder.devices(from: services)
        try #require(devices.count == 1)
        let d = devices[0]
        #expect(d.name == "Living Room")
        #expect(d.address == "10.0.0.2")
        #expect(!d.deepSleep)
        #expect(d.services.map(\.protocol) == [.mrp, .airplay, .raop, .companion])
        #expect(d.identifier == "6D797FD3-3538-427E-A47B-A32FC6CF3A69")
        #expect(d.service(.raop)?.identifier == "AABBCCDDEEFF")
        #expect(d.service(.airplay)?.identifier == "AA:BB:CC:DD:EE:FF")
        #expect(d.service(.mrp)?.port == 49152)
        #expect(d.service(.mrp)?.pairing == .optional)
        #expect(d.service(.mrp)?.enabled == true)               // tvOS 14: native MRP
        #expect(d.service(.companion)?.pairing == .mandatory)   // rpFl & 0x4000
        #expect(d.service(.airplay)?.pairing == .mandatory)     // flags & 0x200
        #expect(d.service(.raop)?.pairing == .notNeeded)
        #expect(d.deviceInfo.model == .gen4K)
        #expect(d.deviceInfo.operatingSystem == .tvOS)
        #expect(d.deviceInfo.version == "14.7")
        #expect(d.deviceInfo.buildNumber == "18M60")
        #expect(d.deviceInfo.mac == "AA:BB:CC:DD:EE:FF")
        #expect(d.deviceInfo.description == "Apple TV 4K, tvOS 14.7 build 18M60")
    }

    @Test func tvOS15DisablesNativeMRP() {
        let svc = ServiceRecord(type: ServiceType.mrp, instance: "TV", port: 49152, address: "10.0.0.3",
                                properties: ["Name": "TV", "UniqueIdentifier": "X", "SystemBuildVersion": "19J346"])
        let d = DeviceBuilder.devices(from: [svc])[0]
        #expect(d.service(.mrp)?.enabled == false)
        #expect(d.service(.mrp)?.pairing == .notNeeded)
        #expect(d.deviceInfo.version == "15.0")
    }

    @Test func appleTV3WithDMAPAndHomeSharing() {
        let services = [
            ServiceRecord(type: ServiceType.dmap, instance: "ABCDEF0123456789", port: 3689, address: "10.0.0.4", properties: ["CtlN": "Bedroom"]),
            ServiceRecord(type: ServiceType.homeSharing, instance: "ABCDEF0123456789_x", port: 3689, address: "10.0.0.4",
                          properties: ["Name": "Bedroom", "hG": "00000000-1111-2222-3333-444444444444"]),
            ServiceRecord(type: ServiceType.airplay, instance: "Bedroom", port: 7000, address: "10.0.0.4",
                          properties: ["deviceid": "11:22:33:44:55:66", "features": "0x5A7FFFF7,0xE", "model": "AppleTV3,2", "srcvers": "220.68"]),
        ]
        let d = DeviceBuilder.devices(from: services)[0]
        #expect(d.name == "Bedroom")
        #expect(d.service(.dmap)?.identifier == "ABCDEF0123456789")
        #expect(d.service(.dmap)?.credentials == "00000000-1111-2222-3333-444444444444")
        #expect(d.deviceInfo.model == .gen3)
        #expect(d.deviceInfo.operatingSystem == .legacy)
        #expect(d.identifier == "ABCDEF0123456789")
    }

    @Test func allPortsZeroMeansDeepSleep() {
        let services = [
            ServiceRecord(type: ServiceType.airplay, instance: "Den", port: 0, address: "10.0.0.5", properties: [:]),
            ServiceRecord(type: ServiceType.raop, instance: "AABBCCDDEEFF@Den", port: 0, address: "10.0.0.5", properties: [:]),
        ]
        #expect(DeviceBuilder.devices(from: services)[0].deepSleep)
    }

    @Test func raopNameAndMacFromInstance() {
        let svc = ServiceRecord(type: ServiceType.raop, instance: "0A1B2C3D4E5F@Küche HomePod", port: 7000, address: "10.0.0.6",
                                properties: ["am": "AudioAccessory5,1", "pk": "ignored"])
        let d = DeviceBuilder.devices(from: [svc])[0]
        #expect(d.name == "Küche HomePod")
        #expect(d.deviceInfo.mac == "0A:1B:2C:3D:4E:5F")
        #expect(d.deviceInfo.model == .homePodMini)
        #expect(d.deviceInfo.operatingSystem == .tvOS)
    }

    @Test func airPlayFeatureVectors() throws {
        #expect(try #require(AirPlayFeatureFlags(parsing: "0x5A7FFFF7,0xE")).isAirPlay2 == false)
        #expect(try #require(AirPlayFeatureFlags(parsing: "0x4A7FCA00,0xBC354BD0")).isAirPlay2)
        #expect(try #require(AirPlayFeatureFlags(parsing: "0x00000003,0x00000001")).bits == [0, 1, 32])
        #expect(AirPlayFeatureFlags(parsing: "garbage") == nil)
        #expect(AirPlayFeatureFlags(parsing: "0x1,0x2,0x3") == nil)
    }

    @Test func versionTable() {
        #expect(DeviceTables.version(forBuild: "17K499") == "13.x")
        #expect(DeviceTables.version(forBuild: "22J580") == "18.1")
        #expect(DeviceTables.model("J305AP") == .appleTV4KGen2)
    }
}
