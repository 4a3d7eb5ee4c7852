import ATVCore
import ATVHTTP
import FoundationEssentials
import Glibc
import Synchronization

/// Serves one local file over HTTP for the duration of a playback, with Range requests (206,
/// Content-Range, 416), HEAD and `Accept-Ranges: bytes`. Any other path is 404, any other method 405.
package final class AirPlayFileServer: Sendable {
    package struct Request: Sendable, Equatable {
        package var method: String
        package var path: String
        package var range: String?
        package var status: Int
        /// Body bytes sent (0 for HEAD).
        package var bytes: Int
        package var client: String?
    }

    package let path: String
    package let size: Int
    private let server: HTTPServer
    private let log: RequestLog
    /// The URL to give the device.
    package let url: String

    private init(path: String, size: Int, server: HTTPServer, urlPath: String, log: RequestLog) {
        self.path = path
        self.size = size
        self.server = server
        self.log = log
        self.url = server.baseURL + urlPath
    }

    /// Starts serving `path` on `host` (the local address the device reaches us on), any free port.
    package static func start(path: String, host: String, port: Int = 0) async throws -> AirPlayFileServer {
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir else {
            throw ATVError.badInput("\(path): no such file")
        }
        var st = stat()
        guard FileManager.default.isReadableFile(atPath: path), stat(path, &st) == 0 else {
            throw ATVError.badInput("\(path): cannot read it")
        }
        let name = PathName.lastComponent(path)
        let size = Int(st.st_size)
        // RFC 3986's unreserved characters as they are, every other byte of the name's UTF-8 as %XX.
        let urlPath = "/" + name.utf8.map { b -> String in
            let c = Character(Unicode.Scalar(b))
            return b < 0x80 && (c.isLetter || c.isNumber || "-._~".contains(c)) ? String(c) : String(cFormat: "%%%02X", b)
        }.joined()
        let type = contentType(forExtension: PathName.pathExtension(name))
        let log = RequestLog()
        let server = try await HTTPServer.start(host: host, port: port) { request in
            let m = request.message
            var entry = Request(method: m.method, path: m.path, range: m.headers["Range"], status: 0, bytes: 0,
                                client: request.remoteAddress)
            let response = respond(m, urlPath: urlPath, file: path, size: size, type: type)
            entry.status = response.status
            if m.method != "HEAD", case .file(_, _, let length) = response.body { entry.bytes = length }
            let logged = entry
            log.entries.withLock { $0.append(logged) }
            return response
        }
        return AirPlayFileServer(path: path, size: size, server: server, urlPath: urlPath, log: log)
    }

    /// Every request served so far.
    package var requests: [Request] { log.entries.withLock { $0 } }

    package func stop() async { await server.stop() }

    static func respond(_ m: HTTPRequestMessage, urlPath: String, file: String, size: Int, type: String) -> HTTPServerResponse {
        guard m.path == urlPath else { return HTTPServerResponse(status: 404) }
        guard m.method == "GET" || m.method == "HEAD" else {
            return HTTPServerResponse(status: 405, headers: ["Allow": "GET, HEAD"])
        }
        var headers: RTSPHeaders = ["Content-Type": type, "Accept-Ranges": "bytes"]
        switch ByteRangeRequest(header: m.headers["Range"], size: size) {
        case .whole:
            return HTTPServerResponse(status: 200, headers: headers, body: .file(path: file, offset: 0, length: size))
        case .partial(let offset, let length):
            headers.set("Content-Range", "bytes \(offset)-\(offset + length - 1)/\(size)")
            return HTTPServerResponse(status: 206, headers: headers, body: .file(path: file, offset: offset, length: length))
        case .unsatisfiable:
            headers.set("Content-Range", "bytes */\(size)")
            return HTTPServerResponse(status: 416, headers: headers)
        }
    }

    static func contentType(forExtension ext: String) -> String {
        switch ext.lowercased() {
        case "mp4", "m4v": "video/mp4"
        case "mov": "video/quicktime"
        case "m3u8": "application/vnd.apple.mpegurl"
        case "ts": "video/mp2t"
        case "mp3": "audio/mpeg"
        case "m4a", "aac": "audio/mp4"
        case "wav": "audio/wav"
        case "flac": "audio/flac"
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        default: "application/octet-stream"
        }
    }
}

final class RequestLog: Sendable {
    let entries = Mutex<[AirPlayFileServer.Request]>([])
}
