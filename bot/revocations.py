"""Withdrawing the app's access at Facebook (``DELETE /me/permissions``) until Facebook confirms.

A withdrawn invitation's connection (`/revoke`) and a forgotten person's connections (`/forget`)
end here at once; their access tokens move, still encrypted, to a `Revocation` row. Facebook may
not answer or answer with an error; the token is then kept and tried again, by a manager's next
`/revoke` and by the periodic job `retry_due` (the leader's), each time a little later, until
Facebook confirms. Only then is the token deleted. Facebook saying the token is already invalid
(error 190: expired, or the person removed the app) counts as confirmed: nothing can use it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from bot.crypto import TokenVault
from bot.graph import GraphClient, GraphError
from bot.i18n import Language, Texts
from bot.models import OutboxAudience, OutboxKind, Revocation, utcnow
from bot.notices import Notices, outgoing
from bot.screens import Screen
from bot.store import Database, Outgoing

log = logging.getLogger(__name__)

# Graph's "invalid OAuth access token": expired, revoked already, or the app was removed.
TOKEN_INVALID = 190
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=6)
RETRY_EVERY = timedelta(minutes=1)  # how often the periodic job looks for due retries
BATCH = 50


class Outcome(StrEnum):
    CONFIRMED = "confirmed"  # Facebook confirmed (or the token was invalid already): deleted
    PENDING = "pending"  # not confirmed: kept, encrypted, and tried again later
    UNREADABLE = "unreadable"  # the stored token cannot be decrypted any more: dropped


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after each failed attempt, at most six hours."""
    return min(FIRST_RETRY * (1 << max(0, min(attempts - 1, 20))), LONGEST_WAIT)


class Revocations:
    def __init__(
        self,
        *,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notices: Notices,
        default_language: Language,
    ) -> None:
        self._db = db
        self._graph = graph
        self._vault = vault
        self._notices = notices
        self._default: Language = default_language

    async def for_invitation(self, invitation_id: int) -> Outcome | None:
        """Try this invitation's unconfirmed revocations now (a manager's /revoke). None when
        there is nothing left to revoke at Facebook."""
        outcomes = {
            await self._attempt(row, notify=False)
            for row in await self._db.revocations.pending_revocations(invitation_id)
        }
        if not outcomes:
            return None
        if Outcome.PENDING in outcomes:
            return Outcome.PENDING
        return Outcome.CONFIRMED if Outcome.CONFIRMED in outcomes else Outcome.UNREADABLE

    async def revoke_sealed(self, sealed: str, *, invitation_id: int | None = None) -> Outcome:
        """Revoke a token taken from a connection that is already gone (/forget). It is recorded
        first, so a failure, or a crash, leaves it to the periodic job."""
        row = await self._db.revocations.queue_revocation(
            token_encrypted=sealed, invitation_id=invitation_id, requested_by=None
        )
        return await self._attempt(row, notify=False)

    async def retry_due(self) -> int:
        """Periodic: the revocations whose next try is due. Returns how many Facebook confirmed."""
        confirmed = 0
        for row in await self._db.revocations.due_revocations(now=utcnow(), limit=BATCH):
            if await self._attempt(row, notify=True) is Outcome.CONFIRMED:
                confirmed += 1
        return confirmed

    async def _attempt(self, row: Revocation, *, notify: bool) -> Outcome:
        assert row.id is not None
        token = self._vault.open(row.token_encrypted)
        if token is None:
            # Encrypted with a key no longer configured: nothing can revoke with it, ever.
            log.warning("revocation %s: the stored token cannot be decrypted; dropped", row.id)
            await self._db.revocations.revocation_confirmed(revocation_id=row.id, outgoing=[])
            return Outcome.UNREADABLE
        try:
            await self._graph.revoke(token)
        except GraphError as exc:
            if exc.code != TOKEN_INVALID:
                attempts = await self._db.revocations.revocation_failed(
                    revocation_id=row.id, error=str(exc), retry_in=retry_delay
                )
                log.warning("revocation %s not confirmed (attempt %d): %s", row.id, attempts, exc)
                return Outcome.PENDING
            log.info("revocation %s: Facebook says the token is invalid already", row.id)
        notices = await self._confirmed_notices(row) if notify else []
        if await self._db.revocations.revocation_confirmed(revocation_id=row.id, outgoing=notices):
            log.info("revocation %s confirmed by Facebook", row.id)
            if notices:
                self._notices.ring()
        return Outcome.CONFIRMED

    async def _confirmed_notices(self, row: Revocation) -> list[Outgoing]:
        """For the manager who withdrew the invitation, its inviter and the brand's team chat."""
        if row.requested_by is None or row.invitation_id is None:
            return []
        invite = await self._db.invitations.get_invitation(row.invitation_id)
        if invite is None:
            return []
        # Each is checked again on delivery: a manager removed meanwhile hears nothing.
        chats: dict[int, tuple[Texts, OutboxAudience]] = {}
        for manager in (row.requested_by, invite.created_by):
            if manager not in chats:
                chats[manager] = (await self._notices.texts_for(manager), OutboxAudience.MANAGER)
        brand = await self._db.brands.brand(invite.brand_id) if invite.brand_id else None
        if brand is not None and brand.team_chat_id is not None:
            chats.setdefault(brand.team_chat_id, (Texts(self._default), OutboxAudience.TEAM))
        return [
            outgoing(
                chat,
                Screen(t("console.revoke.facebook_confirmed", handle=invite.handle, ref=invite.id)),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
                audience=audience,
                brand_id=invite.brand_id,
                manager_id=chat if audience is OutboxAudience.MANAGER else None,
            )
            for chat, (t, audience) in chats.items()
        ]
