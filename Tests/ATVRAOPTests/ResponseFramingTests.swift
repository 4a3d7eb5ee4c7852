import ATVCore
@testable import ATVHTTP
import Testing

/// How the shared RTSP/HTTP parser frames answers whose length is not given by Content-Length
/// (issue 14 item 4): pyatv's rule and RFC 9112, as byte vectors.
@Suite struct ResponseFramingTests {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func httpOKWithoutLengthOnAKeepAliveConnectionHasAnEmptyBody() throws {
        var p = RTSPParser()
        // The answer a device gave to POST /play, then (on the same connection) the next answer.
        p.append(bytes("HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n"))
        let first = try #require(try p.nextResponse())
        #expect(first.status == 200 && first.body.isEmpty && first.version == "HTTP/1.1")
        #expect(try p.nextResponse() == nil)
        p.append(bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))
        #expect(try p.nextResponse()?.body == bytes("abc"))
        #expect(p.bufferedByteCount == 0)
    }

    @Test func answersToHEADHaveNoBody() throws {
        var p = RTSPParser()
        p.append(bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        let head = try #require(try p.nextMessage(bodilessResponse: true))
        guard case .response(let r) = head else { Issue.record("not a response"); return }
        #expect(r.headers["Content-Length"] == "100" && r.body.isEmpty)
        #expect(try p.nextResponse()?.body == bytes("ok"))
    }

    @Test func rtspWithoutLengthHasAnEmptyBodyEvenWithConnectionClose() throws {
        var p = RTSPParser()
        p.append(bytes("RTSP/1.0 200 OK\r\nCSeq: 1\r\nConnection: close\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n"))
        #expect(try p.nextResponse()?.cseq == 1)
        #expect(try p.nextResponse()?.cseq == 2)
    }

    @Test func httpWithoutLengthThatClosesRunsToTheEnd() throws {
        for head in ["HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n"] {
            var p = RTSPParser()
            p.append(bytes(head + "part one, "))
            #expect(try p.nextResponse() == nil, "\(head): waits for the close")
            p.append(bytes("part two"))
            let r = try #require(try p.endOfStream(), "\(head)")
            #expect(r == .response(RTSPResponse(version: head.hasPrefix("HTTP/1.0") ? "HTTP/1.0" : "HTTP/1.1", status: 200, reason: "OK",
                                                headers: head.contains("close") ? ["Connection": "close"] : [:],
                                                body: bytes("part one, part two"))))
            #expect(try p.endOfStream() == nil)
        }
        // HTTP/1.0 with keep-alive, and statuses that never have a body: empty at once.
        var p = RTSPParser()
        p.append(bytes("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
        #expect(try p.nextResponse()?.body == [])
        #expect(try p.nextResponse()?.status == 204)
    }

    @Test func chunkedBodiesAreDecodedAcrossAppends() throws {
        let wire = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        // Every split point: the same two answers.
        for cut in 0 ... wire.count {
            var p = RTSPParser()
            var out: [RTSPResponse] = []
            p.append(wire[..<cut])
            while let r = try p.nextResponse() { out.append(r) }
            p.append(wire[cut...])
            while let r = try p.nextResponse() { out.append(r) }
            #expect(out.map(\.status) == [200, 404], "cut \(cut)")
            #expect(out.first?.body == bytes("hello, world"), "cut \(cut)")
        }
    }

    @Test func malformedChunksAndUnknownCodingsAreProtocolErrors() {
        for wire in ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"] {
            var p = RTSPParser()
            p.append(bytes(wire))
            #expect(throws: ATVError.self, "\(wire.debugDescription)") { _ = try p.nextResponse() }
        }
        var big = RTSPParser(maxBodyBytes: 8)
        big.append(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n"))
        #expect(throws: ATVError.self) { _ = try big.nextResponse() }
    }

    @Test func garbageIsKnownFromItsFirstBytes() {
        var p = RTSPParser()
        #expect(p.canBeginResponse())
        p.append(bytes("\r\nHT"))
        #expect(p.canBeginResponse() && p.canBeginResponse(["HTTP/"]) && !p.canBeginResponse(["RTSP/"]))
        p.append(bytes("TP/1.1 200"))
        #expect(p.canBeginResponse(["HTTP/"]))
        var g = RTSPParser()
        g.append([0x8F, 0x01, 0x22])
        #expect(!g.canBeginResponse())
        var r = RTSPParser()
        r.append(bytes("GET / HTTP/1.1\r\n"))  // a request is not an answer
        #expect(!r.canBeginResponse())
    }
}
