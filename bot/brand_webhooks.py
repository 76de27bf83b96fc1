"""A brand's webhook as the admin manages it (`/webhook`): set it (the URL checked, a new signing
secret sealed with TOKEN_ENCRYPTION_KEYS and shown once), remove it, rotate the secret, send a
ping, and look at the last deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.crypto import TokenVault
from bot.models import Brand, WebhookDelivery
from bot.store import Database
from bot.webhook_sender import resolved_problem
from bot.webhooks import UrlProblem, check_url, new_signing_secret

RECENT = 10


@dataclass(frozen=True)
class SetResult:
    secret: str | None = None  # shown once
    problem: UrlProblem | str | None = None  # a UrlProblem, "dns", or "no_keys"


class BrandWebhooks:
    def __init__(self, *, db: Database, vault: TokenVault, allow_loopback: bool) -> None:
        self._db = db
        self._vault = vault
        self._allow_loopback = allow_loopback

    async def set_url(self, brand: Brand, url: str) -> SetResult:
        assert brand.id is not None
        problem: UrlProblem | str | None = check_url(url, allow_loopback=self._allow_loopback)
        if problem is None:
            problem = await resolved_problem(url, allow_loopback=self._allow_loopback)
        if problem is not None:
            return SetResult(problem=problem)
        secret = new_signing_secret()
        sealed = self._vault.seal(secret)
        if sealed is None:
            return SetResult(problem="no_keys")
        await self._db.webhooks.set_webhook(brand.id, url=url, secret_sealed=sealed)
        return SetResult(secret=secret)

    async def rotate(self, brand: Brand) -> SetResult:
        assert brand.id is not None
        secret = new_signing_secret()
        sealed = self._vault.seal(secret)
        if sealed is None:
            return SetResult(problem="no_keys")
        if not await self._db.webhooks.rotate_secret(brand.id, secret_sealed=sealed):
            return SetResult(problem="none")
        return SetResult(secret=secret)

    async def remove(self, brand: Brand) -> int:
        """How many deliveries still waiting were dropped."""
        assert brand.id is not None
        return await self._db.webhooks.remove_webhook(brand.id)

    async def ping(self, brand: Brand) -> str | None:
        assert brand.id is not None
        return await self._db.webhooks.add_ping(brand.id, brand.name)

    async def recent(self, brand: Brand) -> Sequence[WebhookDelivery]:
        assert brand.id is not None
        return await self._db.webhooks.recent(brand.id, limit=RECENT)
