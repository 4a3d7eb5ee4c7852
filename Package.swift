// swift-tools-version: 6.1
import PackageDescription

// CI (scripts/test) sets ATV_WERROR=1: a warning in any of our targets fails the build (the
// flag is ours only; SwiftPM builds dependencies without it).
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]
    + (Context.environment["ATV_WERROR"] == "1" ? [.unsafeFlags(["-warnings-as-errors"])] : [])

let package = Package(
    name: "swift-atv",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ATV", targets: ["ATV"]),
        .executable(name: "atv", targets: ["atv"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // Without its default trait BinaryDelimitedStreams, whose Foundation streams would load full
        // Foundation and ICU into `atv` (issue 17: FoundationEssentials only, scripts/check-imports).
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
        // `swift package generate-documentation --target ATV` (scripts/check-docs); a plugin only:
        // nothing it holds is linked into our products.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // System-library shims (Debian -dev packages).
        .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswresample-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Layer 1: device model, interfaces, storage; audio pipeline.
        .target(name: "ATVCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),
        .target(name: "ATVAudio", dependencies: [
            "CFFmpeg", "ATVCore",
        ], swiftSettings: swift6),

        // Layer 2: auth and discovery.
        .target(name: "ATVAuth", dependencies: [
            "ATVCore", "COpenSSL",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: swift6),
        .target(name: "ATVDiscovery", dependencies: [
            "ATVCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),

        // Layer 2: the PTP clock master (codec, state machine, UDP 319/320 shell).
        .target(name: "ATVPTP", dependencies: [
            "ATVCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),

        // Layer 2: HTTP/RTSP messages, parser, serializer, client connections and server.
        .target(name: "ATVHTTP", dependencies: [
            "ATVCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: swift6),

        // Layer 3: the AirPlay core (features, route, AirPlay 2 connection, timing, data stream).
        .target(name: "ATVAirPlayCore", dependencies: [
            "ATVCore", "ATVAuth", "ATVHTTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),

        // Layer 4: one module per protocol.
        .target(name: "ATVRAOP", dependencies: [
            "ATVCore", "ATVAudio", "ATVAuth", "ATVDiscovery", "ATVHTTP", "ATVAirPlayCore", "ATVPTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: swift6),
        .target(name: "ATVAirPlay", dependencies: [
            "ATVCore", "ATVAuth", "ATVDiscovery", "ATVHTTP", "ATVAirPlayCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .target(name: "ATVMRP", dependencies: [
            "ATVCore", "ATVAuth", "ATVDiscovery", "ATVHTTP", "ATVAirPlayCore",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .target(name: "ATVCompanion", dependencies: [
            "ATVCore", "ATVAuth", "ATVDiscovery",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6),
        .target(name: "ATVDMAP", dependencies: ["ATVCore", "ATVAuth", "ATVDiscovery", "ATVHTTP", .product(name: "Logging", package: "swift-log")], swiftSettings: swift6),
        .target(name: "ATVLog", dependencies: ["ATVCore", "ATVAuth", "ATVCompanion", "ATVDMAP", "ATVMRP"], swiftSettings: swift6),

        // Layer 5: facade, scan / pair / connect.
        .target(name: "ATV", dependencies: [
            "ATVCore", "ATVAudio", "ATVAuth", "ATVDiscovery", "ATVAirPlayCore",
            "ATVRAOP", "ATVAirPlay", "ATVMRP", "ATVCompanion", "ATVDMAP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),

        // Layer 6: virtual devices and the CLI.
        .target(name: "ATVSimulator", dependencies: [
            "ATVCore", "ATVAudio", "ATVHTTP", "ATVAirPlayCore", "ATVRAOP", "ATVAirPlay", "ATVDiscovery", "ATVCompanion", "ATVDMAP", "ATVMRP", "ATVPTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),
        .executableTarget(name: "atv", dependencies: [
            "ATV", "ATVAudio", "ATVAuth", "ATVDiscovery", "ATVAirPlayCore", "ATVRAOP", "ATVSimulator", "ATVCompanion", "ATVMRP", "ATVLog", "ATVPTP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swift6, plugins: ["ATVBuildInfo"]),
        // Writes the git revision `atv --version` prints (scripts/build-info) before each build.
        .plugin(name: "ATVBuildInfo", capability: .buildTool(), path: "Plugins/ATVBuildInfo"),

        // Benchmarks: an executable printing JSON lines.
        .executableTarget(name: "atv-bench", dependencies: ["ATV", "ATVAudio", "ATVAuth", "ATVAirPlayCore", "ATVSimulator", "ATVDiscovery", "CFFmpeg"],
                          path: "Benchmarks/atv-bench", swiftSettings: swift6),

        // Tests (Swift Testing). ATVTestSupport: helpers shared by the test targets only (seeded
        // generator, hex, temp dirs, polling, the one child-process runner, PCM and fixture
        // helpers); no product depends on it.
        .target(name: "ATVTestSupport", dependencies: ["ATVCore"], path: "Tests/ATVTestSupport", swiftSettings: swift6),
        .testTarget(name: "ATVCoreTests", dependencies: ["ATVTestSupport",
            "ATVCore", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),
        .testTarget(name: "ATVAudioTests", dependencies: ["ATVTestSupport", "ATVAudio", "CFFmpeg"], swiftSettings: swift6),
        .testTarget(name: "ATVTests", dependencies: ["ATVTestSupport", "ATV", "ATVAudio", "ATVRAOP", "ATVSimulator", "ATVCompanion", "ATVAuth", "ATVDMAP", "ATVHTTP", "ATVAirPlayCore"], swiftSettings: swift6),
        .testTarget(name: "ATVRAOPTests", dependencies: ["ATVTestSupport",
            "ATVRAOP", "ATVHTTP", "ATVAirPlayCore", "ATVSimulator", "ATVAuth", "ATVPTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ], swiftSettings: swift6),
        .testTarget(name: "ATVDiscoveryTests", dependencies: ["ATVTestSupport", "ATVDiscovery", "ATVAirPlayCore"], swiftSettings: swift6),
        .testTarget(name: "CLITests", dependencies: ["ATVTestSupport", "ATVCore", "atv", "ATVRAOP"], swiftSettings: swift6),
        .testTarget(name: "ATVSimulatorTests", dependencies: ["ATVTestSupport", "ATVSimulator", "ATVHTTP", "ATVAirPlayCore", "ATVPTP", "ATVRAOP"], swiftSettings: swift6),
        .testTarget(name: "ATVAuthTests", dependencies: ["ATVTestSupport", "ATVAuth", "ATVHTTP", "ATVAirPlayCore"], swiftSettings: swift6),
        .testTarget(name: "ATVMRPTests", dependencies: ["ATVTestSupport", "ATVMRP", "ATVCore", "ATVAuth", "ATVAirPlayCore", "ATVSimulator", "ATV"], swiftSettings: swift6),
        .testTarget(name: "ATVCompanionTests", dependencies: ["ATVTestSupport",
            "ATVCompanion", "ATVAuth", "ATVSimulator",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swift6),
        .testTarget(name: "ATVPTPTests", dependencies: ["ATVTestSupport", "ATVPTP"], swiftSettings: swift6),
        .testTarget(name: "ATVLogTests", dependencies: ["ATVTestSupport", "ATVLog"], swiftSettings: swift6),
        .testTarget(name: "ATVDMAPTests", dependencies: ["ATVTestSupport", "ATVDMAP", "ATVSimulator", "ATV"], swiftSettings: swift6),
        .testTarget(name: "ATVAirPlayTests", dependencies: ["ATVTestSupport", "ATVAirPlay", "ATVHTTP", "ATVAirPlayCore", "ATVSimulator", "ATV"], swiftSettings: swift6),
        // Interop: tests that start real peers we did not write (pyatv, shairport-sync, avahi,
        // python-zeroconf) or run in private network namespaces. `swift test --skip InteropTests`
        // runs only the fast targets (README, "Tests").
        .testTarget(name: "InteropTests", dependencies: ["ATVTestSupport",
            "ATV", "ATVCore", "ATVAuth", "ATVHTTP", "ATVAirPlayCore", "ATVAirPlay", "ATVSimulator",
        ], swiftSettings: swift6),
    ]
)

// Coverage-guided fuzzing (`scripts/fuzz`): one libFuzzer executable holding every fuzz target,
// added only when ATV_FUZZ=1 so a normal `swift build` / `swift test` never sees it. It is built
// with `-sanitize=fuzzer` (which supplies `main`) in its own scratch folder, `.build-fuzz`.
if Context.environment["ATV_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "atv-fuzz",
        dependencies: [
            "ATVCore", "ATVAuth", "ATVDiscovery", "ATVHTTP", "ATVAirPlayCore", "ATVRAOP", "ATVAirPlay", "ATVMRP", "ATVCompanion",
            "ATVDMAP", "ATVSimulator", "ATVPTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ],
        path: "Fuzz/Targets", swiftSettings: swift6))
}
