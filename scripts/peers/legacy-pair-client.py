#!/usr/bin/env python3
"""pyatv's own legacy AirPlay pairing client (AirPlayLegacyPairSetupProcedure, LegacySRPAuthHandler,
AirPlayLegacyPairVerifyProcedure) against an accessory at 127.0.0.1:PORT.
Usage: legacy-pair-client.py PORT PIN  → prints "CREDENTIALS <pyatv string>" then "VERIFIED".
"""
import asyncio, sys

from pyatv.protocols.airplay.auth.legacy import AirPlayLegacyPairSetupProcedure, AirPlayLegacyPairVerifyProcedure
from pyatv.protocols.airplay.srp import LegacySRPAuthHandler, new_credentials
from pyatv.support.http import http_connect


async def main(port, pin):
    http = await http_connect("127.0.0.1", port)
    handler = LegacySRPAuthHandler(new_credentials())
    handler.initialize()
    setup = AirPlayLegacyPairSetupProcedure(http, handler)
    await setup.start_pairing()
    creds = await setup.finish_pairing("", int(pin), None)
    print("CREDENTIALS " + str(creds), flush=True)
    verify = AirPlayLegacyPairVerifyProcedure(http, handler)
    await verify.verify_credentials()
    print("VERIFIED", flush=True)
    http.close()


asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
