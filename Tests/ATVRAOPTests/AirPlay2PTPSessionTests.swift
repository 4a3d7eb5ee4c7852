import ATVAirPlayCore
import ATVCore
import ATVHTTP
import ATVTestSupport
import Testing

/// The PTP session SETUP and SETPEERS / SETPEERSX (docs/PTP-AND-BUFFERED-AUDIO.md
/// §3.2, §3.3). Byte vectors made by Python's plistlib (what pyatv's plists are), not by our encoder.
@Suite("AirPlay 2 PTP session messages")
struct AirPlay2PTPSessionTests {
    static let clockID: UInt64 = 0x0242_ACFF_FE11_0002
    static let peer = AirPlay2TimingPeer(id: "6A1B2C3D-0000-4000-8000-00000000A1B2",
                                         addresses: ["192.168.1.10", "fe80::1"], clockID: clockID)

    @Test("session SETUP with PTP: timingProtocol PTP, timingPeerInfo, one-copy timingPeerList, no timingPort")
    func ptpSessionSetup() throws {
        let timing = AirPlay2PTPTiming.sender(id: Self.peer.id!, addresses: Self.peer.addresses, clockID: Self.clockID,
                                              groupUUID: "67EAD1FA-7EAD-4B5F-A0E0-3D2F8F5E1C11")
        let body = AirPlay2SessionSetup.body(timing: .ptp(timing), sessionUUID: "0F1E2D3C-4B5A-4978-8796-A5B4C3D2E1F0",
                                             identity: AirPlay2SenderIdentity())
        #expect(body["timingProtocol"] == .string("PTP"))
        #expect(body["timingPort"] == nil)
        let info = try #require(body["timingPeerInfo"]?.dict)
        #expect(info["Addresses"] == .array([.string("192.168.1.10"), .string("fe80::1")]))
        #expect(info["ID"] == .string("6A1B2C3D-0000-4000-8000-00000000A1B2"))
        #expect(info["ClockID"] == .int(0x0242_ACFF_FE11_0002))
        #expect(info["DeviceType"] == .int(0))
        #expect(info["SupportsClockPortMatchingOverride"] == .bool(false))
        #expect(info["ClockPorts"] == nil)
        #expect(body["timingPeerList"] == .array([.dict(info)]))
        #expect(body["groupUUID"] == .string("67EAD1FA-7EAD-4B5F-A0E0-3D2F8F5E1C11"))
        #expect(body["groupContainsGroupLeader"] == .bool(false))
        #expect(body["sessionUUID"] == .string("0F1E2D3C-4B5A-4978-8796-A5B4C3D2E1F0"))

        // The receiver's side reads back exactly what was sent, through the wire encoding.
        let decoded = try BinaryPlist.decode(BinaryPlist.encode(body))
        #expect(try AirPlay2Timing(sessionSetup: decoded) == .ptp(timing))
    }

    @Test("timingPeerList variants: omitted, one copy, every member; a clock id with the top bit set is a negative integer")
    func peerListVariants() throws {
        let other = AirPlay2TimingPeer(id: "192.168.1.20", addresses: ["192.168.1.20"], clockID: 0x8000_0000_0000_0001,
                                       deviceType: nil, supportsClockPortMatchingOverride: true,
                                       clockPorts: ["6A1B2C3D-0000-4000-8000-00000000A1B2": 319])
        let omitted = AirPlay2PTPTiming(peerInfo: Self.peer, peerList: .omitted).entries
        #expect(omitted["timingPeerList"] == nil)
        let members = AirPlay2PTPTiming(peerInfo: Self.peer, peerList: .peers([other, Self.peer])).entries
        let list = try #require(members["timingPeerList"]?.array)
        #expect(list.count == 2)
        #expect(list[0]["ClockID"] == .int(Int64.min + 1))
        #expect(list[0]["ClockPorts"] == .dict(["6A1B2C3D-0000-4000-8000-00000000A1B2": .int(319)]))
        #expect(list[0]["DeviceType"] == nil)
        for variant in [AirPlay2TimingPeerList.omitted, .sender, .peers([other, Self.peer])] {
            let timing = AirPlay2PTPTiming(peerInfo: Self.peer, peerList: variant)
            let body = AirPlay2SessionSetup.body(timing: .ptp(timing), sessionUUID: "u", identity: AirPlay2SenderIdentity())
            #expect(try AirPlay2PTPTiming(sessionSetup: BinaryPlist.decode(BinaryPlist.encode(body))) == timing)
        }
    }

