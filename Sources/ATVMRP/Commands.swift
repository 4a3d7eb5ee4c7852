import ATVCore

/// Playback commands: which SEND_COMMAND to send for a user action, given the state.
package enum MRPCommands {
    /// Skip interval when neither the caller nor the device gives one.
    package static let defaultSkipInterval: Double = 15

    /// Seconds to skip: explicit, else the command's first preferred interval, else 15.
    package static func skipInterval(explicit: Double?, info: MRPCommandInfo?) -> Double {
        if let explicit { return explicit }
        if let first = info?.preferredIntervals.first, first.isFinite, first > 0 { return first }
        return defaultSkipInterval
    }

    /// The command for play/pause: TogglePlayPause if enabled, else Pause while playing, else Play.
    package static func playPauseCommand(_ state: MRPPlayerState) -> MRPCommand {
        if state.commandInfo(.togglePlayPause)?.enabled == true { return .togglePlayPause }
        return state.deviceState == .playing ? .pause : .play
    }

    package static func skip(forward: Bool, seconds: Double? = nil, state: MRPPlayerState) -> MRPProtocolMessage {
        let command: MRPCommand = forward ? .skipForward : .skipBackward
        var options = MRPCommandOptions()
        options.skipInterval = Float(skipInterval(explicit: seconds, info: state.commandInfo(command)))
        return MRPMessages.sendCommand(command, options: options)
    }

    package static func setPosition(_ seconds: Double) throws(ATVError) -> MRPProtocolMessage {
        guard seconds.isFinite, seconds >= 0 else { throw ATVError.invalidValue("position \(seconds) must be ≥ 0 seconds") }
        var options = MRPCommandOptions()
        options.playbackPosition = seconds
        return MRPMessages.sendCommand(.seekToPlaybackPosition, options: options)
    }

    package static func setShuffle(_ shuffle: ShuffleState) -> MRPProtocolMessage {
        var options = MRPCommandOptions()
        options.sendOptions = 0
        options.shuffleMode = switch shuffle {
        case .off: .off
        case .albums: .albums
        case .songs: .songs
        }
        return MRPMessages.sendCommand(.changeShuffleMode, options: options)
    }

    package static func setRepeat(_ repeatState: RepeatState) -> MRPProtocolMessage {
        var options = MRPCommandOptions()
        options.sendOptions = 0
        options.repeatMode = switch repeatState {
        case .off: .off
        case .track: .one
        case .all: .all
        }
        return MRPMessages.sendCommand(.changeRepeatMode, options: options)
    }

    /// The error a SEND_COMMAND_RESULT reports, nil on success.
    package static func resultError(_ reply: MRPProtocolMessage, command: MRPCommand) -> ATVError? {
        guard reply.type == .sendCommandResult, reply.hasMRPsendCommandResultMessage else {
            return .protocolError("expected SEND_COMMAND_RESULT for \(command), got \(reply.type)")
        }
        let r = reply.MRPsendCommandResultMessage
        guard r.sendError != 0 else { return nil }
        return .playbackError("device refused \(command) (sendError \(r.sendError), status \(r.handlerReturnStatus))")
    }
}
