"""End to end, through the Telegram and Facebook stand-ins, on SQLite and PostgreSQL: a connected
influencer renews their kept connection with the Renew button (issue 11). The same Page and
Instagram account: fresh tokens and expiries, healthy again, the influencer told, the managers
not bothered (unless it had broken); another account or Page, a cancel: the exact reason, and the
connection as it was. Only the influencer the invitation is bound to may renew it."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from bot.i18n import Texts
from bot.models import LoginAttempt
from bot.screens import long_date
from bot.verdict import LoginEvidence, Outcome, decide
from sandbox.facebook import Consent, FbPage, FbUser, IgAccount
from sandbox.telegram import SentMessage, TgUser
from tests.test_login_states import _break_event_writes as break_event_writes
from tests.test_login_states import _repair as repair_event_writes
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook, close_world, make_world

ALL_SCOPES = (
    "instagram_basic,instagram_manage_insights,pages_show_list,pages_read_engagement,"
    "business_management"
)
# Everything a renewal may change, and the health columns a failed renewal must leave alone.
_CONNECTION = (
    "SELECT facebook_user_id, page_id, page_name, instagram_id, instagram_username, "
    "followers_count, permissions, token_encrypted, token_expires_at, data_access_expires_at, "
    "page_token_encrypted, status, health, health_reason, renewal_stage, renewed_at, "
    "next_check_at FROM connection"
)


async def _connect_anna(world: World) -> int:
    """Anna connected through her Page Anna Bakes; returns her invitation's id."""
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "is connected")
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation")
    return int(str(invitation_id))


async def _renewal_due(world: World) -> None:
    """The periodic check found access ending soon (as `bot.upkeep` records it)."""
    async with world.db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE connection SET health = 'renewal_due', renewal_stage = 14"
        )


async def _age_renewal_logins(world: World) -> None:
    """The renewal logins handed out so far were handed out a while ago (no double tap)."""
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(LoginAttempt).values(created_at=datetime.now(UTC) - timedelta(seconds=30))
        )


async def _press_renew(world: World, user: TgUser, invitation_id: int) -> list[SentMessage]:
    """`user` taps a Renew button (as a renewal request or a breakage notice carries it) in
    their own chat; returns what the bot answered there."""
    world.telegram.send_text(user, "/help")  # a message of theirs to press it on
    await world.settle()
    before = len(world.telegram.messages(user.id))
    world.telegram.press_data(
        user, world.telegram.last_message(user.id).message_id, f"rn:{invitation_id}"
    )
    await world.settle()
    return world.telegram.messages(user.id)[before:]


def _dialog_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _manager_messages(world: World) -> list[int]:
    """The messages in the manager's chat (their card's edits aside)."""
    await world.settle()
    return [m.message_id for m in world.telegram.messages(MANAGER.id)]


