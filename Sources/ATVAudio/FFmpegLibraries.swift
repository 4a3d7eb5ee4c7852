import ATVCore
import CFFmpeg
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// One FFmpeg library this process runs with (for `atv doctor`).
package struct FFmpegLibrary: Sendable, Equatable {
    /// "libavformat".
    package var name: String
    /// The version the loaded library reports, "59.27.100".
    package var version: String
    /// The major version swift-atv was compiled against; a different one is not ABI-compatible.
    package var builtAgainstMajor: Int
    package var runtimeMajor: Int
    /// The file it was loaded from (from /proc/self/maps), if known.
    package var path: String?

    package var compatible: Bool { runtimeMajor == builtAgainstMajor }
}

package enum FFmpegLibraries {
    /// The four libraries the audio pipeline uses, as loaded now. The binary links them, so a
    /// running process has them; this says which versions and files they are.
    package static func loaded() -> [FFmpegLibrary] {
        // Read to the end: /proc files report size 0, so a size-based read returns nothing.
        let maps = StandardStream.readFile("/proc/self/maps").map { String(decoding: $0, as: UTF8.self) } ?? ""
        func path(_ name: String) -> String? {
            for line in maps.split(separator: "\n") {
                guard let slash = line.firstIndex(of: "/") else { continue }
                let file = String(line[slash...])
                if file.split(separator: "/").last?.hasPrefix(name + ".so") == true { return file }
            }
            return nil
        }
        func library(_ name: String, _ packed: UInt32, _ major: Int32) -> FFmpegLibrary {
            FFmpegLibrary(name: name, version: "\(packed >> 16).\((packed >> 8) & 0xFF).\(packed & 0xFF)",
                          builtAgainstMajor: Int(major), runtimeMajor: Int(packed >> 16), path: path(name))
        }
        return [
            library("libavformat", avformat_version(), LIBAVFORMAT_VERSION_MAJOR),
            library("libavcodec", avcodec_version(), LIBAVCODEC_VERSION_MAJOR),
            library("libavutil", avutil_version(), LIBAVUTIL_VERSION_MAJOR),
            library("libswresample", swresample_version(), LIBSWRESAMPLE_VERSION_MAJOR),
        ]
    }

    /// FFmpeg's own release string, e.g. "5.1.6-0+deb12u1".
    package static var release: String { String(cString: av_version_info()) }
}
