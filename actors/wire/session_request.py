"""What a ``link.open`` may ask of a session host: a mode and the client's validated options. Nothing else.

The session host builds every session from the deployment's own ``Settings`` (handed to it by the
registry at spawn). A link chooses only among what the deployment already offers: the mode of one of
its routes (``session_mode`` for ``/v1/sessions``, ``flux`` for ``/v2/flux``) and the Flux query
options a client may set, each within its documented range. Provider URLs, credentials, limits and the
flood guard are not in this vocabulary, so no link can change them. The gateway validates a client's
query into a ``SessionRequest``; the host validates the ``link.open`` again (defence in depth) and
refuses anything outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vani.cluster.config import Settings

# Client-settable options (Flux query params), by the setting they override, with their ranges.
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "flux_eot_threshold": (0.5, 1.0),
    "flux_eager_eot_threshold": (0.3, 0.9),
    "flux_eot_timeout_ms": (500, 60000),
}
MAX_KEYTERMS_CHARS = 8192  # the keyterms travel in the query string, which the HTTP server bounds anyway
# traceparent: the client's W3C trace context, checked by the host (actors/tracing/traceparent.py)
LINK_OPEN_FIELDS = frozenset({"type", "session_id", "resume_token", "mode", "options", "traceparent"})


def route_modes(settings: Settings) -> frozenset[str]:
    """The session modes a deployment serves: its ``/v1/sessions`` mode and ``/v2/flux``."""
    return frozenset({settings.session_mode, "flux"})


@dataclass(frozen=True)
class SessionRequest:
    mode: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_link(self) -> dict[str, Any]:
        return {"mode": self.mode, "options": dict(self.options)}

    def settings_for(self, settings: Settings) -> Settings:
        """The deployment's settings with the client's options applied."""
        return settings.replace(**self.options)

    @staticmethod
    def from_link(body: dict[str, Any], settings: Settings) -> SessionRequest:
        """Validate a (MAC-checked) ``link.open`` body against the deployment; ValueError says why not."""
        extra = set(body) - LINK_OPEN_FIELDS
        if extra:
            raise ValueError(f"unexpected field(s): {', '.join(sorted(extra))}")
        if not isinstance(body.get("session_id"), str) or not isinstance(body.get("resume_token"), str | None):
            raise ValueError("session_id must be a string and resume_token a string or null")
        mode = body.get("mode")
        if mode not in route_modes(settings):
            raise ValueError(f"mode {mode!r} is not served by this deployment")
        options = body.get("options", {})
        if not isinstance(options, dict):
            raise ValueError("options must be an object")
        for name, value in options.items():
            check_option(name, value)
        if options and mode == "echo":
            raise ValueError("echo sessions take no options")
        return SessionRequest(mode, dict(options))


def check_option(name: str, value: Any) -> None:
    """Raise ValueError unless ``name=value`` is an option a client may set, within its range."""
    if name == "flux_keyterms":
        if not isinstance(value, str) or len(value) > MAX_KEYTERMS_CHARS:
            raise ValueError(f"flux_keyterms must be a string of at most {MAX_KEYTERMS_CHARS} characters")
        return
    if name not in OPTION_RANGES:
        raise ValueError(f"unknown option {name!r}")
    lo, hi = OPTION_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}")
    if name == "flux_eot_timeout_ms" and not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
