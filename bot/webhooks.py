"""The platform's signed webhooks (issue 12), the pure part: which invitation events are
reported and as which type, the JSON body, the signature, the retry schedule and the URL policy.

No I/O: the store writes the rows (`bot.store.webhooks`, in the transaction of the event), the
sender POSTs them (`bot.webhook_sender`). The format is documented in docs/webhooks.md.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

SIGNATURE_HEADER = "Connect-Bot-Signature"
EVENT_ID_HEADER = "Connect-Bot-Event-Id"
EVENT_TYPE_HEADER = "Connect-Bot-Event-Type"
SECRET_PREFIX = "whsec_"
EVENT_ID_PREFIX = "evt_"
URL_MAX_LENGTH = 2048  # Brand.webhook_url
# Deliveries are retried for this long after the event, then given up (`failed`).
RETRY_FOR = timedelta(hours=24)
RETRY_CAP = timedelta(hours=1)


class WebhookType(StrEnum):
    INVITATION_OPENED = "invitation.opened"
    INVITATION_REVOKED = "invitation.revoked"  # withdrawn before anything was connected
    CONNECTED = "connection.connected"
    FAILED = "connection.failed"
    RENEWAL_DUE = "connection.renewal_due"
    BROKEN = "connection.broken"
    HEALTHY = "connection.healthy"  # a broken connection works again without a new login
    RENEWED = "connection.renewed"
    DISCONNECTED = "connection.disconnected"
    DATA_DELETED = "connection.data_deleted"
    PING = "ping"  # `/webhook <brand> test`


# The `bot.store.events.EventKind` values this module reads (the store imports us, not back).
_OPENED, _VERDICT, _HEALTH, _RENEWED = "opened", "verdict", "health", "renewed"
_REVOKED, _DEAUTHORIZED, _DATA_DELETED = "revoked", "deauthorized", "data_deleted"
_HEALTH_TYPES = {
    "healthy": WebhookType.HEALTHY,
    "renewal_due": WebhookType.RENEWAL_DUE,
    "broken": WebhookType.BROKEN,
    "disconnected": WebhookType.DISCONNECTED,
}


@dataclass(frozen=True)
class Reported:
    type: WebhookType
    reason: str | None = None


def reported(
    kind: str, status: str, detail: str | None, *, had_connection: bool
) -> Reported | None:
    """What the platform hears of one invitation event (None: nothing; the steps before the
    login, reminders and the like are the chat's business)."""
    if kind == _OPENED:
        return Reported(WebhookType.INVITATION_OPENED)
    if kind == _VERDICT:
        if status == "connected":
            return Reported(WebhookType.CONNECTED)
        return Reported(WebhookType.FAILED, detail)
    if kind == _HEALTH and detail:
        state, _, reason = detail.partition(":")
        kind_of = _HEALTH_TYPES.get(state)
        return Reported(kind_of, reason or None) if kind_of is not None else None
    if kind == _RENEWED:
        return Reported(WebhookType.RENEWED)
    if kind == _REVOKED:
        if had_connection:
            return Reported(WebhookType.DISCONNECTED, "revoked")
        return Reported(WebhookType.INVITATION_REVOKED, "revoked")
    if kind == _DEAUTHORIZED:
        return Reported(WebhookType.DISCONNECTED, "app_removed")
    if kind == _DATA_DELETED:
        # "meta": asked through Facebook's data deletion; "forget": the influencer's /forget.
        return Reported(WebhookType.DATA_DELETED, detail)
    return None


@dataclass(frozen=True)
class Subject:
    """What a body names besides the event: the brand, the invitation and its connection."""

    brand_id: int
    brand_name: str
    invitation_id: int | None = None
    handle: str | None = None
    status: str | None = None
    instagram_id: str | None = None
    instagram_username: str | None = None
    page_id: str | None = None
    health: str | None = None
    # The way in (`bot.models.LoginPath` value): "facebook" or "instagram" (no Page: page_id "");
    # the connection's, or before there is one the way the influencer chose (None: not yet).
    path: str | None = None


def new_event_id() -> str:
    return EVENT_ID_PREFIX + secrets.token_hex(16)


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def body(event_id: str, what: Reported, at: datetime, subject: Subject) -> str:
    """The JSON POSTed. Never a token; after a data deletion no Instagram or Page ids."""
    deleted = what.type == WebhookType.DATA_DELETED
    invitation = (
        {"id": subject.invitation_id, "handle": subject.handle, "status": subject.status}
        if subject.invitation_id is not None
        else None
    )
    payload = {
        "id": event_id,
        "type": str(what.type),
        "created": at.isoformat().replace("+00:00", "Z"),
        "brand": {"id": subject.brand_id, "name": subject.brand_name},
        "invitation": invitation,
        "instagram_id": None if deleted else subject.instagram_id,
        "instagram_username": None if deleted else subject.instagram_username,
        "page_id": None if deleted else subject.page_id,
        "path": None if deleted else subject.path,
        "health": None if deleted else subject.health,
        "reason": what.reason,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """The header value: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's scheme)."""
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(attempts: int, first: float, *, rng: random.Random | None = None) -> float:
    """Seconds until the next try after `attempts` failed ones: doubling from `first`, at most
    an hour, each drawn between half and the whole (jitter spreads a receiver's comeback)."""
    ceiling = min(first * 2 ** max(attempts - 1, 0), RETRY_CAP.total_seconds())
    return (rng or random).uniform(ceiling / 2, ceiling)


class UrlProblem(StrEnum):
    MALFORMED = "malformed"
    NOT_HTTPS = "not_https"
    CREDENTIALS = "credentials"
    PRIVATE = "private"  # a private, loopback, link-local, multicast or reserved address


def check_url(url: str, *, allow_loopback: bool) -> UrlProblem | None:
    """The URL's own problems (its addresses are checked when resolved: `address_problem`)."""
    if not url or len(url) > URL_MAX_LENGTH or any(c.isspace() for c in url):
        return UrlProblem.MALFORMED
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return UrlProblem.MALFORMED
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return UrlProblem.MALFORMED
    if parts.username is not None or parts.password is not None:
        return UrlProblem.CREDENTIALS
    if parts.scheme != "https" and not (allow_loopback and _is_loopback(parts.hostname)):
        # Plain http only to this machine, where the playground and the tests allow it.
        return UrlProblem.NOT_HTTPS
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return address_problem(literal, allow_loopback=allow_loopback)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_problem(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool
) -> UrlProblem | None:
    """A resolved address the webhook must not reach (the bot's own network, another tenant's
    metadata service); loopback only where the playground or the tests allow it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else UrlProblem.PRIVATE
    if (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return UrlProblem.PRIVATE
    return None
