import ATVTestSupport
import Foundation
import Testing
@testable import ATVAirPlay

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

enum Support {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func tempDir() throws -> URL { try makeTempDir("atv-airplay") }

    /// A 16-bit stereo 44.1 kHz WAV of a quiet ramp (ATVTestSupport's).
    static func makeWAV(seconds: Double, named name: String = "media.wav", in dir: URL) throws -> URL {
        try ATVTestSupport.makeWAV(seconds: seconds, named: name, in: dir)
    }

    /// Waits until `condition` holds (the shared poll with a deadline).
    static func eventually(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        try await ATVTestSupport.eventually(what, timeout: timeout, condition)
    }

    static let fast = AirPlayOptions(pollInterval: .milliseconds(200), startTimeout: .seconds(5), connectTimeout: .seconds(3),
                                     requestTimeout: .seconds(8), playAttempts: 3, retryPause: .milliseconds(100))
}

extension Support {
    static func requireAtvremote() throws -> String { try TestEnv.venvTool("atvremote") }
}
