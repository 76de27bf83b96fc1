"""The floor: the least a python-telegram-bot bot can do for the guided flow.

The same steps as the product, with the same Telegram calls per update (``/start <token>``: a
welcome and the first question; each "Yes": answer the button, take the buttons off, send the next
question or the login button), but the step lives in a dict, nothing is stored, and the texts are
literals instead of catalogs. The Application is built with the same options as the product's
(`bot/app.py`), so the comparison measures what the product does per update, not a setting.

Run as a process, like the product: ``python -m bench.floor`` with TELEGRAM_BOT_TOKEN,
TELEGRAM_BASE_URL and FACEBOOK_DIALOG_URL set; it logs "ready:" once polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from typing import Any
from urllib.parse import urlencode

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

log = logging.getLogger("bench.floor")

# The product's English screens as literals (same length and markup, so the same bytes travel
# both ways and PTB parses the same entities); only the names vary.
WELCOME = (
    "Hi {name}! 👋\n\n<b>Maria</b> invites you, through <b>Brandly</b>, to connect your Instagram "
    "account <b>@{handle}</b>.\n\nOnce connected, Brandly can read your Instagram profile, reach "
    "and insights for your collaboration. It cannot post anything, and you can disconnect at any "
    "time.\n\n<b>What happens</b> (about 3 minutes):\n1. Two quick checks about your Facebook "
    "Page\n2. Log in with Facebook and allow the permissions\n3. I tell you right here whether "
    "it worked"
)
QUESTIONS = {
    "public": (
        "<b>Step 1 of 3 · Is your Facebook Page public?</b>\n\nYour Instagram account is "
        "connected through a Facebook Page. That Page must be <b>published</b> (visible to "
        "everyone), otherwise Facebook will not let Brandly reach it."
    ),
    "linked": (
        "<b>Step 2 of 3 · Is the Page linked to @{handle}?</b>\n\nTwo things must be true:\n"
        "• <b>@{handle}</b> is a <b>professional</b> Instagram account (Creator or Business, not "
        "personal)\n• it is linked to the Facebook Page from step 1"
    ),
}
LOGIN = (
    "<b>Step 3 of 3 · Log in with Facebook</b>\n\nFacebook will ask you to allow these "
    "permissions:\n• see your Instagram profile and posts\n• read your Instagram insights "
    "(reach, audience)\n• see which Facebook Pages you manage\n• read your Page's content and "
    "engagement\n• find Pages that belong to a business portfolio (Meta Business Suite)\n\n"
    "Facebook requires them for reading your Instagram data; Brandly cannot change their "
    "wording or number. <b>Please allow all of them</b>: if you switch one off, the connection "
    "cannot work.\n\nWhen Facebook asks which Pages to share, <b>select the Page linked to "
    "@{handle}</b>. If it asks which Instagram accounts to share, select <b>@{handle}</b>.\n\n"
    "The login button is valid for 30 minutes. As soon as you have logged in, I tell you here "
    "whether it worked."
)
NEXT = {"public": "linked", "linked": "login"}


def _question(step: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("✅ Yes", callback_data=f"c1:y:123:{step}"),
                InlineKeyboardButton("❌ No", callback_data=f"c1:n:123:{step}"),
            ],
            [InlineKeyboardButton("❓ How do I check?", callback_data=f"c1:h:123:{step}")],
        ]
    )


def _handle(user_id: int) -> str:
    return f"bench_u{user_id % 100_000:05d}"


def _transport(builder: Any) -> Any:
    """PTB's default transport (httpx), as a minimal bot has it; with BENCH_FLOOR_AIOHTTP=1 the
    product's (`bot.telegram_http`), to see how much of the ratio is the transport."""
    if os.environ.get("BENCH_FLOOR_AIOHTTP") == "1":
        from bot.telegram_http import AiohttpRequest

        return builder.request(AiohttpRequest(connections=64, pool_timeout=10)).get_updates_request(
            AiohttpRequest(connections=1, read_timeout=40)
        )
    return builder.get_updates_read_timeout(40).connection_pool_size(64).pool_timeout(10)


class Floor:
    def __init__(self, dialog_url: str) -> None:
        self.dialog_url = dialog_url
        self.steps: dict[int, str] = {}

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_user is None or update.effective_chat is None:
            return
        user, chat = update.effective_user, update.effective_chat
        self.steps[user.id] = "public"
        text = WELCOME.format(name=user.first_name, handle=_handle(user.id))
        await chat.send_message(text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)
        await chat.send_message(
            QUESTIONS["public"],
            parse_mode=ParseMode.HTML,
            reply_markup=_question("public"),
            disable_web_page_preview=True,
        )

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or update.effective_user is None or update.effective_chat is None:
            return
        await query.answer()
        await query.edit_message_reply_markup(None)
        user, chat = update.effective_user, update.effective_chat
        step = NEXT.get(self.steps.get(user.id, ""), "")
        self.steps[user.id] = step
        handle = _handle(user.id)
        if step in QUESTIONS:
            await chat.send_message(
                QUESTIONS[step].format(handle=handle),
                parse_mode=ParseMode.HTML,
                reply_markup=_question(step),
                disable_web_page_preview=True,
            )
            return
        url = f"{self.dialog_url}/v25.0/dialog/oauth?" + urlencode(
            {"client_id": "1", "state": secrets.token_urlsafe(32), "scope": "instagram_basic"}
        )
        await chat.send_message(
            LOGIN.format(handle=handle),
            parse_mode=ParseMode.HTML,
            reply_markup=InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton("🔐 Log in with Facebook", url=url)],
                    [InlineKeyboardButton("🔄 New login link", callback_data="l:login")],
                ]
            ),
            disable_web_page_preview=True,
        )


def build(token: str, base_url: str, dialog_url: str) -> Application:  # type: ignore[type-arg]
    # Keep in step with ConnectBot.__init__ in bot/app.py.
    application = (
        _transport(ApplicationBuilder().token(token).base_url(base_url))
        # As many at once as the product (bot/updates.py), without its per-person order: the
        # simulated people never tap before the answer arrives.
        .concurrent_updates(8)
        .build()
    )
    floor = Floor(dialog_url)
    application.add_handler(CommandHandler("start", floor.start))
    application.add_handler(CallbackQueryHandler(floor.press))
    return application


async def run() -> None:
    application = build(
        os.environ["TELEGRAM_BOT_TOKEN"],
        os.environ["TELEGRAM_BASE_URL"],
        os.environ.get("FACEBOOK_DIALOG_URL", "https://www.facebook.com"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(
            allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY]
        )
        log.info("ready: floor bot polling")
        await stop.wait()
        await application.updater.stop()
        await application.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
