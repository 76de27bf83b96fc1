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
    "button.button{margin-top:1rem;padding:.75rem 1.25rem;background:#2aabee;color:#fff;"
    "border:0;border-radius:8px;font-weight:600;font-size:1rem;cursor:pointer}"
)


def render(t: Texts, *, message_key: str, bot_link: str | None, **values: object) -> str:
    body = html.escape(t.plain(f"web.{message_key}", **values))
    back = (
        f'<a class="button" href="{html.escape(bot_link)}">{html.escape(t.plain("web.back"))}</a>'
        if bot_link
        else ""
    )
    return _document(t, t.plain("web.title"), f"<p>{body}</p>{back}")


def render_confirm(t: Texts, *, handle: str, brand: str, action: str, token: str) -> str:
    """Before a login that came back to another browser is used: whose account, for whom, and
    a button to go on (a one-time token; nothing from the request is echoed)."""
    question = html.escape(t.plain("web.confirm.question", handle=handle, brand=brand))
    hint = html.escape(t.plain("web.confirm.hint"))
    button = html.escape(t.plain("web.confirm.continue"))
    form = (
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="t" value="{html.escape(token)}">'
        f'<button class="button" type="submit">{button}</button></form>'
    )
    return _document(t, t.plain("web.confirm.title"), f"<p>{question}</p><p>{hint}</p>{form}")


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
