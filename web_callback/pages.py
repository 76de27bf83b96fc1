"""The small HTML page the browser lands on after Facebook. It never echoes anything from the
request (no code, no state); every text comes from the catalogs."""

from __future__ import annotations

import html
from collections.abc import Sequence

from bot.i18n import Texts

_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;"
    "margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}"
    "main{background:#fff;max-width:28rem;margin:1rem;padding:2rem;border-radius:12px;"
    "box-shadow:0 2px 12px rgba(0,0,0,.08);text-align:center}"
    "h1{font-size:1.25rem;margin:0 0 1rem}p{line-height:1.5;color:#333}"
    "a.button{display:inline-block;margin-top:1rem;padding:.75rem 1.25rem;background:#2aabee;"
    "color:#fff;border-radius:8px;text-decoration:none;font-weight:600}"
)


def render(t: Texts, *, message_key: str, bot_link: str | None, **values: object) -> str:
    body = html.escape(t.plain(f"web.{message_key}", **values))
    back = (
        f'<a class="button" href="{html.escape(bot_link)}">{html.escape(t.plain("web.back"))}</a>'
        if bot_link
        else ""
    )
    return _document(t, t.plain("web.title"), f"<p>{body}</p>{back}")


def render_text(t: Texts, *, title_key: str, message_keys: Sequence[str], **values: object) -> str:
    """A page of catalog paragraphs, e.g. the status of a data deletion request."""
    body = "".join(f"<p>{html.escape(t.plain(key, **values))}</p>" for key in message_keys)
    return _document(t, t.plain(title_key), body)


def _document(t: Texts, title: str, body: str) -> str:
    title = html.escape(title)
    return (
        f'<!doctype html><html lang="{t.language}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{title}</h1>{body}</main></body></html>"
    )
