#!/usr/bin/env python3
"""Client-side CPU of pyatv 0.18's own AirPlay pairing procedures, for atv-bench.

pyatv's `AirPlayHapTransientPairVerifyProcedure` (transient pair-setup M1-M4; PIN 1111 here, see below) and
`AirPlayHapPairVerifyProcedure` (pair-verify M1-M4 with stored credentials) run unchanged; only
their HTTP connection is replaced by a shim that carries each `/pair-setup` / `/pair-verify` body
over the envelope transport of scripts/peers/hap-accessory.py (u32 BE length, kind, payload) —
the same accessory, same transport and same socket calls the Swift side uses.

Per run: a new TCP connection, then the thread CPU time (time.thread_time) of the whole
procedure, I/O included. Credentials for pair-verify come from one PIN pair-setup (1111) done
first with pyatv's `AirPlayHapPairSetupProcedure`, not measured.
Prints one JSON object: {"transient_ms": [...], "verify_ms": [...]}.
"""
import argparse, asyncio, json, struct, time

from pyatv.auth.hap_srp import SRPAuthHandler
from pyatv.auth.hap_pairing import parse_credentials  # noqa: F401  (ensures pyatv is importable)
from pyatv.protocols.airplay.auth.hap import AirPlayHapPairSetupProcedure, AirPlayHapPairVerifyProcedure
from pyatv.protocols.airplay.auth import hap_transient
from pyatv.protocols.airplay.auth.hap_transient import AirPlayHapTransientPairVerifyProcedure
from pyatv.support.http import HttpResponse


class EnvelopeHttp:
    """Just enough of pyatv's HttpConnection: post() over the envelope transport."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def post(self, path, body=None, headers=None):
        kind = {"/pair-setup": 1, "/pair-verify": 2}.get(path)
        if kind is None:  # /pair-pin-start: nothing to carry
            return HttpResponse("HTTP", "1.1", 200, "OK", {}, b"")
        self.writer.write(struct.pack(">IB", len(body) + 1, kind) + bytes(body))
        await self.writer.drain()
        head = await self.reader.readexactly(5)
        n, k = struct.unpack(">IB", head)
        payload = await self.reader.readexactly(n - 1)
        if k == 9:
            raise RuntimeError("accessory reported: " + payload.decode(errors="replace"))
        return HttpResponse("HTTP", "1.1", 200, "OK", {}, payload)


async def connect(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return EnvelopeHttp(reader, writer), writer


# pyatv's server-side code (the accessory) ignores the transient flag and always uses PIN 1111;
# give pyatv's client the same PIN the Swift side uses so both run an exchange that succeeds.
hap_transient.TRANSIENT_PIN = 1111


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()

    http, w = await connect(args.port)
    setup = AirPlayHapPairSetupProcedure(http, SRPAuthHandler())
    await setup.start_pairing()
    credentials = await setup.finish_pairing("swift-atv-bench", 1111, "bench")
    w.close()

    transient, verify = [], []
    for _ in range(args.runs):
        http, w = await connect(args.port)
        t0 = time.thread_time()
        await AirPlayHapTransientPairVerifyProcedure(http, SRPAuthHandler()).verify_credentials()
        transient.append((time.thread_time() - t0) * 1000)
        w.close()
    for _ in range(args.runs):
        http, w = await connect(args.port)
        t0 = time.thread_time()
        proc = AirPlayHapPairVerifyProcedure(http, SRPAuthHandler(), credentials)
        await proc.verify_credentials()
        proc.encryption_keys("Control-Salt", "Control-Write-Encryption-Key", "Control-Read-Encryption-Key")
        verify.append((time.thread_time() - t0) * 1000)
        w.close()
    print(json.dumps({"transient_ms": transient, "verify_ms": verify}))


asyncio.run(main())
