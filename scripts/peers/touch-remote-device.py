#!/usr/bin/env python3
"""Play the Apple TV side of DMAP pairing, for tests: find a Remote's `_touch-remote._tcp`
service with python-zeroconf (a real mDNS browser), then call its `GET /pair` with the pairing
code an Apple TV computes from the Remote's GUID (TXT `Pair`) and the PIN typed by the user:
MD5 over the GUID followed by each PIN digit and a NUL byte, as lowercase hex.

Run inside a private network namespace only:
    touch-remote-device.py --pin 5555 --servicename "Living Room" [--timeout 20]
Prints one JSON object: the resolved service (instance, port, addresses, TXT) and the HTTP
status and hex body of the pairing answer. Exits 1 when no service appears in time.
"""
import argparse, hashlib, json, sys, time, urllib.parse, urllib.request
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener, IPVersion

TYPE = "_touch-remote._tcp.local."


class Listener(ServiceListener):
    def __init__(self):
        self.names = []

    def add_service(self, zc, type_, name):
        self.names.append(name)

    def update_service(self, zc, type_, name):
        pass

    def remove_service(self, zc, type_, name):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pin", required=True)
    ap.add_argument("--servicename", default="Living Room")
    ap.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()

    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    listener = Listener()
    ServiceBrowser(zc, TYPE, listener)
    deadline = time.time() + args.timeout
    while not listener.names and time.time() < deadline:
        time.sleep(0.05)
    if not listener.names:
        print(json.dumps({"error": "no _touch-remote._tcp service found"}))
        zc.close()
        return 1
    name = listener.names[0]
    info = zc.get_service_info(TYPE, name, timeout=5000)
    zc.close()
    if info is None:
        print(json.dumps({"error": f"could not resolve {name}"}))
        return 1
    txt = {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()}
    guid = txt.get("Pair", "")
    merged = guid + "".join(d + "\x00" for d in args.pin.zfill(4))
    code = hashlib.md5(merged.encode()).hexdigest().upper()
    host = info.parsed_addresses()[0]
    query = urllib.parse.urlencode({"pairingcode": code, "servicename": args.servicename})
    status, body = None, b""
    try:
        with urllib.request.urlopen(f"http://{host}:{info.port}/pair?{query}", timeout=5) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status = e.code
    print(json.dumps({"instance": name, "port": info.port, "addresses": info.parsed_addresses(),
                      "txt": txt, "code": code, "status": status, "body": body.hex()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
