#!/usr/bin/env python3
"""An mDNS responder (legacy unicast answers only) for one AirPlay speaker, "Porch" on 127.0.0.1,
whose _raop._tcp answer also names an instance it never gives the SRV or TXT of, not even when
asked directly: as when a device's other interface answers the follow-up, or a sleep proxy holds
only the PTR. A scanner must not hold "Porch" back for that instance until its timeout.

Run inside a private network namespace only (lo up, multicast on):
    mdns-ghost-instance.py SECONDS
Prints "ready" once listening; exits after SECONDS.
"""
import socket, struct, sys, time
from zeroconf import DNSIncoming, DNSOutgoing, DNSPointer, DNSService, DNSText, DNSAddress, const

HOST, ADDR, TTL = "porch.local.", "127.0.0.1", 10
AIRPLAY, RAOP = "_airplay._tcp.local.", "_raop._tcp.local."
PORCH_AIRPLAY, PORCH_RAOP, GHOST = "Porch." + AIRPLAY, "AABBCCDDEE07@Porch." + RAOP, "Ghost." + RAOP


def txt(props):
    return b"".join(bytes([len(s)]) + s for s in (f"{k}={v}".encode() for k, v in props.items()))


SRV = {
    PORCH_AIRPLAY: DNSService(PORCH_AIRPLAY, const._TYPE_SRV, const._CLASS_IN, TTL, 0, 0, 7000, HOST),
    PORCH_RAOP: DNSService(PORCH_RAOP, const._TYPE_SRV, const._CLASS_IN, TTL, 0, 0, 7000, HOST),
}
TXT = {
    PORCH_AIRPLAY: DNSText(PORCH_AIRPLAY, const._TYPE_TXT, const._CLASS_IN, TTL,
                           txt({"deviceid": "AA:BB:CC:DD:EE:07", "features": "0x5A7FFFF7,0xE", "model": "AudioAccessory1,1"})),
    PORCH_RAOP: DNSText(PORCH_RAOP, const._TYPE_TXT, const._CLASS_IN, TTL,
                        txt({"am": "AudioAccessory1,1", "ch": "2", "cn": "0,1", "et": "0", "tp": "UDP", "vn": "65537"})),
}
A = DNSAddress(HOST, const._TYPE_A, const._CLASS_IN, TTL, socket.inet_aton(ADDR))
PTR = {
    AIRPLAY: [PORCH_AIRPLAY],
    RAOP: [PORCH_RAOP, GHOST],
}


def answer(msg):
    out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA, multicast=False, id_=msg.id)
    for q in msg.questions:
        name = q.name
        if q.type == const._TYPE_PTR and name in PTR:
            for inst in PTR[name]:
                out.add_answer_at_time(DNSPointer(name, const._TYPE_PTR, const._CLASS_IN, TTL, inst), 0)
                if inst in SRV:
                    out.add_additional_answer(SRV[inst])
                    out.add_additional_answer(TXT[inst])
            out.add_additional_answer(A)
        elif q.type == const._TYPE_SRV and name in SRV:
            out.add_answer_at_time(SRV[name], 0)
            out.add_additional_answer(A)
        elif q.type == const._TYPE_TXT and name in TXT:
            out.add_answer_at_time(TXT[name], 0)
    return out.packets() if out.answers else []


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", 5353))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("224.0.0.251") + socket.inet_aton(ADDR))
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            data, src = s.recvfrom(9000)
        except socket.timeout:
            continue
        if src[1] == 5353:
            continue                     # only legacy unicast queries (a scanner's own port)
        try:
            msg = DNSIncoming(data)
        except Exception:
            continue
        if not msg.is_query():
            continue
        for packet in answer(msg):
            s.sendto(packet, src)


if __name__ == "__main__":
    main()
