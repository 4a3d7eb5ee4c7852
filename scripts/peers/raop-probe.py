#!/usr/bin/env python3
"""raop-probe.py — a minimal RAOP (AirPlay 1) sender used to check the test receiver.

Sends a known test signal as verbatim (uncompressed) ALAC frames to a receiver such as
shairport-sync, answering its timing requests and retransmit requests, then writes the PCM it sent
(s16le stereo 44.1 kHz) to --sent so a test can compare it with what the receiver played.

  raop-probe.py --port 5000 --seconds 2 --sent /tmp/sent.pcm [--sync-before-timing]

Run it inside the receiver's namespace (scripts/peers/in-netns.sh NAME raop-probe.py …).
Prints one JSON line with what happened. Loopback only.
"""
import argparse
import json
import math
import random
import re
import select
import socket
import struct
import sys
import threading
import time

FRAMES = 352
RATE = 44100
LATENCY = 22050 + RATE  # frames, as pyatv uses
NTP_EPOCH = 0x83AA7E80


def ntp_now():
    t = time.time()
    sec = int(t) + NTP_EPOCH
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return sec, frac


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def put(self, value, bits):
        self.acc = (self.acc << bits) | (value & ((1 << bits) - 1))
        self.nbits += bits
        while self.nbits >= 8:
            self.nbits -= 8
            self.out.append((self.acc >> self.nbits) & 0xFF)
        self.acc &= (1 << self.nbits) - 1

    def finish(self):
        if self.nbits:
            self.out.append((self.acc << (8 - self.nbits)) & 0xFF)
            self.acc = self.nbits = 0
        return bytes(self.out)


def verbatim_alac(samples):
    """samples: list of (left, right) int16 pairs, len == FRAMES. Stereo CPE, escape (verbatim)."""
    w = BitWriter()
    w.put(1, 3)   # element type: channel pair
    w.put(0, 4)   # element instance tag
    w.put(0, 12)  # unused
    w.put(0, 1)   # partial frame: no (full 352 frames)
    w.put(0, 2)   # bytes shifted
    w.put(1, 1)   # escape: samples stored verbatim
    for left, right in samples:
        w.put(left, 16)
        w.put(right, 16)
    w.put(7, 3)   # ID_END
    return w.finish()


def signal(frame_index):
    """Left: 440 Hz sine; right: a slow ramp. Both never all-zero, easy to find in a capture."""
    left = int(12000 * math.sin(2 * math.pi * 440 * frame_index / RATE))
    right = ((frame_index * 7) % 20000) - 10000
    return left, right


