import ATVDiscovery

/// DNS / mDNS datagrams: the parser, then what the scanner (multicast and unicast) and the
/// responder of our virtual devices do with one (device building from PTR/SRV/TXT/A records).
let dnsTarget = FuzzTarget(name: "dns", run: { data in
    _ = try? DNSParser.parse(data)
    var multicast = ScanStateMachine(.init(timeout: 3))
    _ = multicast.start(now: 0)
    _ = multicast.received(data, from: "127.0.0.1", now: 0.1)
    _ = multicast.tick(now: 5)
    var unicast = ScanStateMachine(.init(hosts: ["127.0.0.1"], timeout: 3))
    _ = unicast.start(now: 0)
    _ = unicast.received(data, from: "127.0.0.1", now: 0.1)
    _ = unicast.tick(now: 5)
    _ = dnsResponder.received(data, from: "127.0.0.1", port: 5353)
    _ = dnsResponder.received(data, from: "127.0.0.1", port: 40000)
}, seeds: {
    var seeds = [dnsResponder.announcement(), dnsResponder.goodbye()]
    var scan = ScanStateMachine(.init(hosts: ["127.0.0.1"]))
    for case .send(let bytes, _) in scan.start(now: 0) { seeds.append(bytes) }
    for query in seeds.dropFirst(2) {
        for out in dnsResponder.received(query, from: "127.0.0.1", port: 40000) { seeds.append(out.bytes) }
    }
    return seeds
})

let dnsResponder = ResponderStateMachine(services: MDNSService.airPlay1Speaker(
    name: "Fuzz", deviceID: "AA:BB:CC:DD:EE:FF", port: 7000))
