import ATVPTP

/// PTP datagrams (UDP 319/320): the codec, then the master's state machine receiving them
/// (Delay_Req answers, unicast grants, ignored Announces). Whatever parses re-encodes to a message
/// that parses to the same body and TLVs.
let ptpTarget = FuzzTarget(name: "ptp", run: { data in
    if let m = try? PTPMessage(parsing: data) {
        guard let again = try? PTPMessage(parsing: m.encoded()), again.body == m.body, again.tlvs.count == m.tlvs.count else {
            fatalError("ptp: a parsed message does not re-encode to the same message")
        }
        _ = m.unicastRequests
        _ = m.unicastGrants
    }
    var core = PTPMasterCore(config: PTPMasterConfig(clockIdentity: PTPClockIdentity(0x0242_ACFF_FE11_0002)))
    _ = core.start(now: 1_000_000_000)
    let out = core.received(data, from: "192.0.2.2", port: 319, on: .event, at: 1_001_000_000)
    for o in out.send where (try? PTPMessage(parsing: o.bytes)) == nil {
        fatalError("ptp: the master sent a message it cannot parse")
    }
    _ = core.tick(now: 400_000_000_000)
}, seeds: {
    var core = PTPMasterCore(config: PTPMasterConfig(clockIdentity: PTPClockIdentity(0x0242_ACFF_FE11_0002)))
    let start = core.start(now: 1_000_000_000)
    var seeds = start.send.map(\.bytes)
    if let token = start.send.compactMap(\.syncToken).first { seeds.append(core.syncSent(token, at: 1_000_000_100).bytes) }
    let follower = PTPPortIdentity(clock: PTPClockIdentity(0x1122_33FF_FE44_5566), port: 1)
    seeds.append(PTPMessage(header: PTPHeader(type: .delayReq, source: follower, sequenceId: 9, flags: [], logMessageInterval: 0x7F),
                            body: .delayReq(origin: .zero)).encoded())
    seeds.append(PTPMessage(header: PTPHeader(type: .signaling, source: follower, sequenceId: 3, flags: [.unicast], logMessageInterval: 0x7F),
                            body: .signaling(target: .all),
                            tlvs: [PTPUnicastTransmission(messageType: 0, logInterMessagePeriod: -3, duration: 60).requestTLV]).encoded())
    seeds.append(PTPMessage(header: PTPHeader(type: .management, source: follower, sequenceId: 5, flags: [], logMessageInterval: 0x7F, majorSdoId: 0),
                            body: .management(target: .all, startingBoundaryHops: 0, boundaryHops: 0, action: 0),
                            tlvs: [PTPTLV(type: PTPTLV.management, value: [0x20, 0x04])]).encoded())
    return seeds
})
