import ATVCore
import Testing
@testable import ATVMRP

private func deviceInfo(_ type: MRPMessageType = .deviceInfo, _ fill: (inout MRPDeviceInfoMessage) -> Void) -> MRPProtocolMessage {
    var m = MRPProtocolMessage()
    m.type = type
    var d = MRPDeviceInfoMessage()
    fill(&d)
    m.MRPdeviceInfoMessage = d
    return m
}

private func volumeDidChange(_ v: Float, output: String? = nil, endpoint: String? = nil) -> MRPProtocolMessage {
    var m = MRPProtocolMessage()
    m.type = .volumeDidChange
    m.MRPvolumeDidChangeMessage.volume = v
    if let output { m.MRPvolumeDidChangeMessage.outputDeviceUid = output }
    if let endpoint { m.MRPvolumeDidChangeMessage.endpointUid = endpoint }
    return m
}

private func availability(_ available: Bool, _ caps: MRPVolumeCapabilities) -> MRPProtocolMessage {
    var m = MRPProtocolMessage()
    m.type = .volumeControlAvailability
    m.MRPvolumeControlAvailabilityMessage.volumeControlAvailable = available
    m.MRPvolumeControlAvailabilityMessage.volumeCapabilities = caps
    return m
}

@Suite struct DeviceStateTests {
    @Test func powerFollowsLogicalDeviceCount() {
        var s = MRPDeviceState()
        #expect(s.powerState == .unknown)
        #expect(s.apply(deviceInfo { $0.name = "ATV"; $0.logicalDeviceCount = 1 }) == [.powerState(.on)])
        #expect(s.apply(deviceInfo(.deviceInfoUpdate) { $0.name = "ATV"; $0.logicalDeviceCount = 0 }) == [.powerState(.off)])
        #expect(s.powerState == .off)
        #expect(s.apply(deviceInfo(.deviceInfoUpdate) { $0.name = "ATV"; $0.logicalDeviceCount = 0 }) == [])
        #expect(s.apply(deviceInfo(.deviceInfoUpdate) { $0.logicalDeviceCount = 3 }) == [.powerState(.on)])
    }

    @Test func deviceUIDPrefersClusterID() {
        var s = MRPDeviceState()
        #expect(s.deviceUID == nil)
        s.apply(deviceInfo { $0.deviceUid = "DEV"; $0.logicalDeviceCount = 1 })
        #expect(s.deviceUID == "DEV")
        s.apply(deviceInfo { $0.deviceUid = "DEV"; $0.clusterID = "CLUSTER"; $0.logicalDeviceCount = 1 })
        #expect(s.deviceUID == "CLUSTER")
    }

    @Test func volumeForUsAndForOtherDevices() {
        var s = MRPDeviceState()
        // Unknown UID: cannot be ours.
        #expect(s.apply(volumeDidChange(0.5, output: "DEV")) == [.outputDeviceVolume(deviceID: "DEV", 50)])
        s.apply(deviceInfo { $0.deviceUid = "DEV"; $0.logicalDeviceCount = 1 })
        #expect(s.apply(volumeDidChange(0.33, output: "DEV")) == [.volume(33)])
        #expect(s.volume == 33)
        #expect(s.apply(volumeDidChange(0.3349, output: "DEV")) == [.volume(33.5)])
        #expect(s.apply(volumeDidChange(0.3349, output: "DEV")) == [])            // no change, no update
        #expect(s.apply(volumeDidChange(0.2, endpoint: "DEV")) == [.volume(20)])  // endpoint UID when no output UID
        #expect(s.apply(volumeDidChange(0.8, output: "KITCHEN")) == [.outputDeviceVolume(deviceID: "KITCHEN", 80)])
        #expect(s.outputDeviceVolumes["KITCHEN"] == 80)
        #expect(s.apply(volumeDidChange(.nan, output: "DEV")) == [])
    }

    @Test func outputDevices() {
        var s = MRPDeviceState()
        var kitchen = MRPDeviceInfoMessage()
        kitchen.name = "Kitchen"
        kitchen.deviceUid = "K-UID"
        let updates = s.apply(deviceInfo {
            $0.name = "Living Room"
            $0.uniqueIdentifier = "LR-ID"
            $0.deviceUid = "LR-UID"
            $0.logicalDeviceCount = 1
            $0.isGroupLeader = true
            $0.groupedDevices = [kitchen]
        })
        let expected = [OutputDevice(identifier: "LR-ID", name: "Living Room"), OutputDevice(identifier: "K-UID", name: "Kitchen")]
        #expect(updates == [.powerState(.on), .outputDevices(expected)])
        #expect(s.outputDevices == expected)
        // A proxy group player does not list itself.
        s.apply(deviceInfo { $0.name = "LR"; $0.isGroupLeader = true; $0.isProxyGroupPlayer = true; $0.logicalDeviceCount = 1 })
        #expect(s.outputDevices.isEmpty)
    }

    @Test func features() {
        var player = MRPPlayerState()
        var device = MRPDeviceState()
        var f = MRPFeatures(player: player, device: device)
        for name: FeatureName in [.up, .select, .homeHold, .topMenu, .turnOn, .turnOff, .powerState, .outputDevices, .setOutputDevices] {
            #expect(f.feature(name).state == .available, "\(name)")
        }
        for name: FeatureName in [.appList, .launchApp, .textSet, .playURL, .streamFile, .channelUp, .swipe] {
            #expect(f.feature(name).state == .unsupported, "\(name)")
        }
        #expect(f.feature(.volumeUp).state == .unavailable)
        #expect(f.feature(.title).state == .unavailable)

        device.apply(deviceInfo { $0.deviceUid = "DEV"; $0.logicalDeviceCount = 1 })
        device.apply(availability(true, .relative))
        f = MRPFeatures(player: player, device: device)
        #expect(f.feature(.volumeUp).state == .available)
        #expect(f.feature(.volumeDown).state == .available)
        #expect(f.feature(.volume).state == .unavailable)     // relative only
        #expect(f.feature(.setVolume).state == .unavailable)

        var caps = MRPProtocolMessage()
        caps.type = .volumeControlCapabilitiesDidChange
        caps.MRPvolumeControlCapabilitiesDidChangeMessage.capabilities = .both
        caps.MRPvolumeControlCapabilitiesDidChangeMessage.outputDeviceUid = "OTHER"
        device.apply(caps)
        #expect(!device.supportsAbsoluteVolume)                // not for us
        caps.MRPvolumeControlCapabilitiesDidChangeMessage.outputDeviceUid = "DEV"
        device.apply(caps)
        f = MRPFeatures(player: player, device: device)
        #expect(f.feature(.volume).state == .available)
        #expect(f.feature(.setVolume).state == .available)

        var c = MRPProtocolMessage()
        c.type = .setNowPlayingClient
        c.MRPsetNowPlayingClientMessage.client.bundleIdentifier = "app"
        player.apply(c)
        f.player = player
        #expect(f.feature(.app).state == .available)
    }
}
