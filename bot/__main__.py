"""`python -m bot` / `connect-bot`: run the bot and the callback server.

With nothing configured (no TELEGRAM_BOT_TOKEN, no Meta app) it starts the playground instead: the
same bot against local stand-ins of Telegram and Facebook, used from a browser. The playground and
the stand-ins are top-level packages of the source tree (`playground`, `sandbox`), not part of the
installed package: only `_run_playground` imports them, and only when nothing is configured.
"""

from __future__ import annotations

import asyncio
import sys

from telegram.error import InvalidToken, NetworkError

from bot.config import ConfigError, Settings, load_settings
from bot.logs import secrets_of, setup_logging


def main() -> None:
    try:
        settings = load_settings()
        configured = bool(settings.configured_credentials())
        if configured:
            settings.require_real_credentials()
    except ConfigError as exc:
        sys.exit(f"connect-bot: {exc}. See .env.example.")
    if not configured:
        _run_playground(settings)
        return
    setup_logging(settings.log_level, secrets_of(settings))

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


def _run_playground(settings: Settings) -> None:
    """Nothing configured: the playground, if this is the source tree (`make run` runs
    `python -m bot` from its root). An installed `connect-bot` has no playground: one line."""
    try:
        from playground.config import load_playground_settings
    except ModuleNotFoundError as exc:
        if exc.name not in ("playground", "sandbox"):
            raise
        sys.exit(
            "connect-bot: TELEGRAM_BOT_TOKEN, FACEBOOK_APP_ID and FACEBOOK_APP_SECRET are not set "
            "(see .env.example); the playground runs only from the source tree: make run."
        )
    try:
        options = load_playground_settings()
    except ConfigError as exc:
        sys.exit(f"connect-bot: {exc}. See .env.example.")
    # The terminal shows the one line with the address, then only warnings and errors: the
    # routine INFO lines (migrations, "ready", verdicts) would bury it. DEBUG shows everything.
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    setup_logging(level, secrets_of(settings))

    # After logging is set up: importing PTB may log.
    from playground.composition import run_playground

    try:
        asyncio.run(
            run_playground(settings, options, announce=lambda line: print(line, flush=True))
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.exit(
            f"connect-bot: {exc.strerror or exc} "
            "(check PLAYGROUND_HOST, PLAYGROUND_PORT, HTTP_HOST, HTTP_PORT)."
        )


if __name__ == "__main__":
    main()
