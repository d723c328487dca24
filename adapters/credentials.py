"""Provider credentials, read only from the environment, and redaction for messages.

Secrets never live in ``Settings``; an adapter asks for its env vars when it is built, so a missing key
fails at configuration time with a ``CONFIG`` error that names the variable (never its value).
"""

from __future__ import annotations

import os

from vani.adapters.base import ErrorKind, ProviderError

SECRET_ENV = ("CF_API_TOKEN", "DEEPGRAM_API_KEY", "OPENAI_API_KEY")


def require_env(provider: str, *names: str, env: dict[str, str] | None = None) -> list[str]:
    """Values of ``names``; raise ``ProviderError(CONFIG)`` naming the missing ones."""
    src = os.environ if env is None else env
    missing = [n for n in names if not src.get(n)]
    if missing:
        raise ProviderError(provider, ErrorKind.CONFIG, f"missing environment variable(s): {', '.join(missing)}")
    return [src[n] for n in names]


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret (given, or any known secret env var) replaced by ``***``."""
    values = [s for s in secrets if s] + [os.environ[n] for n in SECRET_ENV if os.environ.get(n)]
    for v in sorted(set(values), key=len, reverse=True):
        if len(v) >= 4:
            text = text.replace(v, "***")
    return text
