#!/usr/bin/env python3
"""A HAP accessory made of pyatv's own server-side pairing code, for interop tests.

The pairing logic is pyatv 0.18's CompanionServerAuth (pyatv/protocols/companion/server_auth.py,
the code behind pyatv's fake Apple TV): identity seed aa*32, identifier
5D797FD3-3538-427E-A47B-A32FC6CF3A6A, PIN 1111, SRP via srptools. Encrypted data uses pyatv's
own helpers: pyatv.support.chacha20.Chacha20Cipher (Companion framing) and
pyatv.auth.hap_session.HAPSession (HAP 1024-byte block framing), keys from pyatv's hkdf_expand.

Transport (ours, trivial): TCP on 127.0.0.1, each message = u32 BE length ‖ kind(1) ‖ payload.
  kind 1  pair-setup TLV (client → M1/M3/M5, server → M2/M4/M6)
  kind 2  pair-verify TLV (M1/M3 → M2/M4)
  kind 3  Companion frames (type ‖ len24 ‖ ciphertext ‖ tag) with the Companion keys from
          pair-verify; each received frame is answered with one frame of the same type whose
          payload is b"pyatv got: " + plaintext.
  kind 4  HAP-framed bytes on the AirPlay control channel keys (Control-Salt), derived from the
          pair-verify shared secret, or from the SRP session key K after a pair-setup that stopped
          at M4 (transient). Answered with HAP-framed b"pyatv got: " + plaintext + 2000 × b"z".
The script also checks, with python `cryptography`, the Ed25519 signatures the client puts in
pair-setup M5 and pair-verify M3 (pyatv's fake servers do not check them) and reports a failure
as a kind-9 message with the reason.

Prints "LISTENING <port>" on stdout, serves connections one after another until killed or
until stdin closes.
"""

import argparse
import asyncio
import logging
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from pyatv.auth.hap_session import HAPSession
from pyatv.auth.hap_srp import hkdf_expand
from pyatv.auth.hap_tlv8 import TlvValue, read_tlv
from pyatv.protocols.companion.connection import FrameType
from pyatv.protocols.companion.server_auth import CompanionServerAuth
from pyatv.support import chacha20

LOG = logging.getLogger("hap-accessory")


