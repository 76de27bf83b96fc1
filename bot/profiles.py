"""What the brand sees of a connected account (issue 12): its profile and figures, read through
the connection's kept Page token and cached in the database (`ProfileSnapshot`) for
PROFILE_CACHE_HOURS. Shown to the brand's managers (/profile) and, the same, to the influencer
(/shared).

One read is 13-14 Graph calls (meta-platform.md §5): the account, reach day by day, three
totals, three demographic breakdowns (only from 100 followers), the last six posts and their
insights, and the profile picture (its address expires, so the picture is fetched with the
figures and kept with them). A part that fails is a gap with its reason (`bot.insights.Gap`);
the account itself failing fails the read: Graph down or throttling leaves the older snapshot
shown with its age, a refused token asks the health check to look at the connection now.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote

from bot.config import Settings
from bot.crypto import TokenVault
from bot.graph import GraphClient, GraphError, problem_of
from bot.health import ProblemKind
from bot.insights import (
    MEDIA_FIELDS,
    MEDIA_METRICS,
    POSTS_SHOWN,
    PROFILE_FIELDS,
    TOTAL_METRICS,
    Activity,
    Audience,
    Gap,
    Post,
    Profile,
    audience_of,
    from_json,
    parse_account,
    parse_activity,
    parse_breakdown,
    parse_posts,
    with_insights,
)
from bot.instagram_login import InstagramClient
from bot.models import LoginPath, utcnow
from bot.store import Database
from bot.store.profiles import Viewed

log = logging.getLogger(__name__)

DEMOGRAPHICS_MIN_FOLLOWERS = 100
WINDOW = timedelta(days=30)
# A second Refresh within this is answered from the read just made.
REFRESH_PAUSE = timedelta(minutes=1)
# The leader reads every healthy connection's figures in the background at least this often, so
# /export and the read API carry figures for connections nobody opened with /profile;
# `BACKGROUND_READS` per run of the job (every 15 minutes: ~4,800 connections a day).
BACKGROUND_AGE = timedelta(hours=24)
BACKGROUND_READS = 50
_SUBCODE_BEFORE_PROFESSIONAL = 2108006


class ReadProblem(StrEnum):
    """Why the newest read did not happen or failed (an older snapshot may still be shown)."""

    UNAVAILABLE = "unavailable"  # Graph down or throttling: try again later
    REFUSED = "refused"  # the token or a permission was refused: the connection is checked now
    NO_TOKEN = "no_token"  # no Page token kept (an older connection, or VERIFY_ONLY)


@dataclass(frozen=True)
class Seen:
    """What there is to show: the newest profile (None: never read), when it was read, and why
    the newest read failed, if it did."""

    profile: Profile | None
    fetched_at: datetime | None
    problem: ReadProblem | None = None


class ProfileService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        instagram: InstagramClient | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.graph = graph
        self.vault = vault
        # Instagram Login's host, for connections made that way (issue 13); None when the
        # second Meta app is not configured.
        self.instagram = instagram
        self._reading: dict[int, asyncio.Task[Seen]] = {}

    async def look(self, viewed: Viewed, *, refresh: bool = False) -> Seen:
        """The profile, from the cache while it is fresh (or always within a minute of the last
        read), else read now. Two people asking at once share one read."""
        connection = viewed.connection
        assert connection.id is not None
        kept = await self.db.profiles.snapshot(connection.id)
        cached = from_json(kept.data) if kept is not None else None
        if cached is not None and cached.instagram_id != connection.instagram_id:
            cached = None  # an older account of the invitation's
        fetched_at = kept.fetched_at if kept is not None and cached is not None else None
        if cached is not None and fetched_at is not None:
            age = utcnow() - fetched_at
            if age < (REFRESH_PAUSE if refresh else self._ttl):
                return Seen(cached, fetched_at)
        running = self._reading.get(connection.id)
        if running is None:
            running = asyncio.ensure_future(self._read_and_keep(viewed, cached, fetched_at))
            self._reading[connection.id] = running
            running.add_done_callback(lambda _: self._reading.pop(connection.id or 0, None))
        return await asyncio.shield(running)

    async def refresh_stale(self) -> int:
        """The periodic job (leader only): read the figures of connections read longest ago,
        one after another (each read is ~14 Graph calls at once). Returns how many were read."""
        if not self.vault.enabled:
            return 0
        read = 0
        for viewed in await self.db.profiles.stale(
            read_before=utcnow() - max(BACKGROUND_AGE, self._ttl), limit=BACKGROUND_READS
        ):
            seen = await self.look(viewed, refresh=True)
            if seen.problem is ReadProblem.UNAVAILABLE:
                break  # Graph is down or throttling: the next run goes on
            read += seen.problem is None
        return read

    @property
    def _ttl(self) -> timedelta:
        return timedelta(hours=self.settings.profile_cache_hours)

    async def _read_and_keep(
        self, viewed: Viewed, cached: Profile | None, fetched_at: datetime | None
    ) -> Seen:
        connection = viewed.connection
        assert connection.id is not None
        reader: Reader = self.graph
        sealed = connection.page_token_encrypted
        if connection.path == LoginPath.INSTAGRAM:
            # No Page on this path: the account's own token, on Instagram's host.
            sealed = connection.token_encrypted
            if self.instagram is None:
                return Seen(cached, fetched_at, ReadProblem.UNAVAILABLE)
            reader = self.instagram
        token = self.vault.open(sealed) if sealed and self.vault.enabled else None
        if token is None:
            return Seen(cached, fetched_at, ReadProblem.NO_TOKEN)
        try:
            profile = await read_profile(reader, connection.instagram_id, token)
        except GraphError as exc:
            problem = problem_of(exc)
            log.info("profile read failed: %s (code %s)", problem.kind, problem.code)
            if problem.retryable:
                return Seen(cached, fetched_at, ReadProblem.UNAVAILABLE)
            if problem.kind in (ProblemKind.BAD_REQUEST, ProblemKind.POLICY):
                return Seen(cached, fetched_at, ReadProblem.UNAVAILABLE)
            # The token or a permission was refused: whatever it is, the health check finds
            # out and tells both sides; it runs now instead of tomorrow.
            await self.db.health.postpone([connection.id], until=utcnow())
            return Seen(cached, fetched_at, ReadProblem.REFUSED)
        now = utcnow()
        kept = await self.db.profiles.keep(
            connection.id,
            data=profile.to_json(),
            fetched_at=now,
            followers_count=profile.account.followers,
            reach_30d=profile.activity.reached,
            engagement_per_mille=profile.engagement_per_mille,
        )
        if not kept:  # the connection ended while it was read: nothing of it is shown
            return Seen(None, None, ReadProblem.REFUSED)
        return Seen(profile, now)


class Reader(Protocol):
    """What a profile read needs of a Graph host: Facebook's (`bot.graph.GraphClient`, with a
    Page token) or Instagram's (`bot.instagram_login.InstagramClient`, with the account's own
    token). Both raise `bot.graph.GraphError`."""

    async def read(self, path: str, params: Mapping[str, str], *, token: str) -> dict[str, Any]: ...

    async def picture(self, url: str, *, max_bytes: int = ...) -> bytes | None: ...


async def read_profile(graph: Reader, instagram_id: str, token: str) -> Profile:
    """One whole read of an Instagram account through a Page token. Raises GraphError only when
    the account itself cannot be read; every other part failing is a gap."""
    node = f"/{quote(instagram_id, safe='')}"
    until = int(utcnow().timestamp())
    since = until - int(WINDOW.total_seconds())
    window = {"since": str(since), "until": str(until), "period": "day"}

    async def part(path: str, params: dict[str, str]) -> dict[str, Any] | Gap:
        try:
            return await graph.read(path, params, token=token)
        except GraphError as exc:
            return _gap_of(exc)

    account_body, series, totals, media = await asyncio.gather(
        graph.read(node, {"fields": PROFILE_FIELDS}, token=token),
        part(f"{node}/insights", {"metric": "reach", **window}),
        part(
            f"{node}/insights",
            {"metric": ",".join(TOTAL_METRICS), "metric_type": "total_value", **window},
        ),
        part(f"{node}/media", {"fields": MEDIA_FIELDS, "limit": str(POSTS_SHOWN)}),
    )
    account = parse_account(account_body)
    activity = _activity(series, totals)
    posts = parse_posts(media) if isinstance(media, dict) else []
    posts_gap = media if isinstance(media, Gap) else (None if posts else Gap.NO_DATA)

    async def breakdown(key: str) -> list[tuple[tuple[str, ...], int]] | Gap | None:
        answer = await part(
            f"{node}/insights",
            {
                "metric": "follower_demographics",
                "period": "lifetime",
                "metric_type": "total_value",
                "breakdown": key,
            },
        )
        return answer if isinstance(answer, Gap) else parse_breakdown(answer)

    async def post_figures(post: Post) -> Post:
        answer = await part(f"/{quote(post.id, safe='')}/insights", {"metric": MEDIA_METRICS})
        if isinstance(answer, Gap):
            return with_insights(post, None, answer)
        return with_insights(post, answer)

    async def picture() -> str | None:
        url = account_body.get("profile_picture_url")
        body = await graph.picture(url) if isinstance(url, str) else None
        return base64.b64encode(body).decode() if body else None

    followers = account.followers or 0
    demographics_wanted = followers >= DEMOGRAPHICS_MIN_FOLLOWERS
    results = await asyncio.gather(
        *(breakdown(k) for k in (("age,gender", "country", "city") if demographics_wanted else ())),
        *(post_figures(p) for p in posts),
        picture(),
    )
    split = 3 if demographics_wanted else 0
    breakdowns = results[:split]
    figured = [p for p in results[split:-1] if isinstance(p, Post)]
    picture_b64 = results[-1] if isinstance(results[-1], str) else None
    if not demographics_wanted:
        audience = Audience(gap=Gap.FEW_FOLLOWERS)
    else:
        gaps = [b for b in breakdowns if isinstance(b, Gap)]
        if gaps:
            audience = Audience(gap=gaps[0])
        else:
            rows = [b if isinstance(b, list) else None for b in breakdowns]
            audience = audience_of(rows[0], rows[1], rows[2])
    return Profile(
        instagram_id=instagram_id,
        account=account,
        activity=activity,
        audience=audience,
        posts=figured,
        posts_gap=posts_gap,
        picture=picture_b64,
    )


def _activity(series: dict[str, Any] | Gap, totals: dict[str, Any] | Gap) -> Activity:
    if isinstance(series, Gap) and isinstance(totals, Gap):
        return Activity(gap=series)
    return parse_activity(
        series if isinstance(series, dict) else {}, totals if isinstance(totals, dict) else {}
    )


def _gap_of(error: GraphError) -> Gap:
    if error.subcode == _SUBCODE_BEFORE_PROFESSIONAL:
        return Gap.BEFORE_PROFESSIONAL
    if problem_of(error).kind is ProblemKind.PERMISSION:
        return Gap.NO_PERMISSION
    return Gap.UNAVAILABLE
