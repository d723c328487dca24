"""All of vani's configuration, in one place.

Values come from (lowest to highest precedence): the defaults below, a TOML file named by
``VANI_CONFIG`` (flat keys, same names as the fields), then environment variables ``VANI_<FIELD>``
(upper case). Every default works offline with no keys.

Provider credentials are read only from the environment (``CF_ACCOUNT_ID``, ``CF_API_TOKEN``,
``DEEPGRAM_API_KEY``, ``OPENAI_API_KEY``) and never appear in ``Settings.public()``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True)
class Settings:
    # --- cluster / serve -------------------------------------------------------------------
    address: str | None = None  # Ray address; None = start a local single-node Ray
    namespace: str = "vani"
    app_name: str = "vani"  # Serve app name; registry and host actors are named after it
    http_host: str = "127.0.0.1"
    # Where a Ray that `vani up` starts itself listens: its node IP, so Ray's services and the session
    # hosts' link servers. Loopback keeps all of them on this machine; set an interface address only to
    # let other nodes join (README "Security"). Not used when joining a cluster (`address`).
    bind_host: str = "127.0.0.1"
    http_port: int = 8000
    route_prefix: str = "/"
    # Gateway replicas (gateway/scaling.py). 0 = Serve autoscaling on ongoing connections (each client
    # WebSocket is one): at least gateway_replicas_per_node on every alive node and at least
    # gateway_min_replicas, one more whenever the replicas average gateway_target_connections, at most
    # gateway_max_replicas. A number > 0 = exactly that many replicas, no autoscaling (benchmarks).
    gateway_replicas: int = 0
    gateway_replicas_per_node: int = 1
    gateway_min_replicas: int = 1
    gateway_max_replicas: int = 32
    gateway_target_connections: int = 200
    # A replica that autoscaling removes stops taking connections and keeps its open ones this long
    # (Serve's graceful shutdown) before it is stopped; sessions cut then resume with their tokens.
    gateway_drain_s: float = 600.0
    # How client traffic reaches the gateway replicas (load/README.md has the measurements):
    #   haproxy  Serve's HAProxy mode (default): HAProxy on http_port on every node with gateway replicas
    #            balances to each replica's own server; one fixed port per node, the cheapest path
    #   proxy    Serve's HTTP proxy on http_port on every node with replicas (each message is a Ray call)
    # Only a Ray that vani starts itself (`vani up` without --address) can be switched: the mode is
    # read from the environment when Ray starts (RAY_SERVE_ENABLE_HA_PROXY=1 on each node's `ray start`).
    ingress: str = "haproxy"
    dashboard: bool = True
    dashboard_port: int = 8265
    metrics_export_port: int = 0  # 0 = let Ray choose
    # --- placement -------------------------------------------------------------------------
    placement_mode: str = "sharded"  # "sharded" (hosts per node) or "actor" (one actor per session)
    hosts_per_node: int = 2
    host_num_cpus: float = 0.0  # hosts are IO bound; 0 lets many share a small node
    # --- sessions --------------------------------------------------------------------------
    max_sessions: int = 1000
    session_ttl_s: float = 60.0  # how long a disconnected session waits for its client
    echo_delay_ms: float = 500.0
    max_frame_bytes: int = 65536
    outbound_cap_bytes: int = 131072
    # Inbound audio waiting for the session's engine (echo, agent or transcription), every mode: 128 KB = 4 s
    # of 16 kHz PCM16 at most; past that the session stops reading its link and backpressure reaches the client.
    inbound_ring_bytes: int = 131072
    # Flood guard, measured at the gateway on the client's own timeline: a connection may have sent at
    # most flood_burst_s + flood_rate x (seconds since it was accepted) of audio; past that it is closed
    # with 1008. A server stall can only make received audio lag. 0 disables the guard.
    flood_burst_s: float = 20.0
    flood_rate: float = 2.0
    # Admission by load: a gateway replica or session host whose smoothed event-loop lag is at least
    # this (or a host that has not reported for a few seconds) takes no NEW sessions (1013); existing
    # sessions keep running. 0 disables. See actors/session/loop_lag.py.
    overload_lag_ms: float = 500.0
    # Where sessions' durable state goes (actors/store/): "sqlite" (default: a file per node under
    # session_store_dir, default <tmp>/vani-sessions-<uid>; a crashed host's sessions come back on the same
    # node), "redis://host:port/db" (shared by all nodes: they come back on any node), or "none".
    session_store: str = "sqlite"
    session_store_dir: str = ""
    api_key: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object per line with session_id, turn_id, trace_id (cluster/logs.py)
    # --- providers (adapters/factory.py) --------------------------------------------------
    # Credentials are never settings: adapters read CF_ACCOUNT_ID, CF_API_TOKEN, DEEPGRAM_API_KEY,
    # OPENAI_API_KEY from the environment. Base URLs are overridable so emulators can plug in.
    stt_provider: str = "local"  # workers-ai | deepgram | local
    llm_provider: str = "local"  # workers-ai | openai | local
    tts_provider: str = "local"  # workers-ai | deepgram | deepgram-ws | local | espeak
    tts_fallback: str | None = None  # a second tts provider name, used on error or timeout
    llm_model: str = "@cf/meta/llama-3.1-8b-instruct-fast"  # for openai: e.g. "gpt-4o-mini"
    llm_api: str = "openai"  # workers-ai only: "openai" (/ai/v1/chat/completions) | "native" (/ai/run SSE)
    llm_max_tokens: int = 512
    llm_temperature: float = 0.6
    llm_max_retries: int = 2  # retried only while no token has been delivered
    # OpenAI-compatible: ask for the token counts at the stream's end (stream_options.include_usage), which
    # usage accounting uses (actors/agent/usage.py); off for a server that refuses the option (then counted).
    llm_stream_usage: bool = True
    cf_base_url: str = "https://api.cloudflare.com/client/v4"
    deepgram_base_url: str = "https://api.deepgram.com"
    openai_base_url: str = "https://api.openai.com/v1"
    flux_eot_threshold: float = 0.7
    flux_eager_eot_threshold: float | None = None  # set = eager mode
    flux_eot_timeout_ms: int = 5000
    flux_keyterms: str = ""  # comma-separated
    stt_max_reconnects: int = 3
    stt_replay_max_s: float = 30.0  # unacknowledged audio kept for replay after a reconnect
    tts_speaker: str = "luna"
    tts_encoding: str = "linear16"
    tts_container: str = "none"
    tts_sample_rate: int = 24000
    tts_bit_rate: int | None = None
    provider_connect_timeout_s: float = 5.0
    provider_read_timeout_s: float = 10.0  # a stream silent this long is stalled
    tts_first_byte_timeout_s: float = 3.0  # past this the fallback tts takes over
    # The embedded offline models (adapters/local/, README "Embedded offline default"):
    # Whisper decodes a turn in a window this long (a longer turn: its length + 1 s), not 30 s: ~3x less work
    # (adapters/local/whisper_final.py); 0 = faster-whisper's 30 s window.
    local_whisper_window_s: float = 10.0
    local_whisper_beam_size: int = 2  # 1 = greedy: ~20 % faster, lost a word the beam keeps (whisper_final.py)
    # End of turn (adapters/local/turn_machine.py): Smart Turn's verdict at a pause ramps to 1.0 over this much
    # more silence; a turn whose transcript ends no sentence counts at most open_sentence_cap before the ramp.
    local_turn_silence_ramp_ms: int = 2000
    local_turn_open_sentence_cap: float = 0.3
    # Silence (ms) after which Whisper transcribes the turn so far, beside the audio; -1 = only once Smart Turn's
    # verdict reaches a threshold (no Whisper call on a pause rated mid-turn: less CPU, later ends).
    local_turn_text_at_ms: int = 96
    # Sessions a node takes on the embedded models; the next gets 1013 (actors/control/local_capacity.py).
    # 0 = 2 per CPU Ray gives the node (measured: load/README.md, "Several sessions at once").
    local_max_sessions_per_node: int = 0
    # --- end providers ---------------------------------------------------------------------
    # --- agent engine (actors/agent/engine.py) -----------------------------------------------------
    # "agent" (STT -> LLM -> TTS voice agent), "echo" (the echo engine). WS /v2/flux/{id}
    # always makes transcription-only ("flux") sessions.
    session_mode: str = "agent"
    agent_system_prompt: str = "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
    # The one tool offered to the LLM (actors/agent/tools.py): "auto" = book_table with the local reply engine
    # (its restaurant persona books through it), clock with any other LLM; "clock", "book_table", "" = none.
    agent_tool: str = "auto"
    # LLM context budget (actors/agent/bounds.py): the system prompt plus the most recent whole turns (a turn is a
    # user message and the reply, tool call and result after it) within both limits; the oldest turns are
    # dropped first, the latest is always sent. 0 = no limit.
    llm_context_max_turns: int = 16
    llm_context_max_chars: int = 16000
    # Final transcripts a session keeps (Flux `Connected.history` on resume): the most recent this many (0 = all).
    transcript_history_turns: int = 20
    agent_fallback_reply: str = "Sorry, I lost my train of thought. Could you say that again?"
    # If set, every provider request carries this header with the session id (emulators script
    # per session with it; real providers ignore unknown headers). Tests use "x-emulator-key".
    provider_session_header: str = ""
    # Barge-in policy (actors/agent/barge_in_policy.py): "guarded" (default) = user speech while the assistant
    # thinks/speaks interrupts only once it has lasted barge_in_min_ms (audio clock) AND has
    # barge_in_min_words words, or when the user's turn ends with words that are not all backchannels
    # ("uh-huh", "yeah", ...); "immediate" = any user speech interrupts at once.
    barge_in_policy: str = "guarded"
    barge_in_min_ms: float = 400.0
    barge_in_min_words: int = 2
    # Assistant audio is sent at most this far ahead of real-time playback, so what was sent is
    # (within this lead) what was heard, and a barge-in has little to flush.
    playout_lead_ms: float = 300.0
    # A turn's first assistant.text is sent at once; later LLM tokens are sent together at most this often
    # (one event instead of one per token: the host, gateway and client each handle ~6x fewer messages at
    # 60 tokens/s). 0 = one assistant.text per token.
    assistant_text_interval_ms: float = 100.0
    # After a turn's first audio frame (sent at once), PCM is sent in frames of at least this much audio:
    # TTS streams small chunks (Aura: ~40 ms) and every frame costs CPU on the host, gateway and proxy.
    # Inside the playout lead this adds no delay the user hears. 0 = one frame per TTS chunk.
    audio_frame_ms: float = 100.0
    chunker_first_words: int = 4  # first speakable piece: first clause or this many words
    chunker_max_words: int = 30  # later pieces: sentence / clause, at most this many words
    # Watchdogs (seconds, 0 = off): every waiting state has one, each with a client-visible outcome.
    watchdog_turn_no_audio_s: float = 3.0  # user turn open, client sends no audio -> ForceEndTurn
    watchdog_llm_first_token_s: float = 5.0  # thinking, no LLM token -> spoken fallback reply
    watchdog_tts_stall_s: float = 4.0  # TTS gives no audio for this long -> turn ends, client told
    # EagerEndOfTurn and then neither EndOfTurn nor TurnResumed -> speculation discarded, ForceEndTurn
    watchdog_speculating_s: float = 3.0
    watchdog_cancelling_s: float = 2.0  # a cancelled turn's tasks still running -> abandoned, client told
    # A reply paused by user speech (pause first, decide after) whose user turn neither ends nor passes the
    # barge-in policy for this long resumes (audio.resume, watchdog event). Keep it below the tts_stall one.
    watchdog_paused_s: float = 3.0
    stt_keepalive_s: float = 4.0  # silence sent to STT after this long without client audio
    # The per-session event log (actors/session/event_log.py, docs/event-log.md): the most recent this many
    # entries (inputs and outputs) are kept in memory for `vani sessions export` and `vani replay`; 0 = off.
    # An inbound audio frame is one entry, an outbound one too; about 200 bytes an entry (4 MB at most).
    event_log_entries: int = 20000
    record_audio: bool = False  # also keep the inbound PCM in the event log (a replay then has the audio)
    # Append the event log to the session store too (when there is one), every second, keeping about as many
    # lines: a crashed host's sessions keep their logs. A line is ~60 bytes (with record_audio, 1 kB a frame).
    event_log_store: bool = True
    # --- tracing (actors/tracing/, README "Observability") ---------------------------------------
    # OpenTelemetry spans per session, turn and stage: none | console | otlp. For otlp the protocol,
    # endpoint and headers default to the standard OTEL_EXPORTER_OTLP_* variables of the process that loads
    # the settings (`vani up` / `vani deploy`), and travel with the settings: every gateway and host exports
    # where the deployment says, never where a client asks. An unreachable endpoint drops spans (counted in
    # vani_spans_dropped) and never slows a session: export runs in a background thread, off the loop.
    otel_exporter: str = "none"
    otel_protocol: str = "http/protobuf"  # or grpc
    otel_endpoint: str = ""  # base URL (http: /v1/traces is appended); "" = the exporter's default
    otel_headers: str = ""  # "key=value,key2=value2" (a secret: redacted in public())
    otel_queue_spans: int = 2048  # spans waiting for export per process; past it the oldest are dropped

    @staticmethod
    def load(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from defaults, ``VANI_CONFIG`` file, ``VANI_*`` env vars and overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = env.get("VANI_CONFIG")
        if path:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
        for f in fields(Settings):
            raw = env.get(f"VANI_{f.name.upper()}")
            if raw is not None:
                values[f.name] = raw
        for name, standard in OTEL_ENV.items():  # the standard variables, unless vani's own is set
            value = next((env[k] for k in standard if env.get(k)), None)
            if value is not None and f"VANI_{name.upper()}" not in env:
                values.setdefault(name, value)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.from_dict(values)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> Settings:
        known = {f.name: f for f in fields(Settings)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for name, allowed in CHOICES.items():
            if name in values and values[name] not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {values[name]!r}")
        if "session_store" in values:
            check_store(str(values["session_store"]))
        return Settings(**{k: _coerce(known[k], v) for k, v in values.items()})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def public(self) -> dict[str, Any]:
        """Settings safe to print or return from an API (no secrets)."""
        d = self.to_dict()
        d["api_key"] = "set" if self.api_key else None
        d["session_store"] = redacted(self.session_store)
        d["otel_headers"] = "set" if self.otel_headers else ""
        return d


def redacted(url: str) -> str:
    """A URL without its password (store URLs in logs, status and ``Settings.public``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def check_store(value: str) -> None:
    if value not in ("none", "sqlite") and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"session_store must be none, sqlite or a redis:// URL, not {redacted(value)!r}")


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("bool"):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if kind.startswith("int"):
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if value == "" and "None" in kind:
        return None
    return value


