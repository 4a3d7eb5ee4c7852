#!/usr/bin/env python3
"""Send ONE legacy-unicast mDNS query (source port != 5353) with PTR questions for the given
service types to HOST:5353 and print what came back as one JSON line:
  {"bytes": N, "tc": bool, "ptr": [instance names], "srv": [names], "txt": [names]}
Used by the avahi discovery test to show that avahi cuts a multi-type answer at 512 bytes.
Run inside a private network namespace only.
Usage: avahi-legacy-query.py HOST TYPE [TYPE...]   (e.g. _airplay._tcp.local)
"""
import json, socket, struct, sys


def encode_name(name):
    out = b""
    for label in name.split("."):
        b = label.encode()
        out += bytes([len(b)]) + b
    return out + b"\0"


def read_name(data, off):
    labels, jumped, end = [], False, off
    for _ in range(64):
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off, jumped = ((n & 0x3F) << 8) | data[off + 1], True
            continue
        labels.append(data[off + 1:off + 1 + n].decode("utf-8", "replace"))
        off += 1 + n
    return ".".join(labels), (end if jumped else off)


def main():
    host, types = sys.argv[1], sys.argv[2:]
    q = struct.pack(">HHHHHH", 0x4242, 0, len(types), 0, 0, 0)
    for t in types:
        q += encode_name(t) + struct.pack(">HH", 12, 0x8001)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q, (host, 5353))
    data, _ = s.recvfrom(9000)
    _, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", data[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(data, off)
        off += 4
    out = {"bytes": len(data), "tc": bool(flags & 0x0200), "ptr": [], "srv": [], "txt": []}
    for _ in range(an + ns + ar):
        name, off = read_name(data, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        if rtype == 12:
            out["ptr"].append(read_name(data, off)[0])
        elif rtype == 33:
            out["srv"].append(name)
        elif rtype == 16:
            out["txt"].append(name)
        off += rdlen
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
