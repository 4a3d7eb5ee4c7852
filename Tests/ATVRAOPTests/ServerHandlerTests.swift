@testable import ATVHTTP
import NIOCore
import NIOEmbedded
import Testing

/// The one RTSP/HTTP server end (`RTSPServerHandler`), which `HTTPServer` and every virtual device
/// use, driven on an EmbeddedChannel: framing by `RTSPParser`, answers in request order,
/// Content-Length rules, 400/413 then close, the after-write hook, keep-alive.
@Suite struct ServerHandlerTests {
    /// A channel whose handler answers each request with `answer`, recording the order of calls.
    private func channel(maxBody: Int = 1024, errorVersion: String = "HTTP/1.1",
                         answer: @escaping @Sendable (RTSPRequest) -> RTSPServerReply) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let loop = channel.eventLoop
        try channel.pipeline.syncOperations.addHandler(
            ATVHTTP.RTSPServerHandler(parser: RTSPParser(maxBodyBytes: maxBody), errorVersion: errorVersion) { request in
                loop.makeSucceededFuture(answer(request))
            })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5000)).wait()
        return channel
    }

    /// Everything written so far, as text.
    private func written(_ channel: EmbeddedChannel) throws -> String {
        var out: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func pipelinedRequestsAreAnsweredInOrderWithLengths() throws {
        let ch = try channel { r in
            var response = RTSPResponse(version: r.version, status: 200)
            response.headers.set("CSeq", r.headers["CSeq"] ?? "-")
            if r.uri == "/body" { response.body = Array("hello".utf8) }
            return RTSPServerReply(response)
        }
        // Two HTTP requests and one RTSP request in one read, the second with a chunked body.
        let input = "GET /empty HTTP/1.1\r\nCSeq: 1\r\n\r\n"
            + "POST /body HTTP/1.1\r\nCSeq: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            + "OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n"
        try ch.writeInbound(ByteBuffer(string: input))
        let text = try written(ch)
        #expect(text == "HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nhello"
                + "RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n")
        #expect(ch.isActive)
    }

    @Test func malformedInputGets400AndTheConnectionCloses() throws {
        let ch = try channel { r in RTSPServerReply(RTSPResponse(version: r.version, status: 200)) }
        try ch.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nno colon here\r\n\r\nGET /next HTTP/1.1\r\n\r\n"))
        #expect(try written(ch) == "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        #expect(!ch.isActive)
    }

    @Test func aBodyOverTheLimitGets413() throws {
        let ch = try channel(maxBody: 10) { r in RTSPServerReply(RTSPResponse(version: r.version, status: 200)) }
        try ch.writeInbound(ByteBuffer(string: "POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n"))
        #expect(try written(ch).hasPrefix("HTTP/1.1 413 "))
        #expect(!ch.isActive)
    }

    @Test func afterWriteRunsOnceTheAnswerIsOutAndCloseEndsReading() throws {
        final class Order: @unchecked Sendable { var steps: [String] = [] }
        let order = Order()
        let ch = try channel { r in
            order.steps.append("answer \(r.uri)")
            return RTSPServerReply(RTSPResponse(version: r.version, status: 200),
                                   afterWrite: { order.steps.append("after \(r.uri)") }, close: r.uri == "/last")
        }
        try ch.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n"))
        #expect(order.steps == ["answer /a", "after /a", "answer /last", "after /last"])
        #expect(try written(ch).components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(!ch.isActive)
    }

    @Test func silentRepliesWriteNothing() throws {
        let ch = try channel(errorVersion: "RTSP/1.0") { r in RTSPServerReply(RTSPResponse(status: 200), silent: true) }
        try ch.writeInbound(ByteBuffer(string: "SET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 9\r\n\r\n"))
        #expect(try written(ch).isEmpty)
        #expect(ch.isActive)
    }

    @Test func httpServerKeepAliveAndHead() {
        let ok = HTTPServerResponse(status: 200, bytes: Array("data".utf8))
        let v11 = HTTPServer.reply(to: RTSPRequest(method: "GET", uri: "/", version: "HTTP/1.1"), ok)
        #expect(!v11.close && v11.response.headers["Connection"] == nil && v11.response.version == "HTTP/1.1")
        var closing = RTSPRequest(method: "GET", uri: "/", version: "HTTP/1.1")
        closing.headers.set("Connection", "Close")
        let closed = HTTPServer.reply(to: closing, ok)
        #expect(closed.close && closed.response.headers["Connection"] == "close")
        let v10 = HTTPServer.reply(to: RTSPRequest(method: "GET", uri: "/", version: "HTTP/1.0"), ok)
        #expect(v10.close && v10.response.version == "HTTP/1.0")
        var kept = RTSPRequest(method: "GET", uri: "/", version: "HTTP/1.0")
        kept.headers.set("Connection", "keep-alive")
        #expect(!HTTPServer.reply(to: kept, ok).close)
        let head = HTTPServer.reply(to: RTSPRequest(method: "HEAD", uri: "/", version: "HTTP/1.1"),
                                    HTTPServerResponse(status: 200, body: .file(path: "/nonexistent", offset: 0, length: 42)))
        #expect(head.headOnly && head.file == .init(path: "/nonexistent", offset: 0, length: 42))
    }

    @Test func headAnswerCarriesTheLengthButNoBody() throws {
        let ch = try channel { r in
            var response = RTSPResponse(version: "HTTP/1.1", status: 200)
            response.body = Array("four".utf8)
            return RTSPServerReply(response, headOnly: r.method == "HEAD")
        }
        try ch.writeInbound(ByteBuffer(string: "HEAD /f HTTP/1.1\r\n\r\n"))
        #expect(try written(ch) == "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    }
}
