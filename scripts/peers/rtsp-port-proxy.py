#!/usr/bin/env python3
"""rtsp-port-proxy.py — put a lossy UDP relay in a RAOP receiver's audio path.

  rtsp-port-proxy.py --listen 5100 --target-port 5000 --loss 0.05 --seed 1 [--only-audio]
                     [--max-seconds 120]

A TCP proxy for RTSP on 127.0.0.1: the sender connects to LISTEN, everything is forwarded to the
receiver on TARGET_PORT. When a response carries `Transport: …server_port=N…` (the answer to
SETUP), a udp-loss-relay.py is started towards 127.0.0.1:N and `server_port=N` is rewritten to the
relay's port, so RTP audio goes through the relay while control and timing go direct. When the
proxy stops (SIGTERM/SIGINT or --max-seconds) it stops its relays; their counts are printed as
JSON lines on stdout. Loopback only.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Proxy:
    def __init__(self, args):
        self.args = args
        self.relays = []
        self.lock = threading.Lock()

    def start_relay(self, server_port):
        cmd = [sys.executable, os.path.join(HERE, "udp-loss-relay.py"), "--listen", "0",
               "--target", f"127.0.0.1:{server_port}", "--loss", str(self.args.loss),
               "--seed", str(self.args.seed), "--max-seconds", str(self.args.max_seconds)]
        if self.args.only_audio:
            cmd.append("--only-audio")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        port = json.loads(p.stdout.readline())["listening"]
        with self.lock:
            self.relays.append(p)
        print(json.dumps({"relay": port, "to": server_port}), flush=True)
        return port

    def rewrite(self, head):
        def repl(m):
            return f"server_port={self.start_relay(int(m.group(1)))}"
        lines = head.split("\r\n")
        for i, line in enumerate(lines):
            if line.lower().startswith("transport:") and "server_port=" in line:
                lines[i] = re.sub(r"server_port=(\d+)", repl, line)
        return "\r\n".join(lines)

    def pump_requests(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def pump_responses(self, src, dst):
        """Forward RTSP responses message by message so the Transport header can be rewritten."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = src.recv(65536)
                    if not data:
                        if buf:
                            dst.sendall(buf)
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                text = head.decode("latin-1")
                m = re.search(r"^content-length:\s*(\d+)", text, re.I | re.M)
                length = int(m.group(1)) if m else 0
                while len(buf) < length:
                    data = src.recv(65536)
                    if not data:
                        break
                    buf += data
                body, buf = buf[:length], buf[length:]
                dst.sendall(self.rewrite(text).encode("latin-1") + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(self):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.args.listen))
        srv.listen(4)
        srv.settimeout(0.2)
        print(json.dumps({"listening": srv.getsockname()[1]}), flush=True)
        deadline = time.monotonic() + self.args.max_seconds
        while not STOP.is_set() and time.monotonic() < deadline:
            try:
                client, _ = srv.accept()
            except socket.timeout:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.args.target_port), timeout=5)
            upstream.settimeout(None)
            threading.Thread(target=self.pump_requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.pump_responses, args=(upstream, client), daemon=True).start()
        srv.close()

    def stop_relays(self):
        with self.lock:
            relays = list(self.relays)
        for p in relays:
            p.terminate()
        for p in relays:
            try:
                out, _ = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            for line in out.splitlines():
                print(line, flush=True)


STOP = threading.Event()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target-port", type=int, default=5000)
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only-audio", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    proxy = Proxy(args)
    try:
        proxy.serve()
    finally:
        proxy.stop_relays()


if __name__ == "__main__":
    main()
