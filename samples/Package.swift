// swift-tools-version: 6.1
import Foundation
import PackageDescription

// The README's library example as a package of its own that depends on swift-atv by relative path
// and uses only its `ATV` product, the way an application would. `ReadmeExample/main.swift` is the
// README's example verbatim (scripts/check-readme-example compares them); `Docs/` holds the code of
// the DocC articles in Sources/ATV/ATV.docc, one file per article (scripts/check-docs compares each
// article's code blocks with their regions). scripts/test builds both.

// A dependency by path is known by its directory's name, whatever swift-atv's clone is called.
let swiftATV = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "swift-atv-samples",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(name: "readme-example",
                          dependencies: [.product(name: "ATV", package: swiftATV)],
                          path: "ReadmeExample",
                          swiftSettings: [.swiftLanguageMode(.v6)]),
        // Compiled, never run: each function is an article's code (they need real devices).
        .target(name: "DocsExamples",
                dependencies: [.product(name: "ATV", package: swiftATV)],
                path: "Docs",
                swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
