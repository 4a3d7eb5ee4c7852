import Testing
@testable import ATVCore

@Suite struct DeviceConfigTests {
    func svc(_ p: ATVProtocol, _ id: String?, port: Int = 1000) -> ServiceConfig {
        ServiceConfig(protocol: p, identifier: id, port: port)
    }

    @Test func identifierPriorityIsMRPDMAPAirPlayRAOPCompanion() {
        // Services added in the reverse order of priority: the order of addition must not matter.
        var c = DeviceConfig(name: "Living Room", address: "127.0.0.1", services: [
            svc(.companion, "comp"), svc(.raop, "raop"), svc(.airplay, "ap"), svc(.dmap, "dmap"), svc(.mrp, "mrp"),
        ])
        #expect(c.identifier == "mrp")
        c.updateService(.mrp) { $0.identifier = nil }
        #expect(c.identifier == "dmap")
        c.updateService(.dmap) { $0.identifier = nil }
        #expect(c.identifier == "ap")
        c.updateService(.airplay) { $0.identifier = nil }
        #expect(c.identifier == "raop")
        c.updateService(.raop) { $0.identifier = nil }
        #expect(c.identifier == "comp")
        c.updateService(.companion) { $0.identifier = nil }
        #expect(c.identifier == nil)
        #expect(!c.ready)
    }

    @Test func allIdentifiersAreUniqueInServiceOrder() {
        let c = DeviceConfig(name: "x", address: "127.0.0.1", services: [
            svc(.airplay, "AA:BB"), svc(.raop, "AA:BB"), svc(.mrp, "M"), svc(.companion, nil),
        ])
        #expect(c.allIdentifiers == ["AA:BB", "M"])
        #expect(c.ready)
    }

    @Test func addServiceMergesSameProtocol() throws {
        var c = DeviceConfig(name: "x", address: "127.0.0.1")
        c.addService(ServiceConfig(protocol: .raop, identifier: "RAOPID", port: 7000, properties: ["am": "AppleTV3,2"]))
        c.addService(ServiceConfig(protocol: .raop, identifier: "OTHER", port: 7001, credentials: "creds",
                                   password: "pw", requiresPassword: true, pairing: .mandatory,
                                   properties: ["AM": "x", "tp": "UDP"]))
        #expect(c.services.count == 1)
        let s = try #require(c.service(.raop))
        #expect(s.identifier == "RAOPID")  // an existing identifier is kept
        #expect(s.credentials == "creds")
        #expect(s.password == "pw")
        #expect(s.port == 7001)
        #expect(s.requiresPassword)
        #expect(s.pairing == .mandatory)
        #expect(s.properties["tp"] == "UDP")
        #expect(s.property("TP") == "UDP")
        #expect(s.property("am") != nil)
        // A later description without credentials does not erase them.
        c.addService(ServiceConfig(protocol: .raop, port: 0))
        #expect(c.service(.raop)?.credentials == "creds")
        #expect(c.service(.raop)?.port == 7001)
        c.addService(svc(.airplay, "AP"))
        #expect(c.services.map(\.protocol) == [.raop, .airplay])
    }

    @Test func matchesNameOrIdentifierCaseInsensitively() {
        let c = DeviceConfig(name: "Living Room", address: "127.0.0.1",
                             services: [svc(.mrp, "6D797FD3-AAAA"), svc(.airplay, "aa:bb:cc:dd:ee:ff")])
        #expect(c.matches("living room"))
        #expect(c.matches("6d797fd3-aaaa"))
        #expect(c.matches("AA:BB:CC:DD:EE:FF"))
        #expect(!c.matches("Living"))
        #expect(!c.matches("127.0.0.1"))
    }

    @Test func setCredentialsNeedsTheService() {
        var c = DeviceConfig(name: "x", address: "127.0.0.1", services: [svc(.mrp, "M")])
        let setMRP = c.setCredentials(.mrp, "abc")
        let setCompanion = c.setCredentials(.companion, "abc")
        #expect(setMRP)
        #expect(!setCompanion)
        #expect(c.service(.mrp)?.credentials == "abc")
    }
}

