// How long one write to the buffered (type 103) data connection may wait for the kernel to take it
// before the receiver counts as no longer reading (docs/PTP-AND-BUFFERED-AUDIO.md §4.5). Pure: times
// are PTP master nanoseconds, passed in.
//
// TCP back-pressure is legitimate and no error: shairport-sync stops reading when its 8 MiB buffer
// is full and reads again as it plays, other receivers read in bursts. But a receiver that plays
// must have read every packet before that packet's play time. The window keeps what we wrote at
// most `maximumLead` (3 s) ahead of the playhead and within `audioBufferSize`, so once the
// playhead (by the anchor) has passed everything written before the waiting packet, a receiver
// that still reads has taken all of it and the kernel has room for this one. The deadline is
// that instant plus `writeMargin` (Wi-Fi retransmissions, TCP's backed-off retransmit timer, a
// receiver that reads in bursts); by then a receiver that stopped reading has played everything
// it had and is silent. While no anchor plays (before the first, or paused) the playhead stands
// still: then the limit is a whole window (`maximumLead`) plus the margin.
package extension BufferedSendWindow {
    /// Added to the time the receiver needs to play what it already has.
    static let writeMargin: UInt64 = 3_000_000_000

    /// Nanoseconds the write of the packet whose first frame is stream position `position` may
    /// wait at master time `now` (the packet registered by `write`; everything before it written).
    func writeLimit(packetAt position: UInt64, now: UInt64) -> UInt64 {
        guard case .playing(let p0, let t0) = playback else { return configuration.maximumLead &+ Self.writeMargin }
        // Master time at which the playhead reaches `position`.
        let frames = position > p0 ? position - p0 : 0
        let product = frames.multipliedFullWidth(by: 1_000_000_000)
        let rate = UInt64(configuration.sampleRate)
        let span = product.high < rate ? rate.dividingFullWidth(product).quotient : UInt64.max / 4
        let reached = t0 &+ min(span, UInt64.max / 4)
        return (reached > now ? reached - now : 0) &+ Self.writeMargin
    }
}
