"""Keeping connections alive (issue 11): the periodic health check of every kept connection, the
renewal request before data access ends, the breakage notices, and a manager's reminder.

A round (`Upkeep.run_round`, the leader's periodic job) claims the connections whose check is
due in batches (`bot.store.health`), reads for each what `bot.health.judge` needs from Graph
(`debug_token` of the kept Page token, which the brand's reads use, for a whole claim in batches
of 50 through Graph's batch API; the connected Page with it; the Instagram account through it.
Older connections without a Page token: `debug_token` of the user token and the Page from
/me/accounts), at most HEALTH_GRAPH_CALLS_PER_SECOND calls per
second for the whole round, and writes each verdict with its event and its messages in one
transaction. Graph being down or throttling changes nothing but the time of the next check, and
ends the round (the rest waits for the next one). A connection made through Instagram Login
(issue 13) has no Page and no debug_token: its check refreshes its token on Instagram's host when
it expires within IG_REFRESH_BEFORE (keeping the new one), reads /me with it and, to notice
the insights permission taken back (/me needs only the basic one), one metric of the account's
insights (`bot.health.judge_instagram`); it is never due for renewal, and Instagram refusing the
token or the permission breaks it as any breakage does. Who is told:

- renewal due (14, then 3 days before access ends; each lead once): the influencer, one
  message with a Renew button. With a Page token, access ends when data access does (90 days
  after the last login; the Page token itself does not expire, and the user token's 60 days do
  not matter, since nothing reads with it), as every text says. The managers are not
  bothered while renewal can happen in time.
- broken or disconnected: the influencer, with the exact reason and fix and a Reconnect button;
  the brand's managers (and team chat) once per breakage, as notices due at the day's digest
  time, which the delivery worker combines per chat into one message. A reason that stays the
  same tells nobody again.
- broken, then working again at a check without a Reconnect (a username changed back, an
  account professional again): both sides hear that it works again (the managers with the
  day's notices).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import Renew
from bot.config import Settings
from bot.crypto import TokenVault
from bot.graph import GraphClient, GraphError, problem_of
from bot.graph_json import as_timestamp
from bot.health import (
    CheckFacts,
    Expected,
    GraphProblem,
    HealthReason,
    HealthState,
    HealthVerdict,
    IgCheckFacts,
    ProblemKind,
    is_personal,
    judge,
    judge_instagram,
)
from bot.i18n import Html, Texts
from bot.instagram_login import InstagramClient, InstagramError
from bot.metrics import Metrics
from bot.models import (
    Connection,
    ConnectionStatus,
    Invitation,
    InviteStatus,
    LoginPath,
    access_ends,
    utcnow,
)
from bot.notices import Notices, outgoing
from bot.screens import Screen, long_date, permission_list
from bot.store import BreakageDetails, CheckResult, Database, DueCheck, Outgoing

log = logging.getLogger(__name__)

# What a check reads of the Page (no access token, no follower count: only what `judge` needs).
CHECK_PAGE_FIELDS = (
    "id,is_published,tasks,"
    "instagram_business_account{id,username},connected_instagram_account{id,username}"
)
CHECK_INSTAGRAM_FIELDS = "id,username"
# Connections claimed at a time, and checked at the same time within a claim (the pace, not
# this, bounds the calls per second; this only hides Graph's latency).
CLAIM_BATCH = 50
CHECKS_AT_ONCE = 8
# A claim lasts this long: a replica that dies mid-round leaves its connections due again then.
CLAIM_HOLD = timedelta(minutes=10)
# Each next check comes 80-100 % of the interval later, so the checks of connections made
# together drift apart over the interval instead of coming due all at once.
JITTER = 0.2
# Managers hear of breakages in one message a day, at this hour (UTC); with check intervals
# shorter than a quarter day, at most an hour (or one interval) after the round.
DIGEST_HOUR_UTC = 9
_DAILY_DIGEST_FROM = timedelta(hours=6)
_SHORT_DIGEST = timedelta(hours=1)
# A manager's "Remind" reaches the influencer at most this often per invitation, unless the
# connection's health changed since the last reminder (then it is news worth a reminder).
REMIND_EVERY = timedelta(hours=1)
# A second Remind this soon after the first is a double tap: a toast, not a refusal in the chat.
REMIND_DOUBLE_TAP = timedelta(seconds=10)
# The periodic job runs this often at most (each round takes only what is due).
_ROUND_EVERY_MOST = timedelta(minutes=5)
# Instagram Login tokens (issue 13) live 60 days and can be refreshed once at least a day old:
# the check refreshes one when it expires within REFRESH_BEFORE (a month of daily checks to get
# it done, long before it runs out), so these connections never need the influencer again.
IG_TOKEN_LIFETIME = timedelta(days=60)
IG_REFRESH_BEFORE = timedelta(days=30)
IG_REFRESH_MIN_AGE = timedelta(hours=24)
# The health check's read that needs the insights permission (/me needs only the basic one).
IG_INSIGHTS_SCOPE = "instagram_business_manage_insights"
IG_PROBE_PARAMS: Mapping[str, str] = {"metric": "reach", "period": "day"}
_IG_TOKEN_KINDS = frozenset(
    {
        ProblemKind.TOKEN_INVALID,
        ProblemKind.TOKEN_EXPIRED,
        ProblemKind.PASSWORD_CHANGED,
        ProblemKind.APP_REMOVED,
        ProblemKind.LOGGED_OUT,
        ProblemKind.ACCESS_EXPIRED,
    }
)
# A reason the influencer can do nothing about in the Facebook dialog: no Reconnect button.
_NO_BUTTON = frozenset({HealthReason.USERNAME_CHANGED})


@dataclass(frozen=True)
class RoundReport:
    checked: int = 0  # connections judged and written
    changed: int = 0  # ... whose health or reason changed
    retried: int = 0  # connections whose check must wait (Graph down or throttling)


class GraphPace:
    """At most `per_second` Graph calls per second, spread evenly, for every check of a round
    together (the checks run concurrently, each call takes the next free slot)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = clock()
        self.calls = 0

    async def take(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        self.calls += 1
        if slot > now:
            await asyncio.sleep(slot - now)


# debug_token's data for one connection, the problem of its request, or None (not asked).
_Debugged = Mapping[str, Any] | GraphProblem | None


@dataclass(frozen=True)
class _Read:
    """What one check read: the verdict, and debug_token's expiries of the checked token (to
    keep them current; the Page token's `expires_at` is None: it does not expire)."""

    verdict: HealthVerdict
    token_expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    graph_trouble: bool = False  # Graph was down or throttling (not just this connection)
    new_token_encrypted: str | None = field(default=None, repr=False)  # a refreshed token


class Upkeep:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notices: Notices,
        metrics: Metrics | None = None,
        instagram: InstagramClient | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._graph = graph
        # Instagram Login's host (only when the second Meta app is configured).
        self._instagram = instagram
        self._vault = vault
        self._notices = notices
        self._metrics = metrics
        self._interval = timedelta(seconds=settings.health_check_interval_seconds)

    async def periodic_round(self) -> RoundReport:
        """The leader's periodic job: a round of at most `every`."""
        return await self.run_round(within=self.every)

    @property
    def every(self) -> timedelta:
        """How often the periodic job runs a round: often enough that a connection waits at
        most a small part of the interval past its due time."""
        return min(self._interval / 24, _ROUND_EVERY_MOST)

    # --- a round ---------------------------------------------------------------------------

    async def run_round(self, *, within: timedelta | None = None) -> RoundReport:
        """Check every connection that is due now; returns what happened. `within`: claim no
        further batch after this long (the periodic job's round leaves the rest to the next one,
        so the other jobs are not held up by a large round at a slow pace)."""
        pace = GraphPace(self._settings.health_graph_calls_per_second)
        started = time.monotonic()
        checked = changed = retried = 0
        at_once = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def check(due: DueCheck, debugged: _Debugged) -> _Read:
            async with at_once:
                if due.path == LoginPath.INSTAGRAM:
                    return await self._read_instagram(due, pace)
                return await self._read(due, pace, debugged)

        while within is None or time.monotonic() - started < within.total_seconds():
            now = utcnow()
            batch = await self._db.health.claim_due(
                now=now, limit=CLAIM_BATCH, hold=now + CLAIM_HOLD
            )
            if not batch:
                break
            debugged = await self._debug_all(batch, pace)
            reads = await asyncio.gather(
                *(check(due, debugged.get(due.connection_id)) for due in batch)
            )
            now = utcnow()
            results: list[CheckResult] = []
            waits: dict[datetime, list[int]] = {}
            trouble = False
            for due, read in zip(batch, reads, strict=True):
                if read.verdict.retry is not None:
                    waits.setdefault(now + read.verdict.retry, []).append(due.connection_id)
                    trouble = trouble or read.graph_trouble
                    self._count_check("retry")
                    continue
                results.append(await self._result(due, read, now))
            for until, ids in waits.items():
                await self._db.health.postpone(ids, until=until)
            written = await self._db.health.record_checks(results, now=now)
            told = False
            for result in results:
                if result.check.connection_id not in written:
                    continue
                checked += 1
                self._count(result)
                told = told or bool(result.outgoing)
                if result.event_detail is not None:
                    changed += 1
            if told:
                self._notices.ring()
            for result in results:
                if result.event_detail is not None and result.check.connection_id in written:
                    # The manager's card shows the connection's health.
                    await self._notices.refresh_card(result.check.invitation_id)
            retried += sum(len(ids) for ids in waits.values())
            if trouble:
                # Graph is down or throttling: the rest waits for the next round.
                break
        report = RoundReport(checked=checked, changed=changed, retried=retried)
        if checked or retried:
            log.info(
                "health round: %s checked, %s changed, %s to retry (%s Graph calls)",
                checked,
                changed,
                retried,
                pace.calls,
            )
        return report

    async def _debug_all(self, batch: Sequence[DueCheck], pace: GraphPace) -> dict[int, _Debugged]:
        """debug_token of each connection's checked token, through Graph's batch API (one
        request per 50; each token takes its own slot of the pace, since Graph counts each
        request in a batch as a call). A failed batch request: its problem for every
        connection in it (an outage: the whole claim waits). Never raises for Graph."""
        checked: list[tuple[int, str]] = []
        for due in batch:
            if due.path == LoginPath.INSTAGRAM:
                continue  # no debug_token on Instagram's host (`_read_instagram`)
            user_token = self._vault.open(due.token_encrypted)
            if user_token is None:
                continue  # `_read` keeps it as it is
            page_token = (
                self._vault.open(due.page_token_encrypted) if due.page_token_encrypted else None
            )
            # The token the brand's reads use: with a Page token kept, that one (it outlives
            # the user token's 60 days; data access's 90 days still bound it).
            checked.append((due.connection_id, page_token or user_token))
        if not checked:
            return {}

        async def paced(count: int) -> None:
            for _ in range(count):
                await pace.take()

        try:
            results = await self._graph.debug_tokens(
                [token for _, token in checked], before_batch=paced
            )
        except GraphError as error:
            problem = problem_of(error)
            return {connection_id: problem for connection_id, _ in checked}
        return {
            connection_id: result
            for (connection_id, _), result in zip(checked, results, strict=True)
        }

    async def _read(self, due: DueCheck, pace: GraphPace, debugged: _Debugged) -> _Read:
        """Read from Graph what the check needs (debug_token's answer `debugged` comes from
        `_debug_all`) and judge it. Never raises for Graph."""
        user_token = self._vault.open(due.token_encrypted)
        if user_token is None:
            # Sealed with a key no longer configured: our problem, not the influencer's.
            log.warning("connection %s: its token cannot be opened", due.connection_id)
            return _Read(_keep(due, retry=self._interval))
        page_token = (
            self._vault.open(due.page_token_encrypted) if due.page_token_encrypted else None
        )

        async def page() -> Mapping[str, Any] | None:
            if page_token is not None:
                await pace.take()
                return await self._graph.read_node(
                    due.page_id, fields=CHECK_PAGE_FIELDS, token=page_token
                )
            return await self._graph.find_page(
                user_token, due.page_id, fields=CHECK_PAGE_FIELDS, before_call=pace.take
            )

        async def instagram() -> Mapping[str, Any] | None:
            if page_token is None:
                return None  # the Page's instagram_business_account says enough
            await pace.take()
            return await self._graph.read_node(
                due.instagram_id, fields=CHECK_INSTAGRAM_FIELDS, token=page_token
            )

        debug_data: Mapping[str, Any] | None = None
        debug_problem: GraphProblem | None = None
        if isinstance(debugged, GraphProblem):
            debug_problem = debugged
        else:
            debug_data = debugged
        page_data: Mapping[str, Any] | None = None
        ig_data: Mapping[str, Any] | None = None
        page_problem: GraphProblem | None = None
        ig_problem: GraphProblem | None = None
        if debug_problem is None and debug_data is not None:
            # Without debug_token's answer the check waits anyway (`judge`): no further reads.
            (page_data, page_problem), (ig_data, ig_problem) = await asyncio.gather(
                _graph_read(page()), _graph_read(instagram())
            )
        facts = CheckFacts(
            expected=Expected(
                page_id=due.page_id,
                instagram_id=due.instagram_id,
                username=due.instagram_username,
                required_scopes=tuple(self._settings.facebook_scopes),
                app_id=self._settings.facebook_app_id or "",
            ),
            now=utcnow(),
            debug=debug_data,
            debug_problem=debug_problem,
            page=page_data,
            page_problem=page_problem,
            instagram=ig_data,
            instagram_problem=ig_problem,
            page_token=page_token is not None,
            known_data_access_expires_at=due.data_access_expires_at,
            previous=_state(due.health),
            previous_reason=_reason(due.health_reason),
            renewal_lead_days=tuple(self._settings.renewal_lead_days),
        )
        verdict = judge(facts)
        if verdict.retry is not None:
            problems = (debug_problem, page_problem, ig_problem)
            return _Read(
                verdict, graph_trouble=any(p is not None and p.retryable for p in problems)
            )
        debug_map = debug_data or {}
        return _Read(
            verdict,
            token_expires_at=as_timestamp(debug_map.get("expires_at")),
            data_access_expires_at=as_timestamp(debug_map.get("data_access_expires_at")),
        )

    async def _read_instagram(self, due: DueCheck, pace: GraphPace) -> _Read:
        """The check of an Instagram Login connection: its token refreshed when due, then
        ``/me`` read with it, judged by `bot.health.judge_instagram`. Never asks the
        influencer to renew. Never raises for Instagram."""
        token = self._vault.open(due.token_encrypted)
        if token is None or self._instagram is None:
            # Sealed with a key no longer configured, or the second app no longer configured:
            # our problem, not the influencer's.
            log.warning("connection %s: its Instagram token cannot be used", due.connection_id)
            return _Read(_keep(due, retry=self._interval))
        instagram = self._instagram
        now = utcnow()
        expires = _aware(due.token_expires_at)
        refreshed: tuple[str, datetime] | None = None
        problem: GraphProblem | None = None
        if _refresh_due(expires, now):
            await pace.take()
            try:
                fresh = await instagram.refresh(token)
            except InstagramError as exc:
                problem = exc.problem
                log.info(
                    "connection %s: Instagram token not refreshed: %s (code %s)",
                    due.connection_id,
                    problem.kind,
                    problem.code,
                )
                if problem.kind is ProblemKind.BAD_REQUEST:
                    problem = None  # e.g. not a day old yet: the token itself is fine
            else:
                lifetime = (
                    timedelta(seconds=fresh.expires_in)
                    if fresh.expires_in and fresh.expires_in > 0
                    else IG_TOKEN_LIFETIME
                )
                refreshed = (fresh.access_token, utcnow() + lifetime)
                token = fresh.access_token
        me: Mapping[str, Any] | None = None
        if problem is None:
            await pace.take()
            try:
                me = await instagram.me(token)
            except InstagramError as exc:
                problem = exc.problem
        if problem is None and me is not None and not is_personal(me):
            # A personal account's insights are refused anyway: /me says enough.
            problem = await self._probe_insights(due, pace, token)
        verdict = judge_instagram(
            IgCheckFacts(
                username=due.instagram_username,
                me=me,
                problem=problem,
                refreshed=refreshed is not None,
                previous=_state(due.health),
                previous_reason=_reason(due.health_reason),
            )
        )
        if verdict.retry is not None:
            return _Read(verdict, graph_trouble=problem is not None and problem.retryable)
        sealed = self._vault.seal(refreshed[0]) if refreshed is not None else None
        if refreshed is None or sealed is None:
            return _Read(verdict, token_expires_at=expires)
        return _Read(verdict, token_expires_at=refreshed[1], new_token_encrypted=sealed)

    async def _probe_insights(
        self, due: DueCheck, pace: GraphPace, token: str
    ) -> GraphProblem | None:
        """/me needs only instagram_business_basic: a permission taken back at Instagram shows
        only on a call that needs it. One cheap read of the account's insights (one metric)
        says whether the insights permission is still there: a permission error (code 10) is
        that permission declined; a token error or Instagram's trouble counts as on /me; any
        other refusal is no verdict on the connection (ignored). Only when the app asks for
        the permission at all."""
        if IG_INSIGHTS_SCOPE not in self._settings.instagram_scopes or self._instagram is None:
            return None
        await pace.take()
        try:
            await self._instagram.read("/me/insights", IG_PROBE_PARAMS, token=token)
        except InstagramError as exc:
            problem = exc.problem
        else:
            return None
        if problem.kind is ProblemKind.PERMISSION:
            # Instagram's code 10 names no permission: it is the one this call needs.
            return replace(problem, permission=problem.permission or IG_INSIGHTS_SCOPE)
        if problem.retryable or problem.kind in _IG_TOKEN_KINDS:
            return problem
        log.info(
            "connection %s: Instagram insights probe refused: %s (code %s)",
            due.connection_id,
            problem.kind,
            problem.code,
        )
        return None

    async def _result(self, due: DueCheck, read: _Read, now: datetime) -> CheckResult:
        """What to write for one judged check, with the messages it causes."""
        verdict = read.verdict
        state, reason = verdict.state, verdict.reason
        changed = (str(state), str(reason) if reason else None) != (due.health, due.health_reason)
        stage = due.renewal_stage
        asked: int | None = None
        if state is HealthState.RENEWAL_DUE and verdict.renewal_stage is not None:
            if stage is None or verdict.renewal_stage < stage:
                asked = stage = verdict.renewal_stage
        elif state is HealthState.HEALTHY:
            stage = None  # access runs long enough again (renewed, or used): ask anew later
        told: list[Outgoing] = []
        if asked is not None:
            told += self._renewal_request(due, verdict.access_ends_at)
        if changed and state in (HealthState.BROKEN, HealthState.DISCONNECTED) and reason:
            told += self._breakage_for_influencer(due, verdict)
            told += await self._breakage_for_managers(due, verdict, now)
        elif changed and state is HealthState.HEALTHY and due.health == HealthState.BROKEN:
            # Fixed without a Reconnect (a name changed back, the account professional again):
            # both sides were told it broke, so both hear that it works again.
            told += self._healed_for_influencer(due)
            told += await self._healed_for_managers(due, now)
        return CheckResult(
            check=due,
            health=str(state),
            health_reason=str(reason) if reason else None,
            next_check_at=now + self._interval * random.uniform(1 - JITTER, 1),  # noqa: S311
            renewal_stage=stage,
            token_expires_at=read.token_expires_at,
            data_access_expires_at=read.data_access_expires_at,
            event_detail=(f"{state}:{reason}" if reason else str(state)) if changed else None,
            details=(
                BreakageDetails(tuple(verdict.declined), verdict.username or "")
                if changed and (verdict.declined or verdict.username)
                else None
            ),
            renewal_asked=asked,
            outgoing=told,
            new_token_encrypted=read.new_token_encrypted,
        )

    # --- what people are told ------------------------------------------------------------------

    def _influencer_texts(self, due: DueCheck) -> Texts:
        return self._notices.texts_in(due.language, due.telegram_language)

    def _final_request(self, ends: datetime | None) -> bool:
        return final_request(ends, self._settings.renewal_lead_days)

    def _renewal_request(self, due: DueCheck, ends: datetime | None) -> list[Outgoing]:
        if due.influencer_id is None:
            return []
        t = self._influencer_texts(due)
        return [
            outgoing(
                due.influencer_id,
                renewal_screen(
                    t,
                    due,
                    platform=self._settings.platform_name,
                    ends=ends,
                    final=self._final_request(ends),
                ),
                invitation_id=due.invitation_id,
            )
        ]

    def _breakage_for_influencer(self, due: DueCheck, verdict: HealthVerdict) -> list[Outgoing]:
        if due.influencer_id is None or verdict.reason is None:
            return []
        t = self._influencer_texts(due)
        screen = breakage_screen(
            t,
            due,
            verdict.reason,
            platform=self._settings.platform_name,
            declined=verdict.declined,
            username=verdict.username or "",
        )
        return [outgoing(due.influencer_id, screen, invitation_id=due.invitation_id)]

    async def _breakage_for_managers(
        self, due: DueCheck, verdict: HealthVerdict, now: datetime
    ) -> list[Outgoing]:
        reason = verdict.reason
        invite = await self._db.invitations.get_invitation(due.invitation_id)
        if invite is None or reason is None:
            return []

        def screen_for(t: Texts) -> Screen:
            return Screen(
                manager_breakage(
                    t, due, reason, declined=verdict.declined, username=verdict.username or ""
                )
            )

        rows = await self._notices.brand_notices(invite, screen_for)
        # Due at the digest time: the delivery worker combines each chat's notices then.
        delay = self._digest_at(now) - now
        return [replace(row, delay=delay) for row in rows]

    def _healed_for_influencer(self, due: DueCheck) -> list[Outgoing]:
        if due.influencer_id is None:
            return []
        t = self._influencer_texts(due)
        screen = Screen(t("health.healed", platform=self._settings.platform_name))
        return [outgoing(due.influencer_id, screen, invitation_id=due.invitation_id)]

    async def _healed_for_managers(self, due: DueCheck, now: datetime) -> list[Outgoing]:
        invite = await self._db.invitations.get_invitation(due.invitation_id)
        if invite is None:
            return []

        def screen_for(t: Texts) -> Screen:
            return Screen(t("health.manager_healed", handle=due.handle))

        rows = await self._notices.brand_notices(invite, screen_for)
        # With the day's other notices, as the breakage was.
        delay = self._digest_at(now) - now
        return [replace(row, delay=delay) for row in rows]

    def _digest_at(self, now: datetime) -> datetime:
        if self._interval < _DAILY_DIGEST_FROM:
            return now + min(self._interval, _SHORT_DIGEST)
        digest = now.astimezone(UTC).replace(
            hour=DIGEST_HOUR_UTC, minute=0, second=0, microsecond=0
        )
        return digest if digest > now else digest + timedelta(days=1)

    # --- a manager's reminder ------------------------------------------------------------------

    async def remind(
        self, asker_telegram_id: int, invitation_id: int
    ) -> tuple[str, dict[str, str]] | None:
        """A manager's "Remind" about a connection that needs attention: the influencer gets
        the renewal request or the breakage notice again (at most once an hour per invitation,
        unless its health changed since the last reminder). Returns the catalog key of the
        answer for the manager and its values (``handle``; ``time`` when Remind works again,
        for a refusal), or None when the invitation is not one of the asker's brand (or does
        not exist: they look the same)."""
        manager = await self._db.brands.manager(asker_telegram_id)
        invite = await self._db.invitations.get_invitation(invitation_id)
        if manager is None or invite is None or invite.brand_id != manager.brand_id:
            return None
        handle = {"handle": invite.handle}
        connection = await self._db.health.connection_of(invitation_id)
        if connection is None or invite.status == InviteStatus.REVOKED:
            return "upkeep.remind.not_connected", handle
        health = _state(connection.health)
        ended_on_purpose = connection.status != ConnectionStatus.ACTIVE and (
            connection.health_reason != HealthReason.APP_REMOVED
        )
        if ended_on_purpose:
            return "upkeep.remind.not_connected", handle
        if health is HealthState.HEALTHY:
            return "upkeep.remind.healthy", handle
        if invite.telegram_user_id is None:
            return "upkeep.remind.unreachable", handle
        t = await self._notices.texts_for(invite.telegram_user_id)
        due = due_of(invite.telegram_user_id, invite, connection)
        platform = self._settings.platform_name
        reason = _reason(connection.health_reason)
        if health is HealthState.RENEWAL_DUE or reason is None:
            ends = access_ends(connection)
            screen = renewal_screen(
                t, due, platform=platform, ends=ends, final=self._final_request(ends)
            )
        else:
            details = await self._db.health.breakage_details(invitation_id)
            screen = breakage_screen(
                t,
                due,
                reason,
                platform=platform,
                declined=details.declined,
                username=details.username,
            )
        screen = Screen(
            t("upkeep.reminder", inviter=invite.inviter_name) + "\n\n" + screen.text,
            screen.keyboard,
        )
        # A reminder from before the last change of health was about another problem (or about
        # none): this one is news, so the hourly limit starts anew.
        await self._db.health.reset_reminder_if_changed(invitation_id)
        sent = await self._db.console.claim_reminder(
            brand_id=manager.brand_id,
            invitation_id=invitation_id,
            every=REMIND_EVERY,
            outgoing=[outgoing(invite.telegram_user_id, screen, invitation_id=invitation_id)],
        )
        if not sent:
            again = await self._db.invitations.get_invitation(invitation_id)
            last = again.reminded_at if again is not None else None
            if last is not None and utcnow() - last < REMIND_DOUBLE_TAP:
                # A double tap (or two managers at once): the first one's reminder is on its way.
                return "upkeep.remind.just_sent", handle
            until = (last or utcnow()) + REMIND_EVERY
            time_utc = until.astimezone(UTC).strftime("%H:%M")
            return "upkeep.remind.too_soon", {**handle, "time": time_utc}
        self._notices.ring()
        if health is HealthState.RENEWAL_DUE and self._metrics is not None:
            self._metrics.renewals_sent.inc()
        return "upkeep.remind.sent", handle

    # --- metrics -------------------------------------------------------------------------------

    def _count_check(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.health_checks.labels(result=result).inc()

    def _count(self, result: CheckResult) -> None:
        broken = result.health in (HealthState.BROKEN, HealthState.DISCONNECTED)
        self._count_check("broken" if broken else "ok")
        if self._metrics is None:
            return
        if result.renewal_asked is not None:
            self._metrics.renewals_sent.inc()
        if broken and result.event_detail is not None and result.health_reason:
            self._metrics.breakages.labels(reason=result.health_reason).inc()


# --- screens (pure) ------------------------------------------------------------------------------


def final_request(ends: datetime | None, leads: Sequence[int]) -> bool:
    """Whether access ends within the last renewal lead (3 days): the renewal request then says
    it is the last one before access ends."""
    if ends is None or len(leads) < 2:
        return False
    return ends - utcnow() <= timedelta(days=min(leads))


def renewal_screen(
    t: Texts, due: DueCheck, *, platform: str, ends: datetime | None, final: bool = False
) -> Screen:
    """The request to renew before access ends, with the Renew button; `final`: the last one
    before access ends, and it says so."""
    text = t(
        "upkeep.renewal_final" if final else "upkeep.renewal",
        platform=platform,
        handle=due.instagram_username or due.handle,
        date=long_date(t, ends.astimezone(UTC)) if ends is not None else "?",
    )
    return Screen(text, _renew_keyboard(t, due.invitation_id, "renewal.button"))


def breakage_screen(
    t: Texts,
    due: DueCheck,
    reason: HealthReason,
    *,
    platform: str,
    declined: Sequence[str] = (),
    username: str = "",
) -> Screen:
    """What stopped working and the exact fix, with the Reconnect button."""
    values = _values(t, due, platform=platform, declined=declined, username=username)
    base = _health_texts(t, due, reason)
    text: str = t(f"{base}.reason", **values)
    fix_key = f"{base}.fix"
    if t.has(fix_key):
        text += "\n\n" + t("result.fix_heading") + "\n" + t(fix_key, **values)
    body = t("health.broken", platform=platform, reason=Html(text))
    keyboard = None
    if reason not in _NO_BUTTON:
        keyboard = _renew_keyboard(t, due.invitation_id, "health.button_reconnect")
    return Screen(body, keyboard)


def manager_breakage(
    t: Texts, due: DueCheck, reason: HealthReason, *, declined: Sequence[str], username: str
) -> Html:
    """One line for the brand's managers, about the influencer."""
    scopes = Html(
        "; ".join(
            t(f"manager.permission.{scope}")
            if t.has(f"manager.permission.{scope}")
            else t("manager.permission.other", name=scope)
            for scope in declined
        )
    )
    key = f"health.manager.{reason}"
    if due.path == LoginPath.INSTAGRAM and t.has(f"health_instagram.manager.{reason}"):
        key = f"health_instagram.manager.{reason}"
    detail = (
        t(
            key,
            handle=due.handle,
            page=due.page_name,
            username=username,
            declined=scopes,
            count=len(declined),
        )
        if t.has(key)
        else Html(str(reason))
    )
    return t("health.manager_broken", handle=due.handle, reason=detail)


def _health_texts(t: Texts, due: DueCheck, reason: HealthReason) -> str:
    """Where a breakage's texts are: Instagram's words for an Instagram Login connection, where
    they differ (`health_instagram.*`), else the usual ones."""
    if due.path == LoginPath.INSTAGRAM and t.has(f"health_instagram.{reason}.reason"):
        return f"health_instagram.{reason}"
    return f"health.{reason}"


def _values(
    t: Texts, due: DueCheck, *, platform: str, declined: Sequence[str], username: str
) -> dict[str, object]:
    return {
        "platform": platform,
        "page": due.page_name,
        "handle": due.instagram_username or due.handle,
        "username": username,
        "inviter": due.inviter_name,
        "declined": permission_list(t, list(declined)),
        "count": len(declined),  # one permission or several
    }


def _renew_keyboard(t: Texts, invitation_id: int, label: str) -> InlineKeyboardMarkup:
    data = Renew(invitation_id).pack()
    return InlineKeyboardMarkup([[InlineKeyboardButton(t.plain(label), callback_data=data)]])


# --- helpers -------------------------------------------------------------------------------------


async def _graph_read(
    read: Awaitable[Mapping[str, Any] | None],
) -> tuple[Mapping[str, Any] | None, GraphProblem | None]:
    try:
        return await read, None
    except GraphError as error:
        return None, problem_of(error)


def _state(value: str | None) -> HealthState:
    try:
        return HealthState(value or HealthState.HEALTHY)
    except ValueError:
        return HealthState.HEALTHY


def _reason(value: str | None) -> HealthReason | None:
    try:
        return HealthReason(value) if value else None
    except ValueError:
        return None


def _aware(moment: datetime | None) -> datetime | None:
    """A stored time in UTC (SQLite gives it back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _refresh_due(expires: datetime | None, now: datetime) -> bool:
    """Whether an Instagram Login token is to be refreshed now: it expires within
    IG_REFRESH_BEFORE and is at least IG_REFRESH_MIN_AGE old (as its 60 days say: Instagram
    refuses younger ones). Of a token whose expiry is unknown, a refresh tells."""
    if expires is None:
        return True
    issued = expires - IG_TOKEN_LIFETIME
    return expires - now <= IG_REFRESH_BEFORE and now - issued >= IG_REFRESH_MIN_AGE


def _keep(due: DueCheck, *, retry: timedelta) -> HealthVerdict:
    return HealthVerdict(_state(due.health), _reason(due.health_reason), retry=retry)


def due_of(influencer_id: int, invite: Invitation, connection: Connection) -> DueCheck:
    """A connection seen from outside a round (a reminder, the influencer's own chat), in the
    shape the screens (`renewal_screen`, `breakage_screen`) take."""
    return DueCheck(
        connection_id=connection.id or 0,
        invitation_id=invite.id or 0,
        invitation_status=invite.status,
        brand_id=invite.brand_id,
        handle=invite.handle,
        inviter_name=invite.inviter_name,
        influencer_id=influencer_id,
        language=None,
        telegram_language=None,
        facebook_user_id=connection.facebook_user_id,
        page_id=connection.page_id,
        page_name=connection.page_name,
        instagram_id=connection.instagram_id,
        instagram_username=connection.instagram_username,
        token_encrypted=connection.token_encrypted or "",
        page_token_encrypted=connection.page_token_encrypted,
        health=connection.health,
        health_reason=connection.health_reason,
        renewal_stage=connection.renewal_stage,
        token_expires_at=connection.token_expires_at,
        data_access_expires_at=connection.data_access_expires_at,
        path=connection.path,
    )
