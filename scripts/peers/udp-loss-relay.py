#!/usr/bin/env python3
"""udp-loss-relay.py — forward UDP datagrams on loopback, dropping a seeded random fraction.

  udp-loss-relay.py --listen 7003 --target 127.0.0.1:6003 --loss 0.05 --seed 1 [--only-audio]
                    [--max-seconds 120] [--bind 127.0.0.92]

Datagrams arriving on BIND:LISTEN (BIND 127.0.0.1 unless given) go to TARGET; datagrams the target sends back to the relay
go to the last sender. With --only-audio only RTP audio (payload type 0x60, with or without the
marker bit: byte 1 is 0x60 or 0xE0) is subject to loss; everything else passes. The first line on
stdout is `{"listening": PORT}` (useful with --listen 0). On SIGTERM/SIGINT, after --max-seconds,
or on exit it prints one JSON line: forwarded / dropped / passed-back counts. Loopback only, or
the documentation ranges of RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) that tests
give the veth links of their private network namespaces.
"""
import argparse
import json
import random
import select
import signal
import socket
import sys
import time


def is_audio(data):
    return len(data) >= 12 and data[0] & 0xC0 == 0x80 and data[1] & 0x7F == 0x60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True, help="UDP port on --bind (0 = any free port)")
    ap.add_argument("--bind", default="127.0.0.1", help="loopback address to listen on (127.0.0.0/8)")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to (loopback only)")
    ap.add_argument("--loss", type=float, default=0.0, help="fraction of datagrams to drop, 0..1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only-audio", action="store_true", help="drop only RTP audio datagrams (PT 0x60)")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    args = ap.parse_args()

    def loopback(h):
        # Loopback, or a documentation address (RFC 5737) as tests give their namespaces' veths.
        test_net = h.rsplit(".", 1)[0] in ("192.0.2", "198.51.100", "203.0.113") and h.count(".") == 3
        return h == "localhost" or (h.startswith("127.") and h.count(".") == 3) or test_net

    host, _, port = args.target.rpartition(":")
    if not loopback(host) or not loopback(args.bind):
        sys.exit("udp-loss-relay: --target and --bind must be loopback addresses (127.0.0.0/8) or RFC 5737 test addresses")
    target = ("127.0.0.1" if host == "localhost" else host, int(port))
    if not 0.0 <= args.loss <= 1.0:
        sys.exit("udp-loss-relay: --loss must be in 0..1")

    rng = random.Random(args.seed)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind((args.bind, args.listen))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind((args.bind, 0))
    print(json.dumps({"listening": front.getsockname()[1]}), flush=True)

    stats = {"forwarded": 0, "dropped": 0, "dropped_seqnos": [], "passed_back": 0}
    done = False

    def stop(*_):
        nonlocal done
        done = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = None
    deadline = time.monotonic() + args.max_seconds
    try:
        while not done and time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([front, back], [], [], 0.2)
            except InterruptedError:
                continue
            for s in ready:
                data, addr = s.recvfrom(65536)
                if s is front:
                    client = addr
                    subject = is_audio(data) if args.only_audio else True
                    if subject and rng.random() < args.loss:
                        stats["dropped"] += 1
                        if is_audio(data) and len(stats["dropped_seqnos"]) < 1000:
                            stats["dropped_seqnos"].append(int.from_bytes(data[2:4], "big"))
                        continue
                    back.sendto(data, target)
                    stats["forwarded"] += 1
                elif client is not None:
                    front.sendto(data, client)
                    stats["passed_back"] += 1
    finally:
        print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