# Settings with a fixed set of values: a typo fails at start-up, not at the first session.
BARGE_IN_POLICIES = ("guarded", "immediate")  # actors/agent/barge_in_policy.py
INGRESSES = ("haproxy", "proxy", "direct")  # cluster/run.py (direct: benchmarks only)
OTEL_EXPORTERS = ("none", "console", "otlp")  # actors/tracing/export.py
OTEL_PROTOCOLS = ("http/protobuf", "grpc")
CHOICES: dict[str, tuple[str, ...]] = {
    "log_format": ("text", "json"),  # cluster/logs.py
    "barge_in_policy": BARGE_IN_POLICIES,
    "ingress": INGRESSES,
    "otel_exporter": OTEL_EXPORTERS,
    "otel_protocol": OTEL_PROTOCOLS,
}
# The OpenTelemetry SDK's standard variables behind vani's otel_* settings (the traces-only one first; the
# settings file and VANI_* variables win). A traces endpoint already ends in /v1/traces: export.py keeps it.
OTEL_ENV: dict[str, tuple[str, ...]] = {
    "otel_protocol": ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    "otel_endpoint": ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    "otel_headers": ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
}


@dataclass(frozen=True)
class SessionLimits:
    """Per-session knobs, computed by the session host from the deployment's own settings."""

    echo_delay_ms: float = 500.0
    max_frame_bytes: int = 65536
    outbound_cap_bytes: int = 131072
    inbound_ring_bytes: int = 131072
    flood_burst_s: float = 20.0
    flood_rate: float = 2.0
    session_ttl_s: float = 60.0
    event_log_entries: int = 20000
    record_audio: bool = False

    @staticmethod
    def from_settings(s: Settings) -> SessionLimits:
        return SessionLimits(
            echo_delay_ms=s.echo_delay_ms,
            max_frame_bytes=s.max_frame_bytes,
            outbound_cap_bytes=s.outbound_cap_bytes,
            inbound_ring_bytes=s.inbound_ring_bytes,
            flood_burst_s=s.flood_burst_s,
            flood_rate=s.flood_rate,
            session_ttl_s=s.session_ttl_s,
            event_log_entries=s.event_log_entries,
            record_audio=s.record_audio,
        )
