"""One pocketsphinx decoder in a process of its own, driven over stdin/stdout.

pocketsphinx holds the GIL for the whole of ``process_raw`` (measured: a thread decoding 20 s of audio
stopped the main thread for 2 s at a time), so a decoder in the session host's process would stall its
event loop and every session on it. Here it runs in its own process; the host's ``partials`` lane thread
waits on the pipe, which releases the GIL.

Protocol (all integers big-endian): a request is one op byte, a 4-byte length and a payload; ``F`` feeds
PCM16 and is answered with a 4-byte length and the UTF-8 hypothesis so far; ``S`` starts an utterance and
``E`` ends one (no answer: the pipe keeps them in order with the feeds). The process exits when its stdin
closes, so it never outlives its host.

    python -m vani.adapters.local.partials_worker '{"samprate": 16000, ...}'
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO

HEADER = struct.Struct(">cI")
LENGTH = struct.Struct(">I")


def _read(stream: BinaryIO, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def serve(decoder_kwargs: dict, inp: BinaryIO, out: BinaryIO) -> None:
    from pocketsphinx import Decoder

    dec = Decoder(**decoder_kwargs)
    out.write(LENGTH.pack(0))  # ready: the decoder is built
    out.flush()
    while (head := _read(inp, HEADER.size)) is not None:
        op, n = HEADER.unpack(head)
        payload = _read(inp, n) if n else b""
        if payload is None:
            return
        if op == b"S":
            dec.start_utt()
        elif op == b"E":
            dec.end_utt()
        elif op == b"F":
            dec.process_raw(payload, False, False)
            hyp = dec.hyp()
            text = (hyp.hypstr if hyp is not None else "").encode()
            out.write(LENGTH.pack(len(text)) + text)
            out.flush()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)
