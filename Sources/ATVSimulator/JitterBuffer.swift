/// A sans-I/O receive buffer for RTP audio: orders packets by 16-bit sequence number (with
/// wrap-around), detects gaps, decides when to ask the sender for a retransmission, accepts late
/// arrivals (retransmissions or reordered packets) and gives up on a gap after a timeout or when
/// too much audio is queued behind it.
///
/// All time is passed in by the caller (`now`, nanoseconds on any monotonic clock), so the type is
/// fully deterministic and testable without sockets or clocks.
package struct JitterBuffer: Sendable {
    package struct Configuration: Sendable, Equatable {
        /// A missing packet is declared lost once it has been missing this long (nanoseconds).
        package var lossTimeout: UInt64
        /// Minimum interval between two retransmit requests for the same packet (nanoseconds).
        package var retryInterval: UInt64
        /// Retransmit requests per missing packet (the first one included).
        package var maxRequests: Int
        /// A gap is declared lost at once when this many packets are queued behind it.
        package var maxQueued: Int
        /// A forward jump larger than this is a discontinuity (new stream), not a gap.
        package var maxGap: Int

        package init(lossTimeout: UInt64 = 1_000_000_000, retryInterval: UInt64 = 150_000_000,
                    maxRequests: Int = 3, maxQueued: Int = 250, maxGap: Int = 1000) {
            self.lossTimeout = lossTimeout
            self.retryInterval = retryInterval
            self.maxRequests = maxRequests
            self.maxQueued = maxQueued
            self.maxGap = maxGap
        }
    }

    /// What the caller must do, in order.
    package enum Output: Sendable, Equatable {
        /// Play this packet's payload (packets come out in sequence order).
        case play(seq: UInt16, payload: [UInt8], recovered: Bool)
        /// These packets never arrived: play silence for them.
        case lost(firstSeq: UInt16, count: Int)
        /// Ask the sender for `count` packets starting at `firstSeq`.
        case requestRetransmit(firstSeq: UInt16, count: UInt16)
    }

    package struct Statistics: Sendable, Equatable {
        /// Distinct packets accepted into the buffer (originals and retransmissions).
        package var received = 0
        /// Packets that arrived after being reported missing (retransmitted or late), in time to be played.
        package var recovered = 0
        /// Packets declared lost (silence was played instead).
        package var lost = 0
        /// Retransmit requests issued (each `.requestRetransmit` output counts once).
        package var requests = 0
        /// Packets requested in total (sum of the counts).
        package var requestedPackets = 0
        /// Duplicates and packets that came too late (after their slot was played or declared lost).
        package var discarded = 0
        /// Discontinuities (sequence jumps larger than `maxGap`), each restarting the buffer.
        package var discontinuities = 0
    }

    private struct Missing {
        var since: UInt64
        var lastRequest: UInt64
        var requests: Int
    }

    package let configuration: Configuration
    package private(set) var statistics = Statistics()

    /// Extended (unwrapped) sequence number of the next packet to play; nil before the first packet.
    private var next: Int64?
    /// Highest extended sequence number seen.
    private var highest: Int64 = 0
    private var queued: [Int64: (payload: [UInt8], recovered: Bool)] = [:]
    private var missing: [Int64: Missing] = [:]

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Packets waiting behind a gap.
    package var queuedCount: Int { queued.count }
    /// Packets currently known to be missing.
    package var missingCount: Int { missing.count }

    /// Unwraps a 16-bit sequence number to the extended number closest to `highest`.
    private func extend(_ seq: UInt16) -> Int64 {
        let delta = Int16(bitPattern: seq &- UInt16(truncatingIfNeeded: highest))
        return highest + Int64(delta)
    }

    /// Tells an empty buffer which sequence number comes first (RAOP senders announce it in the
    /// `RTP-Info: seq=` header of RECORD/FLUSH), so a lost first packet is detected and re-requested
    /// like any other gap. Ignored while packets are buffered.
    package mutating func expect(firstSeq seq: UInt16) {
        guard next == nil, queued.isEmpty else { return }
        next = Int64(seq)
        highest = Int64(seq) - 1
    }

    /// Feeds one received packet. `isRetransmission` marks packets that came in a retransmit response.
    package mutating func insert(seq: UInt16, payload: [UInt8], isRetransmission: Bool = false,
                                now: UInt64) -> [Output] {
        var out: [Output] = []
        guard let nextSeq = next else {
            next = Int64(seq)
            highest = Int64(seq)
            statistics.received += 1
            queued[Int64(seq)] = (payload, false)
            drain(into: &out)
            return out
        }
        let ext = extend(seq)
        if ext - highest > Int64(configuration.maxGap) || nextSeq - ext > Int64(configuration.maxGap) {
            // New stream: play what we have, forget the rest, restart at this packet.
            out += finish()
            statistics.discontinuities += 1
            next = ext
            highest = ext
            statistics.received += 1
            queued[ext] = (payload, false)
            drain(into: &out)
            return out
        }
        if ext < nextSeq || queued[ext] != nil {
            statistics.discarded += 1
            return out
        }
        statistics.received += 1
        if ext > highest {
            // Everything between the old highest and this packet is missing.
            if ext > highest + 1 {
                for m in (highest + 1)..<ext { missing[m] = Missing(since: now, lastRequest: now, requests: 1) }
                appendRequests(for: Array((highest + 1)..<ext), into: &out)
            }
            highest = ext
            queued[ext] = (payload, false)
        } else {
            let wasMissing = missing.removeValue(forKey: ext) != nil
            if wasMissing || isRetransmission { statistics.recovered += 1 }
            queued[ext] = (payload, wasMissing || isRetransmission)
        }
        drain(into: &out)
        // Too much queued behind a gap: give up on the oldest gap(s) now.
        while queued.count > configuration.maxQueued, let n = next, queued[n] == nil {
            declareLostRun(into: &out)
            drain(into: &out)
        }
        return out
    }

    /// Advances time: re-requests packets still missing and declares timed-out gaps lost.
    package mutating func tick(now: UInt64) -> [Output] {
        var out: [Output] = []
        // Give up on gaps at the head whose first packet timed out.
        while let n = next, queued[n] == nil, let m = missing[n], now &- m.since >= configuration.lossTimeout {
            declareLostRun(into: &out)
            drain(into: &out)
        }
        var retry: [Int64] = []
        for (seq, m) in missing where m.requests < configuration.maxRequests
            && now &- m.lastRequest >= configuration.retryInterval {
            retry.append(seq)
        }
        retry.sort()
        for seq in retry {
            missing[seq]?.lastRequest = now
            missing[seq]?.requests += 1
        }
        appendRequests(for: retry, into: &out)
        return out
    }

    /// End of stream (or FLUSH): plays everything queued, declaring remaining gaps lost, and resets.
    package mutating func finish() -> [Output] {
        var out: [Output] = []
        while let n = next, n <= highest {
            if queued[n] != nil { drain(into: &out) } else { declareLostRun(into: &out) }
        }
        queued.removeAll()
        missing.removeAll()
        next = nil
        return out
    }

    private mutating func drain(into out: inout [Output]) {
        while let n = next, let entry = queued.removeValue(forKey: n) {
            out.append(.play(seq: UInt16(truncatingIfNeeded: n), payload: entry.payload, recovered: entry.recovered))
            next = n + 1
        }
    }

    /// Declares the run of missing packets starting at `next` lost.
    private mutating func declareLostRun(into out: inout [Output]) {
        guard let start = next else { return }
        var n = start
        while n <= highest, queued[n] == nil {
            missing.removeValue(forKey: n)
            n += 1
        }
        let count = Int(n - start)
        guard count > 0 else { return }
        statistics.lost += count
        out.append(.lost(firstSeq: UInt16(truncatingIfNeeded: start), count: count))
        next = n
    }

    /// Coalesces sorted extended sequence numbers into contiguous retransmit requests.
    private mutating func appendRequests(for seqs: [Int64], into out: inout [Output]) {
        var i = 0
        while i < seqs.count {
            var j = i
            while j + 1 < seqs.count, seqs[j + 1] == seqs[j] + 1, j - i + 1 < Int(UInt16.max) { j += 1 }
            let count = j - i + 1
            out.append(.requestRetransmit(firstSeq: UInt16(truncatingIfNeeded: seqs[i]), count: UInt16(count)))
            statistics.requests += 1
            statistics.requestedPackets += count
            i = j + 1
        }
    }
}
