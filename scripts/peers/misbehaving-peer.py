#!/usr/bin/env python3
"""A TCP peer that misbehaves in one chosen way, for the CLI's error-table tests.

Usage: misbehaving-peer.py MODE PORT [HOST]   (HOST defaults to 127.0.0.1; PORT 0 = any)
Prints "listening PORT" once it accepts connections.

Modes:
  silent    accept, read everything, never answer, keep the connection open
  eof       accept and close at once
  garbage   accept, send 64 random bytes, keep the connection open
  http404   answer every request with "404 Not Found" (RTSP/1.0 to an RTSP request, else
            HTTP/1.1); binary protocols get the same text, which is garbage to them
  nolength  an AirPlay video device whose answers to POST /play, /stop, /rate, /scrub are
            "HTTP/1.1 200 OK" with neither Content-Length nor Transfer-Encoding, on a connection
            it keeps open; GET /playback-info says the media (1 s) is at its end, so a sender
            finishes after two polls
"""
import os
import plistlib
import socket
import sys
import threading

mode = sys.argv[1]
port = int(sys.argv[2])
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(128)
print("listening", server.getsockname()[1], flush=True)
kept = []


def read_request(conn, buf):
    """One request (head and Content-Length body) from buf + conn; None at EOF."""
    while b"\r\n\r\n" not in buf:
        try:
            conn.settimeout(0.3 if buf else None)
            chunk = conn.recv(65536)
        except socket.timeout:
            return buf, b""  # binary protocol: no HTTP head will come
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or b"0")
    conn.settimeout(None)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def header(request, name):
    for line in request.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() == name:
            return v.strip()
    return None


def serve(conn):
    try:
        if mode == "silent":
            kept.append(conn)
            while conn.recv(65536):
                pass
        elif mode == "eof":
            conn.close()
        elif mode == "garbage":
            conn.sendall(os.urandom(64))
            kept.append(conn)
            while conn.recv(65536):
                pass
        elif mode == "http404":
            buf = b""
            while True:
                request, buf = read_request(conn, buf)
                if request is None:
                    return
                first = request.split(b"\r\n", 1)[0]
                version = b"RTSP/1.0" if first.endswith(b"RTSP/1.0") else b"HTTP/1.1"
                cseq = header(request, b"cseq")
                answer = version + b" 404 Not Found\r\nContent-Length: 0\r\n"
                if cseq is not None:
                    answer += b"CSeq: " + cseq + b"\r\n"
                conn.sendall(answer + b"\r\n")
        elif mode == "nolength":
            buf = b""
            while True:
                request, buf = read_request(conn, buf)
                if request is None:
                    return
                first = request.split(b"\r\n", 1)[0]
                if b" /playback-info " in first:
                    body = plistlib.dumps({"duration": 1.0, "position": 1.0, "rate": 0.0, "readyToPlay": True},
                                          fmt=plistlib.FMT_BINARY)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-apple-binary-plist\r\n"
                                 + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n")
        else:
            raise SystemExit("unknown mode " + mode)
    except OSError:
        pass


while True:
    c, _ = server.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
