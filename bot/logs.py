"""Logging that cannot leak secrets: every formatted line (exception text included) passes
through `redact`, which removes the configured secrets and anything shaped like a token, code or
state. httpx's request log is silenced because it prints full URLs with their query strings."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"

_PATTERNS = (
    # Query parameters that carry secrets.
    re.compile(
        r"(?i)\b(access_token|input_token|fb_exchange_token|client_secret|appsecret_proof|code|"
        r"state|signed_request|secret_token)=[^&\s\"']+"
    ),
    # A bot token: <id>:<secret>.
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b"),
    # Long opaque values (invite tokens, states, Facebook tokens).
    re.compile(r"\b[A-Za-z0-9_-]{40,}\b"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(
            lambda m: f"{m.group(1)}={REDACTED}" if m.re is _PATTERNS[0] else REDACTED, text
        )
    return text


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
