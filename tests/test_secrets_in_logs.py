"""No secret in any log line or page: the product runs a successful connection, a declined one, a
forged callback and a replay with the root logger at DEBUG (httpx and httpcore included), through
the formatter `bot.logs.setup_logging` installs, and the captured output is searched for every
secret the run produced."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.logs import LOG_FORMAT, RedactingFormatter, redact, secrets_of, setup_logging
from sandbox.facebook import Consent, IgAccount
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook, close_world, make_world

_NOISY = ("httpx", "httpcore", "apscheduler", "aiohttp.access")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """A buffer for the real handler of `setup_logging`; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in _NOISY}
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


def _states(world: World) -> set[str]:
    """Every OAuth state the bot put into a login button: from what it sent, since a login
    message loses its buttons once the invitation is connected."""
    found = set()
    for method in ("sendMessage", "editMessageText", "editMessageReplyMarkup"):
        for params in world.telegram.calls(method):
            markup = params.get("reply_markup") or {}
            if isinstance(markup, str):
                markup = json.loads(markup)
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    url = str(button.get("url", ""))
                    found.update(parse_qs(urlsplit(url).query).get("state", []))
    return found


def _invite_tokens(world: World) -> set[str]:
    found = set()
    for message in world.telegram.messages(MANAGER.id, include_deleted=True):
        for word in message.text.split():
            if "t.me/" in word:
                found.update(parse_qs(urlsplit(word).query).get("start", []))
    return found


def _graph_secrets(world: World) -> set[str]:
    """Tokens, codes and proofs that went over the wire to the Graph stand-in."""
    found = set(world.graph.issued_tokens()) | set(world.graph.issued_codes())
    for _method, _path, query in world.graph.requests:
        for name in (
            "access_token",
            "input_token",
            "fb_exchange_token",
            "client_secret",
            "appsecret_proof",
            "code",
        ):
            value = query.get(name)
            if value:
                found.add(str(value))
    return found


async def _run_scenarios(world: World) -> tuple[list[httpx.Response], set[str]]:
    """The four stories; returns the pages the browser saw and the values a forger invented."""
    pages: list[httpx.Response] = []

    # 1. Anna connects.
    token = await world.invite("@anna.bakes")

    await world.through_checks(ANNA, token)
    world.graph.set_person(anna_on_facebook(), None)
    dialog = await world.browser.get(world.login_url(ANNA))
    callback = dialog.headers["location"]
    pages.append(await world.browser.get(callback))
    await world.telegram.wait_for(ANNA.id, "Connected!")

    # 2. Ben declines a permission.
    ben_token = await world.invite("@ben.cooks")
    await world.through_checks(BEN, ben_token)
    ben = anna_on_facebook(instagram=IgAccount(id="ig-200", username="ben.cooks"))
    pages.append(
        await world.facebook_login(BEN, ben, Consent(declined={"instagram_manage_insights"}))
    )
    await world.telegram.wait_for(MANAGER.id, "did not work")

    # 3. A forged callback with a state and code nobody issued.
    forged_state, forged_code = secrets.token_urlsafe(32), "AQ" + secrets.token_urlsafe(40)
    base = f"{world.settings.public_url}/oauth/callback"
    pages.append(await world.browser.get(base, params={"state": forged_state, "code": forged_code}))
    short_state, short_code = "s" + secrets.token_hex(6), "c" + secrets.token_hex(6)
    pages.append(await world.browser.get(base, params={"state": short_state, "code": short_code}))

    # 4. Anna's redirect replayed.
    pages.append(await world.browser.get(callback))
    await world.settle()

    assert [p.status_code for p in pages] == [200, 200, 400, 400, 409]
    return pages, {forged_state, forged_code, short_state, short_code}


@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_no_secret_in_logs_or_pages(
    database_url: str,
    log_stream: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    webhook: bool,
) -> None:
    # Two keys (rotation) and, in webhook mode, a secret short enough to escape every pattern
    # for "long opaque values": only the configured list can catch it.
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    extra: dict[str, object] = {"token_encryption_keys": SecretStr(",".join(keys))}
    if webhook:
        extra["telegram_webhook_secret"] = SecretStr("hook-" + secrets.token_hex(4))
    world = await make_world(database_url, webhook=webhook, **extra)
    configured = secrets_of(world.settings)
    # What `python -m bot` does, with the output kept; then even the loggers it quiets speak.
    setup_logging("DEBUG", configured, stream=log_stream)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the root's handlers
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        await world.restart()  # start-up (setWebhook, menus) once more, now under capture
        pages, forged = await _run_scenarios(world)
    finally:
        await close_world(world)

    hook_secret = world.settings.telegram_webhook_secret
    secret_values = {
        "bot token": {world.telegram.token, world.telegram.token.split(":", 1)[1]},
        "app secret": {world.graph.app_secret},
        "Fernet key": set(keys),
        "webhook secret": {hook_secret.get_secret_value()} if hook_secret else set(),
        "Graph token, code or proof": _graph_secrets(world),
        "OAuth state": _states(world),
        "invitation token": _invite_tokens(world),
        "forged state or code": forged,
    }
    assert len(secret_values["OAuth state"]) >= 2 and len(secret_values["invitation token"]) == 2
    assert world.graph.issued_tokens() and world.graph.issued_codes()
    if webhook:
        assert secret_values["webhook secret"]

    output = log_stream.getvalue()
    formatter = RedactingFormatter(LOG_FORMAT, configured)
    caplog_output = "\n".join(formatter.format(r) for r in caplog.get_records("call"))
    raw_output = "\n".join(r.getMessage() for r in caplog.get_records("call"))
    assert output.count("\n") > 100 and "DEBUG telegram" in output  # PTB really spoke
    assert "HTTP Request:" in output  # and httpx logged its URLs

    leaks = []
    raw_hits = 0
    for kind, values in secret_values.items():
        for value in values:
            if value in output or value in caplog_output:
                leaks.append(f"{kind} in the log")
            if any(value in page.text or value in str(page.headers) for page in pages):
                leaks.append(f"{kind} in a page")
            raw_hits += value in raw_output
    print(
        f"\n[secrets-in-logs {'webhook' if webhook else 'polling'}] "
        f"{output.count(chr(10))} log lines, {sum(map(len, secret_values.values()))} secret "
        f"values searched, {len(leaks)} leaks; {raw_hits} of them occur in unformatted records "
        "(the formatter removes them)"
    )
    assert leaks == [], sorted(set(leaks))


def test_redact_without_configured_secrets() -> None:
    """The patterns alone catch what PTB and httpx print, whatever the caller passes."""
    ptb = (
        "Calling Bot API endpoint `setWebhook` with parameters `{'url': 'https://bot.example/"
        "telegram/webhook', 'secret_token': 'hook-1', 'max_connections': 40}`"
    )
    assert "hook-1" not in redact(ptb) and "max_connections': 40" in redact(ptb)
    assert "abc" not in redact('{"code": "abc", "state": "abc"}')
    url = "GET https://graph.example/oauth/access_token?code=abc&client_secret=def&x=1"
    assert redact(url).endswith("code=[redacted]&client_secret=[redacted]&x=1")
    deep_link = "https://t.me/bot?start=-" + "a" * 42
    assert "a" * 20 not in redact(deep_link)
    assert redact("k1,k2 and k2", ["k1,k2"]) == "[redacted] and [redacted]"
    real_token = "7012345678:AAH" + "x" * 32
    assert redact(f"POST https://api.telegram.org/bot{real_token}/getMe") == (
        "POST https://api.telegram.org/bot[redacted]/getMe"
    )
