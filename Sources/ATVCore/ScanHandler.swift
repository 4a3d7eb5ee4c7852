/// One mDNS service type a protocol claims, and how one instance's records become a service of
/// the device and what they say about it (pyatv's scan handlers). Discovery runs them; each
/// protocol module lists its own (`ProtocolModule.scanHandlers`).
package struct ScanHandler: Sendable {
    /// What one service instance contributes to its device.
    package struct Found: Sendable {
        /// The device's name as this service gives it (nil: it gives none).
        package var name: String?
        package var service: ServiceConfig
        package var deviceInfo: DeviceInfo
        package init(name: String?, service: ServiceConfig, deviceInfo: DeviceInfo = DeviceInfo()) {
            self.name = name
            self.service = service
            self.deviceInfo = deviceInfo
        }
    }

    /// The full service type, e.g. "_airplay._tcp.local".
    package var serviceType: String
    /// The instance name, port and TXT properties of one instance, and the TXT of the same
    /// device's `_airplay._tcp` service (RAOP's pairing rule reads it; empty when there is none).
    package var handle: @Sendable (_ instance: String, _ port: Int, _ properties: [String: String],
                                  _ airplayProperties: [String: String]) -> Found

    package init(serviceType: String,
                handle: @escaping @Sendable (_ instance: String, _ port: Int, _ properties: [String: String],
                                             _ airplayProperties: [String: String]) -> Found) {
        self.serviceType = serviceType
        self.handle = handle
    }
}
