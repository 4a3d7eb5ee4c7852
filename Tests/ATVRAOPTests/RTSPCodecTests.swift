import ATVTestSupport
import ATVCore
@testable import ATVHTTP
import Testing

@Suite struct RTSPCodecTests {
    @Test func headersAreOrderedAndCaseInsensitive() {
        var h: RTSPHeaders = ["CSeq": "3", "Session": "ABC"]
        #expect(h["cseq"] == "3")
        #expect(h["SESSION"] == "ABC")
        h.add("X-Thing", "1")
        h.add("x-thing", "2")
        #expect(h.values(for: "X-THING") == ["1", "2"])
        h.set("x-Thing", "3")
        #expect(h.values(for: "X-Thing") == ["3"])
        #expect(h.fields.map(\.name) == ["CSeq", "Session", "X-Thing"])
        h["Session"] = nil
        #expect(h["Session"] == nil)
        #expect(h.cseq == 3)
    }

    @Test func serializeRequestExactBytes() {
        let req = RTSPRequest(method: "SET_PARAMETER", uri: "rtsp://127.0.0.1/42",
                              headers: ["CSeq": "4", "Content-Type": "text/parameters", "Content-Length": "999"],
                              body: Array("volume: -20.1\r\n".utf8))
        let text = String(decoding: req.serialized, as: UTF8.self)
        #expect(text == "SET_PARAMETER rtsp://127.0.0.1/42 RTSP/1.0\r\nCSeq: 4\r\nContent-Type: text/parameters\r\nContent-Length: 15\r\n\r\nvolume: -20.1\r\n")
    }

    @Test func serializeResponseWithoutBodyHasNoContentLength() {
        let res = RTSPResponse(status: 200, headers: ["CSeq": "0", "Audio-Jack-Status": "connected; type=analog"])
        #expect(String(decoding: res.serialized, as: UTF8.self) == "RTSP/1.0 200 OK\r\nCSeq: 0\r\nAudio-Jack-Status: connected; type=analog\r\n\r\n")
    }

    @Test func roundTripBothDirections() throws {
        let req = RTSPRequest(method: "ANNOUNCE", uri: "rtsp://10.0.0.1/1", headers: ["CSeq": "1", "Content-Type": "application/sdp"],
                              body: Array("v=0\r\n".utf8))
        let res = RTSPResponse(status: 401, headers: ["CSeq": "1", "WWW-Authenticate": "Digest realm=\"raop\", nonce=\"n\""])
        var p = RTSPParser()
        p.append(req.serialized)
        p.append(res.serialized)
        var expectedReq = req
        expectedReq.headers.add("Content-Length", "5")
        #expect(try p.nextRequest() == expectedReq)
        let parsed = try #require(try p.nextResponse())
        #expect(parsed.status == 401 && parsed.reason == "Unauthorized" && parsed.headers["www-authenticate"] == "Digest realm=\"raop\", nonce=\"n\"")
        #expect(try p.nextMessage() == nil)
        #expect(p.bufferedByteCount == 0)
    }

    @Test func partialInputByteByByte() throws {
        let wire = Array("RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 1\r\nTransport: RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002\r\nContent-Length: 4\r\n\r\nabcdHTTP/1.1 404 Not Found\r\nCSeq: 3\r\n\r\n".utf8)
        var p = RTSPParser()
        var got: [RTSPResponse] = []
        for b in wire {
            p.append([b])
            while let r = try p.nextResponse() { got.append(r) }
        }
        #expect(got.count == 2)
        #expect(got[0].body == Array("abcd".utf8))
        #expect(got[0].headers["transport"]?.hasSuffix("timing_port=6002") == true)
        #expect(got[1].version == "HTTP/1.1" && got[1].status == 404 && got[1].reason == "Not Found" && got[1].cseq == 3)
    }

    @Test func bareLFAndHTTPRequest() throws {
        var p = RTSPParser()
        p.append(Array("POST /feedback HTTP/1.1\nCSeq: 9\n\n".utf8))
        let r = try #require(try p.nextRequest())
        #expect(r.method == "POST" && r.uri == "/feedback" && r.version == "HTTP/1.1" && r.cseq == 9 && r.body.isEmpty)
    }

    @Test func limitsAreEnforced() {
        var p = RTSPParser()
        p.append([UInt8](repeating: 0x41, count: 70_000))
        #expect(throws: ATVError.self) { try p.nextMessage() }

        var q = RTSPParser()
        q.append(Array("RTSP/1.0 200 OK\r\nContent-Length: 16777217\r\n\r\n".utf8))
        #expect(throws: ATVError.self) { try q.nextMessage() }

        var r = RTSPParser()
        r.append(Array("RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n".utf8))
        #expect(throws: ATVError.self) { try r.nextMessage() }

        var s = RTSPParser()
        s.append(Array("RTSP/1.0 200 OK\r\nContent-Length: 16777216\r\n\r\n".utf8))
        #expect((try? s.nextMessage()) == .some(nil))  // allowed, waiting for the body
    }

    @Test func wrongKindAndMalformedStartLines() {
        for bad in ["GET /info\r\n\r\n", "RTSP/1.0 abc OK\r\n\r\n", "hello\r\n\r\n", "RTSP/1.0 200 OK\r\nno colon here\r\n\r\n"] {
            var p = RTSPParser()
            p.append(Array(bad.utf8))
            #expect(throws: ATVError.self, "\(bad)") { try p.nextMessage() }
        }
        var p = RTSPParser()
        p.append(Array("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".utf8))
        #expect(throws: ATVError.self) { try p.nextResponse() }
    }

    @Test func fuzzNeverCrashes() {
        var rng = SplitMix64(seed: 0xA1B2)
        let seeds = [
            "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc",
            "ANNOUNCE rtsp://1/2 RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nv=0\r\n",
        ].map { Array($0.utf8) }
        var messages = 0
        for i in 0..<3000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = seeds[i % 4 / 2 == 0 ? 0 : 1]
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: at)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    }
                }
            }
            var p = RTSPParser(maxHeaderBytes: 256, maxBodyBytes: 1024)
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...40, using: &rng))
                p.append(bytes[start..<end])
                start = end
                do {
                    while try p.nextMessage() != nil { messages += 1 }
                } catch {
                    #expect((error as? ATVError)?.isProtocolError == true)
                    break
                }
            }
        }
        #expect(messages > 0)
    }
}

@Suite struct TransportTests {
    @Test func parseAndFormat() {
        let t = RTSPTransport(parsing: "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002")
        #expect(t.profile == "RTP/AVP/UDP")
        #expect(t.port("server_port") == 6000 && t.port("control_port") == 6001 && t.port("TIMING_PORT") == 6002)
        #expect(t["unicast"] == "" && t["interleaved"] == nil)
        #expect(t.headerValue == "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=6002")
        var u = RTSPTransport(parameters: [("unicast", ""), ("interleaved", "0-1"), ("mode", "record")])
        u["control_port"] = "5001"
        #expect(u.headerValue == "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;control_port=5001")
        #expect(RTSPTransport(parsing: "RTP/AVP;server_port=99999").port("server_port") == nil)
        #expect(RTSPTransport(parsing: "").port("server_port") == nil)
    }
}
