"""The local STT's turn logic: an explicit Flux state machine with a synchronous decide step.

States are Flux's (Initial, TurnOngoing, AwaitingEnd). ``decide`` takes one observation (a 32 ms VAD
frame, a Smart Turn score, a Whisper transcript, a ForceEndTurn) and returns actions; it never
awaits and never touches a model. The stream driver executes the actions (runs the models off the
event loop) and feeds their results back as observations, so every event is timed on the audio
clock and ordering does not depend on how long inference takes.

**Two looks per pause, side by side.** When a pause reaches ``text_at_ms`` (~0.1 s) the machine has Whisper
start on the transcript of the turn so far, beside the audio (``wait=False``). When the pause reaches
``first_score_ms`` it asks Smart Turn for its verdict. Once that verdict (ramped by the silence) reaches a
threshold, it asks for the transcript again, waiting (the driver hands over the one already started) and
decides with both: the transcript it decided on *is* the final one (the pause only adds silence), so the
EndOfTurn needs no Whisper call after the decision, and Whisper's time hides behind the 0.1 s of silence and
Smart Turn's call instead of adding to them. Every decision is on the audio clock, whatever the inference
took. ``text_at_ms = -1`` starts Whisper only when it is needed: no Whisper call on a pause Smart Turn rates
as mid-turn (less CPU, later ends). The two signals check
each other: a transcript that does not end a sentence (Whisper writes ``.``, ``?`` or ``!`` after a
complete one, nothing or ``...`` after many fragments; and no statement ends on "the", "to" or "his")
caps Smart Turn's verdict at ``open_sentence_cap``,
so "I would like to book a" waits for the silence ramp however final it sounded. Eager mode
(EagerEndOfTurn) goes by Smart Turn alone: it is speculation, and a resumed turn takes it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from vani.adapters.base import TurnEventType, Word

FRAME_S = 512 / 16000  # one silero VAD frame at 16 kHz


class Phase(StrEnum):
    INITIAL = "Initial"
    ONGOING = "TurnOngoing"
    AWAITING_END = "AwaitingEnd"


@dataclass
class TurnConfig:
    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int = 5000
    vad_threshold: float = 0.5
    onset_frames: int = 3  # ~96 ms of speech starts a turn (a click or a cough is shorter)
    resume_frames: int = 4  # ~128 ms of speech after EagerEndOfTurn means the user went on
    first_score_ms: int = 200  # silence before the Smart Turn call (the model expects ~0.2 s)
    # Silence before Whisper transcribes the turn so far, beside the audio (the driver does not wait for it), so
    # the text is in about when Smart Turn's verdict is; -1: only once Smart Turn's verdict reaches a threshold.
    text_at_ms: int = 96
    # Smart Turn judges words and prosody once per pause. If it says "not done", continued silence
    # still makes it ever more likely the user has finished: confidence ramps linearly from the
    # model's value to 1.0 over silence_ramp_ms (like Flux's rising end_of_turn_confidence), and
    # eot_timeout_ms stays the hard stop.
    silence_ramp_ms: int = 2000
    # Smart Turn's verdict on a turn whose transcript does not end a sentence is at most this.
    open_sentence_cap: float = 0.3
    update_interval_s: float = 0.25  # Flux: an Update about every 0.25 s of audio


# ---- observations ---------------------------------------------------------------------------


@dataclass
class Frame:
    t_end: float  # audio clock at the end of this frame, seconds
    speech_prob: float


@dataclass
class Score:
    probability: float  # Smart Turn end-of-turn probability for the turn so far


@dataclass
class Transcript:
    text: str
    words: list[Word]
    purpose: str  # "pause" (the turn so far, at a pause) | "final" (asked to end the turn now)
    trigger: str | None = None  # for "final": manual | timeout
    pause: int = -1  # for "pause": the pause it was asked in (one that has ended since is stale)


@dataclass
class ForceEnd:
    t_end: float


Observation = Frame | Score | Transcript | ForceEnd

# ---- actions ----------------------------------------------------------------------------------


@dataclass
class Emit:
    event: TurnEventType
    turn_index: int
    start: float
    end: float
    transcript: str | None = None  # None on Update: the driver fills in the live partial
    words: list[Word] = field(default_factory=list)
    confidence: float = 0.0
    trigger: str | None = None


@dataclass
class BeginTurn:
    start: float


@dataclass
class NeedScore:
    pass


@dataclass
class NeedTranscript:
    purpose: str
    trigger: str | None = None
    pause: int = -1  # for "pause": the pause it is for (its Transcript carries it back)
    wait: bool = True  # False: start it and go on with the audio (the machine asks again, waiting, if it needs it)


@dataclass
class FinishTurn:
    pass


Action = Emit | BeginTurn | NeedScore | NeedTranscript | FinishTurn

SENTENCE_END = (".", "?", "!")
_CLOSERS = "\"')]\u201d\u2019"


# Words a statement does not end on (articles, possessives, conjunctions, most prepositions, degree words):
# Whisper puts a full stop after whatever it heard last, so "in his." is still a fragment. Verbs and
# pronouns stay out ("than he was.", "yes I might."); a question may end on a preposition ("who for?").
OPEN_ENDINGS = frozenset(
    """a an the my your his her its our their to of in at for with from by into onto than and or but nor
    because if unless although though while whether so very rather quite""".split()
)


def ends_sentence(text: str) -> bool:
    """Whether Whisper wrote the transcript as a finished sentence: ``.``, ``?`` or ``!`` after a word that
    can end one (``...`` and "... to the." are unfinished)."""
    t = text.rstrip().rstrip(_CLOSERS)
    if not t.endswith(SENTENCE_END) or t.endswith(".."):
        return False
    last = t.rstrip(".?!").rsplit(None, 1)[-1:] or [""]
    return not t.endswith(".") or last[0].lower().strip(",;:-") not in OPEN_ENDINGS


@dataclass
class TurnMachine:
    """All per-stream turn state. One instance per STT stream; never shared."""

    config: TurnConfig = field(default_factory=TurnConfig)
    phase: Phase = Phase.INITIAL
    turn_index: int = 0
    now: float = 0.0
    turn_start: float = 0.0
    speech_run: int = 0  # consecutive speech frames
    silence_ms: float = 0.0  # silence since the last speech frame of this turn
    pause_index: int = 0  # counts pauses (and turn ends), so a late transcript of an earlier pause is known
    text_asked: int = -1  # the last pause whose transcript was asked for (once per pause)
    base_probability: float | None = None  # Smart Turn's verdict for the current pause
    pause_text: str | None = None  # Whisper's transcript of the turn at this pause (None: not in yet)
    pause_words: list[Word] = field(default_factory=list)
    eager_tried: bool = False  # EagerEndOfTurn was already considered in this pause
    last_event_t: float = 0.0
    last_probability: float = 0.0
    eager_text: str = ""
    eager_words: list[Word] = field(default_factory=list)

    @property
    def eager_mode(self) -> bool:
        return self.config.eager_eot_threshold is not None

    def decide(self, obs: Observation) -> list[Action]:
        """Advance the machine by one observation; return what the driver must do, in order."""
        match obs:
            case Frame():
                return self._on_frame(obs)
            case Score():
                return self._on_score(obs.probability)
            case Transcript():
                return self._on_transcript(obs)
            case ForceEnd():
                self.now = max(self.now, obs.t_end)
                if self.phase is Phase.INITIAL:
                    return []  # Flux answers with a Warning, not a TurnInfo
                if self.phase is Phase.AWAITING_END:
                    return self._end("manual", self.eager_text, self.eager_words)
                if self.pause_text is not None:  # nothing but silence since the pause's transcript
                    return self._end("manual", self.pause_text, self.pause_words)
                return [NeedTranscript("final", "manual")]
        raise TypeError(f"unknown observation {obs!r}")

    # ---- internals ----------------------------------------------------------------------------

    def _emit(self, event: TurnEventType, **kw: object) -> Emit:
        self.last_event_t = self.now
        return Emit(event, self.turn_index, self.turn_start, self.now, **kw)  # type: ignore[arg-type]

    def _on_frame(self, f: Frame) -> list[Action]:
        cfg = self.config
        self.now = f.t_end
        speech = f.speech_prob >= cfg.vad_threshold
        self.speech_run = self.speech_run + 1 if speech else 0
        out: list[Action] = []
        if self.phase is Phase.INITIAL:
            if self.speech_run >= cfg.onset_frames:
                self.phase = Phase.ONGOING
                self.turn_start = max(0.0, self.now - self.speech_run * FRAME_S)
                self._new_pause()
                self.last_probability = 0.0
                out += [BeginTurn(self.turn_start), self._emit(TurnEventType.START_OF_TURN)]
            return out

        if self.phase is Phase.AWAITING_END and self.speech_run >= cfg.resume_frames:
            self.phase = Phase.ONGOING
            self.eager_text, self.eager_words = "", []
            self._new_pause()
            return [self._emit(TurnEventType.TURN_RESUMED)]
        if speech and self.phase is Phase.ONGOING:
            self._new_pause()
        elif not speech:
            self.silence_ms += FRAME_S * 1000

        if self.now - self.last_event_t >= cfg.update_interval_s - 1e-9:
            text = self.eager_text if self.phase is Phase.AWAITING_END else None
            out.append(self._emit(TurnEventType.UPDATE, transcript=text, confidence=self.last_probability))
        if self.silence_ms >= cfg.eot_timeout_ms:
            if self.phase is Phase.AWAITING_END:
                return out + self._end("timeout", self.eager_text, self.eager_words)
            if self.pause_text is not None:
                return out + self._end("timeout", self.pause_text, self.pause_words)
            return [*out, NeedTranscript("final", "timeout")]
        if not speech and 0 <= cfg.text_at_ms <= self.silence_ms and self.text_asked != self.pause_index:
            self.text_asked = self.pause_index
            out.append(NeedTranscript("pause", pause=self.pause_index, wait=False))  # started, not awaited
        if not speech and self.silence_ms >= cfg.first_score_ms:
            # The driver answers NeedScore before the next frame, so "no score yet" is "not asked yet".
            out += [NeedScore()] if self.base_probability is None else self._check()
        return out

    def _new_pause(self) -> None:
        self.pause_index += 1
        self.silence_ms = 0.0
        self.base_probability = None
        self.pause_text, self.pause_words = None, []
        self.eager_tried = False

    def _ramped(self, p0: float) -> float:
        ramp = max(1.0, float(self.config.silence_ramp_ms))
        frac = min(1.0, max(0.0, self.silence_ms - self.config.first_score_ms) / ramp)
        return p0 + (1.0 - p0) * frac

    def _on_score(self, p: float) -> list[Action]:
        self.base_probability = p
        return self._check()

    def _check(self) -> list[Action]:
        """The pause's verdict (Smart Turn ramped by silence, capped by an open sentence) against the thresholds."""
        cfg = self.config
        raw = self.base_probability or 0.0
        if self.pause_text is None:
            # The transcript can only hold an end back (it caps the verdict), so it is needed once Smart Turn alone
            # would end (or eagerly end) the turn. Then the driver waits for it (started at text_at_ms, it is
            # usually in): a decision never depends on how long Whisper took, even on audio sent faster than real time.
            if self._ramped(raw) < min(cfg.eot_threshold, cfg.eager_eot_threshold or 1.0):
                return []
            self.text_asked = self.pause_index
            return [NeedTranscript("pause", pause=self.pause_index)]
        text = self.pause_text
        capped = raw if ends_sentence(text) else min(raw, cfg.open_sentence_cap)
        p = self._ramped(capped)
        self.last_probability = p
        model_may_end = cfg.eot_threshold < 1.0  # Flux: 1.0 = only ForceEndTurn (or the timeout) ends
        if self.phase is Phase.AWAITING_END:
            return (
                self._end("model", self.eager_text, self.eager_words)
                if model_may_end and p >= cfg.eot_threshold
                else []
            )
        if model_may_end and p >= cfg.eot_threshold:
            return self._eager_first(text) + self._end("model", text, self.pause_words)
        eager = self._ramped(raw)
        if self.eager_mode and not self.eager_tried and eager >= (cfg.eager_eot_threshold or 1.0) and text:
            # Flux never sends an empty EagerEndOfTurn: an empty transcript waits for more evidence.
            self.eager_tried = True
            self.phase = Phase.AWAITING_END
            self.eager_text, self.eager_words = text, list(self.pause_words)
            return [self._eager_event(text, self.pause_words)]
        return []

    def _eager_first(self, text: str) -> list[Action]:
        # Eager clients start the LLM on EagerEndOfTurn; never make them miss it.
        return [self._eager_event(text, self.pause_words)] if self.eager_mode and text else []

    def _eager_event(self, text: str, words: list[Word]) -> Emit:
        return self._emit(
            TurnEventType.EAGER_END_OF_TURN, transcript=text, words=list(words), confidence=self.last_probability
        )

    def _on_transcript(self, t: Transcript) -> list[Action]:
        if self.phase is Phase.INITIAL:
            return []
        text = t.text.strip()
        if t.purpose == "pause":
            if t.pause != self.pause_index:  # speech resumed (or the turn ended) since it was asked
                return []
            self.pause_text, self.pause_words = text, list(t.words)
            return self._check() if self.base_probability is not None else []
        if self.phase is Phase.AWAITING_END:  # the eager transcript stands (Flux rule)
            return self._end(t.trigger or "manual", self.eager_text, self.eager_words)
        return self._end(t.trigger or "manual", text, list(t.words))

    def _end(self, trigger: str, text: str, words: list[Word]) -> list[Action]:
        ev = self._emit(
            TurnEventType.END_OF_TURN,
            transcript=text,
            words=words,
            confidence=self.last_probability,
            trigger=trigger,
        )
        self.phase = Phase.INITIAL
        self.turn_index += 1
        self.speech_run = 0
        self._new_pause()
        self.eager_text, self.eager_words = "", []
        return [ev, FinishTurn()]
