// The code of the DocC article "Errors" (Errors.md); each `docs-begin: NAME` … `docs-end: NAME`
// region is one of its code blocks (scripts/check-docs).

import ATV
import ATVCore
import ATVDiscovery

func errorsCatch() async {
    // docs-begin: catch
    do {
        let device = try await Discovery.find("Kitchen")
        let atv = try await connect(device, options: ConnectOptions(timeout: .seconds(3)))
        defer { Task { await atv.close() } }
        try await atv.stream.streamFile(.file("song.flac"))
    } catch let error as ATVError {
        switch error {
        case .deviceNotFound: print("not found; is it on and on this network?")
        case .noCredentials(let proto): print("pair first: atv pair --protocol \(proto.key)")
        case .notSupported(let feature): print("\(feature) is not something this device does")
        case .timeout, .connectionFailed, .connectionLost: print("network: \(error)")
        default: print("atv: error: \(error)")
        }
    } catch {
        print("atv: error: \(error)")
    }
    // docs-end: catch
}
