"""The people, the messages the bot sent, uploads and stored files, injected faults, webhook
deliveries: the stand-in's state as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass
class TgUser:
    """A person with a Telegram account; their private chat with the bot has the same id."""

    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "en"

    def to_json(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None:
            data["language_code"] = self.language_code
        return data


@dataclass
class SentMessage:
    """A message the bot sent, as it is now (edits applied)."""

    message_id: int
    chat_id: int
    text: str  # what a Telegram client shows: tags removed, entities decoded (caption for media)
    html: str  # the text (or caption) exactly as the bot sent it
    buttons: list[list[JsonDict]]  # inline keyboard rows as sent
    kind: str = "text"  # "text" | "photo" | "document"
    edits: int = 0
    document_name: str | None = None
    document_bytes: bytes | None = None
    entities: list[JsonDict] = field(default_factory=list)
    parse_mode: str | None = None
    reply_markup: JsonDict | None = None  # raw markup as sent (reply keyboards included)
    deleted: bool = False
    date: int = 0
    edit_date: int | None = None
    first_text: str = ""  # plain text as first sent, before any edit
    file_id: str | None = None

    def button(self, label_contains: str) -> JsonDict:
        """The first inline button whose label contains ``label_contains`` (case-insensitive)."""
        needle = label_contains.casefold()
        for row in self.buttons:
            for button in row:
                if needle in str(button.get("text", "")).casefold():
                    return button
        labels = [button.get("text") for row in self.buttons for button in row]
        raise AssertionError(
            f"message {self.message_id} has no button containing {label_contains!r}; "
            f"its buttons are {labels}"
        )


@dataclass
class Upload:
    filename: str
    content: bytes
    content_type: str


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str
    mime_type: str


@dataclass
class Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of an update to the webhook: ``status`` is None when nothing answered."""

    update_id: int
    attempt: int
    status: int | None
    duplicate: bool = False


@dataclass
class PendingCallback:
    chat_id: int
    pressed_at: float
    answered: bool = False
