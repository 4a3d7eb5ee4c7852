import ATVTestSupport
import ATVCore
import Foundation
import Testing
@testable import ATVMRP

private let music = "com.apple.TVMusic"
private let defaultPlayer = MRPPlayerState.defaultPlayerID

private func path(_ bundle: String, _ player: String) -> MRPPlayerPath {
    var p = MRPPlayerPath()
    p.client.bundleIdentifier = bundle
    p.player.identifier = player
    return p
}

private func setState(_ bundle: String = music, _ player: String = defaultPlayer,
                      state: MRPPlaybackState? = nil, items: [MRPContentItem]? = nil, location: Int32 = 0,
                      commands: [MRPCommandInfo]? = nil) -> MRPProtocolMessage {
    var s = MRPSetStateMessage()
    s.playerPath = path(bundle, player)
    if let state { s.playbackState = state }
    if let items {
        s.playbackQueue.contentItems = items
        s.playbackQueue.location = location
    }
    if let commands { s.supportedCommands.supportedCommands = commands }
    var m = MRPProtocolMessage()
    m.type = .setState
    m.MRPsetStateMessage = s
    return m
}

private func item(_ id: String, _ fill: (inout MRPContentItemMetadata) -> Void = { _ in }) -> MRPContentItem {
    var i = MRPContentItem()
    i.identifier = id
    var md = MRPContentItemMetadata()
    fill(&md)
    i.metadata = md
    return i
}

private func nowPlayingClient(_ bundle: String, name: String? = nil) -> MRPProtocolMessage {
    var m = MRPProtocolMessage()
    m.type = .setNowPlayingClient
    m.MRPsetNowPlayingClientMessage.client.bundleIdentifier = bundle
    if let name { m.MRPsetNowPlayingClientMessage.client.displayName = name }
    return m
}

private func nowPlayingPlayer(_ bundle: String, _ player: String) -> MRPProtocolMessage {
    var m = MRPProtocolMessage()
    m.type = .setNowPlayingPlayer
    m.MRPsetNowPlayingPlayerMessage.playerPath = path(bundle, player)
    return m
}

private func command(_ c: MRPCommand, enabled: Bool = true, _ fill: (inout MRPCommandInfo) -> Void = { _ in }) -> MRPCommandInfo {
    var i = MRPCommandInfo()
    i.command = c
    i.enabled = enabled
    fill(&i)
    return i
}

/// A Cocoa timestamp and the Date it stands for.
private let cocoaT: Double = 785_000_000
private let dateT = Date(timeIntervalSinceReferenceDate: cocoaT)

@Suite struct PlayerStateTests {
    @Test func emptyStateIsIdle() {
        let s = MRPPlayerState()
        let p = s.playing(at: dateT)
        #expect(p.deviceState == .idle)
        #expect(p.mediaType == .unknown)
        #expect(p.title == nil && p.position == nil && p.totalTime == nil)
        #expect(p.shuffle == .off && p.repeat == .off)
        #expect(s.app == nil)
        #expect(s.featureState(.app) == .unavailable)
        #expect(s.featureState(.title) == .unavailable)
        #expect(s.featureState(.play) == .unavailable)
        #expect(s.featureState(.up) == nil)
        #expect(s.featureState(.volume) == nil)
    }

