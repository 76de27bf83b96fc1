"""Logging that cannot leak secrets: every formatted line (exception text included) passes
through `redact`, which removes the configured secrets and anything shaped like a token, code or
state. httpx's request log is silenced because it prints full URLs with their query strings."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from bot.config import Settings

REDACTED = "[redacted]"

# Names under which secrets travel: query parameters, form fields, Bot API parameters.
_SECRET_NAMES = (
    r"access_token|input_token|fb_exchange_token|client_secret|appsecret_proof|code|state|"
    r"signed_request|secret_token|token|confirmation_code|start"
)
_PATTERNS = (
    # name=value, as in a URL or a form body.
    re.compile(rf"(?i)\b({_SECRET_NAMES})=[^&\s\"']+"),
    # 'name': 'value' and "name": "value", as in a dict's repr (PTB logs its request parameters
    # that way) or JSON.
    re.compile(rf"(?i)(['\"](?:{_SECRET_NAMES})['\"]\s*:\s*)(['\"])(?:(?!\2).)*\2"),
    # A bot token: <id>:<secret>, also glued to the "bot" of a Bot API URL.
    re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}"),
    # Long opaque values (invite tokens, states, Facebook tokens and codes), edges included.
    re.compile(r"[A-Za-z0-9_-]{40,}"),
    # A read API key (shorter than the above; its 12-character prefix names it and stays) and
    # whatever follows "Bearer" in an Authorization header. No word boundary in front: a repr
    # puts "\n" right before them.
    re.compile(r"cbk_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)Bearer\s+[^\s\"',]+"),
)


def _substitute(match: re.Match[str]) -> str:
    if match.re is _PATTERNS[0]:
        return f"{match.group(1)}={REDACTED}"
    if match.re is _PATTERNS[1]:
        return f"{match.group(1)}{match.group(2)}{REDACTED}{match.group(2)}"
    return REDACTED


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    # Longest first: a secret that contains another must not be left half-replaced.
    for secret in sorted(_expand(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_substitute, text)
    return text


def _expand(secrets: Iterable[str]) -> set[str]:
    """Each secret, and each part of a comma-separated list of them (TOKEN_ENCRYPTION_KEYS)."""
    out: set[str] = set()
    for secret in secrets:
        if secret:
            out.add(secret)
            out.update(part.strip() for part in secret.split(",") if part.strip())
    return out


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret, for `setup_logging`."""
    fields = (
        settings.telegram_bot_token,
        settings.facebook_app_secret,
        settings.instagram_app_secret,
        settings.token_encryption_keys,
        settings.telegram_webhook_secret,
    )
    return [f.get_secret_value() for f in fields if f is not None and f.get_secret_value()]


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(_expand(secrets))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str, secrets: Iterable[str], *, stream: TextIO | None = None) -> None:
    """One handler on the root logger (stderr unless `stream` is given) whose lines are redacted."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
