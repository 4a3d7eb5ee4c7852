import ATVTestSupport
import ATVCore
import Foundation
import Testing
@testable import ATVAudio

private func waitUntil(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    await poll(timeout: .milliseconds(Int(seconds * 1000)), interval: .milliseconds(10), condition)
}

private func longWAV() async throws -> String {
    try await Fixtures.shared.sine("long.wav", seconds: 20, codecArgs: ["-c:a", "pcm_s16le"])
}

/// A loopback HTTP server (python3) serving the fixture dir, plus /stall/<file> (headers and 64 KiB, then
/// nothing) and /hang (accepts, never answers).
final class LoopbackHTTPServer {
    let child: Child
    let port: Int

    init(root: String) async throws {
        let script = """
        import http.server, sys, os, time
        os.chdir(sys.argv[1])
        class H(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self):
                if self.path == '/hang':
                    time.sleep(30); return
                if self.path.startswith('/stall/'):
                    data = open(self.path[7:], 'rb').read()
                    self.send_response(200)
                    self.send_header('Content-Type', 'audio/wav')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:65536]); self.wfile.flush()
                    time.sleep(30); return
                return super().do_GET()
        http.server.ThreadingHTTPServer.daemon_threads = True
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        print(srv.server_address[1], flush=True)
        srv.serve_forever()
        """
        child = try Child("/usr/bin/python3", ["-c", script, root])
        // The port, once printed (a deadline; the wait does not hold a thread of the concurrency pool).
        let printed = try? await child.waitForOutput(timeout: 20) { $0.contains("\n") }
        guard let line = printed?.split(separator: "\n").first, let p = Int(line) else {
            child.kill()
            throw TestFailure("HTTP test server did not start: \(child.stderr)")
        }
        port = p
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    deinit {
        // SIGKILL: children of the test runner inherit a signal mask that blocks SIGTERM.
        child.kill()
    }
}

@Suite("AudioDecoder lifecycle")
struct LifecycleTests {
    @Test("back-pressure: the decode thread stops at the bounded buffer; dropping the iterator ends it")
    func backPressureAndDrop() async throws {
        let path = try await longWAV()
        let decoder = try await AudioDecoder.open(spec: .from(.file(path)), framesPerPacket: 352, bufferPackets: 16)
        let pipeline = decoder.pipeline
        do {
            var it = decoder.makeAsyncIterator()
            #expect(try await it.next()?.frames == 352)
            try await Task.sleep(for: .milliseconds(300))
            // 20 s is ~2500 packets; with nobody reading, the thread stays within the buffer.
            #expect(pipeline.producedPackets <= pipeline.bufferCapacity + 2)
            #expect(!pipeline.threadExited)
            #expect(try await it.next()?.frames == 352)
            // A second iteration is refused.
            var second = decoder.makeAsyncIterator()
            await #expect(throws: ATVError.self) { _ = try await second.next() }
        }
        // The iterator is gone: the thread exits (and frees FFmpeg state) promptly.
        #expect(await waitUntil(2) { pipeline.threadExited })
        #expect(pipeline.producedPackets < 100)
    }

    @Test("a decoder that is never iterated stops when released")
    func releasedUnused() async throws {
        let path = try await longWAV()
        var decoder: AudioDecoder? = try await AudioDecoder.open(.file(path))
        let pipeline = decoder!.pipeline
        #expect(decoder!.info.duration.map { abs($0 - 20) < 0.01 } == true)
        decoder = nil
        #expect(await waitUntil(2) { pipeline.threadExited })
    }

    @Test("cancelling the consuming task stops a decoder blocked on a stalled pipe")
    func cancelStalledPipe() async throws {
        let path = try await longWAV()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let pipe = try cloexecPipe()
        // Header + 60 packets of audio, and the writer stays open: the reader then blocks waiting for more.
        // (The WAV demuxer reads 64 KiB ahead at open to look for S/PDIF data, more than a pipe holds, so
        // the bytes are written from another thread.)
        let chunk = data.prefix(44 + 352 * 4 * 60)
        let writer = pipe.write
        let writerThread = Thread { try? writer.write(contentsOf: chunk) }
        writerThread.start()
        let decoder = try await AudioDecoder.open(fileDescriptor: pipe.read.fileDescriptor)
        let pipeline = decoder.pipeline
        let task = Task { () -> (Int, Error?) in
            var n = 0
            do {
                for try await p in decoder { n += p.frames }
            } catch {
                return (n, error)
            }
            return (n, nil)
        }
        // The demuxer hands out whole 4096-byte blocks: 58 of the 60 packets get through.
        #expect(await waitUntil(5) { pipeline.producedPackets >= 58 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(pipeline.producedPackets == 58)
        let started = Date()
        task.cancel()
        let (frames, error) = await task.value
        #expect(frames == 352 * 58)
        #expect(error is CancellationError)
        #expect(Date().timeIntervalSince(started) < 3, "cancellation must not wait for the stalled pipe")
        #expect(await waitUntil(2) { pipeline.threadExited })
        try pipe.write.close()
        try pipe.read.close()
    }

    @Test("http: loopback URL decodes like the file; open and read time out; 404 is a clear error")
    func http() async throws {
        let wav = try await Fixtures.shared.sine("s.wav", codecArgs: ["-c:a", "pcm_s16le"])
        let mp3 = try await Fixtures.shared.sine("s.mp3", codecArgs: ["-c:a", "libmp3lame", "-b:a", "128k"])
        let long = try await longWAV()
        let server = try await LoopbackHTTPServer(root: Fixtures.shared.dir)

        for path in [wav, mp3] {
            let name = (path as NSString).lastPathComponent
            let fromFile = joined(try await decodeAll(try await AudioDecoder.open(.file(path))))
            let decoder = try await AudioDecoder.open(.url(server.url(name)))
            #expect(abs((decoder.info.duration ?? 0) - 3) < 0.05)
            #expect(joined(try await decodeAll(decoder)) == fromFile, "\(name)")
        }

        // 404: one line naming the URL.
        do {
            _ = try await AudioDecoder.open(.url(server.url("nope.mp3")))
            Issue.record("404 should fail")
        } catch let e as ATVError {
            let m = e.description
            #expect(m.hasPrefix(server.url("nope.mp3") + ": ") && m.contains("404"), "\(m)")
        }

        // A server that never answers: open fails after the I/O timeout (1 s here, 10 s by default).
        var t0 = Date()
        do {
            _ = try await AudioDecoder.open(spec: .from(.url(server.url("hang"))), framesPerPacket: 352, ioTimeout: 1)
            Issue.record("a server that never answers should fail")
        } catch let e as ATVError {
            #expect(e == .timeout("\(server.url("hang")): no answer"), "\(e)")
        }
        #expect(Date().timeIntervalSince(t0) > 0.9)
        #expect(Date().timeIntervalSince(t0) < 5)

        // A server that stalls mid-stream: next() throws instead of hanging.
        let decoder = try await AudioDecoder.open(spec: .from(.url(server.url("stall/" + (long as NSString).lastPathComponent))),
                                                  framesPerPacket: 352, ioTimeout: 1)
        t0 = Date()
        var frames = 0
        do {
            for try await p in decoder { frames += p.frames }
            Issue.record("a stalled stream should throw")
        } catch {
            let url = server.url("stall/" + (long as NSString).lastPathComponent)
            #expect(error as? ATVError == .timeout("\(url): no data for too long"), "\(error)")
        }
        #expect(frames > 0 && frames < 65_536 / 4)
        #expect(Date().timeIntervalSince(t0) < 5)
    }
}
