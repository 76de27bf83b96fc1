"""The one module that sends messages nobody asked for in that moment: results to the influencer
after the browser redirect, notifications to the manager. Language is the recipient's own."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.i18n import Language, Texts, pick_language
from bot.screens import Screen
from bot.store import Database

log = logging.getLogger(__name__)

# A notification is worth a short wait, not an endless one: the HTTP callback waits on it.
_MAX_ATTEMPTS = 3


class Notifier:
    def __init__(self, *, bot: Bot, db: Database, default_language: Language) -> None:
        self._bot = bot
        self._db = db
        self._default: Language = default_language

    async def texts_for(self, telegram_id: int) -> Texts:
        chosen, seen = await self._db.language_of(telegram_id)
        return Texts(pick_language(chosen=chosen, telegram_code=seen, default=self._default))

    async def send(self, chat_id: int, screen: Screen) -> bool:
        """Send, retrying Telegram's flood control and network hiccups a few times. Returns
        False if the message could not be delivered (logged, never raised)."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                await self._bot.send_message(
                    chat_id,
                    screen.text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=screen.keyboard,
                    disable_web_page_preview=True,
                )
                return True
            except RetryAfter as exc:
                delay = exc.retry_after
                seconds = delay if isinstance(delay, int | float) else delay.total_seconds()
                await asyncio.sleep(seconds)
            except Forbidden:
                log.warning("chat %s is unreachable (blocked the bot or never started it)", chat_id)
                return False
            except BadRequest as exc:
                log.error("Telegram refused a message to chat %s: %s", chat_id, exc.message)
                return False
            except (NetworkError, TelegramError) as exc:
                log.warning("sending to chat %s failed (attempt %s): %s", chat_id, attempt, exc)
                await asyncio.sleep(0.5 * attempt)
        return False
