"""The second way in as the console shows it (issue 13), end to end on SQLite and PostgreSQL: an
admin's /paths (shown, set, refused), and the way a connection was made in /list, /show,
/export, /stats, /profile and the webhook body, with no "Page" named for a connection that has
none. The Instagram Login connection is made as in tests/test_instagram_upkeep.py."""

from __future__ import annotations

import csv
import io
import json
import re

import httpx
from sqlmodel import select

from bot.models import Brand
from tests.test_instagram_upkeep import IG_ANNA, connect_on_instagram
from tests.world import BEN, MANAGER, World


async def _brand(world: World, name: str) -> int:
    [reply] = await world.say(MANAGER, f"/brand_new {name}")
    found = re.search(r"\(#(\d+)\)", reply.text)
    assert found, reply.text
    return int(found.group(1))


async def _login_paths(world: World, brand_id: int) -> str:
    async with world.db.session() as s:
        brand = (await s.exec(select(Brand).where(Brand.id == brand_id))).one()
        return brand.login_paths


async def _one(world: World, user: object, text: str) -> str:
    replies = await world.say(user, text)  # type: ignore[arg-type]
    assert replies, text
    return replies[-1].text


async def test_paths_are_shown_set_and_refused(world: World) -> None:
    brand = await _brand(world, "Acme")

    shown = await _one(world, MANAGER, f"/paths {brand}")
    assert f"Acme (#{brand}): both ways." in shown
    assert "or through Instagram Login" in shown
    # This install has no second Meta app: said plainly.
    assert "Instagram Login is not configured" in shown and "INSTAGRAM_APP_ID" in shown
    assert f"/paths {brand} facebook" in shown

    done = await _one(world, MANAGER, f"/paths {brand} facebook")
    assert done.startswith(f"✅ Acme (#{brand}) is now set to Facebook Page only.")
    assert "only through a Facebook Page" in done
    assert "not configured" not in done  # Facebook only needs no second app
    assert await _login_paths(world, brand) == "facebook"
    assert f"Acme (#{brand}): Facebook Page only." in await _one(world, MANAGER, f"/paths #{brand}")

    # Wrong words change nothing.
    assert "Send /paths brand-number" in await _one(world, MANAGER, f"/paths {brand} sideways")
    assert "Send /paths brand-number" in await _one(world, MANAGER, "/paths")
    assert "There is no brand #999" in await _one(world, MANAGER, "/paths 999 both")
    assert await _login_paths(world, brand) == "facebook"

    # Not an administrator: the usual refusal, nothing changed.
    refused = await _one(world, BEN, f"/paths {brand} instagram")
    assert "nur Administratoren" in refused and str(BEN.id) in refused  # Ben reads German
    assert await _login_paths(world, brand) == "facebook"

    # Listed in the administrators' /help.
    helped = "\n".join(m.text for m in await world.say(MANAGER, "/help"))
    assert "/paths number [facebook|instagram|both]" in helped


async def test_paths_with_instagram_login_configured(ig_world: World) -> None:
    world = ig_world
    brand = await _brand(world, "Acme")
    shown = await _one(world, MANAGER, f"/paths {brand}")
    assert f"Acme (#{brand}): both ways." in shown and "not configured" not in shown
    done = await _one(world, MANAGER, f"/paths {brand} INSTAGRAM")
    assert "is now set to Instagram Login only" in done and "no Facebook Page needed" in done
    assert await _login_paths(world, brand) == "instagram"


async def test_the_way_in_is_shown_wherever_a_connection_is(ig_world: World) -> None:
    world = ig_world
    invitation_id = await connect_on_instagram(world, webhook=True)

    listed = await _one(world, MANAGER, "/list")
    assert re.search(rf"#{invitation_id} @anna\.bakes · connected · Instagram Login", listed)

    shown = await _one(world, MANAGER, f"/show #{invitation_id}")
    assert "Connected: Instagram @anna.bakes · Instagram Login" in shown
    assert "via Instagram Login (no Facebook Page)" in shown
    assert f"Instagram ID {IG_ANNA.user_id}" in shown
    assert "Instagram login valid until" in shown
    assert "Page " not in shown.replace("Facebook Page", "")

    stats = await _one(world, MANAGER, "/stats")
    assert "Connected through" in stats
    assert "Facebook Page: 0" in stats and "Instagram Login: 1" in stats

    [export] = (await world.say(MANAGER, "/export"))[-1:]
    assert export.document_bytes is not None
    rows = list(csv.DictReader(io.StringIO(export.document_bytes.decode("utf-8"))))
    [row] = [r for r in rows if r["handle"] == "anna.bakes"]
    assert row["path"] == "instagram"
    assert row["page_id"] == "" and row["page_name"] == ""
    assert row["instagram_id"] == IG_ANNA.user_id

    ig_calls = len(world.instagram.requests)
    texts = [m.text for m in await world.say(MANAGER, "/profile @anna.bakes")]
    profile = next(t for t in texts if "Connected through" in t)
    assert "Connected through Instagram Login" in profile
    assert "12,345 followers" in profile or "12345 followers" in profile
    # Read on Instagram's host with the account's own token; Facebook's Graph is not asked.
    assert any(IG_ANNA.user_id in path for _, path, _ in world.instagram.requests[ig_calls:])

    [(body,)] = await world.rows(
        "SELECT body FROM webhook_delivery WHERE type = 'connection.connected'"
    )
    assert isinstance(body, str)
    payload = json.loads(body)
    assert payload["path"] == "instagram"
    assert payload["page_id"] == ""
    assert payload["instagram_id"] == IG_ANNA.user_id
    assert "token" not in body.lower()

    # The read API's connection object: the way in, no Page, and no Page token to hand out.
    [answer] = await world.say(MANAGER, "/apikey 1")
    keys = re.findall(r"cbk_[A-Za-z0-9_-]{20,}", answer.text)
    assert keys, answer.text
    headers = {"Authorization": f"Bearer {keys[0]}"}
    async with httpx.AsyncClient(
        base_url=world.settings.public_url, headers=headers, timeout=10
    ) as api:
        listed_api = (await api.get("/api/v1/connections")).json()
        one = (await api.get(f"/api/v1/connections/{invitation_id}")).json()
    [item] = listed_api["data"]
    assert item["path"] == one["path"] == "instagram"
    assert item["page_id"] == item["page_name"] == ""
    assert one["page_access_token"] is None
