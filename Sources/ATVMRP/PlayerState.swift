import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import SwiftProtobuf

/// Now-playing state of an MRP device, per client (app) and player. A pure value type:
/// feed it every received message with `apply(_:)`, then read `playing(at:)`, `app` and `feature(_:)`.
package struct MRPPlayerState: Sendable, Equatable {
    /// The player identifier a client uses when none was made active explicitly.
    package static let defaultPlayerID = "MediaRemote-DefaultPlayer"

    package struct Player: Sendable, Equatable {
        package var identifier: String
        package var displayName: String?
        package var playbackState: MRPPlaybackState?
        /// Cocoa seconds (since 2001-01-01) of the last playback state change, if sent.
        package var playbackStateTimestamp: Double?
        package var supportedCommands: [MRPCommandInfo] = []
        package var items: [MRPContentItem] = []
        package var location: Int = 0

        package init(identifier: String, displayName: String? = nil) {
            self.identifier = identifier
            self.displayName = displayName
        }

        /// The item at the queue location, if the queue has one there.
        package var currentItem: MRPContentItem? {
            items.indices.contains(location) ? items[location] : nil
        }

        /// Metadata of the current item, if it has any.
        package var metadata: MRPContentItemMetadata? {
            guard let item = currentItem, item.hasMetadata else { return nil }
            return item.metadata
        }
    }

    package struct Client: Sendable, Equatable {
        package var bundleIdentifier: String
        package var displayName: String?
        package var players: [String: Player] = [:]
        /// Set by SET_NOW_PLAYING_PLAYER.
        package var activePlayerID: String?
        /// Commands that apply when a player does not list a command itself.
        package var defaultSupportedCommands: [MRPCommandInfo] = []

        package init(bundleIdentifier: String, displayName: String? = nil) {
            self.bundleIdentifier = bundleIdentifier
            self.displayName = displayName
        }

        /// The explicitly active player, else the default player, else an empty player.
        package var activePlayer: Player {
            if let id = activePlayerID, let p = players[id] { return p }
            if let p = players[MRPPlayerState.defaultPlayerID] { return p }
            return Player(identifier: activePlayerID ?? "")
        }
    }

    package private(set) var clients: [String: Client] = [:]
    package private(set) var activeClientID: String?

    package init() {}

    package var activeClient: Client? { activeClientID.flatMap { clients[$0] } }

    /// The active client's active player (nil without an active client).
    package var activePlayer: Player? { activeClient?.activePlayer }

    /// The active now-playing app.
    package var app: App? {
        guard let c = activeClient else { return nil }
        return App(name: c.displayName, identifier: c.bundleIdentifier)
    }

    // MARK: - Applying messages

    /// Applies one received message. Messages that do not concern now-playing state are ignored.
    /// - Returns: true if the message changed something the active client/player shows (the caller
    ///   then rebuilds `playing(at:)` and posts a push update if it differs).
    @discardableResult
    package mutating func apply(_ message: MRPProtocolMessage) -> Bool {
        let before = activeSnapshot
        switch message.type {
        case .setState where message.hasMRPsetStateMessage:
            applySetState(message.MRPsetStateMessage)
        case .updateContentItem where message.hasMRPupdateContentItemMessage:
            applyUpdateContentItem(message.MRPupdateContentItemMessage)
        case .setNowPlayingClient where message.hasMRPsetNowPlayingClientMessage:
            let client = message.MRPsetNowPlayingClientMessage.client
            let id = client.bundleIdentifier
            updateClient(client)
            activeClientID = id
        case .setNowPlayingPlayer where message.hasMRPsetNowPlayingPlayerMessage:
            let path = message.MRPsetNowPlayingPlayerMessage.playerPath
            let pid = path.player.identifier
            withPlayer(path) { _ in }
            clients[path.client.bundleIdentifier]?.activePlayerID = pid
        case .updateClient where message.hasMRPupdateClientMessage:
            updateClient(message.MRPupdateClientMessage.client)
        case .removeClient where message.hasMRPremoveClientMessage:
            let id = message.MRPremoveClientMessage.client.bundleIdentifier
            clients[id] = nil
            if activeClientID == id { activeClientID = nil }
        case .removePlayer where message.hasMRPremovePlayerMessage:
            let path = message.MRPremovePlayerMessage.playerPath
            let cid = path.client.bundleIdentifier, pid = path.player.identifier
            clients[cid]?.players[pid] = nil
            if clients[cid]?.activePlayerID == pid { clients[cid]?.activePlayerID = nil }
        default:
            return false
        }
        return activeSnapshot != before
    }

    /// Sets a client's default supported commands (SET_DEFAULT_SUPPORTED_COMMANDS).
    package mutating func setDefaultSupportedCommands(_ commands: [MRPCommandInfo], bundleIdentifier: String) {
        clients[bundleIdentifier, default: Client(bundleIdentifier: bundleIdentifier)].defaultSupportedCommands = commands
    }

    private struct Snapshot: Equatable {
        var clientID: String?
        var client: Client?
    }

    private var activeSnapshot: Snapshot { Snapshot(clientID: activeClientID, client: activeClient) }

    private mutating func updateClient(_ client: MRPNowPlayingClient) {
        let id = client.bundleIdentifier
        var c = clients[id] ?? Client(bundleIdentifier: id)
        if client.hasDisplayName { c.displayName = client.displayName }
        clients[id] = c
    }

    private mutating func withPlayer(_ path: MRPPlayerPath, _ body: (inout Player) -> Void) {
        updateClient(path.client)
        let cid = path.client.bundleIdentifier, pid = path.player.identifier
        var player = clients[cid]?.players[pid] ?? Player(identifier: pid)
        if path.player.hasDisplayName { player.displayName = path.player.displayName }
        body(&player)
        clients[cid]?.players[pid] = player
    }

    private mutating func applySetState(_ s: MRPSetStateMessage) {
        withPlayer(s.playerPath) { p in
            if s.hasPlaybackState { p.playbackState = s.playbackState }
            if s.hasPlaybackStateTimestamp { p.playbackStateTimestamp = s.playbackStateTimestamp }
            if s.hasSupportedCommands { p.supportedCommands = s.supportedCommands.supportedCommands }
            if s.hasPlaybackQueue {
                p.items = s.playbackQueue.contentItems
                p.location = Int(s.playbackQueue.location)
            }
        }
    }

    private mutating func applyUpdateContentItem(_ u: MRPUpdateContentItemMessage) {
        withPlayer(u.playerPath) { p in
            for update in u.contentItems {
                guard let i = p.items.firstIndex(where: { $0.identifier == update.identifier }) else { continue }
                // Protobuf merge: fields present in the update win, nested metadata merges field by field.
                if let bytes: [UInt8] = try? update.serializedBytes() {
                    try? p.items[i].merge(serializedBytes: bytes)
                }
            }
        }
    }

    // MARK: - Reading

    /// The CommandInfo for `command`: the active player's, else the client's default.
    package func commandInfo(_ command: MRPCommand) -> MRPCommandInfo? {
        guard let client = activeClient else { return nil }
        if let c = client.activePlayer.supportedCommands.first(where: { $0.command == command }) { return c }
        return client.defaultSupportedCommands.first(where: { $0.command == command })
    }

    /// The effective device state of the active player.
    package var deviceState: DeviceState {
        guard let player = activePlayer, let state = player.playbackState else { return .idle }
        let metadata = player.metadata
        switch state {
        case .playing:
            let rate = metadata.flatMap { $0.hasPlaybackRate ? $0.playbackRate : nil } ?? 1
            return rate == 0 || rate == 1 ? .playing : .seeking
        case .paused: return metadata == nil ? .idle : .paused
        case .stopped: return .stopped
        case .interrupted: return .loading
        case .seeking: return .seeking
        case .unknown: return .idle
        }
    }

    /// What is playing at `now` on the active player.
    package func playing(at now: Date = Date()) -> Playing {
        let state = deviceState
        var out = Playing(deviceState: state)
        out.shuffle = shuffle
        out.repeat = repeatState
        guard let player = activePlayer, let md = player.metadata else {
            out.explicitHash = activePlayer?.currentItem?.identifier
            return out
        }
        switch md.mediaType {
        case .audio: out.mediaType = .music
        case .video: out.mediaType = .video
        case .unknown: out.mediaType = .unknown
        }
        if md.hasTitle { out.title = md.title }
        if md.hasTrackArtistName { out.artist = md.trackArtistName }
        if md.hasAlbumName { out.album = md.albumName }
        if md.hasGenre { out.genre = md.genre }
        if md.hasDuration { out.totalTime = Self.seconds(md.duration) }
        if md.hasSeriesName { out.seriesName = md.seriesName }
        if md.hasSeasonNumber { out.seasonNumber = Int(md.seasonNumber) }
        if md.hasEpisodeNumber { out.episodeNumber = Int(md.episodeNumber) }
        if md.hasContentIdentifier { out.contentIdentifier = md.contentIdentifier }
        if md.hasITunesStoreIdentifier { out.iTunesStoreIdentifier = Int(md.iTunesStoreIdentifier) }
        if md.hasElapsedTime {
            var elapsed = md.elapsedTime
            let rate = md.hasPlaybackRate ? Double(md.playbackRate) : 1
            if state == .playing, rate != 0, md.hasElapsedTimeTimestamp {
                elapsed += now.timeIntervalSinceReferenceDate - md.elapsedTimeTimestamp
            }
            out.position = Self.seconds(elapsed)
        }
        out.explicitHash = player.currentItem?.identifier
        return out
    }

    /// Shuffle state from the ChangeShuffleMode command (missing → off).
    package var shuffle: ShuffleState {
        switch commandInfo(.changeShuffleMode)?.shuffleMode {
        case .albums: .albums
        case .songs: .songs
        default: .off
        }
    }

    /// Repeat state from the ChangeRepeatMode command (missing → off).
    package var repeatState: RepeatState {
        switch commandInfo(.changeRepeatMode)?.repeatMode {
        case .one: .track
        case .all: .all
        default: .off
        }
    }

    /// Whole seconds, nil for NaN, infinite or out-of-range values (never traps on device input).
    static func seconds(_ value: Double) -> Int? {
        guard value.isFinite, value > -9.0e15, value < 9.0e15 else { return nil }
        return Int(value)
    }

    // MARK: - Features

    /// The state of the features that depend on now-playing state (MRP); nil for features
    /// this type does not decide (navigation, power, volume, output devices, …).
    package func featureState(_ name: FeatureName) -> FeatureState? {
        func has(_ present: (MRPContentItemMetadata) -> Bool) -> FeatureState {
            guard let md = activePlayer?.metadata else { return .unavailable }
            return present(md) ? .available : .unavailable
        }
        func command(_ c: MRPCommand) -> FeatureState {
            guard let info = commandInfo(c), info.enabled else { return .unavailable }
            return .available
        }
        switch name {
        case .title: return has { $0.hasTitle }
        case .artist: return has { $0.hasTrackArtistName }
        case .album: return has { $0.hasAlbumName }
        case .genre: return has { $0.hasGenre }
        case .totalTime: return has { $0.hasDuration }
        case .position: return has { $0.hasElapsedTimeTimestamp }
        case .seriesName: return has { $0.hasSeriesName }
        case .seasonNumber: return has { $0.hasSeasonNumber }
        case .episodeNumber: return has { $0.hasEpisodeNumber }
        case .contentIdentifier: return has { $0.hasContentIdentifier }
        case .iTunesStoreIdentifier: return has { $0.hasITunesStoreIdentifier }
        case .artwork: return has { $0.artworkAvailable }
        case .play: return command(.play)
        case .pause: return command(.pause)
        case .stop: return command(.stop)
        case .next: return command(.nextTrack)
        case .previous: return command(.previousTrack)
        case .setPosition: return command(.seekToPlaybackPosition)
        case .setRepeat, .repeat: return command(.changeRepeatMode)
        case .setShuffle, .shuffle: return command(.changeShuffleMode)
        case .skipForward: return command(.skipForward)
        case .skipBackward: return command(.skipBackward)
        case .playPause:
            if command(.togglePlayPause) == .available { return .available }
            let state = deviceState
            if state == .playing && command(.pause) == .available { return .available }
            if state == .paused && command(.play) == .available { return .available }
            return .unavailable
        case .app: return activeClient == nil ? .unavailable : .available
        default: return nil
        }
    }
}
