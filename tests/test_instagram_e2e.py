"""The second way in end to end, through the chat only: a Facebook login without a Page, then
"Connect with Instagram instead" and the connection completing on Instagram; and a connection
made that way kept alive: its token refreshed by the health job after 50 simulated days, with
nobody asked to renew. Both engines."""

from __future__ import annotations

from bot.models import utcnow
from tests.test_instagram_flow import _failed_facebook_login
from tests.test_instagram_upkeep import (
    DAY,
    IG_ANNA,
    _days_pass,
    _health,
    _kept_token,
    _round,
    instagram_client,
)
from tests.world import ANNA, MANAGER, World


async def test_no_page_on_facebook_then_connected_with_instagram_and_kept_alive(
    ig_world: World,
) -> None:
    world = ig_world
    failed = await _failed_facebook_login(world)
    world.telegram.press(ANNA, failed, "Connect with Instagram instead")
    await world.settle()
    login = await world.answer(ANNA, "Yes")  # a professional account
    assert login.text.startswith("Step 2 of 2 · Log in with Instagram")

    page = await world.instagram_login(ANNA, IG_ANNA)
    assert page.status_code == 200 and "Connected" in page.text
    told = await world.telegram.wait_for(ANNA.id, "Connected!")
    assert "Instagram @anna.bakes (12,345 followers)" in told.text
    assert "through Instagram Login" in told.text
    await world.telegram.wait_for(MANAGER.id, "is connected")
    rows = await world.rows(
        "SELECT path, page_id, page_name, instagram_username, status FROM connection"
    )
    assert rows == [("instagram", "", "", "anna.bakes", "active")]
    [(invitation_path, status)] = await world.rows("SELECT path, status FROM invitation")
    assert (invitation_path, status) == ("instagram", "connected")
    first, first_expires = await _kept_token(world)
    assert first is not None and first_expires - utcnow() > 59 * DAY

    # 50 days on, the health job refreshes the token; nobody is asked anything.
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    await _days_pass(world, 50)
    assert await _round(world) == (1, 0, 0)
    assert await _health(world) == ("healthy", None, "active")
    second, second_expires = await _kept_token(world)
    assert second is not None and second != first
    assert second_expires - utcnow() > 59 * DAY
    client = instagram_client(world)
    try:
        assert (await client.me(second))["username"] == "anna.bakes"
    finally:
        await client.aclose()
    assert len(world.telegram.messages(ANNA.id)) == anna
    assert len(world.telegram.messages(MANAGER.id)) == maria
