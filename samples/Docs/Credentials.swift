// The code of the DocC article "Credentials and storage" (CredentialsAndStorage.md); each
// `docs-begin: NAME` … `docs-end: NAME` region is one of its code blocks (scripts/check-docs).

import ATV
import ATVAuth
import ATVCore
import ATVDiscovery

func credentialsPair() async throws {
    // docs-begin: pair
    let storage = FileStorage()     // $XDG_CONFIG_HOME/swift-atv/devices.json
    let device = try await Discovery.find("Living Room")
    for proto in [ATVProtocol.airplay, .companion, .mrp] where device.service(proto) != nil {
        let pairing = try pair(device, protocol: proto)
        try await pairing.begin()
        print("PIN for \(proto): ", terminator: "")
        try await pairing.pin(readLine() ?? "")
        let credentials = try await pairing.finish()
        await pairing.close()
        try storage.storeCredentials(credentials, for: proto, of: device)
    }
    // docs-end: pair
}

func credentialsUse() async throws {
    // docs-begin: use
    // Credentials (and settings such as mrp_tunnel) are applied to the device before connecting.
    let storage = FileStorage()
    let device = try await Discovery.find("Living Room")
    let atv = try await connect(device, storage: storage)
    // docs-end: use
    await atv.close()
}

func credentialsManage() throws {
    // docs-begin: manage
    let storage = FileStorage(path: "/srv/atv/devices.json")
    try storage.importPyatv()              // ~/.pyatv.conf: pairings made with pyatv
    for settings in try storage.allSettings {
        print(settings.info.name, settings.identifiers.sorted())
    }
    // docs-end: manage
}
