import ATVCore

/// Model and OS deduction tables (facts from pyatv's device_info tables).
package enum DeviceTables {
    static let models: [String: DeviceModel] = [
        "AirPort4,107": .airPortExpress, "AirPort10,115": .airPortExpressGen2,
        "AppleTV1,1": .appleTVGen1, "AppleTV2,1": .gen2, "AppleTV3,1": .gen3, "AppleTV3,2": .gen3,
        "AppleTV5,3": .gen4, "AppleTV6,2": .gen4K, "AppleTV11,1": .appleTV4KGen2, "AppleTV14,1": .appleTV4KGen3,
        "AudioAccessory1,1": .homePod, "AudioAccessory1,2": .homePod,
        "AudioAccessory5,1": .homePodMini, "AudioAccessorySingle5,1": .homePodMini,
        "AudioAccessory6,1": .homePodGen2,
    ]
    static let internalNames: [String: DeviceModel] = [
        "K66AP": .gen2, "J33AP": .gen3, "J33IAP": .gen3, "J42dAP": .gen4, "J105aAP": .gen4K,
        "J305AP": .appleTV4KGen2, "J255AP": .appleTV4KGen3,
    ]
    static let versions: [String: String] = [
        "17J586": "13.0", "17K82": "13.2", "17K449": "13.3", "17K795": "13.3.1", "17L256": "13.4",
        "17L562": "13.4.5", "17L570": "13.4.6", "17M61": "13.4.8", "18J386": "14.0", "18J400": "14.0.1",
        "18J411": "14.0.2", "18K57": "14.2", "18K561": "14.3", "18K802": "14.4", "18L204": "14.5",
        "18L569": "14.6", "18M60": "14.7", "19J346": "15.0", "19J572": "15.1", "19J581": "15.1.1",
        "19K53": "15.2", "19K547": "15.3", "19L440": "15.4", "19L452": "15.4.1", "19L570": "15.5",
        "19L580": "15.5.1", "19M65": "15.6", "20J373": "16.0", "20K71": "16.1", "20K80": "16.1.1",
        "20K362": "16.2", "20K650": "16.3", "20K661": "16.3.1", "20K672": "16.3.2", "20K680": "16.3.3",
        "20L497": "16.4", "20L498": "16.4.1", "20L563": "16.5", "20M73": "16.6", "22J354": "17.0",
        "21K69": "17.1", "21K365": "17.2", "21K646": "17.3", "21L227": "17.4", "21L569": "17.5",
        "21L580": "17.5.1", "21M71": "17.6", "21M80": "17.6.1", "22J357": "18.0", "22J580": "18.1",
    ]

    /// A model identifier ("AppleTV6,2") or internal name ("J305AP").
    package static func model(_ identifier: String) -> DeviceModel {
        models[identifier] ?? internalNames[identifier] ?? .unknown
    }

    /// tvOS version for a build; unknown builds map by their leading number ("17K499" → "13.x").
    package static func version(forBuild build: String) -> String? {
        if let v = versions[build] { return v }
        let digits = build.prefix { $0.isNumber }
        guard let n = Int(digits), n > 4 else { return nil }
        return "\(n - 4).x"
    }

    package static func operatingSystem(for model: DeviceModel) -> OperatingSystem {
        switch model {
        case .airPortExpress, .airPortExpressGen2: .airPortOS
        case .appleTVGen1, .gen2, .gen3: .legacy
        case .gen4, .gen4K, .appleTV4KGen2, .appleTV4KGen3, .homePod, .homePodMini, .homePodGen2: .tvOS
        default: .unknown
        }
    }

    static func isMac(_ model: String) -> Bool {
        let prefixes = ["MacBookAir", "iMac", "Macmini", "MacBookPro", "MacPro", "Mac"]
        guard let p = prefixes.first(where: { model.hasPrefix($0) }) else { return false }
        let rest = model.dropFirst(p.count)
        let parts = rest.split(separator: ",")
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }
}