    @Test("the receiver's side: NTP, None, PTP without timingPeerInfo refused, unknown protocols refused")
    func requestedTiming() throws {
        #expect(try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("NTP"), "timingPort": .int(7010)])) == .ntp(timingPort: 7010))
        #expect(try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("None")])) == AirPlay2Timing.none)
        #expect(try AirPlay2Timing(sessionSetup: .dict([:])) == AirPlay2Timing.none)
        #expect(throws: ATVError.self) { try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("PTP")])) }
        #expect(throws: ATVError.self) { try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("NTP")])) }
        #expect(throws: ATVError.self) { try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("GPS")])) }
        #expect(throws: ATVError.self) {
            try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("PTP"), "timingPeerInfo": .array([])]))
        }
        #expect(throws: ATVError.self) {
            try AirPlay2Timing(sessionSetup: .dict(["timingProtocol": .string("PTP"),
                                                    "timingPeerInfo": .dict(["Addresses": .array([.int(1)])])]))
        }
    }

    @Test("session SETUP reply: eventPort, timingPort 0 and shairport-sync's timingPeerInfo {Addresses, ID}")
    func ptpSessionReply() throws {
        let sps = BinaryPlist.encode(.dict([
            "eventPort": .int(40_123), "timingPort": .int(0),
            "timingPeerInfo": .dict(["Addresses": .array([.string("192.168.1.20"), .string("fe80::20")]), "ID": .string("192.168.1.20")]),
        ]))
        let reply = try AirPlay2PTPSessionReply(parsing: sps)
        #expect(reply.eventPort == 40_123)
        #expect(reply.timingPort == 0)
        #expect(reply.timingPeer == AirPlay2TimingPeer(id: "192.168.1.20", addresses: ["192.168.1.20", "fe80::20"],
                                                       clockID: nil, deviceType: nil, supportsClockPortMatchingOverride: nil))
        #expect(try AirPlay2PTPSessionReply(parsing: BinaryPlist.encode(reply.body)) == reply)
        // The NTP reply parser still reads it (timingPort 0 is not a port).
        #expect(try AirPlay2SessionReply(parsing: sps) == AirPlay2SessionReply(eventPort: 40_123, timingPort: nil))
        let bare = try AirPlay2PTPSessionReply(parsing: BinaryPlist.encode(.dict(["eventPort": .int(7000)])))
        #expect(bare.timingPeer == nil && bare.timingPort == nil)
        #expect(throws: ATVError.self) { try AirPlay2PTPSessionReply(parsing: BinaryPlist.encode(.dict(["timingPort": .int(0)]))) }
        #expect(throws: ATVError.self) {
            try AirPlay2PTPSessionReply(parsing: BinaryPlist.encode(.dict(["eventPort": .int(7000), "timingPeerInfo": .string("x")])))
        }
    }

    @Test("SETPEERS: an array of address strings, /peer-list-changed, plistlib's bytes")
    func setPeers() throws {
        let addresses = AirPlay2Peers.addressList(members: [["192.168.1.20"], ["192.168.1.10"]], sender: ["192.168.1.10"])
        #expect(addresses == ["192.168.1.20", "192.168.1.10"])
        let request = AirPlay2Peers.setPeers(addresses, uri: "rtsp://192.168.1.10/1234")
        #expect(request.method == "SETPEERS")
        #expect(request.uri == "rtsp://192.168.1.10/1234")
        #expect(request.headers["Content-Type"] == "/peer-list-changed")
        #expect(request.body == hex("62706c6973743030a201025c3139322e3136382e312e32305c3139322e3136382e312e3130080b18"
            + "0000000000000101000000000000000300000000000000000000000000000025"))
        #expect(try AirPlay2Peers.addresses(fromSetPeers: request.body) == addresses)
        let cli = AirPlay2Peers.setPeers(addresses, uri: "rtsp://x/1", contentType: AirPlay2Peers.binaryPlistContentType)
        #expect(cli.headers["Content-Type"] == "application/x-apple-binary-plist")
        #expect(throws: ATVError.self) { try AirPlay2Peers.addresses(fromSetPeers: BinaryPlist.encode(.array([.int(1)]))) }
        #expect(throws: ATVError.self) { try AirPlay2Peers.addresses(fromSetPeers: BinaryPlist.encode(.dict([:]))) }
        #expect(throws: ATVError.self) { try AirPlay2Peers.addresses(fromSetPeers: [1, 2, 3]) }
    }

    @Test("SETPEERSX: an array of peer dictionaries, /peer-list-changed-x, plistlib's bytes")
    func setPeersX() throws {
        let request = AirPlay2Peers.setPeersX([Self.peer], uri: "rtsp://192.168.1.10/1234")
        #expect(request.method == "SETPEERSX")
        #expect(request.headers["Content-Type"] == "/peer-list-changed-x")
        #expect(request.body == hex("62706c6973743030a101d50203040506070a0b0c0d5941646472657373657357436c6f636b49445a44"
            + "6576696365547970655249445f1021537570706f727473436c6f636b506f72744d61746368696e674f76657272696465a208095c"
            + "3139322e3136382e312e313057666538303a3a31130242acfffe11000210005f102436413142324333442d303030302d343030302d"
            + "383030302d30303030303030304131423208080a151f273235595c69717a7ca30000000000000101000000000000000e0000000000"
            + "00000000000000000000a4"))
        #expect(try AirPlay2Peers.peers(fromSetPeersX: request.body) == [Self.peer])
        #expect(throws: ATVError.self) { try AirPlay2Peers.peers(fromSetPeersX: BinaryPlist.encode(.array([.string("1.2.3.4")]))) }
    }
}