async def test_renewal_refreshes_the_kept_connection(world: World) -> None:
    invitation_id = await _connect_anna(world)
    [before] = await world.rows(_CONNECTION)
    user_token = world.bot.vault.open(str(before[7]))
    page_token = world.bot.vault.open(str(before[10]))
    # Kept, sealed: the user token and the Page token (of the connected Page), never in clear.
    assert user_token in world.graph.issued_tokens()
    assert page_token is not None and world.graph.token_info(page_token).kind == "PAGE"
    assert world.graph.token_info(page_token).page_id == "p-100"
    assert page_token not in str(before[10]) and before[12] == "healthy"
    # The periodic check found access ending soon; ten days on.
    await _renewal_due(world)
    world.graph.fast_forward(days=10)
    told_managers = await _manager_messages(world)

    offered = await _press_renew(world, ANNA, invitation_id)
    assert len(offered) == 1 and "Renew your Instagram connection" in offered[0].text
    assert "every 90 days" in offered[0].text and "@anna.bakes" in offered[0].text
    assert (
        offered[0]
        .button("Log in with Facebook")
        .get("url", "")
        .startswith(f"{world.settings.public_url}/oauth/start?state=")
    )
    first_url = str(offered[0].button("Log in with Facebook")["url"])
    # A double tap: only the tap is answered; the first login button is the one to use.
    logins = await world.rows("SELECT COUNT(*) FROM login_attempt")
    assert await _press_renew(world, ANNA, invitation_id) == []
    [tapped] = world.telegram.calls("answerCallbackQuery")[-1:]
    assert "on its way" in str(tapped.get("text")) and not tapped.get("show_alert")
    assert await world.rows("SELECT COUNT(*) FROM login_attempt") == logins
    # A press a while later: the newer login button replaces the older one.
    await _age_renewal_logins(world)
    again = await _press_renew(world, ANNA, invitation_id)
    assert len(again) == 1 and "Renew your Instagram connection" in again[0].text
    await world.settle()
    [first] = [m for m in world.telegram.messages(ANNA.id) if m.message_id == offered[0].message_id]
    assert first.buttons == []
    async with httpx.AsyncClient() as tab:
        replaced = await tab.get(first_url)
    assert replaced.status_code == 410 and "replaced by a newer one" in replaced.text
    params = _dialog_params(await world.dialog_url(ANNA))
    assert params["auth_type"] == "reauthorize" and params["scope"] == ALL_SCOPES

    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200 and "Renewed!" in page.text and "@anna.bakes" in page.text

    told = await world.telegram.wait_for(ANNA.id, "Access renewed")
    [after] = await world.rows(_CONNECTION)
    assert after[:7] == before[:7]  # the same Facebook user, Page and account
    assert after[7] != before[7] and after[10] != before[10]  # fresh tokens, sealed
    new_user_token = world.bot.vault.open(str(after[7]))
    assert new_user_token in world.graph.issued_tokens() and new_user_token != user_token
    new_page_token = world.bot.vault.open(str(after[10]))
    assert new_page_token is not None and new_page_token != page_token
    assert world.graph.token_info(new_page_token).kind == "PAGE"
    assert _as_datetime(after[8]) > _as_datetime(before[8])
    assert _as_datetime(after[9]) > _as_datetime(before[9])
    assert after[11:15] == ("active", "healthy", None, None)
    assert after[15] is not None and _as_datetime(after[16]) > datetime.now(UTC)
    # The brand reads through the Page token, which does not expire: data access ends.
    until = _as_datetime(after[9])
    assert f"until {long_date(Texts('en'), until)}" in told.text and "Anna Bakes" in told.text

    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event ORDER BY id")]
    assert kinds[-1] == "renewed" and kinds.count("verdict") == 1
    assert await world.rows("SELECT status FROM invitation") == [("connected",)]
    used = await world.rows(
        "SELECT renewal, outcome FROM login_attempt WHERE used_at IS NOT NULL ORDER BY id"
    )
    assert [(bool(r), o) for r, o in used] == [(False, "connected"), (True, "connected")]
    # Renewed in time: the managers are not bothered.
    assert await _manager_messages(world) == told_managers
    # The operator's count of renewals that kept a connection alive.
    registry = world.bot.metrics.registry
    assert registry.get_sample_value("connectbot_renewals_completed_total") == 1.0


async def test_reconnecting_a_broken_connection_tells_the_managers(world: World) -> None:
    invitation_id = await _connect_anna(world)
    world.graph.change_password("fb-anna")
    async with world.db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE connection SET health = 'broken', health_reason = 'password_changed'"
        )
    [offered] = await _press_renew(world, ANNA, invitation_id)
    # Worded as a reconnect, not as the 90-day renewal.
    assert "Reconnect your Instagram account" in offered.text
    assert "is interrupted" in offered.text and "90 days" not in offered.text
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200
    told = await world.telegram.wait_for(ANNA.id, "Connected again!")
    assert "Access renewed" not in told.text and "Anna Bakes" in told.text
    news = await world.telegram.wait_for(MANAGER.id, "has reconnected")
    assert "@anna.bakes" in news.text
    [(health, reason)] = await world.rows("SELECT health, health_reason FROM connection")
    assert (health, reason) == ("healthy", None)


async def test_a_renewal_finished_in_another_browser_asks_first(world: World) -> None:
    invitation_id = await _connect_anna(world)
    await _renewal_due(world)
    await _press_renew(world, ANNA, invitation_id)
    world.graph.set_person(anna_on_facebook(), None)
    dialog = await world.browser.get(world.login_url(ANNA))
    async with httpx.AsyncClient() as other:
        ask = await other.get(dialog.headers["location"])
        assert "Connect the Instagram account @anna.bakes for Brandly?" in ask.text
        found = re.search(r'name="t" value="([A-Za-z0-9_-]+)"', ask.text)
        assert found is not None
        url = f"{world.settings.public_url}/oauth/confirm"
        done = await other.post(url, data={"t": found.group(1)})
    assert done.status_code == 200 and "Renewed!" in done.text
    await world.telegram.wait_for(ANNA.id, "Access renewed")


