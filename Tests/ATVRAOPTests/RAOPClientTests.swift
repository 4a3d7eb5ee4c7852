import ATVTestSupport
import ATVAudio
import ATVCore
@testable import ATVRAOP
import Testing

/// A finite PCM source: a ramp so every sample is distinguishable.
struct RampSource: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    let packets: Int
    let framesPerPacket: Int

    static func pcm(packet i: Int, frames: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frames * 4)
        for f in 0..<frames {
            let v = UInt16(truncatingIfNeeded: (i * frames + f) * 7)
            out += [UInt8(v & 0xFF), UInt8(v >> 8), UInt8(v >> 8), UInt8(v & 0xFF)]
        }
        return out
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var i = 0
        let source: RampSource
        mutating func next() async throws -> PCMPacket? {
            guard i < source.packets else { return nil }
            defer { i += 1 }
            return PCMPacket(bytes: RampSource.pcm(packet: i, frames: source.framesPerPacket), frames: source.framesPerPacket)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}

/// A source that never ends (for stop/failure tests).
struct EndlessSilence: AsyncSequence, Sendable {
    typealias Element = PCMPacket
    struct AsyncIterator: AsyncIteratorProtocol {
        mutating func next() async throws -> PCMPacket? { PCMPacket.silence(frames: 352) }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
}

private func fastOptions(_ codec: RAOPCodec = .l16) -> RAOPOptions {
    RAOPOptions(codec: codec, latencyFrames: 4410, volume: 50, metadata: MediaMetadata(title: "Ramp", artist: "Test", duration: 1),
                requestTimeout: .seconds(2), feedbackInterval: .milliseconds(300), syncInterval: .milliseconds(200),
                leadInPackets: 0)
}

@Suite(.serialized) struct RAOPClientTests {
    @Test func streamsL16ToFakeReceiver() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.close() } }
        let client = RAOPClient(host: "127.0.0.1", port: receiver.port, options: fastOptions())
        let report = try await client.stream(RampSource(packets: 50, framesPerPacket: 352))
        // UDP audio may still be in flight when the TEARDOWN answer arrives: wait for it (deadline).
        _ = await poll(timeout: .seconds(5)) { receiver.log.withLock { $0.audio.count } >= report.packetsSent }
        let log = receiver.log.withLock { $0 }

        // The request order, exactly; the feedback POSTs (timer-driven) come only between RECORD
        // and TEARDOWN.
        let methods = log.requests.map(\.method)
        #expect(methods.filter { $0 != "POST" } == ["GET", "ANNOUNCE", "SETUP", "SET_PARAMETER", "RECORD", "SET_PARAMETER", "SET_PARAMETER", "TEARDOWN"],
                "\(methods)")
        let record = methods.firstIndex(of: "RECORD") ?? methods.count
        #expect(methods.indices.filter { methods[$0] == "POST" }.allSatisfy { $0 > record && $0 < methods.count - 1 }, "\(methods)")
        #expect(log.requests.first { $0.method == "ANNOUNCE" }?.bodyText.contains("L16/44100/2") == true)
        #expect(log.requests.first { $0.method == "ANNOUNCE" }?.bodyText.contains("fmtp") == false)
        #expect(log.requests.last?.method == "TEARDOWN")
        // 50 source packets + silence covering 4410 frames (13 + 1).
        #expect(report.packetsSent == 50 + 14 && report.silencePackets == 14 && report.sourceFrames == 50 * 352)
        #expect(log.audio.count == report.packetsSent)
        #expect(log.audio.first?.marker == true && log.audio.dropFirst().allSatisfy { !$0.marker })
        for (i, p) in log.audio.enumerated().dropFirst() {
            #expect(p.sequenceNumber == log.audio[0].sequenceNumber &+ UInt16(i))
            #expect(p.timestamp == log.audio[0].timestamp &+ UInt32(i * 352))
        }
        // Payload is the source, byte-swapped to big-endian.
        for i in [0, 17, 49] {
            #expect(log.audio[i].payload == RAOPPayload.l16(RampSource.pcm(packet: i, frames: 352), paddedToFrames: 352))
        }
        // Retransmit of 3 packets answered with the originals.
        #expect(log.retransmitted.count == 3 && report.retransmittedPackets == 3)
        #expect(log.retransmitted.map(\.sequenceNumber) == Array(log.audio[2...4]).map(\.sequenceNumber))
        #expect(log.retransmitted.map(\.payload) == Array(log.audio[2...4]).map(\.payload))
        // Timing request answered; syncs flow with latency = rtpTime − rtpTimeLessLatency.
        #expect(log.timingReplies.count >= 1 && report.timingReplies >= 1)
        #expect(log.syncs.count >= 2 && log.syncs.first?.isFirst == true)
        #expect(log.syncs.allSatisfy { $0.rtpTime &- $0.rtpTimeLessLatency == 4410 })
        // Real-time pacing: 64 packets ≈ 0.51 s of audio.
        let expected = 64.0 * 352 / 44100
        #expect(report.sendIntervals.count == 63)
        // How steady the sending is, is measured by Benchmarks/ (and the pacer's schedule by a pure
        // unit test), not asserted here: tests run in parallel on a loaded machine.
        #expect(report.firstPacketDelay != nil && report.duration > .milliseconds(Int64(expected * 1000 * 0.9)))
        #expect(report.bytesOnWire >= report.packetsSent * (12 + 1408))
        #expect(!report.stopped)
    }

    @Test func refusedPortFailsFast() async throws {
        // Bind then close a receiver to get a port nobody listens on.
        let r = try await FakeReceiver.start()
        let port = r.port
        await r.close()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: port, packets: RampSource(packets: 1, framesPerPacket: 352), options: fastOptions())
        } throws: { error in
            guard case .connectionFailed(let m) = error as? ATVError else { return false }
            return m.contains("127.0.0.1:\(port)")
        }
        #expect(clock.now - start < .seconds(5))
    }

    @Test func garbageAnswerIsAProtocolError() async throws {
        let receiver = try await FakeReceiver.start(.garbage)
        defer { Task { await receiver.close() } }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: RampSource(packets: 1, framesPerPacket: 352), options: fastOptions())
        } throws: { error in
            guard case .protocolError = error as? ATVError else { return false }
            return true
        }
        #expect(clock.now - start < .seconds(5))
    }

    @Test func silentReceiverTimesOut() async throws {
        let receiver = try await FakeReceiver.start(.silent)
        defer { Task { await receiver.close() } }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: RampSource(packets: 1, framesPerPacket: 352), options: fastOptions())
        } throws: { error in
            guard case .timeout(let m) = error as? ATVError else { return false }
            return m.contains("GET /info")
        }
        #expect(clock.now - start < .seconds(5))
    }

    /// No features known: `GET /info` decides. An AirPlay 1 receiver answering 404 stays on RAOP.
    @Test func routeFromInfoKeepsAirPlay1On404() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.close() } }
        var o = fastOptions()
        o.routeFromInfo = true
        let client = RAOPClient(host: "127.0.0.1", port: receiver.port, options: o)
        let report = try await client.stream(RampSource(packets: 20, framesPerPacket: 352))
        #expect(client.options.airPlayVersion == .v1)
        #expect(report.packetsSent >= 20)
        // The probe's GET /info, then the RAOP session's own.
        #expect(receiver.log.withLock { $0.requests.prefix(3).map(\.method) } == ["GET", "GET", "ANNOUNCE"])
    }

    /// A receiver that never answers `GET /info`: AirPlay 1 after the short info timeout, and the
    /// RAOP session does not ask again.
    @Test func routeFromInfoFallsBackQuicklyWhenUnanswered() async throws {
        let receiver = try await FakeReceiver.start(.ignoreInfo)
        defer { Task { await receiver.close() } }
        var o = fastOptions()
        o.routeFromInfo = true
        o.infoTimeout = .milliseconds(500)
        let clock = ContinuousClock()
        let start = clock.now
        let client = RAOPClient(host: "127.0.0.1", port: receiver.port, options: o)
        let report = try await client.stream(RampSource(packets: 20, framesPerPacket: 352))
        #expect(client.options.airPlayVersion == .v1)
        #expect(report.packetsSent >= 20)
        #expect(receiver.log.withLock { $0.requests.prefix(2).map(\.method) } == ["GET", "ANNOUNCE"])
        #expect(clock.now - start < .seconds(6))
    }

    /// A 403 to the `GET /info` probe is the receiver refusing this sender: an error that says so,
    /// not a fall-back to AirPlay 1 (which it would refuse next); nothing else is asked.
    @Test func routeFromInfoRefusedIsAnAuthenticationError() async throws {
        let receiver = try await FakeReceiver.start(.refuseInfo)
        defer { Task { await receiver.close() } }
        var o = fastOptions()
        o.routeFromInfo = true
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: RampSource(packets: 1, framesPerPacket: 352), options: o)
        } throws: { error in
            guard case .authenticationFailed(let m) = error as? ATVError else { return false }
            return m.contains("refused GET /info with 403")
        }
        #expect(receiver.log.withLock { $0.requests.map(\.method) } == ["GET"])
    }

    /// Garbage to the `GET /info` probe is a protocol error at once, not a fallback.
    @Test func routeFromInfoGarbageIsAProtocolError() async throws {
        let receiver = try await FakeReceiver.start(.garbage)
        defer { Task { await receiver.close() } }
        var o = fastOptions()
        o.routeFromInfo = true
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: RampSource(packets: 1, framesPerPacket: 352), options: o)
        } throws: { error in
            guard case .protocolError(let m) = error as? ATVError else { return false }
            return m.contains("GET /info") && m.contains("not HTTP or RTSP")
        }
        #expect(clock.now - start < .seconds(2))
    }

    @Test func badTransportNamesSetup() async throws {
        let receiver = try await FakeReceiver.start(.badTransport)
        defer { Task { await receiver.close() } }
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: RampSource(packets: 1, framesPerPacket: 352), options: fastOptions())
        } throws: { error in
            guard case .protocolError(let m) = error as? ATVError else { return false }
            return m.contains("SETUP") && m.contains("server_port")
        }
    }

    @Test func receiverClosingMidStreamEndsTheStream() async throws {
        let receiver = try await FakeReceiver.start(.closeAfterAudioPackets(20))
        defer { Task { await receiver.close() } }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: EndlessSilence(), options: fastOptions())
        } throws: { error in
            guard case .connectionLost = error as? ATVError else { return false }
            return true
        }
        #expect(clock.now - start < .seconds(5))
    }

    @Test func hangingReceiverIsDetectedByKeepAlive() async throws {
        let receiver = try await FakeReceiver.start(.muteAfterRecord)
        defer { Task { await receiver.close() } }
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: EndlessSilence(), options: fastOptions())
        } throws: { error in
            guard case .timeout(let m) = error as? ATVError else { return false }
            return m.contains("/feedback") || m.contains("SET_PARAMETER")
        }
        // 2 s request timeout + ≤ 1 s for the TEARDOWN attempt.
        #expect(clock.now - start < .seconds(5))
        #expect(receiver.log.withLock { $0.requests.last?.method } == "TEARDOWN")
    }

    @Test func oneStreamPerDeviceStopAndVolume() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.close() } }
        let client = RAOPClient(host: "127.0.0.1", port: receiver.port, options: fastOptions())
        let progress = client.progressUpdates()
        let task = Task { try await client.stream(EndlessSilence()) }
        // Wait until streaming.
        for await p in progress where p.state == .streaming { break }
        await #expect {
            _ = try await streamRAOP(host: "127.0.0.1", port: receiver.port, packets: EndlessSilence(), options: fastOptions())
        } throws: { error in
            guard case .invalidState = error as? ATVError else { return false }
            return true
        }
        try await client.setVolume(10)
        try await client.setMetadata(MediaMetadata(title: "Live", artist: "A", album: "B"))
        while receiver.log.withLock({ $0.audio.count }) < 5 { try await Task.sleep(for: .milliseconds(5)) }
        client.pause()
        // Paused once the receiver was told to FLUSH; then no audio for a while (the window is the
        // assertion: nothing may arrive in it).
        #expect(await poll(timeout: .seconds(5)) { receiver.log.withLock { $0.requests.contains { $0.method == "FLUSH" } } })
        try await Task.sleep(for: .milliseconds(100))
        let pausedCount = receiver.log.withLock { $0.audio.count }
        try await Task.sleep(for: .milliseconds(200))
        #expect(receiver.log.withLock { $0.audio.count } == pausedCount)
        client.resume()
        #expect(await poll(timeout: .seconds(5)) { receiver.log.withLock { $0.audio.count } > pausedCount })
        client.stop()
        let report = try await task.value
        #expect(report.stopped)
        let log = receiver.log.withLock { $0 }
        #expect(log.requests.contains { $0.method == "SET_PARAMETER" && $0.bodyText == RAOPVolume.parameterBody(dB: -27) })
        #expect(log.requests.contains { $0.method == "FLUSH" })
        #expect(log.requests.contains {
            $0.headers["Content-Type"] == "application/x-dmap-tagged"
                && (try? RAOPTrackInfo(dmap: $0.body)) == RAOPTrackInfo(title: "Live", artist: "A", album: "B")
        })
        #expect(log.requests.last?.method == "TEARDOWN")
        // After resume the first packet carries the marker again.
        #expect(log.audio.filter(\.marker).count == 2, "\(log.audio.count) \(pausedCount) \(log.audio.enumerated().filter { $0.element.marker }.map(\.offset)) \(log.requests.map(\.method))")
        #expect(log.audio.count > pausedCount && pausedCount >= 5)
    }
}

@Suite(.serialized) struct RAOPClientALACTests {
    @Test func alacPayloadDecodesToTheSource() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.close() } }
        var options = fastOptions(.alac)
        options.padWithSilence = false
        let report = try await streamRAOP(host: "127.0.0.1", port: receiver.port,
                                          packets: RampSource(packets: 20, framesPerPacket: 352), options: options)
        _ = await poll(timeout: .seconds(5)) { receiver.log.withLock { $0.audio.count } >= 20 }
        let log = receiver.log.withLock { $0 }
        let announce = try #require(log.requests.first { $0.method == "ANNOUNCE" })
        let sdp = try SDP.parse(announce.bodyText)
        #expect(sdp.format == RAOPAudioFormat(codec: .alac))
        #expect(report.packetsSent == 20 && log.audio.count == 20)
        let decoder = try ALACDecoder(framesPerPacket: 352)
        for (i, p) in log.audio.enumerated() {
            let pcm = try decoder.decode(p.payload)
            #expect(pcm.frames == 352)
            #expect(pcm.bytes == RampSource.pcm(packet: i, frames: 352), "packet \(i)")
        }
    }
}
