import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the git revision the `atv` tool is built from) before every build,
/// with `scripts/build-info`: no network, and "unknown" when the package is not a git checkout.
/// The file is rewritten only when its text changes, so an unchanged revision rebuilds nothing.
@main
struct ATVBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = context.package.directoryURL.appending(path: "scripts/build-info")
        return [.prebuildCommand(
            displayName: "Recording the git revision of \(target.name)",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [script.path(percentEncoded: false), context.package.directoryURL.path(percentEncoded: false),
                        output.appending(path: "BuildInfo.swift").path(percentEncoded: false)],
            outputFilesDirectory: output)]
    }
}