async def test_a_removed_permission_is_asked_again(world: World) -> None:
    invitation_id = await _connect_anna(world)
    world.graph.remove_permission("fb-anna", "instagram_manage_insights")
    async with world.db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE connection SET health = 'broken', health_reason = 'permissions_declined'"
        )
    await _press_renew(world, ANNA, invitation_id)
    # Facebook never asks again for a declined permission without auth_type=rerequest.
    assert _dialog_params(await world.dialog_url(ANNA))["auth_type"] == "rerequest"
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected again!")


def _anna_other_account() -> FbUser:
    return anna_on_facebook(instagram=IgAccount(id="ig-900", username="anna_old"))


def _anna_moved_to_another_page() -> FbUser:
    """@anna.bakes is now linked to her other Page; Anna Bakes has no Instagram account."""
    return FbUser(
        id="fb-anna",
        name="Anna",
        pages=[
            FbPage(id="p-100", name="Anna Bakes"),
            FbPage(
                id="p-200",
                name="Neighbourhood Club",
                instagram=IgAccount(id="ig-100", username="anna.bakes", followers_count=12345),
            ),
        ],
    )


@pytest.mark.parametrize(
    ("person", "consent", "reason"),
    [
        pytest.param(
            _anna_other_account(),
            None,
            "different Instagram account (@anna_old)",
            id="other-account",
        ),
        pytest.param(
            _anna_moved_to_another_page(),
            None,
            "through the Page Neighbourhood Club, but your connection is @anna.bakes through "
            "the Page Anna Bakes",
            id="other-page",
        ),
        pytest.param(
            anna_on_facebook(),
            Consent(cancel=True),
            "You cancelled the Facebook login",
            id="cancelled",
        ),
    ],
)
async def test_a_renewal_that_does_not_renew_keeps_the_connection(
    world: World, person: FbUser, consent: Consent | None, reason: str
) -> None:
    invitation_id = await _connect_anna(world)
    await _renewal_due(world)
    [before] = await world.rows(_CONNECTION)
    told_managers = await _manager_messages(world)
    await _press_renew(world, ANNA, invitation_id)

    page = await world.facebook_login(ANNA, person, consent)
    assert page.status_code == 200 and "Not renewed" in page.text

    told = await world.telegram.wait_for(ANNA.id, "Access not renewed")
    assert reason in told.text
    assert "stays as it was" in told.text
    assert told.button("Try again")["callback_data"] == f"rn:{invitation_id}"
    assert await world.rows(_CONNECTION) == [before]
    assert await world.rows("SELECT status FROM invitation") == [("connected",)]
    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event")]
    assert "renewed" not in kinds
    assert await _manager_messages(world) == told_managers

    # Try again: a fresh renewal login, and this time the right account and Page.
    world.telegram.press(ANNA, told, "Try again")
    await world.settle()
    assert "Renew your Instagram connection" in world.telegram.last_message(ANNA.id).text
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Access renewed")


async def test_a_renewal_the_app_refuses_tells_the_managers(world: World) -> None:
    invitation_id = await _connect_anna(world)
    await _renewal_due(world)
    await _press_renew(world, ANNA, invitation_id)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(app_not_live=True))
    told = await world.telegram.wait_for(ANNA.id, "Access not renewed")
    assert "not your fault" in told.text and "I have told Maria" in told.text
    # Only the operator can fix it: the one failed renewal the managers hear of.
    news = await world.telegram.wait_for(MANAGER.id, "did not work")
    assert "@anna.bakes" in news.text


async def test_a_renewal_that_could_not_be_stored_offers_a_retry(world: World) -> None:
    invitation_id = await _connect_anna(world)
    await _renewal_due(world)
    await _press_renew(world, ANNA, invitation_id)
    [before] = await world.rows(_CONNECTION)
    await break_event_writes(world)
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 503
    # The new token is not withdrawn at Facebook: that would end the kept connection too.
    assert not any(m == "DELETE" for m, _, _ in world.graph.requests)
    await repair_event_writes(world)
    told = await world.telegram.wait_for(ANNA.id, "Please try again", timeout=20)
    assert told.button("Try again")["callback_data"] == f"rn:{invitation_id}"
    assert await world.rows(_CONNECTION) == [before]
    world.telegram.press(ANNA, told, "Try again")
    await world.settle()
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Access renewed")


