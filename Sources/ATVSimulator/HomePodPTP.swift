import ATVCore
import ATVPTP
import Synchronization

/// What a `VirtualHomePod` saw of PTP timing (docs/PTP-AND-BUFFERED-AUDIO.md §3, §5.1): the clock
/// it followed, the anchors it was given, and the instant, by the master's clock, at which it
/// played each packet's frames.
package struct PTPReception: Sendable, Equatable {
    /// One played packet: its first frame (RTP time), its frames, when its first frame plays on
    /// the master's timeline (ns), and the same instant on the local monotonic clock (ns) by the
    /// follower's offset then. `late`: it arrived after that instant.
    package struct PlayInstant: Sendable, Equatable, Codable {
        package var rtpTime: UInt32
        package var frames: Int
        package var masterTime: Int64
        package var localTime: Int64?
        package var late: Bool
        /// Frames written to the WAV file before this packet's (where its first frame is there).
        package var framesBefore = 0
        /// When the packet arrived, local monotonic ns (real-time streams; nil where not kept).
        package var arrivedAt: Int64?

        package init(rtpTime: UInt32, frames: Int, masterTime: Int64, localTime: Int64?, late: Bool, framesBefore: Int = 0,
                     arrivedAt: Int64? = nil) {
            self.rtpTime = rtpTime
            self.frames = frames
            self.masterTime = masterTime
            self.localTime = localTime
            self.late = late
            self.framesBefore = framesBefore
            self.arrivedAt = arrivedAt
        }
    }

    /// Session SETUPs refused for their timing (NTP on a PTP-only receiver, PTP without
    /// `timingPeerInfo`, PTP on an NTP-only one), with the status answered.
    package var sessionsRefused: [Int] = []
    /// `timingPeerInfo.Addresses` of the PTP session SETUP.
    package var timingPeerAddresses: [String] = []
    /// Address lists of each SETPEERS / SETPEERSX, in order.
    package var setPeers: [[String]] = []
    /// Why the follower could not start (a HomePod then plays by its own clock).
    package var followerError: String?
    /// The address the follower follows (the RTSP peer's).
    package var master: String?
    /// The follower's view at the latest update.
    package var state: String?
    package var grandmaster: PTPClockIdentity?
    /// master time − local monotonic time, ns.
    package var offset: Int64?
    package var pathDelay: Int64?
    package var samples = 0
    /// 0xD7 time announces on the control port, and those not usable when they arrived (their
    /// clock is not the followed grandmaster, or the clock is not valid yet); they are kept and
    /// count for the frames played once the clock is valid on their clock.
    package var timeAnnounces = 0
    package var anchorsRejected = 0
    /// The anchor in force: frame `anchorFrame` plays at master time `anchorTime` (ns).
    package var anchorFrame: UInt32?
    package var anchorTime: Int64?
    /// SETRATEANCHORTIME requests: "play" / "pause", and those refused (400) with why.
    package var rateAnchors: [String] = []
    /// The SETRATEANCHORTIME requests taken, in order: a play anchor's frame and master time (nil
    /// for a pause), and when it arrived on the local monotonic clock (ns).
    package struct AnchorEvent: Sendable, Equatable {
        package var rtpTime: UInt32?
        package var masterTime: Int64?
        package var arrivedAt: Int64
    }
    package var anchorEvents: [AnchorEvent] = []
    package var rateAnchorsRefused: [String] = []
    /// Every played packet with its play instant (PTP sessions with an anchor).
    package var playInstants: [PlayInstant] = []
    /// Frames not played because no valid clock and anchor existed (the strict profile), or
    /// played with none (a HomePod plays them anyway, counted here too as `framesWithoutAnchor`).
    package var framesDroppedWithoutClock = 0
    package var framesWithoutAnchor = 0
    /// Buffered (type 103): packets dropped for an unknown SSRC, FLUSHBUFFERED requests and the
    /// packets they discarded, packets before the anchor's frame, not decoded (a format other
    /// than ALAC 44.1 kHz/16), and still queued when the stream ended.
    package var packetsDroppedForSSRC = 0
    /// Buffered: times the data connection stopped being read (`Configuration.dataStall`), and
    /// for how long in all (stalls that ended).
    package var dataStalls = 0
    package var dataStalledNanoseconds: Int64 = 0
    package var flushes = 0
    /// Each FLUSHBUFFERED: its fields, when it arrived (local monotonic ns) and how many packets
    /// had played then (`playInstants.count`).
    package struct FlushEvent: Sendable, Equatable {
        package var untilSequence: UInt32
        package var untilTimestamp: UInt32
        package var fromSequence: UInt32?
        package var arrivedAt: Int64
        package var packetsPlayedBefore: Int
    }
    package var flushRequests: [FlushEvent] = []
    package var packetsFlushed = 0
    package var packetsBeforeAnchor = 0
    package var packetsNotDecoded = 0
    package var packetsNotPlayed = 0
    /// Type-103 packets accepted, by SSRC (format code).
    package var packetsBySSRC: [UInt32: Int] = [:]
    /// AAC: first blocks of a sequence (stream start, after a flush or a timestamp gap) played
    /// muted, as shairport-sync does.
    package var blocksMuted = 0

    package init() {}

    mutating func update(_ s: PTPFollowerStatus) {
        state = s.state.rawValue
        grandmaster = s.grandmaster
        offset = s.offset
        pathDelay = s.pathDelay
        samples = s.samples
        master = s.master
    }

    var summary: String {
        var parts = ["master \(master ?? "-")", "state \(state ?? "-")", "grandmaster \(grandmaster.map { "\($0)" } ?? "-")",
                     "offset \(offset.map { "\($0) ns" } ?? "-")", "samples \(samples)", "time announces \(timeAnnounces)",
                     "anchors rejected \(anchorsRejected)", "packets placed \(playInstants.count)"]
        if let first = playInstants.first { parts.append("first frame \(first.rtpTime) at master \(first.masterTime) ns") }
        for (ssrc, n) in packetsBySSRC.sorted(by: { $0.key < $1.key }) {
            parts.append("SSRC 0x\(String(ssrc, radix: 16, uppercase: true)) packets \(n)")
        }
        if blocksMuted > 0 { parts.append("first blocks muted \(blocksMuted)") }
        if packetsDroppedForSSRC > 0 { parts.append("type-103 packets dropped for their SSRC \(packetsDroppedForSSRC)") }
        if flushes > 0 { parts.append("flushes \(flushes) (packets \(packetsFlushed))") }
        if framesDroppedWithoutClock > 0 { parts.append("frames dropped without a valid clock \(framesDroppedWithoutClock)") }
        if !sessionsRefused.isEmpty { parts.append("sessions refused \(sessionsRefused)") }
        if let followerError { parts.append("no follower: \(followerError)") }
        return parts.joined(separator: ", ")
    }
}

