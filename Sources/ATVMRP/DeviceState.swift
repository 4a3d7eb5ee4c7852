import ATVCore

/// Device-level MRP state: device info, power, volume and output devices. A pure value type
/// like `MRPPlayerState`: `apply(_:)` returns the push updates a message causes.
package struct MRPDeviceState: Sendable, Equatable {
    /// The last DEVICE_INFO or DEVICE_INFO_UPDATE.
    package private(set) var deviceInfo: MRPDeviceInfoMessage?
    package private(set) var volumeControlAvailable = false
    package private(set) var volumeCapabilities: MRPVolumeCapabilities = .none
    /// Percent (0...100), once the device reported it.
    package private(set) var volume: Double?
    /// Volume (percent) of other output devices, by UID.
    package private(set) var outputDeviceVolumes: [String: Double] = [:]

    package init() {}

    /// Our device's UID for volume messages: `clusterID`, else `deviceUID`.
    package var deviceUID: String? {
        guard let info = deviceInfo else { return nil }
        if info.hasClusterID, !info.clusterID.isEmpty { return info.clusterID }
        if info.hasDeviceUid, !info.deviceUid.isEmpty { return info.deviceUid }
        return nil
    }

    /// On iff `logicalDeviceCount` ≥ 1; unknown before any DEVICE_INFO.
    package var powerState: PowerState {
        guard let info = deviceInfo else { return .unknown }
        return info.logicalDeviceCount >= 1 ? .on : .off
    }

    package var supportsAbsoluteVolume: Bool { volumeCapabilities == .absolute || volumeCapabilities == .both }
    package var supportsRelativeVolume: Bool { volumeCapabilities == .relative || volumeCapabilities == .both }

    /// Output devices: the device itself if it leads a group (and is not a proxy), then its group.
    package var outputDevices: [OutputDevice] {
        guard let info = deviceInfo else { return [] }
        var out: [OutputDevice] = []
        if info.isGroupLeader && !info.isProxyGroupPlayer {
            out.append(OutputDevice(identifier: info.uniqueIdentifier, name: info.hasName ? info.name : nil,
                                    volume: volume ?? 0))
        }
        for d in info.groupedDevices {
            out.append(OutputDevice(identifier: d.deviceUid, name: d.hasName ? d.name : nil,
                                    volume: outputDeviceVolumes[d.deviceUid] ?? 0))
        }
        return out
    }

    /// Applies one received message and returns the updates it causes (empty if it does not concern
    /// device state or changes nothing).
    @discardableResult
    package mutating func apply(_ message: MRPProtocolMessage) -> [DeviceUpdate] {
        switch message.type {
        case .deviceInfo, .deviceInfoUpdate:
            guard message.hasMRPdeviceInfoMessage else { return [] }
            let oldPower = powerState, oldDevices = outputDevices
            deviceInfo = message.MRPdeviceInfoMessage
            var updates: [DeviceUpdate] = []
            if powerState != oldPower { updates.append(.powerState(powerState)) }
            if outputDevices != oldDevices { updates.append(.outputDevices(outputDevices)) }
            return updates
        case .volumeControlAvailability:
            guard message.hasMRPvolumeControlAvailabilityMessage else { return [] }
            let m = message.MRPvolumeControlAvailabilityMessage
            volumeControlAvailable = m.volumeControlAvailable
            if m.hasVolumeCapabilities { volumeCapabilities = m.volumeCapabilities }
            return []
        case .volumeControlCapabilitiesDidChange:
            guard message.hasMRPvolumeControlCapabilitiesDidChangeMessage else { return [] }
            let m = message.MRPvolumeControlCapabilitiesDidChangeMessage
            guard isOurs(outputDeviceUID: m.hasOutputDeviceUid ? m.outputDeviceUid : nil,
                         endpointUID: m.hasEndpointUid ? m.endpointUid : nil) else { return [] }
            volumeCapabilities = m.capabilities
            volumeControlAvailable = m.capabilities != .none
            return []
        case .volumeDidChange:
            guard message.hasMRPvolumeDidChangeMessage else { return [] }
            let m = message.MRPvolumeDidChangeMessage
            guard m.volume.isFinite else { return [] }
            let percent = (Double(m.volume) * 1000).rounded() / 10
            let uid = m.hasOutputDeviceUid ? m.outputDeviceUid : m.endpointUid
            if isOurs(outputDeviceUID: m.hasOutputDeviceUid ? m.outputDeviceUid : nil,
                      endpointUID: m.hasEndpointUid ? m.endpointUid : nil) {
                guard volume != percent else { return [] }
                volume = percent
                return [.volume(percent)]
            }
            guard outputDeviceVolumes[uid] != percent else { return [] }
            outputDeviceVolumes[uid] = percent
            return [.outputDeviceVolume(deviceID: uid, percent)]
        default:
            return []
        }
    }

    private func isOurs(outputDeviceUID: String?, endpointUID: String?) -> Bool {
        guard let mine = deviceUID else { return false }
        return (outputDeviceUID ?? endpointUID) == mine
    }
}

/// MRP's feature table (pyatv's FeatureName ids): fixed claims plus what the player and device state allow now.
package struct MRPFeatures: Features {
    package var player: MRPPlayerState
    package var device: MRPDeviceState

    package init(player: MRPPlayerState, device: MRPDeviceState) {
        self.player = player
        self.device = device
    }

    private static let alwaysAvailable: Set<FeatureName> = [
        .up, .down, .left, .right, .select, .menu, .home, .homeHold, .topMenu,
        .turnOn, .turnOff, .powerState,
        .outputDevices, .addOutputDevices, .removeOutputDevices, .setOutputDevices,
    ]

    package func feature(_ name: FeatureName) -> FeatureInfo {
        if Self.alwaysAvailable.contains(name) { return .available }
        switch name {
        case .volumeUp, .volumeDown:
            return FeatureInfo(device.volumeControlAvailable && device.deviceUID != nil ? .available : .unavailable)
        case .volume, .setVolume:
            let ok = device.volumeControlAvailable && device.deviceUID != nil && device.supportsAbsoluteVolume
            return FeatureInfo(ok ? .available : .unavailable)
        default:
            guard let state = player.featureState(name) else { return .unsupported }
            return FeatureInfo(state)
        }
    }
}