async def test_only_the_influencer_may_renew(world: World) -> None:
    invitation_id = await _connect_anna(world)
    attempts = await world.rows("SELECT COUNT(*) FROM login_attempt")

    # Ben, a stranger, forges Anna's Renew button in his own chat.
    answered = await _press_renew(world, BEN, invitation_id)
    assert answered == []
    [alert] = world.telegram.calls("answerCallbackQuery")[-1:]
    assert alert.get("show_alert") and "nicht mehr gültig" in str(
        alert.get("text")
    )  # Ben reads German
    assert await world.rows("SELECT COUNT(*) FROM login_attempt") == attempts

    # Withdrawn by the manager: nothing to renew any more.
    await world.revoke("@anna.bakes")
    answered = await _press_renew(world, ANNA, invitation_id)
    assert len(answered) == 1 and "nothing to renew" in answered[0].text
    assert await world.rows("SELECT COUNT(*) FROM login_attempt") == attempts


async def test_the_page_token_is_never_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    invitation_id = await _connect_anna(world)
    await _renewal_due(world)
    await _press_renew(world, ANNA, invitation_id)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Access renewed")
    page_tokens = [
        t for t in world.graph.issued_tokens() if world.graph.token_info(t).kind == "PAGE"
    ]
    assert len(page_tokens) == 6  # each shared Page's, at both logins
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("bot", "web_callback")]
    assert ours
    for token in page_tokens:
        assert token not in caplog.text
        assert not any(token in r.getMessage() for r in ours)
        assert not any(token in m.text for m in world.telegram.messages(ANNA.id))
        rows = await world.rows("SELECT facts FROM invitation_event WHERE facts IS NOT NULL")
        assert not any(token in str(f) for (f,) in rows)


async def test_verify_only_keeps_no_token(database_url: str) -> None:
    world = await make_world(database_url, verify_only=True)
    try:
        await _connect_anna(world)
        assert await world.rows(
            "SELECT token_encrypted, page_token_encrypted, health FROM connection"
        ) == [(None, None, "healthy")]
    finally:
        await close_world(world)


def _as_datetime(value: object) -> datetime:
    """A timestamp as the database returned it (SQLite: text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- the pure parts ---------------------------------------------------------------------------


def _evidence(*pages: dict[str, object]) -> LoginEvidence:
    return LoginEvidence(
        redirect={"code": "c"},
        debug={"is_valid": True, "app_id": "1", "user_id": "u", "scopes": []},
        permissions=[{"permission": s, "status": "granted"} for s in ALL_SCOPES.split(",")],
        pages=list(pages),
    )


def _page(page_id: str, *, published: bool = True) -> dict[str, object]:
    return {
        "id": page_id,
        "name": f"Page {page_id}",
        "is_published": published,
        "tasks": ["MANAGE"],
        "access_token": f"secret-{page_id}",
        "instagram_business_account": {"id": "ig-1", "username": "anna.bakes"},
    }


@pytest.mark.parametrize(
    ("keep", "outcome", "page"),
    [
        (None, Outcome.CONNECTED, "p-2"),  # a first login: the Page that passes
        ("p-1", Outcome.PAGE_UNPUBLISHED, "p-1"),  # a renewal: what is wrong with its Page
        ("p-9", Outcome.CONNECTED, "p-2"),  # its Page not shared: the one that passes
    ],
)
def test_a_renewal_judges_the_page_it_keeps(keep: str | None, outcome: Outcome, page: str) -> None:
    evidence = _evidence(_page("p-1", published=False), _page("p-2"))
    verdict = decide(
        evidence,
        invited_handle="anna.bakes",
        required_scopes=ALL_SCOPES.split(","),
        app_id="1",
        now=datetime.now(UTC),
        keep_page_id=keep,
    )
    assert (verdict.outcome, verdict.page and verdict.page.id) == (outcome, page)
    assert verdict.page is not None and verdict.page.access_token == f"secret-{page}"
    # The Page token rides along with the verdict, but never shows in a repr.
    assert "secret-" not in repr(verdict) and "secret-" not in repr(evidence)
