"""Invitation and manager links: sealed for storage (recoverable, never stored readable), and
built as `t.me` deep links with the bot's username (read from the bot object when needed)."""

from __future__ import annotations

import base64
from typing import Protocol

from cryptography.fernet import Fernet
from telegram.helpers import create_deep_linked_url

from bot.config import Settings
from bot.crypto import MANAGER_LINK_PREFIX, TokenVault, secret_hash


class HasUsername(Protocol):
    """The bot (`telegram.Bot`): its username is known once it is initialized."""

    @property
    def username(self) -> str: ...


class LinkSealer:
    """Keeps invitation links recoverable (to show them again and keep the live card intact)
    without storing them readable: Fernet with TOKEN_ENCRYPTION_KEYS, or, when none is set, a
    key derived from the app secret and bot token (both needed to run the bot anyway)."""

    def __init__(self, vault: TokenVault, settings: Settings) -> None:
        self._vault = vault
        material = "|".join(
            s.get_secret_value() if s else ""
            for s in (settings.facebook_app_secret, settings.telegram_bot_token)
        )
        self._fallback = Fernet(base64.urlsafe_b64encode(bytes.fromhex(secret_hash(material))))

    def seal(self, token: str) -> str:
        return self._vault.seal(token) or self._fallback.encrypt(token.encode()).decode()

    def open(self, sealed: str | None) -> str | None:
        if not sealed:
            return None
        opened = self._vault.open(sealed)
        if opened is not None:
            return opened
        try:
            return self._fallback.decrypt(sealed.encode()).decode()
        except Exception:
            return None


class Links(LinkSealer):
    """The sealer plus the deep links of the bot (`bot`: read `.username` when a link is made)."""

    def __init__(self, vault: TokenVault, settings: Settings, bot: HasUsername) -> None:
        super().__init__(vault, settings)
        self._bot = bot

    def link(self, token: str) -> str:
        return create_deep_linked_url(self._bot.username, token)

    def manager_link(self, token: str) -> str:
        return create_deep_linked_url(self._bot.username, MANAGER_LINK_PREFIX + token)

    def invitation_link(self, sealed: str | None, token: str | None = None) -> str:
        """The invitation's link (from its token, or opened from the sealed one); "" if lost."""
        token = token or self.open(sealed)
        return self.link(token) if token else ""
