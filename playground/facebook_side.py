"""The playground's "Facebook's side" panel: what Facebook does to a connection after the login
(90 days pass, the password changes, the app is removed, a Page is unpublished, Graph goes
down), played on the Graph stand-in through its lifecycle API, and "Check now", which runs the
bot's health round at once instead of waiting for the next one.

Each action acts on one playground influencer: their made-up Facebook account (the one the
sandbox dialog logs them in with) and the Page of their connection, as the bot stored it. Every
action is safe to repeat: a second tap does nothing more and says so.

The bot's clock is real time, and so is the stand-in's here (the playground never moves it):
"90 days pass" moves the person's `data_access_expires_at`, which `debug_token` reports and the
stand-in enforces, rather than the stand-in's clock, which the bot would not see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from bot.console_screens import reason_text
from bot.i18n import Texts
from bot.meta import sign_request
from bot.models import Connection, ConnectionStatus, LoginPath
from bot.store.console import health_of
from playground.sandbox_login import facebook_account
from sandbox.facebook import GraphStandin
from sandbox.instagram import AccountType, InstagramStandin
from sandbox.telegram import TgUser

_DAY = 86_400.0
# The permission "Remove a permission" takes away unless told otherwise: the one whose loss
# the login verdict also names (insights), and whose loss no other check hides.
DEFAULT_PERMISSION = "instagram_manage_insights"
# The same for a connection made with Instagram Login.
INSTAGRAM_PERMISSION = "instagram_business_manage_insights"


class FacebookAction(StrEnum):
    """What happens to one influencer at Facebook."""

    DAYS_80 = "days_80"  # data access ends in 10 days: the first renewal request (14 days)
    DAYS_88 = "days_88"  # data access ends in 2 days: the second one (3 days)
    DAYS_90 = "days_90"  # data access has ended
    CHANGE_PASSWORD = "change_password"
    LOG_OUT = "log_out"
    REMOVE_APP = "remove_app"
    REMOVE_PERMISSION = "remove_permission"
    REMOVE_PAGE_ROLE = "remove_page_role"
    UNLINK_INSTAGRAM = "unlink_instagram"
    UNPUBLISH_PAGE = "unpublish_page"
    CHANGE_USERNAME = "change_username"
    # Instagram Login only: the account becomes personal, or professional again.
    SWITCH_ACCOUNT_TYPE = "switch_account_type"


# Days of data access left after each "days pass" action.
_ACCESS_LEFT_DAYS = {
    FacebookAction.DAYS_80: 10.0,
    FacebookAction.DAYS_88: 2.0,
    FacebookAction.DAYS_90: 0.0,
}
_PAGE_ACTIONS = frozenset(
    {
        FacebookAction.REMOVE_PAGE_ROLE,
        FacebookAction.UNLINK_INSTAGRAM,
        FacebookAction.UNPUBLISH_PAGE,
        FacebookAction.CHANGE_USERNAME,
    }
)
_MAX_HANDLE = 30
_ENGLISH = Texts("en")

ConnectionOf = Callable[[int], Awaitable[Connection | None]]
Deauthorize = Callable[[str], Awaitable[bool]]


class RoundCounts(Protocol):
    """What a health round did (`bot.upkeep.RoundReport`)."""

    @property
    def checked(self) -> int: ...
    @property
    def changed(self) -> int: ...
    @property
    def retried(self) -> int: ...


RunRound = Callable[[], Awaitable[RoundCounts]]


class PanelError(Exception):
    """The action cannot be done now; the message says why, for the panel to show."""


@dataclass(frozen=True)
class Done:
    text: str  # what happened, in plain words, for the panel
    changed: bool = True  # False: it had already happened (a second tap)


class FacebookSide:
    """The panel's actions. ``connection_of`` finds an influencer's newest connection in the
    bot's database; ``deauthorize`` sends Meta's deauthorize callback to the bot (as Facebook
    does when someone removes the app); ``run_round`` checks every connection at once, and
    ``has_rounds`` says whether the bot has health checks at all."""

    def __init__(
        self,
        *,
        graph: GraphStandin,
        connection_of: ConnectionOf,
        deauthorize: Deauthorize,
        run_round: RunRound,
        has_rounds: Callable[[], bool],
        instagram: InstagramStandin | None = None,
    ) -> None:
        self.graph = graph
        # A connection made with Instagram Login lives at Instagram: the same buttons act there.
        self.instagram = instagram
        self._connection_of = connection_of
        self._deauthorize = deauthorize
        self._run_round = run_round
        self._has_rounds = has_rounds
        self._round_lock = asyncio.Lock()
        self._renamed: dict[tuple[str, str], str] = {}  # (person, Page) → the name given
        # HEALTH_CHECK_INTERVAL_SECONDS of the bot, once it runs (for the panel to say).
        self.check_interval_seconds: float | None = None

    @property
    def can_check_now(self) -> bool:
        return self._has_rounds()

    async def act(
        self, person: TgUser, action: FacebookAction, *, permission: str = DEFAULT_PERMISSION
    ) -> Done:
        connection = await self._connection_of(person.id)
        if connection is not None and connection.path == LoginPath.INSTAGRAM:
            return self._instagram_action(connection, person.first_name, action)
        if action is FacebookAction.SWITCH_ACCOUNT_TYPE:
            raise PanelError(
                "Only for a connection made with Instagram Login: on the Facebook path, a "
                "personal account cannot be linked to the Page in the first place."
            )
        user_id = (
            connection.facebook_user_id
            if connection is not None
            else facebook_account(person.id, person.first_name).id
        )
        name = person.first_name
        try:
            if action in _ACCESS_LEFT_DAYS:
                return self._pass_days(user_id, name, action)
            if action in _PAGE_ACTIONS:
                if connection is None:
                    raise PanelError(f"{name} has no connection yet: connect first.")
                return self._page_action(connection, name, action)
            return await self._person_action(user_id, name, action, permission)
        except KeyError:
            raise PanelError(
                f"{name} has not logged in with Facebook yet: connect first."
            ) from None

    def _pass_days(self, user_id: str, name: str, action: FacebookAction) -> Done:
        left = _ACCESS_LEFT_DAYS[action]
        # A moment less than the days left, so the renewal lead it aims at (14 or 3 days)
        # applies whatever the check's own timing.
        ends = self.graph.now() + max(left * _DAY - 60, -1)
        self.graph.set_data_access_expires_at(user_id, ends)
        if left <= 0:
            return Done(
                f"{name}'s data access has ended (Facebook's 90-day rule): the bot's next "
                "check finds the connection broken."
            )
        return Done(
            f"{name}'s data access now ends in {left:g} days, on {_day(ends)}: the bot's next "
            "check asks them to renew."
        )

    def _page_action(self, connection: Connection, name: str, action: FacebookAction) -> Done:
        user_id, page_id, page = (
            connection.facebook_user_id,
            connection.page_id,
            connection.page_name,
        )
        graph = self.graph
        if action is FacebookAction.REMOVE_PAGE_ROLE:
            try:
                graph.remove_page_role(user_id, page_id)
            except KeyError:
                return Done(f"{name} has no role on the Page {page} already.", changed=False)
            return Done(
                f"{name} lost their role on the Page {page}: its Page token stopped working."
            )
        if action is FacebookAction.UNPUBLISH_PAGE:
            graph.unpublish_page(user_id, page_id)
            return Done(f"The Page {page} is unpublished: only its admins can see it now.")
        if action is FacebookAction.UNLINK_INSTAGRAM:
            graph.unlink_instagram(user_id, page_id)
            return Done(
                f"@{connection.instagram_username} is unlinked from the Page {page}: "
                "the account cannot be reached through it any more."
            )
        new = _renamed(connection.instagram_username)
        if self._renamed.get((user_id, page_id)) == new:
            return Done(f"The account is called @{new} already.", changed=False)
        try:
            graph.change_username(user_id, page_id, new)
        except ValueError:
            raise PanelError(
                f"The Page {page} has no Instagram account linked to rename."
            ) from None
        self._renamed[(user_id, page_id)] = new
        return Done(f"@{connection.instagram_username} is now called @{new} on Instagram.")

    async def _person_action(
        self, user_id: str, name: str, action: FacebookAction, permission: str
    ) -> Done:
        graph = self.graph
        if action is FacebookAction.CHANGE_PASSWORD:
            graph.change_password(user_id)
            return Done(
                f"{name} changed their Facebook password: Facebook ended their access "
                "tokens (error 190, subcode 460)."
            )
        if action is FacebookAction.LOG_OUT:
            graph.log_out(user_id)
            return Done(
                f"{name} logged out of Facebook everywhere: their user tokens ended "
                "(error 190, subcode 467); Page tokens survive a logout."
            )
        if action is FacebookAction.REMOVE_APP:
            graph.remove_app(user_id)
            told = await self._deauthorize(user_id)
            then = (
                "Facebook called the bot's deauthorize callback"
                if told
                else "Facebook's deauthorize callback did not reach the bot"
            )
            return Done(
                f"{name} removed {graph.app_name} in their Facebook settings: every token "
                f"ended (error 190, subcode 458). {then}."
            )
        try:
            graph.remove_permission(user_id, permission)
        except ValueError:
            return Done(f"{name} has not granted {permission} (any more).", changed=False)
        return Done(
            f"{name} removed the permission {permission} in the app's settings on Facebook."
        )

    def _instagram_action(self, connection: Connection, name: str, action: FacebookAction) -> Done:
        """The panel's buttons for a connection made with Instagram Login: no Facebook account
        and no Page are involved; what the person does happens in Instagram's settings."""
        instagram = self.instagram
        if instagram is None:
            raise PanelError("Instagram Login is not part of this playground.")
        account, handle = connection.instagram_id, connection.instagram_username
        try:
            if action is FacebookAction.CHANGE_PASSWORD:
                instagram.change_password(account)
                return Done(
                    f"{name} changed their Instagram password: Instagram ended the bot's token "
                    "(error 190, subcode 460); the next check finds it."
                )
            if action is FacebookAction.REMOVE_APP:
                instagram.revoke(account)
                return Done(
                    f"{name} removed {instagram.app_name} in Instagram's settings (Apps and "
                    "websites). Instagram calls nobody back: the bot's next check finds it."
                )
            if action is FacebookAction.REMOVE_PERMISSION:
                try:
                    instagram.remove_permission(account, INSTAGRAM_PERMISSION)
                except ValueError:
                    return Done(
                        f"{name} has not granted {INSTAGRAM_PERMISSION} (any more).",
                        changed=False,
                    )
                return Done(f"{name} took back {INSTAGRAM_PERMISSION} in Instagram's settings.")
            if action is FacebookAction.SWITCH_ACCOUNT_TYPE:
                personal = instagram.person(account).account_type is AccountType.PERSONAL
                new = AccountType.BUSINESS if personal else AccountType.PERSONAL
                instagram.set_profile(account, account_type=new)
                if personal:
                    return Done(
                        f"@{handle} is a professional (Business) account again: the bot's next "
                        "check finds the connection working."
                    )
                return Done(
                    f"{name} switched @{handle} to a personal account: Instagram refuses its "
                    "insights and answers account_type PERSONAL; the next check finds it."
                )
        except KeyError:
            raise PanelError(f"@{handle} has not logged in with Instagram here.") from None
        if action in _ACCESS_LEFT_DAYS:
            return Done(
                f"@{handle} is connected with Instagram Login: the bot refreshes its token by "
                "itself (every 60 days at the latest), so nothing runs out and nobody is asked "
                "to renew.",
                changed=False,
            )
        raise PanelError(
            f"@{handle} is connected with Instagram Login: no Facebook account or Page is "
            "involved, so this cannot happen to it."
        )

    def logged_in(self, user_id: str) -> None:
        """The person went through the dialog again: their Pages are as the dialog set them up."""
        for key in [key for key in self._renamed if key[0] == user_id]:
            del self._renamed[key]

    def set_outage(self, down: bool) -> Done:
        if self.graph.outage == down:
            state = "down" if down else "up"
            return Done(f"The Graph API is {state} already.", changed=False)
        self.graph.set_outage(down)
        if self.instagram is not None:  # Instagram's Graph host with it
            self.instagram.set_outage(down)
        if down:
            return Done(
                "The Graph API is down: every call answers HTTP 500, code 2. Checks now are "
                "retried later; nothing is marked broken."
            )
        return Done("The Graph API is back up.")

    async def check_now(self) -> Done:
        """One health round at once. A second tap while it runs waits for nothing: it says so."""
        if not self.can_check_now:
            raise PanelError("This bot keeps no tokens (VERIFY_ONLY): it checks no connection.")
        if self._round_lock.locked():
            return Done("A check is running already.", changed=False)
        async with self._round_lock:
            report = await self._run_round()
        return Done(_round_said(report))

    async def view(self, person: TgUser) -> dict[str, Any]:
        """What the panel shows about this influencer's connection and Facebook."""
        connection = await self._connection_of(person.id)
        shown: dict[str, Any] | None = None
        if connection is not None:
            state, reason = health_of(connection)
            shown = {
                "path": connection.path,
                "page": connection.page_name,
                "instagram": connection.instagram_username,
                "status": connection.status,
                "active": connection.status == ConnectionStatus.ACTIVE,
                "health": connection.health,
                "reason": connection.health_reason,
                # As the brand's console says it (the panel is in English): "⚠️ broken",
                # "a permission was removed"; an ended connection is disconnected.
                "health_words": _ENGLISH.plain(f"console.health.state.{state}"),
                "reason_words": reason_text(_ENGLISH, reason) if reason else None,
                "checked_at": _iso(connection.checked_at),
                "data_access_expires_at": _iso(connection.data_access_expires_at),
                "token_expires_at": _iso(connection.token_expires_at),
            }
        return {
            "name": person.first_name,
            "connection": shown,
            "graph_down": self.graph.outage
            or (self.instagram is not None and self.instagram.outage),
            "can_check_now": self.can_check_now,
            "check_interval_seconds": self.check_interval_seconds,
        }


def _round_said(report: RoundCounts) -> str:
    if not report.checked and not report.retried:
        return "Checked: no active connection with a kept token to check."
    said = []
    if report.checked:
        what = "connection" if report.checked == 1 else "connections"
        changed = (
            "nothing changed"
            if not report.changed
            else f"{report.changed} changed (see the chats; managers hear of a breakage "
            "in the digest, here a minute later)"
        )
        said.append(f"Checked {report.checked} {what}: {changed}.")
    if report.retried:
        what = "connection" if report.retried == 1 else "connections"
        said.append(
            f"Graph did not answer for {report.retried} {what} (down or throttling): "
            "nothing is marked broken, they are checked again later."
        )
    return " ".join(said)


def _renamed(username: str) -> str:
    suffix = ".new"
    return username[: _MAX_HANDLE - len(suffix)] + suffix


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d %b %Y")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def deauthorize_payload(user_id: str) -> dict[str, object]:
    """What Meta signs for the deauthorize callback."""
    return {"algorithm": "HMAC-SHA256", "user_id": user_id, "issued_at": int(time.time())}


def signed_deauthorize(user_id: str, app_secret: str) -> str:
    return sign_request(deauthorize_payload(user_id), app_secret=app_secret)
