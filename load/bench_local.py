"""Benchmark of the embedded offline providers on this machine.

Reports WER, partial (Update) latency, end-of-turn latency, final-transcript latency, TTS time to
first audio and RTF, STT RTF, process RSS, and how many concurrent real-time local sessions the
machine sustains. Prints a table and writes load/results/bench_local.json.

    .venv/bin/python load/bench_local.py [--max-sessions 8] [--quick]

Latencies are measured with audio paced at real time in 80 ms chunks, on the wall clock, from the
moment the audio an event refers to was sent: partial latency = Update arrival - send time of its
``audio_window_end``; end-of-turn latency = EndOfTurn arrival - send time of the end of the speech
(the last 10 ms louder than -45 dBFS, not the file's end; includes the silence the turn detector
needs); final-transcript latency = EndOfTurn arrival - send time of its ``audio_window_end`` (the
inference after the decision).

False cut-offs: every clip of ``load/pause_set.py`` (the recordings with 0.3-0.9 s of silence put
between two words inside a sentence) is fed through a stream; a cut-off is an EndOfTurn before the
speech resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import sys
import time
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load.agent_client import first_piece  # noqa: E402
from load.pause_set import PausedClip  # noqa: E402
from load.pause_set import build as build_pause_set  # noqa: E402
from load.report import machine  # noqa: E402
from tests.support.flux_rules import check_flux_order  # noqa: E402
from tests.support.speech import speech_end_s  # noqa: E402
from tests.support.wer import wer, words  # noqa: E402
from vani.adapters.base import SttOptions, TtsOptions, TurnEventType  # noqa: E402
from vani.adapters.local import inference_pool  # noqa: E402
from vani.adapters.local.stt import LocalStt  # noqa: E402
from vani.adapters.local.tts import EspeakTts, PiperTts  # noqa: E402

DATA = ROOT / "tests" / "data"
REFS: dict[str, str] = json.loads((DATA / "transcripts.json").read_text())
CHUNK = 2560  # 80 ms at 16 kHz
REPLY = "Sure, I can book a table for two at seven tomorrow evening. Would you like me to add a note about parking?"


def read(name: str) -> bytes:
    with wave.open(str(DATA / name)) as w:
        return w.readframes(w.getnframes())


def gap(s: float) -> bytes:
    return bytes(2 * int(s * 16000))


def script(names: list[str], pause: float = 3.0) -> tuple[bytes, list[tuple[str, float]]]:
    """All files with pauses between; returns audio and (name, speech end in s) per file."""
    pcm, ends = gap(0.5), []
    for n in names:
        speech = read(n)
        ends.append((n, len(pcm) / 32000 + speech_end_s(speech)))
        pcm += speech + gap(pause)
    return pcm, ends


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


async def paced_session(stt: LocalStt, pcm: bytes, ends, sid: str, realtime: bool = True) -> dict:
    stream = await stt.open(sid, SttOptions())
    got: list[tuple[float, object]] = []

    async def reader() -> None:
        async for ev in stream.events():
            got.append((time.perf_counter(), ev))

    task = asyncio.create_task(reader())
    t0 = time.perf_counter()
    for k, i in enumerate(range(0, len(pcm), CHUNK)):
        if realtime:
            delay = t0 + k * CHUNK / 32000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await stream.send_audio(pcm[i : i + CHUNK])
    fed = time.perf_counter() - t0
    await stream.close()
    await task
    wall = time.perf_counter() - t0
    events = [e for _, e in got]

    def sent_at(audio_s: float) -> float:
        # Wall time at which the chunk holding audio second ``audio_s`` was sent (chunk k at k*80 ms).
        return t0 + max(0, math.ceil(audio_s / (CHUNK / 32000) - 1e-6) - 1) * CHUNK / 32000

    updates = [t - sent_at(e.audio_window_end) for t, e in got if e.event is TurnEventType.UPDATE]
    texted = [t - sent_at(e.audio_window_end) for t, e in got if e.event is TurnEventType.UPDATE and e.transcript]
    eots = [(t, e) for t, e in got if e.event is TurnEventType.END_OF_TURN]
    res = {
        "violations": check_flux_order(events, max_update_gap_s=0.3),
        "update_lag": updates,
        "partial_lag": texted,
        "eot_latency": [],
        "final_latency": [t - sent_at(e.audio_window_end) for t, e in eots],
        "transcripts": [e.transcript for _, e in eots],
        "fed_s": fed,
        "wall_s": wall,
    }
    for (_, end_s), (t, _) in zip(ends, eots, strict=False):
        res["eot_latency"].append(t - sent_at(end_s))
    return res


async def bench_stt(stt: LocalStt, names: list[str]) -> dict:
    pcm, ends = script(names)
    r = await paced_session(stt, pcm, ends, "bench")
    errs, n_words = 0.0, 0
    per_file = {}
    for (name, _), hyp in zip(ends, r["transcripts"], strict=False):
        w = wer(REFS[name], hyp)
        per_file[name] = {"wer": round(w, 3), "hyp": hyp}
        errs += w * len(words(REFS[name]))
        n_words += len(words(REFS[name]))
    missing = len(ends) - len(r["transcripts"])
    # As-fast-as-possible run for the STT real-time factor.
    fast = await paced_session(stt, pcm, ends, "bench-fast", realtime=False)
    audio_s = len(pcm) / 32000
    return {
        "wer": round(errs / max(1, n_words), 3),
        "turns_missing": missing,
        "per_file": per_file,
        "violations": r["violations"],
        "partial_latency_p50_s": round(pct(r["partial_lag"], 50), 3),
        "partial_latency_p95_s": round(pct(r["partial_lag"], 95), 3),
        "eot_latency_s": [round(x, 3) for x in r["eot_latency"]],
        "eot_latency_p50_s": round(pct(r["eot_latency"], 50), 3),
        "eot_latency_max_s": round(max(r["eot_latency"] or [float("nan")]), 3),
        "final_latency_p50_s": round(pct(r["final_latency"], 50), 3),
        "final_latency_max_s": round(max(r["final_latency"] or [float("nan")]), 3),
        "stt_rtf": round(fast["wall_s"] / audio_s, 3),
        "audio_s": round(audio_s, 2),
    }


async def bench_tts(provider, runs: int = 3) -> dict:
    ttfa, rtf = [], []
    async for _ in provider.synthesize("Warm up.", TtsOptions()):
        pass
    for _ in range(runs):
        t0 = time.perf_counter()
        first, n = None, 0
        async for c in provider.synthesize(REPLY, TtsOptions(sample_rate=24000)):
            first = first if first is not None else time.perf_counter() - t0
            n += len(c.audio)
        total = time.perf_counter() - t0
        ttfa.append(first or float("nan"))
        rtf.append(total / (n / 2 / 24000))
    # What the pipeline sends TTS first: the chunker's first speakable piece of the reply.
    piece, words = first_piece(REPLY)
    piece_ttfa = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async for _c in provider.synthesize(piece, TtsOptions(sample_rate=24000)):
            piece_ttfa.append(time.perf_counter() - t0)
            break
    return {
        "ttfa_s": round(statistics.median(ttfa), 3),
        "rtf": round(statistics.median(rtf), 3),
        "first_piece": piece,
        "first_piece_words": words,
        "first_piece_ttfa_s": round(statistics.median(piece_ttfa), 3),
    }


def first_audio(eot_s: list[float], tts: dict, token_delay_s: float = 0.02) -> dict:
    """First assistant audio after the end of speech, composed from measured parts: the turn's end (each
    measured turn), the reply engine's word pacing up to the first piece, and TTS's first audio for it.
    The local reply engine itself takes no measurable time; the host's hops add ~1-2 ms (bench_rtt)."""
    xs = [e + tts["first_piece_words"] * token_delay_s + tts["first_piece_ttfa_s"] for e in eot_s]
    return {"p50_s": round(pct(xs, 50), 3), "p95_s": round(pct(xs, 95), 3), "composed": True}


