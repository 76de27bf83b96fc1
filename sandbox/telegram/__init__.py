"""A stand-in for the Telegram Bot API (api.telegram.org), served over real HTTP on loopback.

A real python-telegram-bot ``Application`` built with ``.base_url(standin.base_url)`` (and
``.base_file_url(standin.base_file_url)`` for downloads) runs against it unchanged, long polling
included. The stand-in answers ``/bot<token>/<method>`` with the Bot API's envelope
(``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code", "description", "parameters"}``),
plays the people talking to the bot (``send_text``, ``press``, ``send_document``), records what the
bot sent (``messages``, ``requests``) and refuses the way Telegram does: 403 for a chat that never
started the bot or blocked it, 429 over the flood limits, 400 for what Telegram's parser rejects.

Chats are private ones (the bot talks to influencers and managers one to one) and group chats a
person writes in (``send_group_text``, e.g. a brand's team chat), which can remove the bot (403)
or become a supergroup with a new id (400 with ``parameters.migrate_to_chat_id``).

  model.py     TgUser, SentMessage, WebhookDelivery and the stand-in's other records
  standin.py   TelegramStandin: server, routes, people's actions, Bot API methods, updates
  html.py      parse_html: Telegram's HTML parse mode
  wire.py      request decoding
  errors.py    the Bot API's error answers
  limits.py    flood control (429)
  menus.py     command menus by scope
"""

from __future__ import annotations

from .html import HtmlParseError, parse_html
from .model import SentMessage, TgUser, WebhookDelivery
from .standin import TelegramStandin

__all__ = [
    "HtmlParseError",
    "SentMessage",
    "TelegramStandin",
    "TgUser",
    "WebhookDelivery",
    "parse_html",
]
