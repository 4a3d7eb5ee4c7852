// What a virtual receiver played and when, in one form for both (`PlayoutLog`: the AirPlay 1
// speaker by the sender's NTP clock, the HomePod by PTP or NTP), and the analysis that compares
// several receivers playing one stream (`PlayoutSync`): the same source frame found in each
// receiver's audio, and when each plays it. Pure: no I/O here but the JSON coding.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// One session's playout of a virtual receiver: the WAV it wrote and, for each packet played,
/// when its first frame plays (`PTPReception.PlayInstant`: RTP time, frames, `masterTime` on the
/// clock the receiver followed, `localTime` on its CLOCK_MONOTONIC, `framesBefore` its place in
/// the WAV). `atv simulate speaker|homepod --play-instants FILE` writes it as JSON.
package struct PlayoutLog: Codable, Sendable, Equatable {
    /// "ntp" (sync packets + NTP timing exchange: AirPlay 1, AirPlay 2 realtime NTP) or "ptp".
    package var timing: String
    /// The WAV file of the session (frames as counted by `framesBefore`).
    package var wav: String?
    package var framesWritten: Int
    package var silenceFramesWritten: Int
    package var unrecoveredPackets: Int
    /// NTP: the sender's clock minus our CLOCK_REALTIME (ns) and the round trip it was measured
    /// with. PTP: master time minus our CLOCK_MONOTONIC (ns).
    package var senderClockOffset: Int64?
    package var senderClockRoundTrip: Int64?
    package var ptpOffset: Int64?
    /// Packets played whose instant was not known (NTP: before a sync packet and a timing reply;
    /// PTP: frames without an anchor or a valid clock).
    package var unplaced: Int
    package var instants: [PTPReception.PlayInstant]

    package init(timing: String, wav: String?, reception r: AudioReception, ptp: PTPReception? = nil) {
        self.timing = timing
        self.wav = wav
        framesWritten = r.framesWritten
        silenceFramesWritten = r.silenceFramesWritten
        unrecoveredPackets = r.unrecoveredPackets
        senderClockOffset = r.senderClockOffset
        senderClockRoundTrip = r.senderClockRoundTrip
        if timing == "ptp", let ptp {
            ptpOffset = ptp.offset
            unplaced = ptp.framesWithoutAnchor + ptp.framesDroppedWithoutClock
            instants = ptp.playInstants
        } else {
            ptpOffset = nil
            unplaced = r.ntp.packetsUnplaced
            instants = r.ntp.playInstants
        }
    }

    /// The AirPlay 1 speaker's playout (NTP).
    package init(speaker report: SpeakerReport, wav: String?) {
        self.init(timing: "ntp", wav: wav, reception: report.reception)
    }

    /// The HomePod's playout, by the timing of its session.
    package init(homePod report: HomePodReport, wav: String?) {
        self.init(timing: report.timingProtocol == "PTP" ? "ptp" : "ntp", wav: wav, reception: report.reception, ptp: report.ptp)
    }

    package func encoded() throws -> Data { try JSONEncoder().encode(self) }
    package static func decode(_ data: Data) throws -> PlayoutLog { try JSONDecoder().decode(PlayoutLog.self, from: data) }
}

