import ATVTestSupport
import ATVCore
import Foundation
import Testing
@testable import ATVMRP

@Suite struct HIDTests {
    @Test func selectDownMatchesReferenceBytes() {
        let expected = hex("438922cf08020000 00000000000000000100000000000000020000002000000003000000010000000000 00 0001 0089 0001 0000000000000001000000")
        #expect(expected.count == 60)
        #expect(MRPHID.eventData(usagePage: 1, usage: 0x89, down: true) == expected)
        var up = expected
        up[48] = 0
        #expect(MRPHID.eventData(usagePage: 1, usage: 0x89, down: false) == up)
    }

    @Test func keyTable() {
        let table: [MRPHIDKey: (UInt16, UInt16)] = [
            .up: (1, 0x8C), .down: (1, 0x8D), .left: (1, 0x8B), .right: (1, 0x8A), .select: (1, 0x89),
            .menu: (1, 0x86), .suspend: (1, 0x82), .wakeUp: (1, 0x83), .stop: (12, 0xB7), .next: (12, 0xB5),
            .previous: (12, 0xB6), .topMenu: (12, 0x60), .home: (12, 0x40), .volumeUp: (12, 0xE9), .volumeDown: (12, 0xEA),
        ]
        #expect(table.count == MRPHIDKey.allCases.count)
        for key in MRPHIDKey.allCases {
            let (page, usage) = table[key]!
            #expect(key.usagePage == page && key.usage == usage, "\(key)")
            for down in [true, false] {
                let m = MRPHID.event(key, down: down)
                #expect(m.type == .sendHidEvent)
                let parsed = MRPHID.parseEventData(Array(m.MRPsendHideventMessage.hidEventData))
                #expect(parsed?.usagePage == page && parsed?.usage == usage && parsed?.down == down)
            }
        }
        #expect(MRPHID.parseEventData([1, 2, 3]) == nil)
    }

    /// (down?, sleep?, flush?) sequence of steps, ignoring the per-message UUIDs.
    private func shape(_ steps: [MRPHIDStep]) -> [String] {
        steps.map {
            switch $0 {
            case .send(let m):
                let e = MRPHID.parseEventData(Array(m.MRPsendHideventMessage.hidEventData))!
                return "\(e.usage == MRPHIDKey.home.usage ? "home" : String(e.usage, radix: 16)) \(e.down ? "down" : "up")"
            case .sleep(let s): return "sleep \(s)"
            case .flush: return "flush"
            }
        }
    }

    @Test func pressShapes() {
        #expect(shape(MRPHID.steps(.home)) == ["home down", "home up", "flush"])
        #expect(shape(MRPHID.steps(.home, .hold)) == ["home down", "sleep 1.0", "home up", "flush"])
        #expect(shape(MRPHID.steps(.home, .doubleTap)) == ["home down", "home up", "flush", "home down", "home up", "flush"])
        #expect(shape(MRPHID.steps(.volumeUp, flush: false)) == ["e9 down", "e9 up"])
        #expect(shape(MRPHID.turnOffSteps()) == ["home down", "sleep 1.0", "home up", "flush", "sleep 0.1", "89 down", "89 up", "flush"])
    }

    @Test func everyMessageHasAFreshUppercaseUniqueIdentifier() {
        let a = MRPHID.event(.up, down: true), b = MRPHID.event(.up, down: true)
        #expect(a.uniqueIdentifier != b.uniqueIdentifier)
        #expect(a.uniqueIdentifier == a.uniqueIdentifier.uppercased())
        #expect(UUID(uuidString: a.uniqueIdentifier) != nil)
    }
}