@Suite struct DeviceInfoTests {
    @Test func descriptionLikePyatv() {
        let i = DeviceInfo(operatingSystem: .legacy, version: "13.x", buildNumber: "17K499", model: .gen3)
        #expect(i.description == "Apple TV 3, ATV SW 13.x build 17K499")
        #expect(DeviceInfo(version: "17.1", model: .gen4K).description == "Apple TV 4K, tvOS 17.1")
        #expect(DeviceInfo(model: .airPortExpressGen2).description == "AirPort Express (gen 2), AirPortOS")
        #expect(DeviceInfo(rawModel: "AppleTV6,2").description == "AppleTV6,2, Unknown OS")
        #expect(DeviceInfo(operatingSystem: .macOS, model: .music).description == "Music/iTunes, MacOS")
    }

    @Test func operatingSystemDerivedFromModel() {
        #expect(DeviceInfo(model: .homePodMini).effectiveOperatingSystem == .tvOS)
        #expect(DeviceInfo(model: .airPortExpress).effectiveOperatingSystem == .airPortOS)
        #expect(DeviceInfo(model: .appleTVGen1).effectiveOperatingSystem == .unknown)
        #expect(DeviceInfo(operatingSystem: .legacy, model: .gen4).effectiveOperatingSystem == .legacy)
    }

    @Test func mergeFillsOnlyUnknownFields() {
        var a = DeviceInfo(version: "1", model: .gen4)
        a.merge(DeviceInfo(operatingSystem: .tvOS, version: "2", buildNumber: "B", model: .gen3, mac: "m"))
        #expect(a == DeviceInfo(operatingSystem: .tvOS, version: "1", buildNumber: "B", model: .gen4, mac: "m"))
    }
}

@Suite struct PlayingTests {
    // Expected values computed once with Python: hashlib.sha256(text.encode()).hexdigest()
    @Test func hashIsSHA256OfTitleArtistAlbumTotalTime() {
        let p = Playing(title: "Song Title", artist: "The Artist", album: "An Album", totalTime: 215)
        #expect(p.hash == "f66b1a4f9cb414c270c4dd25b6e7d5333c353706423fa154a2443c4c248ce530")
        #expect(Playing().hash == "ca496c14642c78af6dd4250191fe175f6dafd72b4c33bcbab43c454aae051da1")
        #expect(Playing(title: "Title", totalTime: 42).hash
            == "93d4816cece287e75b742274e1325e7f4f5fccfaf346cdf6e1ebd5af77b30ead")
        // Fields outside the hash do not change it.
        #expect(Playing(deviceState: .playing, title: "Title", genre: "Rock", totalTime: 42, position: 3).hash
            == Playing(title: "Title", totalTime: 42).hash)
        #expect(Playing(title: "Title", totalTime: 42, hash: "explicit").hash == "explicit")
    }

    @Test func positionIsClampedToZeroAndTotalTime() {
        #expect(Playing(totalTime: 100, position: -5).position == 0)
        #expect(Playing(totalTime: 100, position: 500).position == 100)
        #expect(Playing(totalTime: 100, position: 50).position == 50)
        #expect(Playing(position: 500).position == 500)
        #expect(Playing(position: -1).position == 0)
        #expect(Playing().position == nil)
        var p = Playing(totalTime: 10)
        p.position = 11
        #expect(p.position == 10)
        p.position = -3
        #expect(p.position == 0)
    }

    @Test func equalityComparesAllFields() {
        #expect(Playing(title: "a") == Playing(title: "a"))
        #expect(Playing(title: "a") != Playing(title: "a", genre: "g"))
    }
}

