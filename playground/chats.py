"""The chats as the page shows them.

The Bot API never echoes a person's own messages back, so what people type is kept here and
merged with what the bot sent (kept by the Telegram stand-in). A watcher notices every send, edit,
delete and button answer and bumps `version`, which the page's live stream waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from telegram.constants import MessageLimit

from playground.people import Cast
from sandbox.telegram import SentMessage, TelegramStandin, TgUser

JsonDict = dict[str, Any]

# How often the watcher looks at the stand-in; well below what a person notices.
_WATCH_INTERVAL = 0.05
# Telegram clients stop waiting for a button's answer after about 15 seconds.
_PRESS_ANSWER_SECONDS = 15.0
_TOASTS_KEPT = 20


class ChatError(ValueError):
    """The page asked for something a Telegram client could not do; safe to show."""


@dataclass(frozen=True)
class _Typed:
    """Something a person sent: placed after the bot messages the chat had at that moment."""

    seq: int
    after: int
    text: str
    date: int


@dataclass(frozen=True)
class Toast:
    id: int
    chat_id: int
    text: str
    alert: bool


class Chats:
    def __init__(self, telegram: TelegramStandin, cast: Cast) -> None:
        self._telegram = telegram
        self._cast = cast
        self._typed: dict[int, list[_Typed]] = {}
        self._seq = 0
        # Presses waiting for the bot's answer: callback query id → (chat id, pressed at).
        self._presses: dict[str, tuple[int, float]] = {}
        self._answers_seen = 0
        self._toasts: deque[Toast] = deque(maxlen=_TOASTS_KEPT)
        self._fingerprint: tuple[object, ...] = ()
        self.version = 0
        self._changed = asyncio.Event()

    # -- acting ---------------------------------------------------------------------------------

    def send_text(self, chat_id: int, text: str) -> None:
        person = self._person(chat_id)
        text = text.strip()
        if not text:
            raise ChatError("the message is empty")
        if len(text) > MessageLimit.MAX_TEXT_LENGTH:
            raise ChatError(f"a message has at most {MessageLimit.MAX_TEXT_LENGTH} characters")
        self._seq += 1
        after = len(self._telegram.messages(chat_id, include_deleted=True))
        self._typed.setdefault(chat_id, []).append(_Typed(self._seq, after, text, int(time.time())))
        self._telegram.send_text(person, text)
        self.refresh(force=True)

    def press(self, chat_id: int, message_id: int, data: str) -> None:
        """Press a button the chat shows; like a Telegram client, nothing else can be pressed."""
        person = self._person(chat_id)
        message = next(
            (m for m in self._telegram.messages(chat_id) if m.message_id == message_id), None
        )
        if message is None:
            raise ChatError("that message is not in the chat")
        if not any(b.get("callback_data") == data for row in message.buttons for b in row):
            raise ChatError("that message has no such button")
        # The bot's answer names only the press's callback query id.
        query_id = self._telegram.press_data(person, message_id, data)
        self._presses[query_id] = (chat_id, time.monotonic())
        self.refresh(force=True)

    def media(self, chat_id: int, message_id: int) -> SentMessage | None:
        """A photo or document the bot sent to the chat (None if there is no such file)."""
        self._person(chat_id)
        return next(
            (
                m
                for m in self._telegram.messages(chat_id)
                if m.message_id == message_id and m.kind != "text" and m.document_bytes
            ),
            None,
        )

    def _person(self, chat_id: int) -> TgUser:
        person = self._cast.person(chat_id)
        if person is None:
            raise ChatError(f"nobody in the playground has the chat {chat_id}")
        return person

    # -- watching -------------------------------------------------------------------------------

    async def watch(self, closing: asyncio.Event) -> None:
        while not closing.is_set():
            self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), _WATCH_INTERVAL)
        self._wake()  # let every live stream see the end

    def refresh(self, *, force: bool = False) -> None:
        self._collect_answers()
        fingerprint = self._current_fingerprint()
        if force or fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self.version += 1
            self._wake()

    async def changed_since(self, version: int, timeout: float) -> int:  # noqa: ASYNC109
        """The version once it differs from ``version`` (or after ``timeout`` seconds)."""
        if self.version == version:
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        return self.version

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _chat_ids(self) -> list[int]:
        return [self._cast.manager.id, *(p.id for p in self._cast.influencers)]

    def _current_fingerprint(self) -> tuple[object, ...]:
        chats = []
        for chat_id in self._chat_ids():
            messages = self._telegram.messages(chat_id, include_deleted=True)
            chats.append(
                (
                    chat_id,
                    len(messages),
                    sum(m.edits for m in messages),
                    sum(m.deleted for m in messages),
                )
            )
        return (tuple(chats), self._toasts[-1].id if self._toasts else 0)

    def _collect_answers(self) -> None:
        """Attribute the bot's answers to button presses to the chats by the query id each
        answer names (two people pressing at once are answered in any order)."""
        answers = self._telegram.callback_answers
        now = time.monotonic()
        for query_id in [
            q for q, (_, at) in self._presses.items() if now - at > _PRESS_ANSWER_SECONDS
        ]:
            del self._presses[query_id]
        while self._answers_seen < len(answers):
            answer = answers[self._answers_seen]
            self._answers_seen += 1
            # The first answer counts; Telegram refuses a second one, and a late one.
            press = self._presses.pop(str(answer.get("callback_query_id", "")), None)
            if press is None:
                continue
            chat_id, _ = press
            text = str(answer.get("text") or "")
            if text:
                toast_id = self._toasts[-1].id + 1 if self._toasts else 1
                self._toasts.append(Toast(toast_id, chat_id, text, bool(answer.get("show_alert"))))

    # -- showing --------------------------------------------------------------------------------

    def view(self) -> JsonDict:
        return {
            "version": self.version,
            "chats": {str(chat_id): self._chat_view(chat_id) for chat_id in self._chat_ids()},
            "toasts": [
                {"id": t.id, "chat_id": t.chat_id, "text": t.text, "alert": t.alert}
                for t in self._toasts
            ],
        }

    def _chat_view(self, chat_id: int) -> list[JsonDict]:
        typed = self._typed.get(chat_id, [])
        items: list[JsonDict] = []
        sent = self._telegram.messages(chat_id, include_deleted=True)
        for index, message in enumerate(sent):
            items.extend(_typed_view(t) for t in typed if t.after == index)
            if not message.deleted:
                items.append(_bot_view(message))
        items.extend(_typed_view(t) for t in typed if t.after >= len(sent))
        return items


def _typed_view(typed: _Typed) -> JsonDict:
    return {"key": f"u{typed.seq}", "from": "person", "text": typed.text, "date": typed.date}


def _bot_view(message: SentMessage) -> JsonDict:
    if (message.parse_mode or "").lower() == "html":
        markup = message.html.strip()
    else:
        markup = html.escape(message.text, quote=False)
    return {
        "key": f"b{message.message_id}",
        "from": "bot",
        "message_id": message.message_id,
        "html": markup,
        "kind": message.kind,
        "document_name": message.document_name,
        "media": (
            # The file id makes the address unique, so the page may cache what is behind it.
            f"/api/chats/{message.chat_id}/media/{message.message_id}?v={message.file_id}"
            if message.kind != "text" and message.document_bytes
            else None
        ),
        "edited": message.edits > 0,
        "date": message.edit_date or message.date,
        "buttons": [[_button_view(b) for b in row] for row in message.buttons],
    }


def _button_view(button: JsonDict) -> JsonDict:
    view: JsonDict = {"text": str(button.get("text", ""))}
    if "callback_data" in button:
        view["data"] = str(button["callback_data"])
    elif "url" in button:
        view["url"] = str(button["url"])
    return view
