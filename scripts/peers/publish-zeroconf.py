#!/usr/bin/env python3
"""Publish realistic Apple devices with python-zeroconf, for discovery tests.

Run inside a private network namespace only (never send mDNS on a real network):
    unshare --net sh -c 'ip link set lo up; ip link set lo multicast on; publish-zeroconf.py --seconds 20'

Devices (each on its own loopback address, added to lo by the caller or by --add-addresses):
  127.0.0.2  "Living Room"   Apple TV 4K (tvOS 14.7): MRP, AirPlay, RAOP, Companion, device-info
  127.0.0.3  "Küche"         HomePod mini: AirPlay, RAOP, Companion
  127.0.0.4  "Bedroom"       Apple TV 3: DMAP (touch-able), Home Sharing, AirPlay, RAOP
  127.0.0.5  "Den"           deep sleep (--sleep-proxy): AirPlay and RAOP with port 0
Prints "ready" on stdout once registered; exits after --seconds.
"""
import argparse, socket, subprocess, sys, time
from zeroconf import Zeroconf, ServiceInfo, IPVersion

DEVICES = [
    ("127.0.0.2", "Living-Room.local.", [
        ("_mediaremotetv._tcp.local.", "Living Room", 49152, {
            "Name": "Living Room", "UniqueIdentifier": "6D797FD3-3538-427E-A47B-A32FC6CF3A69",
            "SystemBuildVersion": "18M60", "macAddress": "AA:BB:CC:DD:EE:01", "AllowPairing": "YES",
            "ModelName": "Apple TV", "BluetoothAddress": "AA:BB:CC:DD:EE:02",
            "LocalAirPlayReceiverPairingIdentity": "7A3C2F10-1B2C-4D5E-8F90-1A2B3C4D5E6F"}),
        ("_airplay._tcp.local.", "Living Room", 7000, {
            "acl": "0", "btaddr": "AA:BB:CC:DD:EE:02", "deviceid": "AA:BB:CC:DD:EE:01",
            "features": "0x5A7FDFD5,0x3C155FDE", "flags": "0x244", "gid": "C0FFEE00-0000-4000-8000-000000000001",
            "igl": "1", "gcgl": "1", "model": "AppleTV6,2", "protovers": "1.1", "pi": "4ddd5c1b-1a3c-4a4b-9a6e-3c1c4c1d5e6f",
            "psi": "4DDD5C1B-1A3C-4A4B-9A6E-3C1C4C1D5E6F",
            "pk": "9a6c1f7a39e08d5b2c0a7f7e5f5e7c1b4b6b0e0d9c8b7a6f5e4d3c2b1a09f8e7",
            "srcvers": "560.8.4", "osvers": "14.7", "vv": "2"}),
        ("_raop._tcp.local.", "AABBCCDDEE01@Living Room", 7000, {
            "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": "0x5A7FDFD5,0x3C155FDE", "am": "AppleTV6,2",
            "md": "0,1,2", "rhd": "5.6.0.0", "sf": "0x244", "sr": "44100", "ss": "16", "ch": "2",
            "tp": "UDP", "vn": "65537", "vs": "560.8.4", "ov": "14.7", "vv": "2",
            "pk": "9a6c1f7a39e08d5b2c0a7f7e5f5e7c1b4b6b0e0d9c8b7a6f5e4d3c2b1a09f8e7"}),
        ("_companion-link._tcp.local.", "Living Room", 49153, {
            "rpMac": "2", "rpHN": "9f8a7b6c5d4e", "rpFl": "0x36782", "rpHA": "1a2b3c4d5e6f",
            "rpMd": "AppleTV6,2", "rpVr": "310.7", "rpAD": "aabbccddeeff", "rpHI": "112233445566",
            "rpBA": "AA:BB:CC:DD:EE:02", "rpMRtID": "6D797FD3-3538-427E-A47B-A32FC6CF3A69"}),
        ("_device-info._tcp.local.", "Living Room", 0, {"model": "J105aAP"}),
    ]),
    ("127.0.0.3", "Kueche.local.", [
        ("_airplay._tcp.local.", "Küche", 7000, {
            "acl": "0", "deviceid": "D0:D2:B0:00:00:03", "features": "0x4A7FCA00,0xBC354BD0", "flags": "0x18644",
            "model": "AudioAccessory5,1", "osvers": "17.2", "protovers": "1.1", "srcvers": "720.3.3",
            "pi": "2e388006-13ba-4041-9a67-25dd4a43d536", "psi": "2E388006-13BA-4041-9A67-25DD4A43D536"}),
        ("_raop._tcp.local.", "D0D2B0000003@Küche", 7000, {
            "cn": "0,1,2,3", "da": "true", "et": "0,4", "ft": "0x4A7FCA00,0xBC354BD0", "am": "AudioAccessory5,1",
            "md": "0,1,2", "sf": "0x18644", "sr": "44100", "ss": "16", "ch": "2", "tp": "UDP",
            "vn": "65537", "vs": "720.3.3", "ov": "17.2"}),
        ("_companion-link._tcp.local.", "Küche", 49154, {
            "rpMd": "AudioAccessory5,1", "rpFl": "0x627B6", "rpVr": "520.8", "rpMac": "0"}),
    ]),
    ("127.0.0.4", "Bedroom.local.", [
        ("_touch-able._tcp.local.", "0123456789ABCDEF", 3689, {
            "CtlN": "Bedroom", "DvTy": "AppleTV", "DvSv": "3232", "Ver": "131077", "OSsi": "0x1F5",
            "txtvers": "1", "atSV": "65541", "DbId": "0123456789ABCDEF", "MiTPV": "196611"}),
        ("_appletv-v2._tcp.local.", "0123456789ABCDEF_hs", 3689, {
            "Name": "Bedroom", "hG": "00000000-1111-2222-3333-444444444444", "txtvers": "1", "MID": "0x1234"}),
        ("_airplay._tcp.local.", "Bedroom", 7000, {
            "deviceid": "58:55:CA:00:00:04", "features": "0x5A7FFFF7,0xE", "flags": "0x44",
            "model": "AppleTV3,2", "srcvers": "220.68", "vv": "2"}),
        ("_raop._tcp.local.", "5855CA000004@Bedroom", 49155, {
            "am": "AppleTV3,2", "ch": "2", "cn": "0,1,2,3", "et": "0,3,5", "md": "0,1,2", "sf": "0x44",
            "sr": "44100", "ss": "16", "tp": "UDP", "vn": "65537", "vs": "220.68", "ov": "8.4.4"}),
    ]),
]

