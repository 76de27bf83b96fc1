"""What administrators see of a brand's read API keys (`/apikey`, `/apikeys`, `/apikey_revoke`).
Pure: from stored rows to catalog text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.console_screens import fit
from bot.i18n import Html, Texts
from bot.models import ApiKey, Brand
from bot.profile_screens import moment
from bot.store.api_keys import NewApiKey

# The read API's list route, as the curl example in the reply calls it.
CONNECTIONS_PATH = "/api/v1/connections"


def _date(t: Texts, when: datetime) -> str:
    """A day and a time as the reader writes them: 29 November 2026, 14:09 UTC."""
    return moment(t, when)


def _label(t: Texts, key: ApiKey) -> Html:
    return t("console.admin.apikey_label", label=key.label) if key.label else Html("")


def created_text(t: Texts, brand: Brand, created: NewApiKey, *, public_url: str) -> str:
    """The new key, shown this once, with a curl call to try it."""
    return t(
        "console.admin.apikey_created",
        brand=brand.name,
        label=_label(t, created.row),
        api_key=created.key,
        url=public_url.rstrip("/") + CONNECTIONS_PATH,
        prefix=created.row.prefix,
    )


def keys_text(t: Texts, brand: Brand, keys: Sequence[ApiKey]) -> str:
    if not keys:
        return t("console.admin.apikeys_none", brand=brand.name, id=brand.id)
    lines: list[str] = [t("console.admin.apikeys_header", brand=brand.name)]
    for key in keys:
        if key.revoked_at is not None:
            line = t(
                "console.admin.apikey_line_revoked",
                prefix=key.prefix,
                label=_label(t, key),
                created=_date(t, key.created_at),
                revoked=_date(t, key.revoked_at),
            )
        else:
            used = (
                _date(t, key.last_used_at)
                if key.last_used_at is not None
                else t.plain("console.admin.apikey_never")
            )
            line = t(
                "console.admin.apikey_line",
                prefix=key.prefix,
                label=_label(t, key),
                created=_date(t, key.created_at),
                used=used,
            )
        lines.append(line)
    lines.append(t("console.admin.apikeys_footer"))
    return fit(t, lines)


def revoked_text(
    t: Texts, prefix: str, revoked: Sequence[tuple[ApiKey, Brand | None, bool]]
) -> str:
    """Each key `/apikey_revoke` named, with whether this call revoked it (False: it had been
    revoked already)."""
    if not revoked:
        return t("console.admin.apikey_unknown", prefix=prefix)
    lines = []
    for key, brand, now in revoked:
        name = brand.name if brand is not None else f"#{key.brand_id}"
        if now:
            lines.append(t("console.admin.apikey_revoked", prefix=key.prefix, brand=name))
        else:
            assert key.revoked_at is not None
            lines.append(
                t(
                    "console.admin.apikey_already_revoked",
                    prefix=key.prefix,
                    brand=name,
                    date=_date(t, key.revoked_at),
                )
            )
    return fit(t, lines)