/// The one follower of a `VirtualHomePod`, started at the first PTP session (binding 319/320
/// needs privileges, so a receiver that is never asked for PTP never binds them) and shared by
/// its sessions.
final class HomePodPTPFollower: Sendable {
    private let state = Mutex<Task<PTPFollower, any Error>?>(nil)
    private let running = Mutex<PTPFollower?>(nil)

    /// The follower once started.
    var current: PTPFollower? { running.withLock { $0 } }

    /// The running follower, started on first use on `address`.
    func follower(address: String) async throws -> PTPFollower {
        let task = state.withLock { task in
            if let task { return task }
            let t = Task { try await PTPFollower.start(bindAddress: address) }
            task = t
            return t
        }
        do {
            let follower = try await task.value
            running.withLock { $0 = follower }
            return follower
        } catch {
            state.withLock { $0 = nil }
            throw error
        }
    }

    func stop() async {
        running.withLock { $0 = nil }
        guard let task = state.withLock({ t -> Task<PTPFollower, any Error>? in defer { t = nil }; return t }) else { return }
        if let follower = try? await task.value { await follower.stop() }
    }
}

/// An anchor: frame `frame` plays at master time `time` (ns) on clock `clock`.
struct PTPAnchor: Sendable, Equatable {
    var frame: UInt32
    var time: Int64
    var clock: UInt64

    /// The master time of `rtp` at `sampleRate` frames per second (RTP time wraps: the signed
    /// 32-bit difference).
    func masterTime(of rtp: UInt32, sampleRate: Int) -> Int64 {
        time + Int64(Int32(bitPattern: rtp &- frame)) * 1_000_000_000 / Int64(sampleRate)
    }
}

/// The rules a receiver applies to the clock and its anchors: shairport-sync's (docs/PTP-AND-
/// BUFFERED-AUDIO.md §5.1 rows 8-9) for the strict profile — the anchor's clock must be the
/// published grandmaster and the clock valid 400 ms after the first sample — or a HomePod's
/// (any locked clock).
struct PTPClockRules: Sendable {
    var strict: Bool
    static let validAfter: UInt64 = 400_000_000

    /// Whether the clock counts as measured at local monotonic `now`.
    func measured(_ s: PTPFollowerStatus, now: UInt64) -> Bool {
        guard s.state == .locked, let since = s.lockedSince else { return false }
        return !strict || now >= since + Self.validAfter
    }

    /// Why an anchor on `clock` is refused now, or nil.
    func refusal(clock: UInt64, _ s: PTPFollowerStatus, now: UInt64) -> String? {
        guard measured(s, now: now) else { return "the master's clock is not measured yet (\(s.state.rawValue))" }
        if strict, s.grandmaster?.value != clock {
            return "the anchor's clock \(PTPClockIdentity(clock)) is not the grandmaster \(s.grandmaster.map { "\($0)" } ?? "-")"
        }
        return nil
    }
}