class Accessory(CompanionServerAuth):
    """pyatv's Companion server auth, wired to our envelope transport."""

    def __init__(self, writer):
        super().__init__("swift-atv interop")
        self.writer = writer
        self.companion_keys = None  # (output, input) from pyatv
        self.shared = None  # pair-verify X25519 secret
        self.client_pub = None
        self.companion = None
        self.hap = None
        self.problems = []

    # --- pyatv callbacks -------------------------------------------------------------------
    def send_to_client(self, frame_type, data):
        kind = 1 if frame_type in (FrameType.PS_Start, FrameType.PS_Next) else 2
        send(self.writer, kind, data["_pd"])

    def enable_encryption(self, output_key, input_key):
        LOG.info("pyatv enabled encryption")
        self.companion = chacha20.Chacha20Cipher(output_key, input_key, nonce_length=12)

    # --- extra checks and key capture around pyatv's handlers --------------------------------
    def _m1_verify(self, pairing_data):
        self.client_pub = bytes(pairing_data[TlvValue.PublicKey])
        self.shared = self.keys.verify.exchange(X25519PublicKey.from_public_bytes(self.client_pub))
        super()._m1_verify(pairing_data)

    def _m3_verify(self, pairing_data):
        # pyatv does not check the controller's signature; we do, with the LTPK learned in M5.
        key = hkdf_expand("Pair-Verify-Encrypt-Salt", "Pair-Verify-Encrypt-Info", self.shared)
        inner = read_tlv(chacha20.Chacha20Cipher(key, key).decrypt(
            pairing_data[TlvValue.EncryptedData], nonce=b"PV-Msg03"))
        ident, sig = bytes(inner[TlvValue.Identifier]), bytes(inner[TlvValue.Signature])
        server_pub = self.keys.verify_pub.public_bytes_raw()
        ltpk = PAIRED.get(ident)
        if ltpk is None:
            self.problems.append(f"pair-verify M3 from unknown controller {ident!r}")
        else:
            try:
                Ed25519PublicKey.from_public_bytes(ltpk).verify(sig, self.client_pub + ident + server_pub)
            except Exception:  # noqa: BLE001
                self.problems.append("pair-verify M3 signature invalid")
        super()._m3_verify(pairing_data)

    def _m5_setup(self, pairing_data):
        import binascii
        k = binascii.unhexlify(self.session.key)
        enc = hkdf_expand("Pair-Setup-Encrypt-Salt", "Pair-Setup-Encrypt-Info", k)
        inner = read_tlv(chacha20.Chacha20Cipher(enc, enc).decrypt(
            pairing_data[TlvValue.EncryptedData], nonce=b"PS-Msg05"))
        ident = bytes(inner[TlvValue.Identifier])
        ltpk = bytes(inner[TlvValue.PublicKey])
        sig = bytes(inner[TlvValue.Signature])
        x = hkdf_expand("Pair-Setup-Controller-Sign-Salt", "Pair-Setup-Controller-Sign-Info", k)
        try:
            Ed25519PublicKey.from_public_bytes(ltpk).verify(sig, x + ident + ltpk)
            PAIRED[ident] = ltpk
        except Exception:  # noqa: BLE001
            self.problems.append("pair-setup M5 signature invalid")
        super()._m5_setup(pairing_data)

    def hap_session(self):
        if self.hap is None:
            if self.shared is not None:
                secret = self.shared
            else:  # transient: keys from the SRP session key K
                import binascii
                secret = binascii.unhexlify(self.session.key)
            self.hap = HAPSession()
            # Accessory side: output = controller's read key.
            self.hap.enable(hkdf_expand("Control-Salt", "Control-Read-Encryption-Key", secret),
                            hkdf_expand("Control-Salt", "Control-Write-Encryption-Key", secret))
        return self.hap


PAIRED = {}  # controller id -> LTPK, across connections (like a real accessory)


def send(writer, kind, payload):
    writer.write(struct.pack(">IB", len(payload) + 1, kind) + bytes(payload))


def companion_frames(data):
    frames = []
    while len(data) >= 4:
        length = int.from_bytes(data[1:4], "big")
        frames.append((data[0], data[0:4], data[4:4 + length]))
        data = data[4 + length:]
    return frames


async def handle(reader, writer):
    acc = Accessory(writer)
    started_setup = started_verify = False
    try:
        while True:
            header = await reader.readexactly(5)
            length, kind = struct.unpack(">IB", header)
            payload = await reader.readexactly(length - 1)
            if kind == 1:
                acc.handle_auth_frame(FrameType.PS_Next if started_setup else FrameType.PS_Start, {"_pd": payload})
                started_setup = True
            elif kind == 2:
                acc.handle_auth_frame(FrameType.PV_Next if started_verify else FrameType.PV_Start, {"_pd": payload})
                started_verify = True
            elif kind == 3:
                out = b""
                for ftype, fheader, body in companion_frames(payload):
                    plain = acc.companion.decrypt(body, aad=fheader) if body else b""
                    reply = b"pyatv got: " + plain
                    rheader = bytes([ftype]) + (len(reply) + 16).to_bytes(3, "big")
                    out += rheader + acc.companion.encrypt(reply, aad=rheader)
                send(writer, 3, out)
            elif kind == 4:
                session = acc.hap_session()
                plain = session.decrypt(payload)
                send(writer, 4, session.encrypt(b"pyatv got: " + plain + b"z" * 2000))
            if acc.problems:
                send(writer, 9, "; ".join(acc.problems).encode())
                acc.problems.clear()
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    except Exception as ex:  # noqa: BLE001 - report to the test, then drop the connection
        LOG.exception("accessory failed")
        send(writer, 9, f"accessory error: {type(ex).__name__}: {ex}".encode())
    finally:
        try:
            await writer.drain()
        except Exception:  # noqa: BLE001
            pass
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    await stdin_closed  # the test closes our stdin (or kills us) to stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
