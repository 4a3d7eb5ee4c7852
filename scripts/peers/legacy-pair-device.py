#!/usr/bin/env python3
"""A legacy AirPlay pairing accessory for tests, built from code we did not write.

SRP-6a server: srptools' SRPServerSession with pyatv's own AtvSRPContext (2048-bit group, SHA-1,
K = H(S|0)|H(S|1)); AES-GCM / AES-CTR / Ed25519 / X25519: the `cryptography` package; plists:
Python's plistlib. Routes: POST /pair-pin-start, /pair-setup-pin (3 steps), /pair-verify (2 steps).
Wrong PIN → HTTP 470. Prints "LISTENING <port>" and serves on 127.0.0.1 until stdin closes.
Usage: legacy-pair-device.py --pin 2271
"""
import argparse, asyncio, binascii, hashlib, plistlib, sys

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from srptools import SRPServerSession, constants
from pyatv.protocols.airplay.srp import AtvSRPContext


def sha512(label, data):
    return hashlib.sha512(label.encode() + data).digest()


def setup_key(K, inc):
    iv = bytearray(sha512("Pair-Setup-AES-IV", K)[:16])
    iv[-1] = (iv[-1] + inc) % 256
    return sha512("Pair-Setup-AES-Key", K)[:16], bytes(iv)


class Device:
    def __init__(self, pin):
        self.pin = pin
        self.key = Ed25519PrivateKey.generate()
        self.srp = None
        self.K = None
        self.controllers = []
        self.verify = None

    async def pin_start(self, request):
        self.srp = None
        return web.Response(status=200)

    async def setup(self, request):
        body = plistlib.loads(await request.read())
        if body.get("method") == "pin":
            ctx = AtvSRPContext(body["user"], self.pin, prime=constants.PRIME_2048,
                                generator=constants.PRIME_2048_GEN, hash_func=hashlib.sha1)
            _, verifier, salt = ctx.get_user_data_triplet()
            self.srp = SRPServerSession(ctx, verifier)
            self.salt = salt
            return self.plist({"pk": binascii.unhexlify(self.srp.public), "salt": binascii.unhexlify(salt)})
        if "proof" in body and self.srp is not None:
            self.srp.process(body["pk"].hex(), self.salt)
            if not self.srp.verify_proof(body["proof"].hex().encode()):
                self.srp = None
                print("WRONG-PIN", flush=True)
                return web.Response(status=470)
            self.K = binascii.unhexlify(self.srp.key)
            return self.plist({"proof": binascii.unhexlify(self.srp.key_proof_hash)})
        if "epk" in body and self.K is not None:
            k, iv = setup_key(self.K, 1)
            client_pk = AESGCM(k).decrypt(iv, body["epk"] + body["authTag"], None)
            self.controllers.append(client_pk)
            k2, iv2 = setup_key(self.K, 2)
            ct = AESGCM(k2).encrypt(iv2, self.key.public_key().public_bytes_raw(), None)
            self.K = None
            print("PAIRED " + client_pk.hex(), flush=True)
            return self.plist({"epk": ct[:32], "authTag": ct[32:]})
        return web.Response(status=400)

    async def pair_verify(self, request):
        body = await request.read()
        if body[:1] == b"\x01" and len(body) == 68:
            cx, ced = body[4:36], body[36:68]
            if ced not in self.controllers:
                return web.Response(status=470)
            eph = X25519PrivateKey.generate()
            ox = eph.public_key().public_bytes_raw()
            shared = eph.exchange(X25519PublicKey.from_public_bytes(cx))
            enc = self.ctr(shared)
            sig = enc.update(self.key.sign(ox + cx))
            self.verify = (cx, ced, ox, enc)
            return web.Response(status=200, body=ox + sig)
        if body[:1] == b"\x00" and len(body) == 68 and self.verify:
            cx, ced, ox, enc = self.verify
            self.verify = None
            try:
                Ed25519PublicKey.from_public_bytes(ced).verify(enc.update(body[4:]), cx + ox)
            except Exception:
                return web.Response(status=470)
            print("VERIFIED " + ced.hex(), flush=True)
            return web.Response(status=200)
        return web.Response(status=400)

    @staticmethod
    def ctr(shared):
        return Cipher(algorithms.AES(sha512("Pair-Verify-AES-Key", shared)[:16]),
                      modes.CTR(sha512("Pair-Verify-AES-IV", shared)[:16])).encryptor()

    @staticmethod
    def plist(d):
        return web.Response(status=200, body=plistlib.dumps(d, fmt=plistlib.FMT_BINARY),
                            content_type="application/x-apple-binary-plist")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pin", required=True)
    args = ap.parse_args()
    dev = Device(args.pin)
    app = web.Application()
    app.router.add_post("/pair-pin-start", dev.pin_start)
    app.router.add_post("/pair-setup-pin", dev.setup)
    app.router.add_post("/pair-verify", dev.pair_verify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


asyncio.run(main())
