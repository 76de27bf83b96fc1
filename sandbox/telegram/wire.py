"""How a Bot API request arrives: form parameters decoded the way Telegram reads them, and the
values Telegram accepts for them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import bad_request
from .model import JsonDict, Upload

# ---------------------------------------------------------------------------------------------
# Request decoding
# ---------------------------------------------------------------------------------------------

# PTB sends every parameter form-encoded; these arrive as JSON strings inside the form.
_JSON_PARAMS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
        "link_preview_options", "reply_parameters", "media", "menu_button",
    }
)  # fmt: skip
_INT_PARAMS = frozenset(
    {
        "chat_id", "message_id", "offset", "limit", "timeout", "user_id", "from_chat_id",
        "cache_time", "max_connections", "reply_to_message_id", "message_thread_id",
    }
)  # fmt: skip
_BOOL_PARAMS = frozenset(
    {
        "disable_notification", "show_alert", "drop_pending_updates", "protect_content",
        "disable_web_page_preview", "allow_sending_without_reply", "has_spoiler",
        "disable_content_type_detection", "show_caption_above_media", "allow_paid_broadcast",
    }
)  # fmt: skip
_JSON_ERROR = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "entities": "can't parse entities JSON object",
    "caption_entities": "can't parse entities JSON object",
}


def decode_param(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(_JSON_ERROR.get(key, f"can't parse {key} JSON object")) from None
    if key in _INT_PARAMS:
        with contextlib.suppress(ValueError):
            return int(value)
        with contextlib.suppress(ValueError):
            return float(value)
        return value  # "@channelname" chat ids stay strings
    if key in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value


BUTTON_ACTIONS = frozenset(
    {
        "callback_data", "url", "login_url", "switch_inline_query", "web_app", "pay",
        "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game",
        "copy_text",
    }
)  # fmt: skip
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")

Handler = Callable[[JsonDict, dict[str, Upload]], Awaitable[Any]]
