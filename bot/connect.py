"""One Facebook redirect, from state to verdict to both people knowing the result.

The route in `web_callback` only parses the request and renders what this returns; the decision is
`bot.verdict.decide`, the Facebook I/O `bot.graph`, the storage `bot.store`, the messages
`bot.notify` with `bot.screens`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.crypto import TokenVault
from bot.graph import GraphClient, GraphError, dialog_url
from bot.i18n import Language, Texts
from bot.models import Invitation, InviteStatus, OutboxKind, OutboxMessage, utcnow
from bot.notify import Notifier, outgoing
from bot.screens import Screen, verdict_for_influencer, verdict_for_manager
from bot.screens import login as login_screen
from bot.store import ConnectionRecord, Database, StateProblem
from bot.verdict import Verdict, decide

if TYPE_CHECKING:
    from bot.console import Console

log = logging.getLogger(__name__)

# Redirect parameters we look at; anything else Facebook (or a forger) appends is ignored.
_REDIRECT_KEYS = ("code", "error", "error_code", "error_reason", "error_description")


@dataclass(frozen=True)
class RedirectResult:
    """What the browser should be shown."""

    http_status: int
    page: str  # catalog key under "web."
    language: Language | None = None
    username: str | None = None


class ConnectService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notifier: Notifier,
        wake_delivery: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._graph = graph
        self._vault = vault
        self._notifier = notifier
        self._wake_delivery = wake_delivery
        self.console: Console | None = None  # set by the composition root

    # --- handing out the login -------------------------------------------------------------

    async def new_login(
        self, t: Texts, invite: Invitation, *, telegram_user_id: int, rerequest: bool
    ) -> Screen | None:
        """A fresh single-use state and the screen with its login button (None when the
        invitation is no longer at the login step)."""
        assert invite.id is not None
        s = self._settings
        state = await self._db.start_login(
            invitation_id=invite.id,
            telegram_user_id=telegram_user_id,
            ttl=timedelta(minutes=s.login_ttl_minutes),
            rerequest=rerequest,
        )
        if state is None:
            return None
        url = dialog_url(
            dialog_base=s.facebook_dialog_url,
            version=s.facebook_api_version,
            app_id=s.facebook_app_id or "",
            redirect_uri=s.redirect_uri,
            state=state,
            scopes=s.facebook_scopes,
            rerequest=rerequest,
        )
        return login_screen(
            t,
            invite,
            url=url,
            scopes=s.facebook_scopes,
            platform=s.platform_name,
            minutes=s.login_ttl_minutes,
        )

    # --- the redirect ------------------------------------------------------------------------

    async def handle_redirect(self, params: Mapping[str, str]) -> RedirectResult:
        state = params.get("state", "")
        if not state or len(state) > 128:
            return RedirectResult(400, "bad_request")
        consumed = await self._db.consume_state(state)
        if isinstance(consumed, StateProblem):
            log.info("callback refused: state %s", consumed.value)
            status = {
                StateProblem.UNKNOWN: 400,
                StateProblem.USED: 409,
                StateProblem.EXPIRED: 410,
                StateProblem.WITHDRAWN: 410,
            }
            page = "withdrawn" if consumed is StateProblem.WITHDRAWN else f"state_{consumed.value}"
            return RedirectResult(status[consumed], page)
        attempt, invite = consumed
        assert attempt.id is not None and invite.id is not None
        redirect = {k: params[k][:512] for k in _REDIRECT_KEYS if k in params}

        gathered = await self._graph.gather(
            redirect=redirect, redirect_uri=self._settings.redirect_uri
        )
        verdict = decide(
            gathered.evidence,
            invited_handle=invite.handle,
            required_scopes=self._settings.facebook_scopes,
            app_id=self._settings.facebook_app_id or "",
            now=utcnow(),
        )
        followers = None
        if verdict.connected and gathered.token:
            followers = await self._followers(verdict, gathered.token)
        record = self._connection_record(verdict, gathered.token, followers)
        influencer_t = await self._notifier.texts_for(attempt.telegram_user_id)
        manager_t = await self._notifier.texts_for(invite.created_by)
        told = [
            outgoing(
                attempt.telegram_user_id,
                verdict_for_influencer(
                    influencer_t,
                    invite,
                    verdict,
                    platform=self._settings.platform_name,
                    followers=followers,
                ),
                invitation_id=invite.id,
            ),
            outgoing(
                invite.created_by,
                verdict_for_manager(manager_t, invite, verdict),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
            ),
        ]
        if self.console is not None:
            # The manager's live card and the brand's team chat hear it in the same transaction.
            after = invite.model_copy(
                update={
                    "status": InviteStatus.CONNECTED if verdict.connected else InviteStatus.FAILED,
                    "last_reason": None if verdict.connected else verdict.outcome.value,
                }
            )
            told += await self.console.card_outgoing(after, connection=record)
            told += await self.console.team_notice(
                invite, lambda t: verdict_for_manager(t, invite, verdict)
            )
        invite = await self._db.record_verdict(
            attempt_id=attempt.id,
            invitation_id=invite.id,
            outcome=verdict.outcome.value,
            connection=record,
            outgoing=told,
        )
        if invite.status == InviteStatus.REVOKED:
            log.info("invitation %s was withdrawn during the login: nothing kept", invite.id)
            return RedirectResult(410, "withdrawn", influencer_t.language)
        self._wake_delivery()
        log.info("invitation %s: verdict %s", invite.id, verdict.outcome.value)
        if verdict.connected:
            assert verdict.instagram is not None
            return RedirectResult(
                200, "connected", influencer_t.language, verdict.instagram.username
            )
        return RedirectResult(200, "failed", influencer_t.language)

    async def on_unreachable(self, rows: Sequence[OutboxMessage]) -> None:
        """An influencer blocked the bot (or never started it): the manager hears it instead."""
        for invitation_id in {r.invitation_id for r in rows if r.invitation_id is not None}:
            invite = await self._db.get_invitation(invitation_id)
            if invite is None or invite.id is None:
                continue
            if all(r.chat_id == invite.created_by for r in rows):
                continue  # the manager is the one we cannot reach: only the log can say so
            t = await self._notifier.texts_for(invite.created_by)
            await self._db.record_event(invitation_id=invite.id, kind="unreachable")
            await self._db.enqueue(
                [
                    outgoing(
                        invite.created_by,
                        Screen(t("manager.unreachable", handle=invite.handle)),
                        kind=OutboxKind.NOTICE,
                        invitation_id=invite.id,
                    )
                ]
            )
        self._wake_delivery()

    async def _followers(self, verdict: Verdict, token: str) -> int | None:
        assert verdict.instagram is not None
        try:
            user = await self._graph.instagram_user(verdict.instagram.id, token)
        except GraphError as exc:
            # The connection stands; only the follower count in the message is missing.
            log.warning("could not read the Instagram account: %s", exc)
            return None
        count = user.get("followers_count")
        return count if isinstance(count, int) else None

    def _connection_record(
        self, verdict: Verdict, token: str | None, followers: int | None
    ) -> ConnectionRecord | None:
        if not verdict.connected:
            return None
        assert verdict.page is not None and verdict.instagram is not None
        return ConnectionRecord(
            facebook_user_id=verdict.facebook_user_id or "",
            page_id=verdict.page.id,
            page_name=verdict.page.name,
            instagram_id=verdict.instagram.id,
            instagram_username=verdict.instagram.username,
            followers_count=followers,
            permissions=verdict.granted,
            token_encrypted=self._vault.seal(token) if token else None,
            token_expires_at=verdict.expires_at,
            data_access_expires_at=verdict.data_access_expires_at,
        )
