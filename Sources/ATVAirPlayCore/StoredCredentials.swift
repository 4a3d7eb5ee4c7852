import ATVAuth
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The stored credentials AirPlay video, RAOP audio and the MRP tunnel read (the AirPlay service's
/// serve all three).
package enum AirPlayStoredCredentials {
    /// Stored HAP credentials (`service`'s, else the AirPlay service's) for AirPlay 2 pair-verify;
    /// nil → transient pairing (none stored, or only legacy ones). Stored credentials that can't be
    /// read are an error, never a silent fall-back to pairing without them.
    package static func hap(for service: ServiceConfig, in config: DeviceConfig) throws(ATVError) -> HAPCredentials? {
        for text in [service.credentials, config.service(.airplay)?.credentials] {
            guard let text, !text.trimmingWhitespace().isEmpty else { continue }
            if case .hap(let c) = try read(text, deviceName: config.name) { return c }
        }
        return nil
    }

    /// Parses stored credentials; unreadable ones are an error that says what to do.
    package static func read(_ text: String, deviceName: String) throws(ATVError) -> ATVCredentials {
        do {
            return try ATVCredentials(parsing: text)
        } catch {
            throw ATVError.invalidCredentials(
                "the stored AirPlay credentials of \(deviceName) can't be read; pair again with `atv pair --protocol airplay` or remove them with `atv credentials`")
        }
    }
}
