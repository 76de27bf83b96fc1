"""`python -m bot` / `connect-bot`: run the bot and the callback server."""

from __future__ import annotations

import asyncio
import sys

from telegram.error import InvalidToken, NetworkError

from bot.config import ConfigError, load_settings
from bot.logs import setup_logging


def main() -> None:
    try:
        settings = load_settings()
        settings.require_real_credentials()
    except ConfigError as exc:
        sys.exit(f"connect-bot: {exc}. See .env.example.")
    secrets = [
        s.get_secret_value()
        for s in (
            settings.telegram_bot_token,
            settings.facebook_app_secret,
            settings.token_encryption_keys,
        )
        if s is not None
    ]
    setup_logging(settings.log_level, secrets)

    from bot.app import run  # after logging is set up: importing PTB may log

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except InvalidToken:
        sys.exit("connect-bot: TELEGRAM_BOT_TOKEN was rejected by Telegram.")
    except NetworkError as exc:
        sys.exit(f"connect-bot: cannot reach Telegram at TELEGRAM_BASE_URL ({type(exc).__name__}).")
    except OSError as exc:
        sys.exit(f"connect-bot: {exc.strerror or exc} (check DATABASE_URL, HTTP_HOST, HTTP_PORT).")
    except ValueError as exc:
        sys.exit(f"connect-bot: {exc}")


if __name__ == "__main__":
    main()
