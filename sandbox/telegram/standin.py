"""The stand-in itself: the HTTP server and its routes, the people's actions, the methods the
bot calls, and the delivery of updates (long polling and webhook)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from telegram.constants import (
    BotCommandLimit,
    CallbackQueryLimit,
    FileSizeLimit,
    InlineKeyboardButtonLimit,
    MessageLimit,
    PollingLimit,
)

from .errors import ApiError, bad_request, webhook_conflict
from .html import HtmlParseError, parse_html, strip_formatted
from .limits import SlidingWindow
from .menus import COMMAND_RE, COMMAND_SCOPES, CommandMenus, scope_key
from .model import (
    Fault,
    JsonDict,
    PendingCallback,
    SentMessage,
    StoredFile,
    TgUser,
    Upload,
    WebhookDelivery,
)
from .wire import BUTTON_ACTIONS, CHAT_ACTIONS, IMAGE_MAGIC, Handler, decode_param

# How long the bot must stay silent before wait_idle() believes it has finished reacting.
_IDLE_QUIET_SECONDS = 0.15
# Telegram stops accepting answerCallbackQuery some seconds after the press (not documented
# precisely; clients give up after about 15 s).
_CALLBACK_ANSWER_SECONDS = 15.0
# setWebhook's secret_token rule and max_connections range (Bot API).
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WEBHOOK_MAX_CONNECTIONS = (1, 100)
_WEBHOOK_DEFAULT_CONNECTIONS = 40
# Telegram's own delivery timeout is not documented; a webhook that does not answer within it
# counts as failed and the update is delivered again.
_WEBHOOK_TIMEOUT_SECONDS = 10.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _update_chat(update: JsonDict) -> int:
    """The private chat an update belongs to (the sender's id), for in-order delivery per chat."""
    for value in update.values():
        if isinstance(value, dict):
            sender = value.get("from") or value.get("chat") or {}
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return 0


_DEFAULT_UPDATE_TYPES_EXCLUDED = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
_FIRST_UPDATE_ID = 700_000_001


class TelegramStandin:
    """The Bot API for one bot, plus the people who talk to it."""

    def __init__(
        self,
        token: str = "123456:TEST-token_abc",
        *,
        bot_id: int | None = None,
        bot_username: str = "connect_test_bot",
        bot_first_name: str = "Connect Bot",
    ) -> None:
        self.token = token
        prefix = token.split(":", 1)[0]
        # A bot's id is the number in front of its token; keep them consistent by default.
        self.bot_id = bot_id if bot_id is not None else (int(prefix) if prefix.isdigit() else 1)
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name

        self.requests: list[tuple[str, JsonDict]] = []
        self.callback_answers: list[JsonDict] = []
        # setMyCommands by scope: "default", or the scope's JSON (see CommandMenus).
        self.commands: dict[str, list[JsonDict]] = CommandMenus()
        self.rate_limited_count = 0
        self.internal_errors: list[BaseException] = []

        self._runner: web.AppRunner | None = None
        self._port = 0
        self._closing = False

        self._users: dict[int, TgUser] = {}
        self._groups: dict[int, str] = {}  # group chat id → title
        self._supergroups: set[int] = set()
        self._left_groups: set[int] = set()  # the bot was removed, or the group deleted
        self._migrated: dict[int, int] = {}  # old group id → its supergroup's id
        self._blocked: set[int] = set()
        self._messages: dict[int, list[SentMessage]] = {}
        self._user_message_ids: dict[int, set[int]] = {}
        self._next_message_id: dict[int, int] = {}
        self._chat_instances: dict[int, str] = {}
        self._callbacks: dict[str, PendingCallback] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}

        self._updates: list[JsonDict] = []
        self.updates_dropped = 0
        self._next_update_id = _FIRST_UPDATE_ID  # real update ids are large and only increase
        self._allowed_updates: list[str] | None = None
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = _WEBHOOK_DEFAULT_CONNECTIONS
        self._webhook_session: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_posts: set[asyncio.Task[None]] = set()
        self._webhook_busy_chats: set[int] = set()
        self._webhook_sending: set[int] = set()  # update ids being delivered right now
        self._webhook_last_error: tuple[int, str] | None = None
        self._duplicates_left = 0
        self._duplicate_concurrently = False
        # Every POST to the webhook, in order (tests assert retries and duplicates with it).
        self.webhook_deliveries: list[WebhookDelivery] = []
        # Backoff after a failed delivery: doubles per attempt up to the maximum. Telegram waits
        # far longer; tests want seconds, not minutes.
        self.webhook_retry_delay = 0.05
        self.webhook_retry_max_delay = 0.5
        self._poll_generation = 0
        self._updates_changed = asyncio.Event()
        self._messages_changed = asyncio.Event()

        self._in_flight = 0
        self._last_activity = 0.0
        self._last_delivery = 0.0

        self._faults: dict[str, list[Fault]] = {}
        self._global_window: SlidingWindow | None = None
        self._chat_rate: float | None = None
        self._chat_windows: dict[int, SlidingWindow] = {}

        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getmycommands": self._get_my_commands,
            "setmydescription": self._true,
            "setmyshortdescription": self._true,
            "setmyname": self._true,
            "setchatmenubutton": self._true,
            "getchat": self._get_chat,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=FileSizeLimit.FILESIZE_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True
        self._wake_pollers()  # a pending long poll answers at once instead of holding shutdown
        await self._stop_webhook_delivery()
        if self._webhook_session is not None:
            await self._webhook_session.close()
            self._webhook_session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: PTB appends the token."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``: PTB appends the token."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    # -- acting as people -----------------------------------------------------------------------

    def send_text(self, user: TgUser, text: str) -> None:
        """``user`` writes ``text`` in their private chat with the bot."""
        self._note_user(user)
        message = self._user_message(user)
        message["text"] = text
        match = re.match(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_/<>])", text)
        if match:
            # Telegram marks the command; PTB's CommandHandler looks for exactly this entity.
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": match.end()}]
        self._enqueue({"message": message})

    def send_group_text(self, user: TgUser, group_id: int, title: str, text: str) -> None:
        """``user`` writes ``text`` in a group (negative id) the bot is a member of."""
        self._note_user(user)
        self._groups[group_id] = title
        message = self._user_message(user)
        message["chat"] = self._chat_json(group_id)
        message["text"] = text
        match = re.match(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_/<>])", text)
        if match:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": match.end()}]
        self._enqueue({"message": message})

    def remove_bot_from_group(self, group_id: int) -> None:
        """The bot is removed from the group (or the group is deleted): sends there fail with
        403, as Telegram answers."""
        self._left_groups.add(group_id)

    def upgrade_group(self, group_id: int, supergroup_id: int) -> None:
        """The group becomes a supergroup with a new id (-100…): sends to the old id fail with
        400 and ``parameters.migrate_to_chat_id``, as Telegram answers; the new id works."""
        title = self._groups.get(group_id, "Group")
        self._migrated[group_id] = supergroup_id
        self._groups[supergroup_id] = title
        self._supergroups.add(supergroup_id)

    def send_document(
        self, user: TgUser, filename: str, content: bytes, caption: str | None = None
    ) -> None:
        """``user`` sends a file; the bot can fetch it with getFile and download it."""
        self._note_user(user)
        stored = self._store_file(content, filename, "documents")
        message = self._user_message(user)
        message["document"] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": filename,
            "mime_type": stored.mime_type,
            "file_size": len(content),
        }
        if caption is not None:
            message["caption"] = caption
        self._enqueue({"message": message})

    def press(self, user: TgUser, message: SentMessage, label_contains: str) -> None:
        """``user`` presses the inline button labelled ``label_contains`` under ``message``."""
        current = self._find_message(message.chat_id, message.message_id)
        if current is None or current.deleted:
            raise AssertionError(f"message {message.message_id} is gone; nothing to press")
        if current.chat_id != user.id:
            raise AssertionError(f"message {message.message_id} is not in {user.first_name}'s chat")
        button = current.button(label_contains)
        if "callback_data" not in button:
            raise AssertionError(
                f"button {button.get('text')!r} has no callback_data (it is {button}); "
                "a URL button opens a browser and never reaches the bot"
            )
        self.press_data(user, current.message_id, str(button["callback_data"]))

    def press_data(self, user: TgUser, message_id: int, data: str) -> str:
        """A callback query with arbitrary data, as a modified or outdated client could send.
        Returns its id, which the bot's answerCallbackQuery names."""
        self._note_user(user)
        query_id = str(secrets.randbits(63))
        self._callbacks[query_id] = PendingCallback(user.id, time.monotonic())
        current = self._find_message(user.id, message_id)
        if current is not None and not current.deleted:
            shown: JsonDict = self._message_json(current)
        else:
            # Bot API 7.0: a message the bot can no longer see arrives as InaccessibleMessage.
            shown = {"chat": self._chat_json(user.id), "message_id": message_id, "date": 0}
        self._enqueue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.to_json(),
                    "message": shown,
                    "chat_instance": self._chat_instance(user.id),
                    "data": data,
                }
            }
        )
        return query_id

    def block(self, user_id: int) -> None:
        """The person blocks the bot: further sends to them fail with 403."""
        self._blocked.add(user_id)
        if user_id in self._users:
            self._enqueue({"my_chat_member": self._member_change(user_id, "member", "kicked")})

    # -- observing ------------------------------------------------------------------------------

    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[SentMessage]:
        return [m for m in self._messages.get(chat_id, []) if include_deleted or not m.deleted]

    def last_message(self, chat_id: int) -> SentMessage:
        messages = self.messages(chat_id)
        if not messages:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return messages[-1]

    def calls(self, method: str) -> list[JsonDict]:
        """Parameters of every call of ``method`` (case-insensitive), in order."""
        return [params for name, params in self.requests if name.lower() == method.lower()]

    def commands_for(
        self, scope: JsonDict | None = None, language_code: str = ""
    ) -> list[JsonDict]:
        """The command menu set for a scope, e.g. ``{"type": "chat", "chat_id": 42}``."""
        return self.commands.get(scope_key(scope, language_code), [])

    async def wait_for(
        self,
        chat_id: int,
        contains: str,
        *,
        timeout: float = 15.0,  # noqa: ASYNC109 - the tests' vocabulary; a deadline, not a cancel
        edited_ok: bool = True,
    ) -> SentMessage:
        """The latest message in the chat whose text contains ``contains`` (case-insensitive),
        waiting for it to be sent or edited into that. With ``edited_ok=False`` only the text a
        message was first sent with counts."""
        needle = contains.casefold()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._messages_changed
            for message in reversed(self.messages(chat_id)):
                shown = message.text if edited_ok else message.first_text
                if needle in shown.casefold():
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no message in chat {chat_id} contains {contains!r} after {timeout}s. "
                    f"Messages:\n{self.describe_chat(chat_id)}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    @property
    def updates_created(self) -> int:
        """How many updates people have caused so far that the bot asked for (for "has the bot
        handled them all")."""
        return self._next_update_id - _FIRST_UPDATE_ID - self.updates_dropped

    async def wait_idle(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Until the bot fetched every queued update and made no API call for ~150 ms."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = time.monotonic()
            quiet_since = max(self._last_activity, self._last_delivery)
            if (
                not self._updates
                and self._in_flight == 0
                and not self._webhook_posts
                and now - quiet_since >= _IDLE_QUIET_SECONDS
            ):
                return
            if loop.time() >= deadline:
                raise AssertionError(
                    f"bot not idle after {timeout}s: {len(self._updates)} update(s) not yet "
                    f"confirmed by getUpdates, {self._in_flight} API call(s) in flight"
                )
            await asyncio.sleep(0.01)

    def describe_chat(self, chat_id: int) -> str:
        lines = []
        for m in self.messages(chat_id, include_deleted=True):
            labels = [b.get("text") for row in m.buttons for b in row]
            flags = f"{m.kind}{', deleted' if m.deleted else ''}, edits={m.edits}"
            lines.append(f"  #{m.message_id} ({flags}) {m.text!r} buttons={labels}")
        return "\n".join(lines) or "  (none)"

    # -- faults and limits ----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` fail with this answer."""
        self._faults.setdefault(method.lower(), []).append(
            Fault(status, description, retry_after, count)
        )

    def deliver_twice(self, count: int = 1, *, concurrently: bool = False) -> None:
        """Webhook mode: the next ``count`` updates are POSTed twice with the same update_id, the
        way Telegram repeats a delivery whose answer it did not see. ``concurrently`` sends both
        at the same moment (two replicas receiving it at once); otherwise the second follows the
        first's 2xx."""
        self._duplicates_left = count
        self._duplicate_concurrently = concurrently

    def clear_faults(self) -> None:
        """Telegram is healthy again: forget every fault injected with ``fail_next``."""
        self._faults.clear()

    def set_rate_limits(
        self, *, global_per_second: float | None = None, per_chat_per_second: float | None = None
    ) -> None:
        """Enforce flood limits on sends and edits (None: unlimited, the default)."""
        self._global_window = SlidingWindow(global_per_second) if global_per_second else None
        self._chat_rate = per_chat_per_second or None
        self._chat_windows.clear()

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        key = method.lower()
        long_poll = key == "getupdates"
        if not long_poll:
            self._in_flight += 1
        try:
            return await self._answer_api(request, method, key)
        finally:
            if not long_poll:
                self._in_flight -= 1
                self._last_activity = time.monotonic()

    async def _answer_api(self, request: web.Request, method: str, key: str) -> web.Response:
        params: JsonDict = {}
        uploads: dict[str, Upload] = {}
        try:
            try:
                params, uploads = await self._read_params(request)
            finally:
                files = {
                    n: {"filename": u.filename, "size": len(u.content)} for n, u in uploads.items()
                }
                self.requests.append((method, {**params, **files}))
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._methods.get(key)
            if handler is None:
                raise ApiError(404, "Not Found")
            self._raise_injected_fault(key)
            result = await handler(params, uploads)
            return web.json_response({"ok": True, "result": result})
        except ApiError as error:
            body: JsonDict = {
                "ok": False,
                "error_code": error.status,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            if error.migrate_to_chat_id is not None:
                body["parameters"] = {"migrate_to_chat_id": error.migrate_to_chat_id}
            return web.json_response(body, status=error.status)
        except Exception as error:  # a stand-in bug: make it visible rather than hang the bot
            self.internal_errors.append(error)
            body = {"ok": False, "error_code": 500, "description": f"stand-in error: {error!r}"}
            return web.json_response(body, status=500)

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, dict[str, Upload]]:
        raw: JsonDict = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.content_type == "application/json" and request.can_read_body:
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("parameters must be a JSON object")
            raw.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[name] = Upload(value.filename, value.file.read(), value.content_type)
                else:
                    raw[name] = value
        return {name: decode_param(name, value) for name, value in raw.items()}, uploads

    @staticmethod
    async def _not_found(request: web.Request) -> web.Response:
        # Telegram answers any other path with the usual envelope, not an HTML page.
        body = {"ok": False, "error_code": 404, "description": "Not Found"}
        return web.json_response(body, status=404)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.Response(body=stored.content, content_type="application/octet-stream")

    def _raise_injected_fault(self, key: str) -> None:
        faults = self._faults.get(key)
        if not faults:
            return
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.pop(0)
        raise ApiError(fault.status, fault.description, fault.retry_after)

    # -- updates --------------------------------------------------------------------------------

    def _enqueue(self, update: JsonDict) -> None:
        self._updates.append({"update_id": self._next_update_id, **update})
        self._next_update_id += 1
        self._wake_pollers()

    def _wake_pollers(self) -> None:
        self._updates_changed.set()
        self._updates_changed = asyncio.Event()

    def _update_allowed(self, update: JsonDict) -> bool:
        kind = next(key for key in update if key != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _DEFAULT_UPDATE_TYPES_EXCLUDED

    async def _get_updates(self, params: JsonDict, _: dict[str, Upload]) -> list[JsonDict]:
        if self._webhook_url:
            raise webhook_conflict()
        offset = int(params.get("offset", 0))
        limit = min(
            max(int(params.get("limit", 100)), PollingLimit.MIN_LIMIT), PollingLimit.MAX_LIMIT
        )
        timeout = max(float(params.get("timeout", 0)), 0.0)
        if "allowed_updates" in params:
            # Telegram remembers the last list; an empty list means "the default set".
            self._allowed_updates = list(params["allowed_updates"] or []) or None
        if offset > 0:
            # Asking from `offset` confirms everything before it: those are gone for good.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        # Types the bot did not ask for are never delivered, and not kept either.
        kept = [u for u in self._updates if self._update_allowed(u)]
        self.updates_dropped += len(self._updates) - len(kept)
        self._updates = kept

        # Only one getUpdates may wait at a time: a newer one ends the older with 409.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._updates_changed
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self._webhook_url:
                raise webhook_conflict()  # set while this request was waiting
            # Types the bot did not ask for are dropped as they arrive, as Telegram does.
            kept = [u for u in self._updates if self._update_allowed(u)]
            self.updates_dropped += len(self._updates) - len(kept)
            self._updates = kept
            batch = kept[:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        if batch:
            self._last_delivery = time.monotonic()
        return batch

    async def _set_webhook(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        url = str(params.get("url", ""))
        parts = urlsplit(url)
        # Telegram only delivers to HTTPS endpoints; the stand-in also reaches plain http on
        # loopback, where the bot under test listens.
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if url and not (parts.scheme == "https" or loopback):
            raise bad_request("bad webhook: HTTPS url must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _WEBHOOK_SECRET_RE.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        connections = params.get("max_connections", _WEBHOOK_DEFAULT_CONNECTIONS)
        if not isinstance(connections, int):
            raise bad_request("invalid max_connections specified")
        low, high = _WEBHOOK_MAX_CONNECTIONS
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"] or []) or None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook_url = url
        self._webhook_secret = str(secret) if secret is not None else None
        self._webhook_max_connections = min(max(connections, low), high)
        self._webhook_last_error = None
        if url:
            self._start_webhook_delivery()
        self._wake_pollers()
        return True

    async def _delete_webhook(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        self._webhook_url = ""
        self._webhook_secret = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._wake_pollers()
        return True

    async def _get_webhook_info(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        info: JsonDict = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    # -- webhook delivery -----------------------------------------------------------------------

    def _start_webhook_delivery(self) -> None:
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_updates())

    async def _stop_webhook_delivery(self) -> None:
        tasks = [t for t in (self._webhook_task, *self._webhook_posts) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._webhook_task = None
        self._webhook_posts.clear()
        self._webhook_busy_chats.clear()
        self._webhook_sending.clear()

    async def _deliver_updates(self) -> None:
        """While a webhook is set: each pending update is POSTed until it is answered with 2xx.
        Updates of one chat go one after another (in order); different chats run side by side
        up to max_connections."""
        while self._webhook_url and not self._closing:
            changed = self._updates_changed
            kept = [u for u in self._updates if self._update_allowed(u)]
            self.updates_dropped += len(self._updates) - len(kept)
            self._updates = kept
            for update in self._updates:
                if len(self._webhook_posts) >= self._webhook_max_connections:
                    break
                chat = _update_chat(update)
                if update["update_id"] in self._webhook_sending or chat in self._webhook_busy_chats:
                    continue
                self._webhook_sending.add(update["update_id"])
                self._webhook_busy_chats.add(chat)
                task = asyncio.create_task(self._deliver_one(update, chat))
                self._webhook_posts.add(task)
                task.add_done_callback(self._webhook_posts.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 1.0)

    async def _deliver_one(self, update: JsonDict, chat: int) -> None:
        url = self._webhook_url
        update_id = update["update_id"]
        duplicate = False
        try:
            attempt = 0
            while self._webhook_url == url and not self._closing:
                attempt += 1
                if self._duplicates_left > 0 and self._duplicate_concurrently:
                    self._duplicates_left -= 1
                    statuses = await asyncio.gather(
                        self._post_update(url, update, attempt),
                        self._post_update(url, update, attempt, duplicate=True),
                    )
                    ok = any(_is_2xx(status) for status in statuses)
                else:
                    ok = _is_2xx(await self._post_update(url, update, attempt))
                    if ok and self._duplicates_left > 0:
                        self._duplicates_left -= 1
                        duplicate = True
                if ok:
                    self._updates = [u for u in self._updates if u["update_id"] != update_id]
                    self._last_delivery = time.monotonic()
                    break
                delay = self.webhook_retry_delay * 2 ** (attempt - 1)
                await asyncio.sleep(min(delay, self.webhook_retry_max_delay))
            if duplicate:
                # As if Telegram had not seen the 2xx in time: the same update once more.
                await self._post_update(url, update, attempt, duplicate=True)
        finally:
            self._webhook_sending.discard(update_id)
            self._webhook_busy_chats.discard(chat)
            self._wake_pollers()  # the delivery loop looks again

    async def _post_update(
        self, url: str, update: JsonDict, attempt: int, *, duplicate: bool = False
    ) -> int | None:
        if self._webhook_session is None:
            self._webhook_session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_WEBHOOK_TIMEOUT_SECONDS)
            )
        headers = {"Content-Type": "application/json"}
        if self._webhook_secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self._webhook_secret
        status: int | None = None
        try:
            async with self._webhook_session.post(
                url, data=json.dumps(update), headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self._webhook_last_error = (int(time.time()), f"Connection failed: {error!r}")
        else:
            if not _is_2xx(status):
                self._webhook_last_error = (
                    int(time.time()),
                    f"Wrong response from the webhook: {status}",
                )
        self.webhook_deliveries.append(
            WebhookDelivery(update["update_id"], attempt, status, duplicate)
        )
        self._last_delivery = time.monotonic()
        return status

    # -- bot and commands -----------------------------------------------------------------------

    def _bot_json(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    async def _true(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        return True

    async def _get_me(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        return {
            **self._bot_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _command_scope(self, params: JsonDict) -> str:
        scope = params.get("scope")
        if scope is not None:
            if not isinstance(scope, dict) or scope.get("type") not in COMMAND_SCOPES:
                raise bad_request("wrong scope type specified")
            if "chat_id" in scope and int(scope["chat_id"]) not in self._users:
                # A per-chat menu needs a chat the bot knows: one that started it.
                raise bad_request("chat not found")
        return scope_key(scope, str(params.get("language_code", "")))

    async def _set_my_commands(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > BotCommandLimit.MAX_COMMAND_NUMBER:
            raise bad_request("too many commands")
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not (
                BotCommandLimit.MIN_COMMAND <= len(name) <= BotCommandLimit.MAX_COMMAND
                and COMMAND_RE.fullmatch(name)
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= BotCommandLimit.MAX_DESCRIPTION:
                raise bad_request("command description is empty")
        key = self._command_scope(params)
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _delete_my_commands(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        self.commands.pop(self._command_scope(params), None)
        return True

    async def _get_my_commands(self, params: JsonDict, _: dict[str, Upload]) -> list[JsonDict]:
        return self.commands.get(self._command_scope(params), [])

    async def _get_chat(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self._users:
            raise bad_request("chat not found")
        return {**self._chat_json(chat_id), "accent_color_id": 0, "max_reaction_count": 11}

    # -- sending --------------------------------------------------------------------------------

    def _target_chat(self, params: JsonDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        if chat_id in self._left_groups:
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self._migrated[chat_id],
            )
        if chat_id in self._groups:
            return chat_id
        if chat_id not in self._users:
            # Telegram cannot tell us apart from "never started": a bot may not write first.
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _take_flood_quota(self, chat_id: int) -> None:
        now = time.monotonic()
        chat_window = None
        if self._chat_rate:
            chat_window = self._chat_windows.setdefault(chat_id, SlidingWindow(self._chat_rate))
        for window in (self._global_window, chat_window):
            if window is None:
                continue
            wait = window.retry_after(now)
            if wait is not None:
                self.rate_limited_count += 1
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        for window in (self._global_window, chat_window):
            if window is not None:
                window.accept(now)

    def _formatted(
        self, params: JsonDict, text_key: str, entities_key: str, limit: int, too_long: str
    ) -> tuple[str, str, list[JsonDict], str | None]:
        """(raw, plain, entities, parse_mode) for a text or caption, validated like Telegram."""
        raw = str(params.get(text_key, ""))
        parse_mode = params.get("parse_mode") or None
        if parse_mode is None:
            plain, entities = raw, list(params.get(entities_key) or [])
        elif str(parse_mode).lower() == "html":
            try:
                plain, entities = parse_html(raw)
            except HtmlParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        elif str(parse_mode).lower() in ("markdown", "markdownv2"):
            raise bad_request(
                f"parse_mode {parse_mode} is valid for Telegram but not implemented by the "
                "stand-in; the project sends HTML"
            )
        else:
            raise bad_request(f"unsupported parse_mode {parse_mode}")
        plain, entities = strip_formatted(plain, entities)
        if len(plain) > limit:
            raise bad_request(too_long)
        return raw, plain, entities, parse_mode

    def _message_text(self, params: JsonDict) -> tuple[str, str, list[JsonDict], str | None]:
        raw, plain, entities, parse_mode = self._formatted(
            params, "text", "entities", MessageLimit.MAX_TEXT_LENGTH, "message is too long"
        )
        if not plain:
            raise bad_request("message text is empty")
        return raw, plain, entities, parse_mode

    def _caption(self, params: JsonDict) -> tuple[str, str, list[JsonDict], str | None]:
        return self._formatted(
            params,
            "caption",
            "caption_entities",
            MessageLimit.CAPTION_LENGTH,
            "message caption is too long",
        )

    @staticmethod
    def _keyboard(markup: Any) -> list[list[JsonDict]]:
        """The inline keyboard rows of ``reply_markup``, validated like Telegram."""
        if markup is None:
            return []
        if not isinstance(markup, dict):
            raise bad_request("object expected as reply markup")
        if "inline_keyboard" not in markup:
            if {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
                return []  # reply keyboards live in the client, not on the message
            raise bad_request("can't parse reply keyboard markup JSON object")
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'can\'t parse inline keyboard button: field "inline_keyboard" '
                "of the InlineKeyboardMarkup must be an Array of Arrays"
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("can't parse inline keyboard button: Text is empty")
                if "callback_data" in button:
                    data = button["callback_data"]
                    size = len(str(data).encode())
                    # The limit is in bytes: 64 Cyrillic or emoji characters do not fit.
                    if not (
                        InlineKeyboardButtonLimit.MIN_CALLBACK_DATA
                        <= size
                        <= InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
                    ):
                        raise bad_request("BUTTON_DATA_INVALID")
                elif "url" in button:
                    url = str(button["url"])
                    # Real Telegram also refuses localhost and bare IPs ("Wrong HTTP URL"); the
                    # stand-in lets loopback through so tests can follow login links.
                    if urlsplit(url).scheme not in ("http", "https", "tg") or not (
                        urlsplit(url).netloc or url.startswith("tg:")
                    ):
                        raise bad_request(
                            f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                        )
                elif not BUTTON_ACTIONS & button.keys():
                    raise bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
        return [[dict(button) for button in row] for row in rows if row]

    def _new_message_id(self, chat_id: int) -> int:
        # In a private chat both sides share one increasing sequence of message ids.
        next_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = next_id + 1
        return next_id

    def _record(self, message: SentMessage) -> JsonDict:
        message.date = int(time.time())
        message.first_text = message.text
        self._messages.setdefault(message.chat_id, []).append(message)
        self._changed()
        return self._message_json(message)

    def _changed(self) -> None:
        self._messages_changed.set()
        self._messages_changed = asyncio.Event()

    def _check_reply_target(self, chat_id: int, params: JsonDict) -> None:
        reply = params.get("reply_parameters")
        if reply is None and "reply_to_message_id" in params:
            reply = {"message_id": params["reply_to_message_id"]}
        if not isinstance(reply, dict):
            return
        message_id = reply.get("message_id")
        shown = self._find_message(chat_id, message_id) if isinstance(message_id, int) else None
        if message_id in self._user_message_ids.get(chat_id, set()) or (
            shown is not None and not shown.deleted
        ):
            return
        if not (
            reply.get("allow_sending_without_reply") or params.get("allow_sending_without_reply")
        ):
            raise bad_request("message to be replied not found")

    async def _send_message(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        chat_id = self._target_chat(params)
        self._check_reply_target(chat_id, params)
        raw, plain, entities, parse_mode = self._message_text(params)
        buttons = self._keyboard(params.get("reply_markup"))
        self._take_flood_quota(chat_id)
        return self._record(
            SentMessage(
                message_id=self._new_message_id(chat_id),
                chat_id=chat_id,
                text=plain,
                html=raw,
                buttons=buttons,
                entities=entities,
                parse_mode=parse_mode,
                reply_markup=params.get("reply_markup"),
            )
        )

    async def _send_media(
        self, params: JsonDict, uploads: dict[str, Upload], kind: str
    ) -> JsonDict:
        chat_id = self._target_chat(params)
        self._check_reply_target(chat_id, params)
        raw, plain, entities, parse_mode = self._caption(params)
        buttons = self._keyboard(params.get("reply_markup"))
        upload = self._media_payload(params, uploads, kind)
        if kind == "photo":
            if (
                upload.content
                and not upload.content.startswith(IMAGE_MAGIC)
                and not (upload.content[:4] == b"RIFF" and upload.content[8:12] == b"WEBP")
            ):
                raise bad_request("IMAGE_PROCESS_FAILED")
            if len(upload.content) > FileSizeLimit.PHOTOSIZE_UPLOAD:
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
        self._take_flood_quota(chat_id)
        stored = self._store_file(upload.content, upload.filename, f"{kind}s", upload.content_type)
        return self._record(
            SentMessage(
                message_id=self._new_message_id(chat_id),
                chat_id=chat_id,
                text=plain,
                html=raw,
                buttons=buttons,
                kind=kind,
                document_name=upload.filename,
                document_bytes=upload.content,
                entities=entities,
                parse_mode=parse_mode,
                reply_markup=params.get("reply_markup"),
                file_id=stored.file_id,
            )
        )

    def _media_payload(self, params: JsonDict, uploads: dict[str, Upload], kind: str) -> Upload:
        if kind in uploads:
            return uploads[kind]
        value = params.get(kind)
        if not value:
            raise bad_request(f"there is no {kind} in the request")
        value = str(value)
        if value.startswith("attach://") and value.removeprefix("attach://") in uploads:
            return uploads[value.removeprefix("attach://")]
        if value in self._files:  # re-sending by file_id
            stored = self._files[value]
            return Upload(stored.file_name, stored.content, stored.mime_type)
        if value.startswith(("http://", "https://")):
            name = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
            return Upload(name, b"", mimetypes.guess_type(name)[0] or "application/octet-stream")
        raise bad_request("wrong file identifier/HTTP URL specified")

    async def _send_photo(self, params: JsonDict, uploads: dict[str, Upload]) -> JsonDict:
        return await self._send_media(params, uploads, "photo")

    async def _send_document(self, params: JsonDict, uploads: dict[str, Upload]) -> JsonDict:
        return await self._send_media(params, uploads, "document")

    async def _send_chat_action(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # -- editing --------------------------------------------------------------------------------

    def _message_to_edit(self, params: JsonDict) -> SentMessage:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # the bot sends no inline-mode messages
        chat_id = params.get("chat_id")
        message_id = params.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            raise bad_request("message to edit not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        message = self._find_message(chat_id, message_id)
        if message is None or message.deleted:
            if message_id in self._user_message_ids.get(chat_id, set()):
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        return message

    @staticmethod
    def _not_modified() -> ApiError:
        return bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )

    def _apply_edit(self, message: SentMessage) -> JsonDict:
        message.edits += 1
        message.edit_date = int(time.time())
        self._changed()
        return self._message_json(message)

    async def _edit_message_text(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        message = self._message_to_edit(params)
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
        raw, plain, entities, parse_mode = self._message_text(params)
        # Leaving reply_markup out of an edit removes the inline keyboard.
        buttons = self._keyboard(params.get("reply_markup"))
        if (plain, entities, buttons) == (message.text, message.entities, message.buttons):
            raise self._not_modified()
        self._take_flood_quota(message.chat_id)
        message.text, message.html, message.entities = plain, raw, entities
        message.parse_mode, message.buttons = parse_mode, buttons
        message.reply_markup = params.get("reply_markup")
        return self._apply_edit(message)

    async def _edit_message_caption(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        message = self._message_to_edit(params)
        if message.kind == "text":
            raise bad_request("there is no caption in the message to edit")
        raw, plain, entities, parse_mode = self._caption(params)
        buttons = self._keyboard(params.get("reply_markup"))
        if (plain, entities, buttons) == (message.text, message.entities, message.buttons):
            raise self._not_modified()
        self._take_flood_quota(message.chat_id)
        message.text, message.html, message.entities = plain, raw, entities
        message.parse_mode, message.buttons = parse_mode, buttons
        message.reply_markup = params.get("reply_markup")
        return self._apply_edit(message)

    async def _edit_message_reply_markup(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        message = self._message_to_edit(params)
        buttons = self._keyboard(params.get("reply_markup"))
        if buttons == message.buttons:
            raise self._not_modified()
        self._take_flood_quota(message.chat_id)
        message.buttons = buttons
        message.reply_markup = params.get("reply_markup")
        return self._apply_edit(message)

    async def _delete_message(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        chat_id = params.get("chat_id")
        message_id = params.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            raise bad_request("message to delete not found")
        user_ids = self._user_message_ids.get(chat_id, set())
        if message_id in user_ids:  # in a private chat the bot may delete the person's messages
            user_ids.discard(message_id)
            return True
        message = self._find_message(chat_id, message_id)
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        message.deleted = True
        self._changed()
        return True

    async def _answer_callback_query(self, params: JsonDict, _: dict[str, Upload]) -> bool:
        self.callback_answers.append(params)
        pending = self._callbacks.get(str(params.get("callback_query_id", "")))
        if (
            pending is None
            or pending.answered
            or time.monotonic() - pending.pressed_at > _CALLBACK_ANSWER_SECONDS
        ):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text", ""))) > CallbackQueryLimit.ANSWER_CALLBACK_QUERY_TEXT_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        pending.answered = True
        return True

    # -- files ----------------------------------------------------------------------------------

    def _store_file(
        self, content: bytes, filename: str, folder: str, mime_type: str | None = None
    ) -> StoredFile:
        number = len(self._files) + 1
        suffix = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        stored = StoredFile(
            file_id="BQACAgIAAxkBAAI" + secrets.token_urlsafe(24),
            file_unique_id="AgAD" + secrets.token_urlsafe(8),
            file_path=f"{folder}/file_{number}.{suffix}",
            content=content,
            file_name=filename,
            mime_type=mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream",
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    async def _get_file(self, params: JsonDict, _: dict[str, Upload]) -> JsonDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > FileSizeLimit.FILESIZE_DOWNLOAD:
            raise bad_request("file is too big")  # bots may download at most 20 MB
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    # -- JSON shapes ----------------------------------------------------------------------------

    def _note_user(self, user: TgUser) -> None:
        if user.id in self._blocked:
            # Writing to a blocked bot means pressing "Restart" first, which unblocks it.
            self._blocked.discard(user.id)
            self._users[user.id] = user
            self._enqueue({"my_chat_member": self._member_change(user.id, "kicked", "member")})
        self._users[user.id] = user

    def _chat_json(self, chat_id: int) -> JsonDict:
        if chat_id in self._groups:
            kind = "supergroup" if chat_id in self._supergroups else "group"
            return {"id": chat_id, "type": kind, "title": self._groups[chat_id]}
        user = self._users.get(chat_id)
        chat: JsonDict = {"id": chat_id, "type": "private"}
        chat["first_name"] = user.first_name if user else "Unknown"
        if user and user.username:
            chat["username"] = user.username
        return chat

    def _chat_instance(self, chat_id: int) -> str:
        return self._chat_instances.setdefault(chat_id, str(-secrets.randbits(62)))

    def _user_message(self, user: TgUser) -> JsonDict:
        message_id = self._new_message_id(user.id)
        self._user_message_ids.setdefault(user.id, set()).add(message_id)
        return {
            "message_id": message_id,
            "from": user.to_json(),
            "chat": self._chat_json(user.id),
            "date": int(time.time()),
        }

    def _member_change(self, user_id: int, old: str, new: str) -> JsonDict:
        def member(status: str) -> JsonDict:
            data: JsonDict = {"status": status, "user": self._bot_json()}
            if status == "kicked":
                data["until_date"] = 0
            return data

        user = self._users[user_id]
        return {
            "chat": self._chat_json(user_id),
            "from": user.to_json(),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }

    def _find_message(self, chat_id: int, message_id: int) -> SentMessage | None:
        for message in self._messages.get(chat_id, []):
            if message.message_id == message_id:
                return message
        return None

    def _message_json(self, message: SentMessage) -> JsonDict:
        data: JsonDict = {
            "message_id": message.message_id,
            "from": self._bot_json(),
            "chat": self._chat_json(message.chat_id),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        text_key, entities_key = (
            ("text", "entities") if message.kind == "text" else ("caption", "caption_entities")
        )
        if message.text or message.kind == "text":
            data[text_key] = message.text
        if message.entities:
            data[entities_key] = message.entities
        stored = self._files.get(message.file_id or "")
        if message.kind == "photo" and stored is not None:
            data["photo"] = [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": 320,
                    "height": 320,
                    "file_size": len(stored.content),
                }
            ]
        elif message.kind == "document" and stored is not None:
            data["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": stored.file_name,
                "mime_type": stored.mime_type,
                "file_size": len(stored.content),
            }
        if message.buttons:  # only inline keyboards are part of a message
            data["reply_markup"] = {"inline_keyboard": message.buttons}
        return data