SLEEPER = ("127.0.0.5", "Den.local.", [
    ("_airplay._tcp.local.", "Den", 0, {"deviceid": "AA:00:00:00:00:05", "model": "AppleTV11,1"}),
    ("_raop._tcp.local.", "AA0000000005@Den", 0, {"am": "AppleTV11,1"}),
])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--add-addresses", action="store_true", help="add 127.0.0.2-5 to lo (inside a namespace)")
    ap.add_argument("--sleep-proxy", action="store_true", help="also publish a sleeping device (ports 0)")
    ap.add_argument("--only", help="comma-separated addresses to publish")
    args = ap.parse_args()
    devices = DEVICES + ([SLEEPER] if args.sleep_proxy else [])
    if args.only:
        keep = set(args.only.split(","))
        devices = [d for d in devices if d[0] in keep]
    if args.add_addresses:
        for addr, _, _ in devices:
            subprocess.run(["ip", "addr", "add", addr + "/8", "dev", "lo"], stderr=subprocess.DEVNULL)
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    infos = []
    for addr, host, services in devices:
        for stype, instance, port, props in services:
            info = ServiceInfo(stype, f"{instance}.{stype}", addresses=[socket.inet_aton(addr)], port=port,
                               properties=props, server=host)
            zc.register_service(info, allow_name_change=False, cooperating_responders=True)
            infos.append(info)
    print("ready", flush=True)
    try:
        time.sleep(args.seconds)
    finally:
        for info in infos:
            zc.unregister_service(info)
        zc.close()


if __name__ == "__main__":
    sys.exit(main())
