// `atv play --to X`, `atv pause …`, `atv up …`: every button of `atv remote` is also a top-level
// command (as in atvremote), with exactly the same options (`RemoteOptions`) and the same code.
import ArgumentParser

protocol ButtonName { static var button: Remote.Button { get } }

struct ButtonShortcut<B: ButtonName>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: B.button.rawValue,
                             abstract: "Same as `atv remote \(B.button.rawValue)` (takes the same options).",
                             discussion: """
                             Examples:
                               atv \(B.button.rawValue) --to "Living Room"
                               atv \(B.button.rawValue) --host 192.168.1.20 --json
                             """,
                             shouldDisplay: false)
    }

    @OptionGroup var options: RemoteOptions

    func run() async throws { try await runRemote(B.button, options) }
}

enum UpButton: ButtonName { static let button = Remote.Button.up }
enum DownButton: ButtonName { static let button = Remote.Button.down }
enum LeftButton: ButtonName { static let button = Remote.Button.left }
enum RightButton: ButtonName { static let button = Remote.Button.right }
enum SelectButton: ButtonName { static let button = Remote.Button.select }
enum MenuButton: ButtonName { static let button = Remote.Button.menu }
enum HomeButton: ButtonName { static let button = Remote.Button.home }
enum HomeHoldButton: ButtonName { static let button = Remote.Button.homeHold }
enum TopMenuButton: ButtonName { static let button = Remote.Button.topMenu }
enum PlayButton: ButtonName { static let button = Remote.Button.play }
enum PauseButton: ButtonName { static let button = Remote.Button.pause }
enum PlayPauseButton: ButtonName { static let button = Remote.Button.playPause }
enum StopButton: ButtonName { static let button = Remote.Button.stop }
enum NextButton: ButtonName { static let button = Remote.Button.next }
enum PreviousButton: ButtonName { static let button = Remote.Button.previous }
enum SkipForwardButton: ButtonName { static let button = Remote.Button.skipForward }
enum SkipBackwardButton: ButtonName { static let button = Remote.Button.skipBackward }
enum ChannelUpButton: ButtonName { static let button = Remote.Button.channelUp }
enum ChannelDownButton: ButtonName { static let button = Remote.Button.channelDown }
enum ScreensaverButton: ButtonName { static let button = Remote.Button.screensaver }
enum GuideButton: ButtonName { static let button = Remote.Button.guide }
enum ControlCenterButton: ButtonName { static let button = Remote.Button.controlCenter }
enum VolumeUpButton: ButtonName { static let button = Remote.Button.volumeUp }
enum VolumeDownButton: ButtonName { static let button = Remote.Button.volumeDown }

/// The shortcut commands, registered next to the others in `ATVCommand`.
let buttonShortcuts: [ParsableCommand.Type] = [
    ButtonShortcut<UpButton>.self, ButtonShortcut<DownButton>.self, ButtonShortcut<LeftButton>.self,
    ButtonShortcut<RightButton>.self, ButtonShortcut<SelectButton>.self, ButtonShortcut<MenuButton>.self,
    ButtonShortcut<HomeButton>.self, ButtonShortcut<HomeHoldButton>.self, ButtonShortcut<TopMenuButton>.self,
    ButtonShortcut<PlayButton>.self, ButtonShortcut<PauseButton>.self, ButtonShortcut<PlayPauseButton>.self,
    ButtonShortcut<StopButton>.self, ButtonShortcut<NextButton>.self, ButtonShortcut<PreviousButton>.self,
    ButtonShortcut<SkipForwardButton>.self, ButtonShortcut<SkipBackwardButton>.self,
    ButtonShortcut<ChannelUpButton>.self, ButtonShortcut<ChannelDownButton>.self,
    ButtonShortcut<ScreensaverButton>.self, ButtonShortcut<GuideButton>.self, ButtonShortcut<ControlCenterButton>.self,
    ButtonShortcut<VolumeUpButton>.self, ButtonShortcut<VolumeDownButton>.self,
]
