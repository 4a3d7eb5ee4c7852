import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import SwiftProtobuf

/// Builders for the messages swift-atv sends. Every message gets a fresh upper-case
/// UUID as `uniqueIdentifier`; `identifier` (request/response correlation) is set by whoever
/// sends and waits for a reply.
package enum MRPMessages {
    /// Client identity sent in DEVICE_INFO (pyatv's values).
    package struct ClientInfo: Sendable, Equatable {
        package var pairingID: String
        package var name: String
        package var osBuild: String
        package init(pairingID: String, name: String, osBuild: String) {
            self.pairingID = pairingID
            self.name = name
            self.osBuild = osBuild
        }
    }

    package static func message(_ type: MRPMessageType, uniqueIdentifier: String = UUID().uuidString) -> MRPProtocolMessage {
        var m = MRPProtocolMessage()
        m.type = type
        m.uniqueIdentifier = uniqueIdentifier
        return m
    }

    /// DEVICE_INFO, the first message of every connection.
    package static func deviceInfo(_ client: ClientInfo) -> MRPProtocolMessage {
        var info = MRPDeviceInfoMessage()
        info.uniqueIdentifier = client.pairingID
        info.name = client.name
        info.localizedModelName = "iPhone"
        info.systemBuildVersion = client.osBuild
        info.applicationBundleIdentifier = "com.apple.TVRemote"
        info.applicationBundleVersion = "344.28"
        info.protocolVersion = 1
        info.lastSupportedMessageType = 108
        info.supportsSystemPairing = true
        info.allowsPairing = true
        info.supportsAcl = true
        info.supportsSharedQueue = true
        info.supportsExtendedMotion = true
        info.sharedQueueVersion = 2
        info.systemMediaApplication = "com.apple.TVMusic"
        info.deviceClass = .iphone
        info.logicalDeviceCount = 1
        var m = message(.deviceInfo)
        m.MRPdeviceInfoMessage = info
        return m
    }

    package static func setConnectionState(_ state: MRPSetConnectionStateMessage.ConnectionState = .connected) -> MRPProtocolMessage {
        var m = message(.setConnectionState)
        m.MRPsetConnectionStateMessage.state = state
        return m
    }

    package static func clientUpdatesConfig(artwork: Bool = true, nowPlaying: Bool = false, volume: Bool = true,
                                           keyboard: Bool = true, outputDevices: Bool = true) -> MRPProtocolMessage {
        var m = message(.clientUpdatesConfig)
        m.MRPclientUpdatesConfigMessage.artworkUpdates = artwork
        m.MRPclientUpdatesConfigMessage.nowPlayingUpdates = nowPlaying
        m.MRPclientUpdatesConfigMessage.volumeUpdates = volume
        m.MRPclientUpdatesConfigMessage.keyboardUpdates = keyboard
        m.MRPclientUpdatesConfigMessage.outputDeviceUpdates = outputDevices
        return m
    }

    package static func getKeyboardSession() -> MRPProtocolMessage {
        var m = message(.getKeyboardSession)
        m.MRPgetKeyboardSessionMessage = ""
        return m
    }

    /// GENERIC: heartbeat and HID "flush".
    package static func generic() -> MRPProtocolMessage {
        var m = message(.generic)
        m.MRPgenericMessage = MRPGenericMessage()
        return m
    }

    package static func wakeDevice() -> MRPProtocolMessage {
        var m = message(.wakeDevice)
        m.MRPwakeDeviceMessage = MRPWakeDeviceMessage()
        return m
    }

    /// CRYPTO_PAIRING carrying HAP TLV8 bytes: `state` = 2 only on pair-setup M1, else 0.
    package static func cryptoPairing(_ tlv: [UInt8], isPairSetupM1: Bool = false) -> MRPProtocolMessage {
        var m = message(.cryptoPairing)
        m.MRPcryptoPairingMessage.pairingData = Data(tlv)
        m.MRPcryptoPairingMessage.status = 0
        m.MRPcryptoPairingMessage.isRetrying = false
        m.MRPcryptoPairingMessage.isUsingSystemPairing = false
        m.MRPcryptoPairingMessage.state = isPairSetupM1 ? 2 : 0
        return m
    }

    package static func sendCommand(_ command: MRPCommand, options: MRPCommandOptions? = nil,
                                   playerPath: MRPPlayerPath? = nil) -> MRPProtocolMessage {
        var m = message(.sendCommand)
        m.MRPsendCommandMessage.command = command
        if let options { m.MRPsendCommandMessage.options = options }
        if let playerPath { m.MRPsendCommandMessage.playerPath = playerPath }
        return m
    }

    /// SET_VOLUME with a level in percent (0...100), sent as 0...1.
    package static func setVolume(percent: Double, outputDeviceUID: String) throws(ATVError) -> MRPProtocolMessage {
        guard percent.isFinite, (0...100).contains(percent) else {
            throw ATVError.invalidValue("volume \(percent) is outside 0...100")
        }
        var m = message(.setVolume)
        m.MRPsetVolumeMessage.volume = Float(percent / 100)
        m.MRPsetVolumeMessage.outputDeviceUid = outputDeviceUID
        return m
    }

    /// PLAYBACK_QUEUE_REQUEST for the artwork of the item at `location` (size ≤0 → device default).
    package static func artworkRequest(location: Int32, width: Int = 0, height: Int = -1) -> MRPProtocolMessage {
        var m = message(.playbackQueueRequest)
        m.MRPplaybackQueueRequestMessage.location = location
        m.MRPplaybackQueueRequestMessage.length = 1
        m.MRPplaybackQueueRequestMessage.artworkWidth = Double(width)
        m.MRPplaybackQueueRequestMessage.artworkHeight = Double(height)
        m.MRPplaybackQueueRequestMessage.returnContentItemAssetsInUserCompletion = true
        return m
    }

    /// MODIFY_OUTPUT_CONTEXT_REQUEST (shared audio presentation) adding, removing or setting devices.
    package static func modifyOutputContext(adding: [String] = [], removing: [String] = [], setting: [String] = []) -> MRPProtocolMessage {
        var m = message(.modifyOutputContextRequest)
        m.MRPmodifyOutputContextRequestMessage.type = .sharedAudioPresentation
        m.MRPmodifyOutputContextRequestMessage.addingDevices = adding
        m.MRPmodifyOutputContextRequestMessage.removingDevices = removing
        m.MRPmodifyOutputContextRequestMessage.settingDevices = setting
        m.MRPmodifyOutputContextRequestMessage.clusterAwareAddingDevices = adding
        m.MRPmodifyOutputContextRequestMessage.clusterAwareRemovingDevices = removing
        m.MRPmodifyOutputContextRequestMessage.clusterAwareSettingDevices = setting
        return m
    }
}