@Suite struct CommandBuilderTests {
    private func state(_ s: MRPPlaybackState, commands: [MRPCommandInfo]) -> MRPPlayerState {
        var st = MRPPlayerState()
        var c = MRPProtocolMessage()
        c.type = .setNowPlayingClient
        c.MRPsetNowPlayingClientMessage.client.bundleIdentifier = "app"
        st.apply(c)
        var m = MRPProtocolMessage()
        m.type = .setState
        m.MRPsetStateMessage.playerPath.client.bundleIdentifier = "app"
        m.MRPsetStateMessage.playerPath.player.identifier = MRPPlayerState.defaultPlayerID
        m.MRPsetStateMessage.playbackState = s
        m.MRPsetStateMessage.playbackQueue.contentItems = [MRPContentItem.with { $0.identifier = "i"; $0.metadata.title = "t" }]
        m.MRPsetStateMessage.supportedCommands.supportedCommands = commands
        st.apply(m)
        return st
    }

    private func info(_ c: MRPCommand, enabled: Bool = true, intervals: [Double] = []) -> MRPCommandInfo {
        .with { $0.command = c; $0.enabled = enabled; $0.preferredIntervals = intervals }
    }

    @Test func playPauseChoice() {
        #expect(MRPCommands.playPauseCommand(state(.playing, commands: [info(.togglePlayPause)])) == .togglePlayPause)
        #expect(MRPCommands.playPauseCommand(state(.playing, commands: [info(.togglePlayPause, enabled: false)])) == .pause)
        #expect(MRPCommands.playPauseCommand(state(.paused, commands: [])) == .play)
        #expect(MRPCommands.playPauseCommand(MRPPlayerState()) == .play)
    }

    @Test func skipIntervals() {
        let withPreferred = state(.playing, commands: [info(.skipForward, intervals: [10, 30])])
        let m = MRPCommands.skip(forward: true, state: withPreferred)
        #expect(m.type == .sendCommand)
        #expect(m.MRPsendCommandMessage.command == .skipForward)
        #expect(m.MRPsendCommandMessage.options.skipInterval == 10)
        #expect(MRPCommands.skip(forward: true, seconds: 42, state: withPreferred).MRPsendCommandMessage.options.skipInterval == 42)
        let back = MRPCommands.skip(forward: false, state: withPreferred)
        #expect(back.MRPsendCommandMessage.command == .skipBackward)
        #expect(back.MRPsendCommandMessage.options.skipInterval == 15)
    }

    @Test func positionShuffleRepeat() throws {
        let p = try MRPCommands.setPosition(123.5)
        #expect(p.MRPsendCommandMessage.command == .seekToPlaybackPosition)
        #expect(p.MRPsendCommandMessage.options.playbackPosition == 123.5)
        #expect(throws: ATVError.self) { try MRPCommands.setPosition(-1) }
        #expect(throws: ATVError.self) { try MRPCommands.setPosition(.nan) }

        let sh = MRPCommands.setShuffle(.albums).MRPsendCommandMessage
        #expect(sh.command == .changeShuffleMode && sh.options.shuffleMode == .albums)
        #expect(sh.options.hasSendOptions && sh.options.sendOptions == 0)
        #expect(MRPCommands.setShuffle(.off).MRPsendCommandMessage.options.shuffleMode == .off)
        #expect(MRPCommands.setShuffle(.songs).MRPsendCommandMessage.options.shuffleMode == .songs)
        let rp = MRPCommands.setRepeat(.track).MRPsendCommandMessage
        #expect(rp.command == .changeRepeatMode && rp.options.repeatMode == .one && rp.options.hasSendOptions)
        #expect(MRPCommands.setRepeat(.all).MRPsendCommandMessage.options.repeatMode == .all)
        #expect(MRPCommands.setRepeat(.off).MRPsendCommandMessage.options.repeatMode == .off)
    }

    @Test func commandOnTheWire() throws {
        // SEND_COMMAND(Pause): type = 1, extension 6 { command = 1 (2) }, then uniqueIdentifier = 85.
        var m = MRPMessages.sendCommand(.pause)
        m.uniqueIdentifier = "U"
        #expect(try MRPCodec.encode(m) == hex("08 01 32 02 08 02 aa 05 01 55"))
    }

