"""The platform's read API (issue 12), end to end on SQLite and PostgreSQL: an administrator creates
a brand's key in Telegram (shown once, stored only hashed), the platform reads the brand's
connections and one connection's Page token over real HTTP from the running bot, every token read
lands in the manager's timeline, and missing, wrong and revoked keys and other brands' ids are
refused without telling anything."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from bot.crypto import TokenVault
from bot.logs import redact
from bot.models import utcnow
from bot.store import Database
from tests.world import ANNA, MANAGER, World, anna_on_facebook

_KEY = re.compile(r"cbk_[A-Za-z0-9_-]{32}")
OPENAPI = Path(__file__).parent.parent / "docs" / "openapi.json"


async def _connect_anna(world: World) -> int:
    """Anna connects @anna.bakes for the first brand (Brandly); her invitation's id."""
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation WHERE handle = 'anna.bakes'")
    assert isinstance(invitation_id, int)
    return invitation_id


async def _new_key(world: World, command: str) -> tuple[str, str]:
    """An administrator's `/apikey …`: the key the bot showed, and its whole answer."""
    [answer] = await world.say(MANAGER, command)
    keys = _KEY.findall(answer.text)
    assert keys, answer.text
    return keys[0], answer.text


def _api(world: World, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.AsyncClient(base_url=world.settings.public_url, headers=headers, timeout=10)


def _page_token_issued(world: World, page_id: str) -> list[str]:
    """The Page tokens the Graph stand-in issued for this Page."""
    return [
        value
        for value in world.graph.issued_tokens()
        if world.graph.token_info(value).kind == "PAGE"
        and world.graph.token_info(value).page_id == page_id
    ]


async def test_key_from_telegram_reads_the_brands_connections(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    invitation_id = await _connect_anna(world)

    key, shown = await _new_key(world, "/apikey 1 CRM sync")
    assert "Brandly" in shown and "CRM sync" in shown and "only time" in shown
    assert f"{world.settings.public_url}/api/v1/connections" in shown  # the curl example
    # Stored only hashed: no column holds the key.
    [(key_hash, prefix, label, brand_id)] = await world.rows(
        "SELECT key_hash, prefix, label, brand_id FROM api_key"
    )
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert prefix == key[:12] and label == "CRM sync" and brand_id == 1
    dump = repr(await world.rows("SELECT * FROM api_key"))
    assert key not in dump and key[12:] not in dump
    # Shown once: the list names it by its prefix only.
    [listed] = await world.say(MANAGER, "/apikeys 1")
    assert prefix in listed.text and "CRM sync" in listed.text and "never" in listed.text
    assert key not in listed.text
    today = utcnow()
    assert f"created {today.day} {today:%B} {today.year}, " in listed.text, listed.text

    async with _api(world, key) as api:
        page = await api.get("/api/v1/connections")
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["next_cursor"] is None
        [anna] = body["data"]
        assert anna["invitation_id"] == invitation_id
        assert anna["handle"] == "anna.bakes" and anna["status"] == "connected"
        assert anna["path"] == "facebook" and anna["connection_status"] == "active"
        assert (anna["instagram_id"], anna["username"]) == ("ig-100", "anna.bakes")
        assert (anna["page_id"], anna["page_name"]) == ("p-100", "Anna Bakes")
        assert anna["health"] == "healthy" and anna["health_reason"] is None
        assert anna["followers_count"] == 12345  # from the connection: no figures read yet
        assert anna["reach_30d"] is None and anna["engagement_rate"] is None
        assert anna["figures_fetched_at"] is None
        assert anna["connected_at"].endswith("Z") and anna["data_access_expires_at"]
        assert "page_access_token" not in anna

        one = await api.get(f"/api/v1/connections/{invitation_id}")
        assert one.status_code == 200, one.text
        token = one.json()["page_access_token"]
        assert token in _page_token_issued(world, "p-100")
        assert one.headers["Cache-Control"] == "no-store"
        assert {k: v for k, v in one.json().items() if k != "page_access_token"} == anna

    # The read is an event of the invitation, and the manager reads it in the timeline.
    [(detail,)] = await world.rows(
        f"SELECT detail FROM invitation_event WHERE invitation_id = {invitation_id}"
        " AND kind = 'token_read'"
    )
    assert detail == prefix
    [show] = await world.say(MANAGER, f"/show #{invitation_id}")
    assert "the platform read the access token of @anna.bakes's Page" in show.text
    assert prefix in show.text
    # Its last use is recorded (at most once a minute).
    [(last_used,)] = await world.rows("SELECT last_used_at FROM api_key")
    assert last_used is not None

    # No log line of ours holds the key or the Page token. The key does pass PTB's debug log
    # of the message that shows it: the product's formatter (`bot.logs`) redacts it there.
    ours = [
        r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("bot", "web_callback")
    ]
    assert ours and not any(key in line or token in line for line in ours)
    assert token not in caplog.text
    assert key in caplog.text and key not in redact(caplog.text)


async def test_refused_keys_and_other_brands_ids(world: World) -> None:
    invitation_id = await _connect_anna(world)
    key, _ = await _new_key(world, "/apikey 1")
    await world.say(MANAGER, "/brand_new Other Brand")
    other_key, shown = await _new_key(world, "/apikey 2")
    assert "Other Brand" in shown

    async with _api(world) as anonymous:
        missing = await anonymous.get("/api/v1/connections")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert missing.json()["error"]["code"] == "unauthorized"
        not_bearer = await anonymous.get(
            f"/api/v1/connections/{invitation_id}", headers={"Authorization": f"Basic {key}"}
        )
        assert not_bearer.status_code == 401
    async with _api(world, key[:-1] + ("A" if key[-1] != "A" else "B")) as wrong:
        refused_wrong = await wrong.get(f"/api/v1/connections/{invitation_id}")
        assert refused_wrong.status_code == 401
        assert "page_access_token" not in refused_wrong.text
    async with _api(world, "x" * 5000) as absurd:
        assert (await absurd.get("/api/v1/connections")).status_code == 401

    # Another brand's key: its own (empty) list, and Anna's id is not found, like any unknown id.
    async with _api(world, other_key) as other:
        listed = await other.get("/api/v1/connections")
        assert listed.status_code == 200 and listed.json() == {"data": [], "next_cursor": None}
        answers = [
            await other.get(f"/api/v1/connections/{ref}")
            for ref in (invitation_id, 999_999, "abc", "-1", "1e3", "%231", "9" * 30, "0")
        ]
        assert {a.status_code for a in answers} == {404}
        assert len({a.text for a in answers}) == 1
        assert answers[0].json()["error"]["code"] == "not_found"
    [(reads,)] = await world.rows("SELECT count(*) FROM invitation_event WHERE kind = 'token_read'")
    assert reads == 0

    async with _api(world, key) as api:
        assert (await api.get(f"/api/v1/connections/{invitation_id}")).status_code == 200
        for query in ("limit=0", "limit=101", "limit=x", "cursor=abc", "cursor=-4"):
            bad = await api.get(f"/api/v1/connections?{query}")
            assert bad.status_code == 400, query
            assert bad.json()["error"]["code"] in ("invalid_limit", "invalid_cursor")
        wrong_method = await api.post("/api/v1/connections", json={})
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        assert wrong_method.headers["Allow"] == "GET"
        head = await api.head(f"/api/v1/connections/{invitation_id}")
        assert head.status_code == 405
        nowhere = await api.get("/api/v1/nowhere")
        assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"

    # Revoked in Telegram: from then on the same answer as a wrong key.
    prefix = key[:12]
    [answer] = await world.say(MANAGER, f"/apikey_revoke {prefix}…")
    assert "revoked" in answer.text and prefix in answer.text and key not in answer.text
    [again] = await world.say(MANAGER, f"/apikey_revoke {prefix}")
    assert "already revoked" in again.text
    async with _api(world, key) as revoked:
        refused_revoked = await revoked.get(f"/api/v1/connections/{invitation_id}")
    assert refused_revoked.status_code == 401
    assert refused_revoked.text == refused_wrong.text
    assert refused_revoked.headers["WWW-Authenticate"] == refused_wrong.headers["WWW-Authenticate"]
    [listed_keys] = await world.say(MANAGER, "/apikeys 1")
    assert "revoked" in listed_keys.text


async def test_withdrawn_connection_gives_no_token(world: World) -> None:
    invitation_id = await _connect_anna(world)
    key, _ = await _new_key(world, "/apikey 1")
    await world.revoke(f"#{invitation_id}")
    async with _api(world, key) as api:
        one = await api.get(f"/api/v1/connections/{invitation_id}")
    assert one.status_code == 200
    assert one.json()["status"] == "revoked" and one.json()["page_access_token"] is None
    [(reads,)] = await world.rows("SELECT count(*) FROM invitation_event WHERE kind = 'token_read'")
    assert reads == 0


async def test_admin_commands_refuse_bad_input(world: World) -> None:
    [usage] = await world.say(MANAGER, "/apikey")
    assert "/apikey brand-number" in usage.text
    [unknown] = await world.say(MANAGER, "/apikey 77")
    assert "There is no brand #77" in unknown.text
    [too_long] = await world.say(MANAGER, "/apikey 1 " + "x" * 65)
    assert "/apikey brand-number" in too_long.text
    [not_a_prefix] = await world.say(MANAGER, "/apikey_revoke <b>")
    assert "/apikey_revoke prefix" in not_a_prefix.text
    [nobody] = await world.say(MANAGER, "/apikey_revoke cbk_AAAAAAAA")
    assert "No read API key has the prefix" in nobody.text
    [(count,)] = await world.rows("SELECT count(*) FROM api_key")
    assert count == 0


async def test_figures_and_pages(database_url: str) -> None:
    """Figures from the profile snapshot when read; pages of at most `limit`, in invitation
    order, each connection once. Straight against the store and the API's routes."""
    from bot.models import Brand, Connection, Invitation, ProfileSnapshot
    from web_callback.api import ReadApi

    db = Database(database_url)
    await db.migrate()
    vault = TokenVault(Fernet.generate_key().decode())
    try:
        async with db.transaction() as s:
            brand = Brand(name="Brandly")
            s.add(brand)
            await s.flush()
            assert brand.id is not None
            for n in range(5):
                invite = Invitation(
                    token_hash=f"h{n}",
                    handle=f"acct{n}",
                    created_by=1,
                    inviter_name="Maria",
                    status="connected" if n != 2 else "pending",
                    expires_at=utcnow() + timedelta(days=7),
                    brand_id=brand.id,
                )
                s.add(invite)
                await s.flush()
                if n == 2:
                    continue  # never connected: not listed
                assert invite.id is not None
                connection = Connection(
                    invitation_id=invite.id,
                    facebook_user_id=f"fb{n}",
                    page_id=f"p{n}",
                    page_name=f"Page {n}",
                    instagram_id=f"ig{n}",
                    instagram_username=f"acct{n}",
                    followers_count=100 + n,
                    permissions="instagram_basic",
                    page_token_encrypted=vault.seal(f"page-token-{n}"),
                )
                s.add(connection)
                await s.flush()
                if n == 1:
                    assert connection.id is not None
                    s.add(
                        ProfileSnapshot(
                            connection_id=connection.id,
                            followers_count=2000,
                            reach_30d=54321,
                            engagement_per_mille=34,
                            data="{}",
                        )
                    )
        created = await db.api_keys.create(brand_id=brand.id, created_by=1, label=None)
        app = web.Application()
        ReadApi(db=db, vault=vault).add_to(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        headers = {"Authorization": f"Bearer {created.key}"}
        seen: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as api:
            url = "/api/v1/connections?limit=3"
            while True:
                page = (await api.get(url)).json()
                assert len(page["data"]) <= 3
                seen += page["data"]
                if page["next_cursor"] is None:
                    break
                url = f"/api/v1/connections?limit=3&cursor={page['next_cursor']}"
            one = (await api.get(f"/api/v1/connections/{seen[1]['invitation_id']}")).json()
        await runner.cleanup()
        assert [c["handle"] for c in seen] == ["acct0", "acct1", "acct3", "acct4"]
        with_figures = seen[1]
        assert with_figures["followers_count"] == 2000  # the snapshot's, not the connection's
        assert with_figures["reach_30d"] == 54321
        assert with_figures["engagement_rate"] == pytest.approx(0.034)
        assert with_figures["figures_fetched_at"].endswith("Z")
        assert seen[0]["followers_count"] == 100 and seen[0]["reach_30d"] is None
        assert one["page_access_token"] == "page-token-1"
    finally:
        await db.dispose()


def test_openapi_file_describes_the_routes() -> None:
    from web_callback.api import ReadApi

    spec = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    app = web.Application()
    ReadApi(db=Database("sqlite+aiosqlite://"), vault=TokenVault(None)).add_to(app)
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
    }
    documented = {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == routes
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    for path, item in spec["paths"].items():
        responses = item["get"]["responses"]
        assert {"200", "401", "404"} <= set(responses), path