class RTSP:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.cseq = 0
        self.buf = b""
        self.session = None

    def request(self, method, uri, headers=None, body=b""):
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: swift-atv-probe/0",
                 "DACP-ID: 14413BE4996FEA4D", "Active-Remote: 2543110914"]
        if self.session:
            lines.append(f"Session: {self.session}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{method}: connection closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        text = head.decode(errors="replace").split("\r\n")
        status = int(text[0].split()[1])
        hdrs = {}
        for line in text[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self.buf += self.sock.recv(4096)
        self.buf = self.buf[n:]
        return status, hdrs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the test signal")
    ap.add_argument("--sent", help="write the PCM sent (s16le stereo) here")
    ap.add_argument("--sync-before-timing", action="store_true",
                    help="send the first sync at once instead of after the first timing reply")
    ap.add_argument("--latency", type=int, default=LATENCY,
                    help="frames between the two RTP times of a sync packet (pyatv: 66150)")
    ap.add_argument("--start-delay", type=float, default=0.0,
                    help="seconds to wait (after the first timing reply) before the first sync and audio packet")
    ap.add_argument("--volume", type=float, help="send SET_PARAMETER volume: DB (e.g. 0.0) before RECORD")
    ap.add_argument("--audio-port", type=int, help="send RTP audio here instead of the SETUP server_port (e.g. a loss relay)")
    args = ap.parse_args()
    latency = args.latency
    report = {"events": []}
    t0 = time.monotonic()

    def ev(what):
        report["events"].append([round(time.monotonic() - t0, 3), what])

    ctrl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctrl.bind(("127.0.0.1", 0))
    timing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    timing.bind(("127.0.0.1", 0))
    audio = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    audio.bind(("127.0.0.1", 0))

    rtsp = RTSP(args.host, args.port)
    session_id = random.randint(1, 2**31)
    sdp = (f"v=0\r\no=iTunes {session_id} 0 IN IP4 127.0.0.1\r\ns=iTunes\r\nc=IN IP4 {args.host}\r\nt=0 0\r\n"
           f"m=audio 0 RTP/AVP 96\r\na=rtpmap:96 AppleLossless\r\n"
           f"a=fmtp:96 {FRAMES} 0 16 40 10 14 2 255 0 0 {RATE}\r\n").encode()
    st, _ = rtsp.request("ANNOUNCE", f"rtsp://127.0.0.1/{session_id}", {"Content-Type": "application/sdp"}, sdp)
    ev(f"ANNOUNCE {st}")
    st, h = rtsp.request("SETUP", f"rtsp://127.0.0.1/{session_id}", {
        "Transport": "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;"
                     f"control_port={ctrl.getsockname()[1]};timing_port={timing.getsockname()[1]}"})
    transport = h.get("transport", "")
    ev(f"SETUP {st} {transport}")
    ports = dict(re.findall(r"(server_port|control_port|timing_port)=(\d+)", transport))
    rtsp.session = h.get("session", "1").split(";")[0]
    server_port = args.audio_port or int(ports["server_port"])
    control_port = int(ports["control_port"])
    report["receiver_ports"] = {k: int(v) for k, v in ports.items()}

    if args.volume is not None:
        st, _ = rtsp.request("SET_PARAMETER", f"rtsp://127.0.0.1/{session_id}", {"Content-Type": "text/parameters"},
                             f"volume: {args.volume:.6f}\r\n".encode())
        ev(f"SET_PARAMETER volume {st}")

    seq0 = random.randint(0, 0xFFFF)
    ts0 = latency
    st, _ = rtsp.request("RECORD", f"rtsp://127.0.0.1/{session_id}",
                         {"Range": "npt=0-", "RTP-Info": f"seq={seq0};rtptime={ts0}"})
    ev(f"RECORD {st}")

    sent_packets = {}
    stop = threading.Event()
    timing_seen = threading.Event()
    counters = {"timing_requests": 0, "retransmit_requests": 0, "retransmitted": 0}

    def responder():
        while not stop.is_set():
            r, _, _ = select.select([timing, ctrl], [], [], 0.1)
            for s in r:
                data, addr = s.recvfrom(2048)
                if s is timing and len(data) >= 32 and data[1] & 0x7F == 0x52:
                    counters["timing_requests"] += 1
                    rs, rf = ntp_now()
                    # reference = the request's send time; receive = send = now
                    reply = bytes([data[0], 0xD3]) + b"\x00\x07" + b"\x00" * 4 + data[24:32] + \
                        struct.pack(">IIII", rs, rf, rs, rf)
                    timing.sendto(reply, addr)
                    if not timing_seen.is_set():
                        ev("first timing request answered")
                        timing_seen.set()
                elif s is ctrl and len(data) >= 8 and data[1] & 0x7F == 0x55:
                    first, count = struct.unpack(">HH", data[4:8])
                    counters["retransmit_requests"] += 1
                    for i in range(count):
                        pkt = sent_packets.get((first + i) & 0xFFFF)
                        if pkt:
                            ctrl.sendto(b"\x80\xd6" + struct.pack(">H", (first + i) & 0xFFFF) + pkt, addr)
                            counters["retransmitted"] += 1

    th = threading.Thread(target=responder, daemon=True)
    th.start()
    if not args.sync_before_timing:
        if not timing_seen.wait(3.0):
            ev("no timing request within 3 s")
    time.sleep(args.start_delay)

    def send_sync(head_ts, first):
        s, f = ntp_now()
        pkt = bytes([0x90 if first else 0x80, 0xD4]) + b"\x00\x07" + struct.pack(">IIII", (head_ts - latency) & 0xFFFFFFFF, s, f, head_ts & 0xFFFFFFFF)
        ctrl.sendto(pkt, ("127.0.0.1", control_port))

    total = int(args.seconds * RATE) // FRAMES
    pad = latency // FRAMES + 1  # silence afterwards so everything sent gets played
    sent_pcm = bytearray()
    start = time.monotonic()
    next_sync = 0.0
    for n in range(total + pad):
        head_ts = ts0 + n * FRAMES
        now = time.monotonic() - start
        if n == 0 or now >= next_sync:
            send_sync(head_ts, n == 0)
            next_sync = now + 1.0
        if n < total:
            samples = [signal(n * FRAMES + i) for i in range(FRAMES)]
        else:
            samples = [(0, 0)] * FRAMES
        if n < total:
            sent_pcm += b"".join(struct.pack("<hh", l, r) for l, r in samples)
        payload = verbatim_alac(samples)
        seq = (seq0 + n) & 0xFFFF
        pkt = bytes([0x80, 0xE0 if n == 0 else 0x60]) + struct.pack(">HII", seq, head_ts & 0xFFFFFFFF, session_id) + payload
        sent_packets[seq] = pkt
        if len(sent_packets) > 1000:
            sent_packets.pop(next(iter(sent_packets)))
        audio.sendto(pkt, ("127.0.0.1", server_port))
        delay = start + (n + 1) * FRAMES / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    ev(f"sent {total} signal packets + {pad} silence packets")
    time.sleep(0.3)
    st, _ = rtsp.request("TEARDOWN", f"rtsp://127.0.0.1/{session_id}")
    ev(f"TEARDOWN {st}")
    stop.set()
    th.join()
    if args.sent:
        with open(args.sent, "wb") as f:
            f.write(sent_pcm)
    report.update(counters)
    report["signal_bytes"] = len(sent_pcm)
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
