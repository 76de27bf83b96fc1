"""Talking to the Graph stand-in as the bot does, for the stand-in's own tests: a signed GET, and
a whole login (dialog, code exchange, long-lived token, the Page's token)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.facebook import Consent, FbUser, GraphStandin

REDIRECT = "https://connect.example/fb/callback"
SCOPES = "pages_show_list,pages_read_engagement,instagram_basic,instagram_manage_insights"


@dataclass
class Kept:
    """What the bot keeps after a login: the long-lived user token and the Page's token."""

    user_token: str
    page_token: str


async def get(
    fb: GraphStandin, http: httpx.AsyncClient, path: str, token: str, **params: Any
) -> httpx.Response:
    """GET /v25.0/<path> with `token` and its appsecret_proof."""
    proof = hmac.new(fb.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return await http.get(
        f"{fb.base_url}/v25.0/{path}",
        params={"access_token": token, "appsecret_proof": proof, **params},
    )


async def log_in(
    fb: GraphStandin, http: httpx.AsyncClient, person: FbUser, consent: Consent | None = None
) -> httpx.Response:
    """`person` logs in through the dialog: the answer of the long-lived token exchange (its
    ``access_token`` is the user token the bot keeps)."""
    fb.set_person(person, consent)
    dialog = await http.get(
        f"{fb.base_url}/v25.0/dialog/oauth",
        params={"client_id": fb.app_id, "redirect_uri": REDIRECT, "state": "s", "scope": SCOPES},
    )
    code = parse_qs(urlsplit(dialog.headers["location"]).query)["code"][0]
    credentials = {"client_id": fb.app_id, "client_secret": fb.app_secret}
    short = await http.get(
        f"{fb.base_url}/v25.0/oauth/access_token",
        params={**credentials, "redirect_uri": REDIRECT, "code": code},
    )
    return await http.get(
        f"{fb.base_url}/v25.0/oauth/access_token",
        params={
            **credentials,
            "grant_type": "fb_exchange_token",
            "fb_exchange_token": short.json()["access_token"],
        },
    )