async def cut_off(stt: LocalStt, clip: PausedClip) -> dict:
    """One paused clip, fed as fast as the stream takes it (decisions are on the audio clock)."""
    lead = 0.5
    pcm = gap(lead) + clip.pcm() + gap(2.5)
    stream = await stt.open(f"pause-{clip.name}-{clip.cut_s}-{clip.pause_s}", SttOptions())
    events = []

    async def reader() -> None:
        async for ev in stream.events():
            events.append(ev)

    task = asyncio.create_task(reader())
    for i in range(0, len(pcm), CHUNK):
        await stream.send_audio(pcm[i : i + CHUNK])
    await stream.close()
    await task
    ends = [e for e in events if e.event is TurnEventType.END_OF_TURN]
    resumed_at = lead + clip.cut_s + clip.pause_s
    cut = bool(ends) and ends[0].audio_window_end < resumed_at
    return {"name": clip.name, "cut_s": clip.cut_s, "pause_s": clip.pause_s, "before": clip.before, "cut": cut}


async def bench_pauses(stt: LocalStt) -> dict:
    clips = build_pause_set()
    gate = asyncio.Semaphore(2)  # two streams at once: the heavy lane has two workers

    async def one(c: PausedClip) -> dict:
        async with gate:
            return await cut_off(stt, c)

    rows = await asyncio.gather(*(one(c) for c in clips))
    by_pause = {
        str(p): round(
            sum(r["cut"] for r in rows if r["pause_s"] == p) / max(1, sum(r["pause_s"] == p for r in rows)), 3
        )
        for p in sorted({r["pause_s"] for r in rows})
    }
    return {
        "pauses": len(rows),
        "cut_offs": sum(r["cut"] for r in rows),
        "rate": round(sum(r["cut"] for r in rows) / max(1, len(rows)), 3),
        "rate_by_pause_s": by_pause,
        "cut": [f"{r['name']} +{r['pause_s']} s after ...{r['before'][-40:]}" for r in rows if r["cut"]],
    }


