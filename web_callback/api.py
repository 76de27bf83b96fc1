"""The platform's read API (issue 12), on the callback server: a brand's connections with their
health and figures, and one connection with its Page access token. Described in
docs/openapi.yaml.

Every request carries `Authorization: Bearer <key>` (a brand's key, `/apikey`); a key sees only
its brand. Another brand's invitation, an unknown one and a malformed id all answer the same 404,
so nothing tells whether an id exists. Errors are JSON: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.crypto import TokenVault
from bot.models import ConnectionStatus, InviteStatus
from bot.store import Database
from bot.store.api_keys import BrandConnection, Caller
from bot.store.console import row_id

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
CONNECTIONS_PATH = "/api/v1/connections"
CONNECTION_PATH = CONNECTIONS_PATH + "/{invitation_id}"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# How the influencer connected when nothing else is recorded: through a Facebook Page (the
# other way in is "instagram", Instagram Login, issue 13).
PATH_FACEBOOK = "facebook"
_AUTH_HEADER = "Authorization"
_CHALLENGE = 'Bearer realm="connect-bot"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


def _refused(missing: bool) -> web.Response:
    # Wrong and revoked keys get the same answer: nothing tells which keys once existed.
    if missing:
        return error(
            401,
            "unauthorized",
            "Send the brand's API key as Authorization: Bearer <key>.",
            **{"WWW-Authenticate": _CHALLENGE},
        )
    return error(
        401,
        "unauthorized",
        "The API key is not valid.",
        **{"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
    )


def _not_found() -> web.Response:
    return error(404, "not_found", "No such connection.")


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/, every answer is JSON: aiohttp's own 404 and 405 included, and a bug is a
    500 without detail (logged, redacted, as everywhere)."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error(405, "method_not_allowed", "This path answers GET only.", Allow=allowed)
    except web.HTTPNotFound:
        return error(404, "not_found", "No such path.")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, "bad_request", exc.reason)
    except Exception:
        log.exception("read API: unhandled error in %s %s", request.method, request.path)
        return error(500, "internal_error", "Something went wrong on our side.")


class ReadApi:
    def __init__(self, *, db: Database, vault: TokenVault) -> None:
        self._db = db
        self._vault = vault

    def add_to(self, app: web.Application) -> None:
        app.middlewares.append(api_errors)
        # No HEAD: it would read (and record) a Page token only to throw the body away.
        app.router.add_get(CONNECTIONS_PATH, self.connections, allow_head=False)
        app.router.add_get(CONNECTION_PATH, self.connection, allow_head=False)

    async def _caller(self, request: web.Request) -> Caller | web.Response:
        given = request.headers.getall(_AUTH_HEADER, [])
        if not given:
            return _refused(missing=True)
        scheme, _, key = given[0].strip().partition(" ")
        if len(given) != 1 or scheme.lower() != "bearer" or not key.strip():
            return _refused(missing=False)
        caller = await self._db.api_keys.authenticate(key.strip())
        return caller if caller is not None else _refused(missing=False)

    async def connections(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        limit = _number(request.query.get("limit", str(DEFAULT_LIMIT)), 1, MAX_LIMIT)
        if limit is None:
            return error(
                400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}."
            )
        cursor = request.query.get("cursor")
        after = 0
        if cursor is not None:
            parsed = row_id(cursor) if cursor.isascii() and cursor.isdigit() else None
            if parsed is None:
                return error(400, "invalid_cursor", "cursor must be a next_cursor from a page.")
            after = parsed
        found, more = await self._db.api_keys.connections(caller.brand_id, after=after, limit=limit)
        last = found[-1].invitation.id if found and more else None
        return web.json_response(
            {
                "data": [connection_json(c) for c in found],
                "next_cursor": str(last) if last is not None else None,
            }
        )

    async def connection(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        typed = request.match_info["invitation_id"]
        invitation_id = row_id(typed) if typed.isascii() and typed.isdigit() else None
        if invitation_id is None:
            return _not_found()
        found = await self._db.api_keys.connection(caller.brand_id, invitation_id)
        if found is None:
            return _not_found()
        token = self._page_token(found)
        if token is not None:
            # Recorded before the token leaves: a read that cannot be recorded does not happen.
            await self._db.api_keys.record_token_read(invitation_id, prefix=caller.prefix)
            log.info("read API: key %s read the Page token of #%s", caller.prefix, invitation_id)
        body = connection_json(found)
        body["page_access_token"] = token
        return web.json_response(body)

    def _page_token(self, found: BrandConnection) -> str | None:
        """The live connection's Page token; None once it ended, or when none is kept."""
        connection = found.connection
        live = (
            connection.status == ConnectionStatus.ACTIVE
            and found.invitation.status == InviteStatus.CONNECTED
        )
        if not live or not connection.page_token_encrypted:
            return None
        return self._vault.open(connection.page_token_encrypted)


def connection_json(found: BrandConnection) -> dict[str, Any]:
    invite, connection, snapshot = found.invitation, found.connection, found.snapshot
    engagement = snapshot.engagement_per_mille if snapshot is not None else None
    return {
        "invitation_id": invite.id,
        "handle": invite.handle,
        "status": invite.status,
        "connection_status": connection.status,
        # facebook: through a Facebook Page; instagram: Instagram Login (page_id, page_name "").
        "path": connection.path or PATH_FACEBOOK,
        "instagram_id": connection.instagram_id,
        "username": connection.instagram_username,
        "page_id": connection.page_id,
        "page_name": connection.page_name,
        "health": connection.health,
        "health_reason": connection.health_reason,
        "connected_at": _time(connection.created_at),
        "ended_at": _time(connection.ended_at),
        "data_access_expires_at": _time(connection.data_access_expires_at),
        "checked_at": _time(connection.checked_at),
        "followers_count": (
            snapshot.followers_count if snapshot is not None else connection.followers_count
        ),
        "reach_30d": snapshot.reach_30d if snapshot is not None else None,
        "engagement_rate": engagement / 1000 if engagement is not None else None,
        "figures_fetched_at": _time(snapshot.fetched_at) if snapshot is not None else None,
    }


def _time(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def _number(text: str, low: int, high: int) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        return None
    value = int(text)
    return value if low <= value <= high else None