@Suite struct ConstantsTests {
    @Test func featureIdsArePyatvs() {
        #expect(FeatureName.up.rawValue == 0)
        #expect(FeatureName.select.rawValue == 10)
        #expect(FeatureName.artwork.rawValue == 30)
        #expect(FeatureName.pushUpdates.rawValue == 43)
        #expect(FeatureName.streamFile.rawValue == 44)
        #expect(FeatureName.iTunesStoreIdentifier.rawValue == 50)
        #expect(FeatureName.outputDevices.rawValue == 59)
        #expect(FeatureName.guide.rawValue == 66)
        #expect(FeatureName.controlCenter.rawValue == 68)
        #expect(FeatureName(rawValue: 67) == nil)
        #expect(FeatureName.allCases.count == 68)
        #expect(FeatureName.playURL.description == "PlayUrl")
        // NOTE: names going through the `default:` branch of FeatureName.description (e.g. playPause)
        // recurse forever (String(describing: self) calls description) and crash; reported to the lead.
        #expect(FeatureName.iTunesStoreIdentifier.description == "iTunesStoreIdentifier")
    }

    @Test func protocolNumbersAndKeys() {
        #expect(ATVProtocol.dmap.rawValue == 1 && ATVProtocol.raop.rawValue == 5)
        #expect(ATVProtocol(key: "AirPlay") == .airplay)
        #expect(ATVProtocol(key: "bogus") == nil)
        #expect(DeviceModel.appleTVGen1.rawValue == 13)
        #expect(PairingRequirement.mandatory.rawValue == 5)
    }
}

@Suite struct RawPCMFormatTests {
    @Test func parsesAnyOrderAndSubset() throws {
        #expect(try RawPCMFormat(parsing: "s16le:44100:2") == RawPCMFormat())
        #expect(try RawPCMFormat(parsing: "2:s16be:22050")
            == RawPCMFormat(sampleRate: 22050, channels: 2, sampleFormat: .s16be))
        #expect(try RawPCMFormat(parsing: "f32le:48000:1")
            == RawPCMFormat(sampleRate: 48000, channels: 1, sampleFormat: .f32le))
        #expect(try RawPCMFormat(parsing: "48000") == RawPCMFormat(sampleRate: 48000))
        #expect(try RawPCMFormat(parsing: "u8") == RawPCMFormat(sampleFormat: .u8))
    }

    @Test func rejectsGarbage() {
        for bad in ["bogus", "s16le:7000", "s16le:44100:9", "s16le:-1", "S16LE"] {
            #expect(throws: ATVError.self) { try RawPCMFormat(parsing: bad) }
        }
    }
}

@Suite struct BroadcasterTests {
    @Test func everySubscriberGetsEveryValueAndFinishEndsThem() async {
        let b = Broadcaster<Int>()
        let s1 = b.subscribe()
        let s2 = b.subscribe()
        #expect(b.subscriberCount == 2)
        for i in 1...5 { b.yield(i) }
        b.finish()
        var got1: [Int] = []
        for await v in s1 { got1.append(v) }
        var got2: [Int] = []
        for await v in s2 { got2.append(v) }
        #expect(got1 == [1, 2, 3, 4, 5])
        #expect(got2 == [1, 2, 3, 4, 5])
        #expect(b.subscriberCount == 0)
        // Subscribing after finish yields a stream that is already over.
        var late: [Int] = []
        for await v in b.subscribe() { late.append(v) }
        #expect(late.isEmpty)
    }

    @Test func concurrentConsumers() async {
        let b = Broadcaster<Int>()
        let streams = (0..<3).map { _ in b.subscribe() }
        let results = await withTaskGroup(of: [Int].self) { group in
            for s in streams {
                group.addTask {
                    var out: [Int] = []
                    for await v in s { out.append(v) }
                    return out
                }
            }
            for i in 0..<100 { b.yield(i) }
            b.finish()
            var all: [[Int]] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 3)
        for r in results { #expect(r == Array(0..<100)) }
    }
}