/// Compares receivers that played the same source: where the source is in each one's audio (a
/// sample-exact match), whether each played it bit-exact, and for the same source frame how far
/// apart their play instants are.
package enum PlayoutSync {
    /// One receiver: its audio (s16le stereo frames as `UInt32`, see `frames(s16le:)`) and the
    /// play instants of its packets (`framesBefore` indexes `audio`).
    package struct Member: Sendable {
        package var name: String
        package var audio: [UInt32]
        package var instants: [PTPReception.PlayInstant]
        package init(name: String, audio: [UInt32], instants: [PTPReception.PlayInstant]) {
            self.name = name
            self.audio = audio
            self.instants = instants.sorted { $0.framesBefore < $1.framesBefore }
        }
    }

    /// Which instant of a `PlayInstant` to compare: `localTime` (the receiver's CLOCK_MONOTONIC:
    /// one time base for receivers on one machine) or `masterTime` (the clock it followed).
    package enum TimeBase: Sendable { case local, master }

    package struct MemberResult: Sendable, Equatable {
        package var name: String
        /// The audio frame that holds source frame 0 (may be negative when the member started
        /// late), nil when the source was not found.
        package var sourceOffset: Int?
        /// Source frames the member played bit-exact, out of `sourceFrames`.
        package var matchingFrames: Int
        package var sourceFrames: Int
        package var bitExactFraction: Double { sourceFrames > 0 ? Double(matchingFrames) / Double(sourceFrames) : 0 }
        /// The first source frame that differs (nil: all bit-exact).
        package var firstMismatch: Int?
        /// Mean of (this member's instant − the first member's) over the compared frames, ns.
        package var meanLeadOverFirst: Double
    }

    package struct Result: Sendable, Equatable {
        package var members: [MemberResult]
        /// Source frames compared (every `step`-th frame that every member played bit-exact with
        /// a known instant).
        package var framesCompared: Int
        /// The largest spread (latest − earliest member) of one frame's play instants, ns, and
        /// the frame it was at; the median spread.
        package var maxSpread: Int64
        package var maxSpreadFrame: Int?
        package var medianSpread: Int64
        /// 99% of the compared frames play within this of each other.
        package var p99Spread: Int64 = 0

        package var summary: String {
            let m = members.map { r in
                "\(r.name): offset \(r.sourceOffset.map(String.init) ?? "not found"), bit-exact "
                    + String(cFormat: "%.4f %%", r.bitExactFraction * 100)
                    + (r.firstMismatch.map { " (first mismatch at frame \($0))" } ?? "")
                    + String(cFormat: ", mean lead over the first %.3f ms", r.meanLeadOverFirst / 1e6)
            }
            return "frames compared \(framesCompared), max spread " + String(cFormat: "%.3f ms", Double(maxSpread) / 1e6)
                + (maxSpreadFrame.map { " (source frame \($0))" } ?? "")
                + ", median spread " + String(cFormat: "%.3f ms", Double(medianSpread) / 1e6)
                + ", 99% within " + String(cFormat: "%.3f ms", Double(p99Spread) / 1e6) + "; " + m.joined(separator: "; ")
        }
    }

    /// s16le stereo PCM bytes as one `UInt32` per frame (left in the low half, whole frames only).
    package static func frames(s16le bytes: [UInt8]) -> [UInt32] {
        let n = bytes.count / 4
        var out = [UInt32](repeating: 0, count: n)
        bytes.withUnsafeBufferPointer { b in
            for i in 0 ..< n {
                let j = i * 4
                out[i] = UInt32(b[j]) | UInt32(b[j + 1]) << 8 | UInt32(b[j + 2]) << 16 | UInt32(b[j + 3]) << 24
            }
        }
        return out
    }

    /// Where `source` lies in `audio`: probes of `window` frames at several places of the source
    /// (skipping runs of one value such as silence) are searched sample-exact in `audio`; the
    /// offset most probes agree on (audio frame of source frame 0), nil when none is found.
    package static func locate(_ source: [UInt32], in audio: [UInt32], window: Int = 256, probes: Int = 12) -> Int? {
        guard source.count >= window, audio.count >= window else { return nil }
        var votes: [Int: Int] = [:]
        let stride = max(1, (source.count - window) / max(1, probes - 1))
        var p = 0
        while p + window <= source.count {
            let needle = source[p ..< p + window]
            if Set(needle.prefix(32)).count > 4 {
                let first = needle[needle.startIndex]
                var j = 0
                // A probe that occurs more than once is ambiguous: it votes for none.
                var found: [Int] = []
                while j + window <= audio.count, found.count < 2 {
                    if audio[j] == first, audio[j ..< j + window].elementsEqual(needle) { found.append(j - p) }
                    j += 1
                }
                if found.count == 1 { votes[found[0], default: 0] += 1 }
            }
            p += stride
        }
        return votes.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
    }

    /// The instant audio frame `frame` plays (the packet that holds it, plus its place in the
    /// packet), nil when no packet instant covers it.
    package static func instant(ofFrame frame: Int, in instants: [PTPReception.PlayInstant], base: TimeBase, sampleRate: Int = 44_100) -> Int64? {
        var lo = 0, hi = instants.count
        while lo < hi {  // the last instant with framesBefore <= frame
            let mid = (lo + hi) / 2
            if instants[mid].framesBefore <= frame { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let p = instants[lo - 1]
        guard frame < p.framesBefore + p.frames else { return nil }
        let t: Int64? = base == .local ? p.localTime : p.masterTime
        return t.map { $0 + Int64(frame - p.framesBefore) * 1_000_000_000 / Int64(sampleRate) }
    }

    /// Finds `source` in each member's audio, counts its bit-exact frames, and compares the
    /// instants at which the members play every `step`-th source frame.
    package static func analyze(source: [UInt32], members: [Member], base: TimeBase = .local, step: Int = 441,
                                sampleRate: Int = 44_100) -> Result {
        let offsets = members.map { locate(source, in: $0.audio) }
        var results: [MemberResult] = []
        var exact: [[Bool]] = []
        for (m, offset) in zip(members, offsets) {
            var ok = [Bool](repeating: false, count: source.count)
            var matching = 0
            var firstMismatch: Int?
            if let offset {
                for f in 0 ..< source.count {
                    let a = offset + f
                    if a >= 0, a < m.audio.count, m.audio[a] == source[f] {
                        ok[f] = true
                        matching += 1
                    } else if firstMismatch == nil {
                        firstMismatch = f
                    }
                }
            } else {
                firstMismatch = 0
            }
            exact.append(ok)
            results.append(MemberResult(name: m.name, sourceOffset: offset, matchingFrames: matching, sourceFrames: source.count,
                                        firstMismatch: firstMismatch, meanLeadOverFirst: 0))
        }
        var spreads: [(Int64, Int)] = []
        var leadSums = [Double](repeating: 0, count: members.count)
        if offsets.allSatisfy({ $0 != nil }), !members.isEmpty {
            var f = 0
            frames: while f < source.count {
                defer { f += step }
                var times: [Int64] = []
                for (i, m) in members.enumerated() {
                    guard exact[i][f], let t = instant(ofFrame: offsets[i]! + f, in: m.instants, base: base, sampleRate: sampleRate) else {
                        continue frames
                    }
                    times.append(t)
                }
                spreads.append((times.max()! - times.min()!, f))
                for i in times.indices { leadSums[i] += Double(times[i] - times[0]) }
            }
        }
        if !spreads.isEmpty {
            for i in results.indices { results[i].meanLeadOverFirst = leadSums[i] / Double(spreads.count) }
        }
        let worst = spreads.max { $0.0 < $1.0 }
        let sorted = spreads.map(\.0).sorted()
        return Result(members: results, framesCompared: spreads.count, maxSpread: worst?.0 ?? 0, maxSpreadFrame: worst?.1,
                      medianSpread: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
                      p99Spread: sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
    }
}
