"""Check what audio a provider really sent: Workers AI Aura sometimes returns MP3 whatever was asked."""

from __future__ import annotations

import struct

from vani.adapters.base import AudioFormat


def sniff(head: bytes, asked: AudioFormat) -> AudioFormat:
    """The format of a body starting with ``head`` (>= 12 bytes when available), trusting magic bytes."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        rate = asked.sample_rate
        if len(head) >= 28:
            fmt, channels, rate = struct.unpack("<HHI", head[20:28])
            enc = {1: "linear16", 6: "alaw", 7: "mulaw"}.get(fmt, asked.encoding)
            return AudioFormat(enc, rate, "wav", channels)
        return AudioFormat(asked.encoding, rate, "wav", asked.channels)
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return AudioFormat("mp3", asked.sample_rate, "none", asked.channels)
    if head[:4] == b"OggS":
        return AudioFormat(asked.encoding if asked.encoding == "opus" else "opus", 48000, "ogg", asked.channels)
    if head[:4] == b"fLaC":
        return AudioFormat("flac", asked.sample_rate, "none", asked.channels)
    return asked
