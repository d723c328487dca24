"""What tracing costs a session host, measured alone: process CPU of recorded conversations with
``otel_exporter=none`` vs ``otlp`` (the batch exporter's thread included; the OTLP receiver runs in another
process, so its decoding is not counted).

The conversation is tests/test_replay.py's (a real ``Session`` and agent engine on a manual clock: 5 turns,
a tool call, a discarded eager turn, a barge-in; 26 spans). The difference per span, times the spans a second
of a bench_agent run, is tracing's share of a host's CPU there.

    python -m load.microbench_tracing [--runs 200] [--name microbench_tracing]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from opentelemetry.sdk.trace import TracerProvider

from load.report import write_json
from tests.test_replay import conversation
from vani.actors.tracing import export
from vani.cluster.config import Settings

RECEIVER = (
    "import sys, time\n"
    "from tests.support.otlp_receiver import OtlpHttpReceiver\n"
    "r = OtlpHttpReceiver()\n"
    "print(r.url, flush=True)\n"
    "sys.stdin.read()\n"
    "print(len(r.spans.all()), flush=True)\n"
)


async def conversations(runs: int) -> float:
    """Process CPU seconds for ``runs`` recorded conversations, closed."""
    start = time.process_time()
    for _ in range(runs):
        rec = await conversation()
        await rec.close()
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--name", default="microbench_tracing")
    args = ap.parse_args()
    asyncio.run(conversations(5))  # warm up: imports, first-call costs
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None and receiver.stdin is not None
    url = receiver.stdout.readline().strip()
    rows = []
    for label in ("none", "otlp", "none", "otlp"):  # alternated: a drift of the machine falls on both
        provider = None
        if label == "otlp":
            provider = TracerProvider()
            settings = Settings.load(env={}, otel_exporter="otlp", otel_endpoint=url)
            provider.add_span_processor(export.processor(settings, lambda n, reason: None))
            export.use(provider)
        start = time.process_time()
        asyncio.run(conversations(args.runs))
        if provider is not None:
            provider.shutdown()  # the exporter's remaining work is counted too
            export.use(None)
        rows.append({"exporter": label, "runs": args.runs, "cpu_s": round(time.process_time() - start, 3)})
        print(rows[-1], flush=True)
    receiver.stdin.close()
    received = int(receiver.stdout.readline())
    receiver.wait(10)
    none = sum(r["cpu_s"] for r in rows if r["exporter"] == "none")
    otlp = sum(r["cpu_s"] for r in rows if r["exporter"] == "otlp")
    per_span_us = (otlp - none) / max(1, received) * 1e6
    result = {"rows": rows, "spans_received": received, "cpu_per_span_us": round(per_span_us, 1)}
    print(f"\nspans exported: {received}; tracing's CPU per span (made, batched, encoded, sent): {per_span_us:.1f} µs")
    print(f"written: {write_json(args.name, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
