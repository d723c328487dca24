"""How long a TTS byte stream plays, cut at whole codec frames: the pacing clock for compressed audio.

The reply pacer (``actors/agent/reply.py``) must know how many seconds of audio it has sent: that is what keeps
it at most ``playout_lead_ms`` ahead of playback, what maps playback time to the words heard on barge-in,
and what tells it when the user has heard the whole reply. For PCM that is bytes / byte rate; compressed
audio has no fixed byte rate, so each format's own headers say it:

- MP3 (MPEG-1/2/2.5, Layer I/II/III): each frame header gives bit rate, sample rate and padding, hence the
  frame's length in bytes and its samples (384 / 1152 / 576). ID3v2 tags play for 0 s.
- Ogg/Opus: each page's granule position is the stream's sample count (48 kHz) at the page's end; a
  page plays for the granule advance (the first audio page minus OpusHead's pre-skip). A new stream
  (BOS page, as each TTS request starts one) restarts the count.
- PCM (linear16 / mulaw / alaw, raw or in a WAV container): bytes / byte rate, whole samples.
- Anything else (AAC, FLAC): the configured bit rate when known, else 0 s (not paced).

A ``Framer`` takes bytes as they arrive and hands back only whole frames (so every frame sent to the
client is decodable on its own) with their duration; ``rest()`` at the end of a stream returns a
truncated tail too, timed at the stream's average rate.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from typing import Protocol

_MP3_BITRATES = {  # kbit/s by (MPEG-1?, layer) -> index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_BITRATES[(False, 3)] = _MP3_BITRATES[(False, 2)]
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits
OPUS_RATE = 48000  # Ogg/Opus granule positions always count 48 kHz samples


class Framer(Protocol):
    def feed(self, data: bytes) -> None: ...

    def ready_s(self) -> float:
        """Seconds of whole frames buffered (0 if none)."""
        ...

    def has_frames(self) -> bool: ...

    def take(self, max_s: float = math.inf) -> tuple[bytes, float]:
        """Whole frames buffered, at most ``max_s`` of them (but at least one), and how long they play."""
        ...

    def rest(self) -> tuple[bytes, float]:
        """Everything buffered at the end of a stream (a truncated tail included), and how long it plays."""
        ...


def mp3_frame(head: bytes) -> tuple[int, int, int] | None:
    """(frame length in bytes, samples, sample rate) of an MPEG audio frame header, None if not one."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    br_index, sr_index, padding = head[2] >> 4, (head[2] >> 2) & 3, (head[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or br_index in (0, 15) or sr_index == 3:
        return None  # reserved values (free-format bit rate is not supported: no known TTS sends it)
    mpeg1, layer = version == 3, 4 - layer_bits
    bit_rate = _MP3_BITRATES[(mpeg1, layer)][br_index - 1] * 1000
    rate = _MP3_RATES[version][sr_index]
    if layer == 1:
        return (12 * bit_rate // rate + padding) * 4, 384, rate
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bit_rate // rate + padding, samples, rate


class _Buffered:
    """Shared bookkeeping: bytes in, a prefix of whole frames (``whole`` bytes, ``whole_s`` seconds).

    ``take(max_s)`` cuts that prefix at a frame boundary, so a provider that sends seconds of audio in one
    piece is still paced frame by frame (``reply._AudioOut``) instead of sent ahead of playback at once.
    """

    divisible = 0  # bytes a frame may be cut at (PCM: a sample); 0: codec frames are never cut

    def __init__(self) -> None:
        self.buf = bytearray()
        self.whole = 0
        self.whole_s = 0.0
        self.frames: deque[tuple[int, float]] = deque()  # (bytes, seconds) of each whole frame, in order
        self.total_bytes = 0  # for the average rate of a truncated tail
        self.total_s = 0.0

    def ready_s(self) -> float:
        return self.whole_s

    def has_frames(self) -> bool:
        return self.whole > 0

    def _frame(self, size: int, seconds: float) -> None:
        self.whole += size
        self.whole_s += seconds
        self.total_bytes += size
        self.total_s += seconds
        self.frames.append((size, seconds))

    def take(self, max_s: float = math.inf) -> tuple[bytes, float]:
        if max_s >= self.whole_s - 1e-9:
            n, secs = self.whole, self.whole_s
            self.frames.clear()
        else:
            n, secs = self._cut(max_s)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.whole -= n
        self.whole_s = self.whole_s - secs if self.frames else 0.0
        return data, secs

    def _cut(self, max_s: float) -> tuple[int, float]:
        """Pop whole frames worth at most ``max_s`` (at least one, or part of a divisible one)."""
        n, secs = 0, 0.0
        while self.frames:
            size, s = self.frames[0]
            if secs + s <= max_s + 1e-9 or (n == 0 and not self.divisible):
                self.frames.popleft()
                n, secs = n + size, secs + s
                continue
            if self.divisible and s > 0:  # cut this PCM run at a whole sample
                # (+1e-6: a float residue of the seconds must not cost the cut a whole sample)
                part = int((max_s - secs) / s * size + 1e-6) // self.divisible * self.divisible
                part = max(part, self.divisible if n == 0 else 0)
                if part:
                    part_s = s * part / size
                    self.frames[0] = (size - part, s - part_s)
                    n, secs = n + part, secs + part_s
            break
        return n, secs

    def rest(self) -> tuple[bytes, float]:
        data, secs = self.take()
        tail = bytes(self.buf)
        self.buf.clear()
        if tail and self.total_bytes:
            secs += len(tail) * self.total_s / self.total_bytes
        return data + tail, secs


class Mp3Framer(_Buffered):
    def feed(self, data: bytes) -> None:
        self.buf += data
        buf, i = self.buf, self.whole
        while len(buf) - i >= 10:
            if buf[i : i + 3] == b"ID3":  # ID3v2: 10-byte header, syncsafe size, optional 10-byte footer
                size = 10 + ((buf[i + 6] & 0x7F) << 21 | (buf[i + 7] & 0x7F) << 14 | (buf[i + 8] & 0x7F) << 7)
                size += (buf[i + 9] & 0x7F) + (10 if buf[i + 5] & 0x10 else 0)
                seconds = 0.0
            elif (frame := mp3_frame(bytes(buf[i : i + 4]))) is not None:
                size, seconds = frame[0], frame[1] / frame[2]
            else:  # not a frame start: skip to the next sync byte (the junk plays for 0 s)
                nxt = buf.find(b"\xff", i + 1)
                size, seconds = (nxt - i if nxt > 0 else len(buf) - i), 0.0
            if len(buf) - i < size:
                break
            self._frame(size, seconds)
            i += size


class OggFramer(_Buffered):
    """Whole Ogg pages, timed by Opus granule positions."""

    def __init__(self) -> None:
        super().__init__()
        self.granule = 0  # sample count at the end of the last timed page of the current stream
        self.pre_skip = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        buf, i = self.buf, self.whole
        while len(buf) - i >= 27:
            if buf[i : i + 4] != b"OggS":
                nxt = buf.find(b"OggS", i + 1)
                skip = nxt - i if nxt > 0 else max(0, len(buf) - i - 3)
                if not skip:
                    break
                self._frame(skip, 0.0)
                i += skip
                continue
            nseg = buf[i + 26]
            if len(buf) - i < 27 + nseg:
                break
            size = 27 + nseg + sum(buf[i + 27 : i + 27 + nseg])
            if len(buf) - i < size:
                break
            flags, granule = buf[i + 5], struct.unpack_from("<q", buf, i + 6)[0]
            body = bytes(buf[i + 27 + nseg : i + 27 + nseg + 19])
            if flags & 0x02:  # beginning of a stream: the count restarts
                self.granule, self.pre_skip = 0, 0
                if body[:8] == b"OpusHead" and len(body) >= 12:
                    self.pre_skip = struct.unpack_from("<H", body, 10)[0]
            seconds = 0.0
            if granule >= 0 and granule > self.granule:  # -1: no packet ends on this page
                seconds = (granule - max(self.granule, self.pre_skip)) / OPUS_RATE
                self.granule = granule
            self._frame(size, max(0.0, seconds))
            i += size


class PcmFramer(_Buffered):
    """Raw PCM (whole samples) or a WAV file (header bytes play for 0 s, then PCM)."""

    def __init__(self, bytes_per_s: float, sample_bytes: int, wav: bool) -> None:
        super().__init__()
        self.bytes_per_s, self.sample_bytes = bytes_per_s, sample_bytes
        self.divisible = sample_bytes
        self.header = wav  # still inside a WAV header

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.header:
            at = _wav_data_offset(self.buf)
            if at is None:
                return
            self.header = False
            self._frame(at, 0.0)
        n = len(self.buf) - self.whole
        n -= n % self.sample_bytes
        if n:
            self._frame(n, n / self.bytes_per_s)

    def rest(self) -> tuple[bytes, float]:
        return self.take()  # an odd trailing byte waits for the next piece: every frame is whole samples


def _wav_data_offset(buf: bytearray) -> int | None:
    """Where a WAV file's sample data starts (after RIFF/WAVE and every chunk before ``data``), None
    while the header is not complete yet."""
    at = 12
    while len(buf) >= at + 8:
        chunk_id, size = bytes(buf[at : at + 4]), struct.unpack_from("<I", buf, at + 4)[0]
        if chunk_id == b"data":
            return at + 8
        at += 8 + size + (size & 1)
    return None


class BitRateFramer(_Buffered):
    """A format we cannot parse: timed by its nominal bit rate (0 s if unknown), cut anywhere."""

    def __init__(self, bit_rate: int | None) -> None:
        super().__init__()
        self.bytes_per_s = (bit_rate or 0) / 8

    def feed(self, data: bytes) -> None:
        self.buf += data
        self._frame(len(data), len(data) / self.bytes_per_s if self.bytes_per_s else 0.0)


def framer_for(encoding: str, container: str, sample_rate: int, channels: int, bit_rate: int | None) -> Framer:
    """The framer for a TTS stream of this format (as announced / sniffed, see ``adapters/tts/sniff.py``)."""
    if container == "ogg" or encoding == "opus":
        return OggFramer()
    if encoding == "mp3":
        return Mp3Framer()
    if encoding in ("linear16", "mulaw", "alaw") and container in ("none", "wav"):
        sample_bytes = (2 if encoding == "linear16" else 1) * channels
        return PcmFramer(float(sample_bytes * sample_rate), sample_bytes, container == "wav")
    return BitRateFramer(bit_rate)
