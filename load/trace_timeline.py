"""Render one session's exported spans as a timeline PNG (README "Observability", docs/trace-timeline.png).

The session is tests/test_replay.py's recorded conversation (a real ``Session`` with the agent engine on a
manual clock, scripted providers: a plain turn, a tool call, an eager end of turn discarded, a barge-in). Its
spans go over OTLP/HTTP to a real receiver (tests/support/otlp_receiver.py), and what the receiver decoded is
drawn: one row per span, indented under its parent, bars on the session's clock, events as ticks.

    python -m load.trace_timeline [--out docs/trace-timeline.png]
"""

from __future__ import annotations

import argparse
import asyncio

from opentelemetry.sdk.trace import TracerProvider
from PIL import Image, ImageDraw, ImageFont

from tests.support.otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from tests.test_replay import conversation
from vani.actors.tracing import export
from vani.cluster.config import Settings

ROW, LABEL_W, BAR_W, PAD = 22, 330, 820, 12
COLOURS = {
    "session": "#5b6770",
    "user_turn": "#2f7ed8",
    "stt": "#7cb5ec",
    "assistant_turn": "#8e44ad",
    "llm": "#f39c12",
    "tool": "#27ae60",
    "tts": "#e74c3c",
}


async def capture() -> list[ReceivedSpan]:
    receiver = OtlpHttpReceiver()
    try:
        provider = TracerProvider()
        settings = Settings.load(env={}, otel_exporter="otlp", otel_endpoint=receiver.url)
        provider.add_span_processor(export.processor(settings, lambda n, reason: None))
        export.use(provider)
        rec = await conversation()
        await rec.close()
        provider.force_flush()
        return receiver.spans.wait_for(lambda s: any(x.name == "session" for x in s))
    finally:
        export.use(None)
        receiver.close()


def rows(spans: list[ReceivedSpan]) -> list[tuple[int, ReceivedSpan]]:
    """(depth, span), depth first, children in start order."""
    kids: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        kids.setdefault(s.parent_id, []).append(s)
    out: list[tuple[int, ReceivedSpan]] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(kids.get(parent, []), key=lambda x: (x.start_ns, x.name)):
            out.append((depth, s))
            walk(s.span_id, depth + 1)

    walk("", 0)
    return out


def label(s: ReceivedSpan) -> str:
    a = s.attributes
    if s.name == "assistant_turn":
        return f"assistant_turn {a['vani.turn_id']} ({a['vani.outcome']})"
    if s.name == "tool":
        return f"tool {a['vani.tool']}"
    if s.name == "tts":
        return f"tts {a['vani.characters']} chars" + (" (cut)" if a.get("vani.cut") else "")
    if s.name == "llm":
        return f"llm {a['vani.tokens']} tokens" + (" -> tool call" if a.get("vani.tool_call") else "")
    return s.name


def draw(spans: list[ReceivedSpan], path: str) -> None:
    order = rows(spans)
    t0 = min(s.start_ns for s in spans)
    t1 = max(s.end_ns for s in spans)
    scale = BAR_W / max(1, t1 - t0)
    img = Image.new("RGB", (LABEL_W + BAR_W + 2 * PAD, (len(order) + 2) * ROW + PAD), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for ms in range(0, int((t1 - t0) / 1e6) + 1, 500):  # a grid line every 500 ms of session time
        x = LABEL_W + PAD + ms * 1e6 * scale
        d.line([(x, ROW), (x, img.height - PAD)], fill="#e6e6e6")
        d.text((x + 2, 4), f"{ms / 1000:.1f} s", fill="#888888", font=font)
    for i, (depth, s) in enumerate(order):
        y = (i + 1) * ROW + 4
        d.text((PAD + 14 * depth, y + 3), label(s), fill="black", font=font)
        x0 = LABEL_W + PAD + (s.start_ns - t0) * scale
        x1 = max(x0 + 2, LABEL_W + PAD + (s.end_ns - t0) * scale)
        d.rectangle([x0, y, x1, y + ROW - 8], fill=COLOURS.get(s.name, "#999999"))
        for _, at, _ in s.events:
            x = LABEL_W + PAD + (at - t0) * scale
            d.line([(x, y - 2), (x, y + ROW - 6)], fill="black", width=2)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/trace-timeline.png")
    args = ap.parse_args()
    spans = asyncio.run(capture())
    draw(spans, args.out)
    print(f"{len(spans)} spans, one trace: {args.out}")


if __name__ == "__main__":
    main()