STAGGER_S = 0.4  # session i starts i x this later: turns end close together, as in a busy room


async def bench_concurrency(stt: LocalStt, max_sessions: int) -> list[dict]:
    """N sessions talking at once in real time (3 turns each, starts STAGGER_S apart).

    ``sustained``: no Flux violation, no lost turn, Update lag p95 <= 0.5 s, final latency max <= 3 s.
    ``within_1_5x``: issue 15's bar, end-of-turn and final-transcript medians at most 1.5x the one-session row's.
    """
    names = ["librivox_0870.wav", "librivox_0920.wav", "booking_espeak.wav"]
    pcm, ends = script(names, pause=3.0)

    async def one(i: int) -> dict:
        await asyncio.sleep(i * STAGGER_S)
        return await paced_session(stt, pcm, ends, f"c{i}")

    rows: list[dict] = []
    for n in range(1, max_sessions + 1):
        rs = await asyncio.gather(*(one(i) for i in range(n)))
        upd = [x for r in rs for x in r["update_lag"]]
        fin = [x for r in rs for x in r["final_latency"]]
        eot = [x for r in rs for x in r["eot_latency"]]
        row = {
            "sessions": n,
            "eot_latency_p50_s": round(pct(eot, 50), 3),
            "eot_latency_max_s": round(max(eot or [float("nan")]), 3),
            "final_latency_p50_s": round(pct(fin, 50), 3),
            "final_latency_max_s": round(max(fin or [float("nan")]), 3),
            "update_lag_p95_s": round(pct(upd, 95), 3),
            "partial_lag_p50_s": round(pct([x for r in rs for x in r["partial_lag"]], 50), 3),
            "sustained": all(not r["violations"] for r in rs)
            and all(len(r["transcripts"]) == len(names) for r in rs)
            and pct(upd, 95) <= 0.5
            and max(fin or [99]) <= 3.0,
        }
        base = rows[0] if rows else row
        row["within_1_5x"] = (
            row["eot_latency_p50_s"] <= 1.5 * base["eot_latency_p50_s"]
            and row["final_latency_p50_s"] <= 1.5 * base["final_latency_p50_s"]
        )
        rows.append(row)
        print(f"  {n} sessions: {row}", flush=True)
        if not row["sustained"]:
            break
    return rows


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-sessions", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="skip the concurrency sweep")
    ap.add_argument("--only-concurrency", action="store_true", help="the concurrency sweep alone")
    ap.add_argument("--no-partials", action="store_true", help="local_partial_decoders=0 (no pocketsphinx)")
    ap.add_argument("--no-pauses", action="store_true", help="skip the false cut-off set")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a local_* setting, e.g. local_whisper_window_s=0",
    )
    ap.add_argument("--out", default="", help="result file name under load/results/ (default bench_local)")
    args = ap.parse_args()
    overrides: dict = {"local_partial_decoders": 0} if args.no_partials else {}
    for kv in args.set:
        key, _, value = kv.partition("=")
        overrides[key] = float(value)
    settings = SimpleNamespace(**overrides) if overrides else None
    out: dict = {
        "machine": machine(),
        "cores": os.cpu_count(),
        "lanes": inference_pool.sizes(),
        "partials": not args.no_partials,
        "settings": overrides,
    }
    t0 = time.perf_counter()
    stt = LocalStt(settings)
    await stt.warm_up()
    out["stt_load_s"] = round(time.perf_counter() - t0, 2)
    if args.only_concurrency:
        out["concurrency"] = await bench_concurrency(stt, args.max_sessions)
        print_concurrency(out["concurrency"])
        write(out, args.out or "bench_local_concurrency")
        return
    out["stt"] = await bench_stt(stt, [n for n in REFS])
    out["rss_after_stt_mb"] = round(rss_mb())
    if not args.no_pauses:
        t1 = time.perf_counter()
        out["pauses"] = await bench_pauses(stt)
        out["pauses"]["wall_s"] = round(time.perf_counter() - t1, 1)
    out["tts_piper"] = await bench_tts(PiperTts(None))
    out["first_audio"] = first_audio(out["stt"]["eot_latency_s"], out["tts_piper"])
    out["tts_espeak"] = await bench_tts(EspeakTts(None))
    out["rss_after_tts_mb"] = round(rss_mb())
    if not args.quick:
        out["concurrency"] = await bench_concurrency(stt, args.max_sessions)
        ok = [r["sessions"] for r in out["concurrency"] if r["sustained"]]
        out["sustained_sessions"] = max(ok) if ok else 0
        fast = [r["sessions"] for r in out["concurrency"] if r["within_1_5x"]]
        out["sessions_within_1_5x"] = max(fast) if fast else 0
    out["max_rss_mb"] = round(rss_mb())
    s = out["stt"]
    rows = [
        ("STT WER (6 utts, Whisper tiny.en final)", s["wer"]),
        ("STT turns missing / Flux violations", f"{s['turns_missing']} / {len(s['violations'])}"),
        ("partial latency p50 / p95", f"{s['partial_latency_p50_s']} / {s['partial_latency_p95_s']} s"),
        ("end-of-turn latency p50 / max (from speech end)", f"{s['eot_latency_p50_s']} / {s['eot_latency_max_s']} s"),
        ("final-transcript latency p50 / max", f"{s['final_latency_p50_s']} / {s['final_latency_max_s']} s"),
        ("STT RTF (fed as fast as possible)", s["stt_rtf"]),
        (
            "first audio after speech end p50 / p95 (composed: EOT + reply pacing + Piper first piece)",
            f"{out['first_audio']['p50_s']} / {out['first_audio']['p95_s']} s",
        ),
        (
            "false cut-offs (mid-sentence pauses 0.3-0.9 s)",
            "skipped"
            if "pauses" not in out
            else f"{out['pauses']['cut_offs']} / {out['pauses']['pauses']} = {out['pauses']['rate']} "
            f"{out['pauses']['rate_by_pause_s']}",
        ),
        ("TTS Piper time to first audio / RTF", f"{out['tts_piper']['ttfa_s']} s / {out['tts_piper']['rtf']}"),
        (
            "TTS Piper first audio of the first piece",
            f"{out['tts_piper']['first_piece_ttfa_s']} s ({out['tts_piper']['first_piece']!r})",
        ),
        ("TTS espeak-ng time to first audio / RTF", f"{out['tts_espeak']['ttfa_s']} s / {out['tts_espeak']['rtf']}"),
        ("model load (STT warm-up)", f"{out['stt_load_s']} s"),
        ("max RSS (all models, 1 process)", f"{out['max_rss_mb']} MB"),
        ("concurrent real-time sessions sustained", out.get("sustained_sessions", "skipped")),
        ("concurrent sessions at <= 1.5x the one-session medians", out.get("sessions_within_1_5x", "skipped")),
    ]
    print(f"\nbench_local on {out['cores']} cores, lanes {out['lanes']}")
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if "concurrency" in out:
        print_concurrency(out["concurrency"])
    write(out, args.out or ("bench_local_no_partials" if args.no_partials else "bench_local"))


def print_concurrency(rows: list[dict]) -> None:
    cols = [
        ("sessions", "sessions"),
        ("EOT p50", "eot_latency_p50_s"),
        ("EOT max", "eot_latency_max_s"),
        ("final p50", "final_latency_p50_s"),
        ("final max", "final_latency_max_s"),
        ("Update lag p95", "update_lag_p95_s"),
        ("sustained", "sustained"),
        ("<= 1.5x", "within_1_5x"),
    ]
    print("\n  " + " | ".join(h for h, _ in cols))
    for r in rows:
        print("  " + " | ".join(str(r[k]).rjust(len(h)) for h, k in cols))


def write(out: dict, name: str) -> None:
    path = ROOT / "load" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
