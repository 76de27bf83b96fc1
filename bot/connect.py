"""One login redirect, from state to verdict to both people knowing the result; for a
kept connection's renewal (the Renew button), the same verdict refreshing it or saying why not.

Two ways in (issue 13): Facebook Login (`/oauth/callback`, the decision `bot.verdict.decide`,
the I/O `bot.graph`) and Instagram Login through a second Meta app (`/oauth/instagram`, the
decision `bot.instagram_verdict.decide`, the I/O `bot.instagram_login`). Each login state
carries the way it was handed out for; a state brought to the other way's callback is refused.

The routes in `web_callback` only parse the request and render what this returns; the storage is
`bot.store`, the messages `bot.notify` with `bot.screens`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import Action, Press
from bot.config import Settings
from bot.crypto import TokenVault, new_secret, secret_hash
from bot.facts import VerdictFacts, instagram_verdict_facts, verdict_facts
from bot.graph import Gathered, GraphClient, GraphError, dialog_url
from bot.i18n import Language, Texts
from bot.instagram_login import IgAccessToken, IgGathered, InstagramClient
from bot.instagram_verdict import IgLoginEvidence, IgOutcome, IgVerdict
from bot.instagram_verdict import decide as decide_instagram
from bot.login_secrets import LoginSealer
from bot.models import (
    Invitation,
    InviteStatus,
    LoginAttempt,
    LoginPath,
    OutboxKind,
    OutboxMessage,
    Step,
    utcnow,
)
from bot.notices import Notices, outgoing
from bot.paths import open_paths
from bot.screens import (
    Screen,
    ig_reconnect_failed,
    ig_reconnect_login,
    ig_reconnected,
    ig_verdict_for_influencer,
    ig_verdict_for_manager,
    instagram_login,
    renewal_failed,
    renewal_keyboard,
    renewal_login,
    renewed,
    verdict_for_influencer,
    verdict_for_manager,
)
from bot.screens import login as login_screen
from bot.store import (
    ConnectionRecord,
    Database,
    EventKind,
    LoginTicket,
    Outgoing,
    StateProblem,
)
from bot.store.logins import RenewalRefused, RenewalStored, needs_repair
from bot.store.steps import NewLogin
from bot.verdict import FetchFailure, Outcome, Verdict, decide

log = logging.getLogger(__name__)

# An influencer trying again and again: the managers hear the first failure; further failures
# within this time only update that notice (while undelivered) and the live card, which counts
# the attempts and shows the latest reason.
REPEAT_WINDOW = timedelta(minutes=15)
# Failures only the managers (or the operator they forward it to) can resolve: each still gets
# its own notice inside the window, since a changed card alone asks nobody to act.
NEEDS_THE_MANAGER: frozenset[Outcome] = frozenset({Outcome.APP_NOT_LIVE, Outcome.TOKEN_INVALID})
# Facebook failures about the Page that Instagram Login does not need: where it is open for the
# invitation, the influencer is offered it as a one-tap alternative beside the fix.
INSTAGRAM_SOLVES: frozenset[Outcome] = frozenset(
    {Outcome.NO_PAGE, Outcome.IG_NOT_LINKED, Outcome.IG_HALF_LINKED}
)

# Redirect parameters we look at; anything else Facebook (or a forger) appends is ignored.
_REDIRECT_KEYS = ("code", "error", "error_code", "error_reason", "error_description")
# Instagram's redirect: a code, or Business Login's error triple.
_IG_REDIRECT_KEYS = ("code", "error", "error_reason", "error_description")
# Each value is cut to this before it is judged or sealed. Instagram's codes are longer than
# Facebook's (hundreds of characters); the query as a whole is capped by the route.
_REDIRECT_VALUE_MAX = 512
_IG_REDIRECT_VALUE_MAX = 2048


START_PATH = "/oauth/start"
CONFIRM_PATH = "/oauth/confirm"
# Our states are 43 characters; Facebook hands them back unchanged.
_MAX_STATE = 128
# A login cookie or confirmation token as we make them (`new_secret`).
_COOKIE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# A used state without a result after this long was interrupted (a callback takes seconds).
STRANDED_AFTER = timedelta(minutes=10)
_INTERRUPT_TRIES = 12  # about five minutes of retries while the database is away


@dataclass(frozen=True)
class RedirectResult:
    """What the browser should be shown."""

    http_status: int
    page: str  # catalog key under "web."
    language: Language | None = None
    username: str | None = None
    # The confirmation page (a redirect that reached another browser): its one-time token and
    # what it names.
    confirm_token: str | None = None
    handle: str | None = None
    brand: str | None = None


@dataclass(frozen=True)
class StartResult:
    """/oauth/start: on to Facebook (with the login cookie), or a page."""

    page: RedirectResult | None = None
    location: str | None = None
    cookie: str | None = None


@dataclass(frozen=True)
class LoginOffer:
    """A login screen and the state behind its button."""

    screen: Screen
    ticket: LoginTicket


class ConnectService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notices: Notices,
        instagram: InstagramClient | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._graph = graph
        # Instagram Login's client (the second Meta app), when configured.
        self._instagram = instagram
        self._vault = vault
        # Who hears what (in their language), the live card, and the delivery worker's bell.
        self._notices = notices
        self._sealer = LoginSealer(
            settings.facebook_app_secret.get_secret_value() if settings.facebook_app_secret else ""
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # At most this many logins verified at a time (code exchange, Graph reads, verdict): a
        # burst of redirects is served in arrival order instead of all of them slowly together.
        # asyncio.Semaphore wakes its waiters in the order they came, and a newcomer does not
        # overtake a waiter (CPython 3.11.1+, gh-90155). There is no "busy" page: a waiter waits
        # for its turn (seconds even for hundreds at once), the state is used only then, and the
        # result reaches the chat even if the browser gave up meanwhile.
        self._verifying = asyncio.Semaphore(settings.facebook_max_concurrent_logins)

    # --- handing out the login -------------------------------------------------------------

    async def new_login(
        self,
        t: Texts,
        invite: Invitation,
        *,
        telegram_user_id: int,
        rerequest: bool,
        reuse: bool = False,
        tapped: tuple[int, int] | None = None,
    ) -> LoginOffer | Literal[RenewalRefused.JUST_ISSUED] | None:
        """The screen with a login button (None when the invitation is no longer at the login
        step): with `reuse`, the live unused state of the invitation again, if there is one;
        otherwise a fresh single-use state, which replaces the older ones. For a tap on the
        (chat, message) `tapped`, JUST_ISSUED when an earlier tap's fresh one was handed out
        seconds ago (`Logins.issue_login`)."""
        assert invite.id is not None
        # The login buttons noted behind are read below: written first.
        await self._db.steps.notes.flush()
        ticket = await self._db.logins.issue_login(
            invitation_id=invite.id,
            telegram_user_id=telegram_user_id,
            ttl=timedelta(minutes=self._settings.login_ttl_minutes),
            rerequest=rerequest,
            reuse=reuse,
            sealer=self._sealer,
            tapped=tapped,
        )
        if ticket is None or ticket is RenewalRefused.JUST_ISSUED:
            return ticket
        return self.login_offer(t, invite, ticket)

    async def renewal(
        self, t: Texts, invitation_id: int, *, telegram_user_id: int
    ) -> LoginOffer | RenewalRefused:
        """The Renew button: a fresh login for the invitation's kept connection (Facebook's
        dialog with auth_type=reauthorize; for a broken Instagram Login connection, Instagram's
        window: Reconnect), replacing older login buttons; or why not."""
        await self._db.steps.notes.flush()  # as in `new_login`
        ticket = await self._db.logins.issue_renewal(
            invitation_id=invitation_id,
            telegram_user_id=telegram_user_id,
            ttl=timedelta(minutes=self._settings.login_ttl_minutes),
            sealer=self._sealer,
            # Access ending within the first renewal request's lead is due, checked or not.
            due_within=timedelta(days=max(self._settings.renewal_lead_days, default=0)),
        )
        if isinstance(ticket, RenewalRefused):
            return ticket
        invite = await self._db.invitations.get_invitation(invitation_id)
        if invite is None:  # deleted this very moment
            return RenewalRefused.ENDED
        s = self._settings
        if ticket.path == LoginPath.INSTAGRAM:
            # An Instagram Login connection: Instagram's window again, as its account.
            kept = await self._db.logins.kept_connection(invitation_id)
            screen = ig_reconnect_login(
                t,
                invitation_id,
                handle=(kept.instagram_username if kept is not None else "") or invite.handle,
                url=self.start_url(ticket.state),
                platform=s.platform_name,
                minutes=s.login_ttl_minutes,
            )
            return LoginOffer(screen, ticket)
        screen = renewal_login(
            t,
            invite,
            url=self.start_url(ticket.state),
            platform=s.platform_name,
            minutes=s.login_ttl_minutes,
            reconnect=ticket.reconnect,
        )
        return LoginOffer(screen, ticket)

    def prepare_login(self) -> NewLogin:
        """A fresh login state, sealed, for a step that may issue it in its own transaction
        (`Steps.answer_check`); nothing is stored here."""
        state = new_secret()
        return NewLogin(
            state=state,
            sealed=self._sealer.seal(state),
            ttl=timedelta(minutes=self._settings.login_ttl_minutes),
        )

    def login_offer(self, t: Texts, invite: Invitation, ticket: LoginTicket) -> LoginOffer:
        """The screen with the login button of a state issued: Instagram's for an invitation
        on the Instagram path, Facebook's otherwise."""
        s = self._settings
        if invite.path == LoginPath.INSTAGRAM:
            screen = instagram_login(
                t,
                invite,
                url=self.start_url(ticket.state),
                scopes=s.instagram_scopes,
                platform=s.platform_name,
                minutes=s.login_ttl_minutes,
            )
            return LoginOffer(screen, ticket)
        screen = login_screen(
            t,
            invite,
            url=self.start_url(ticket.state),
            scopes=s.facebook_scopes,
            platform=s.platform_name,
            minutes=s.login_ttl_minutes,
        )
        return LoginOffer(screen, ticket)

    def start_url(self, state: str) -> str:
        """The login button's link: our own /oauth/start, which marks the browser and sends it
        on to Facebook's dialog."""
        return f"{self._settings.public_url}{START_PATH}?{urlencode({'state': state})}"

    def _dialog_url(self, state: str, *, rerequest: bool, renewal: bool = False) -> str:
        s = self._settings
        return dialog_url(
            dialog_base=s.facebook_dialog_url,
            version=s.facebook_api_version,
            app_id=s.facebook_app_id or "",
            redirect_uri=s.redirect_uri,
            state=state,
            scopes=s.facebook_scopes,
            rerequest=rerequest,
            # Renews data access, which ends 90 days after the person last used the app.
            auth_type="reauthorize" if renewal else None,
        )

    def carried_by(self, offer: LoginOffer, *, chat_id: int, message_id: int) -> list[
        tuple[int, int]
    ]:
        """The offer's button now lives in this message (noted behind, `bot.store.notes`):
        returns the messages whose login buttons are to be taken off (replaced states, and an
        earlier copy of this one)."""
        self._db.steps.notes.note_login_button(offer.ticket.attempt_id, chat_id, message_id)
        stale = list(offer.ticket.stale_buttons)
        if offer.ticket.shown_in is not None:
            stale.append(offer.ticket.shown_in)
        return [m for m in stale if m != (chat_id, message_id)]

    # --- the browser: /oauth/start, the redirect, the confirmation ---------------------------

    async def start(self, params: Mapping[str, str], *, browser: str | None) -> StartResult:
        """Opening the login button: the browser gets (or keeps) the login cookie, bound to the
        state if it is the first browser to open it, and goes on to Facebook."""
        state = params.get("state", "")
        if not state or len(state) > _MAX_STATE:
            return StartResult(RedirectResult(400, "bad_request"))
        try:
            found = await self._db.logins.peek_state(state)
            if isinstance(found, StateProblem):
                return StartResult(await self._refused_in_language(found, state))
            attempt, invite = found
            assert attempt.id is not None
            cookie = browser if browser and _COOKIE_SHAPE.match(browser) else new_secret()
            if attempt.browser_hash is None:
                await self._db.logins.bind_browser(
                    attempt_id=attempt.id, browser_hash=secret_hash(cookie)
                )
        except Exception as exc:  # the database: nothing was handed out yet
            log.warning("login start failed: %s", type(exc).__name__)
            return StartResult(RedirectResult(503, "unavailable"))
        if attempt.path == LoginPath.INSTAGRAM:
            if self._instagram is None:  # handed out while configured, no longer configured
                log.warning("an Instagram login was opened, but Instagram Login is not set up")
                return StartResult(RedirectResult(503, "unavailable"))
            # After a login with another account than the invited one, Instagram asks who logs
            # in instead of taking whoever the browser is logged in as again (a reconnect: the
            # invitation stays connected, its last login's outcome tells).
            if attempt.renewal:
                try:
                    last = await self._db.logins.last_outcome(invite.id or 0)
                except Exception as exc:  # the database: Instagram's usual window will do
                    log.info("last login outcome unknown: %s", type(exc).__name__)
                    last = None
            else:
                last = invite.last_reason
            location = self._instagram.authorize_url(
                state=state,
                redirect_uri=self._settings.instagram_redirect_uri,
                force_reauth=last == IgOutcome.OTHER_ACCOUNT,
            )
            return StartResult(location=location, cookie=cookie)
        return StartResult(
            location=self._dialog_url(
                state, rerequest=attempt.rerequest, renewal=attempt.renewal
            ),
            cookie=cookie,
        )

    async def handle_redirect(
        self,
        params: Mapping[str, str],
        *,
        browser: str | None = None,
        path: LoginPath = LoginPath.FACEBOOK,
    ) -> RedirectResult:
        """A redirect from Facebook's dialog or (`path` instagram) Instagram's window. In the
        browser that opened the login button it is used at once; anywhere else (another
        browser, the app handing back to the phone's default browser) the page first asks to
        confirm, naming the invited account, before anything is verified or reported. A state
        handed out for the other way in is refused and stays as it was."""
        state = params.get("state", "")
        if not state or len(state) > _MAX_STATE:
            return RedirectResult(400, "bad_request")
        keys: tuple[str, ...]
        if path == LoginPath.INSTAGRAM:
            keys, most = _IG_REDIRECT_KEYS, _IG_REDIRECT_VALUE_MAX
        else:
            keys, most = _REDIRECT_KEYS, _REDIRECT_VALUE_MAX
        redirect = {k: params[k][:most] for k in keys if k in params}
        if browser is not None:
            async with self._verifying:
                try:
                    # The verdict takes the login buttons off: those noted behind go first.
                    await self._db.steps.notes.flush()
                    # One statement uses the state if this browser opened its login link.
                    used = await self._db.logins.use_state(
                        state, browser_hash=secret_hash(browser), path=path
                    )
                except Exception as exc:  # the database: nothing was used yet
                    log.warning(
                        "callback failed before the login was used: %s", type(exc).__name__
                    )
                    return RedirectResult(503, "unavailable")
                if isinstance(used, tuple):
                    return await self._complete(*used, redirect)
            if used is not None:
                return await self._refused_in_language(used, state)
        # No login cookie, or another browser's: confirmed on the page first (a state that
        # cannot be used any more is refused there).
        try:
            return await self._ask_confirmation(state, redirect, path)
        except Exception as exc:  # the database: nothing was used yet
            log.warning("callback failed before the login was used: %s", type(exc).__name__)
            return RedirectResult(503, "unavailable")

    async def confirm(self, token: str) -> RedirectResult:
        """The confirmation on the page: the waiting redirect is used now (once)."""
        if not _COOKIE_SHAPE.match(token):
            return RedirectResult(400, "bad_request")
        async with self._verifying:
            try:
                await self._db.steps.notes.flush()  # as in `handle_redirect`
                taken = await self._db.logins.take_confirmation(secret_hash(token))
            except Exception as exc:
                log.warning(
                    "confirmation failed before the login was used: %s", type(exc).__name__
                )
                return RedirectResult(503, "unavailable")
            if isinstance(taken, StateProblem):
                return self._refused(taken)
            redirect = self._sealer.open_params(taken.pending_sealed)
            if redirect is None:  # sealed under another app secret: cannot be used any more
                redirect = {"error": "server_error"}
            return await self._complete(taken.attempt, taken.invitation, redirect)

    async def _ask_confirmation(
        self, state: str, redirect: dict[str, str], path: LoginPath
    ) -> RedirectResult:
        token = new_secret()
        staged = await self._db.logins.stage_confirmation(
            state,
            confirm_hash=secret_hash(token),
            pending_sealed=self._sealer.seal_params(redirect),
            path=path,
        )
        if isinstance(staged, StateProblem):
            return await self._refused_in_language(staged, state)
        attempt, invite = staged
        t = await self._notices.texts_for(attempt.telegram_user_id)
        brand = await self._db.brands.brand(invite.brand_id) if invite.brand_id else None
        log.info("invitation %s: the login came back to another browser; asking", invite.id)
        return RedirectResult(
            200,
            "confirm",
            t.language,
            confirm_token=token,
            handle=invite.handle,
            brand=brand.name if brand else self._settings.platform_name,
        )

    async def _refused_in_language(self, problem: StateProblem, state: str) -> RedirectResult:
        """The refusal in the language of the person the state was handed to (their browser's
        may be another); the browser's when the state names nobody."""
        refused = self._refused(problem)
        try:
            owner = await self._db.logins.state_owner(state)
            if owner is None:
                return refused
            language = (await self._notices.texts_for(owner)).language
        except Exception as exc:  # the database: the browser's language will do
            log.info("language of a refused login unknown: %s", type(exc).__name__)
            return refused
        return replace(refused, language=language)

    def _refused(self, problem: StateProblem) -> RedirectResult:
        log.info("login refused: state %s", problem.value)
        status = {
            StateProblem.UNKNOWN: 400,
            StateProblem.USED: 409,
            StateProblem.EXPIRED: 410,
            StateProblem.WITHDRAWN: 410,
            StateProblem.SUPERSEDED: 410,
            StateProblem.CONNECTED: 200,
            StateProblem.WRONG_PATH: 400,
        }
        page = {
            StateProblem.WITHDRAWN: "withdrawn",
            StateProblem.CONNECTED: "already_connected",
        }.get(problem, f"state_{problem.value}")
        return RedirectResult(status[problem], page)

    async def _complete(
        self, attempt: LoginAttempt, invite: Invitation, redirect: dict[str, str]
    ) -> RedirectResult:
        """The state is used: gather what Facebook says, decide, store and tell. Should the
        database fail on the way, the person still gets a page in their language and a retry in
        the chat, and a token that cannot be kept is withdrawn at Facebook."""
        assert attempt.id is not None and invite.id is not None
        if attempt.path == LoginPath.INSTAGRAM:
            return await self._complete_instagram(attempt, invite, redirect)
        gathered = await self._graph.gather(
            redirect=redirect, redirect_uri=self._settings.redirect_uri
        )
        try:
            return await self._store_result(attempt, invite, gathered)
        except Exception as exc:
            log.error(
                "invitation %s: the login result could not be stored: %s",
                invite.id,
                type(exc).__name__,
            )
            return await self._interrupted(attempt, invite, gathered)

    async def _store_result(
        self, attempt: LoginAttempt, invite: Invitation, gathered: Gathered
    ) -> RedirectResult:
        assert attempt.id is not None and invite.id is not None
        if attempt.renewal:
            return await self._store_renewal(attempt, invite, gathered)
        verdict = decide(
            gathered.evidence,
            invited_handle=invite.handle,
            required_scopes=self._settings.facebook_scopes,
            app_id=self._settings.facebook_app_id or "",
            now=utcnow(),
        )
        # Read with the Pages (`bot.graph.PAGE_FIELDS`); missing, the messages leave it out.
        followers = verdict.instagram.followers_count if verdict.instagram else None
        if not verdict.connected:
            followers = None
        record = self._connection_record(verdict, gathered.token, followers)
        offered = await self._instagram_open(invite, verdict.outcome)
        platform = self._settings.platform_name
        return await self._tell_and_record(
            attempt,
            invite,
            outcome=verdict.outcome.value,
            record=record,
            for_influencer=lambda t: verdict_for_influencer(
                t,
                invite,
                verdict,
                platform=platform,
                followers=followers,
                instagram_offered=offered,
            ),
            for_manager=lambda t: verdict_for_manager(
                t, invite, verdict, platform=platform, followers=followers
            ),
            facts=verdict_facts(verdict, followers=followers),
            repeat_window=timedelta(0)
            if verdict.outcome in NEEDS_THE_MANAGER
            else REPEAT_WINDOW,
            connected_as=verdict.instagram.username
            if verdict.connected and verdict.instagram is not None
            else None,
        )

    async def _tell_and_record(
        self,
        attempt: LoginAttempt,
        invite: Invitation,
        *,
        outcome: str,
        record: ConnectionRecord | None,
        for_influencer: Callable[[Texts], Screen],
        for_manager: Callable[[Texts], Screen],
        facts: VerdictFacts,
        repeat_window: timedelta,
        connected_as: str | None,
    ) -> RedirectResult:
        """A first login's verdict, on either path: the influencer, the live card, the brand's
        managers and the team chat hear it in the transaction that records it; then the page.
        `connected_as`: the username connected, None when it did not connect."""
        assert attempt.id is not None and invite.id is not None
        # Everyone this result is told to, with their languages: one read.
        audience = await self._notices.audience(
            invite, influencer=attempt.telegram_user_id, count_failures=connected_as is None
        )
        assert audience.influencer is not None
        influencer_t = self._notices.texts_of(audience.influencer)
        told = [
            outgoing(
                attempt.telegram_user_id, for_influencer(influencer_t), invitation_id=invite.id
            )
        ]
        after = invite.model_copy(
            update={
                "status": InviteStatus.CONNECTED if connected_as else InviteStatus.FAILED,
                "last_reason": None if connected_as else outcome,
            }
        )
        told += await self._notices.card_outgoing(after, connection=record, audience=audience)
        told += await self._notices.brand_notices(invite, for_manager, audience=audience)
        invite = await self._db.logins.record_verdict(
            attempt_id=attempt.id,
            invitation_id=invite.id,
            outcome=outcome,
            connection=record,
            outgoing=told,
            facts=facts,
            repeat_window=repeat_window,
        )
        return self._verdict_page(invite, outcome, influencer_t.language, connected_as)

    def _verdict_page(
        self, invite: Invitation, outcome: str, language: Language, connected_as: str | None
    ) -> RedirectResult:
        """The browser's page once a verdict was stored (`invite` as `record_verdict` left it);
        `connected_as`: the username the login connected, None when it did not connect."""
        if invite.status == InviteStatus.REVOKED:
            log.info("invitation %s was withdrawn during the login: nothing kept", invite.id)
            return RedirectResult(410, "withdrawn", language)
        if invite.status == InviteStatus.CONNECTED and connected_as is None:
            log.info("invitation %s is connected already: a late login changed nothing", invite.id)
            return RedirectResult(200, "already_connected", language)
        self._notices.ring()
        log.info("invitation %s: verdict %s", invite.id, outcome)
        if connected_as is not None:
            return RedirectResult(200, "connected", language, connected_as)
        return RedirectResult(200, "failed", language)

    # --- Instagram Login (the second way in) -------------------------------------------------

    async def _instagram_open(self, invite: Invitation, outcome: Outcome) -> bool:
        """Whether a Facebook failure offers Instagram Login instead: one Instagram would not
        have (`INSTAGRAM_SOLVES`), and the way is open for the invitation. The brand is read
        only then (no query for any other result, nor where Instagram Login is not set up)."""
        if outcome not in INSTAGRAM_SOLVES or not self._settings.instagram_login_configured:
            return False
        brand = await self._db.brands.brand(invite.brand_id) if invite.brand_id else None
        paths = open_paths(self._settings, brand.login_paths if brand is not None else None)
        return LoginPath.INSTAGRAM in paths

    async def _complete_instagram(
        self, attempt: LoginAttempt, invite: Invitation, redirect: dict[str, str]
    ) -> RedirectResult:
        """An Instagram Login's state is used: gather what Instagram says (the code exchanged
        once, the long-lived token, /me), decide, store and tell, as `_complete` does for
        Facebook's."""
        assert attempt.id is not None and invite.id is not None
        if self._instagram is None:
            # Not configured any more: nothing can be asked, Instagram counts as unreachable.
            gathered = IgGathered(
                IgLoginEvidence(redirect=redirect, failure=FetchFailure.UNAVAILABLE)
            )
        else:
            gathered = await self._instagram.gather(
                redirect=redirect, redirect_uri=self._settings.instagram_redirect_uri
            )
        try:
            return await self._store_instagram_result(attempt, invite, gathered)
        except Exception as exc:
            log.error(
                "invitation %s: the Instagram login result could not be stored: %s",
                invite.id,
                type(exc).__name__,
            )
            # Instagram Login has no endpoint to withdraw a token: unkept, it simply lapses.
            return await self._interrupted(attempt, invite, None)

    async def _store_instagram_result(
        self, attempt: LoginAttempt, invite: Invitation, gathered: IgGathered
    ) -> RedirectResult:
        assert attempt.id is not None and invite.id is not None
        if attempt.renewal:
            return await self._store_instagram_renewal(attempt, invite, gathered)
        verdict = decide_instagram(
            gathered.evidence,
            invited_handle=invite.handle,
            requested_scopes=self._settings.instagram_scopes,
        )
        account = verdict.account
        followers = account.followers_count if verdict.connected and account else None
        record = self._instagram_record(verdict, gathered.token, followers)
        platform = self._settings.platform_name
        return await self._tell_and_record(
            attempt,
            invite,
            outcome=verdict.outcome.value,
            record=record,
            for_influencer=lambda t: ig_verdict_for_influencer(
                t, invite, verdict, platform=platform, followers=followers
            ),
            for_manager=lambda t: ig_verdict_for_manager(
                t, invite, verdict, platform=platform, followers=followers
            ),
            facts=instagram_verdict_facts(verdict, followers=followers),
            repeat_window=REPEAT_WINDOW,
            connected_as=account.username if verdict.connected and account is not None else None,
        )

    def _instagram_record(
        self, verdict: IgVerdict, token: IgAccessToken | None, followers: int | None
    ) -> ConnectionRecord | None:
        """An Instagram Login connection: no Facebook user, no Page; Instagram's long-lived
        user token (60 days, refreshed by the health job) sealed as the user token."""
        if not verdict.connected:
            return None
        assert verdict.account is not None
        now = utcnow()
        expires_at = (
            now + timedelta(seconds=token.expires_in)
            if token is not None and token.expires_in
            else None
        )
        return ConnectionRecord(
            facebook_user_id="",
            page_id="",
            page_name="",
            instagram_id=verdict.account.instagram_id,
            instagram_username=verdict.account.username,
            followers_count=followers,
            permissions=verdict.granted,
            token_encrypted=self._vault.seal(token.access_token) if token else None,
            token_expires_at=expires_at,
            data_access_expires_at=None,
            page_token_encrypted=None,
            next_check_at=now + timedelta(seconds=self._settings.health_check_interval_seconds),
            path=LoginPath.INSTAGRAM,
        )

    async def _store_instagram_renewal(
        self, attempt: LoginAttempt, invite: Invitation, gathered: IgGathered
    ) -> RedirectResult:
        """A reconnect through Instagram Login came back: judged as a first Instagram login is,
        against the connection's account; the same account mends the kept connection (its new
        token and expiry, healthy again; the managers told when they were told it broke),
        anything else leaves it as it was and tells the influencer exactly why, with Try
        again."""
        assert attempt.id is not None and invite.id is not None
        kept = await self._db.logins.kept_connection(invite.id)
        handle = (kept.instagram_username if kept is not None else "") or invite.handle
        verdict = decide_instagram(
            gathered.evidence,
            invited_handle=handle,
            requested_scopes=self._settings.instagram_scopes,
        )
        t = await self._notices.texts_for(attempt.telegram_user_id)
        platform = self._settings.platform_name
        account = verdict.account
        same = (
            verdict.connected
            and kept is not None
            and account is not None
            and account.instagram_id == kept.instagram_id
        )
        record: ConnectionRecord | None = None
        if_broken: list[Outgoing] = []
        followers = account.followers_count if same and account is not None else None
        if same:
            assert account is not None
            record = self._instagram_record(verdict, gathered.token, followers)
            screen = ig_reconnected(t, invite.id, username=account.username, platform=platform)

            def reconnected(mt: Texts) -> Screen:
                return Screen(mt("renewal.manager_reconnected", handle=invite.handle))

            if_broken = await self._notices.brand_notices(invite, reconnected)
        else:
            screen = ig_reconnect_failed(t, invite, verdict, handle=handle, platform=platform)
        stored = await self._db.logins.record_renewal(
            attempt_id=attempt.id,
            invitation_id=invite.id,
            outcome=verdict.outcome.value,
            connection=record,
            outgoing=[outgoing(attempt.telegram_user_id, screen, invitation_id=invite.id)],
            if_broken=if_broken,
            facts=instagram_verdict_facts(verdict, followers=followers)
            if record is not None
            else None,
        )
        self._notices.ring()
        log.info(
            "invitation %s: Instagram reconnect %s (%s)",
            invite.id,
            stored.value,
            verdict.outcome.value,
        )
        if stored is RenewalStored.ENDED:
            return RedirectResult(410, "withdrawn", t.language)
        if stored is RenewalStored.FAILED:
            return RedirectResult(200, "renewal.failed", t.language)
        try:
            await self._notices.refresh_card(invite.id)
        except Exception as exc:  # the card catches up with the next change
            log.warning("invitation %s: card not refreshed: %s", invite.id, type(exc).__name__)
        assert account is not None
        return RedirectResult(200, "renewal.reconnected", t.language, account.username)

    async def _store_renewal(
        self, attempt: LoginAttempt, invite: Invitation, gathered: Gathered
    ) -> RedirectResult:
        """A renewal login came back: judged as a first login is, then it either refreshes the
        kept connection (the same Page and Instagram account) or leaves it as it was and tells
        the influencer exactly why, with a retry. The managers hear only a reconnection of a
        connection they were told had broken."""
        assert attempt.id is not None and invite.id is not None
        kept = await self._db.logins.kept_connection(invite.id)
        verdict = decide(
            gathered.evidence,
            invited_handle=invite.handle,
            required_scopes=self._settings.facebook_scopes,
            app_id=self._settings.facebook_app_id or "",
            now=utcnow(),
            keep_page_id=kept.page_id if kept is not None else None,
        )
        t = await self._notices.texts_for(attempt.telegram_user_id)
        platform = self._settings.platform_name
        same = (
            verdict.connected
            and kept is not None
            and verdict.page is not None
            and verdict.instagram is not None
            and (verdict.page.id, verdict.instagram.id) == (kept.page_id, kept.instagram_id)
        )
        record: ConnectionRecord | None = None
        told: list[Outgoing] = []
        if_broken: list[Outgoing] = []
        followers = verdict.instagram.followers_count if verdict.instagram else None
        reconnect = kept is not None and needs_repair(kept)
        if same:
            record = self._connection_record(verdict, gathered.token, followers)
            screen = renewed(
                t,
                verdict,
                platform=platform,
                until=_access_ends(
                    verdict,
                    page_token_kept=record is not None and bool(record.page_token_encrypted),
                ),
                reconnect=reconnect,
                invitation_id=invite.id,
            )

            def reconnected(mt: Texts) -> Screen:
                return Screen(mt("renewal.manager_reconnected", handle=invite.handle))

            if_broken = await self._notices.brand_notices(invite, reconnected)
        else:
            screen = renewal_failed(
                t,
                invite,
                verdict,
                platform=platform,
                kept_page=kept.page_name if kept is not None else "",
                kept_username=kept.instagram_username if kept is not None else invite.handle,
                reconnect=reconnect,
            )
            if verdict.outcome is Outcome.APP_NOT_LIVE:
                # Only the operator can fix it (and the influencer is told their manager knows):
                # the one failed renewal the managers hear of.
                told = await self._notices.brand_notices(
                    invite,
                    lambda mt: verdict_for_manager(mt, invite, verdict, platform=platform),
                )
        stored = await self._db.logins.record_renewal(
            attempt_id=attempt.id,
            invitation_id=invite.id,
            outcome=verdict.outcome.value,
            connection=record,
            outgoing=[
                outgoing(attempt.telegram_user_id, screen, invitation_id=invite.id),
                *told,
            ],
            if_broken=if_broken,
            facts=verdict_facts(verdict, followers=followers) if record is not None else None,
        )
        self._notices.ring()
        log.info("invitation %s: renewal %s (%s)", invite.id, stored.value, verdict.outcome.value)
        if stored is RenewalStored.ENDED:
            return RedirectResult(410, "withdrawn", t.language)
        if stored is RenewalStored.FAILED:
            return RedirectResult(200, "renewal.failed", t.language)
        try:
            # The card shows the connection as stored now (its health, its new expiries).
            await self._notices.refresh_card(invite.id)
        except Exception as exc:  # the card catches up with the next change
            log.warning("invitation %s: card not refreshed: %s", invite.id, type(exc).__name__)
        assert verdict.instagram is not None
        page = "renewal.reconnected" if reconnect else "renewal.renewed"
        return RedirectResult(200, page, t.language, verdict.instagram.username)

    async def _interrupted(
        self, attempt: LoginAttempt, invite: Invitation, gathered: Gathered | None
    ) -> RedirectResult:
        """The result of a used state could not be stored: withdraw the token Facebook issued
        (it cannot be kept; `gathered` None: nothing to withdraw), record the attempt as
        interrupted with a retry in the chat, now or, while the database is away, a little
        later."""
        assert attempt.id is not None and invite.id is not None
        if gathered is not None and gathered.token:
            await self._withdraw_token(gathered)
        language: Language | None = None
        try:
            t = await self._notices.texts_for(attempt.telegram_user_id)
            language = t.language
            await self._record_interruption(attempt, invite, t)
            recorded = True
        except Exception as exc:
            log.warning("invitation %s: retry not recorded yet: %s", invite.id, type(exc).__name__)
            recorded = False
        if not recorded:
            self._later(self._record_interruption_later(attempt, invite))
        return RedirectResult(503, "storage_error", language)

    async def _withdraw_token(self, gathered: Gathered) -> None:
        """DELETE /me/permissions ends every connection of that Facebook user with this app:
        skipped when the database says another invitation of theirs is connected (then the
        token simply lapses); done when the database cannot tell."""
        assert gathered.token is not None
        user_id = (gathered.evidence.debug or {}).get("user_id")
        try:
            others = await self._db.logins.other_active_connections(str(user_id)) if user_id else 0
        except Exception:
            others = 0
        if others:
            log.warning("token not withdrawn: the Facebook user has other connections")
            return
        try:
            await self._graph.revoke(gathered.token)
            log.info("the token of the interrupted login was withdrawn at Facebook")
        except GraphError as exc:
            log.warning("could not withdraw the token of an interrupted login: %s", exc)

    async def _record_interruption(
        self, attempt: LoginAttempt, invite: Invitation, t: Texts
    ) -> bool:
        assert attempt.id is not None and invite.id is not None
        retry = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        t.plain("button.retry"),
                        callback_data=Press(Action.RETRY, invite.id, Step.LOGIN).pack(),
                    )
                ]
            ]
        )
        if attempt.renewal:
            retry = renewal_keyboard(t, invite.id, "button.retry")
        interrupted = (
            "ig_login.interrupted" if attempt.path == LoginPath.INSTAGRAM else "login.interrupted"
        )
        told = outgoing(
            attempt.telegram_user_id,
            Screen(t(interrupted), retry),
            invitation_id=invite.id,
        )
        recorded = await self._db.logins.interrupt_login(
            attempt_id=attempt.id,
            invitation_id=invite.id,
            outgoing=[told],
            renewal=attempt.renewal,
        )
        if recorded:
            self._notices.ring()
        return recorded

    async def _record_interruption_later(self, attempt: LoginAttempt, invite: Invitation) -> None:
        delay = 0.5
        for _ in range(_INTERRUPT_TRIES):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                t = await self._notices.texts_for(attempt.telegram_user_id)
                await self._record_interruption(attempt, invite, t)
                return
            except Exception as exc:
                log.info("retry for invitation %s not recorded yet: %s", invite.id, type(exc))
        log.warning("invitation %s: retry left to the periodic check", invite.id)

    async def recover_stranded(self) -> int:
        """Periodic: logins used long ago without a result (the process died, or the database
        failed for longer than the callback kept trying) get their retry now."""
        now = utcnow()
        stranded = await self._db.logins.stranded_logins(
            used_before=now - STRANDED_AFTER, used_after=now - timedelta(days=1)
        )
        done = 0
        for attempt in stranded:
            invite = await self._db.invitations.get_invitation(attempt.invitation_id)
            if invite is None:
                continue
            t = await self._notices.texts_for(attempt.telegram_user_id)
            done += await self._record_interruption(attempt, invite, t)
        return done

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop the retries still waiting (the periodic check takes them over)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def on_unreachable(self, rows: Sequence[OutboxMessage]) -> None:
        """A chat answered 403. Only the chat that failed is concluded unreachable: an
        influencer's own chat (they blocked the bot): the brand's managers hear it instead; the
        brand's team chat (the bot was removed, the group deleted): it is unregistered and the
        managers are told; a manager's own chat: only the log can say so."""
        if not rows:
            return
        chat_id = rows[0].chat_id  # one delivery: one chat
        await self._notices.team_chat_gone(chat_id)
        # Only news that did not arrive is worth telling: an edit (a card, buttons coming off)
        # to a blocked chat is not, and would tell the managers a second time.
        news = (OutboxKind.SEND, OutboxKind.NOTICE)
        undelivered = {
            r.invitation_id for r in rows if r.invitation_id is not None and r.kind in news
        }
        for invitation_id in undelivered:
            invite = await self._db.invitations.get_invitation(invitation_id)
            if invite is None or invite.id is None or invite.telegram_user_id != chat_id:
                continue
            await self._db.invitations.record_event(
                invitation_id=invite.id, kind=EventKind.UNREACHABLE
            )

            def told(t: Texts, handle: str = invite.handle) -> Screen:
                return Screen(t("manager.unreachable", handle=handle))

            await self._db.outbox.enqueue(await self._notices.brand_notices(invite, told))
        self._notices.ring()

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
            # Only with the user token: the Page token is kept under the same terms.
            page_token_encrypted=(
                self._vault.seal(verdict.page.access_token)
                if token and verdict.page.access_token
                else None
            ),
            next_check_at=utcnow()
            + timedelta(seconds=self._settings.health_check_interval_seconds),
        )


def _access_ends(verdict: Verdict, *, page_token_kept: bool) -> datetime | None:
    """When the renewed access ends. With the Page token kept, the brand's reads use it and it
    does not expire: data access ends (90 days on). Without one, the earlier of the user
    token's and data access's expiry (as `bot.store.logins.access_ends` counts it)."""
    if page_token_kept:
        return verdict.data_access_expires_at
    moments = [m for m in (verdict.expires_at, verdict.data_access_expires_at) if m is not None]
    return min(moments, default=None)