    @Test func handBuiltVectorThroughTheCodec() throws {
        var s = MRPPlayerState()
        do { let changed = s.apply(nowPlayingClient(music, name: "Music")); #expect(changed) }
        do { let changed = s.apply(try MRPCodec.decode(handBuiltSetState)); #expect(changed) }
        let p = s.playing(at: dateT)
        #expect(p.deviceState == .playing)
        #expect(p.mediaType == .music)
        #expect(p.title == "Title")
        #expect(p.artist == "Artist")
        #expect(p.album == "Album")
        #expect(p.genre == nil)
        #expect(p.totalTime == 300)
        // No elapsedTimeTimestamp in the vector: position is the plain elapsed time.
        #expect(p.position == 10)
        #expect(p.hash == "id-1")
        #expect(s.app == App(name: "Music", identifier: music))
        #expect(s.featureState(.position) == .unavailable)
        #expect(s.featureState(.totalTime) == .available)
    }

    @Test func sequenceOrderDoesNotMatter() {
        // SET_STATE before SET_NOW_PLAYING_CLIENT: the state is kept and shows once active.
        var s = MRPPlayerState()
        s.apply(setState(state: .paused, items: [item("a") { $0.title = "A" }]))
        #expect(s.playing(at: dateT).title == nil)
        s.apply(nowPlayingClient(music))
        #expect(s.playing(at: dateT).title == "A")
        #expect(s.playing(at: dateT).deviceState == .paused)
    }

    @Test func allFieldsMapped() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient("com.example.tv"))
        s.apply(setState("com.example.tv", state: .paused, items: [item("episode-7") {
            $0.title = "Pilot"
            $0.trackArtistName = "Someone"
            $0.albumName = "Season One"
            $0.genre = "Drama"
            $0.duration = 2712.9
            $0.elapsedTime = 61.7
            $0.elapsedTimeTimestamp = cocoaT
            $0.seriesName = "The Show"
            $0.seasonNumber = 1
            $0.episodeNumber = 7
            $0.contentIdentifier = "cid-123"
            $0.iTunesStoreIdentifier = 1_234_567_890_123
            $0.mediaType = .video
            $0.artworkAvailable = true
        }]))
        let p = s.playing(at: dateT.addingTimeInterval(1000))
        #expect(p == Playing(mediaType: .video, deviceState: .paused, title: "Pilot", artist: "Someone",
                             album: "Season One", genre: "Drama", totalTime: 2712, position: 61, shuffle: .off,
                             repeat: .off, seriesName: "The Show", seasonNumber: 1, episodeNumber: 7,
                             contentIdentifier: "cid-123", iTunesStoreIdentifier: 1_234_567_890_123,
                             hash: "episode-7"))
        for f: FeatureName in [.title, .artist, .album, .genre, .totalTime, .position, .seriesName,
                               .seasonNumber, .episodeNumber, .contentIdentifier, .iTunesStoreIdentifier, .artwork, .app] {
            #expect(s.featureState(f) == .available, "\(f)")
        }
    }

    @Test func positionAdvancesOnlyWhilePlaying() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        let song = item("s") {
            $0.duration = 200
            $0.elapsedTime = 10
            $0.elapsedTimeTimestamp = cocoaT
            $0.playbackRate = 1
        }
        s.apply(setState(state: .playing, items: [song]))
        #expect(s.playing(at: dateT.addingTimeInterval(5.5)).position == 15)
        #expect(s.playing(at: dateT.addingTimeInterval(500)).position == 200)   // clamped to total
        #expect(s.playing(at: dateT.addingTimeInterval(-50)).position == 0)     // clamped to 0
        s.apply(setState(state: .paused))
        #expect(s.playing(at: dateT.addingTimeInterval(5.5)).position == 10)
        #expect(s.playing(at: dateT.addingTimeInterval(5.5)).deviceState == .paused)
    }

    @Test func deviceStateMapping() {
        func state(_ ps: MRPPlaybackState?, rate: Float? = nil, metadata: Bool = true) -> DeviceState {
            var s = MRPPlayerState()
            s.apply(nowPlayingClient(music))
            let items = metadata ? [item("x") { if let rate { $0.playbackRate = rate } }] : []
            s.apply(setState(state: ps, items: items))
            return s.playing(at: dateT).deviceState
        }
        #expect(state(nil) == .idle)
        #expect(state(.unknown) == .idle)
        #expect(state(.playing) == .playing)
        #expect(state(.playing, rate: 1) == .playing)
        #expect(state(.playing, rate: 0) == .playing)
        #expect(state(.playing, rate: 2) == .seeking)
        #expect(state(.playing, rate: -1) == .seeking)
        #expect(state(.paused) == .paused)
        #expect(state(.paused, metadata: false) == .idle)
        #expect(state(.stopped) == .stopped)
        #expect(state(.interrupted) == .loading)
        #expect(state(.seeking) == .seeking)
    }

    @Test func badNumbersNeverTrap() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(state: .playing, items: [item("n") {
            $0.duration = .nan
            $0.elapsedTime = .infinity
            $0.elapsedTimeTimestamp = -.infinity
        }]))
        let p = s.playing(at: dateT)
        #expect(p.totalTime == nil)
        #expect(p.position == nil)
        s.apply(setState(state: .playing, items: [item("n") { $0.duration = 1e300; $0.elapsedTime = -1e300 }]))
        #expect(s.playing(at: dateT).totalTime == nil)
        // A queue location past the end means no current item.
        s.apply(setState(state: .playing, items: [item("a") { $0.title = "A" }], location: 5))
        #expect(s.playing(at: dateT).title == nil)
        s.apply(setState(state: .playing, items: [item("a") { $0.title = "A" }], location: -1))
        #expect(s.playing(at: dateT).title == nil)
    }

    @Test func queueLocationSelectsTheItem() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(state: .playing, items: [item("a") { $0.title = "A" }, item("b") { $0.title = "B" }], location: 1))
        #expect(s.playing(at: dateT).title == "B")
        #expect(s.playing(at: dateT).hash == "b")
    }

    @Test func updateContentItemMergesMetadata() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(state: .playing, items: [item("a") { $0.title = "Old"; $0.trackArtistName = "Artist" }]))
        var m = MRPProtocolMessage()
        m.type = .updateContentItem
        m.MRPupdateContentItemMessage.playerPath = path(music, defaultPlayer)
        m.MRPupdateContentItemMessage.contentItems = [item("a") { $0.title = "New"; $0.artworkAvailable = true },
                                                     item("unknown") { $0.title = "Ignored" }]
        do { let changed = s.apply(m); #expect(changed) }
        let p = s.playing(at: dateT)
        #expect(p.title == "New")
        #expect(p.artist == "Artist")
        #expect(s.featureState(.artwork) == .available)
        #expect(s.activePlayer?.items.count == 1)
    }

    @Test func activePlayerSelection() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(music, "other", state: .playing, items: [item("o") { $0.title = "Other" }]))
        // Neither set explicitly nor a default player: an empty player.
        #expect(s.playing(at: dateT).title == nil)
        #expect(s.playing(at: dateT).deviceState == .idle)
        s.apply(setState(music, defaultPlayer, state: .paused, items: [item("d") { $0.title = "Default" }]))
        #expect(s.playing(at: dateT).title == "Default")
        s.apply(nowPlayingPlayer(music, "other"))
        #expect(s.playing(at: dateT).title == "Other")
        #expect(s.playing(at: dateT).deviceState == .playing)
        // Removing the active player falls back to the default one.
        var rm = MRPProtocolMessage()
        rm.type = .removePlayer
        rm.MRPremovePlayerMessage.playerPath = path(music, "other")
        do { let changed = s.apply(rm); #expect(changed) }
        #expect(s.playing(at: dateT).title == "Default")
        #expect(s.activeClient?.players["other"] == nil)
    }

    @Test func clientUpdatesAndRemoval() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        #expect(s.app == App(name: nil, identifier: music))
        var up = MRPProtocolMessage()
        up.type = .updateClient
        up.MRPupdateClientMessage.client.bundleIdentifier = music
        up.MRPupdateClientMessage.client.displayName = "Music"
        do { let changed = s.apply(up); #expect(changed) }
        #expect(s.app == App(name: "Music", identifier: music))
        s.apply(setState(state: .playing, items: [item("a") { $0.title = "A" }]))
        var rm = MRPProtocolMessage()
        rm.type = .removeClient
        rm.MRPremoveClientMessage.client.bundleIdentifier = music
        do { let changed = s.apply(rm); #expect(changed) }
        #expect(s.app == nil)
        #expect(s.clients[music] == nil)
        #expect(s.playing(at: dateT).deviceState == .idle)
        #expect(s.featureState(.app) == .unavailable)
    }

    @Test func applyReportsOnlyChangesToTheActivePlayer() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        do { let changed = s.apply(setState(state: .playing)); #expect(changed) }
        // Same state again: nothing changed.
        do { let changed = s.apply(setState(state: .playing)); #expect(!changed) }
        // Another client's player: stored, but not the active one.
        do { let changed = s.apply(setState("com.other", defaultPlayer, state: .paused)); #expect(!changed) }
        #expect(s.clients["com.other"]?.players[defaultPlayer]?.playbackState == .paused)
        // A non-player message is ignored.
        var other = MRPProtocolMessage()
        other.type = .deviceInfo
        other.MRPdeviceInfoMessage.name = "x"
        do { let changed = s.apply(other); #expect(!changed) }
        // A type without its inner message is ignored.
        var empty = MRPProtocolMessage()
        empty.type = .setState
        do { let changed = s.apply(empty); #expect(!changed) }
    }

    @Test func shuffleRepeatAndCommandFeatures() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(state: .playing, items: [item("a")], commands: [
            command(.pause),
            command(.play, enabled: false),
            command(.nextTrack),
            command(.changeShuffleMode) { $0.shuffleMode = .songs },
            command(.changeRepeatMode) { $0.repeatMode = .one },
            command(.skipForward) { $0.preferredIntervals = [10] },
        ]))
        let p = s.playing(at: dateT)
        #expect(p.shuffle == .songs)
        #expect(p.repeat == .track)
        #expect(s.featureState(.pause) == .available)
        #expect(s.featureState(.play) == .unavailable)           // present but disabled
        #expect(s.featureState(.previous) == .unavailable)       // absent
        #expect(s.featureState(.next) == .available)
        #expect(s.featureState(.shuffle) == .available)
        #expect(s.featureState(.setShuffle) == .available)
        #expect(s.featureState(.repeat) == .available)
        #expect(s.featureState(.setRepeat) == .available)
        #expect(s.featureState(.skipForward) == .available)
        #expect(s.featureState(.skipBackward) == .unavailable)
        #expect(s.featureState(.setPosition) == .unavailable)
        #expect(s.featureState(.stop) == .unavailable)
        // Playing and Pause enabled → PlayPause available without TogglePlayPause.
        #expect(s.featureState(.playPause) == .available)
        s.apply(setState(state: .paused))
        // Paused but Play disabled → unavailable.
        #expect(s.featureState(.playPause) == .unavailable)
        s.apply(setState(commands: [command(.togglePlayPause), command(.changeRepeatMode) { $0.repeatMode = .all }]))
        #expect(s.featureState(.playPause) == .available)
        #expect(s.playing(at: dateT).repeat == .all)
        #expect(s.playing(at: dateT).shuffle == .off)            // ChangeShuffleMode gone → off
    }

    @Test func clientDefaultCommandsApplyWhenThePlayerHasNone() {
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        s.apply(setState(state: .playing, commands: [command(.pause)]))
        s.setDefaultSupportedCommands([command(.play), command(.pause, enabled: false)], bundleIdentifier: music)
        #expect(s.featureState(.play) == .available)
        #expect(s.featureState(.pause) == .available)            // player's own entry wins
        #expect(s.commandInfo(.pause)?.enabled == true)
    }

    @Test func fuzzedMessagesNeverTrap() throws {
        let seed = TestSeed.value(default: 77)
        var rng = SplitMix64(seed: seed)
        var s = MRPPlayerState()
        s.apply(nowPlayingClient(music))
        var applied = 0
        for _ in 0..<3000 {
            var bytes = handBuiltSetState
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            guard let m = try? MRPCodec.decode(bytes) else { continue }
            s.apply(m)
            _ = s.playing(at: dateT)
            for f in FeatureName.allCases { _ = s.featureState(f) }
            applied += 1
        }
        #expect(applied > 0, "seed \(seed)")
        // The state is still usable: the intact message afterwards gives its now-playing fields.
        s.apply(nowPlayingClient(music))
        s.apply(try MRPCodec.decode(handBuiltSetState))
        let p = s.playing(at: dateT)
        #expect(p.title == "Title" && p.album == "Album" && p.artist == "Artist", "seed \(seed): \(p)")
    }
}
