#!/usr/bin/env python3
"""pcm-compare.py SENT RECEIVED — where does the sent PCM (s16le stereo) appear in a capture?

Finds the first non-silent frame of RECEIVED (shairport-sync dithers the silence it generates
itself by ±1 LSB, so |sample| <= 1 counts as silence there; real audio passes bit-exact), locates it in SENT (frame aligned), and compares
from there. Prints JSON: frames lost at the start, frames matched bit-exactly, first mismatch,
leading silence in the capture. Exit status 0 if at least one frame matched.
"""
import json
import struct
import sys


def main():
    sent = open(sys.argv[1], "rb").read()
    recv = open(sys.argv[2], "rb").read()
    recv = recv[: len(recv) - len(recv) % 4]
    def loud(i):
        left, right = struct.unpack_from("<hh", recv, i)
        return abs(left) > 1 or abs(right) > 1
    first = next((i for i in range(0, len(recv), 4) if loud(i)), None)
    out = {"sent_frames": len(sent) // 4, "received_frames": len(recv) // 4}
    if first is None:
        out["error"] = "capture is all silence"
        print(json.dumps(out))
        return 1
    out["leading_silence_frames"] = first // 4
    probe = recv[first:first + 64]
    at = -1
    pos = sent.find(probe)
    while pos >= 0:
        if pos % 4 == 0:
            at = pos
            break
        pos = sent.find(probe, pos + 1)
    if at < 0:
        out["error"] = "first non-silent frames of the capture are not in the sent PCM"
        print(json.dumps(out))
        return 1
    out["lost_at_start_frames"] = at // 4
    n = min(len(sent) - at, len(recv) - first)
    a, b = sent[at:at + n], recv[first:first + n]
    mismatch = next((i for i in range(0, n, 4) if a[i:i + 4] != b[i:i + 4]), None)
    out["matched_frames"] = (mismatch if mismatch is not None else n) // 4
    out["first_mismatch_frame"] = None if mismatch is None else (at + mismatch) // 4
    out["lost_at_start_ms"] = round(1000 * out["lost_at_start_frames"] / 44100, 1)
    print(json.dumps(out))
    return 0 if out["matched_frames"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
