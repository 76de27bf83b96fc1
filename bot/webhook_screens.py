"""What administrators see of a brand's webhook (`/webhook`). Pure: from stored rows to catalog
text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.i18n import Html, Texts
from bot.models import Brand, WebhookDelivery
from bot.profile_screens import moment


def _date(t: Texts, when: datetime) -> str:
    """A day and a time as the reader writes them: 29 November 2026, 14:09 UTC."""
    return moment(t, when)


def status_text(t: Texts, brand: Brand, deliveries: Sequence[WebhookDelivery]) -> Html:
    """The URL, when it was set, and the last deliveries with their outcome."""
    if not brand.webhook_url:
        return t("webhook.none", brand=brand.name, id=brand.id)
    lines = [
        t(
            "webhook.status",
            brand=brand.name,
            url=brand.webhook_url,
            set=_date(t, brand.webhook_set_at) if brand.webhook_set_at else "",
        )
    ]
    if not deliveries:
        lines.append(t("webhook.no_deliveries", id=brand.id))
    else:
        lines.append(t("webhook.deliveries_header"))
        lines += [delivery_line(t, d) for d in deliveries]
    return Html("\n".join(lines))


def delivery_line(t: Texts, d: WebhookDelivery) -> Html:
    if d.status == "pending":
        state = t.plain("webhook.state.retrying" if d.attempts else "webhook.state.waiting")
    else:
        state = t.plain(f"webhook.state.{d.status}")
    details = []
    if d.last_status_code is not None:
        details.append(t.plain("webhook.http", code=d.last_status_code))
    if d.last_error and d.last_error != "status":
        key = f"webhook.error.{d.last_error}"
        details.append(t.plain(key) if t.has(key) else d.last_error)
    parts = [state, t.plain("webhook.attempts", count=d.attempts), *details]
    handle = _handle(d.body)
    return t(
        "webhook.delivery_line",
        at=_date(t, d.created_at),
        type=d.type,
        about=f" @{handle}" if handle else "",
        details=" · ".join(parts),
    )


def _handle(body: str) -> str:
    """The invitation's handle the event is about (none for a test event)."""
    try:
        invitation = json.loads(body).get("invitation")
    except (ValueError, AttributeError):
        return ""
    handle = invitation.get("handle") if isinstance(invitation, dict) else None
    return handle if isinstance(handle, str) else ""