    @Test func commandResult() throws {
        var ok = MRPMessages.message(.sendCommandResult)
        ok.MRPsendCommandResultMessage.sendError = 0
        #expect(MRPCommands.resultError(ok, command: .play) == nil)
        var bad = ok
        bad.MRPsendCommandResultMessage.sendError = 2
        #expect(MRPCommands.resultError(bad, command: .play) != nil)
        #expect(MRPCommands.resultError(MRPMessages.generic(), command: .play) != nil)
    }
}

@Suite struct HandshakeMessageTests {
    @Test func deviceInfoCarriesTheReferenceValues() throws {
        let m = try MRPCodec.decode(try MRPCodec.encode(MRPMessages.deviceInfo(.init(pairingID: "PID", name: "swift-atv", osBuild: "18M80"))))
        #expect(m.type == .deviceInfo)
        let d = m.MRPdeviceInfoMessage
        #expect(d.uniqueIdentifier == "PID" && d.name == "swift-atv" && d.systemBuildVersion == "18M80")
        #expect(d.localizedModelName == "iPhone")
        #expect(d.applicationBundleIdentifier == "com.apple.TVRemote" && d.applicationBundleVersion == "344.28")
        #expect(d.protocolVersion == 1 && d.lastSupportedMessageType == 108)
        #expect(d.supportsSystemPairing && d.allowsPairing && d.supportsAcl && d.supportsSharedQueue && d.supportsExtendedMotion)
        #expect(d.sharedQueueVersion == 2 && d.systemMediaApplication == "com.apple.TVMusic")
        #expect(d.deviceClass == .iphone && d.logicalDeviceCount == 1)
    }

    @Test func connectionSequenceMessages() throws {
        #expect(MRPMessages.setConnectionState().MRPsetConnectionStateMessage.state == .connected)
        let cfg = MRPMessages.clientUpdatesConfig().MRPclientUpdatesConfigMessage
        #expect(cfg.artworkUpdates && !cfg.nowPlayingUpdates && cfg.volumeUpdates && cfg.keyboardUpdates && cfg.outputDeviceUpdates)
        #expect(cfg.hasNowPlayingUpdates)
        let kb = MRPMessages.getKeyboardSession()
        #expect(kb.type == .getKeyboardSession && kb.hasMRPgetKeyboardSessionMessage)
        #expect(MRPMessages.generic().type == .generic)
        #expect(MRPMessages.wakeDevice().hasMRPwakeDeviceMessage)
    }

    @Test func cryptoPairingCarrier() {
        let m1 = MRPMessages.cryptoPairing(hex("000100 060101"), isPairSetupM1: true).MRPcryptoPairingMessage
        #expect(Array(m1.pairingData) == hex("000100 060101"))
        #expect(m1.state == 2 && m1.status == 0 && m1.hasIsRetrying && !m1.isRetrying && !m1.isUsingSystemPairing)
        #expect(MRPMessages.cryptoPairing([1]).MRPcryptoPairingMessage.state == 0)
    }

    @Test func volumeAndArtworkRequests() throws {
        let v = try MRPMessages.setVolume(percent: 33, outputDeviceUID: "UID").MRPsetVolumeMessage
        #expect(abs(v.volume - 0.33) < 1e-6 && v.outputDeviceUid == "UID")
        #expect(throws: ATVError.self) { try MRPMessages.setVolume(percent: 101, outputDeviceUID: "UID") }
        let a = MRPMessages.artworkRequest(location: 3, width: 512).MRPplaybackQueueRequestMessage
        #expect(a.location == 3 && a.length == 1 && a.artworkWidth == 512 && a.artworkHeight == -1)
        #expect(a.returnContentItemAssetsInUserCompletion)
        let o = MRPMessages.modifyOutputContext(adding: ["A"]).MRPmodifyOutputContextRequestMessage
        #expect(o.type == .sharedAudioPresentation && o.addingDevices == ["A"] && o.removingDevices.isEmpty)
    }
}
