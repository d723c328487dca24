"""Local streaming STT with Flux semantics: silero VAD, pocketsphinx partials, Smart Turn, Whisper.

``LocalStt.open`` returns a ``LocalSttStream`` that behaves like a Flux socket: audio in, ``TurnInfo``
events out, ``configure`` / ``force_end_turn`` / ``close`` handled in strict order with the audio.
Per-session state (VAD recurrent state, the turn machine, the turn's audio, the leased partial
decoder) lives in the stream; models are shared per process. All inference runs on
``inference_pool`` lanes; the event loop only moves bytes and runs the turn machine's decide step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from vani.adapters.base import ErrorKind, ProviderError, SttOptions, TurnEvent, TurnEventType
from vani.adapters.local import inference_pool, partials, turn_model, whisper_final
from vani.adapters.local.resample import StreamResampler, pcm16_to_float
from vani.adapters.local.turn_machine import (
    FRAME_S,
    BeginTurn,
    Emit,
    FinishTurn,
    ForceEnd,
    Frame,
    NeedScore,
    NeedTranscript,
    Observation,
    Phase,
    Score,
    Transcript,
    TurnConfig,
    TurnMachine,
)
from vani.adapters.local.vad import VadStream

log = logging.getLogger(__name__)

PROVIDER = "local-stt"
PREROLL_FRAMES = 10  # 320 ms of audio before the onset goes to Whisper, so first syllables survive
# Whisper tiny tends to stop transcribing after a long pause inside its input, so pauses longer than
# this are shortened to it before the final transcript (turn audio for Smart Turn is left intact).
MAX_PAUSE_FRAMES = 10
_END = object()


class LocalStt:
    """``SttProvider`` backed by embedded models (extra ``local``)."""

    name = "local"

    def __init__(self, settings: Any = None) -> None:
        self._settings = settings
        self._warm = False

    @classmethod
    def from_settings(cls, settings: Any) -> LocalStt:
        inference_pool.configure_from_settings(settings)
        return cls(settings)

    async def warm_up(self) -> None:
        """Load the shared models now (else the first ``open`` pays for it, ~2-4 s)."""
        s = self._settings
        await inference_pool.run("heavy", turn_model.shared, s)
        await inference_pool.run("heavy", whisper_final.shared, s)
        await inference_pool.run("partials", partials.prewarm, s, 1)
        self._warm = True

    async def open(self, session_id: str, options: SttOptions) -> LocalSttStream:
        if options.encoding != "linear16":
            raise ProviderError(PROVIDER, ErrorKind.BAD_REQUEST, f"encoding {options.encoding} unsupported")
        try:
            if not self._warm:  # once loaded, opening a stream never waits behind busy heavy jobs
                await self.warm_up()
            vad = await inference_pool.run("vad", VadStream, self._settings)
        except ImportError as e:
            raise ProviderError(PROVIDER, ErrorKind.CONFIG, f'{e}: pip install -e ".[local]"') from e
        stream = LocalSttStream(session_id, options, self._settings, vad)
        stream.start()
        return stream


class LocalSttStream:
    """One session's stream. Call ``close()`` when done: it owns two tasks and cancels them."""

    def __init__(self, session_id: str, options: SttOptions, settings: Any, vad: VadStream) -> None:
        self.session_id = session_id
        self._settings = settings
        self._rate = options.sample_rate
        self._resampler = StreamResampler(options.sample_rate, 16000) if options.sample_rate != 16000 else None
        self._vad = vad
        self._turns = turn_model.shared(settings)
        self._whisper = whisper_final.shared(settings)
        self.machine = TurnMachine(
            TurnConfig(
                eot_threshold=options.eot_threshold,
                eager_eot_threshold=options.eager_eot_threshold,
                eot_timeout_ms=options.eot_timeout_ms,
                vad_threshold=float(getattr(settings, "local_vad_threshold", 0.5) or 0.5),
                silence_ramp_ms=int(getattr(settings, "local_turn_silence_ramp_ms", 2000) or 2000),
                open_sentence_cap=float(getattr(settings, "local_turn_open_sentence_cap", 0.3)),
                text_at_ms=int(getattr(settings, "local_turn_text_at_ms", 96)),
            )
        )
        self._cmds: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._partial_cmds: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._partial: tuple[int, str] = (-1, "")  # (turn_index, text) so text never leaks across turns
        self._preroll: deque[tuple[np.ndarray, bool]] = deque(maxlen=PREROLL_FRAMES)
        self._turn_audio: list[np.ndarray] = []
        self._turn_speech: list[bool] = []  # VAD verdict per frame of _turn_audio
        self._frames = 0
        self._closed = False
        self._error: ProviderError | None = None
        self._task: asyncio.Task[None] | None = None
        # The current pause's transcript, started beside the audio: (pause, task). Owned: cancelled when replaced.
        self._text: tuple[int, asyncio.Future[tuple[str, list[Any]]]] | None = None
        self._partial_task: asyncio.Task[None] | None = None

    # ---- SttStream API -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"local-stt:{self.session_id}")
        self._partial_task = asyncio.create_task(self._partials_loop(), name=f"local-stt-partials:{self.session_id}")

    async def send_audio(self, pcm: bytes) -> None:
        if self._error:
            raise self._error
        if not self._closed and pcm:
            self._cmds.put_nowait(("audio", bytes(pcm)))

    async def configure(
        self,
        *,
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
        keyterms: list[str] | None = None,
    ) -> None:
        # keyterms are accepted and ignored: none of the local models takes a bias list.
        changes = {
            "eot_threshold": eot_threshold,
            "eager_eot_threshold": eager_eot_threshold,
            "eot_timeout_ms": eot_timeout_ms,
        }
        self._cmds.put_nowait(("configure", {k: v for k, v in changes.items() if v is not None}))

    async def force_end_turn(self) -> None:
        self._cmds.put_nowait(("force", None))

    async def events(self) -> AsyncIterator[TurnEvent]:  # type: ignore[override]
        while True:
            item = await self._out.get()
            if item is _END:
                self._out.put_nowait(_END)  # a second iterator also ends
                if self._error:
                    raise self._error
                return
            yield item

    async def close(self) -> None:
        """Finish the audio already sent (its Updates included, no EndOfTurn), then stop."""
        if not self._closed:
            self._closed = True
            self._cmds.put_nowait(("close", None))
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception:  # already reported through events()
                pass
        await self._stop_partials()

    # ---- driver --------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                kind, arg = await self._cmds.get()
                if kind == "audio":
                    await self._on_audio(arg)
                elif kind == "configure":
                    for k, v in arg.items():
                        setattr(self.machine.config, k, v)
                elif kind == "force":
                    await self._observe(ForceEnd(self._frames * FRAME_S))
                elif kind == "close":
                    self._final_update()
                    return
        except asyncio.CancelledError:
            raise
        except ProviderError as e:
            self._error = e
        except Exception as e:  # a model failed: surface it as the contract says
            log.exception("local STT stream %s failed", self.session_id)
            self._error = ProviderError(PROVIDER, ErrorKind.UNAVAILABLE, f"{type(e).__name__}: {e}")
        finally:
            self._drop_text()
            self._out.put_nowait(_END)

    def _analyze(self, pcm: bytes) -> list[tuple[np.ndarray, float]]:
        # Runs on the vad lane; this stream's jobs are sequential, so its state is never shared.
        x = pcm16_to_float(pcm[: len(pcm) - len(pcm) % 2])
        if self._resampler is not None:
            x = self._resampler.process(x)
        return self._vad.process(x)

    async def _on_audio(self, pcm: bytes) -> None:
        frames = await inference_pool.run("vad", self._analyze, pcm)
        for frame, prob in frames:
            self._frames += 1
            speech = prob >= self.machine.config.vad_threshold
            if self.machine.phase is Phase.INITIAL:
                self._preroll.append((frame, speech))
            else:
                self._turn_audio.append(frame)
                self._turn_speech.append(speech)
                self._partial_cmds.put_nowait(("audio", frame))
            await self._observe(Frame(self._frames * FRAME_S, prob))

    async def _observe(self, obs: Observation) -> None:
        pending: deque[Observation] = deque([obs])
        while pending:
            for action in self.machine.decide(pending.popleft()):
                match action:
                    case Emit():
                        self._out.put_nowait(self._event(action))
                    case BeginTurn():
                        self._turn_audio = [f for f, _ in self._preroll]
                        self._turn_speech = [sp for _, sp in self._preroll]
                        self._preroll.clear()
                        self._partial_cmds.put_nowait(("begin", self.machine.turn_index))
                        for f in self._turn_audio:
                            self._partial_cmds.put_nowait(("audio", f))
                    case NeedTranscript(purpose="pause", wait=False):
                        self._pause_text(action.pause)
                    case NeedTranscript(purpose="pause"):
                        text, words = await self._pause_text(action.pause)
                        pending.append(Transcript(text, words, "pause", pause=action.pause))
                    case NeedScore() | NeedTranscript():
                        pending.append(await self._infer(action))
                    case FinishTurn():
                        self._drop_text()
                        self._turn_audio, self._turn_speech = [], []
                        self._partial_cmds.put_nowait(("end", None))

    async def _infer(self, need: NeedScore | NeedTranscript) -> Observation:
        if isinstance(need, NeedScore):
            return Score(await inference_pool.run("heavy", self._turns.probability, self._audio()))
        text, words = await inference_pool.run("heavy", self._whisper.transcribe, self._speech_audio())
        return Transcript(text, words, need.purpose, need.trigger)

    def _pause_text(self, pause: int) -> asyncio.Future[tuple[str, list[Any]]]:
        """Whisper on the turn so far for ``pause``: the one already started for it, or a new one."""
        if self._text is None or self._text[0] != pause:
            self._drop_text()  # an earlier pause's: the user went on, its text is stale
            run = inference_pool.run("heavy", self._whisper.transcribe, self._speech_audio())
            self._text = (pause, asyncio.ensure_future(run))
        return self._text[1]

    def _drop_text(self) -> None:
        if self._text is not None:
            task = self._text[1]
            task.cancel()  # the thread finishes its call; nobody waits for it
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._text = None

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._turn_audio) if self._turn_audio else np.zeros(0, np.float32)

    def _speech_audio(self) -> np.ndarray:
        """Turn audio with every pause cut down to MAX_PAUSE_FRAMES (for Whisper)."""
        keep: list[np.ndarray] = []
        run = 0
        for frame, speech in zip(self._turn_audio, self._turn_speech, strict=True):
            run = 0 if speech else run + 1
            if run <= MAX_PAUSE_FRAMES:
                keep.append(frame)
        return np.concatenate(keep) if keep else np.zeros(0, np.float32)

    def _event(self, e: Emit) -> TurnEvent:
        text = e.transcript
        if text is None:
            idx, partial = self._partial
            text = partial if idx == e.turn_index else ""
        return TurnEvent(
            event=e.event,
            turn_index=e.turn_index,
            transcript=text,
            words=list(e.words),
            end_of_turn_confidence=round(e.confidence, 4),
            audio_window_start=round(e.start, 3),
            audio_window_end=round(e.end, 3),
            trigger=e.trigger,
        )

    def _final_update(self) -> None:
        m = self.machine
        if m.phase is not Phase.INITIAL and m.now > m.last_event_t:
            text = m.eager_text if m.phase is Phase.AWAITING_END else None
            m.last_event_t = m.now
            self._out.put_nowait(
                self._event(Emit(TurnEventType.UPDATE, m.turn_index, m.turn_start, m.now, transcript=text))
            )

    # ---- partials (best effort, never blocks the turn logic) -----------------------------------

    async def _partials_loop(self) -> None:
        dec: partials.PartialDecoder | None = None
        turn = -1
        try:
            while True:
                kind, arg = await self._partial_cmds.get()
                if kind == "begin":
                    turn = arg
                    dec = await inference_pool.run("partials", partials.lease, self._settings)
                    self._partial = (turn, "")
                elif kind == "end":
                    if dec is not None:
                        await inference_pool.run("partials", dec.release)
                    dec = None
                elif dec is not None:
                    # Coalesce whatever queued up meanwhile into one decoder call (catch up).
                    chunk = [arg]
                    while not self._partial_cmds.empty() and self._partial_cmds._queue[0][0] == "audio":  # type: ignore[attr-defined]
                        chunk.append(self._partial_cmds.get_nowait()[1])
                    pcm = (np.clip(np.concatenate(chunk), -1, 1) * 32767).astype("<i2").tobytes()
                    text = await inference_pool.run("partials", dec.feed, pcm)
                    self._partial = (turn, text)
        finally:
            if dec is not None:
                dec.release()

    async def _stop_partials(self) -> None:
        task = self._partial_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
