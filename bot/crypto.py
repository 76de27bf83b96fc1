"""Secrets at rest: link tokens and OAuth states are kept only as hashes; access tokens are
encrypted with Fernet keys from the configuration (several keys = rotation: the first encrypts,
all decrypt), or not stored at all when no key is configured."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# 32 random bytes → 43 URL-safe characters, within Telegram's 64-character deep-link payload.
_TOKEN_BYTES = 32


def new_secret() -> str:
    """An unguessable value of A-Za-z0-9_- (usable as a deep-link payload or OAuth state)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


# Deep-link payloads starting with this open a manager link, not an invitation.
MANAGER_LINK_PREFIX = "m-"


def new_invitation_token() -> str:
    """A link token that can never be mistaken for a manager link."""
    while (token := new_secret()).startswith(MANAGER_LINK_PREFIX):
        pass
    return token


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TokenVault:
    def __init__(self, keys: str | None) -> None:
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in parts]) if parts else None
        except ValueError:
            raise ValueError(
                "TOKEN_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes)"
            ) from None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, token: str) -> str | None:
        if self._fernet is None:
            return None
        return self._fernet.encrypt(token.encode()).decode()

    def open(self, sealed: str) -> str | None:
        if self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None
